"""Judge plans: which judges grade, with how many samples, reduced how, in which order a group's
transcripts are shown, and who to ask when they are not confident (a cascade) or decline (a
fallback); and the calls a plan makes for one (transcript or group, rubric), with their cache
keys, listed without making them (a dry run counts them; the engine makes them)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from judge.assembly import Reducer
from judge.cache import cache_key
from judge.errors import JudgeSpecError
from judge.judges.base import Judge, JudgeRequest, call_groups
from judge.rubric import Rubric
from judge.transcript import Subject, TranscriptGroup


class Order(StrEnum):
    """In which order a paired or group rubric's judge sees the transcripts: ``random`` (one
    order a call, drawn from the group's content, the sample and the plan's seed, so a rerun
    shows the same one; recorded in the verdict), ``both`` (the canonical order and its reverse:
    two calls, and a verdict that says when they disagree) or ``fixed`` (the canonical order:
    by ``metadata.variant``, then content)."""

    RANDOM = "random"
    BOTH = "both"
    FIXED = "fixed"


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
    order: Order = Order.RANDOM
    seed: int = 0
    """Seeds the random order (with each group's content and the sample)."""

    @classmethod
    def cascade(
        cls,
        stages: Sequence[Judge],
        samples: int = 1,
        fallbacks: Mapping[str, Sequence[Judge]] | None = None,
        order: Order = Order.RANDOM,
    ) -> JudgePlan:
        """One judge a stage, cheapest first: each decides what it is confident about."""
        if not stages:
            raise JudgeSpecError("a cascade needs at least one judge")
        plan = None
        for judge in reversed(stages):
            plan = cls(
                [judge], samples=samples, escalation=plan, fallbacks=fallbacks or {}, order=order
            )
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
        for name, kind in (("reducer", Reducer), ("order", Order)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                choices = ", ".join(kind)
                raise JudgeSpecError(
                    f"unknown {name} '{getattr(self, name)}' (choose {choices})"
                ) from None

    def calls(self, subject: Subject, rubric: Rubric) -> list[PlannedCall]:
        """One call per judge, sample, order (two with ``both``) and call group of the rubric,
        in that order."""
        calls = []
        for judge in self.judges:
            for sample in range(self.samples):
                for order in self.orders(subject, sample):
                    shown = _shown(subject, order)
                    for group in call_groups(rubric):
                        request = JudgeRequest(rubric, shown, group, sample, order)
                        calls.append(PlannedCall.of(judge, request, subject))
        return calls

    def orders(self, subject: Subject, sample: int) -> list[tuple[int, ...]]:
        """The orders a group is shown in for one sample (``()``: the canonical order)."""
        if not isinstance(subject, TranscriptGroup) or len(subject.members) < 2:
            return [()]
        canonical = tuple(range(len(subject.members)))
        if self.order == Order.FIXED:
            return [()]
        if self.order == Order.BOTH:
            return [(), canonical[::-1]]
        seed = hashlib.sha256(f"{subject.content_hash}|{sample}|{self.seed}".encode()).digest()
        shuffled = list(canonical)
        random.Random(seed).shuffle(shuffled)
        return [() if tuple(shuffled) == canonical else tuple(shuffled)]

    def fallback_calls(self, call: PlannedCall) -> list[PlannedCall]:
        """The same call on each fallback of its judge, in order."""
        chain = self.fallbacks.get(call.judge.name, ())
        return [PlannedCall.of(judge, call.request, call.subject) for judge in chain]


@dataclass(frozen=True)
class PlannedCall:
    """One judge call a plan makes: who is asked, what, and the call's cache identity."""

    judge: Judge
    request: JudgeRequest
    key: str
    subject: Subject
    """The transcript or group in its canonical order (the request's may be reordered)."""

    @classmethod
    def of(cls, judge: Judge, request: JudgeRequest, subject: Subject) -> PlannedCall:
        """The call with its cache identity (the canonical subject's, and the order shown)."""
        return cls(judge, request, _key(judge, request, subject), subject)


def _shown(subject: Subject, order: tuple[int, ...]) -> Subject:
    if order and isinstance(subject, TranscriptGroup):
        return subject.shown_in(order)
    return subject


def _key(judge: Judge, request: JudgeRequest, subject: Subject) -> str:
    return cache_key(
        transcript_hash=subject.content_hash,
        rubric_hash=request.rubric.content_hash,
        criteria=request.criterion_names,
        judge=judge.identity(request),
        sample=request.sample,
        order=request.order,
    )
