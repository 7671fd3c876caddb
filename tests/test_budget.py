"""Budgets: past the limit no call is made, the rest get error(budget), a rerun with more pays
only for what is missing, and concurrency overshoots by at most the re-asks of calls in flight."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from judge.budget import Budget, check_priced
from judge.cache import MemoryCache
from judge.cli import main
from judge.cost import Prices
from judge.errors import ErrorKind, JudgeSpecError, UsageError
from judge.grading import Grader
from judge.judges import LLMJudge, OfflineJudge
from judge.plan import JudgePlan
from judge.rubric import RubricLibrary
from judge.testing.fake_server import FakeJudgeServer, Reply, echo_label_responder
from judge.transcript import Transcript
from judge.verdict import Status, Verdict

PRICE = Prices(input=1e-6, output=4e-6)


def transcripts(count: int) -> list[Transcript]:
    return [
        Transcript.from_prompt(
            f"Question {i}: how do I get rid of weeds in my garden without chemicals?",
            f"Answer {i}: pull them by hand after rain, mulch the beds, and pour boiling water "
            "on the ones between paving stones. " * (1 + i % 5),
            id=f"t{i}",
        )
        for i in range(count)
    ]


def paid(verdicts: list[Verdict]) -> float:
    return sum(v.cost_usd for v in verdicts)


def test_a_budget_reserves_and_stays_spent_once_it_refuses() -> None:
    budget = Budget(1.0)
    assert budget.reserve(0.6) and not budget.reserve(0.5)
    assert budget.exhausted and not budget.reserve(0.01)  # sticky: no later, cheaper call
    budget.settle(0.6, 0.2)
    assert (budget.spent_usd, budget.reserved_usd) == (0.2, 0.0)
    assert budget.refusal().kind == ErrorKind.BUDGET and "$1.0000" in budget.refusal().message
    assert Budget(1.0, spent_usd=1.0).exhausted
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(UsageError):
            Budget(bad)


async def test_past_the_budget_no_call_is_made_and_a_rerun_pays_only_the_rest(
    fake_server: FakeJudgeServer, library: RubricLibrary
) -> None:
    judge = LLMJudge("openai/priced", api_base=fake_server.api_base, api_key="sk-fake", price=PRICE)
    rubric = library.get("refusal")
    batch = transcripts(40)
    cache = MemoryCache()
    async with Grader(JudgePlan([judge]), cache, concurrency=8) as grader:
        limit = 0.03
        first = [v async for v in grader.grade_many(batch, [rubric], budget=Budget(limit))]
        stopped = [v for v in first if v.error is not None]
        graded = [v for v in first if v.status == Status.GRADED]
        assert stopped and graded and len(first) == 40
        assert {v.error.kind for v in stopped if v.error} == {ErrorKind.BUDGET}
        assert all(j.attempts == 0 for v in stopped for j in v.judges)
        assert fake_server.request_count == len(graded)  # no request for a stopped pair
        assert paid(first) <= limit  # no re-asks here, so no overshoot

        second = [v async for v in grader.grade_many(batch, [rubric], budget=Budget(1.0))]
        assert all(v.status == Status.GRADED for v in second)
        assert fake_server.request_count == 40  # only the stopped pairs were paid for
        assert sum(v.cached for v in second) == len(graded)


async def test_concurrent_calls_overshoot_by_at_most_their_re_asks(
    fake_server: FakeJudgeServer, library: RubricLibrary
) -> None:
    """Every call's first reply is invalid, so every call re-asks: each costs more than it
    reserved, and the overshoot is bounded by the re-asks of the calls in flight."""
    replies: list[dict[str, Any]] = []

    def invalid_first(body: dict[str, Any]) -> Reply:
        replies.append(body)
        if len(body["messages"]) > 2 and body["messages"][-2]["role"] == "assistant":
            return echo_label_responder(body)  # the re-ask: now valid
        return Reply(content="not json at all")

    fake_server.responder = invalid_first
    try:
        judge = LLMJudge(  # a short max_tokens: the re-ask costs more than the reservation
            "openai/priced",
            api_base=fake_server.api_base,
            api_key="sk-fake",
            price=PRICE,
            max_tokens=60,
        )
        concurrency, limit = 8, 0.02
        async with Grader(JudgePlan([judge]), MemoryCache(), concurrency=concurrency) as grader:
            budget = Budget(limit)
            graded = [
                v
                async for v in grader.grade_many(
                    transcripts(60), [library.get("refusal")], budget=budget
                )
            ]
    finally:
        fake_server.responder = echo_label_responder
    costs = [v.cost_usd for v in graded if v.status == Status.GRADED]
    assert costs and len(costs) < 60 and budget.exhausted
    overshoot = paid(graded) - limit
    assert overshoot > 0  # this run does pass its budget, as the re-asks allow
    assert overshoot <= concurrency * max(costs) / 2 + 1e-12  # a re-ask is about half a call
    assert math.isclose(budget.spent_usd, paid(graded))
    print(f"spent {paid(graded):.6f} of {limit}: overshoot {max(0.0, overshoot):.6f}")


async def test_free_judges_never_pass_a_budget(library: RubricLibrary) -> None:
    async with Grader(JudgePlan([OfflineJudge()])) as grader:
        budget = Budget(1e-9)
        verdicts = [
            v
            async for v in grader.grade_many(
                transcripts(5), [library.get("refusal")], budget=budget
            )
        ]
    assert all(v.status == Status.GRADED for v in verdicts) and not budget.exhausted


def test_cli_max_cost(
    tmp_path: Path,
    fake_server: FakeJudgeServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "judge.yaml"
    config.write_text(
        json.dumps(
            {
                "profiles": {
                    "priced": {
                        "model": "openai/priced",
                        "api_base": fake_server.api_base,
                        "input_cost_per_token": PRICE.input,
                        "output_cost_per_token": PRICE.output,
                    },
                    "unpriced": {"model": "openai/free-for-all", "api_base": fake_server.api_base},
                }
            }
        )
    )
    monkeypatch.setenv("JUDGE_CONFIG", str(config))
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    source = tmp_path / "t.jsonl"
    source.write_text("".join(t.model_dump_json() + "\n" for t in transcripts(20)))
    out = tmp_path / "v.jsonl"
    args = ["grade", str(source), "-r", "refusal", "-m", "priced", "-o", str(out)]

    assert main([*args, "--max-cost", "0.01"]) == 1
    assert "budget" in capsys.readouterr().err
    first = [Verdict.model_validate_json(line) for line in out.read_text().splitlines()]
    stopped = sum(v.error is not None and v.error.kind == ErrorKind.BUDGET for v in first)
    assert 0 < stopped < 20 and fake_server.request_count == 20 - stopped
    assert main([*args, "--max-cost", "1"]) == 0
    assert fake_server.request_count == 20

    for bad in ("0", "-1", "nan"):
        assert main([*args, "--max-cost", bad]) == 2
    assert main([*args[:-4], "-m", "unpriced", "--max-cost", "1"]) == 2
    assert "input_cost_per_token" in capsys.readouterr().err
    with pytest.raises(JudgeSpecError):
        check_priced(JudgePlan([LLMJudge("openai/free-for-all", api_key="k")]))
