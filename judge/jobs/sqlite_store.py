"""The job store of a single server: one SQLite file beside the server (``state_dir``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from judge.batch.state import BatchState
from judge.errors import ConflictError, NotFoundError
from judge.jobs.store import PART_SIZE, TERMINAL, JobRecord, JobShape, JobSpec, JobState
from judge.readiness import RecentWrites
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
    lease_until REAL,
    batch TEXT
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
CREATE TABLE IF NOT EXISTS job_parts (
    job_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    owner TEXT,
    lease_until REAL,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, part)
);
"""
_ADDED_COLUMNS = {
    "transcripts": "INTEGER",
    "parts": "INTEGER NOT NULL DEFAULT 1",
    "part_size": f"INTEGER NOT NULL DEFAULT {PART_SIZE}",
    "batch": "TEXT",
}
"""Columns a database made before jobs had parts (its jobs are one part each) or before batch
mode lacks."""


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
        self._committed = RecentWrites()
        db = self._db()
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in columns:
                try:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise

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
        self._committed.mark()

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
        shape: JobShape,
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
                    " spec = ?, rubrics = ?, total = ?, transcripts = ?, parts = ?,"
                    " part_size = ?, summary = ?, created_at = ?, updated_at = ?"
                    " WHERE id = ? AND state = ?",
                    (
                        idempotency_key,
                        request_hash,
                        spec.model_dump_json(),
                        json.dumps(spec.rubrics),
                        shape.total,
                        shape.transcripts,
                        shape.parts,
                        shape.part_size,
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
        for table in ("job_verdicts", "job_transcripts", "job_parts"):
            db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
        db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def get(self, job_id: str) -> JobRecord:
        return self._get(self._db(), job_id)

    def _get(self, db: sqlite3.Connection, job_id: str) -> JobRecord:
        row = db.execute(
            "SELECT id, state, spec, rubrics, total, summary, error, created_at, updated_at,"
            " transcripts, parts, part_size, batch FROM jobs WHERE id = ? AND state != ?",
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
            shape=JobShape(total=row[4], transcripts=row[9], parts=row[10], part_size=row[11]),
            batch=BatchState.model_validate_json(row[12]) if row[12] else None,
        )

    def claim(
        self,
        owner: str,
        lease_seconds: float,
        *,
        started_only: bool = False,
        skip: Collection[str] = (),
    ) -> tuple[JobRecord, int] | None:
        """Lease a free part of the oldest unfinished job (see ``JobStore``)."""
        states = ("running",) if started_only else ("queued", "running")
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT id FROM jobs WHERE state IN ({', '.join('?' * len(states))})"
                " ORDER BY created_at",
                states,
            ).fetchall()
            for (job_id,) in rows:
                if job_id not in skip and (
                    claimed := self._claim(db, job_id, owner, lease_seconds)
                ):
                    return claimed
        return None

    def claim_part(
        self, job_id: str, owner: str, lease_seconds: float
    ) -> tuple[JobRecord, int] | None:
        with self._transaction() as db:
            return self._claim(db, job_id, owner, lease_seconds)

    def _claim(
        self, db: sqlite3.Connection, job_id: str, owner: str, lease_seconds: float
    ) -> tuple[JobRecord, int] | None:
        row = db.execute(
            "SELECT parts FROM jobs WHERE id = ? AND state IN ('queued', 'running')", (job_id,)
        ).fetchone()
        if row is None:
            return None
        now = time.time()
        taken = {
            part
            for part, until, done in db.execute(
                "SELECT part, lease_until, done FROM job_parts WHERE job_id = ?", (job_id,)
            )
            if done or (until is not None and until >= now)
        }
        free = next((part for part in range(row[0]) if part not in taken), None)
        if free is None:
            return None
        db.execute(
            "INSERT INTO job_parts (job_id, part, owner, lease_until) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job_id, part) DO UPDATE SET owner = excluded.owner,"
            " lease_until = excluded.lease_until",
            (job_id, free, owner, now + lease_seconds),
        )
        db.execute(
            "UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ? AND state = 'queued'",
            (now, job_id),
        )
        return self._get(db, job_id), free

    def release(self, job_id: str, owner: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE job_parts SET owner = NULL, lease_until = NULL"
                " WHERE job_id = ? AND owner = ? AND NOT done",
                (job_id, owner),
            )

    def _running(self, db: sqlite3.Connection, job_id: str) -> bool:
        row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is not None and row[0] == "running"

    def _holds(self, db: sqlite3.Connection, job_id: str, owner: str, part: int) -> bool:
        row = db.execute(
            "SELECT 1 FROM job_parts WHERE job_id = ? AND part = ? AND owner = ? AND NOT done",
            (job_id, part, owner),
        ).fetchone()
        return row is not None and self._running(db, job_id)

    def finished_pairs(self, job_id: str, start: int, stop: int) -> set[int]:
        rows = self._db().execute(
            "SELECT pair FROM job_verdicts WHERE job_id = ? AND pair >= ? AND pair < ?",
            (job_id, start, stop),
        )
        return {row[0] for row in rows}

    def transcripts(self, job_id: str, start: int, limit: int) -> list[tuple[int, Transcript]]:
        rows = self._db().execute(
            "SELECT idx, record FROM job_transcripts WHERE job_id = ? AND idx >= ?"
            " ORDER BY idx LIMIT ?",
            (job_id, start, limit),
        )
        return [(row[0], Transcript.model_validate_json(row[1])) for row in rows]

    def add_verdicts(
        self,
        job_id: str,
        owner: str,
        part: int,
        verdicts: list[tuple[int, Verdict]],
        lease_seconds: float,
    ) -> bool:
        """Store verdicts in one transaction (see ``JobStore``)."""
        with self._transaction() as db:
            if not self._holds(db, job_id, owner, part):
                return False
            (summary_json,) = db.execute(
                "SELECT summary FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            summary = Summary.model_validate_json(summary_json)
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
            now = time.time()
            db.execute(
                "UPDATE jobs SET summary = ?, updated_at = ? WHERE id = ?",
                (summary.model_dump_json(), now, job_id),
            )
            db.execute(
                "UPDATE job_parts SET lease_until = ? WHERE job_id = ? AND owner = ? AND NOT done",
                (now + lease_seconds, job_id, owner),
            )
            return True

    def finish_part(self, job_id: str, owner: str, part: int) -> JobState:
        with self._transaction() as db:
            if self._holds(db, job_id, owner, part):
                db.execute(
                    "UPDATE job_parts SET done = 1, owner = NULL, lease_until = NULL"
                    " WHERE job_id = ? AND part = ?",
                    (job_id, part),
                )
                (done,) = db.execute(
                    "SELECT COUNT(*) FROM job_parts WHERE job_id = ? AND done", (job_id,)
                ).fetchone()
                if done == self._get(db, job_id).shape.parts:
                    db.execute(
                        "UPDATE jobs SET state = 'succeeded', updated_at = ? WHERE id = ?",
                        (time.time(), job_id),
                    )
            return self._get(db, job_id).state

    def finish(self, job_id: str, owner: str, state: JobState, error: str | None = None) -> None:
        with self._transaction() as db:
            held = db.execute(
                "SELECT 1 FROM job_parts WHERE job_id = ? AND owner = ? AND NOT done",
                (job_id, owner),
            ).fetchone()
            if held is not None:
                db.execute(
                    "UPDATE jobs SET state = ?, error = ?, updated_at = ?"
                    " WHERE id = ? AND state = 'running'",
                    (state, error, time.time(), job_id),
                )

    def set_batch(self, job_id: str, owner: str, batch: BatchState) -> bool:
        with self._transaction() as db:
            if not self._holds_any(db, job_id, owner):
                return False
            db.execute(
                "UPDATE jobs SET batch = ?, updated_at = ? WHERE id = ?",
                (batch.model_dump_json(), time.time(), job_id),
            )
            return True

    def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        with self._transaction() as db:
            if not self._running(db, job_id):
                return False
            renewed = db.execute(
                "UPDATE job_parts SET lease_until = ? WHERE job_id = ? AND owner = ? AND NOT done",
                (time.time() + lease_seconds, job_id, owner),
            ).rowcount
            return renewed > 0

    def _holds_any(self, db: sqlite3.Connection, job_id: str, owner: str) -> bool:
        row = db.execute(
            "SELECT 1 FROM job_parts WHERE job_id = ? AND owner = ? AND NOT done", (job_id, owner)
        ).fetchone()
        return row is not None and self._running(db, job_id)

    def cancel(self, job_id: str) -> JobRecord:
        with self._transaction() as db:
            job = self._get(db, job_id)
            if job.state not in TERMINAL:
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', updated_at = ? WHERE id = ?",
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
        """True when the database accepts a write transaction: one committed a moment ago says
        so (``judge.readiness``), else a probe's."""
        if self._committed.vouch():
            return True
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
