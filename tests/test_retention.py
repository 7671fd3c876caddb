"""Finished jobs expire (``JUDGE_JOB_TTL``): the server prunes them as it runs, on SQLite and on
Redis, and ``judge jobs prune`` does it at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from judge.cli import main
from judge.jobs.retention import interval
from judge.jobs.sqlite_store import SqliteJobStore
from judge.jobs.store import JobSpec, JobState, create_job
from judge.rubric import Rubric
from judge.transcript import Transcript
from tests.test_job_intake import Served, ndjson, post, record, serve

SPEC = {"rubrics": ["refusal"]}


@pytest.fixture(params=["sqlite", "redis"])
async def pruning(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    """A server that keeps finished jobs half a second."""
    async for served in serve(request, tmp_path, job_ttl=0.5):
        yield served


async def test_the_server_prunes_a_finished_job_after_its_ttl(pruning: Served) -> None:
    finished = (await post(pruning, ndjson(SPEC, [record(1)]), "application/x-ndjson")).json()
    store = pruning.store
    redis = pruning.settings.queue_url is not None
    if redis:  # no worker here: finish it as one would (the SQLite server grades it itself)
        store.claim_part(finished["id"], "worker", 30)
        assert store.finish_part(finished["id"], "worker", 0) == JobState.SUCCEEDED
        unfinished = await post(pruning, ndjson(SPEC, [record(2)]), "application/x-ndjson")

    deadline = time.monotonic() + 10
    while (await pruning.client.get(f"/v1/jobs/{finished['id']}")).status_code != 404:
        assert time.monotonic() < deadline, "the finished job was not pruned"
        await asyncio.sleep(0.2)

    assert pruning.leftovers() == (2 if redis else 0)  # the queued one: its hash, transcripts
    if redis:
        kept = await pruning.client.get(f"/v1/jobs/{unfinished.json()['id']}")
        assert kept.json()["state"] == "queued"  # a job is never pruned before it finishes


def test_prune_runs_a_quarter_of_the_ttl_apart_within_bounds() -> None:
    assert (interval(0.5), interval(400), interval(7 * 86400)) == (1.0, 100.0, 600.0)


def test_judge_jobs_prune_removes_finished_jobs_now(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refusal: Rubric,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JUDGE_STATE_DIR", str(tmp_path))
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    transcripts = [Transcript.from_prompt("Stop a process?", "kill it")]
    job, _ = create_job(
        store, JobSpec(rubrics=["refusal"]), transcripts, [refusal],
        request_hash="h", idempotency_key=None,
    )  # fmt: skip
    store.cancel(job.id)
    store.close()

    assert main(["jobs", "prune"]) == 2
    assert "give --older-than SECONDS, or set JUDGE_JOB_TTL" in capsys.readouterr().err
    assert main(["jobs", "prune", "--older-than", "0"]) == 0
    assert "removed 1 jobs finished more than 0 s ago" in capsys.readouterr().out
    assert main(["jobs", "prune", "--older-than", "0"]) == 0
    assert "removed 0 jobs" in capsys.readouterr().out
