"""The cache key's contents, and the cache backends' contract."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from judge.cache import CallCache, DiskCache, MemoryCache, RedisCache, cache_key
from judge.judges.base import JudgeRequest
from judge.judges.llm import LLMJudge
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
