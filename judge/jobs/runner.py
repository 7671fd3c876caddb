"""The job runner: leases jobs and grades the pairs without a stored verdict.

A runner holds a job under a lease it renews while it works; when its process dies, the lease runs
out and another runner takes the job over, grades only the pairs without a stored verdict, and
finds every judge call that had already finished in the verdict cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable

from judge.budget import Budget
from judge.errors import JudgeError
from judge.grading import Grader
from judge.grouping import Unit, group_units
from judge.jobs.store import TERMINAL, JobRecord, JobState, JobStore, PollingJobStore
from judge.rubric import Rubric, RubricLibrary
from judge.selection import GraderPool
from judge.verdict import Verdict

logger = logging.getLogger(__name__)


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
            try:
                job = await asyncio.to_thread(store.claim, self.owner, self.lease_seconds)
                if job is not None:
                    await self._run_guarded(job)
                    continue
            except store.outages:
                logger.exception("the job store is unavailable; trying again")
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), poll_seconds)

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
        except self.store.outages:
            raise  # not the job's fault: it stays running under a lease that runs out
        except Exception as exc:  # record it on the job; never kill the runner
            logger.exception("job %s failed", job.id)
            await asyncio.to_thread(
                self.store.finish, job.id, self.owner, JobState.FAILED, str(exc)
            )
        self._notify()

    def _notify(self) -> None:
        self.progress.set()
        self.progress = asyncio.Event()

    async def run(self, job: JobRecord) -> None:
        try:
            rubrics = [self.library.get(rubric_id) for rubric_id in job.rubrics]
            grader = self.pool.grader(job.spec.judge, job.spec.cache)
            # what the job paid before a restart counts against its budget
            budget = self.pool.budget(job.spec.judge, job.spec.max_cost_usd, job.summary.cost_usd)
        except JudgeError as exc:  # the server's configuration changed under a queued job
            await asyncio.to_thread(
                self.store.finish, job.id, self.owner, JobState.FAILED, str(exc)
            )
            return
        done = await asyncio.to_thread(self.store.finished_pairs, job.id)
        singles = [r for r in rubrics if not r.is_group]
        groupwise = [r for r in rubrics if r.is_group]
        writer = _VerdictWriter(self, job.id)
        units = self._units(job.id, singles, done)
        if singles and not await self._grade(grader, units, writer, budget):
            return
        if groupwise:  # groups may span chunks: these need every transcript at once
            everything = await asyncio.to_thread(self.store.transcripts, job.id, 0, 2**62)
            count = len(everything)
            groups = group_units([t for _, t in everything], groupwise, offset=count * len(singles))
            todo = (unit for unit in groups if unit[0] not in done)
            if not await self._grade(grader, todo, writer, budget):
                return
        if not await writer.close():
            return
        await asyncio.to_thread(self.store.finish, job.id, self.owner, JobState.SUCCEEDED)

    async def _units(
        self, job_id: str, singles: list[Rubric], done: set[int]
    ) -> AsyncIterator[Unit]:
        """The (transcript, single rubric) units without a stored verdict, read from the store
        in chunks as grading needs them: memory stays flat for any job size, and calls never
        drain between chunks."""
        start = 0
        while True:
            chunk = await asyncio.to_thread(self.store.transcripts, job_id, start, self.chunk_size)
            if not chunk:
                return
            start = chunk[-1][0] + 1
            for index, transcript in chunk:
                for r, rubric in enumerate(singles):
                    number = index * len(singles) + r
                    if number not in done:
                        yield number, transcript, rubric

    async def _grade(
        self,
        grader: Grader,
        units: Iterable[Unit] | AsyncIterator[Unit],
        writer: _VerdictWriter,
        budget: Budget | None,
    ) -> bool:
        """Grade these units; False when the job stopped being ours."""
        verdicts = grader.grade_pairs(units, budget=budget)
        async with contextlib.aclosing(verdicts):
            async for number, verdict in verdicts:
                if not await writer.add(number, verdict):
                    return False  # cancelled, or taken over: in-flight units are cancelled
        return True

    async def _store(self, job_id: str, batch: list[tuple[int, Verdict]]) -> bool:
        """Store verdicts and renew the lease; False if the job is no longer ours."""
        stored = await asyncio.to_thread(self.store.add_verdicts, job_id, self.owner, batch)
        self._notify()
        if not stored:
            return False
        return await asyncio.to_thread(self.store.renew, job_id, self.owner, self.lease_seconds)


class _VerdictWriter:
    """Stores one job's verdicts in batches (``batch_size``, or every 0.25 s) in the background:
    grading goes on starting calls while a batch is written, and waits only if the previous
    batch is still being written when the next one is ready."""

    def __init__(self, runner: JobRunner, job_id: str):
        self.runner = runner
        self.job_id = job_id
        self.buffer: list[tuple[int, Verdict]] = []
        self.writing: asyncio.Task[bool] | None = None
        self.flushed = time.monotonic()

    async def add(self, number: int, verdict: Verdict) -> bool:
        """Buffer a verdict; False once a write found that the job is no longer ours."""
        self.buffer.append((number, verdict))
        due = time.monotonic() - self.flushed > 0.25
        if len(self.buffer) < self.runner.batch_size and not due:
            return True
        if not await self._written():
            return False
        batch, self.buffer = self.buffer, []
        self.writing = asyncio.create_task(self.runner._store(self.job_id, batch))
        self.flushed = time.monotonic()
        return True

    async def close(self) -> bool:
        """Write what is buffered and wait for it; False if the job is no longer ours."""
        if not await self._written():
            return False
        if self.buffer:
            batch, self.buffer = self.buffer, []
            return await self.runner._store(self.job_id, batch)
        return True

    async def _written(self) -> bool:
        if self.writing is None:
            return True
        writing, self.writing = self.writing, None
        return await writing
