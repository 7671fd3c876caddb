"""Dry runs: the estimate makes no call, knows what the cache holds, and its input tokens are
within 10% of what the provider counts (the fake server counts as OpenAI does) on real
transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.cache import CachePolicy, MemoryCache
from judge.cli import main
from judge.datasets import Split, load_emergent_misalignment, load_xstest
from judge.estimate import estimate
from judge.grading import Grader
from judge.grouping import units
from judge.judges import LLMJudge, OfflineJudge
from judge.plan import JudgePlan
from judge.rubric import RubricLibrary
from judge.testing.fake_server import FakeJudgeServer, count_prompt_tokens
from judge.transcript import Transcript
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


def real_transcripts() -> list[Transcript]:
    xstest = load_xstest(SHARED_DATA / "xstest", Split.DEV)[::40]
    em = load_emergent_misalignment(SHARED_DATA / "emergent_misalignment")[::80]
    return [*xstest, *em]


async def test_estimate_matches_what_the_provider_counts(
    fake_server: FakeJudgeServer, library: RubricLibrary
) -> None:
    transcripts = real_transcripts()
    rubrics = [library.get(r) for r in ("refusal", "emergent_misalignment", "sysprompt_adherence")]
    judge = LLMJudge("openai/gpt-4o-mini", api_base=fake_server.api_base, api_key="sk-fake")
    plan = JudgePlan([judge, OfflineJudge()], samples=2)
    cache = MemoryCache()

    before = await estimate(units(transcripts, rubrics), plan, cache)
    assert fake_server.request_count == 0
    pairs = len(transcripts) * len(rubrics)
    assert before.pairs == pairs and before.not_applicable > 0  # no system prompt: n/a
    llm = next(m for m in before.models if m.model == "openai/gpt-4o-mini")
    assert llm.calls_to_make > (pairs - before.not_applicable) * 2  # EM: 2 groups a sample
    assert llm.calls == llm.calls_to_make + llm.cache_hits  # hits: identical transcripts
    assert llm.cost_usd is not None and llm.cost_usd > 0 and before.unpriced_models == []

    async with Grader(plan, cache) as grader:
        verdicts = [v async for v in grader.grade_many(transcripts, rubrics)]
    assert len(verdicts) == pairs and fake_server.request_count == llm.calls_to_make
    counted = sum(count_prompt_tokens(body["messages"]) for body in fake_server.requests)
    print(f"estimated {llm.input_tokens} input tokens, the provider counted {counted}")
    assert abs(llm.input_tokens / counted - 1) <= 0.10, (llm.input_tokens, counted)
    billed = sum(j.input_tokens or 0 for v in verdicts for j in v.judges)
    assert billed == counted  # the provider's usage is what verdicts record

    after = await estimate(units(transcripts, rubrics), plan, cache)
    llm_after = next(m for m in after.models if m.model == "openai/gpt-4o-mini")
    assert llm_after.calls_to_make == 0 and llm_after.cache_hits == llm.calls
    assert after.input_tokens == 0 and after.cost_usd == 0
    refreshed = await estimate(units(transcripts, rubrics), plan, cache, CachePolicy.REFRESH)
    assert refreshed.calls_to_make == before.calls_to_make


async def test_a_model_without_a_price_is_unpriced_not_free(
    fake_server: FakeJudgeServer, library: RubricLibrary, single_turn: Transcript
) -> None:
    judge = LLMJudge("openai/my-own-model", api_base=fake_server.api_base, api_key="sk-fake")
    result = await estimate(
        units([single_turn], [library.get("refusal")]), JudgePlan([judge]), MemoryCache()
    )
    assert result.unpriced_models == ["openai/my-own-model"]
    assert result.models[0].cost_usd is None and result.models[0].input_tokens > 0
    assert result.cost_usd == 0


def test_cli_dry_run_needs_no_key_and_calls_nothing(
    tmp_path: Path,
    fake_server: FakeJudgeServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "t.jsonl"
    source.write_text(
        "\n".join(t.model_dump_json() for t in real_transcripts()[:10]) + "\n", "utf-8"
    )
    args = ["grade", str(source), "-r", "refusal", "-m", "gpt-4o-mini"]
    assert main([*args, "--dry-run"]) == 0
    printed = capsys.readouterr()
    document = json.loads(printed.out)
    assert document["calls_to_make"] == 10 and document["cost_usd"] > 0
    assert "dry run: 10 pairs" in printed.err
    assert fake_server.request_count == 0
    assert main(args) == 2  # a real run needs the key
    assert "OPENAI_API_KEY" in capsys.readouterr().err
