"""The cache key's contents, and the cache backends' contract."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from judge import readiness
from judge.cache import CallCache, DiskCache, MemoryCache, RedisCache, cache_key
from judge.heuristics import HEURISTICS_VERSION
from judge.judges.base import JudgeRequest
from judge.judges.llm import LLMJudge
from judge.judges.offline import OfflineJudge
from judge.prompt import PROMPT_VERSION
from judge.rubric import Rubric
from judge.transcript import Transcript
from judge.verdict import JudgeResult

BASE: dict[str, Any] = {
    "transcript_hash": "t" * 64,
    "rubric_hash": "r" * 64,
    "criteria": ("refusal",),
    "judge": {"model": "openai/gpt-4o-mini", "api_base": None, "temperature": 0, "max_tokens": 600},
    "sample": 0,
}


@pytest.mark.parametrize(
    "change",
    [
        {"transcript_hash": "u" * 64},
        {"rubric_hash": "s" * 64},
        {"criteria": ("aligned",)},
        {"sample": 1},
        {"judge": {**BASE["judge"], "model": "anthropic/claude"}},
        {"judge": {**BASE["judge"], "temperature": 0.7}},
        {"judge": {**BASE["judge"], "max_tokens": 100}},
        {"judge": {**BASE["judge"], "api_base": "http://127.0.0.1:8000/v1"}},
    ],
)
def test_every_output_changing_input_changes_the_key(change: dict[str, Any]) -> None:
    assert cache_key(**{**BASE, **change}) != cache_key(**BASE)


def test_judge_identity_leaves_out_what_does_not_change_output(
    refusal: Rubric, single_turn: Transcript
) -> None:
    request = JudgeRequest(refusal, single_turn, refusal.criteria)
    fast = LLMJudge("openai/m", api_key="a", timeout=1, max_retries=0)
    patient = LLMJudge("openai/m", api_key="b", timeout=600, max_retries=9, max_wait=5)
    assert fast.identity(request) == patient.identity(request)
    assert "api_key" not in fast.identity(request)
    relabelled = single_turn.model_copy(update={"id": "other", "metadata": {"tags": ["x"]}})
    assert relabelled.content_hash == single_turn.content_hash


@pytest.fixture(params=["memory", "disk", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CallCache]:
    """Every backend under the same contract (Redis from the ``redis_url`` fixture)."""
    cache: CallCache
    if request.param == "memory":
        cache = MemoryCache()
    elif request.param == "disk":
        cache = DiskCache(tmp_path)
    else:
        url = request.getfixturevalue("redis_url")
        cache = RedisCache(url, prefix=f"judge-test-{uuid.uuid4().hex}:")
    yield cache
    cache.clear()
    await cache.close()


RESULT = JudgeResult(model="m", sample=0, criteria=("refusal",), values={"refusal": "full_refusal"})


async def test_backend_round_trip_stats_and_clear(backend: CallCache) -> None:
    assert await backend.ping()
    assert await backend.get("k") is None
    await backend.set("k", RESULT)
    assert await backend.get("k") == RESULT
    stats = backend.stats()
    assert (stats.entries, stats.hits, stats.misses) == (1, 1, 1)
    assert backend.clear() == 1
    assert await backend.get("k") is None


async def test_backend_concurrent_writes_all_land(backend: CallCache) -> None:
    results = [RESULT.model_copy(update={"sample": i}) for i in range(50)]
    await asyncio.gather(*(backend.set(f"k{i}", r) for i, r in enumerate(results)))
    assert [await backend.get(f"k{i}") for i in range(50)] == results


async def test_disk_cache_survives_reopening(tmp_path: Path) -> None:
    first = DiskCache(tmp_path)
    await first.set("k", RESULT)
    await first.close()
    second = DiskCache(tmp_path)
    assert await second.get("k") == RESULT
    await second.close()


async def test_a_disk_cache_written_a_moment_ago_is_ready_without_waiting_on_a_writer(
    tmp_path: Path,
) -> None:
    """While another writer holds the database, a probe would wait (up to diskcache's 60 s);
    a batch this cache committed a moment ago stands for it."""
    cache = DiskCache(tmp_path)
    await cache.set("k", RESULT)
    writer = sqlite3.connect(tmp_path / "cache.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    assert await cache.ping()
    assert time.monotonic() - started < 0.5
    writer.execute("ROLLBACK")
    writer.close()
    await cache.close()


def test_a_write_vouches_for_readiness_for_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    writes = readiness.RecentWrites()
    assert not writes.vouch()
    writes.mark()
    now[0] += readiness.RECENT_SECONDS - 0.01
    assert writes.vouch()
    now[0] += 0.02
    assert not writes.vouch()


IDENTITY_FIELDS = st.fixed_dictionaries(
    {
        "transcript_hash": st.text(min_size=1, max_size=8),
        "rubric_hash": st.text(min_size=1, max_size=8),
        "criteria": st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3).map(tuple),
        "judge": st.dictionaries(
            st.sampled_from(["model", "api_base", "temperature", "max_tokens", "top_logprobs"]),
            st.none() | st.integers(0, 3) | st.floats(0, 2) | st.text(max_size=6),
            min_size=1,
        ),
        "sample": st.integers(0, 5),
        # the order a group was shown in; () is the canonical one
        "order": st.permutations(range(3)).map(tuple) | st.just(()),
    }
)


@given(IDENTITY_FIELDS, IDENTITY_FIELDS, st.data())
def test_any_change_to_any_field_of_the_identity_changes_the_key(
    first: dict[str, Any], second: dict[str, Any], data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(sorted(first)))
    changed = {**first, field: second[field]}
    assume(changed[field] != first[field])
    assert cache_key(**changed) != cache_key(**first)
    if first["judge"]:
        name = data.draw(st.sampled_from(sorted(first["judge"])))
        other = {**first["judge"], name: [first["judge"][name]]}
        assert cache_key(**{**first, "judge": other}) != cache_key(**first)


def test_the_key_is_the_sha256_of_the_canonical_identity() -> None:
    """Pinned: a change to how keys are made misses every cached call, so it must be
    deliberate (and come with a new PROMPT_VERSION)."""
    identity = {
        "criteria": ["refusal"],
        "judge": {
            "api_base": None,
            "max_tokens": 600,
            "model": "openai/gpt-4o-mini",
            "temperature": 0,
        },
        "prompt_version": PROMPT_VERSION,
        "rubric": "r" * 64,
        "sample": 0,
        "transcript": "t" * 64,
    }
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    assert cache_key(**BASE) == hashlib.sha256(blob.encode()).hexdigest()
    reordered = {**BASE, "judge": dict(reversed(list(BASE["judge"].items())))}
    assert cache_key(**reordered) == cache_key(**BASE)
    shown = json.dumps({**identity, "order": [1, 0]}, sort_keys=True, separators=(",", ":"))
    assert cache_key(**BASE, order=(1, 0)) == hashlib.sha256(shown.encode()).hexdigest()


def test_the_llm_judge_identity_is_its_model_endpoint_and_decoding(
    refusal: Rubric, em: Rubric, single_turn: Transcript
) -> None:
    structured = JudgeRequest(refusal, single_turn, refusal.criteria)
    defaults = refusal.judge
    assert LLMJudge("openai/m", api_base="http://h/v1").identity(structured) == {
        "model": "openai/m",
        "api_base": "http://h/v1",
        "temperature": defaults.temperature,
        "max_tokens": defaults.max_tokens,
    }
    tuned = LLMJudge("openai/m", temperature=0.7, max_tokens=99).identity(structured)
    assert (tuned["temperature"], tuned["max_tokens"], tuned["api_base"]) == (0.7, 99, None)
    zero = LLMJudge("openai/m", temperature=0.0, max_tokens=1).identity(structured)
    assert (zero["temperature"], zero["max_tokens"]) == (0.0, 1)
    scored = JudgeRequest(em, single_turn, em.criteria[:1])
    assert LLMJudge("openai/m", temperature=0.9, max_tokens=50).identity(scored) == {
        "model": "openai/m",
        "api_base": None,
        "temperature": 0.0,
        "max_tokens": 1,
        "logprobs": True,
        "top_logprobs": 20,
    }


def test_the_offline_judge_identity_is_its_heuristics_version(
    refusal: Rubric, single_turn: Transcript
) -> None:
    request = JudgeRequest(refusal, single_turn, refusal.criteria)
    assert OfflineJudge().identity(request) == {
        "model": "offline",
        "heuristics_version": HEURISTICS_VERSION,
    }
    assert len(HEURISTICS_VERSION) == 16 and int(HEURISTICS_VERSION, 16) >= 0
