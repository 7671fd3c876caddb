"""The processes a benchmark runs against: the fake judge, ``judge serve`` on SQLite, and the
scaled-out deployment (``redis-server``, ``judge serve`` with ``JUDGE_QUEUE_URL`` and
``JUDGE_CACHE_URL``, ``judge worker`` processes). Each reads its processes' CPU time and memory
from /proc and can run py-spy on them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@contextmanager
def fake_judge(latency_ms: int) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "judge.testing.fake_server", "--port", str(port),
         "--latency-ms", str(latency_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/v1"
        for _ in range(200):
            try:
                httpx.post(f"{base}/chat/completions", json={"messages": []}, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


class Deployment:
    """Processes that serve the jobs API at ``url``; ``graders`` are those that grade."""

    url: str
    processes: dict[str, subprocess.Popen[bytes]]

    @property
    def api_pid(self) -> int:
        return self.processes["api"].pid

    @property
    def grader_pids(self) -> list[int]:
        return [p.pid for name, p in self.processes.items() if name != "redis" and (
            name.startswith("worker") or not any(n.startswith("worker") for n in self.processes)
        )]  # fmt: skip

    def cpu_s(self) -> float:
        """CPU seconds of the judge processes (API and workers; not Redis's)."""
        return sum(cpu_s(p.pid) for name, p in self.processes.items() if name != "redis")

    def memory_mib(self, field: str = "VmHWM") -> float:
        return memory_mib(self.api_pid, field)

    @contextmanager
    def profiled(self, directory: Path, rate: int = 250) -> Iterator[dict[str, Path]]:
        """py-spy (``--gil``) on every judge process while the block runs; yields their files."""
        outputs: dict[str, Path] = {}
        spies = []
        for name, process in self.processes.items():
            if name == "redis":
                continue
            outputs[name] = directory / f"{name}.txt"
            spies.append(subprocess.Popen(
                ["py-spy", "record", "--gil", "--format", "raw", "-r", str(rate),
                 "-o", str(outputs[name]), "--pid", str(process.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        time.sleep(1.0)  # py-spy attaches
        try:
            yield outputs
        finally:
            for spy in spies:
                spy.send_signal(2)
            for spy in spies:
                spy.wait(60)

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _config(directory: Path, api_base: str) -> dict[str, str]:
    config = directory / "judge.yaml"
    profile = {"model": "openai/fake-judge", "api_base": api_base, "api_key_env": "FAKE_KEY"}
    config.write_text(json.dumps({"profiles": {"fake": profile}, "max_sync_pairs": 1000}))
    return {
        "JUDGE_CONFIG": str(config),
        "JUDGE_CACHE_DIR": str(directory / "cache"),
        "JUDGE_STATE_DIR": str(directory / "state"),
        "FAKE_KEY": "sk-fake",
    }


def _judge(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "judge.cli", *command],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=handle,
        )  # fmt: skip


class Server(Deployment):
    """``judge serve`` on SQLite, with a profile ``fake`` for the fake judge."""

    def __init__(
        self, api_base: str, concurrency: int, directory: Path, env: dict[str, str] | None = None
    ):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**_config(directory, api_base), "JUDGE_CONCURRENCY": str(concurrency),
                    **(env or {})}  # fmt: skip
        started = time.perf_counter()
        self.processes = {
            "api": _judge(["serve", "--port", str(port)], self.env, directory / "api.log")
        }
        wait_ready(f"{self.url}/readyz")
        self.ready_s = time.perf_counter() - started


class Scaled(Deployment):
    """``redis-server``, one ``judge serve`` on it (jobs, queue and cache in Redis) and
    ``workers`` ``judge worker`` processes, each with ``concurrency`` calls in flight."""

    def __init__(
        self,
        api_base: str,
        concurrency: int,
        directory: Path,
        workers: int = 1,
        env: dict[str, str] | None = None,
    ):
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError("redis-server is not installed")
        redis_port = free_port()
        self.processes = {"redis": subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )}  # fmt: skip
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.env = {
            **_config(directory, api_base),
            "JUDGE_QUEUE_URL": redis_url,
            "JUDGE_CACHE_URL": redis_url,
            "JUDGE_CONCURRENCY": str(concurrency),
            "JUDGE_JOB_HEARTBEAT_SECONDS": "5",
            **(env or {}),
        }
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        try:
            time.sleep(0.2)
            self.processes["api"] = _judge(
                ["serve", "--port", str(port)], self.env, directory / "api.log"
            )
            wait_ready(f"{self.url}/readyz")
            for n in range(workers):
                self.processes[f"worker{n}"] = _judge(
                    ["worker"], self.env, directory / f"worker{n}.log"
                )
            time.sleep(3.0)  # workers import, connect and start polling the queue
        except Exception:
            self.stop()
            raise


@contextmanager
def deployment(kind: str, api_base: str, concurrency: int, **options: Any) -> Iterator[Deployment]:
    """``sqlite`` (one server) or ``redis`` (API + workers) in a temporary directory."""
    with tempfile.TemporaryDirectory() as directory:
        made: Deployment = (Server if kind == "sqlite" else Scaled)(
            api_base, concurrency, Path(directory), **options
        )
        try:
            yield made
        finally:
            made.stop()


def submit(url: str, body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    reply = httpx.post(
        f"{url}/v1/jobs", content=body, headers={"content-type": content_type}, timeout=600
    )
    if reply.status_code != 202:
        raise RuntimeError(f"submission refused: {reply.status_code} {reply.text[:500]}")
    job: dict[str, Any] = reply.json()
    return job


def stream(url: str, job_id: str, on_line: Callable[[int], None] | None = None) -> int:
    """Read a job's verdict stream to its end; the number of lines."""
    count = 0
    with httpx.stream("GET", f"{url}/v1/jobs/{job_id}/verdicts", timeout=None) as lines:
        for _ in lines.iter_lines():
            count += 1
            if on_line is not None:
                on_line(count)
    return count


def run_job(
    url: str, body: dict[str, Any], on_line: Callable[[int], None] | None = None
) -> tuple[int, float]:
    """Submit a job (JSON) and read its stream to the end: (verdicts, seconds to the 202)."""
    encoded = json.dumps(body).encode()
    started = time.perf_counter()
    job = submit(url, encoded)
    accepted = time.perf_counter() - started
    return stream(url, job["id"], on_line), accepted
