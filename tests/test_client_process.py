"""The client against a real ``judge serve`` process: round trips, error bodies, idempotent
submits, the README's example, and a verdict stream read while the server is killed twice."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from judge.client import AsyncClient, Client, JudgeAPIError
from judge.selection import JudgeSelection
from judge.testing.fake_server import FakeJudgeServer
from judge.transcript import Transcript
from judge.verdict import Verdict
from tests.processes import JudgeProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
KEY = "k-test"
RECORDS = [
    json.loads(line) for line in (REPO / "examples" / "transcripts.jsonl").read_text().splitlines()
]


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, _server: FakeJudgeServer
) -> Iterator[JudgeProcess]:
    """One server for the round trips, with an API key configured."""
    process = JudgeProcess(
        tmp_path_factory.mktemp("service"), _server, env={"JUDGE_API_KEYS": json.dumps([KEY])}
    )
    process.start()
    yield process
    process.stop()


class Recording(httpx.HTTPTransport):
    """The real transport, keeping every response (headers included) the client got."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: list[httpx.Response] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.responses.append(response)
        return response


def test_grade_rubrics_judges_and_report_round_trip(
    service: JudgeProcess, fake_server: FakeJudgeServer
) -> None:
    transcript = Transcript.from_prompt("How do I kill a process?", "Run kill.", id="obj")
    with Client(service.base_url, api_key=KEY) as client:
        graded = client.grade([transcript, RECORDS[1]], ["refusal"], judge="fake")
        rubrics = {rubric.id: rubric for rubric in client.rubrics()}
        refusal = client.rubric("refusal")
        judges = client.judges()
        report = client.report(verdicts=graded.verdicts, by=["rubric"])

    assert [v.transcript_id for v in graded.verdicts] == ["obj", RECORDS[1]["id"]]
    assert all(isinstance(v, Verdict) and v.status == "graded" for v in graded.verdicts)
    assert {v.judges[0].model for v in graded.verdicts} == {"openai/fake-judge"}
    assert graded.summary.graded == 2 and fake_server.request_count == 2
    assert len(rubrics) == 11 and rubrics["refusal"].hash == refusal.hash
    assert refusal.definition["id"] == "refusal" and refusal.output_schema is not None
    assert [p.name for p in judges.profiles] == ["fake"] and judges.offline == "offline"
    [row] = report.rates
    assert row.group == {"rubric": "refusal"} and row.graded == 2
    assert row.flagged == graded.summary.flagged


def test_the_same_submit_twice_makes_one_job(service: JudgeProcess) -> None:
    transport = Recording()
    with Client(service.base_url, api_key=KEY, transport=transport) as client:
        first = client.submit(RECORDS, ["refusal"])
        again = client.submit(list(RECORDS), "refusal", judge=JudgeSelection())
        other = client.submit(RECORDS, ["refusal"], cache="refresh")
        done = client.wait(first.id, timeout=30, poll=0.05)

    assert again.id == first.id != other.id
    replayed = [r.headers.get("idempotent-replayed") for r in transport.responses[:3]]
    assert replayed == [None, "true", None]
    assert done.state == "succeeded" and done.summary.verdicts == len(RECORDS)


def test_error_replies_arrive_as_exceptions_with_their_problem(service: JudgeProcess) -> None:
    with Client(service.base_url) as anonymous, pytest.raises(JudgeAPIError) as unauthorized:
        anonymous.rubrics()
    with Client(service.base_url, api_key=KEY) as client:
        with pytest.raises(JudgeAPIError) as missing:
            client.job("no-such-job")
        with pytest.raises(JudgeAPIError) as invalid:  # what the client's own check would refuse
            client.grade(RECORDS[:1], ["refusal"], judge=JudgeSelection.model_construct(samples=0))
        with pytest.raises(JudgeAPIError) as unknown:
            client.grade(RECORDS[:1], ["nope"])

    assert (unauthorized.value.status, unauthorized.value.title) == (401, "Unauthorized")
    assert "Authorization: Bearer" in unauthorized.value.detail
    assert (missing.value.status, missing.value.detail) == (404, "no job 'no-such-job'")
    assert invalid.value.status == 422
    assert [e["location"] for e in invalid.value.errors] == ["body.judge.samples"]
    assert invalid.value.body["errors"] == invalid.value.errors
    assert unknown.value.status == 422 and "no rubric 'nope'" in unknown.value.detail


async def test_async_client_submits_streams_cancels_and_reports(
    service: JudgeProcess, fake_server: FakeJudgeServer
) -> None:
    async with AsyncClient(service.base_url, api_key=KEY) as client:
        job = await client.submit(RECORDS, ["refusal", "emergent_misalignment"])
        received = [v async for v in client.verdicts(job.id)]
        done = await client.wait(job.id, timeout=30)
        report = await client.report(job_id=job.id, by="rubric")
        fake_server.latency = 0.2
        try:
            slow = await client.submit(RECORDS, ["refusal"], judge="fake")
            cancelled = await client.cancel(slow.id)
            after_cancel = [v async for v in client.verdicts(slow.id)]
        finally:
            fake_server.latency = 0.0

    pairs = {(v.transcript_id, v.rubric.id) for v in received}
    assert len(received) == len(pairs) == 2 * len(RECORDS) == done.summary.verdicts
    assert {row.group["rubric"] for row in report.rates} == {"refusal", "emergent_misalignment"}
    assert cancelled.state == "cancelled" and len(after_cancel) < len(RECORDS)


def wait_until_received(received: list[Verdict], count: int) -> None:
    deadline = time.monotonic() + 60
    while len(received) < count:
        assert time.monotonic() < deadline, f"{len(received)} verdicts received, not {count}"
        time.sleep(0.01)


def test_the_client_reads_every_verdict_once_while_the_server_is_killed_twice(
    tmp_path: Path, fake_server: FakeJudgeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """500 transcripts on a slow judge; the server is SIGKILLed after 100 and 250 verdicts have
    reached the client, stays down for a second each time, and restarts on the same port, state
    and cache. The client, left to itself, gets every verdict exactly once."""
    caplog.set_level(logging.INFO, logger="judge.client")
    total = 500
    records = [
        {"id": f"t{i}", "prompt": f"question number {i} ?", "response": f"answer {i}"}
        for i in range(total)
    ]
    server = JudgeProcess(tmp_path, fake_server)
    server.start()
    fake_server.latency = 0.05
    received: list[Verdict] = []
    failures: list[BaseException] = []
    at_kill: list[int] = []
    try:
        with Client(server.base_url) as client:
            job = client.submit(records, ["refusal"], judge="fake")

            def read() -> None:
                try:
                    received.extend(client.verdicts(job.id))
                except BaseException as error:  # reported by the assertions below
                    failures.append(error)

            started = time.monotonic()
            reader = threading.Thread(target=read)
            reader.start()
            for threshold in (100, 250):
                wait_until_received(received, threshold)
                server.kill()
                at_kill.append(len(received))
                time.sleep(1.0)  # connections are refused meanwhile
                server.start()
            reader.join(120)
            elapsed = time.monotonic() - started
            final = client.job(job.id)
    finally:
        fake_server.latency = 0.0
        server.stop()

    keys = [(v.transcript_id, v.rubric.id) for v in received]
    duplicates = len(keys) - len(set(keys))
    missing = {(f"t{i}", "refusal") for i in range(total)} - set(keys)
    drops = [r for r in caplog.records if "dropped after" in r.getMessage()]
    refused = [r for r in caplog.records if "trying again" in r.getMessage()]
    print(
        f"\nclient across two SIGKILLs: {len(received)} verdicts received, {len(set(keys))} "
        f"distinct, {duplicates} duplicates, {len(missing)} missing, in {elapsed:.1f} s; "
        f"killed at {at_kill} received; {len(drops)} dropped streams resumed, "
        f"{len(refused)} refused or unavailable attempts waited out"
    )
    assert not failures and not reader.is_alive()
    assert all(n < total for n in at_kill)  # both kills hit the job while it was running
    assert len(received) == total and duplicates == 0 and not missing
    assert len(drops) >= 2 and len(refused) >= 2
    assert final.state == "succeeded" and final.summary.verdicts == total


def test_the_readme_client_example_runs(tmp_path: Path, fake_server: FakeJudgeServer) -> None:
    """The README's Python client example, run as a script against a real server whose profile
    ``mini`` is the fake judge, with a key: it prints the sync grade, one line per verdict of the
    job, the report, and closes its connections."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python client", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(code)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    config = tmp_path / "mini.yaml"
    config.write_text(
        f"profiles:\n  mini:\n    model: openai/fake-judge\n    api_base: {fake_server.api_base}\n"
        f"api_keys: [{KEY}]\n"
    )
    server = JudgeProcess(tmp_path, fake_server, env={"JUDGE_CONFIG": str(config)})
    server.start()
    env = {
        **os.environ,
        "JUDGE_URL": server.base_url,
        "JUDGE_API_KEY": KEY,
        "PYTHONWARNINGS": "error::ResourceWarning",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-X", "dev", "example.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 + len(RECORDS) + 1, done.stdout
    assert {line.split()[0] for line in lines[1:-1]} == {r["id"] for r in RECORDS}
    assert "Unclosed" not in done.stderr and "Error" not in done.stderr, done.stderr
    assert fake_server.request_count == len(RECORDS)  # the job found the grade's two cached
