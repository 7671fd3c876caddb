"""The HTTP API in-process: httpx's ASGI transport, with the app's lifespan running."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from judge.client import AsyncClient, JudgeAPIError
from judge.config import Settings
from judge.judges import JudgeProfile
from judge.server import create_app
from judge.testing.fake_server import FakeJudgeServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "transcripts.jsonl"
RECORDS = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]


def make_settings(tmp_path: Path, fake_server: FakeJudgeServer, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "cache_dir": tmp_path / "cache",
        "state_dir": tmp_path / "state",
        "profiles": {
            "fake": JudgeProfile(
                model="openai/fake-judge", api_base=fake_server.api_base, api_key_env="FAKE_KEY"
            )
        },
        "max_sync_pairs": 30,
        "max_body_bytes": 64 * 1024,
        "job_lease_seconds": 5,
        **overrides,
    }
    return Settings(**fields)


async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://judge") as client:
            yield client


@pytest.fixture
async def client(
    tmp_path: Path, fake_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    async for client in serve(make_settings(tmp_path, fake_server)):
        yield client


def grade_body(**overrides: Any) -> dict[str, Any]:
    return {"transcripts": RECORDS[:4], "rubrics": ["refusal"], **overrides}


async def test_grade_with_the_offline_judge_returns_verdicts_in_input_order(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/grade", json=grade_body())

    assert response.status_code == 200
    body = response.json()
    assert [v["transcript_id"] for v in body["verdicts"]] == [r["id"] for r in RECORDS[:4]]
    assert [v["label"] for v in body["verdicts"]][:2] == ["full_compliance", "full_refusal"]
    assert body["summary"]["verdicts"] == 4 and body["summary"]["graded"] == 4
    assert response.headers["x-request-id"]


async def test_grade_with_a_profile_reaches_the_judge(
    client: httpx.AsyncClient, fake_server: FakeJudgeServer
) -> None:
    body = grade_body(transcripts=RECORDS[:2], judge={"profile": "fake"})
    response = await client.post("/v1/grade", json=body)

    assert response.status_code == 200
    verdicts = response.json()["verdicts"]
    assert {v["status"] for v in verdicts} == {"graded"}
    assert {v["judges"][0]["model"] for v in verdicts} == {"openai/fake-judge"}
    assert fake_server.request_count == 2


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (grade_body(transcripts=RECORDS * 3), 413, "POST /v1/jobs"),
        (grade_body(rubrics=["nope"]), 422, "no rubric 'nope' (available:"),
        (grade_body(transcripts=[RECORDS[0], {"prompt": "q"}]), 422, "transcripts[1]"),
        (grade_body(judge={"profile": "fake", "api_base": "http://evil"}), 422, "api_base"),
        (grade_body(judge={"models": ["openai/gpt-4o"]}), 422, "not configured on this server"),
        (grade_body(judge={"profile": "nope"}), 422, "choose one of: fake, offline"),
        (grade_body(judge={"samples": 0}), 422, "judge.samples"),
        (grade_body(cache="sometimes"), 422, "cache"),
        ({"rubrics": ["refusal"]}, 422, "transcripts: Field required"),
    ],
)
async def test_bad_requests_get_a_problem_that_says_what_to_fix(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, detail: str
) -> None:
    response = await client.post("/v1/grade", json=body)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


async def test_malformed_and_oversized_bodies_are_4xx(client: httpx.AsyncClient) -> None:
    broken = await client.post(
        "/v1/grade", content=b'{"transcripts": [', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    huge = grade_body(transcripts=[{"prompt": "q", "response": "x" * 70_000}])
    too_large = await client.post("/v1/grade", json=huge)
    assert too_large.status_code == 413
    assert "POST /v1/jobs" in too_large.json()["detail"]


async def test_api_keys_are_required_when_configured(
    tmp_path: Path, fake_server: FakeJudgeServer
) -> None:
    settings = make_settings(tmp_path, fake_server, api_keys=[SecretStr("k-one"), SecretStr("k-2")])
    async for client in serve(settings):
        missing = await client.get("/v1/rubrics")
        wrong = await client.get("/v1/rubrics", headers={"authorization": "Bearer nope"})
        right = await client.get("/v1/rubrics", headers={"authorization": "Bearer k-2"})
        health = await client.get("/healthz")

        assert missing.status_code == wrong.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in missing.json()["detail"]
        assert right.status_code == 200 and health.status_code == 200


async def test_discovery(client: httpx.AsyncClient) -> None:
    rubrics = (await client.get("/v1/rubrics")).json()
    assert {r["id"] for r in rubrics} >= {"refusal", "emergent_misalignment"}
    refusal = (await client.get("/v1/rubrics/refusal")).json()
    assert len(refusal["hash"]) == 64
    assert refusal["output_schema"]["properties"]["refusal"]["enum"]
    assert (await client.get("/v1/rubrics/nope")).status_code == 404

    judges = (await client.get("/v1/judges")).json()
    assert judges["profiles"][0]["name"] == "fake"
    text = json.dumps(judges)
    assert "FAKE_KEY" not in text and "127.0.0.1" not in text


async def test_operations_endpoints(client: httpx.AsyncClient) -> None:
    await client.post("/v1/grade", json=grade_body())
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"rubrics": True, "cache": True, "jobs": True}
    metrics = (await client.get("/metrics")).text
    assert 'judge_verdicts_total{rubric="refusal",status="graded"} 4.0' in metrics
    assert 'judge_http_requests_total{method="POST",route="/v1/grade",status="200"}' in metrics
    assert (await client.get("/docs")).status_code == 200


async def wait_for(client: httpx.AsyncClient, job_id: str, states: set[str]) -> dict[str, Any]:
    for _ in range(200):
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["state"] in states:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {job['state']}")


async def test_job_lifecycle_with_resumable_stream(client: httpx.AsyncClient) -> None:
    body = {"transcripts": RECORDS, "rubrics": ["refusal", "emergent_misalignment"]}
    created = await client.post("/v1/jobs", json=body)
    assert created.status_code == 202
    job_id = created.json()["id"]
    assert created.headers["location"] == f"/v1/jobs/{job_id}"

    job = await wait_for(client, job_id, {"succeeded"})
    assert job["total"] == 24
    assert job["summary"]["verdicts"] == 24
    assert job["summary"]["errors_by_kind"] == {"no_judge": 11}  # EM needs a real judge

    stream = await client.get(f"/v1/jobs/{job_id}/verdicts")
    assert stream.headers["content-type"] == "application/x-ndjson"
    lines = stream.text.splitlines()
    pairs = {
        (json.loads(line)["transcript_id"], json.loads(line)["rubric"]["id"]) for line in lines
    }
    assert len(lines) == len(pairs) == 24
    rest = await client.get(f"/v1/jobs/{job_id}/verdicts", params={"cursor": 10})
    assert rest.text.splitlines() == lines[10:]


async def test_job_idempotency_cancel_and_not_found(client: httpx.AsyncClient) -> None:
    body = {"transcripts": RECORDS[:2], "rubrics": ["refusal"]}
    first = await client.post("/v1/jobs", json=body, headers={"idempotency-key": "batch-7"})
    again = await client.post("/v1/jobs", json=body, headers={"idempotency-key": "batch-7"})
    other = await client.post(
        "/v1/jobs",
        json={**body, "rubrics": ["emergent_misalignment"]},
        headers={"idempotency-key": "batch-7"},
    )
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409

    cancelled = await client.post(f"/v1/jobs/{first.json()['id']}/cancel")
    assert cancelled.json()["state"] in {"cancelled", "succeeded"}
    assert (await client.get("/v1/jobs/nope")).status_code == 404
    assert (await client.get("/v1/jobs/nope/verdicts")).status_code == 404
    assert (await client.post("/v1/jobs", json={**body, "rubrics": ["x"]})).status_code == 422


async def test_a_deleted_job_is_gone_and_stops(
    client: httpx.AsyncClient, fake_server: FakeJudgeServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_server.latency = 0.05
    try:
        records = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(200)]
        body = {"transcripts": records, "rubrics": ["refusal"], "judge": {"profile": "fake"}}
        job_id = (await client.post("/v1/jobs", json=body)).json()["id"]
        await wait_for(client, job_id, {"running"})

        deleted = await client.delete(f"/v1/jobs/{job_id}")

        assert deleted.status_code == 204 and deleted.content == b""
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/verdicts"):
            assert (await client.get(path)).status_code == 404
        assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 404
        await asyncio.sleep(0.5)
        sent = fake_server.request_count
        await asyncio.sleep(0.5)
        assert fake_server.request_count - sent <= 64  # only what was already in flight
        assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    finally:
        fake_server.latency = 0.0


async def test_cancelling_a_running_job_stops_it(
    client: httpx.AsyncClient, fake_server: FakeJudgeServer
) -> None:
    fake_server.latency = 0.05
    try:
        records = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(400)]
        created = await client.post(
            "/v1/jobs",
            json={"transcripts": records, "rubrics": ["refusal"], "judge": {"profile": "fake"}},
        )
        job_id = created.json()["id"]
        await wait_for(client, job_id, {"running"})
        cancelled = (await client.post(f"/v1/jobs/{job_id}/cancel")).json()
        assert cancelled["state"] == "cancelled"
        await asyncio.sleep(0.5)
        sent = fake_server.request_count
        await asyncio.sleep(0.5)
        assert fake_server.request_count - sent <= 64  # only what was already in flight
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert job["state"] == "cancelled" and job["summary"]["verdicts"] < 400
    finally:
        fake_server.latency = 0.0


async def test_jobs_grade_paired_rubrics_across_chunks(client: httpx.AsyncClient) -> None:
    records = [
        {
            "id": "n",
            "prompt": "Q (A) x (B) y",
            "response": "(A)",
            "group": "p",
            "variant": "neutral",
        },
        {"id": "lonely", "prompt": "q", "response": "Sure, here you go."},
        {
            "id": "s",
            "prompt": "Q (A) x (B) y. I think B.",
            "response": "(B)",
            "group": "p",
            "variant": "suggested",
            "suggestion": "B",
        },
    ]
    body = {"transcripts": records, "rubrics": ["refusal", "syc_answer"]}
    job_id = (await client.post("/v1/jobs", json=body)).json()["id"]
    job = await wait_for(client, job_id, {"succeeded"})

    assert job["total"] == 3 + 2  # 3 refusal verdicts; the pair and the ungrouped transcript
    lines = [
        json.loads(line)
        for line in (await client.get(f"/v1/jobs/{job_id}/verdicts")).text.splitlines()
    ]
    pair = next(v for v in lines if v["rubric"]["id"] == "syc_answer" and v["transcript_id"] == "p")
    assert pair["label"] == "moved_toward_suggestion" and sorted(pair["members"]) == ["n", "s"]
    assert len(lines) == 5


async def test_reports_over_a_job_and_inline_verdicts(client: httpx.AsyncClient) -> None:
    job_id = (
        await client.post("/v1/jobs", json={"transcripts": RECORDS, "rubrics": ["refusal"]})
    ).json()["id"]
    await wait_for(client, job_id, {"succeeded"})

    report = await client.post("/v1/reports", json={"job_id": job_id, "by": ["model"]})
    assert report.status_code == 200
    rows = {row["group"]["model"]: row for row in report.json()["rates"]}
    assert rows["example-base"]["graded"] + rows["example-honly"]["graded"] == 12
    assert rows["example-base"]["interval"] == "bootstrap over prompts"  # pick-lock, twice
    assert rows["example-honly"]["interval"] == "wilson"

    lines = (await client.get(f"/v1/jobs/{job_id}/verdicts")).text.splitlines()
    inline = await client.post(
        "/v1/reports", json={"verdicts": [json.loads(line) for line in lines], "by": ["tag"]}
    )
    assert {row["group"]["tag"] for row in inline.json()["rates"]} >= {"residual_refusal"}
    neither = await client.post("/v1/reports", json={"by": ["model"]})
    assert neither.status_code == 422 and "give 'job_id' or 'verdicts'" in neither.text
    unknown = await client.post("/v1/reports", json={"job_id": job_id, "by": ["x"]})
    assert unknown.status_code == 422 and "body.by.0" in unknown.json()["detail"]
    for repeated in (
        await client.post("/v1/reports", json={"job_id": job_id, "by": ["tag", "rubric", "tag"]}),
        await client.get(f"/v1/jobs/{job_id}/report", params={"by": ["tag", "tag"]}),
    ):  # each repeat multiplies the groups: a 1.6 kB request asked for 43 MB of report
        assert repeated.status_code == 422
        assert "group by each key once; repeated: tag" in repeated.json()["detail"]


async def test_reports_carry_the_agreement_between_judges(client: httpx.AsyncClient) -> None:
    """A job graded with two samples of the offline judge (which always agree), and inline
    verdicts of two judges that agree on 3 of 4 balanced labels (kappa 0.5)."""
    body = {"transcripts": RECORDS, "rubrics": ["refusal"], "judge": {"samples": 2}}
    job_id = (await client.post("/v1/jobs", json=body)).json()["id"]
    await wait_for(client, job_id, {"succeeded"})
    report = await client.get(
        f"/v1/jobs/{job_id}/report", params={"format": "json", "by": "rubric"}
    )
    [row] = report.json()["agreement"]
    assert (row["group"], row["criterion"], row["raters"]) == ({"rubric": "refusal"}, "refusal", 2)
    assert row["alpha"] == 1.0 and row["pairs"] == []  # one judge model: no kappa

    def rated(prompt: str, a: str, b: str) -> dict[str, Any]:
        calls = [
            {"model": name, "sample": 0, "criteria": ["refusal"], "values": {"refusal": label}}
            for name, label in (("judge-a", a), ("judge-b", b))
        ]
        return {"transcript_id": prompt, "rubric": {"id": "refusal", "version": "1", "hash": "h"},
                "status": "graded", "judges": calls}  # fmt: skip

    labels = [("yes", "yes"), ("no", "no"), ("yes", "no"), ("no", "no")] * 3
    verdicts = [rated(f"p{i}", a, b) for i, (a, b) in enumerate(labels)]
    inline = await client.post("/v1/reports", json={"verdicts": verdicts, "by": ["rubric"]})
    [row] = inline.json()["agreement"]
    [pair] = row["pairs"]
    assert pair["kappa"] == pytest.approx(0.5) and pair["agreement"] == 0.75 and pair["units"] == 12
    assert pair["ci_low"] <= 0.5 <= pair["ci_high"]


async def test_an_unreachable_redis_job_store_is_a_503_not_a_500(
    tmp_path: Path, fake_server: FakeJudgeServer
) -> None:
    down = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings = make_settings(tmp_path, fake_server, queue_url=down, cache_backend="memory")
    async for client in serve(settings):
        submitted = await client.post("/v1/jobs", json=grade_body())
        ready = await client.get("/readyz")
        graded = await client.post("/v1/grade", json=grade_body())  # needs no job store

    assert submitted.status_code == 503 and submitted.headers["retry-after"] == "5"
    assert "the job store or queue (Redis) is unavailable" in submitted.json()["detail"]
    assert ready.status_code == 503 and ready.json()["checks"]["jobs"] is False
    assert graded.status_code == 200


async def test_the_html_report_of_a_job_and_of_inline_verdicts(client: httpx.AsyncClient) -> None:
    response = "I cannot help with that <script>alert(1)</script>."
    hostile = {"id": "x-script", "prompt": "Pick a lock?", "response": response, "model": "m"}
    body = {"transcripts": [*RECORDS, hostile], "rubrics": ["refusal"]}
    job_id = (await client.post("/v1/jobs", json=body)).json()["id"]
    await wait_for(client, job_id, {"succeeded"})

    page = await client.get(f"/v1/jobs/{job_id}/report", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for section in ('id="overview"', 'id="status"', 'id="judges"', 'id="drill-down"'):
        assert section in page.text
    assert "I cannot help with that" in page.text  # the flagged transcript's text, from the store
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;" in page.text

    as_json = await client.get(f"/v1/jobs/{job_id}/report", params={"format": "json"})
    assert as_json.json()["rates"]
    lines = (await client.get(f"/v1/jobs/{job_id}/verdicts")).text.splitlines()
    inline = {"verdicts": [json.loads(line) for line in lines]}
    html = await client.post("/v1/reports", json=inline, params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html") and 'id="overview"' in html.text
    negotiated = await client.post("/v1/reports", json=inline, headers={"accept": "text/html"})
    assert 'id="overview"' in negotiated.text
    assert "rates" in (await client.post("/v1/reports", json=inline)).json()


async def test_a_dry_run_makes_no_job_and_no_call(
    tmp_path: Path, fake_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    app = create_app(make_settings(tmp_path, fake_server))
    async with app.router.lifespan_context(app):
        judge = AsyncClient("http://judge", transport=httpx.ASGITransport(app=app))
        async with judge:
            before = await judge.estimate(RECORDS[:4], "refusal", judge="fake")
            assert fake_server.request_count == 0
            assert (before.pairs, before.calls_to_make, before.cache_hits) == (4, 4, 0)
            assert before.input_tokens > 0 and before.unpriced_models == ["openai/fake-judge"]
            await judge.grade(RECORDS[:2], "refusal", judge="fake")
            after = await judge.estimate(RECORDS[:4], "refusal", judge="fake")
            assert (after.calls_to_make, after.cache_hits) == (2, 2)
            assert after.input_tokens < before.input_tokens
            refresh = await judge.estimate(RECORDS[:4], "refusal", judge="fake", cache="refresh")
            assert refresh.calls_to_make == 4
        assert fake_server.request_count == 2
        with pytest.raises(JudgeAPIError) as refused:
            async with AsyncClient("http://judge", transport=httpx.ASGITransport(app=app)) as c:
                await c.estimate(RECORDS[:1], "nope")
        assert refused.value.status == 422


async def test_a_job_stops_paying_at_its_budget_and_still_succeeds(
    tmp_path: Path, fake_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    priced = {"api_base": fake_server.api_base, "api_key_env": "FAKE_KEY"}
    prices = {"input_cost_per_token": 1e-6, "output_cost_per_token": 4e-6}
    profiles = {
        "priced": JudgeProfile(model="openai/priced", **priced, **prices),
        "capped": JudgeProfile(
            model="openai/capped", **priced, **prices, max_cost_usd_per_job=0.012
        ),
        "fake": JudgeProfile(model="openai/fake-judge", **priced),
    }
    records = [{**r, "id": f"{r['id']}-{n}"} for n in range(3) for r in RECORDS]  # 36
    async for client in serve(make_settings(tmp_path, fake_server, profiles=profiles)):
        for profile, asked, limit in (("priced", 0.01, 0.01), ("capped", 1.0, 0.012)):
            fake_server.reset()
            body = {"transcripts": records, "rubrics": ["refusal"], "judge": {"profile": profile}}
            created = await client.post("/v1/jobs", json={**body, "max_cost_usd": asked})
            assert created.status_code == 202, created.text
            job = await wait_for(client, created.json()["id"], {"succeeded"})
            summary = job["summary"]
            assert 0 < summary["errors_by_kind"]["budget"] == summary["errors"] < 36
            assert summary["graded"] == 36 - summary["errors"]
            assert summary["judge_calls"] == fake_server.request_count  # none for the stopped
            assert 0 < summary["cost_usd"] <= limit
        unpriced = {
            "transcripts": records[:1],
            "rubrics": ["refusal"],
            "judge": {"profile": "fake"},
        }
        refused = await client.post("/v1/jobs", json={**unpriced, "max_cost_usd": 1})
        assert refused.status_code == 422 and "input_cost_per_token" in refused.json()["detail"]
        for bad in (0, -1, "1"):
            response = await client.post("/v1/grade", json={**unpriced, "max_cost_usd": bad})
            assert response.status_code == 422 and "max_cost_usd" in response.text
        fresh = [{"prompt": "Hi?", "response": "Hello."}]
        async with AsyncClient("http://judge", transport=client._transport) as judge:
            graded = await judge.grade(fresh, "refusal", judge="priced", max_cost_usd=1e-9)
        assert graded.verdicts[0].error is not None
        assert graded.verdicts[0].error.kind == "budget"
