"""Request and response bodies of the HTTP API, named by role (``...Create`` in, ``...Public``
out): shared by the server and its clients, so this module imports neither FastAPI nor Redis."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from judge.jobs.store import JobRecord, JobSpec, JobState
from judge.reports import Comparison, RateRow
from judge.verdict import Summary, Verdict


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GradeCreate(JobSpec):
    """A batch to grade: transcript records (chat or prompt/response format) and how to grade."""

    transcripts: list[dict[str, Any]] = Field(min_length=1)

    def spec(self) -> JobSpec:
        """How to grade, without the transcripts (what a job stores beside them)."""
        return JobSpec.model_validate(self.model_dump(exclude={"transcripts"}))


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

    @classmethod
    def of(cls, job: JobRecord) -> JobPublic:
        return cls(
            id=job.id,
            state=job.state,
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
    """What a request may choose: profiles, allow-listed models, and the built-in judge."""

    profiles: list[JudgePublic]
    allowed_models: list[str]
    offline: str = "offline"


class ReportCreate(_Request):
    """Rates over verdicts: those of a job, or verdicts sent inline."""

    job_id: str | None = None
    verdicts: list[Verdict] | None = None
    by: list[str] = ["model", "rubric"]
    compare: tuple[str, str] | None = Field(
        default=None,
        strict=False,
        description="Two models to compare on shared prompts: [base, tuned].",
    )


class ReportPublic(BaseModel):
    """Flag rates with 95% intervals and paired comparisons."""

    rates: list[RateRow]
    comparisons: list[Comparison]
