"""The judge protocol: one small async interface that every judge implements.

The LLM judge, the built-in offline judge and the scripted test judge are all real
implementations of it. The engine asks a judge for one *call*: one call group of a rubric (all
structured criteria together, or one logprob criterion) for one transcript and sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from judge.rubric import Criterion, Rubric
from judge.transcript import Subject, TranscriptGroup
from judge.verdict import JudgeResult


@dataclass(frozen=True)
class JudgeRequest:
    """What one judge call must decide."""

    rubric: Rubric
    transcript: Subject
    """What the judge is shown: a transcript, or a group in the order ``order`` says."""
    criteria: tuple[Criterion, ...]
    sample: int = 0
    order: tuple[int, ...] = ()
    """For a group shown in other than its canonical order: the canonical index of each member
    shown, in the order shown (empty: the canonical order)."""

    @property
    def criterion_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria)

    @property
    def canonical(self) -> Subject:
        """The subject in its canonical order, for judges that read members by role."""
        if not self.order or not isinstance(self.transcript, TranscriptGroup):
            return self.transcript
        inverse = tuple(sorted(range(len(self.order)), key=self.order.__getitem__))
        return self.transcript.shown_in(inverse)


def call_groups(rubric: Rubric) -> list[tuple[Criterion, ...]]:
    """The calls a rubric needs per judge and sample: structured criteria share one."""
    groups = [rubric.structured_criteria] if rubric.structured_criteria else []
    return groups + [(criterion,) for criterion in rubric.logprob_criteria]


@runtime_checkable
class Judge(Protocol):
    """Something that grades one call group of a rubric.

    ``name`` is the model as resolved (it appears in verdicts and reports). ``identity`` returns
    everything about this judge that changes its output for the request (model, decoding
    parameters, heuristic version); it goes into the cache key, so settings that do not change
    output (timeouts, retries, keys) must stay out. ``judge`` never raises for a failed call: it
    returns a ``JudgeResult`` whose ``error`` names the kind. ``aclose`` releases what the judge
    holds open (connections); its owner calls it.
    """

    @property
    def name(self) -> str: ...

    def identity(self, request: JudgeRequest) -> dict[str, Any]: ...

    async def judge(self, request: JudgeRequest) -> JudgeResult: ...

    async def aclose(self) -> None: ...
