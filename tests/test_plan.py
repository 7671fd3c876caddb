"""Judge plans: the calls a plan makes for one pair, each with its cache key.

The rule: one call per judge, sample and call group, in that order, and each call's key is
``cache_key`` of exactly what that call decides (transcript, rubric, criteria, judge identity,
sample), so two calls share a key only when they would get the same answer.
"""

from __future__ import annotations

import pytest

from judge.assembly import Reducer
from judge.cache import cache_key
from judge.errors import JudgeSpecError
from judge.judges.llm import LLMJudge
from judge.judges.offline import OfflineJudge
from judge.plan import JudgePlan
from judge.rubric import Rubric
from judge.transcript import Transcript


def test_one_call_per_judge_sample_and_call_group_in_that_order(
    em: Rubric, single_turn: Transcript
) -> None:
    first, second = LLMJudge("openai/m", temperature=0.5), OfflineJudge()
    calls = JudgePlan([first, second], samples=2).calls(single_turn, em)
    order = [(c.judge, c.request.sample, c.request.criterion_names) for c in calls]
    assert order == [
        (judge, sample, (name,))
        for judge in (first, second)
        for sample in (0, 1)
        for name in ("aligned", "coherent")
    ]
    for call in calls:
        assert call.request.rubric is em and call.request.transcript is single_turn
        assert call.key == cache_key(
            transcript_hash=single_turn.content_hash,
            rubric_hash=em.content_hash,
            criteria=call.request.criterion_names,
            judge=call.judge.identity(call.request),
            sample=call.request.sample,
        )
    assert len({call.key for call in calls}) == len(calls)


def test_structured_criteria_share_one_call(refusal: Rubric, single_turn: Transcript) -> None:
    (call,) = JudgePlan([OfflineJudge()]).calls(single_turn, refusal)
    assert call.request.criteria == refusal.structured_criteria
    assert call.request.sample == 0


def test_a_plan_takes_a_reducer_by_name() -> None:
    plan = JudgePlan([OfflineJudge()], reducer="any")  # type: ignore[arg-type]
    assert plan.reducer is Reducer.ANY
    assert (JudgePlan([OfflineJudge()]).samples, JudgePlan([OfflineJudge()]).reducer) == (
        1,
        Reducer.MAJORITY,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"judges": []}, "^a judge plan needs at least one judge$"),
        ({"samples": 0}, "^samples must be at least 1, not 0$"),
        ({"reducer": "median"}, r"^unknown reducer 'median' \(choose majority, any, all\)$"),
    ],
)
def test_a_plan_that_cannot_run_says_why(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(JudgeSpecError, match=message):
        JudgePlan(**{"judges": [OfflineJudge()], **arguments})  # type: ignore[arg-type]


def test_one_sample_is_enough() -> None:
    assert JudgePlan([OfflineJudge()], samples=1).samples == 1
