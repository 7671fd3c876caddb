"""Scale-out for real: two ``judge serve`` replicas and a ``judge worker`` sharing one Redis (job
store, queue and verdict cache), each a separate process on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from judge.testing.fake_server import FakeJudgeServer
from tests.conftest import REPO
from tests.processes import JudgeProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(
    tmp_path: Path, fake_server: FakeJudgeServer, redis_db: str
) -> Iterator[dict[str, JudgeProcess]]:
    """Two API replicas (started) and a worker (not yet started), configured as in compose."""
    env = {
        "JUDGE_QUEUE_URL": redis_db,
        "JUDGE_CACHE_URL": redis_db,
        "JUDGE_JOB_HEARTBEAT_SECONDS": "2",  # stamped on a job when an API enqueues it
    }
    processes: dict[str, JudgeProcess] = {}
    for name, command in [("api-a", "serve"), ("api-b", "serve"), ("worker", "worker")]:
        home = tmp_path / name
        home.mkdir()
        processes[name] = JudgeProcess(home, fake_server, name=name, command=(command,), env=env)
    processes["worker"].env["JUDGE_WORKER_METRICS_PORT"] = str(free_port())
    try:
        processes["api-a"].start()
        processes["api-b"].start()
        yield processes
    finally:
        for process in processes.values():
            process.stop()


def _examples() -> list[dict[str, Any]]:
    lines = (REPO / "examples" / "transcripts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_a_job_sent_to_one_replica_is_graded_by_the_worker_and_served_by_the_other(
    deployment: dict[str, JudgeProcess], fake_server: FakeJudgeServer
) -> None:
    a, b, worker = deployment["api-a"].base_url, deployment["api-b"].base_url, deployment["worker"]
    body = {"transcripts": _examples(), "rubrics": ["refusal"], "judge": {"profile": "fake"}}

    created = httpx.post(f"{a}/v1/jobs", json=body, headers={"idempotency-key": "k1"}, timeout=30)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    seen = httpx.get(f"{b}/v1/jobs/{job_id}", timeout=10).json()
    assert (seen["state"], seen["total"]) == ("queued", 12)  # the replicas grade nothing
    replayed = httpx.post(f"{b}/v1/jobs", json=body, headers={"idempotency-key": "k1"}, timeout=30)
    assert replayed.json()["id"] == job_id and replayed.headers["idempotent-replayed"] == "true"

    worker.start()
    stream = httpx.get(f"{b}/v1/jobs/{job_id}/verdicts", timeout=180)  # follows until the end
    verdicts = [json.loads(line) for line in stream.text.splitlines()]
    job = httpx.get(f"{a}/v1/jobs/{job_id}", timeout=10).json()

    assert len(verdicts) == 12 and len({v["transcript_id"] for v in verdicts}) == 12
    assert job["state"] == "succeeded" and job["summary"]["verdicts"] == 12
    paid = job["summary"]["judge_calls"]
    assert paid > 0 and fake_server.request_count == paid  # one call per verdict that needs one

    port = worker.env["JUDGE_WORKER_METRICS_PORT"]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert f'judge_calls_total{{model="openai/fake-judge",outcome="ok"}} {paid}.0' in metrics

    for replica in (a, b):  # the worker's calls are in the shared cache
        graded = httpx.post(f"{replica}/v1/grade", json=body, timeout=30).json()
        assert graded["summary"]["cache_hits"] == paid and graded["summary"]["judge_calls"] == 0
    assert fake_server.request_count == paid


def test_two_replicas_asked_for_the_same_verdict_at_once_pay_for_it_once(
    deployment: dict[str, JudgeProcess], fake_server: FakeJudgeServer
) -> None:
    body = {
        "transcripts": [{"id": "x", "prompt": "Name a prime.", "response": "Seven."}],
        "rubrics": ["refusal"],
        "judge": {"profile": "fake"},
    }
    replicas = [deployment["api-a"].base_url, deployment["api-b"].base_url] * 2
    fake_server.latency = 0.5
    try:
        with ThreadPoolExecutor(len(replicas)) as pool:
            responses = list(
                pool.map(lambda url: httpx.post(f"{url}/v1/grade", json=body, timeout=30), replicas)
            )
    finally:
        fake_server.latency = 0.0

    summaries = [r.json()["summary"] for r in responses]
    assert all(s["graded"] == 1 for s in summaries)
    assert fake_server.request_count == 1
    assert sorted(s["judge_calls"] for s in summaries) == [0, 0, 0, 1]


@pytest.mark.timeout(180)
def test_a_killed_workers_job_is_resumed_by_another_worker(
    deployment: dict[str, JudgeProcess], fake_server: FakeJudgeServer, tmp_path: Path
) -> None:
    """SIGKILL the worker mid-job; a second worker gets the job back from the queue once the
    first one's heartbeat is overdue (2 s here), and grades only what is missing."""
    first = deployment["worker"]
    second_home = tmp_path / "worker-2"
    second_home.mkdir()
    second = JudgeProcess(
        second_home, fake_server, name="worker-2", command=("worker",), env=first.env
    )
    a = deployment["api-a"].base_url
    total = 200
    body = {
        "transcripts": [
            {"id": f"t{i}", "prompt": f"question number {i} ?", "response": f"answer {i}"}
            for i in range(total)
        ],
        "rubrics": ["refusal"],
        "judge": {"profile": "fake"},
    }
    fake_server.latency = 0.05
    try:
        first.start()
        job_id = httpx.post(f"{a}/v1/jobs", json=body, timeout=30).json()["id"]
        while httpx.get(f"{a}/v1/jobs/{job_id}", timeout=5).json()["summary"]["verdicts"] < 20:
            time.sleep(0.02)
        first.kill()
        killed_at = time.monotonic()
        stored_before = httpx.get(f"{a}/v1/jobs/{job_id}", timeout=5).json()["summary"]["verdicts"]
        second.start()
        deadline = killed_at + 60
        while httpx.get(f"{a}/v1/jobs/{job_id}", timeout=5).json()["state"] != "succeeded":
            assert time.monotonic() < deadline, second.log.read_text()[-2000:]
            time.sleep(0.5)
        recovered_s = time.monotonic() - killed_at
        lines = httpx.get(f"{a}/v1/jobs/{job_id}/verdicts", timeout=30).text.splitlines()
    finally:
        fake_server.latency = 0.0
        second.stop()

    delivered = [json.loads(line)["transcript_id"] for line in lines]
    assert sorted(delivered) == sorted(f"t{i}" for i in range(total))  # each exactly once
    repeated = fake_server.request_count - total
    assert 0 <= repeated <= 4  # at most the calls in flight at the kill (JUDGE_CONCURRENCY=4)
    print(
        f"\nworker killed after {stored_before} of {total} verdicts; the job finished "
        f"{recovered_s:.0f} s later on the second worker; {repeated} judge calls repeated"
    )
