"""The job runner on a SQLite store with a scripted judge: what it grades, how it feeds calls."""

from __future__ import annotations

from pathlib import Path

from judge.cache import CachePolicy, MemoryCache
from judge.config import Settings
from judge.grading import Grader, JudgePlan
from judge.rubric import Rubric, RubricLibrary
from judge.server.jobs import JobRunner
from judge.server.judging import GraderPool
from judge.server.schemas import GradeCreate, JudgeSelection
from judge.server.sqlite_jobs import SqliteJobStore
from judge.testing.scripted_judge import ScriptedJudge, constant
from judge.transcript import Transcript
from judge.verdict import Verdict


class ScriptedPool(GraderPool):
    """Every job grades with one grader on a scripted judge."""

    def __init__(self, grader: Grader):
        super().__init__(Settings(), grader.cache)
        self.the_grader = grader

    def grader(self, selection: JudgeSelection, policy: CachePolicy = "use") -> Grader:
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
    spec = GradeCreate(rubrics=["refusal"], transcripts=[{"prompt": "q", "response": "a"}])
    job, _ = store.create(spec, transcripts, [refusal], request_hash="h", idempotency_key=None)
    runner = JobRunner(store, ScriptedPool(grader), library, lease_seconds=30, chunk_size=3)

    assert await runner.run_job(job.id) == "succeeded"

    lines = store.verdict_lines(job.id, 0, 100)
    graded = sorted(Verdict.model_validate_json(line).transcript_id for line in lines)
    assert graded == sorted(f"t{i}" for i in range(10))
    assert len(judge.calls) == 10 and judge.peak_in_flight == 4
    store.close()
