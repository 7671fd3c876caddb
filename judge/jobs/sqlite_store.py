"""The job store of a single server: one SQLite file beside the server (``state_dir``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from judge.errors import ConflictError, NotFoundError
from judge.jobs.store import TERMINAL, JobRecord, JobSpec, JobState
from judge.transcript import Transcript
from judge.verdict import Summary, Verdict

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


_INGESTING = "ingesting"
"""The state of a job being taken in: no reader sees it (see ``JobStore.open_intake``)."""


class SqliteJobStore:
    """Jobs, their transcripts and their verdicts in one SQLite file (WAL mode, so several
    processes on one machine can share it). Methods are synchronous; call them in a thread."""

    outages: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

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

    def open_intake(self) -> str:
        """A row in state ``ingesting``, which ``get`` and ``claim`` do not see."""
        job_id = uuid.uuid4().hex
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, request_hash, state, spec, rubrics, total, summary,"
                " created_at, updated_at) VALUES (?, '', ?, '{}', '[]', 0, '{}', ?, ?)",
                (job_id, _INGESTING, now, now),
            )
        return job_id

    def add_transcripts(self, job_id: str, start: int, records: Sequence[str]) -> None:
        with self._transaction() as db:
            taking = db.execute(
                "UPDATE jobs SET updated_at = ? WHERE id = ? AND state = ?",
                (time.time(), job_id, _INGESTING),
            ).rowcount
            if not taking:
                raise NotFoundError(f"no intake '{job_id}' (pruned after a long silence?)")
            db.executemany(
                "INSERT INTO job_transcripts (job_id, idx, record) VALUES (?, ?, ?)",
                ((job_id, start + i, record) for i, record in enumerate(records)),
            )

    def commit(
        self,
        job_id: str,
        spec: JobSpec,
        total: int,
        *,
        request_hash: str,
        idempotency_key: str | None,
    ) -> tuple[JobRecord, bool]:
        """Queue the job taken in, or (the key was used first) drop it for the earlier job."""
        with self._transaction() as db:
            row = None
            if idempotency_key is not None:
                row = db.execute(
                    "SELECT id, request_hash FROM jobs WHERE idempotency_key = ?",
                    (idempotency_key,),
                ).fetchone()
            if row is None:
                now = time.time()
                db.execute(
                    "UPDATE jobs SET state = 'queued', idempotency_key = ?, request_hash = ?,"
                    " spec = ?, rubrics = ?, total = ?, summary = ?, created_at = ?,"
                    " updated_at = ? WHERE id = ? AND state = ?",
                    (
                        idempotency_key,
                        request_hash,
                        spec.model_dump_json(),
                        json.dumps(spec.rubrics),
                        total,
                        Summary().model_dump_json(),
                        now,
                        now,
                        job_id,
                        _INGESTING,
                    ),
                )
                return self._get(db, job_id), True
            self._remove(db, job_id)
            earlier = self._get(db, row[0])
        if row[1] != request_hash:
            raise ConflictError(
                f"Idempotency-Key '{idempotency_key}' was used for a different request; use a "
                "new key for a new job"
            )
        return earlier, False

    def discard(self, job_id: str) -> None:
        with self._transaction() as db:
            if db.execute(
                "SELECT 1 FROM jobs WHERE id = ? AND state = ?", (job_id, _INGESTING)
            ).fetchone():
                self._remove(db, job_id)

    def _remove(self, db: sqlite3.Connection, job_id: str) -> None:
        for table in ("job_verdicts", "job_transcripts"):
            db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
        db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def get(self, job_id: str) -> JobRecord:
        return self._get(self._db(), job_id)

    def _get(self, db: sqlite3.Connection, job_id: str) -> JobRecord:
        row = db.execute(
            "SELECT id, state, spec, rubrics, total, summary, error, created_at, updated_at"
            " FROM jobs WHERE id = ? AND state != ?",
            (job_id, _INGESTING),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no job '{job_id}'")
        return JobRecord(
            id=row[0],
            state=JobState(row[1]),
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

    def claim_job(self, job_id: str, owner: str, lease_seconds: float) -> JobRecord | None:
        """Lease this job, unless it is finished or another runner's lease is still running."""
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?,"
                " updated_at = ? WHERE id = ? AND state IN ('queued', 'running')"
                " AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)",
                (owner, now + lease_seconds, now, job_id, now, owner),
            )
            return self._get(db, job_id) if cursor.rowcount == 1 else None

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

    def delete(self, job_id: str) -> None:
        with self._transaction() as db:
            self._get(db, job_id)  # NotFoundError for no such job
            self._remove(db, job_id)

    def prune(self, finished_before: float, *, intakes_before: float) -> int:
        """Finished jobs before the time, and intakes silent since theirs, one transaction each
        (a job's rows go at once, and no writer waits long)."""
        rows = (
            self._db()
            .execute(
                "SELECT id, state FROM jobs WHERE (state IN (?, ?, ?) AND updated_at < ?)"
                " OR (state = ? AND updated_at < ?)",
                (*TERMINAL, finished_before, _INGESTING, intakes_before),
            )
            .fetchall()
        )
        for job_id, _ in rows:
            with self._transaction() as db:
                self._remove(db, job_id)
        return sum(1 for _, state in rows if state != _INGESTING)

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
