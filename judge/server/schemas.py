"""Request and response bodies of the HTTP API, named by role."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from judge.assembly import Reducer
from judge.cache import CachePolicy
from judge.reports import Comparison, RateRow
from judge.verdict import Summary, Verdict


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgeSelection(_Request):
    """Which judge grades: a configured profile, or models from profiles and the allow-list.

    There is deliberately no ``api_base`` or key here: a caller can never aim the server's
    credentials at a URL of its choosing.
    """

    profile: str | None = Field(default=None, description="A configured judge profile.")
    models: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Profile names or allow-listed model strings, graded as an ensemble.",
    )
    samples: int = Field(default=1, ge=1, le=20)
    reducer: Reducer = Reducer.MAJORITY


class JobSpec(_Request):
    """What to grade with: rubric ids, a judge, a cache policy."""

    rubrics: list[str] = Field(min_length=1)
    judge: JudgeSelection = JudgeSelection()
    cache: CachePolicy = CachePolicy.USE


class GradeCreate(JobSpec):
    """A batch to grade: transcript records (chat or prompt/response format) and how to grade."""

    transcripts: list[dict[str, Any]] = Field(min_length=1)


class GradePublic(BaseModel):
    """Verdicts of a synchronous grade, with their summary."""

    verdicts: list[Verdict]
    summary: Summary


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


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
        default=None, description="Two models to compare on shared prompts: [base, tuned]."
    )


class ReportPublic(BaseModel):
    """Flag rates with 95% intervals and paired comparisons."""

    rates: list[RateRow]
    comparisons: list[Comparison]
