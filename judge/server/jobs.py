"""Durable batch jobs: the store contract, and a runner that leases jobs and grades them.

Every (transcript, rubric) pair of a job has a number, ``pair = transcript_index * n_rubrics +
rubric_index``. A verdict is stored once per pair and gets the next *position* in the job's output,
so a client that has read N verdicts resumes with ``cursor=N`` and receives each verdict exactly
once. A runner holds a job under a lease it renews while it works; when its process dies, the lease
runs out and another runner takes the job over, grades only the pairs without a stored verdict,
and finds every judge call that had already finished in the verdict cache.

Two stores keep that contract: ``SqliteJobStore`` (one server; its runner polls the store) and
``RedisJobStore`` (replicas; ``judge worker`` processes take jobs from a queue: see
``judge.server.queue``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from judge.errors import JudgeError
from judge.grading import Grader, Summary
from judge.grouping import Unit, group_units
from judge.rubric import Rubric, RubricLibrary
from judge.server.judging import GraderPool
from judge.server.schemas import GradeCreate, JobPublic, JobSpec, JobState
from judge.transcript import Transcript
from judge.verdict import Verdict

logger = logging.getLogger(__name__)

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


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

    def public(self) -> JobPublic:
        return JobPublic(
            id=self.id,
            state=self.state,
            created_at=self.created_at,
            updated_at=self.updated_at,
            rubrics=self.rubrics,
            total=self.total,
            summary=self.summary,
            error=self.error,
            verdicts_url=f"/v1/jobs/{self.id}/verdicts",
        )


class JobStore(Protocol):
    """Where jobs, their transcripts and their verdicts live. Methods are synchronous (call them
    in a thread); every write that depends on a lease checks it in the same transaction."""

    kind: str

    def create(
        self,
        spec: GradeCreate,
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

    def cancel(self, job_id: str) -> JobRecord: ...

    def verdict_lines(self, job_id: str, cursor: int, limit: int) -> list[str]:
        """Stored verdicts from position ``cursor`` on, as JSON text, in output order."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class PollingJobStore(JobStore, Protocol):
    """A store that also hands out the oldest unclaimed job (a single server's runner polls it)."""

    def claim(self, owner: str, lease_seconds: float) -> JobRecord | None: ...


class JobRunner:
    """Leases jobs and grades their missing pairs: polling a single server's store
    (``run_forever``), or one job at a time as a queue hands them out (``run_job``)."""

    def __init__(
        self,
        store: JobStore,
        pool: GraderPool,
        library: RubricLibrary,
        *,
        lease_seconds: float,
        batch_size: int = 200,
        chunk_size: int = 1000,
    ):
        self.store = store
        self.pool = pool
        self.library = library
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.owner = uuid.uuid4().hex
        self.progress = asyncio.Event()
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """A job was submitted: look for work now rather than at the next poll."""
        self._wakeup.set()

    async def run_forever(self, store: PollingJobStore, poll_seconds: float = 0.5) -> None:
        """Grade every job of this store, oldest first, until cancelled."""
        while True:
            job = await asyncio.to_thread(store.claim, self.owner, self.lease_seconds)
            if job is None:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), poll_seconds)
                continue
            await self._run_guarded(job)

    async def run_job(self, job_id: str) -> JobState:
        """Grade one job to its end. If another runner holds it (a queue delivered it twice),
        wait: when that runner dies, its lease runs out and this one takes over."""
        while True:
            job = await asyncio.to_thread(
                self.store.claim_job, job_id, self.owner, self.lease_seconds
            )
            if job is not None:
                await self._run_guarded(job)
            current = await asyncio.to_thread(self.store.get, job_id)
            if current.state in TERMINAL:
                return current.state
            await asyncio.sleep(self.lease_seconds / 2)

    async def _run_guarded(self, job: JobRecord) -> None:
        try:
            await self.run(job)
        except Exception as exc:  # record it on the job; never kill the runner
            logger.exception("job %s failed", job.id)
            await asyncio.to_thread(self.store.finish, job.id, self.owner, "failed", str(exc))
        self._notify()

    def _notify(self) -> None:
        self.progress.set()
        self.progress = asyncio.Event()

    async def run(self, job: JobRecord) -> None:
        try:
            rubrics = [self.library.get(rubric_id) for rubric_id in job.rubrics]
            grader = self.pool.grader(job.spec.judge, job.spec.cache)
        except JudgeError as exc:  # the server's configuration changed under a queued job
            await asyncio.to_thread(self.store.finish, job.id, self.owner, "failed", str(exc))
            return
        done = await asyncio.to_thread(self.store.finished_pairs, job.id)
        singles = [r for r in rubrics if not r.is_group]
        groupwise = [r for r in rubrics if r.is_group]
        buffer: list[tuple[int, Verdict]] = []
        start = count = 0
        while singles:  # transcripts in chunks, so memory stays flat for any job size
            chunk = await asyncio.to_thread(self.store.transcripts, job.id, start, self.chunk_size)
            if not chunk:
                break
            start = count = chunk[-1][0] + 1
            units: Iterable[Unit] = (
                (index * len(singles) + r, transcript, rubric)
                for index, transcript in chunk
                for r, rubric in enumerate(singles)
            )
            if not await self._grade(job.id, grader, units, done, buffer):
                return
        if groupwise:  # groups may span chunks: these need every transcript at once
            everything = await asyncio.to_thread(self.store.transcripts, job.id, 0, 2**62)
            count = len(everything)
            units = group_units([t for _, t in everything], groupwise, offset=count * len(singles))
            if not await self._grade(job.id, grader, units, done, buffer):
                return
        if buffer and not await self._flush(job.id, buffer):
            return
        await asyncio.to_thread(self.store.finish, job.id, self.owner, "succeeded")

    async def _grade(
        self,
        job_id: str,
        grader: Grader,
        units: Iterable[Unit],
        done: set[int],
        buffer: list[tuple[int, Verdict]],
    ) -> bool:
        """Grade the units not yet stored; False when the job stopped being ours."""
        todo = (unit for unit in units if unit[0] not in done)
        flushed = time.monotonic()
        verdicts = grader.grade_pairs(todo)
        async with contextlib.aclosing(verdicts):
            async for number, verdict in verdicts:
                buffer.append((number, verdict))
                if len(buffer) >= self.batch_size or time.monotonic() - flushed > 0.25:
                    if not await self._flush(job_id, buffer):
                        return False  # cancelled, or taken over: in-flight units are cancelled
                    flushed = time.monotonic()
        return True

    async def _flush(self, job_id: str, buffer: list[tuple[int, Verdict]]) -> bool:
        """Store the buffered verdicts and renew the lease; False if the job is no longer ours."""
        stored = await asyncio.to_thread(self.store.add_verdicts, job_id, self.owner, buffer[:])
        buffer.clear()
        self._notify()
        if not stored:
            return False
        return await asyncio.to_thread(self.store.renew, job_id, self.owner, self.lease_seconds)
