"""The real server process (``judge serve``) on 127.0.0.1: grading over HTTP, and a SIGKILL in the
middle of a job followed by a restart that resumes it."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from judge.jobs.sqlite_store import SqliteJobStore
from judge.testing.fake_server import FakeJudgeServer
from tests.processes import JudgeProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path, fake_server: FakeJudgeServer) -> Iterator[JudgeProcess]:
    process = JudgeProcess(tmp_path, fake_server)
    process.start()
    yield process
    process.stop()


def test_grading_over_http_against_the_fake_judge(
    server: JudgeProcess, fake_server: FakeJudgeServer
) -> None:
    body = {
        "transcripts": [{"id": "a", "prompt": "q", "response": "Sure: do X."}],
        "rubrics": ["refusal"],
        "judge": {"profile": "fake"},
    }
    response = httpx.post(f"{server.base_url}/v1/grade", json=body, timeout=30)

    assert response.status_code == 200, response.text
    [verdict] = response.json()["verdicts"]
    assert verdict["status"] == "graded" and verdict["judges"][0]["model"] == "openai/fake-judge"
    assert fake_server.request_count == 1
    log = server.log.read_text()
    assert '"message": "request"' in log and '"path": "/v1/grade"' in log
    records = [json.loads(line) for line in log.splitlines()]  # every line is JSON
    assert not [r for r in records if "color_message" in r or "\x1b" in json.dumps(r)]
    assert "<object object at" not in log  # litellm's redaction marker


def transcript_of(request: dict[str, Any]) -> str:
    content = str(request["messages"][-1]["content"])
    return content.split("question number ")[1].split()[0]


def test_killed_server_resumes_its_job_without_repeating_calls(
    server: JudgeProcess, fake_server: FakeJudgeServer, tmp_path: Path
) -> None:
    fake_server.latency = 0.02
    total = 300
    body = {
        "transcripts": [
            {"id": f"t{i}", "prompt": f"question number {i} ?", "response": f"answer {i}"}
            for i in range(total)
        ],
        "rubrics": ["refusal"],
        "judge": {"profile": "fake"},
    }
    try:
        job_id = httpx.post(f"{server.base_url}/v1/jobs", json=body, timeout=30).json()["id"]
        job_url = f"{server.base_url}/v1/jobs/{job_id}"
        while httpx.get(job_url, timeout=5).json()["summary"]["verdicts"] < 60:
            time.sleep(0.02)

        server.kill()
        calls_before_kill = fake_server.request_count
        store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
        stored_before = [
            json.loads(v)["transcript_id"] for v in store.verdict_lines(job_id, 0, total)
        ]
        store.close()
        assert 60 <= len(stored_before) < total

        server.start()
        deadline = time.monotonic() + 120
        while httpx.get(job_url, timeout=5).json()["state"] != "succeeded":
            assert time.monotonic() < deadline, "the resumed job did not finish"
            time.sleep(0.1)
        stream = httpx.get(f"{job_url}/verdicts", timeout=30)
        delivered = [json.loads(line)["transcript_id"] for line in stream.text.splitlines()]
        resumed = httpx.get(
            f"{job_url}/verdicts", params={"cursor": len(stored_before)}, timeout=30
        )
    finally:
        fake_server.latency = 0.0

    assert sorted(delivered) == sorted(f"t{i}" for i in range(total))  # each exactly once
    assert delivered[: len(stored_before)] == stored_before  # the order survives the restart
    assert resumed.text.splitlines() == stream.text.splitlines()[len(stored_before) :]
    calls = Counter(transcript_of(request) for request in fake_server.requests)
    assert all(calls[t.removeprefix("t")] == 1 for t in stored_before)  # none graded twice
    repeated = sum(n - 1 for n in calls.values())
    assert repeated <= 4  # at most the calls in flight at the kill (JUDGE_CONCURRENCY=4)
    print(
        f"\nkill-and-resume: {len(stored_before)} verdicts stored before the kill, "
        f"{total - len(stored_before)} after; {calls_before_kill} judge calls before the kill, "
        f"{fake_server.request_count} in all for {total} verdicts ({repeated} repeated)"
    )
