"""Provider batch mode against the fake OpenAI Files + Batches API, over real HTTP: the library's
prewarm, the CLI (``--batch``, and a rerun that resumes an interrupted one), and jobs
(``mode: batch``, in-process and in a server process killed while its batch runs)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from judge.batch import BatchOptions, BatchState, BatchStatus, FileLedger, Prewarmed, prewarm
from judge.cache import MemoryCache
from judge.cli import main
from judge.client import AsyncClient, calls
from judge.config import Settings
from judge.cost import prices
from judge.errors import BatchError
from judge.grading import Grader
from judge.grouping import units
from judge.jobs.sqlite_store import SqliteJobStore
from judge.judges import JudgeProfile
from judge.judges.llm import LLMJudge
from judge.plan import JudgePlan
from judge.rubric import Rubric
from judge.server import create_app
from judge.testing.fake_batches import FakeBatchServer
from judge.testing.fake_server import Reply
from judge.transcript import Transcript
from judge.verdict import JudgeResult, Verdict
from tests.processes import JudgeProcess

PRICED = "openai/gpt-4o-mini"
"""A model litellm's table prices (batch rates included); the fake answers for any name."""
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "transcripts.jsonl"
RECORDS = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
FAST = BatchOptions(poll_seconds=0.02)


@pytest.fixture
def batches() -> Iterator[FakeBatchServer]:
    server = FakeBatchServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def judge(batches: FakeBatchServer) -> AsyncIterator[LLMJudge]:
    made = LLMJudge(PRICED, api_base=batches.api_base, api_key="sk-fake", timeout=5, max_retries=0)
    yield made
    await made.aclose()


def transcripts(count: int) -> list[Transcript]:
    return [
        Transcript.from_prompt(f"question {i}?", f"answer {i}", id=f"t{i}") for i in range(count)
    ]


async def batched(
    items: list[Transcript], rubric: Rubric, judge: LLMJudge, ledger: Path
) -> tuple[list[Verdict], Prewarmed]:
    """Prewarm through batches, then grade from the cache, as the CLI does."""
    plan, cache = JudgePlan([judge]), MemoryCache()
    outcome = await prewarm(lambda: units(items, [rubric]), plan, cache, FileLedger(ledger), FAST)
    grader = Grader(plan, cache)
    verdicts = [outcome.settle(v) async for v in grader.grade_many(items, [rubric])]
    return verdicts, outcome


def batch_cost(result: JudgeResult) -> float:
    """What the call's tokens cost at the batch rate (gpt-4o-mini's is half the live one)."""
    price = prices(PRICED)
    assert price is not None
    return price.of(result.input_tokens or 0, result.output_tokens or 0, batch=True)


async def test_batch_results_are_read_as_live_replies_cached_and_priced_at_the_batch_rate(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    verdicts, outcome = await batched(transcripts(6), refusal, judge, tmp_path)

    assert batches.batches_created == 1 and len(batches.batch_bodies) == 6
    assert batches.request_count == 0  # not one live call
    assert {v.status for v in verdicts} == {"graded"}
    results = [v.judges[0] for v in verdicts]
    assert {r.batch for r in results} == {"batch_fake_1"}
    assert not any(r.cached for r in results)  # paid for in this run, at the batch rate
    assert all(r.cost_usd == pytest.approx(batch_cost(r)) and r.cost_usd for r in results)
    live = prices(PRICED)
    assert live is not None
    assert results[0].cost_usd == pytest.approx(
        live.of(results[0].input_tokens or 0, results[0].output_tokens or 0) / 2
    )
    assert outcome.state is not None and outcome.state.read


async def test_the_requests_a_batch_holds_are_the_live_ones(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    items = transcripts(2)
    await batched(items, refusal, judge, tmp_path)
    async with Grader(JudgePlan([judge]), MemoryCache()) as live:
        [v async for v in live.grade_many(items, [refusal])]

    assert batches.batch_bodies == batches.requests  # byte for byte what a live call sends


async def test_an_expired_batch_keeps_what_it_did_and_the_rest_is_graded_live(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    batches.expire_after = 3
    verdicts, _ = await batched(transcripts(8), refusal, judge, tmp_path)

    assert batches.batches["batch_fake_1"]["status"] == "expired"
    assert {v.status for v in verdicts} == {"graded"} and len(verdicts) == 8  # every pair
    from_batch = [v for v in verdicts if v.judges[0].batch == "batch_fake_1"]
    assert len(from_batch) == 3 and batches.request_count == 5  # the other 5 asked live
    live = [v.judges[0] for v in verdicts if v.judges[0].batch is None]
    assert all(r.cost_usd == pytest.approx(2 * batch_cost(r)) for r in live)  # the live rate


async def test_an_invalid_batch_reply_is_re_asked_live(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    batches.script(Reply(content="not JSON at all, sorry"))  # the batch's first request
    verdicts, _ = await batched(transcripts(3), refusal, judge, tmp_path)

    assert {v.status for v in verdicts} == {"graded"}
    [reasked] = [v.judges[0] for v in verdicts if v.judges[0].attempts == 2]
    assert reasked.batch == "batch_fake_1" and not reasked.cached
    assert batches.request_count == 1  # the one re-ask, live, with the validation error
    assert "not JSON at all" in json.dumps(batches.requests[0]["messages"][-2:])
    price = prices(PRICED)
    assert price is not None and reasked.cost_usd is not None
    assert reasked.cost_usd > batch_cost(reasked)  # the batch reply at half price, the re-ask full


async def test_a_rerun_reads_cached_results_and_submits_nothing(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    items = transcripts(4)
    plan, cache = JudgePlan([judge]), MemoryCache()
    for _ in range(2):
        outcome = await prewarm(
            lambda: units(items, [refusal]), plan, cache, FileLedger(tmp_path / "a"), FAST
        )
    assert batches.batches_created == 1 and outcome.paid == set()
    verdicts = [v async for v in Grader(plan, cache).grade_many(items, [refusal])]
    assert all(v.cached and v.judges[0].batch == "batch_fake_1" for v in verdicts)


async def test_a_kept_batch_the_endpoint_does_not_know_is_submitted_again(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    items = transcripts(3)
    await batched(items, refusal, judge, tmp_path)  # leaves its ledger behind, read
    [path] = tmp_path.glob("*.json")
    kept = BatchState.model_validate_json(path.read_text())
    kept.batches[0].id, kept.batches[0].status = "batch_gone", BatchStatus.IN_PROGRESS
    kept.read = False
    path.write_text(kept.model_dump_json())  # as if another account's batch

    verdicts, _ = await batched(items, refusal, judge, tmp_path)  # a cold cache

    assert batches.batches_created == 2 and batches.request_count == 0
    assert {v.judges[0].batch for v in verdicts} == {"batch_fake_2"}


async def test_a_batch_the_provider_fails_is_an_error_and_forgotten(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    batches.fail_with = "token limit exceeded"
    items = transcripts(2)
    ledger = FileLedger(tmp_path)
    plan, cache = JudgePlan([judge]), MemoryCache()
    with pytest.raises(BatchError, match="token limit exceeded"):
        await prewarm(lambda: units(items, [refusal]), plan, cache, ledger, FAST)

    [kept] = [BatchState.model_validate_json(p.read_text()) for p in tmp_path.glob("*.json")]
    assert kept.batches == [] and not kept.read  # a rerun submits the calls again
    batches.fail_with = None
    await prewarm(lambda: units(items, [refusal]), plan, cache, ledger, FAST)
    assert batches.batches_created == 2 and batches.request_count == 0


async def test_batches_are_split_by_request_count_and_cover_every_call_once(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    items = transcripts(7)
    items.append(items[0].model_copy(update={"id": "again"}))  # same content, same key
    plan, cache = JudgePlan([judge]), MemoryCache()
    options = BatchOptions(poll_seconds=0.02, max_requests=3)
    await prewarm(lambda: units(items, [refusal]), plan, cache, FileLedger(tmp_path), options)

    assert batches.batches_created == 3  # 3 + 3 + 1 distinct calls
    ids = [
        line["custom_id"] for f in batches.files.values() for line in _lines(f) if "body" in line
    ]
    assert len(ids) == len(set(ids)) == 7


async def test_an_input_file_over_a_mebibyte_is_taken(
    batches: FakeBatchServer, judge: LLMJudge, refusal: Rubric, tmp_path: Path
) -> None:
    long = [Transcript.from_prompt(f"q{i}", "word " * 100_000, id=f"t{i}") for i in range(3)]
    verdicts, _ = await batched(long, refusal, judge, tmp_path)

    assert sum(len(f) for f in batches.files.values()) > 2**20
    assert all(v.judges[0].batch == "batch_fake_1" for v in verdicts)


def _lines(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in content.splitlines() if line.strip()]


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def grade_args(batches: FakeBatchServer, out: Path, *extra: str) -> list[str]:
    return [
        "grade",
        str(EXAMPLES),
        "-r",
        "refusal",
        "-m",
        PRICED,
        "--api-base",
        batches.api_base,
        "--batch",
        "--poll-seconds",
        "0.02",
        "-o",
        str(out),
        *extra,
    ]


def test_cli_grades_through_a_batch(
    batches: FakeBatchServer,
    cli_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    out = tmp_path / "v.jsonl"

    assert main(grade_args(batches, out)) == 0

    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(verdicts) == len(RECORDS) and batches.batches_created == 1
    assert all(v["judges"][0]["batch"] == "batch_fake_1" for v in verdicts)
    assert batches.request_count == 0
    err = capsys.readouterr().err
    assert "batch batch_fake_1: 12 requests to openai/gpt-4o-mini submitted" in err
    assert "completed, 12/12 done" in err
    cost = sum(v["judges"][0]["cost_usd"] for v in verdicts)
    assert f"cost: ${cost:.4f}" in err  # the summary counts what the batch paid
    assert list((cli_env / "batches").glob("*.json")) == []  # done: nothing left to resume


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cache", "refresh"], "--batch fills the cache"),
        (["--max-cost", "5"], "batch mode cannot keep to a budget"),
        (["-m", "anthropic/claude-3-5-haiku-latest"], "not on an OpenAI-compatible endpoint"),
    ],
)
def test_cli_refuses_batch_mode_it_cannot_do(
    batches: FakeBatchServer,
    cli_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-fake")
    args = grade_args(batches, tmp_path / "v.jsonl", *extra)
    if "anthropic" in " ".join(extra):  # that judge alone
        args = [a for a in args if a not in (PRICED, "--api-base", batches.api_base)]
        args.remove("-m")
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert batches.batches_created == 0


def test_cli_batch_mode_does_not_run_cascades(
    batches: FakeBatchServer, cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = grade_args(batches, tmp_path / "v.jsonl")
    args[args.index("-m") : args.index("-m") + 2] = ["--cascade", f"offline,{PRICED}"]
    assert main(args) == 2
    assert "batch mode does not run cascades" in capsys.readouterr().err
    assert batches.batches_created == 0


def test_cli_batch_needs_an_llm_judge(
    batches: FakeBatchServer, cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["grade", str(EXAMPLES), "-r", "refusal", "--batch", "-o", str(tmp_path / "v")]
    assert main(args) == 2
    assert "batch mode needs an LLM judge" in capsys.readouterr().err


@pytest.mark.slow
def test_an_interrupted_cli_rerun_resumes_the_same_batch(
    batches: FakeBatchServer, cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches.hold = True
    out = tmp_path / "v.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "sk-fake", "JUDGE_CACHE_DIR": str(cli_env)}
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(
            [sys.executable, "-m", "judge.cli", *grade_args(batches, out)],
            env=env,
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 120
    while batches.polls["batch_fake_1"] < 3:  # submitted, and being polled
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    polls = batches.polls["batch_fake_1"]

    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    batches.release()
    assert main(grade_args(batches, out)) == 0

    assert batches.batches_created == 1 and batches.polls["batch_fake_1"] > polls
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(verdicts) == len(RECORDS) and batches.request_count == 0
    assert all(v["judges"][0]["batch"] == "batch_fake_1" for v in verdicts)


# -- jobs ----------------------------------------------------------------------------------------


def job_settings(tmp_path: Path, batches: FakeBatchServer) -> Settings:
    profile = JudgeProfile(model=PRICED, api_base=batches.api_base, api_key_env="FAKE_KEY")
    return Settings(
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        profiles={"batchy": profile},
        job_lease_seconds=5,
        batch_poll_seconds=0.02,
    )


@pytest.fixture
async def app(
    tmp_path: Path, batches: FakeBatchServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.ASGITransport]:
    """The service in-process, with a profile ``batchy`` on the fake batch API."""
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    app = create_app(job_settings(tmp_path, batches))
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


@pytest.fixture
async def service(app: httpx.ASGITransport) -> AsyncIterator[AsyncClient]:
    async with AsyncClient("http://judge", transport=app) as client:
        yield client


@pytest.fixture
async def http(app: httpx.ASGITransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=app, base_url="http://judge") as client:
        yield client


async def test_a_batch_job_through_the_client(
    service: AsyncClient, batches: FakeBatchServer
) -> None:
    batches.expire_after = 10
    job = await service.submit(RECORDS, ["refusal"], judge="batchy", mode="batch")
    assert job.mode == "batch"

    done = await service.wait(job.id, timeout=60)

    assert done.state == "succeeded" and done.summary.graded == len(RECORDS)
    [provider] = done.batches
    assert (provider.id, provider.status, provider.requests) == ("batch_fake_1", "expired", 12)
    verdicts = [v async for v in service.verdicts(job.id)]
    from_batch = [v for v in verdicts if v.judges[0].batch == "batch_fake_1"]
    assert len(from_batch) == 10 and batches.request_count == 2  # the 2 it did not run: live
    assert done.summary.judge_calls == 12 and done.summary.cache_hits == 0
    total = sum(v.judges[0].cost_usd or 0 for v in verdicts)
    assert done.summary.cost_usd == pytest.approx(total)


async def test_a_cancelled_batch_job_cancels_its_batch(
    service: AsyncClient, batches: FakeBatchServer
) -> None:
    batches.hold = True
    job = await service.submit(RECORDS[:3], ["refusal"], judge="batchy", mode="batch")
    deadline = time.monotonic() + 30
    while not (await service.job(job.id)).batches:
        assert time.monotonic() < deadline
        await _sleep()

    await service.cancel(job.id)
    while batches.batches["batch_fake_1"]["status"] != "cancelled":
        assert time.monotonic() < deadline
        await _sleep()
    assert (await service.job(job.id)).state == "cancelled"


async def _sleep() -> None:
    await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"judge": {"models": ["offline"]}}, "batch mode needs an LLM judge"),
        ({"judge": {"profile": "batchy"}, "cache": "refresh"}, "leave out 'cache'"),
        ({"judge": {"profile": "batchy"}, "max_cost_usd": 5}, "cannot keep to a budget"),
    ],
)
async def test_a_batch_job_it_cannot_do_is_refused(
    http: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    request = {"transcripts": RECORDS[:1], "rubrics": ["refusal"], "mode": "batch", **body}
    response = await http.post("/v1/jobs", json=request)

    assert response.status_code == 422 and detail in response.json()["detail"]


async def test_synchronous_grading_has_no_batch_mode(http: httpx.AsyncClient) -> None:
    request = {"transcripts": RECORDS[:1], "rubrics": ["refusal"], "mode": "batch"}
    response = await http.post("/v1/grade", json=request)

    assert response.status_code == 422 and "mode" in response.json()["detail"]


@pytest.mark.slow
def test_a_server_killed_while_its_batch_runs_polls_the_same_batch_after_restart(
    tmp_path: Path, batches: FakeBatchServer
) -> None:
    batches.hold = True
    env = {"JUDGE_BATCH_POLL_SECONDS": "0.05"}
    server = JudgeProcess(tmp_path, batches, env=env)
    server.start()
    try:
        body = {
            "transcripts": RECORDS,
            "rubrics": ["refusal"],
            "judge": {"profile": "fake"},
            "mode": "batch",
        }
        job_id = httpx.post(f"{server.base_url}/v1/jobs", json=body, timeout=30).json()["id"]
        job_url = f"{server.base_url}/v1/jobs/{job_id}"
        deadline = time.monotonic() + 60
        while batches.polls["batch_fake_1"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.kill()
        store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
        kept = store.get(job_id).batch
        store.close()
        assert kept is not None and [b.id for b in kept.batches] == ["batch_fake_1"]
        polls = batches.polls["batch_fake_1"]

        server.start()
        while batches.polls["batch_fake_1"] <= polls:  # the restarted server polls it
            assert time.monotonic() < deadline + 60
            time.sleep(0.05)
        batches.release()
        while httpx.get(job_url, timeout=5).json()["state"] != "succeeded":
            assert time.monotonic() < deadline + 120
            time.sleep(0.1)
        stream = httpx.get(f"{job_url}/verdicts", timeout=30).text.splitlines()
    finally:
        server.stop()

    assert batches.batches_created == 1  # not submitted again
    verdicts = [json.loads(line) for line in stream]
    assert len(verdicts) == len(RECORDS) and batches.request_count == 0
    assert all(v["judges"][0]["batch"] == "batch_fake_1" for v in verdicts)


def test_a_live_job_body_is_as_before_so_its_idempotency_key_is_too() -> None:
    live = calls.batch(RECORDS[:1], "refusal", "batchy", "use", mode="live")
    assert live == calls.batch(RECORDS[:1], "refusal", "batchy", "use") and "mode" not in live
    assert calls.batch(RECORDS[:1], "refusal", "batchy", "use", mode="batch")["mode"] == "batch"


def test_the_api_document_says_which_jobs_may_take_batch_mode(
    tmp_path: Path, batches: FakeBatchServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-fake")
    settings = job_settings(tmp_path, batches)
    other = JudgeProfile(model="anthropic/claude-3-5-haiku-latest")
    capped = settings.profiles["batchy"].model_copy(update={"max_cost_usd_per_job": 1.0})
    profiles = {**settings.profiles, "claude": other, "capped": capped}
    settings = settings.model_copy(update={"profiles": profiles})
    job = create_app(settings).openapi()["components"]["schemas"]["JobCreate"]

    assert job["if"] == {"required": ["mode"], "properties": {"mode": {"const": "batch"}}}
    no_budget, judge = job["then"]["allOf"]
    assert no_budget == {
        "properties": {"cache": {"const": "use"}, "max_cost_usd": {"type": "null"}}
    }
    selection = judge["properties"]["judge"]
    ensemble, profile = selection["anyOf"]
    assert profile["properties"]["profile"]["enum"] == ["batchy"]  # not claude, not capped
    assert ensemble["properties"]["models"]["items"]["enum"] == ["batchy", "offline"]
    assert selection["properties"]["fallbacks"]["items"]["enum"] == ["batchy", "claude", "offline"]

    offline_only = Settings(cache_dir=tmp_path / "c", state_dir=tmp_path / "s")
    live = create_app(offline_only).openapi()["components"]["schemas"]
    assert live["JobCreate"]["properties"]["mode"]["$ref"].endswith("/LiveMode")
    assert live["LiveMode"]["enum"] == ["live"] and "if" not in live["JobCreate"]
