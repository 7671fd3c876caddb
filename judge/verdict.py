"""Verdicts: the contract every client relies on (DESIGN.md, "Verdict").

One ``Verdict`` per (transcript, rubric). It is reduced from one ``JudgeResult`` per judge call:
per judge model, per sample, and per call group of the rubric (all structured criteria share one
call; each logprob criterion has its own). A failure is data: ``status="error"`` with a named kind,
never a label.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from judge.errors import ErrorKind


def _integral(value: Any) -> Any:
    """``7.0`` as ``7``: JSON (and its Schema) call an integral number an integer however it is
    spelled; anything else is left to strict validation (``"7"`` stays an error)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
"""An integer field of an input: strict, but whole floats count."""


class Status(StrEnum):
    """What became of one (transcript, rubric) pair."""

    GRADED = "graded"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"
    INCONSISTENT = "inconsistent"
    """A group graded in both orders whose two results disagree: no label is picked."""


class VerdictError(BaseModel):
    """Why a verdict or a judge call failed."""

    model_config = ConfigDict(frozen=True, strict=True)

    kind: ErrorKind = Field(strict=False)
    message: str


class RubricRef(BaseModel):
    """Which rubric, exactly, produced a verdict."""

    model_config = ConfigDict(frozen=True, strict=True)

    id: str
    version: str
    hash: str


class Evidence(BaseModel):
    """A quote the judge cites: message index (and transcript index, in a group) and exact text."""

    model_config = ConfigDict(frozen=True, strict=True)

    message: Integer
    quote: str
    transcript: Integer | None = None


Scoring = Literal["structured", "logprob", "sampled", "offline"]
"""How a judge call produced its values: a validated JSON reply, a logprob expectation, the
sampled number where the provider gave no logprobs, or the built-in heuristics."""


class JudgeResult(BaseModel):
    """One judge call: what was asked, what came back, what it cost."""

    model_config = ConfigDict(strict=True)

    model: str
    sample: Integer
    criteria: tuple[str, ...] = Field(strict=False)
    scoring: Scoring | None = None
    values: dict[str, str | float] = {}
    reasoning: str | None = None
    details: dict[str, str] = {}
    evidence: list[Evidence] = []
    unscored: str | None = None
    numeric_mass: float | None = None
    probability: float | None = None
    """The judge's own calibrated probability of its answer (the offline refusal classifier)."""
    raw_output: str | None = None
    attempts: Integer = 1
    latency_ms: float = 0.0
    input_tokens: Integer | None = None
    output_tokens: Integer | None = None
    cached_input_tokens: Integer | None = None
    cost_usd: float | None = None
    cached: bool = False
    key: str = ""
    batch: str | None = None
    """The provider batch that answered the call's first request (priced at the batch rate);
    None when it was asked live."""
    error: VerdictError | None = None
    order: list[Integer] = []
    """For a group shown in other than its canonical order: the canonical index of each member
    as shown (evidence cites members by the shown position)."""
    declined: list[JudgeResult] = []
    """Judges that declined to grade this call (``judge_refused``: a refusal or a content
    filter) before this result's judge, a fallback, answered; their cost counts."""


class Cascade(BaseModel):
    """Which stage of a cascade of judges decided a verdict, and why."""

    model_config = ConfigDict(strict=True)

    stage: Integer
    """0: the first judge's verdict stood."""
    judges: list[str]
    """The deciding stage's judges."""
    reason: str
    """Why each stage before it escalated, and why this one stood."""
    escalated: list[JudgeResult] = []
    """The results of the stages that escalated (their cost counts in the verdict's)."""


class Verdict(BaseModel):
    """The grade of one transcript against one rubric, with its provenance.

    Its models are strict (a boolean is ``true``/``false``, never ``0``): verdicts come back in
    as input to reports, and a lenient reading would count what it should refuse.
    """

    model_config = ConfigDict(strict=True)

    transcript_id: str
    rubric: RubricRef
    status: Status = Field(strict=False)
    label: str | None = None
    labels: dict[str, str] = {}
    score: float | None = None
    scores: dict[str, float] = {}
    flagged: bool | None = None
    confidence: float | None = None
    confidence_source: Literal["agreement", "logprob_mass", "probability"] | None = None
    derived: dict[str, float] = {}
    explanation: str | None = None
    details: dict[str, str] = {}
    evidence: list[Evidence] = []
    evidence_dropped: Integer = 0
    reason: str | None = None
    members: list[str] = []
    orders: list[list[Integer]] = []
    """For a group: the orders its members were shown in (indices into ``members``); two when
    graded in both orders."""
    judges: list[JudgeResult] = []
    cascade: Cascade | None = None
    error: VerdictError | None = None
    cached: bool = False
    key: str | None = None
    metadata: dict[str, Any] = {}

    @property
    def calls(self) -> list[JudgeResult]:
        """Every judge result this verdict took: the deciding judges', those of the cascade
        stages that escalated, and the judges that declined before a fallback answered."""
        results = [*(self.cascade.escalated if self.cascade else []), *self.judges]
        return [call for result in results for call in (*result.declined, result)]

    @property
    def cost_usd(self) -> float:
        """What the calls made for this verdict cost (cache hits cost nothing)."""
        return sum(j.cost_usd or 0.0 for j in self.calls if not j.cached)

    @property
    def tokens(self) -> int:
        """Tokens spent by the calls made for this verdict (cache hits spend none)."""
        return sum(
            (j.input_tokens or 0) + (j.output_tokens or 0) for j in self.calls if not j.cached
        )


class Summary(BaseModel):
    """Counts over a set of verdicts: by status, errors by kind, calls made, cost."""

    model_config = ConfigDict(strict=True)

    verdicts: int = 0
    graded: int = 0
    flagged: int = 0
    not_applicable: int = 0
    inconsistent: int = 0
    """Groups graded in both orders whose results disagreed."""
    errors: int = 0
    errors_by_kind: dict[str, int] = {}
    judge_calls: int = 0
    cache_hits: int = 0
    tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    """Calls that spent tokens on a model with no known price: their cost is not in
    ``cost_usd``."""
    escalated: int = 0
    """Verdicts a cascade's first stage did not decide."""
    fallbacks: int = 0
    """Judge results given by a fallback judge after another declined."""

    def add(self, verdict: Verdict) -> None:
        self.verdicts += 1
        if verdict.status == Status.GRADED:
            self.graded += 1
            self.flagged += bool(verdict.flagged)
        elif verdict.status == Status.NOT_APPLICABLE:
            self.not_applicable += 1
        elif verdict.status == Status.INCONSISTENT:
            self.inconsistent += 1
        else:
            self.errors += 1
            kind = verdict.error.kind.value if verdict.error else "unknown"
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        calls = verdict.calls
        self.judge_calls += sum(1 for j in calls if not j.cached and j.attempts)
        self.cache_hits += sum(1 for j in calls if j.cached)
        self.cost_usd += verdict.cost_usd
        self.unpriced_calls += sum(
            1
            for j in calls
            if not j.cached and j.cost_usd is None and (j.input_tokens or j.output_tokens)
        )
        self.tokens += verdict.tokens
        self.cached_input_tokens += sum(j.cached_input_tokens or 0 for j in calls if not j.cached)
        self.escalated += bool(verdict.cascade and verdict.cascade.stage)
        self.fallbacks += sum(1 for j in calls if j.declined)
