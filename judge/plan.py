"""Judge plans: which judges grade, with how many samples, reduced how, and who to ask when they
are not confident (a cascade); and the calls a plan makes for one (transcript or group, rubric),
with their cache keys, listed without making them (a dry run counts them; the engine makes
them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from judge.assembly import Reducer
from judge.cache import cache_key
from judge.errors import JudgeSpecError
from judge.judges.base import Judge, JudgeRequest, call_groups
from judge.rubric import Rubric
from judge.transcript import Subject


@dataclass(frozen=True)
class JudgePlan:
    """Which judges grade, how many samples each, and how their results combine."""

    judges: Sequence[Judge]
    samples: int = 1
    reducer: Reducer = Reducer.MAJORITY
    escalation: JudgePlan | None = None
    """The next stage of a cascade: it grades what this plan's verdict is not confident about
    (by the rubric's ``cascade`` threshold for this plan's judge)."""
    fallbacks: Mapping[str, Sequence[Judge]] = field(default_factory=dict)
    """By judge name, the judges to ask, in order, when it declines to grade a call."""

    @classmethod
    def cascade(
        cls,
        stages: Sequence[Judge],
        samples: int = 1,
        fallbacks: Mapping[str, Sequence[Judge]] | None = None,
    ) -> JudgePlan:
        """One judge a stage, cheapest first: each decides what it is confident about."""
        if not stages:
            raise JudgeSpecError("a cascade needs at least one judge")
        plan = None
        for judge in reversed(stages):
            plan = cls([judge], samples=samples, escalation=plan, fallbacks=fallbacks or {})
        assert plan is not None
        return plan

    @property
    def stages(self) -> list[JudgePlan]:
        """This plan and every plan it escalates to, in order."""
        plans: list[JudgePlan] = [self]
        while plans[-1].escalation is not None:
            plans.append(plans[-1].escalation)
        return plans

    @property
    def all_judges(self) -> list[Judge]:
        """Every judge of every stage, and their fallbacks, each once."""
        judges = [j for stage in self.stages for j in stage.judges]
        fallbacks = [
            f for stage in self.stages for chain in stage.fallbacks.values() for f in chain
        ]
        return list(dict.fromkeys([*judges, *fallbacks]))

    def threshold(self, rubric: Rubric) -> float | None:
        """The confidence at which this stage's verdict stands rather than escalate (None: it
        always escalates): the rubric's threshold for its judge, for a single-judge stage."""
        if len(self.judges) != 1:
            return None
        return rubric.cascade.get(self.judges[0].name)

    def __post_init__(self) -> None:
        if not self.judges:
            raise JudgeSpecError("a judge plan needs at least one judge")
        if self.samples < 1:
            raise JudgeSpecError(f"samples must be at least 1, not {self.samples}")
        try:
            object.__setattr__(self, "reducer", Reducer(self.reducer))
        except ValueError:
            choices = ", ".join(Reducer)
            raise JudgeSpecError(f"unknown reducer '{self.reducer}' (choose {choices})") from None

    def calls(self, subject: Subject, rubric: Rubric) -> list[PlannedCall]:
        """One call per judge, sample and call group of the rubric, in that order."""
        requests = [
            (judge, JudgeRequest(rubric, subject, group, sample))
            for judge in self.judges
            for sample in range(self.samples)
            for group in call_groups(rubric)
        ]
        return [PlannedCall(judge, request, _key(judge, request)) for judge, request in requests]

    def fallback_calls(self, call: PlannedCall) -> list[PlannedCall]:
        """The same call on each fallback of its judge, in order."""
        chain = self.fallbacks.get(call.judge.name, ())
        return [PlannedCall(judge, call.request, _key(judge, call.request)) for judge in chain]


@dataclass(frozen=True)
class PlannedCall:
    """One judge call a plan makes: who is asked, what, and the call's cache identity."""

    judge: Judge
    request: JudgeRequest
    key: str


def _key(judge: Judge, request: JudgeRequest) -> str:
    return cache_key(
        transcript_hash=request.transcript.content_hash,
        rubric_hash=request.rubric.content_hash,
        criteria=request.criterion_names,
        judge=judge.identity(request),
        sample=request.sample,
    )
