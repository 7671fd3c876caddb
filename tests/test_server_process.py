"""The real server process (``judge serve``) on 127.0.0.1: grading over HTTP, and a SIGKILL in the
middle of a job followed by a restart that resumes it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from judge.server.sqlite_jobs import SqliteJobStore
from judge.testing.fake_server import FakeJudgeServer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``judge serve`` in a subprocess, with its own state and cache directories."""

    def __init__(self, tmp_path: Path, fake_server: FakeJudgeServer):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "judge.yaml"
        config.write_text(
            json.dumps(
                {
                    "profiles": {
                        "fake": {
                            "model": "openai/fake-judge",
                            "api_base": fake_server.api_base,
                            "api_key_env": "FAKE_KEY",
                        }
                    }
                }
            )
        )
        self.env = {
            **os.environ,
            "JUDGE_CONFIG": str(config),
            "JUDGE_CACHE_DIR": str(tmp_path / "cache"),
            "JUDGE_STATE_DIR": str(tmp_path / "state"),
            "JUDGE_CONCURRENCY": "4",
            "JUDGE_JOB_LEASE_SECONDS": "1.5",
            "FAKE_KEY": "sk-fake",
        }
        self.log = tmp_path / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "judge.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"server did not become ready:\n{self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server(tmp_path: Path, fake_server: FakeJudgeServer) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, fake_server)
    process.start()
    yield process
    process.stop()


def test_grading_over_http_against_the_fake_judge(
    server: ServerProcess, fake_server: FakeJudgeServer
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


def transcript_of(request: dict[str, Any]) -> str:
    content = str(request["messages"][-1]["content"])
    return content.split("question number ")[1].split()[0]


def test_killed_server_resumes_its_job_without_repeating_calls(
    server: ServerProcess, fake_server: FakeJudgeServer, tmp_path: Path
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
