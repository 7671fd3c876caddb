"""The job runner with a scripted judge: what it grades, how it feeds calls, how runners share a
job (on SQLite and on Redis)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import redis

from judge.cache import CachePolicy, MemoryCache
from judge.config import Settings
from judge.errors import NotFoundError
from judge.grading import Grader
from judge.jobs.redis_store import RedisJobStore
from judge.jobs.runner import JobRunner
from judge.jobs.sqlite_store import SqliteJobStore
from judge.jobs.store import JobSpec, JobStore, create_job
from judge.plan import JudgePlan
from judge.rubric import Rubric, RubricLibrary
from judge.selection import GraderPool, JudgeSelection
from judge.testing.scripted_judge import ScriptedJudge, constant
from judge.transcript import Transcript
from judge.verdict import RubricRef, Status, Verdict


class ScriptedPool(GraderPool):
    """Every job grades with one grader on a scripted judge."""

    def __init__(self, grader: Grader):
        super().__init__(Settings(), grader.cache)
        self.the_grader = grader

    def grader(self, selection: JudgeSelection, policy: CachePolicy = CachePolicy.USE) -> Grader:
        return self.the_grader


async def test_calls_keep_flowing_across_the_chunks_a_job_is_read_in(
    tmp_path: Path, library: RubricLibrary, refusal: Rubric
) -> None:
    """Chunks of 3 transcripts and 4 calls allowed at once: if grading waited for each chunk to
    drain before reading the next, never more than 3 calls would be in flight."""
    judge = ScriptedJudge(constant(refusal="full_compliance"), delay=0.05)
    grader = Grader(JudgePlan([judge]), MemoryCache(), concurrency=4)
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    transcripts = [Transcript.from_prompt(f"q{i}", f"a{i}", id=f"t{i}") for i in range(10)]
    spec = JobSpec(rubrics=["refusal"])
    job, _ = create_job(store, spec, transcripts, [refusal], request_hash="h", idempotency_key=None)
    runner = JobRunner(store, ScriptedPool(grader), library, lease_seconds=30, chunk_size=3)

    assert await runner.run_job(job.id) == "succeeded"

    lines = store.verdict_lines(job.id, 0, 100)
    graded = sorted(Verdict.model_validate_json(line).transcript_id for line in lines)
    assert graded == sorted(f"t{i}" for i in range(10))
    assert len(judge.calls) == 10 and judge.peak_in_flight == 4
    store.close()


class FlakyStore(SqliteJobStore):
    """A SQLite store whose first verdict write finds the database unavailable."""

    failures = 1

    def add_verdicts(
        self,
        job_id: str,
        owner: str,
        part: int,
        verdicts: list[tuple[int, Verdict]],
        lease_seconds: float,
    ) -> bool:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().add_verdicts(job_id, owner, part, verdicts, lease_seconds)


async def test_a_store_outage_leaves_the_job_to_be_resumed_not_failed(
    tmp_path: Path, library: RubricLibrary, refusal: Rubric
) -> None:
    judge = ScriptedJudge(constant(refusal="full_refusal"))
    grader = Grader(JudgePlan([judge]), MemoryCache(), concurrency=2)
    store = FlakyStore(tmp_path / "jobs.sqlite3")
    transcripts = [Transcript.from_prompt(f"q{i}", f"a{i}", id=f"t{i}") for i in range(3)]
    spec = JobSpec(rubrics=["refusal"])
    job, _ = create_job(store, spec, transcripts, [refusal], request_hash="h", idempotency_key=None)
    runner = JobRunner(store, ScriptedPool(grader), library, lease_seconds=30)

    with pytest.raises(sqlite3.OperationalError):
        await runner.run_job(job.id)
    assert store.get(job.id).state == "running"  # not failed

    assert await runner.run_job(job.id) == "succeeded"  # resumed: its part was given up
    assert store.get(job.id).summary.verdicts == 3 and len(judge.calls) == 3  # cache: no repeats
    store.close()


def _job(store: JobStore, refusal: Rubric, count: int, part_size: int) -> str:
    transcripts = [Transcript.from_prompt(f"q{i}", f"a{i}", id=f"t{i}") for i in range(count)]
    spec = JobSpec(rubrics=["refusal"])
    job, _ = create_job(
        store, spec, transcripts, [refusal], request_hash="h", idempotency_key=None,
        part_size=part_size,
    )  # fmt: skip
    return job.id


def _graded(store: JobStore, job_id: str) -> list[str]:
    lines = store.verdict_lines(job_id, 0, 10_000)
    return sorted(Verdict.model_validate_json(line).transcript_id for line in lines)


async def test_two_runners_grade_one_job_together_each_pair_once(
    store: JobStore, library: RubricLibrary, refusal: Rubric
) -> None:
    """Two runners on one store stand for two workers: each leases parts of the job in turn,
    so both grade, no pair is graded twice, and the job ends when its last part is done."""
    job_id = _job(store, refusal, 40, part_size=4)
    judges = [ScriptedJudge(constant(refusal="full_compliance"), delay=0.02) for _ in range(2)]
    pools = [ScriptedPool(Grader(JudgePlan([j]), MemoryCache(), concurrency=4)) for j in judges]
    runners = [JobRunner(store, pool, library, lease_seconds=30) for pool in pools]

    states = await asyncio.gather(*(runner.run_job(job_id) for runner in runners))

    assert states == ["succeeded", "succeeded"]
    assert _graded(store, job_id) == sorted(f"t{i}" for i in range(40))
    calls = [len(judge.calls) for judge in judges]
    assert sum(calls) == 40 and min(calls) >= 8  # both took parts; no call was made twice
    assert store.get(job_id).summary.verdicts == 40


async def test_a_part_whose_runner_died_is_taken_over_and_only_its_missing_pairs_graded(
    store: JobStore, library: RubricLibrary, refusal: Rubric
) -> None:
    job_id = _job(store, refusal, 6, part_size=3)
    dead = store.claim_part(job_id, "a runner that died", lease_seconds=0.5)
    assert dead is not None and dead[1] == 0
    done = Verdict(
        transcript_id="t1", rubric=RubricRef(id="refusal", version="1", hash="x"),
        status=Status.GRADED, flagged=True,
    )  # fmt: skip
    assert store.add_verdicts(job_id, "a runner that died", 0, [(1, done)], 0.5)
    judge = ScriptedJudge(constant(refusal="full_refusal"))
    grader = Grader(JudgePlan([judge]), MemoryCache(), concurrency=2)
    runner = JobRunner(store, ScriptedPool(grader), library, lease_seconds=0.5)

    assert await runner.run_job(job_id) == "succeeded"

    assert _graded(store, job_id) == [f"t{i}" for i in range(6)]
    assert sorted(str(call.transcript.id) for call in judge.calls) == ["t0", "t2", "t3", "t4", "t5"]


async def test_a_job_stored_before_jobs_had_parts_runs_as_one_part(
    store: JobStore, library: RubricLibrary, refusal: Rubric
) -> None:
    job_id = _job(store, refusal, 5, part_size=2)
    _forget_parts(store, job_id)
    assert (store.get(job_id).shape.transcripts, store.get(job_id).shape.parts) == (None, 1)
    judge = ScriptedJudge(constant(refusal="full_refusal"))
    runner = JobRunner(
        store, ScriptedPool(Grader(JudgePlan([judge]), MemoryCache())), library, lease_seconds=30
    )

    assert await runner.run_job(job_id) == "succeeded"

    assert _graded(store, job_id) == [f"t{i}" for i in range(5)] and len(judge.calls) == 5


async def test_cancelling_a_job_stops_every_runner_on_it(
    store: JobStore, library: RubricLibrary, refusal: Rubric
) -> None:
    job_id = _job(store, refusal, 60, part_size=5)
    judges = [ScriptedJudge(constant(refusal="full_compliance"), delay=0.05) for _ in range(2)]
    pools = [ScriptedPool(Grader(JudgePlan([j]), MemoryCache(), concurrency=2)) for j in judges]
    runners = [JobRunner(store, pool, library, lease_seconds=30) for pool in pools]
    running = [asyncio.create_task(runner.run_job(job_id)) for runner in runners]
    while store.get(job_id).summary.verdicts < 4:
        await asyncio.sleep(0.02)

    assert store.cancel(job_id).state == "cancelled"

    assert await asyncio.gather(*running) == ["cancelled", "cancelled"]
    stored = store.get(job_id).summary.verdicts
    assert 4 <= stored < 60 and stored == len(store.verdict_lines(job_id, 0, 100))
    await asyncio.sleep(0.3)
    assert len(store.verdict_lines(job_id, 0, 100)) == stored  # nothing stored after it


async def test_deleting_a_job_stops_its_runner_without_calling_it_a_failure(
    store: JobStore, library: RubricLibrary, refusal: Rubric, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = _job(store, refusal, 60, part_size=5)
    judge = ScriptedJudge(constant(refusal="full_compliance"), delay=0.05)
    runner = JobRunner(
        store, ScriptedPool(Grader(JudgePlan([judge]), MemoryCache(), concurrency=2)), library,
        lease_seconds=30,
    )  # fmt: skip
    running = asyncio.create_task(runner.run_job(job_id))
    while store.get(job_id).summary.verdicts < 4:
        await asyncio.sleep(0.02)

    store.delete(job_id)

    with pytest.raises(NotFoundError):  # the worker's queue task drops a job that is gone
        await running
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert len(judge.calls) < 60


def _forget_parts(store: JobStore, job_id: str) -> None:
    """Make a job look like one stored before jobs had parts."""
    if isinstance(store, SqliteJobStore):
        with sqlite3.connect(store.path) as db:
            db.execute("UPDATE jobs SET transcripts = NULL, parts = 1 WHERE id = ?", (job_id,))
    else:
        assert isinstance(store, RedisJobStore)
        client = redis.Redis.from_url(store.url)
        client.hdel(f"{store.prefix}job:{job_id}", "transcripts", "parts", "part_size")
        client.zrem(f"{store.prefix}active", job_id)
        client.close()
