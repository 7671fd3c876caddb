"""Durable batch jobs: a SQLite store, and a runner that leases jobs and grades them.

Every (transcript, rubric) pair of a job has a number, ``pair = transcript_index * n_rubrics +
rubric_index``. A verdict is stored once per pair (primary key) and gets the next *position* in the
job's output, so a client that has read N verdicts resumes with ``cursor=N`` and receives each
verdict exactly once. A runner holds a job under a lease it renews while it works; when a server is
killed, its lease runs out and any runner (the restarted one, or another process on the same state
directory) takes the job over, grades only the pairs without a stored verdict, and finds every judge
call that had already finished in the verdict cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from judge.errors import ConflictError, JudgeError, NotFoundError
from judge.grading import Grader, Summary
from judge.grouping import Unit, count_units, group_units
from judge.rubric import Rubric, RubricLibrary
from judge.server.judging import GraderPool
from judge.server.schemas import GradeCreate, JobPublic, JobSpec, JobState
from judge.transcript import Transcript
from judge.verdict import Verdict

logger = logging.getLogger(__name__)

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    rubrics TEXT NOT NULL,
    total INTEGER NOT NULL,
    summary TEXT NOT NULL,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL
);
CREATE TABLE IF NOT EXISTS job_transcripts (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS job_verdicts (
    job_id TEXT NOT NULL,
    pair INTEGER NOT NULL,
    position INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    PRIMARY KEY (job_id, pair),
    UNIQUE (job_id, position)
);
"""


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


class JobStore:
    """Jobs, their transcripts and their verdicts in one SQLite file (WAL mode, so several
    processes on one machine can share it). Methods are synchronous; call them in a thread."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def create(
        self,
        spec: GradeCreate,
        transcripts: list[Transcript],
        rubrics: list[Rubric],
        *,
        request_hash: str,
        idempotency_key: str | None,
    ) -> tuple[JobRecord, bool]:
        """Store a new job, or return the job an earlier request with this key created."""
        with self._transaction() as db:
            if idempotency_key is not None:
                row = db.execute(
                    "SELECT id, request_hash FROM jobs WHERE idempotency_key = ?",
                    (idempotency_key,),
                ).fetchone()
                if row is not None:
                    if row[1] != request_hash:
                        raise ConflictError(
                            f"Idempotency-Key '{idempotency_key}' was used for a different "
                            "request; use a new key for a new job"
                        )
                    return self._get(db, row[0]), False
            job_id = uuid.uuid4().hex
            now = time.time()
            stored_spec = JobSpec.model_validate(spec.model_dump(exclude={"transcripts"}))
            db.execute(
                "INSERT INTO jobs (id, idempotency_key, request_hash, state, spec, rubrics, total,"
                " summary, created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    idempotency_key,
                    request_hash,
                    stored_spec.model_dump_json(),
                    json.dumps(spec.rubrics),
                    count_units(transcripts, rubrics),
                    Summary().model_dump_json(),
                    now,
                    now,
                ),
            )
            db.executemany(
                "INSERT INTO job_transcripts (job_id, idx, record) VALUES (?, ?, ?)",
                ((job_id, i, t.model_dump_json()) for i, t in enumerate(transcripts)),
            )
            return self._get(db, job_id), True

    def get(self, job_id: str) -> JobRecord:
        return self._get(self._db(), job_id)

    def _get(self, db: sqlite3.Connection, job_id: str) -> JobRecord:
        row = db.execute(
            "SELECT id, state, spec, rubrics, total, summary, error, created_at, updated_at"
            " FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no job '{job_id}'")
        return JobRecord(
            id=row[0],
            state=row[1],
            spec=JobSpec.model_validate_json(row[2]),
            rubrics=json.loads(row[3]),
            total=row[4],
            summary=Summary.model_validate_json(row[5]),
            error=row[6],
            created_at=row[7],
            updated_at=row[8],
        )

    def claim(self, owner: str, lease_seconds: float) -> JobRecord | None:
        """Lease the oldest unfinished job that nobody holds (or whose holder's lease ran out)."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE state IN ('queued', 'running')"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY created_at LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?,"
                " updated_at = ? WHERE id = ?",
                (owner, now + lease_seconds, now, row[0]),
            )
            return self._get(db, row[0])

    def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend the lease; False when the job was cancelled or another runner took it."""
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ?"
                " AND state = 'running'",
                (now + lease_seconds, job_id, owner),
            )
            return cursor.rowcount == 1

    def finished_pairs(self, job_id: str) -> set[int]:
        rows = self._db().execute("SELECT pair FROM job_verdicts WHERE job_id = ?", (job_id,))
        return {row[0] for row in rows}

    def transcripts(self, job_id: str, start: int, limit: int) -> list[tuple[int, Transcript]]:
        rows = self._db().execute(
            "SELECT idx, record FROM job_transcripts WHERE job_id = ? AND idx >= ?"
            " ORDER BY idx LIMIT ?",
            (job_id, start, limit),
        )
        return [(row[0], Transcript.model_validate_json(row[1])) for row in rows]

    def add_verdicts(self, job_id: str, owner: str, verdicts: list[tuple[int, Verdict]]) -> bool:
        """Store verdicts (each pair once) and update the job's counts, in one transaction.

        Returns False, storing nothing, when this runner no longer holds the job.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT summary FROM jobs WHERE id = ? AND lease_owner = ? AND state = 'running'",
                (job_id, owner),
            ).fetchone()
            if row is None:
                return False
            summary = Summary.model_validate_json(row[0])
            (last,) = db.execute(
                "SELECT MAX(position) FROM job_verdicts WHERE job_id = ?", (job_id,)
            ).fetchone()
            position = 0 if last is None else last + 1
            for pair, verdict in verdicts:
                inserted = db.execute(
                    "INSERT OR IGNORE INTO job_verdicts (job_id, pair, position, verdict)"
                    " VALUES (?, ?, ?, ?)",
                    (job_id, pair, position, verdict.model_dump_json()),
                ).rowcount
                if inserted:
                    position += 1
                    summary.add(verdict)
            db.execute(
                "UPDATE jobs SET summary = ?, updated_at = ? WHERE id = ?",
                (summary.model_dump_json(), time.time(), job_id),
            )
            return True

    def finish(self, job_id: str, owner: str, state: JobState, error: str | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, lease_owner = NULL, lease_until = NULL,"
                " updated_at = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
                (state, error, time.time(), job_id, owner),
            )

    def cancel(self, job_id: str) -> JobRecord:
        with self._transaction() as db:
            job = self._get(db, job_id)
            if job.state not in TERMINAL:
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_until = NULL,"
                    " updated_at = ? WHERE id = ?",
                    (time.time(), job_id),
                )
            return self._get(db, job_id)

    def verdict_lines(self, job_id: str, cursor: int, limit: int) -> list[str]:
        """Stored verdicts from position ``cursor`` on, as JSON text, in output order."""
        rows = self._db().execute(
            "SELECT verdict FROM job_verdicts WHERE job_id = ? AND position >= ?"
            " ORDER BY position LIMIT ?",
            (job_id, cursor, limit),
        )
        return [row[0] for row in rows]

    def ping(self) -> bool:
        """True when the database accepts a write transaction."""
        try:
            with self._transaction():
                return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class JobRunner:
    """Leases jobs from the store, one at a time, and grades their missing pairs."""

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

    async def run_forever(self, poll_seconds: float = 0.5) -> None:
        while True:
            job = await asyncio.to_thread(self.store.claim, self.owner, self.lease_seconds)
            if job is None:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), poll_seconds)
                continue
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
