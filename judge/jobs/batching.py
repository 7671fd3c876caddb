"""Batch-mode jobs: before a job is graded, its uncached calls go to provider batches
(``judge.batch``), kept with the job (``JobStore.set_batch``), so a runner that takes over the job
of one that died polls the same batches instead of paying for new ones. The runner's lease is
renewed while the batches run (up to 24 h); a job cancelled meanwhile cancels its batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from judge.batch import BatchOptions, BatchState, Prewarmed, cancel_batches, prewarm
from judge.config import Settings
from judge.grading import Grader
from judge.grouping import Unit, group_units
from judge.jobs.store import JobRecord, JobState, JobStore
from judge.rubric import Rubric

logger = logging.getLogger(__name__)


class _Lost(Exception):
    """The job is no longer this runner's (cancelled, or taken over)."""


class JobLedger:
    """A job's provider batches, kept in its row (see ``judge.batch.state.Ledger``)."""

    def __init__(self, store: JobStore, job_id: str, owner: str):
        self.store = store
        self.job_id = job_id
        self.owner = owner

    async def load(self, calls: str) -> BatchState | None:
        state = (await asyncio.to_thread(self.store.get, self.job_id)).batch
        return state if state is not None and state.calls == calls else None

    async def save(self, state: BatchState) -> None:
        kept = await asyncio.to_thread(self.store.set_batch, self.job_id, self.owner, state)
        if not kept:
            raise _Lost


async def run_batches(
    store: JobStore,
    job: JobRecord,
    owner: str,
    grader: Grader,
    rubrics: list[Rubric],
    settings: Settings,
) -> Prewarmed | None:
    """Fill the cache from provider batches for the whole job, renewing the lease every third
    of it meanwhile; None when the job stopped being this runner's."""
    options = BatchOptions(
        poll_seconds=settings.batch_poll_seconds,
        max_requests=settings.batch_max_requests,
        concurrency=settings.concurrency,
    )
    work = asyncio.create_task(
        prewarm(
            lambda: job_units(store, job.id, rubrics),
            grader.plan,
            grader.cache,
            JobLedger(store, job.id, owner),
            options,
            lambda line: logger.info("job %s: %s", job.id, line),
        )
    )
    try:
        while not work.done():
            await asyncio.wait({work}, timeout=settings.job_lease_seconds / 3)
            if work.done():
                break
            if not await asyncio.to_thread(store.renew, job.id, owner, settings.job_lease_seconds):
                work.cancel()
                break
        with contextlib.suppress(_Lost, asyncio.CancelledError):
            return await work
    finally:
        if not work.done():  # this runner was cancelled (shutdown): the next one resumes
            work.cancel()
    await _stopped(store, job.id, grader)
    return None


async def _stopped(store: JobStore, job_id: str, grader: Grader) -> None:
    """A job that was cancelled cancels its unfinished batches (a taken-over one keeps them)."""
    current = await asyncio.to_thread(store.get, job_id)
    if current.state == JobState.CANCELLED and current.batch is not None:
        await cancel_batches(grader.plan, current.batch)


async def job_units(
    store: JobStore, job_id: str, rubrics: list[Rubric], chunk: int = 1000
) -> AsyncIterator[Unit]:
    """Every unit of the job, stored verdicts or not (the batches cover the whole job), read
    from the store in chunks."""
    singles = [r for r in rubrics if not r.is_group]
    groupwise = [r for r in rubrics if r.is_group]
    start = 0
    while singles:
        transcripts = await asyncio.to_thread(store.transcripts, job_id, start, chunk)
        if not transcripts:
            break
        start = transcripts[-1][0] + 1
        for index, transcript in transcripts:
            for r, rubric in enumerate(singles):
                yield index * len(singles) + r, transcript, rubric
    if groupwise:
        everything = [t for _, t in await asyncio.to_thread(store.transcripts, job_id, 0, 2**62)]
        for unit in group_units(everything, groupwise, offset=len(everything) * len(singles)):
            yield unit
