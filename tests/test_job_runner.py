"""The job runner on a SQLite store with a scripted judge: what it grades, how it feeds calls."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from judge.cache import CachePolicy, MemoryCache
from judge.config import Settings
from judge.grading import Grader
from judge.jobs.runner import JobRunner
from judge.jobs.sqlite_store import SqliteJobStore
from judge.jobs.store import JobSpec, create_job
from judge.plan import JudgePlan
from judge.rubric import Rubric, RubricLibrary
from judge.selection import GraderPool, JudgeSelection
from judge.testing.scripted_judge import ScriptedJudge, constant
from judge.transcript import Transcript
from judge.verdict import Verdict


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

    def add_verdicts(self, job_id: str, owner: str, verdicts: list[tuple[int, Verdict]]) -> bool:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().add_verdicts(job_id, owner, verdicts)


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

    assert await runner.run_job(job.id) == "succeeded"  # its lease holder resumes it
    assert store.get(job.id).summary.verdicts == 3 and len(judge.calls) == 3  # cache: no repeats
    store.close()
