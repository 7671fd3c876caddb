"""Request and response bodies of the HTTP API, named by role (``...Create`` in, ``...Public``
out): shared by the server and its clients, so this module imports neither FastAPI nor Redis."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from judge.agreement import CriterionAgreement
from judge.batch.state import ProviderBatch
from judge.jobs.store import GradeSpec, JobMode, JobRecord, JobSpec, JobState
from judge.reports import Comparison, RateRow, repeated_keys
from judge.selection import alternatives, alternatives_schema
from judge.verdict import Summary, Verdict


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ContentPart(BaseModel):
    """A part of a message's content, as OpenAI sends it: its text is what the judge reads."""

    model_config = ConfigDict(extra="allow")

    text: str


class MessageRecord(BaseModel):
    """A chat message as sent: OpenAI format, tool calls and results kept."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatRecord(BaseModel):
    """A transcript in OpenAI chat format; other top-level fields are kept in metadata."""

    model_config = ConfigDict(extra="allow")

    id: str | int | None = None
    messages: list[MessageRecord] = Field(min_length=1)
    metadata: dict[str, Any] = {}


class PromptRecord(BaseModel):
    """A single-turn transcript; other top-level fields are kept in metadata."""

    model_config = ConfigDict(extra="allow")

    id: str | int | None = None
    prompt: str
    response: str
    system: str | None = None
    metadata: dict[str, Any] = {}


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` references replaced by what they name, so it can stand
    inside another document (OpenAPI's components hold only models, not these)."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


TranscriptRecord = Annotated[
    dict[str, Any],
    WithJsonSchema(inline_schema(TypeAdapter(ChatRecord | PromptRecord).json_schema())),
]
"""A transcript as sent: read by ``judge.transcript_files.parse_record``, whose errors name the
record's index and field; documented as the two record forms."""


class GradeCreate(GradeSpec):
    """A batch to grade: transcript records (chat or prompt/response format) and how to grade."""

    transcripts: list[TranscriptRecord] = Field(min_length=1)


class JobCreate(GradeCreate, JobSpec):
    """A job: a batch to grade, how to grade it, and how to make its calls (``mode``)."""

    def spec(self) -> JobSpec:
        """How to grade, without the transcripts (what a job stores beside them)."""
        return JobSpec.model_validate(self.model_dump(exclude={"transcripts"}))


class ProblemItem(BaseModel):
    """One thing wrong with a request: where, and what."""

    location: str
    message: str


class Problem(BaseModel):
    """Every error the API returns (RFC 9457 problem details, ``application/problem+json``):
    ``detail`` says what to fix; ``errors`` lists each invalid field of a 422."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemItem] | None = None
    checks: dict[str, bool] | None = None


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Rubrics loaded, cache and job store usable."""

    status: Literal["ready"]
    checks: dict[str, bool]


class GradePublic(BaseModel):
    """Verdicts of a synchronous grade, with their summary."""

    verdicts: list[Verdict]
    summary: Summary


class JobPublic(BaseModel):
    """A batch job: its state, progress and cost so far."""

    id: str
    state: JobState
    created_at: float
    updated_at: float
    rubrics: list[str]
    total: int
    summary: Summary
    error: str | None = None
    verdicts_url: str
    mode: JobMode = JobMode.LIVE
    batches: list[ProviderBatch] = Field(
        default=[], description="A batch-mode job's provider batches, as last polled."
    )

    @classmethod
    def of(cls, job: JobRecord) -> JobPublic:
        return cls(
            id=job.id,
            state=job.state,
            mode=job.spec.mode,
            batches=job.batch.public() if job.batch is not None else [],
            created_at=job.created_at,
            updated_at=job.updated_at,
            rubrics=job.rubrics,
            total=job.total,
            summary=job.summary,
            error=job.error,
            verdicts_url=f"/v1/jobs/{job.id}/verdicts",
        )


class RubricSummary(BaseModel):
    """A rubric in the catalogue."""

    id: str
    version: str
    hash: str
    category: str
    description: str
    requires: list[str]
    criteria: list[str]


class RubricPublic(RubricSummary):
    """A rubric in full: labels, scales, decision rule, output schema."""

    definition: dict[str, Any]
    output_schema: dict[str, Any] | None


class JudgePublic(BaseModel):
    """A configured judge profile, without secrets or internal addresses."""

    name: str
    model: str
    temperature: float | None
    max_tokens: int | None
    rpm: float | None
    default: bool


class JudgesPublic(BaseModel):
    """What a request may choose: profiles, cascades, allow-listed models, and the built-in
    judge."""

    profiles: list[JudgePublic]
    cascades: dict[str, list[str]] = {}
    """Named cascades: their stages, cheapest first."""
    allowed_models: list[str]
    offline: str = "offline"


Grouping = Literal["model", "rubric", "tag", "judge"]


def _once_each(by: list[Grouping]) -> list[Grouping]:
    if problem := repeated_keys(by):
        raise ValueError(problem)
    return by


Groupings = Annotated[
    list[Grouping], AfterValidator(_once_each), Field(json_schema_extra={"uniqueItems": True})
]
"""Report grouping keys, each at most once."""


class ReportCreate(_Request):
    """Rates over verdicts: those of a job (``job_id``), or verdicts sent inline, not both."""

    model_config = ConfigDict(
        json_schema_extra=alternatives_schema(("job_id", "verdicts"), required=True)
    )

    job_id: str | None = Field(
        default=None, min_length=1, max_length=64, exclude_if=lambda value: value is None
    )
    verdicts: list[Verdict] | None = Field(default=None, exclude_if=lambda value: value is None)
    by: Groupings = ["model", "rubric"]
    compare: tuple[str, str] | None = Field(
        default=None,
        strict=False,
        description="Two models to compare on shared prompts: [base, tuned].",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        return alternatives(data, ("job_id", "verdicts"), required=True)


class ReportPublic(BaseModel):
    """Flag rates with 95% intervals, paired comparisons, and agreement between judges
    (Krippendorff's alpha per group and criterion, Cohen's kappa between judge models)."""

    rates: list[RateRow]
    comparisons: list[Comparison]
    agreement: list[CriterionAgreement] = []
