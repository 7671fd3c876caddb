"""The job store of a scaled-out deployment: jobs, transcripts and verdicts in Redis, so that any
API replica can accept, show and stream any job and any ``judge worker`` can grade it.

Keys (under ``prefix``): ``job:<id>`` a hash of the job's fields; ``job:<id>:transcripts`` and
``job:<id>:verdicts`` lists (a verdict's position is its index); ``job:<id>:pairs`` the set of
pairs with a stored verdict; ``job:<id>:parts`` a hash of its parts' leases (``owner|until``) or
``done``; ``idempotency:<key>`` the job an Idempotency-Key made. A job being taken in is only its
transcripts list, with an expiry that each batch renews (``intake_ttl``). ``active`` is a sorted
set of unfinished jobs by creation time (where idle workers look for parts to grade), and
``finished`` one of finished jobs by the time they finished (for ``prune``). Every write that
depends on a lease runs in a WATCH/MULTI transaction on the job's hash and its parts, so a runner
that lost its part (cancelled, or taken over) stores nothing. Each write of verdicts and each
job's end is published on the ``progress`` channel (the job's id), so that verdict streams on
any replica wake at once instead of at their next poll.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Collection, Sequence
from typing import Any

import redis

from judge.batch.state import BatchState
from judge.errors import ConflictError, NotFoundError
from judge.jobs.store import PART_SIZE, TERMINAL, JobRecord, JobShape, JobSpec, JobState
from judge.transcript import Transcript
from judge.verdict import Summary, Verdict


class RedisJobStore:
    """Jobs in Redis (see the module docstring for the layout). Synchronous; call in a thread."""

    outages: tuple[type[Exception], ...] = (redis.RedisError,)

    def __init__(self, url: str, prefix: str = "judge:", *, intake_ttl: int = 3600):
        self.url = url
        self.prefix = prefix
        self.intake_ttl = intake_ttl
        self._finished = f"{prefix}finished"
        self._active = f"{prefix}active"
        self.progress_channel = f"{prefix}progress"
        # Any: redis-py types its sync client's replies as "reply or awaitable of reply".
        self._redis: Any = redis.Redis.from_url(url, decode_responses=True)

    def _job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def open_intake(self) -> str:
        """Only an id: an intake exists as its transcripts list, which expires unless a batch
        arrives within ``intake_ttl`` (so the intake of a process that died goes by itself)."""
        return uuid.uuid4().hex

    def add_transcripts(self, job_id: str, start: int, records: Sequence[str]) -> None:
        if not records:
            return
        key = f"{self._job(job_id)}:transcripts"
        pipe = self._redis.pipeline(transaction=True)
        pipe.rpush(key, *records)
        pipe.expire(key, self.intake_ttl)
        length, _ = pipe.execute()
        if length != start + len(records):
            raise NotFoundError(f"intake '{job_id}' lost transcripts (expired after a silence?)")

    def commit(
        self,
        job_id: str,
        spec: JobSpec,
        shape: JobShape,
        *,
        request_hash: str,
        idempotency_key: str | None,
    ) -> tuple[JobRecord, bool]:
        """Queue the job taken in, or (the key was used first) drop it for the earlier job.

        The job's hash, which is what makes a job exist, is written with its transcripts made
        permanent, and the Idempotency-Key last (SET NX), so two racing requests with one key
        make one job.
        """
        idempotency = f"{self.prefix}idempotency:{idempotency_key}"
        if idempotency_key is not None:
            try:
                existing = self._replayed(idempotency, idempotency_key, request_hash)
            except ConflictError:
                self.discard(job_id)
                raise
            if existing is not None:
                self.discard(job_id)
                return existing, False
        key = self._job(job_id)
        now = time.time()
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(
            key,
            mapping={
                "state": JobState.QUEUED,
                "spec": spec.model_dump_json(),
                "total": shape.total,
                "transcripts": shape.transcripts if shape.transcripts is not None else "",
                "parts": shape.parts,
                "part_size": shape.part_size,
                "summary": Summary().model_dump_json(),
                "error": "",
                "created_at": now,
                "updated_at": now,
                "request_hash": request_hash,
                "idempotency_key": idempotency_key or "",
            },
        )
        pipe.persist(f"{key}:transcripts")
        pipe.zadd(self._active, {job_id: now})
        pipe.execute()
        if idempotency_key is not None and not self._redis.set(idempotency, job_id, nx=True):
            self._redis.delete(key, f"{key}:transcripts")  # lost the race: the winner's job
            self._redis.zrem(self._active, job_id)
            existing = self._replayed(idempotency, idempotency_key, request_hash)
            assert existing is not None, "the key was set by the request that won"
            return existing, False
        return self.get(job_id), True

    def discard(self, job_id: str) -> None:
        key = self._job(job_id)
        if not self._redis.exists(key):  # never committed: only its transcripts exist
            self._redis.delete(f"{key}:transcripts")

    def _replayed(self, idempotency: str, given: str, request_hash: str) -> JobRecord | None:
        job_id = self._redis.get(idempotency)
        if job_id is None:
            return None
        if self._redis.hget(self._job(job_id), "request_hash") != request_hash:
            raise ConflictError(
                f"Idempotency-Key '{given}' was used for a different request; use a new key "
                "for a new job"
            )
        return self.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        return _record(job_id, self._redis.hgetall(self._job(job_id)))

    def claim(
        self,
        owner: str,
        lease_seconds: float,
        *,
        started_only: bool = False,
        skip: Collection[str] = (),
    ) -> tuple[JobRecord, int] | None:
        """Lease a free part of the oldest unfinished job (see ``JobStore``)."""
        for job_id in self._redis.zrange(self._active, 0, -1):
            if job_id in skip:
                continue
            if started_only and self._redis.hget(self._job(job_id), "state") != JobState.RUNNING:
                continue
            with contextlib.suppress(NotFoundError):  # deleted meanwhile
                claimed = self.claim_part(job_id, owner, lease_seconds)
                if claimed is not None:
                    return claimed
        return None

    def claim_part(
        self, job_id: str, owner: str, lease_seconds: float
    ) -> tuple[JobRecord, int] | None:
        key = self._job(job_id)

        def claim(pipe: Any) -> tuple[JobRecord, int] | None:
            record = _record(job_id, pipe.hgetall(key))
            if record.state in TERMINAL:
                return None
            leases = pipe.hgetall(f"{key}:parts")
            now = time.time()
            free = next(
                (part for part in range(record.shape.parts) if _free(leases.get(str(part)), now)),
                None,
            )
            if free is None:
                return None
            pipe.multi()
            pipe.hset(f"{key}:parts", str(free), f"{owner}|{now + lease_seconds}")
            if record.state == JobState.QUEUED:
                pipe.hset(key, mapping={"state": JobState.RUNNING, "updated_at": now})
            return record, free

        claimed: tuple[JobRecord, int] | None = self._redis.transaction(
            claim, key, f"{key}:parts", value_from_callable=True
        )
        return None if claimed is None else (self.get(job_id), claimed[1])

    def _held(self, pipe: Any, key: str, owner: str) -> list[str] | None:
        """The parts this owner holds of a running job (None: the job is not running)."""
        if pipe.hget(key, "state") != JobState.RUNNING:
            return None
        leases = pipe.hgetall(f"{key}:parts")
        return [part for part, lease in leases.items() if lease.split("|")[0] == owner]

    def release(self, job_id: str, owner: str) -> None:
        key = self._job(job_id)

        def release(pipe: Any) -> None:
            leases = pipe.hgetall(f"{key}:parts")
            held = [part for part, lease in leases.items() if lease.split("|")[0] == owner]
            pipe.multi()
            if held:
                pipe.hdel(f"{key}:parts", *held)

        self._redis.transaction(release, f"{key}:parts")

    def finished_pairs(self, job_id: str, start: int, stop: int) -> set[int]:
        pairs = list(range(start, stop))
        if not pairs:
            return set()
        found = self._redis.smismember(f"{self._job(job_id)}:pairs", pairs)
        return {pair for pair, there in zip(pairs, found, strict=True) if there}

    def transcripts(self, job_id: str, start: int, limit: int) -> list[tuple[int, Transcript]]:
        end = start + limit - 1 if limit < 2**62 else -1
        records = self._redis.lrange(f"{self._job(job_id)}:transcripts", start, end)
        return [(start + i, Transcript.model_validate_json(r)) for i, r in enumerate(records)]

    def add_verdicts(
        self,
        job_id: str,
        owner: str,
        part: int,
        verdicts: list[tuple[int, Verdict]],
        lease_seconds: float,
    ) -> bool:
        """Store verdicts in one transaction (see ``JobStore``)."""
        key = self._job(job_id)
        unique = list(dict(verdicts).items())

        def add(pipe: Any) -> bool:
            held = self._held(pipe, key, owner)
            if held is None or str(part) not in held:
                return False
            stored = pipe.smismember(f"{key}:pairs", [pair for pair, _ in unique]) if unique else []
            new = [(pair, v) for (pair, v), seen in zip(unique, stored, strict=True) if not seen]
            summary = Summary.model_validate_json(pipe.hget(key, "summary"))
            for _, verdict in new:
                summary.add(verdict)
            pipe.multi()
            if new:
                pipe.rpush(f"{key}:verdicts", *(v.model_dump_json() for _, v in new))
                pipe.sadd(f"{key}:pairs", *(pair for pair, _ in new))
                pipe.publish(self.progress_channel, job_id)
            now = time.time()
            pipe.hset(key, mapping={"summary": summary.model_dump_json(), "updated_at": now})
            pipe.hset(f"{key}:parts", mapping=dict.fromkeys(held, f"{owner}|{now + lease_seconds}"))
            return True

        added: bool = self._redis.transaction(add, key, f"{key}:parts", value_from_callable=True)
        return added

    def finish_part(self, job_id: str, owner: str, part: int) -> JobState:
        key = self._job(job_id)

        def finish(pipe: Any) -> None:
            if str(part) not in (self._held(pipe, key, owner) or ()):
                return
            leases = pipe.hgetall(f"{key}:parts")
            parts = _record(job_id, pipe.hgetall(key)).shape.parts
            done = sum(1 for p, lease in leases.items() if lease == "done" and p != str(part))
            pipe.multi()
            pipe.hset(f"{key}:parts", str(part), "done")
            if done + 1 == parts:
                self._finished_in(pipe, job_id, JobState.SUCCEEDED, None)

        self._redis.transaction(finish, key, f"{key}:parts")
        return self.get(job_id).state

    def _finished_in(self, pipe: Any, job_id: str, state: JobState, error: str | None) -> None:
        """In a MULTI: the job ends in ``state``; prune finds it by the time it finished."""
        now = time.time()
        pipe.hset(
            self._job(job_id), mapping={"state": state, "error": error or "", "updated_at": now}
        )
        pipe.zadd(self._finished, {job_id: now})
        pipe.zrem(self._active, job_id)
        pipe.publish(self.progress_channel, job_id)

    def finish(self, job_id: str, owner: str, state: JobState, error: str | None = None) -> None:
        key = self._job(job_id)

        def finish(pipe: Any) -> None:
            if not self._held(pipe, key, owner):
                return
            pipe.multi()
            self._finished_in(pipe, job_id, state, error)

        self._redis.transaction(finish, key, f"{key}:parts")

    def set_batch(self, job_id: str, owner: str, batch: BatchState) -> bool:
        key = self._job(job_id)

        def keep(pipe: Any) -> bool:
            if not self._held(pipe, key, owner):
                return False
            pipe.multi()
            pipe.hset(key, mapping={"batch": batch.model_dump_json(), "updated_at": time.time()})
            return True

        kept: bool = self._redis.transaction(keep, key, f"{key}:parts", value_from_callable=True)
        return kept

    def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        key = self._job(job_id)

        def renew(pipe: Any) -> bool:
            held = self._held(pipe, key, owner)
            if not held:
                return False
            pipe.multi()
            pipe.hset(
                f"{key}:parts",
                mapping=dict.fromkeys(held, f"{owner}|{time.time() + lease_seconds}"),
            )
            return True

        renewed: bool = self._redis.transaction(
            renew, key, f"{key}:parts", value_from_callable=True
        )
        return renewed

    def cancel(self, job_id: str) -> JobRecord:
        key = self._job(job_id)

        def cancel(pipe: Any) -> None:
            if _record(job_id, pipe.hgetall(key)).state in TERMINAL:
                return
            pipe.multi()
            self._finished_in(pipe, job_id, JobState.CANCELLED, None)

        self._redis.transaction(cancel, key)
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        key = self._job(job_id)
        idempotency_key = self._redis.hget(key, "idempotency_key")
        if not self._redis.exists(key):
            raise NotFoundError(f"no job '{job_id}'")
        doomed = [key, f"{key}:transcripts", f"{key}:verdicts", f"{key}:pairs", f"{key}:parts"]
        if idempotency_key:
            doomed.append(f"{self.prefix}idempotency:{idempotency_key}")
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(*doomed)
        pipe.zrem(self._finished, job_id)
        pipe.zrem(self._active, job_id)
        pipe.execute()

    def prune(self, finished_before: float, *, intakes_before: float) -> int:
        """Finished jobs before the time, found by the time they finished (``finished``);
        intakes need nothing: theirs expire (``intake_ttl``)."""
        removed = 0
        while batch := self._redis.zrangebyscore(
            self._finished, "-inf", f"({finished_before}", start=0, num=500
        ):
            for job_id in batch:
                with contextlib.suppress(NotFoundError):
                    self.delete(job_id)
                    removed += 1
                self._redis.zrem(self._finished, job_id)
        return removed

    def verdict_lines(self, job_id: str, cursor: int, limit: int) -> list[str]:
        """Stored verdicts from position ``cursor`` on, as JSON text, in output order."""
        lines: list[str] = self._redis.lrange(
            f"{self._job(job_id)}:verdicts", cursor, cursor + limit - 1
        )
        return lines

    def ping(self) -> bool:
        """True when Redis accepts a write."""
        try:
            return bool(self._redis.set(f"{self.prefix}ping", "ok", ex=60))
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._redis.close()


def _free(lease: str | None, now: float) -> bool:
    """Whether a part with this entry in ``job:<id>:parts`` may be claimed."""
    if lease is None:
        return True
    if lease == "done":
        return False
    return float(lease.rsplit("|", 1)[1]) < now


def _record(job_id: str, fields: dict[str, str]) -> JobRecord:
    if not fields:
        raise NotFoundError(f"no job '{job_id}'")
    spec = JobSpec.model_validate_json(fields["spec"])
    return JobRecord(
        id=job_id,
        state=JobState(fields["state"]),
        spec=spec,
        rubrics=spec.rubrics,
        total=int(fields["total"]),
        summary=Summary.model_validate_json(fields["summary"]),
        error=fields["error"] or None,
        created_at=float(fields["created_at"]),
        updated_at=float(fields["updated_at"]),
        shape=JobShape(
            total=int(fields["total"]),
            transcripts=int(fields["transcripts"]) if fields.get("transcripts") else None,
            parts=int(fields.get("parts", 1)),
            part_size=int(fields.get("part_size", PART_SIZE)),
        ),
        batch=BatchState.model_validate_json(fields["batch"]) if fields.get("batch") else None,
    )
