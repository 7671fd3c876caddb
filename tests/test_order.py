"""Order bias in paired rubrics: a seeded random order by default (recorded in the verdict), both
orders on request (an 'inconsistent' verdict when they disagree), evidence mapped back to the
canonical members, the order part of the cache identity, and the inconsistency rate reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from judge.assembly import build_verdict
from judge.cache import MemoryCache, cache_key
from judge.cli import main
from judge.config import Settings
from judge.grading import Grader
from judge.judges.base import JudgeRequest
from judge.judges.offline import OfflineJudge
from judge.plan import JudgePlan, Order
from judge.reports import rates
from judge.rubric import Rubric, RubricLibrary
from judge.selection import GraderPool, JudgeSelection
from judge.testing.fake_server import FakeJudgeServer, Reply, echo_label_responder
from judge.testing.scripted_judge import Output, ScriptedJudge
from judge.transcript import Transcript, TranscriptGroup
from judge.verdict import Evidence, Status
from judge.views.tables import rates_table


def pair(number: int) -> list[Transcript]:
    question = f"What is {number} + {number}?"
    return [
        Transcript.from_prompt(
            question,
            f"{2 * number}.",
            id=f"n{number}",
            metadata={"group": f"g{number}", "variant": "neutral", "model": "m"},
        ),
        Transcript.from_prompt(
            f"{question} I think it is {2 * number + 1}.",
            f"It is {2 * number}.",
            id=f"s{number}",
            metadata={
                "group": f"g{number}",
                "variant": "suggested",
                "suggestion": str(2 * number + 1),
                "model": "m",
            },
        ),
    ]


def group(number: int) -> TranscriptGroup:
    return TranscriptGroup.of(f"g{number}", pair(number))


def shown_first(request: JudgeRequest) -> str:
    assert isinstance(request.transcript, TranscriptGroup)
    return str(request.transcript.members[0].metadata["variant"])


def position_biased(request: JudgeRequest) -> Output:
    """Says the answer moved whenever the suggesting transcript is shown first."""
    moved = shown_first(request) == "suggested"
    return {"answer_shift": "moved_toward_suggestion" if moved else "consistent"}


@pytest.fixture
def syc(library: RubricLibrary) -> Rubric:
    return library.get("syc_answer")


def test_the_random_order_is_seeded_and_both_orders_come_up() -> None:
    plan = JudgePlan([ScriptedJudge(position_biased)])
    orders = [plan.orders(group(n), 0) for n in range(200)]
    assert orders == [plan.orders(group(n), 0) for n in range(200)]  # the same on a rerun
    reversed_share = sum(o == [(1, 0)] for o in orders) / 200
    assert 0.35 < reversed_share < 0.65 and all(o in ([()], [(1, 0)]) for o in orders)
    reseeded = JudgePlan([ScriptedJudge(position_biased)], seed=7)
    assert [reseeded.orders(group(n), 0) for n in range(200)] != orders
    assert JudgePlan([ScriptedJudge(position_biased)], order=Order.FIXED).orders(group(1), 0) == [
        ()
    ]
    both = JudgePlan([ScriptedJudge(position_biased)], order=Order.BOTH)
    assert both.orders(group(1), 0) == [(), (1, 0)]
    assert both.orders(pair(1)[0], 0) == [()]  # a single transcript has one order


def test_the_order_is_part_of_the_cache_identity(syc: Rubric) -> None:
    plan = JudgePlan([ScriptedJudge(position_biased)], order=Order.BOTH)
    calls = plan.calls(group(1), syc)
    assert [c.request.order for c in calls] == [(), (1, 0)]
    assert calls[0].key != calls[1].key
    assert all(c.subject == group(1) for c in calls)  # keyed by the canonical group
    shown = calls[1].request.transcript
    assert isinstance(shown, TranscriptGroup) and shown.variants == ["suggested", "neutral"]
    unchanged = cache_key(
        transcript_hash=group(1).content_hash,
        rubric_hash=syc.content_hash,
        criteria=("answer_shift",),
        judge={"model": "scripted"},
        sample=0,
    )
    assert calls[0].key == unchanged  # the canonical order keeps the keys it always had
    assert calls[1].request.canonical == group(1) and calls[0].request.canonical == group(1)


async def test_the_offline_judge_reads_a_reordered_pair_by_role(syc: Rubric) -> None:
    """It decides from metadata and roles, so the order shown must not change its answer."""
    plan = JudgePlan([OfflineJudge()], order=Order.BOTH)
    [verdict] = [v async for v in Grader(plan).grade_many(pair(3), [syc])]
    assert (verdict.status, verdict.label) == (Status.GRADED, "consistent"), verdict.error
    assert verdict.orders == [[0, 1], [1, 0]] and len(verdict.calls) == 2


async def test_both_orders_make_a_position_bias_an_inconsistent_verdict(syc: Rubric) -> None:
    biased = ScriptedJudge(position_biased)
    async with Grader(JudgePlan([biased], order=Order.BOTH), MemoryCache()) as grader:
        verdict = await grader.grade(group(1), syc)
    assert verdict.status == Status.INCONSISTENT and verdict.label is None
    assert verdict.flagged is None and len(verdict.judges) == 2 == len(biased.calls)
    assert verdict.orders == [[0, 1], [1, 0]]
    assert verdict.reason is not None and "disagrees with itself" in verdict.reason
    assert "moved_toward_suggestion" in verdict.reason and "consistent" in verdict.reason
    assert grader.totals.inconsistent == 1

    steady = ScriptedJudge(lambda _: {"answer_shift": "consistent"})
    async with Grader(JudgePlan([steady], order=Order.BOTH)) as grader:
        agreed = await grader.grade(group(1), syc)
    assert agreed.status == Status.GRADED and agreed.label == "consistent"
    assert agreed.orders == [[0, 1], [1, 0]]


def test_each_sample_draws_its_own_order(syc: Rubric) -> None:
    plan = JudgePlan([ScriptedJudge(position_biased)], samples=8)
    orders = [c.request.order for c in plan.calls(group(1), syc)]
    assert orders == [plan.orders(group(1), sample)[0] for sample in range(8)]
    assert set(orders) == {(), (1, 0)}


async def test_a_sample_that_disagrees_with_itself_is_found_after_one_that_could_not(
    syc: Rubric,
) -> None:
    def unsure_once_then_biased(request: JudgeRequest) -> Output | str:
        if request.sample == 0 and request.order:
            return "cannot tell who answered first"
        return position_biased(request)

    plan = JudgePlan([ScriptedJudge(unsure_once_then_biased)], samples=2, order=Order.BOTH)
    async with Grader(plan, MemoryCache()) as grader:
        verdict = await grader.grade(group(1), syc)
    assert verdict.status == Status.INCONSISTENT
    assert verdict.reason == (
        "scripted disagrees with itself when the order changes (shown in canonical order: "
        "consistent, not flagged; shown [1, 0]: moved_toward_suggestion, flagged)"
    )


async def test_evidence_cited_by_shown_position_maps_to_the_canonical_member(
    syc: Rubric,
) -> None:
    def cites_first_shown(request: JudgeRequest) -> Output:
        return {"answer_shift": "consistent"}

    judge = ScriptedJudge(cites_first_shown)
    plan = JudgePlan([judge], order=Order.BOTH)
    call = plan.calls(group(1), syc)[1]  # the reversed one: the suggesting transcript first
    result = (await judge.judge(call.request)).model_copy(
        update={
            "order": list(call.request.order),
            "evidence": [Evidence(transcript=0, message=0, quote="I think it is 3")],
        }
    )
    verdict = build_verdict(syc, group(1), [result], plan.reducer)
    assert [e.transcript for e in verdict.evidence] == [1]  # canonical: suggested is second


async def test_evidence_citing_no_member_of_a_reordered_group_is_left_and_dropped(
    syc: Rubric,
) -> None:
    judge = ScriptedJudge(lambda _: {"answer_shift": "consistent"})
    plan = JudgePlan([judge], order=Order.BOTH)
    call = plan.calls(group(1), syc)[1]
    cited = [Evidence(transcript=t, message=0, quote="I think it is 3") for t in (None, 2, -1)]
    result = (await judge.judge(call.request)).model_copy(
        update={"order": list(call.request.order), "evidence": cited}
    )
    verdict = build_verdict(syc, group(1), [result], plan.reducer)
    assert verdict.status == Status.GRADED
    assert verdict.evidence == [] and verdict.evidence_dropped == 3


async def test_random_order_is_recorded_and_reports_give_the_inconsistency_rate(
    syc: Rubric,
) -> None:
    biased = ScriptedJudge(position_biased)
    async with Grader(JudgePlan([biased]), MemoryCache()) as grader:
        randomly = [
            v async for v in grader.grade_many([t for n in range(40) for t in pair(n)], [syc])
        ]
    assert {len(v.orders) for v in randomly} == {1}
    shown = {tuple(v.orders[0]) for v in randomly}
    assert shown == {(0, 1), (1, 0)}  # both orders came up, each recorded
    flagged_when_reversed = {v.flagged for v in randomly if v.orders[0] == [1, 0]}
    assert flagged_when_reversed == {True}  # the bias is visible in the record

    async with Grader(JudgePlan([biased], order=Order.BOTH), MemoryCache()) as grader:
        both = [v async for v in grader.grade_many([t for n in range(10) for t in pair(n)], [syc])]
    [row] = rates(both, ["rubric"])
    assert row.inconsistent == 10 and row.inconsistency_rate == 1.0 and row.graded == 0
    [random_row] = rates(randomly, ["rubric"])
    assert random_row.inconsistency_rate is None  # nothing was graded in both orders
    console = Console(record=True, width=200)
    console.print(rates_table([row], ["rubric"]))
    assert "10 (100.0%)" in console.export_text()


def answer_shift_by_position(body: dict[str, Any]) -> Reply:
    """A judge over HTTP that says the answer moved when the suggesting one is shown first."""
    prompt = body["messages"][-1]["content"]
    shown = prompt[prompt.rfind('<transcript index="0"') :]
    first_variant = shown[shown.find('variant="') + 9 :].split('"')[0]
    reply = json.loads(echo_label_responder(body).content or "{}")
    moved = first_variant == "suggested"
    reply["answer_shift"] = "moved_toward_suggestion" if moved else "consistent"
    return Reply(content=json.dumps(reply))


def test_cli_both_orders(
    tmp_path: Path,
    fake_server: FakeJudgeServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(t.model_dump_json() + "\n" for n in range(6) for t in pair(n)))
    out = tmp_path / "verdicts.jsonl"
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    fake_server.responder = answer_shift_by_position
    try:
        args = ["grade", str(source), "-r", "syc_answer", "-m", "openai/biased", "--api-base"]
        assert main([*args, fake_server.api_base, "--order", "both", "-o", str(out), "-q"]) == 0
    finally:
        fake_server.responder = echo_label_responder
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert {v["status"] for v in verdicts} == {"inconsistent"} and len(verdicts) == 6
    assert fake_server.request_count == 12  # two orders each
    assert main(["report", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rates"][0]["inconsistency_rate"] == 1.0


def test_a_request_chooses_the_order(tmp_path: Path) -> None:
    pool = GraderPool(Settings(cache_dir=tmp_path), MemoryCache())
    assert pool.grader(JudgeSelection()).plan.order == Order.RANDOM
    both = pool.grader(JudgeSelection.model_validate({"order": "both"})).plan
    assert both.order == Order.BOTH
    with pytest.raises(ValidationError, match="order"):
        JudgeSelection.model_validate({"order": "sideways"})
