"""Durable batch jobs: what a job is, and the contract every job store keeps.

Every (transcript, rubric) pair of a job has a number, ``pair = transcript_index * n_rubrics +
rubric_index``. A verdict is stored once per pair and gets the next *position* in the job's output,
so a client that has read N verdicts resumes with ``cursor=N`` and receives each verdict exactly
once. A runner holds a job under a lease it renews while it works (``judge.jobs.runner``).

A job is taken in before anyone sees it: ``open_intake`` starts one, ``add_transcripts`` stores
its transcripts in batches as a request body is read, and ``commit`` queues it (or ``discard``
drops it, when the body turned out bad: a refused request leaves no job behind). An intake whose
process died on the way is removed by ``prune``, as are finished jobs past their retention.

Two stores keep that contract: ``SqliteJobStore`` (one server; its runner polls the store) and
``RedisJobStore`` (replicas; ``judge worker`` processes take jobs from a queue: see
``judge.jobs.queue``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from judge.cache import CachePolicy
from judge.grouping import count_units
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

    def open_intake(self) -> str:
        """The id of a new job that nobody sees until it is committed."""
        ...

    def add_transcripts(self, job_id: str, start: int, records: Sequence[str]) -> None:
        """Store transcripts (``Transcript`` JSON) of an intake at indices ``start``, ...."""
        ...

    def commit(
        self,
        job_id: str,
        spec: JobSpec,
        total: int,
        *,
        request_hash: str,
        idempotency_key: str | None,
    ) -> tuple[JobRecord, bool]:
        """Queue the job taken in (True); or, if an earlier request made a job with this
        Idempotency-Key, drop this one and return that one (False; ``ConflictError`` if that
        request was a different one)."""
        ...

    def discard(self, job_id: str) -> None:
        """Drop an intake and what it stored."""
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

    def prune(self, finished_before: float, *, intakes_before: float) -> int:
        """Remove the jobs that finished (succeeded, failed, cancelled) before this time (epoch
        seconds) as ``delete`` does, and the intakes silent since ``intakes_before``; how many
        finished jobs went."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def create_job(
    store: JobStore,
    spec: JobSpec,
    transcripts: Sequence[Transcript],
    rubrics: Sequence[Rubric],
    *,
    request_hash: str,
    idempotency_key: str | None,
    batch: int = 1000,
) -> tuple[JobRecord, bool]:
    """A job from transcripts already in memory, in one call (an intake, committed)."""
    job_id = store.open_intake()
    try:
        for start in range(0, len(transcripts), batch):
            chunk = [t.model_dump_json() for t in transcripts[start : start + batch]]
            store.add_transcripts(job_id, start, chunk)
        total = count_units(transcripts, rubrics)
        return store.commit(
            job_id, spec, total, request_hash=request_hash, idempotency_key=idempotency_key
        )
    except BaseException:
        store.discard(job_id)
        raise


class PollingJobStore(JobStore, Protocol):
    """A store that also hands out the oldest unclaimed job (a single server's runner polls it)."""

    def claim(self, owner: str, lease_seconds: float) -> JobRecord | None: ...
