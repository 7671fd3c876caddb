"""The grading engine, with the scripted judge: reduction, ensembles, policies, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from judge.cache import CachePolicy, MemoryCache
from judge.errors import ErrorKind, JudgeSpecError
from judge.grading import Grader
from judge.judges.base import JudgeRequest
from judge.plan import JudgePlan
from judge.rubric import Rubric
from judge.testing.scripted_judge import Output, ScriptedJudge, constant
from judge.transcript import Message, Transcript
from judge.verdict import Status


def by_sample(*labels: str) -> ScriptedJudge:
    return ScriptedJudge(lambda request: {"refusal": labels[request.sample]})


async def test_majority_of_samples_with_agreement_as_confidence(
    refusal: Rubric, single_turn: Transcript
) -> None:
    judge = by_sample("full_refusal", "full_compliance", "full_refusal")
    verdict = await Grader(JudgePlan([judge], samples=3)).grade(single_turn, refusal)

    assert (verdict.label, verdict.flagged) == ("full_refusal", True)
    assert verdict.confidence == pytest.approx(2 / 3)
    assert verdict.confidence_source == "agreement"
    assert [j.sample for j in verdict.judges] == [0, 1, 2]


async def test_label_ties_go_to_the_rubric_order(refusal: Rubric, single_turn: Transcript) -> None:
    judge = by_sample("partial_refusal", "full_compliance")
    verdict = await Grader(JudgePlan([judge], samples=2)).grade(single_turn, refusal)
    assert verdict.label == "full_compliance"  # listed first in the rubric
    assert verdict.confidence == 0.5


@pytest.mark.parametrize(
    ("reducer", "flagged"), [("majority", False), ("any", True), ("all", False)]
)
async def test_reducers_combine_flags(
    reducer: str, flagged: bool, refusal: Rubric, single_turn: Transcript
) -> None:
    judge = by_sample("full_compliance", "full_compliance", "full_refusal")
    plan = JudgePlan([judge], samples=3, reducer=reducer)  # type: ignore[arg-type]
    assert (await Grader(plan).grade(single_turn, refusal)).flagged is flagged


async def test_ensemble_of_models_means_scores(em: Rubric, single_turn: Transcript) -> None:
    low = ScriptedJudge(constant(aligned=10, coherent=80), name="judge-a")
    high = ScriptedJudge(constant(aligned=40, coherent=60), name="judge-b")
    verdict = await Grader(JudgePlan([low, high])).grade(single_turn, em)

    assert verdict.scores == {"aligned": 25.0, "coherent": 70.0}
    assert verdict.flagged is True
    assert verdict.confidence == pytest.approx(1 - 30 / 100)
    assert {j.model for j in verdict.judges} == {"judge-a", "judge-b"}
    assert len(verdict.judges) == 4  # two judges x two logprob criteria


async def test_one_failed_call_makes_an_error_and_keeps_the_rest_cached(
    refusal: Rubric, single_turn: Transcript
) -> None:
    def flaky(request: JudgeRequest) -> Output:
        return ErrorKind.TIMEOUT if request.sample == 1 else {"refusal": "full_refusal"}

    judge = ScriptedJudge(flaky)
    cache = MemoryCache()
    verdict = await Grader(JudgePlan([judge], samples=2), cache).grade(single_turn, refusal)

    assert verdict.status == Status.ERROR
    assert verdict.error is not None and verdict.error.kind == ErrorKind.TIMEOUT
    assert verdict.label is None and verdict.flagged is None
    assert cache.stats().entries == 1

    await Grader(JudgePlan([judge], samples=2), cache).grade(single_turn, refusal)
    assert [call.sample for call in judge.calls] == [0, 1, 1]  # only the failure is paid again


async def test_unscored_criterion_makes_the_verdict_not_applicable(
    em: Rubric, single_turn: Transcript
) -> None:
    def escape(request: JudgeRequest) -> Output:
        if request.criterion_names == ("aligned",):
            return "aligned: the judge answered CODE"
        return {"coherent": 20}

    verdict = await Grader(JudgePlan([ScriptedJudge(escape)])).grade(single_turn, em)
    assert verdict.status == Status.NOT_APPLICABLE
    assert verdict.reason == "aligned: the judge answered CODE"
    assert verdict.flagged is None


async def test_missing_shape_is_not_applicable_without_a_call(refusal: Rubric) -> None:
    judge = ScriptedJudge(constant(refusal="full_refusal"))
    only_user = Transcript(messages=(Message(role="user", content="hello?"),))
    verdict = await Grader(JudgePlan([judge])).grade(only_user, refusal)
    assert verdict.status == Status.NOT_APPLICABLE
    assert verdict.reason == "rubric 'refusal' needs assistant_turn: it has no assistant reply"
    assert judge.calls == []


async def test_a_crashing_judge_becomes_a_provider_error(
    refusal: Rubric, single_turn: Transcript
) -> None:
    def broken(request: JudgeRequest) -> Output:
        raise RuntimeError("bug in a judge plugin")

    verdict = await Grader(JudgePlan([ScriptedJudge(broken)])).grade(single_turn, refusal)
    assert verdict.error is not None and verdict.error.kind == ErrorKind.PROVIDER
    assert "bug in a judge plugin" in verdict.error.message


@pytest.mark.parametrize(("policy", "calls"), [("use", 1), ("refresh", 2), ("bypass", 2)])
async def test_cache_policies(
    policy: str, calls: int, refusal: Rubric, single_turn: Transcript
) -> None:
    judge = ScriptedJudge(constant(refusal="full_refusal"))
    cache = MemoryCache()
    await Grader(JudgePlan([judge]), cache).grade(single_turn, refusal)
    again = await Grader(JudgePlan([judge]), cache, policy=policy).grade(  # type: ignore[arg-type]
        single_turn, refusal
    )
    assert len(judge.calls) == calls
    assert again.cached is (policy == "use")
    assert cache.stats().entries == 1


async def test_bypass_stores_nothing(refusal: Rubric, single_turn: Transcript) -> None:
    cache = MemoryCache()
    judge = ScriptedJudge(constant(refusal="full_refusal"))
    await Grader(JudgePlan([judge]), cache, policy=CachePolicy.BYPASS).grade(single_turn, refusal)
    assert cache.stats().entries == 0


async def test_grade_many_gives_one_verdict_per_pair_within_the_concurrency_limit(
    refusal: Rubric, em: Rubric
) -> None:
    in_flight = peak = 0

    class Counting(ScriptedJudge):
        async def judge(self, request: JudgeRequest):  # type: ignore[no-untyped-def]
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await super().judge(request)
            finally:
                in_flight -= 1

    judge = Counting(constant(refusal="full_compliance", aligned=90, coherent=90), delay=0.01)
    transcripts = [Transcript.from_prompt(f"q{i}", f"a{i}", id=f"t{i}") for i in range(40)]
    grader = Grader(JudgePlan([judge]), concurrency=5)

    verdicts = [v async for v in grader.grade_many(iter(transcripts), [refusal, em])]

    assert sorted((v.transcript_id, v.rubric.id) for v in verdicts) == sorted(
        (t.id, r) for t in transcripts for r in ("refusal", "emergent_misalignment")
    )
    assert peak == 5
    assert grader.totals.verdicts == 80 and grader.totals.judge_calls == 120


@pytest.mark.parametrize(
    "plan",
    [
        lambda j: JudgePlan([]),
        lambda j: JudgePlan([j], samples=0),
        lambda j: JudgePlan([j], reducer="median"),  # type: ignore[arg-type]
    ],
)
def test_bad_plans_are_usage_errors(plan) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(JudgeSpecError):
        plan(ScriptedJudge(constant(refusal="full_refusal")))


async def test_single_flight_across_concurrent_callers(
    refusal: Rubric, single_turn: Transcript
) -> None:
    judge = ScriptedJudge(constant(refusal="full_refusal"), delay=0.05)
    grader = Grader(JudgePlan([judge]))
    verdicts = await asyncio.gather(*(grader.grade(single_turn, refusal) for _ in range(10)))
    assert len(judge.calls) == 1
    assert {v.label for v in verdicts} == {"full_refusal"}


async def test_a_broken_cache_costs_no_verdict(refusal: Rubric, single_turn: Transcript) -> None:
    class BrokenCache(MemoryCache):
        async def get(self, key: str) -> None:
            raise OSError("database disk image is malformed")

        async def set(self, key: str, result: object) -> None:
            raise OSError("no space left on device")

    judge = ScriptedJudge(constant(refusal="full_refusal"))
    verdict = await Grader(JudgePlan([judge]), BrokenCache()).grade(single_turn, refusal)
    assert (verdict.status, verdict.label) == (Status.GRADED, "full_refusal")
