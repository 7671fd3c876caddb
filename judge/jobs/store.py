"""Durable batch jobs: what a job is, and the contract every job store keeps.

Every (transcript, rubric) pair of a job has a number, ``pair = transcript_index * n_rubrics +
rubric_index``. A verdict is stored once per pair and gets the next *position* in the job's output,
so a client that has read N verdicts resumes with ``cursor=N`` and receives each verdict exactly
once.

A job's work is cut into *parts* (``JobShape``): its transcripts in parts of ``PART_SIZE`` for the
single rubrics, and one more part for the group rubrics, if any. A runner leases one part at a
time and renews its leases while it works (``judge.jobs.runner``), so several runners, on several
workers, grade one job together; when a runner dies, its parts' leases run out and another takes
them over, grading only the pairs without a stored verdict. The job succeeds when its last part
is done.

A job is taken in before anyone sees it: ``open_intake`` starts one, ``add_transcripts`` stores
its transcripts in batches as a request body is read, and ``commit`` queues it (or ``discard``
drops it, when the body turned out bad: a refused request leaves no job behind). An intake whose
process died on the way is removed by ``prune``, as are finished jobs past their retention.

Two stores keep that contract: ``SqliteJobStore`` (one server; its runner polls the store) and
``RedisJobStore`` (replicas; ``judge worker`` processes take jobs from a queue: see
``judge.jobs.queue``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from judge.batch.state import BatchState
from judge.cache import CachePolicy
from judge.grouping import count_units
from judge.rubric import Rubric
from judge.selection import JudgeSelection
from judge.transcript import Transcript
from judge.verdict import Summary, Verdict


class GradeSpec(BaseModel):
    """What to grade with: rubric ids, a judge, a cache policy."""

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


class JobMode(StrEnum):
    """How a job's judge calls are made: ``live``, each as it comes; or ``batch``, the uncached
    ones as provider batches first (half the price, within 24 h), then graded from the cache."""

    LIVE = "live"
    BATCH = "batch"


class JobSpec(GradeSpec):
    """What a job stores beside its transcripts: how to grade, and how to make the calls."""

    mode: JobMode = Field(
        default=JobMode.LIVE,
        strict=False,
        description="live: call the judges now; batch: send the uncached calls as provider "
        "batches (OpenAI's Batch API, half the price, within 24 h) and grade from their results; "
        "what a batch does not answer is graded live.",
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


PART_SIZE = 200
"""Transcripts in a part of a job: small enough that workers share a job of a few thousand
evenly (the last part is the tail one worker grades alone), large enough that leasing one costs
little beside grading it (a transaction per 200 transcripts)."""


@dataclass(frozen=True)
class JobShape:
    """How many verdicts a job yields (``total``) and how its work is cut into ``parts``: the
    single rubrics' units in parts of ``part_size`` transcripts, then one part for the group
    rubrics' (a group may hold any transcripts). ``transcripts`` is None for a job stored before
    jobs had parts: it is one part, all of it."""

    total: int
    transcripts: int | None = None
    parts: int = 1
    part_size: int = PART_SIZE

    @classmethod
    def of(
        cls, total: int, transcripts: int, rubrics: Sequence[Rubric], part_size: int = PART_SIZE
    ) -> JobShape:
        singles = math.ceil(transcripts / part_size) if any(not r.is_group for r in rubrics) else 0
        groups = 1 if any(r.is_group for r in rubrics) else 0
        return cls(total, transcripts, max(1, singles + groups), part_size)


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
    shape: JobShape
    """How its work is cut into parts."""
    batch: BatchState | None = None
    """A batch-mode job's provider batches (``JobStore.set_batch``)."""


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
        shape: JobShape,
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

    def claim_part(
        self, job_id: str, owner: str, lease_seconds: float
    ) -> tuple[JobRecord, int] | None:
        """Lease the first part of this job that is neither done nor held (by any owner, this
        one too) under a lease still running; the job becomes running. None when the job is
        finished or no part is free."""
        ...

    def release(self, job_id: str, owner: str) -> None:
        """Give up this owner's unfinished parts, so that another runner takes them at once."""
        ...

    def finished_pairs(self, job_id: str, start: int, stop: int) -> set[int]:
        """The pairs in ``range(start, stop)`` that have a stored verdict."""
        ...

    def transcripts(self, job_id: str, start: int, limit: int) -> list[tuple[int, Transcript]]: ...

    def add_verdicts(
        self,
        job_id: str,
        owner: str,
        part: int,
        verdicts: list[tuple[int, Verdict]],
        lease_seconds: float,
    ) -> bool:
        """Store verdicts of one part (each pair once), count them, and extend the leases of
        every part this owner holds (a runner renews them as it stores); False, storing nothing,
        when the job is not running (cancelled, failed, deleted) or this owner no longer holds
        that part (its lease ran out and another runner took it)."""
        ...

    def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend the leases of the parts this owner holds while it works without storing
        verdicts (a batch-mode job waiting on its batches); False when the job stopped running
        or the owner holds none of its parts any more."""
        ...

    def finish_part(self, job_id: str, owner: str, part: int) -> JobState:
        """Mark a part this owner holds done (all its verdicts are stored); the last part done
        makes the job succeed. The job's state after."""
        ...

    def finish(self, job_id: str, owner: str, state: JobState, error: str | None = None) -> None:
        """End a running job that this owner holds a part of (a failure, with its error)."""
        ...

    def set_batch(self, job_id: str, owner: str, batch: BatchState) -> bool:
        """Keep a batch-mode job's provider batches with it, so a runner that takes the job
        over polls them instead of submitting again; False, storing nothing, when this owner
        holds no part of the job any more (a batch-mode job is one part)."""
        ...

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
    part_size: int = PART_SIZE,
) -> tuple[JobRecord, bool]:
    """A job from transcripts already in memory, in one call (an intake, committed)."""
    job_id = store.open_intake()
    try:
        for start in range(0, len(transcripts), batch):
            chunk = [t.model_dump_json() for t in transcripts[start : start + batch]]
            store.add_transcripts(job_id, start, chunk)
        total = count_units(transcripts, rubrics)
        shape = JobShape.of(total, len(transcripts), rubrics, part_size)
        return store.commit(
            job_id, spec, shape, request_hash=request_hash, idempotency_key=idempotency_key
        )
    except BaseException:
        store.discard(job_id)
        raise


class PollingJobStore(JobStore, Protocol):
    """A store that also hands out free parts of any job (a single server's runner, and a
    worker's idle capacity, poll it)."""

    def claim(
        self,
        owner: str,
        lease_seconds: float,
        *,
        started_only: bool = False,
        skip: Collection[str] = (),
    ) -> tuple[JobRecord, int] | None:
        """Lease a free part of the oldest unfinished job (``started_only``: of a job already
        being graded; never of a job in ``skip``)."""
        ...
