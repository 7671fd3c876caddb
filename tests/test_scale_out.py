"""Scale-out for real: two ``judge serve`` replicas and a ``judge worker`` sharing one Redis (job
store, queue and verdict cache), each a separate process on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from judge.testing.fake_server import FakeJudgeServer
from tests.conftest import REPO
from tests.processes import JudgeProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    """An empty Redis database of its own (number 7) for the processes of one test."""
    url = urlunsplit(urlsplit(redis_url)._replace(path="/7"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def deployment(
    tmp_path: Path, fake_server: FakeJudgeServer, redis_db: str
) -> Iterator[dict[str, JudgeProcess]]:
    """Two API replicas (started) and a worker (not yet started), configured as in compose."""
    env = {"JUDGE_QUEUE_URL": redis_db, "JUDGE_CACHE_URL": redis_db}
    processes: dict[str, JudgeProcess] = {}
    for name, command in [("api-a", "serve"), ("api-b", "serve"), ("worker", "worker")]:
        home = tmp_path / name
        home.mkdir()
        processes[name] = JudgeProcess(home, fake_server, name=name, command=(command,), env=env)
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
    stream = httpx.get(f"{b}/v1/jobs/{job_id}/verdicts", timeout=60)  # follows until the end
    verdicts = [json.loads(line) for line in stream.text.splitlines()]
    job = httpx.get(f"{a}/v1/jobs/{job_id}", timeout=10).json()

    assert len(verdicts) == 12 and len({v["transcript_id"] for v in verdicts}) == 12
    assert job["state"] == "succeeded" and job["summary"]["verdicts"] == 12
    paid = job["summary"]["judge_calls"]
    assert paid > 0 and fake_server.request_count == paid  # one call per verdict that needs one

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
