"""The job store contract, on SQLite (one server) and on Redis (replicas and workers)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from judge.batch import BatchState, BatchStatus, SubmittedBatch
from judge.config import Settings
from judge.errors import ConflictError, NotFoundError
from judge.jobs.queue import QueueDispatch
from judge.jobs.redis_store import RedisJobStore
from judge.jobs.sqlite_store import SqliteJobStore
from judge.jobs.store import JobMode, JobShape, JobSpec, JobState, JobStore, create_job
from judge.rubric import Rubric
from judge.transcript import Transcript
from judge.verdict import RubricRef, Status, Summary, Verdict

TRANSCRIPTS = [Transcript.from_prompt(f"question {i}", f"answer {i}", id=f"t{i}") for i in range(5)]


def _create(
    store: JobStore,
    refusal: Rubric,
    *,
    key: str | None = None,
    request_hash: str = "h1",
    part_size: int = 500,
) -> tuple[str, bool]:
    spec = JobSpec(rubrics=["refusal"])
    job, created = create_job(
        store,
        spec,
        TRANSCRIPTS,
        [refusal],
        request_hash=request_hash,
        idempotency_key=key,
        part_size=part_size,
    )
    return job.id, created


def _verdict(transcript_id: str, flagged: bool) -> Verdict:
    return Verdict(
        transcript_id=transcript_id,
        rubric=RubricRef(id="refusal", version="1", hash="x"),
        status=Status.GRADED,
        flagged=flagged,
    )


def test_a_new_job_is_queued_with_its_transcripts(store: JobStore, refusal: Rubric) -> None:
    job_id, created = _create(store, refusal)
    job = store.get(job_id)
    assert created and job.state == "queued" and job.total == 5 and job.rubrics == ["refusal"]
    assert [t.id for _, t in store.transcripts(job_id, 1, 2)] == ["t1", "t2"]
    assert [i for i, _ in store.transcripts(job_id, 3, 2**62)] == [3, 4]
    with pytest.raises(NotFoundError, match="no job 'nope'"):
        store.get("nope")


def test_an_idempotency_key_makes_one_job_per_request(store: JobStore, refusal: Rubric) -> None:
    first, created = _create(store, refusal, key="k")
    again, created_again = _create(store, refusal, key="k")
    assert created and not created_again and again == first
    with pytest.raises(ConflictError, match="Idempotency-Key 'k' was used for a different"):
        _create(store, refusal, key="k", request_hash="h2")
    other, _ = _create(store, refusal, key="k2")
    assert other != first


def test_a_lease_keeps_a_part_to_one_runner_until_it_runs_out(
    store: JobStore, refusal: Rubric
) -> None:
    job_id, _ = _create(store, refusal)
    claimed = store.claim_part(job_id, "a", lease_seconds=0.3)
    assert claimed is not None and claimed[1] == 0 and claimed[0].shape.parts == 1
    assert store.get(job_id).state == "running"
    assert store.claim_part(job_id, "b", lease_seconds=0.3) is None
    assert store.claim_part(job_id, "a", lease_seconds=0.3) is None  # it holds it already
    assert store.add_verdicts(job_id, "a", 0, [(0, _verdict("t0", True))], 0.3)
    time.sleep(0.35)
    assert store.claim_part(job_id, "b", lease_seconds=30) is not None  # a's lease ran out
    assert not store.add_verdicts(job_id, "a", 0, [(1, _verdict("t1", True))], 30)
    assert store.finished_pairs(job_id, 0, 5) == {0}
    assert store.finished_pairs(job_id, 1, 5) == set()


def test_storing_verdicts_renews_the_holders_leases(store: JobStore, refusal: Rubric) -> None:
    job_id, _ = _create(store, refusal)
    assert store.claim_part(job_id, "a", lease_seconds=1.0) is not None
    time.sleep(0.6)
    assert store.add_verdicts(job_id, "a", 0, [(0, _verdict("t0", True))], 1.0)
    time.sleep(0.6)  # 1.2 s after the claim: the lease held since the write
    assert store.claim_part(job_id, "b", lease_seconds=30) is None
    time.sleep(0.5)
    assert store.claim_part(job_id, "b", lease_seconds=30) is not None


def test_runners_share_a_job_part_by_part_and_the_last_part_ends_it(
    store: JobStore, refusal: Rubric
) -> None:
    job_id, _ = _create(store, refusal, part_size=2)  # 5 transcripts: parts 0, 1, 2
    assert store.get(job_id).shape.parts == 3
    a, b = store.claim_part(job_id, "a", 30), store.claim_part(job_id, "b", 30)
    assert a is not None and b is not None and (a[1], b[1]) == (0, 1)
    assert not store.add_verdicts(job_id, "a", 1, [(2, _verdict("t2", True))], 30)  # b's part
    assert store.add_verdicts(job_id, "b", 1, [(2, _verdict("t2", True))], 30)
    store.release(job_id, "a")
    again = store.claim_part(job_id, "c", 30)
    assert again is not None and again[1] == 0  # a gave it up: c takes it at once
    assert store.finish_part(job_id, "c", 0) == "running"
    assert store.finish_part(job_id, "b", 1) == "running"
    last = store.claim_part(job_id, "b", 30)
    assert last is not None and last[1] == 2
    assert store.claim_part(job_id, "d", 30) is None  # every part is done or held
    assert store.finish_part(job_id, "d", 2) == "running"  # not its part: nothing happens
    assert store.finish_part(job_id, "b", 2) == "succeeded"
    assert store.claim_part(job_id, "d", 30) is None
    assert not store.add_verdicts(job_id, "b", 2, [(4, _verdict("t4", True))], 30)  # it ended
    assert store.finish_part(job_id, "b", 2) == "succeeded"  # once: nothing changes


def test_verdicts_are_stored_once_per_pair_in_arrival_order(
    store: JobStore, refusal: Rubric
) -> None:
    job_id, _ = _create(store, refusal)
    store.claim_part(job_id, "a", 30)
    verdicts = [(3, _verdict("t3", True)), (1, _verdict("t1", False))]
    assert store.add_verdicts(job_id, "a", 0, verdicts, 30)
    verdicts = [(1, _verdict("t1", False)), (0, _verdict("t0", True))]
    assert store.add_verdicts(job_id, "a", 0, verdicts, 30)
    assert store.finished_pairs(job_id, 0, 5) == {0, 1, 3}
    lines = [Verdict.model_validate_json(line) for line in store.verdict_lines(job_id, 0, 100)]
    assert [v.transcript_id for v in lines] == ["t3", "t1", "t0"]
    assert store.verdict_lines(job_id, 1, 1) == store.verdict_lines(job_id, 0, 100)[1:2]
    summary = store.get(job_id).summary
    assert (summary.verdicts, summary.graded, summary.flagged) == (3, 3, 2)


def test_finishing_and_cancelling_end_the_job(store: JobStore, refusal: Rubric) -> None:
    done, _ = _create(store, refusal)
    store.claim_part(done, "a", 30)
    store.finish(done, "b", JobState.SUCCEEDED)  # holds no part: nothing happens
    assert store.get(done).state == "running"
    store.finish(done, "a", JobState.FAILED, "the judge is gone")
    assert (store.get(done).state, store.get(done).error) == ("failed", "the judge is gone")
    assert store.claim_part(done, "b", 30) is None
    assert store.cancel(done).state == "failed"  # a finished job stays finished

    cancelled, _ = _create(store, refusal)
    store.claim_part(cancelled, "a", 30)
    assert store.cancel(cancelled).state == "cancelled"
    assert not store.add_verdicts(cancelled, "a", 0, [(0, _verdict("t0", True))], 30)
    assert store.claim_part(cancelled, "b", 30) is None
    assert store.ping()


def test_idle_runners_find_free_parts_of_the_oldest_job(store: JobStore, refusal: Rubric) -> None:
    assert isinstance(store, SqliteJobStore | RedisJobStore)  # both hand out free parts
    older, _ = _create(store, refusal, part_size=3)  # parts 0 and 1
    newer, _ = _create(store, refusal)
    assert store.claim("a", 30, started_only=True) is None  # nothing is being graded yet
    first = store.claim("a", 30)
    assert first is not None and (first[0].id, first[1]) == (older, 0)
    helping = store.claim("b", 30, started_only=True)
    assert helping is not None and (helping[0].id, helping[1]) == (older, 1)
    assert store.claim("c", 30, started_only=True) is None  # the newer one has not started
    skipping = store.claim("c", 30, skip={older})
    assert skipping is not None and skipping[0].id == newer


def test_a_deleted_job_is_gone_with_its_key_and_its_runner_stores_nothing(
    store: JobStore, refusal: Rubric
) -> None:
    job_id, _ = _create(store, refusal, key="batch-9")
    store.claim_part(job_id, "a", 30)
    assert store.add_verdicts(job_id, "a", 0, [(0, _verdict("t0", True))], 30)

    store.delete(job_id)

    with pytest.raises(NotFoundError):
        store.get(job_id)
    assert store.verdict_lines(job_id, 0, 10) == []
    assert store.transcripts(job_id, 0, 10) == []
    assert not store.add_verdicts(job_id, "a", 0, [(1, _verdict("t1", False))], 30)
    again, created = _create(store, refusal, key="batch-9", request_hash="other")
    assert created and again != job_id  # the key may be used for a new job
    with pytest.raises(NotFoundError):
        store.delete(job_id)


def test_prune_removes_jobs_finished_before_the_time_and_nothing_else(
    store: JobStore, refusal: Rubric
) -> None:
    succeeded, _ = _create(store, refusal, key="old-1")
    store.claim_part(succeeded, "a", 30)
    assert store.add_verdicts(succeeded, "a", 0, [(0, _verdict("t0", True))], 30)
    assert store.finish_part(succeeded, "a", 0) == "succeeded"
    cancelled, _ = _create(store, refusal)
    store.cancel(cancelled)
    queued, _ = _create(store, refusal)
    running, _ = _create(store, refusal)
    store.claim_part(running, "b", 30)
    finished_at = time.time()

    assert store.prune(finished_at - 60, intakes_before=0) == 0  # not that old yet
    assert store.prune(finished_at + 1, intakes_before=0) == 2

    for gone in (succeeded, cancelled):
        with pytest.raises(NotFoundError):
            store.get(gone)
        assert store.transcripts(gone, 0, 10) == [] and store.verdict_lines(gone, 0, 10) == []
    assert {store.get(queued).state, store.get(running).state} == {"queued", "running"}
    again, created = _create(store, refusal, key="old-1", request_hash="other")
    assert created and again != succeeded  # its Idempotency-Key went with it
    assert store.prune(time.time() + 1, intakes_before=0) == 0


def test_an_abandoned_intake_is_removed(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    sqlite = SqliteJobStore(tmp_path / "jobs.sqlite3")
    left = sqlite.open_intake()
    sqlite.add_transcripts(left, 0, [t.model_dump_json() for t in TRANSCRIPTS])
    assert sqlite.prune(0, intakes_before=time.time() - 60) == 0
    assert len(sqlite.transcripts(left, 0, 10)) == 5  # still being taken in, maybe
    sqlite.prune(0, intakes_before=time.time() + 1)
    assert sqlite.transcripts(left, 0, 10) == []
    sqlite.close()

    url = request.getfixturevalue("redis_url")
    redis_store = RedisJobStore(url, prefix=f"judge-test-{uuid.uuid4().hex}:", intake_ttl=1)
    left = redis_store.open_intake()
    redis_store.add_transcripts(left, 0, [t.model_dump_json() for t in TRANSCRIPTS])
    assert len(redis_store.transcripts(left, 0, 10)) == 5
    time.sleep(1.2)
    assert redis_store.transcripts(left, 0, 10) == []  # its expiry did it
    redis_store.close()


_JOBS_BEFORE_PARTS = """CREATE TABLE jobs (
    id TEXT PRIMARY KEY, idempotency_key TEXT UNIQUE, request_hash TEXT NOT NULL,
    state TEXT NOT NULL, spec TEXT NOT NULL, rubrics TEXT NOT NULL, total INTEGER NOT NULL,
    summary TEXT NOT NULL, error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    lease_owner TEXT, lease_until REAL
)"""


def test_a_sqlite_file_from_before_parts_opens_with_its_jobs_as_one_part(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(_JOBS_BEFORE_PARTS)
        db.execute(
            "INSERT INTO jobs VALUES ('old', NULL, 'h', 'queued', ?, '[\"refusal\"]', 5, ?,"
            " NULL, 1.0, 1.0, NULL, NULL)",
            (JobSpec(rubrics=["refusal"]).model_dump_json(), Summary().model_dump_json()),
        )
    db.close()
    store = SqliteJobStore(path)
    SqliteJobStore(path).close()  # opened again: the columns are there, nothing added twice

    assert store.get("old").shape == JobShape(total=5)
    claimed = store.claim("a", 30)
    assert claimed is not None and claimed[1] == 0
    assert store.finish_part("old", "a", 0) == "succeeded"
    store.close()


def test_a_batch_job_keeps_its_provider_batches_under_its_lease(
    store: JobStore, refusal: Rubric
) -> None:
    spec = JobSpec(rubrics=["refusal"], mode=JobMode.BATCH)
    job, _ = create_job(store, spec, TRANSCRIPTS, [refusal], request_hash="h", idempotency_key=None)
    batch = SubmittedBatch(
        id="batch_1", model="m", status=BatchStatus.IN_PROGRESS, requests=5, judge=0, start=0, end=5
    )
    state = BatchState(calls="c", batches=[batch])
    assert store.get(job.id).batch is None and store.get(job.id).spec.mode == "batch"
    assert not store.set_batch(job.id, "a", state)  # nobody's lease yet
    assert not store.renew(job.id, "a", 30)

    store.claim_part(job.id, "a", 30)
    assert store.set_batch(job.id, "a", state)
    assert store.renew(job.id, "a", 30)  # while its batches run, no verdict is stored
    assert store.get(job.id).batch == state
    assert not store.set_batch(job.id, "b", BatchState(calls="other"))  # not the holder
    store.cancel(job.id)
    assert not store.set_batch(job.id, "a", BatchState(calls="other"))
    assert store.get(job.id).batch == state  # kept with the cancelled job, to cancel its batches


def test_a_database_from_before_batch_mode_gains_the_column(
    tmp_path: Path, refusal: Rubric
) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the jobs table as it was
        db.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, idempotency_key TEXT UNIQUE, request_hash "
            "TEXT NOT NULL, state TEXT NOT NULL, spec TEXT NOT NULL, rubrics TEXT NOT NULL, total "
            "INTEGER NOT NULL, summary TEXT NOT NULL, error TEXT, created_at REAL NOT NULL, "
            "updated_at REAL NOT NULL, lease_owner TEXT, lease_until REAL)"
        )
        db.execute(
            "INSERT INTO jobs VALUES ('old', NULL, 'h', 'succeeded', ?, ?, 0, '{}', NULL, 0, 0,"
            " NULL, NULL)",
            ('{"rubrics": ["refusal"]}', '["refusal"]'),
        )
    store = SqliteJobStore(path)
    assert store.get("old").batch is None and store.get("old").spec.mode == "live"
    job_id, _ = _create(store, refusal)
    store.claim_part(job_id, "a", 30)
    assert store.set_batch(job_id, "a", BatchState(calls="c"))
    store.close()


async def test_a_redis_stream_wakes_on_stored_verdicts_and_the_jobs_end(
    redis_url: str, refusal: Rubric
) -> None:
    """Streams on any replica learn of a worker's progress on their job from the store's
    channel at once, not at their next poll; streams of other jobs are not woken."""
    store = RedisJobStore(redis_url, prefix=f"judge-test-{uuid.uuid4().hex}:")
    dispatch = QueueDispatch(Settings(queue_url=redis_url), store.progress_channel)
    job_id, _ = _create(store, refusal)
    store.claim_part(job_id, "a", 30)
    woken: list[float] = []
    elsewhere = dispatch.progress("another-job")  # starts the listener
    probe = redis.Redis.from_url(redis_url)
    for _ in range(200):  # until it has subscribed
        subscribed: Any = probe.pubsub_numsub(store.progress_channel)  # [(channel, count)]
        if subscribed[0][1]:
            break
        await asyncio.sleep(0.05)
    probe.close()
    for change in (
        lambda: store.add_verdicts(job_id, "a", 0, [(0, _verdict("t0", True))], 30),
        lambda: store.add_verdicts(job_id, "a", 0, [(0, _verdict("t0", True))], 30),  # stored
        lambda: store.finish(job_id, "a", JobState.SUCCEEDED),
    ):
        event = dispatch.progress(job_id)
        await asyncio.sleep(0.1)  # nothing changed: the event stays unset
        assert not event.is_set()
        started = time.monotonic()
        await asyncio.to_thread(change)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 2)
        woken.append(time.monotonic() - started if event.is_set() else float("inf"))
    await dispatch.close()
    store.close()
    assert woken[0] < 1 and woken[2] < 1  # nothing here polls: only a message sets the event
    assert woken[1] == float("inf")  # nothing new was stored: no message
    assert not elsewhere.is_set()


async def test_a_lost_progress_channel_leaves_streams_polling_and_is_not_retried_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatch = QueueDispatch(Settings(queue_url="redis://127.0.0.1:1/0"), "judge:progress")
    event = dispatch.progress("j")  # nothing listens on port 1
    for _ in range(50):
        await asyncio.sleep(0.05)
        if "lost the job progress channel" in caplog.text:
            break
    for _ in range(20):  # streams polling for a second
        assert dispatch.progress("j") is event
        await asyncio.sleep(0.05)
    assert caplog.text.count("lost the job progress channel") == 1
    await dispatch.close()


def test_a_sqlite_store_written_a_moment_ago_is_ready_without_waiting_on_a_writer(
    tmp_path: Path, refusal: Rubric
) -> None:
    """While another connection holds the write lock, a probe would wait (up to 30 s); the
    store's own commit a moment ago stands for it."""
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    _create(store, refusal)
    writer = sqlite3.connect(tmp_path / "jobs.sqlite3", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    assert store.ping()
    assert time.monotonic() - started < 0.5
    writer.execute("ROLLBACK")
    writer.close()
    store.close()
