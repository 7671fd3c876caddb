"""The job runner: leases parts of jobs and grades the pairs without a stored verdict.

A runner takes a job one part at a time (``judge.jobs.store``), claiming the next part only when
grading needs more units, so calls never drain between parts; several runners (in several
processes) grade one job together, each on the parts it holds. A runner renews its leases while
it works; if its process dies, they run out and another runner takes those parts over, grades
only the pairs without a stored verdict, and finds every judge call that had finished in the
verdict cache. Each turn at a job has an owner of its own, so two turns in one process never
hold the same part. A batch-mode job (one part) first fills the cache from provider batches
(``judge.jobs.batching``), then is graded the same way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection

from judge.errors import JudgeError, NotFoundError
from judge.grouping import Unit, group_units
from judge.jobs.batching import run_batches
from judge.jobs.store import TERMINAL, JobMode, JobRecord, JobState, JobStore, PollingJobStore
from judge.rubric import Rubric, RubricLibrary
from judge.selection import GraderPool
from judge.verdict import Verdict

logger = logging.getLogger(__name__)


class JobRunner:
    """Leases parts of jobs and grades their missing pairs: polling a store for any job's free
    parts (``run_forever``), or one job to its end as a queue hands it out (``run_job``)."""

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
        self.grading: collections.Counter[str] = collections.Counter()
        """Jobs this runner is grading now (and how many turns at each)."""
        self._turns = itertools.count()
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """A job was submitted: look for work now rather than at the next poll."""
        self._wakeup.set()

    def _turn(self) -> str:
        return f"{self.owner}.{next(self._turns)}"

    async def run_forever(
        self, store: PollingJobStore, poll_seconds: float = 0.5, *, helping: bool = False
    ) -> None:
        """Grade free parts of jobs, oldest job first, until cancelled. ``helping``: only parts
        of jobs another runner has started, and none of the jobs this runner grades already (a
        worker's spare capacity, lent to the jobs others hold)."""
        while True:
            try:
                owner = self._turn()
                skip: Collection[str] = set(self.grading) if helping else ()
                claimed = await asyncio.to_thread(
                    store.claim, owner, self.lease_seconds, started_only=helping, skip=skip
                )
                if claimed is not None:
                    await self._run_guarded(claimed[0], owner, claimed[1])
                    continue
            except store.outages:
                logger.exception("the job store is unavailable; trying again")
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), poll_seconds)

    async def run_job(self, job_id: str) -> JobState:
        """Grade one job to its end: its free parts; then, while other runners hold the rest,
        wait (a part whose runner died is taken over once its lease runs out)."""
        while True:
            owner = self._turn()
            claimed = await asyncio.to_thread(
                self.store.claim_part, job_id, owner, self.lease_seconds
            )
            if claimed is not None:
                await self._run_guarded(claimed[0], owner, claimed[1])
            current = await asyncio.to_thread(self.store.get, job_id)
            if current.state in TERMINAL:
                return current.state
            if claimed is None:  # the rest is held: look again soon (a part may be given up)
                await asyncio.sleep(min(self.lease_seconds / 2, 1.0))

    async def _run_guarded(self, job: JobRecord, owner: str, first: int) -> None:
        self.grading[job.id] += 1
        try:
            await self.run(job, owner, first)
        except self.store.outages:
            raise  # not the job's fault: its parts stay leased until the leases run out
        except NotFoundError:
            logger.info("job %s was deleted while it was graded; stopped", job.id)
        except Exception as exc:  # record it on the job; never kill the runner
            logger.exception("job %s failed", job.id)
            await asyncio.to_thread(self.store.finish, job.id, owner, JobState.FAILED, str(exc))
        finally:
            self.grading[job.id] -= 1
            if not self.grading[job.id]:
                del self.grading[job.id]
            with contextlib.suppress(Exception):  # unfinished parts go to others at once
                await asyncio.to_thread(self.store.release, job.id, owner)
            self._notify()

    def _notify(self) -> None:
        self.progress.set()
        self.progress = asyncio.Event()

    async def run(self, job: JobRecord, owner: str, first: int) -> None:
        """Grade part ``first`` of this job, then any other part still free."""
        try:
            rubrics = [self.library.get(rubric_id) for rubric_id in job.rubrics]
            grader = self.pool.grader(job.spec.judge, job.spec.cache)
            # what the job paid before this turn counts against its budget (a job with a
            # budget is one part, job_intake: no two turns spend it at once)
            budget = self.pool.budget(job.spec.judge, job.spec.max_cost_usd, job.summary.cost_usd)
        except JudgeError as exc:  # the server's configuration changed under a queued job
            await asyncio.to_thread(self.store.finish, job.id, owner, JobState.FAILED, str(exc))
            return
        settle: Callable[[Verdict], Verdict] | None = None
        if job.spec.mode == JobMode.BATCH:
            settings = self.pool.settings
            batches = await run_batches(self.store, job, owner, grader, rubrics, settings)
            if batches is None:
                return  # cancelled, or taken over, while its batches ran
            settle = batches.settle
        turn = _Turn(self, job, owner, rubrics, settle)
        verdicts = grader.grade_pairs(turn.units(first), budget=budget)
        async with contextlib.aclosing(verdicts):
            async for number, verdict in verdicts:
                if not await turn.add(number, verdict):
                    return  # cancelled, or taken over: in-flight units are cancelled
        await turn.close()


class _Turn:
    """One owner's turn at a job: the parts it claims as grading needs units, their verdicts
    stored in batches (``batch_size``, or every 0.25 s) in the background while grading goes on,
    and each part marked done once all of its verdicts are stored."""

    def __init__(
        self,
        runner: JobRunner,
        job: JobRecord,
        owner: str,
        rubrics: list[Rubric],
        settle: Callable[[Verdict], Verdict] | None = None,
    ):
        self.runner = runner
        self.settle = settle
        self.store = runner.store
        self.job = job
        self.owner = owner
        self.singles = [r for r in rubrics if not r.is_group]
        self.groupwise = [r for r in rubrics if r.is_group]
        shape = job.shape
        self.size = shape.part_size
        self.single_parts = shape.parts - (1 if self.groupwise else 0)
        self.pending: collections.Counter[int] = collections.Counter()
        """Units of each part handed to grading whose verdicts are not stored yet."""
        self.exhausted: set[int] = set()
        """Parts all of whose units were handed to grading."""
        self.done: set[int] = set()
        """Parts this turn marked done."""
        self.buffer: list[tuple[int, int, Verdict]] = []
        self.writing: asyncio.Task[bool] | None = None
        self.flushed = time.monotonic()

    def part_of(self, number: int) -> int:
        if self.job.shape.transcripts is None:
            return 0  # a job from before parts: one part
        if number < self.job.shape.transcripts * len(self.singles):
            return number // len(self.singles) // self.size
        return self.single_parts

    async def units(self, first: int) -> AsyncIterator[Unit]:
        """The units of part ``first``, then of each part claimed after it, without a stored
        verdict, read from the store in chunks as grading needs them."""
        part: int | None = first
        while part is not None:
            async for unit in self._units_of(part):
                self.pending[part] += 1
                yield unit
            self.exhausted.add(part)
            if not self.pending[part] and not await self._done(part):
                return
            claimed = await asyncio.to_thread(
                self.store.claim_part, self.job.id, self.owner, self.runner.lease_seconds
            )
            part = None if claimed is None else claimed[1]

    async def _units_of(self, part: int) -> AsyncIterator[Unit]:
        shape, count = self.job.shape, len(self.singles)
        if shape.transcripts is None:  # everything, as one part
            async for unit in self._singles(0, None):
                yield unit
            async for unit in self._groups(None):
                yield unit
        elif part < self.single_parts:
            stop = min((part + 1) * self.size, shape.transcripts)
            async for unit in self._singles(part * self.size, stop):
                yield unit
        else:
            async for unit in self._groups(shape.transcripts * count):
                yield unit

    async def _singles(self, start: int, stop: int | None) -> AsyncIterator[Unit]:
        """(transcript, single rubric) units of transcripts [start, stop), chunk by chunk."""
        count = len(self.singles)
        while stop is None or start < stop:
            limit = self.runner.chunk_size
            if stop is not None:
                limit = min(limit, stop - start)
            chunk = await asyncio.to_thread(self.store.transcripts, self.job.id, start, limit)
            if not chunk or not count:
                return
            first, last = chunk[0][0], chunk[-1][0]
            done = await asyncio.to_thread(
                self.store.finished_pairs, self.job.id, first * count, (last + 1) * count
            )
            for index, transcript in chunk:
                for r, rubric in enumerate(self.singles):
                    number = index * count + r
                    if number not in done:
                        yield number, transcript, rubric
            start = last + 1

    async def _groups(self, offset: int | None) -> AsyncIterator[Unit]:
        """The group rubrics' units: they need every transcript at once."""
        if not self.groupwise:
            return
        everything = await asyncio.to_thread(self.store.transcripts, self.job.id, 0, 2**62)
        offset = len(everything) * len(self.singles) if offset is None else offset
        stop = self.job.total
        done = await asyncio.to_thread(self.store.finished_pairs, self.job.id, offset, stop)
        units = group_units([t for _, t in everything], self.groupwise, offset=offset)
        for unit in units:
            if unit[0] not in done:
                yield unit

    async def add(self, number: int, verdict: Verdict) -> bool:
        """Buffer a verdict; False once a write found that the job is no longer ours."""
        if self.settle is not None:  # batch mode: the calls its batches paid for count here
            verdict = self.settle(verdict)
        self.buffer.append((self.part_of(number), number, verdict))
        due = time.monotonic() - self.flushed > 0.25
        if len(self.buffer) < self.runner.batch_size and not due:
            return True
        if not await self._written():
            return False
        batch, self.buffer = self.buffer, []
        self.writing = asyncio.create_task(self._store(batch))
        self.flushed = time.monotonic()
        return True

    async def close(self) -> bool:
        """Write what is buffered and wait for it; False if the job is no longer ours."""
        if not await self._written():
            return False
        if self.buffer:
            batch, self.buffer = self.buffer, []
            return await self._store(batch)
        return True

    async def _written(self) -> bool:
        if self.writing is None:
            return True
        writing, self.writing = self.writing, None
        return await writing

    async def _store(self, batch: list[tuple[int, int, Verdict]]) -> bool:
        """Store verdicts part by part (which renews the leases), and mark the parts whose every
        verdict is now stored done; False if the job is no longer ours."""
        by_part: dict[int, list[tuple[int, Verdict]]] = {}
        for part, number, verdict in batch:
            by_part.setdefault(part, []).append((number, verdict))
        add, lease = self.store.add_verdicts, self.runner.lease_seconds
        try:
            for part, verdicts in by_part.items():
                if not await asyncio.to_thread(add, self.job.id, self.owner, part, verdicts, lease):
                    return False
                self.pending[part] -= len(verdicts)
        finally:
            self.runner._notify()
        for part in by_part:
            if part in self.exhausted and not self.pending[part] and not await self._done(part):
                return False
        return True

    async def _done(self, part: int) -> bool:
        """Mark a part done (once: the last verdict's write and the end of the part's units may
        both find it complete); False when that ended the job (its last part) or it had ended."""
        if part in self.done:
            return True
        self.done.add(part)
        state = await asyncio.to_thread(self.store.finish_part, self.job.id, self.owner, part)
        self.runner._notify()
        return state not in TERMINAL
