"""Durable batch jobs: what a job is, and the contract every job store keeps.

Every (transcript, rubric) pair of a job has a number, ``pair = transcript_index * n_rubrics +
rubric_index``. A verdict is stored once per pair and gets the next *position* in the job's output,
so a client that has read N verdicts resumes with ``cursor=N`` and receives each verdict exactly
once. A runner holds a job under a lease it renews while it works (``judge.jobs.runner``).

Two stores keep that contract: ``SqliteJobStore`` (one server; its runner polls the store) and
``RedisJobStore`` (replicas; ``judge worker`` processes take jobs from a queue: see
``judge.jobs.queue``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from judge.cache import CachePolicy
from judge.rubric import Rubric
from judge.selection import JudgeSelection
from judge.transcript import Transcript
from judge.verdict import Summary, Verdict


class JobSpec(BaseModel):
    """What to grade with: rubric ids, a judge, a cache policy (what a job stores beside its
    transcripts)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rubrics: list[str] = Field(min_length=1)
    judge: JudgeSelection = JudgeSelection()
    cache: CachePolicy = Field(default=CachePolicy.USE, strict=False)
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        exclude_if=lambda value: value is None,
        description="Spend at most this on judge calls (the judges' profiles may cap it lower): "
        "past it, the remaining pairs get error(budget) and the job still succeeds.",
    )


class JobState(StrEnum):
    """Where a job is: waiting, being graded, or finished one of three ways."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
"""States a job never leaves."""


@dataclass(frozen=True)
class JobRecord:
    """A job row."""

    id: str
    state: JobState
    spec: JobSpec
    rubrics: list[str]
    total: int
    summary: Summary
    error: str | None
    created_at: float
    updated_at: float


class JobStore(Protocol):
    """Where jobs, their transcripts and their verdicts live. Methods are synchronous (call them
    in a thread); every write that depends on a lease checks it in the same transaction."""

    outages: tuple[type[Exception], ...]
    """Errors that mean the store is unreachable for now: a job they interrupt is left as it is
    (to be resumed), not failed."""

    def create(
        self,
        spec: JobSpec,
        transcripts: list[Transcript],
        rubrics: list[Rubric],
        *,
        request_hash: str,
        idempotency_key: str | None,
    ) -> tuple[JobRecord, bool]:
        """Store a new job (True), or return the job an earlier request with this key made."""
        ...

    def get(self, job_id: str) -> JobRecord: ...

    def claim_job(self, job_id: str, owner: str, lease_seconds: float) -> JobRecord | None:
        """Lease this job, unless it is finished or another runner's lease is still running."""
        ...

    def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool: ...

    def finished_pairs(self, job_id: str) -> set[int]: ...

    def transcripts(self, job_id: str, start: int, limit: int) -> list[tuple[int, Transcript]]: ...

    def add_verdicts(self, job_id: str, owner: str, verdicts: list[tuple[int, Verdict]]) -> bool:
        """Store verdicts (each pair once) and count them; False, storing nothing, when this
        runner no longer holds the job."""
        ...

    def finish(
        self, job_id: str, owner: str, state: JobState, error: str | None = None
    ) -> None: ...

    def cancel(self, job_id: str) -> JobRecord:
        """Stop the job (a finished one stays as it is); its stored verdicts stay readable."""
        ...

    def delete(self, job_id: str) -> None:
        """Remove the job, its transcripts, its verdicts and its Idempotency-Key; a runner that
        held it stores nothing more (``NotFoundError`` if there is no such job)."""
        ...

    def verdict_lines(self, job_id: str, cursor: int, limit: int) -> list[str]:
        """Stored verdicts from position ``cursor`` on, as JSON text, in output order."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class PollingJobStore(JobStore, Protocol):
    """A store that also hands out the oldest unclaimed job (a single server's runner polls it)."""

    def claim(self, owner: str, lease_seconds: float) -> JobRecord | None: ...
