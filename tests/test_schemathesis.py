"""Schemathesis, every check, against a live ``judge serve`` (without and with API keys): the
server answers every request its own OpenAPI document allows, refuses what it forbids, never
with a 5xx, and every answer matches the document.

Bounded (``--max-examples``) to stay inside CI's budget; one worker, because on CPython 3.11.7
hypothesis's lambda descriptions, built in threads, hit a CPython ``ast`` bug (gh-106905).
Hypothesis's ``filter_too_much`` health check is about the generator (the grading body's nested
unions reject many drafts), not the server, so it is off."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from judge.testing.fake_server import FakeJudgeServer
from tests.processes import JudgeProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("st") is None, reason="schemathesis is not installed"),
]


@pytest.mark.parametrize("key", [None, "schemathesis-key"])
def test_schemathesis_finds_nothing(
    tmp_path: Path, fake_server: FakeJudgeServer, key: str | None
) -> None:
    env = {"JUDGE_API_KEYS": f'["{key}"]'} if key else {}
    server = JudgeProcess(tmp_path, fake_server, env=env)
    server.start()
    try:
        command = [
            "st", "run", f"{server.base_url}/openapi.json", "--checks", "all", "--workers", "1",
            "--max-examples", os.environ.get("JUDGE_SCHEMATHESIS_EXAMPLES", "25"),
            "--seed", os.environ.get("JUDGE_SCHEMATHESIS_SEED", "20261201"), "--no-color",
            "--suppress-health-check", "filter_too_much",
        ]  # fmt: skip
        if key:
            command += ["--header", f"Authorization: Bearer {key}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=500)
    finally:
        server.stop()
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", report)
    assert generated is not None and int(generated.group(1)) > 500, report[-2000:]
    assert "error" not in report.split("SUMMARY", 1)[1].lower().replace("errors: 0", "")
