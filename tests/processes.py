"""Real ``judge`` processes (``judge serve``, ``judge worker``) for tests, on 127.0.0.1, each
with its own log file and JUDGE_* environment, judging with the fake judge as profile ``fake``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from judge.testing.fake_server import FakeJudgeServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JudgeProcess:
    """``judge serve`` (the default) or another ``judge`` command in a subprocess. A server's
    state and cache live under ``tmp_path`` unless ``env`` says otherwise."""

    def __init__(
        self,
        tmp_path: Path,
        fake_server: FakeJudgeServer,
        *,
        name: str = "server",
        command: tuple[str, ...] = ("serve",),
        env: dict[str, str] | None = None,
    ):
        self.command = command
        self.port = free_port() if command[0] == "serve" else None
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
                            # priced, as a server that offers budgets prices its judges
                            "input_cost_per_token": 1.5e-7,
                            "output_cost_per_token": 6e-7,
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
            **(env or {}),
        }
        self.log = tmp_path / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start, and for a server wait until /readyz answers 200."""
        port = ["--port", str(self.port)] if self.port is not None else []
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "judge.cli", *self.command, *port],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        if self.port is None:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                assert self.process.poll() is None, self.log.read_text()[-2000:]
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
