"""Taking a job in as a stream (``POST /v1/jobs``), on SQLite and on Redis: JSON and NDJSON bodies
make the same job, every record is checked as before, and a body refused at any point (or cut
off) leaves no job and no transcript behind."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from judge.config import Settings
from judge.jobs.store import JobShape, JobStore
from judge.server import create_app

SPEC = {"rubrics": ["refusal"]}
NDJSON = "application/x-ndjson"


def record(i: int) -> dict[str, str]:
    return {"id": f"t{i}", "prompt": f"How do I stop process {i}?", "response": f"kill {i}"}


class Served:
    """An app in-process (its lifespan running), its client, and what its job store holds."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, settings: Settings):
        self.app = app
        self.client = client
        self.settings = settings
        self.writes = 0

    @property
    def store(self) -> JobStore:
        store: JobStore = self.app.state.judge.store
        return store

    def count_writes(self) -> None:
        add = self.store.add_transcripts

        def counted(*args: Any) -> None:
            self.writes += 1
            add(*args)

        self.store.add_transcripts = counted  # type: ignore[method-assign,assignment]

    def leftovers(self) -> int:
        """Jobs and transcripts in the store, committed or not."""
        if self.settings.queue_url is not None:
            client = redis.Redis.from_url(self.settings.queue_url)
            try:
                return len(list(client.scan_iter(match="judge:job:*")))
            finally:
                client.close()
        with sqlite3.connect(self.settings.state_dir / "jobs.sqlite3") as db:
            jobs = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            transcripts = db.execute("SELECT COUNT(*) FROM job_transcripts").fetchone()[0]
        return int(jobs + transcripts)


async def serve(
    request: pytest.FixtureRequest, tmp_path: Path, **overrides: Any
) -> AsyncIterator[Served]:
    """The app on the store ``request.param`` names (``sqlite`` or ``redis``)."""
    queue_url = request.getfixturevalue("redis_db") if request.param == "redis" else None
    settings = Settings(
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        queue_url=queue_url,
        max_transcript_chars=1000,
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://judge") as client:
            yield Served(app, client, settings)


@pytest.fixture(params=["sqlite", "redis"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve(request, tmp_path):
        yield served


async def chunked(data: bytes, size: int = 16384) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def ndjson(spec: dict[str, Any], records: list[Any]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in [spec, *records]).encode()


async def post(served: Served, content: Any, content_type: str, **headers: str) -> httpx.Response:
    return await served.client.post(
        "/v1/jobs", content=content, headers={"content-type": content_type, **headers}
    )


async def test_a_bad_record_at_position_70000_leaves_no_job_behind(served: Served) -> None:
    served.count_writes()
    records: list[Any] = [record(i) for i in range(70_000)]
    records.append({"id": "bad", "prompt": "no answer"})
    body = json.dumps({**SPEC, "transcripts": records}).encode()

    response = await post(served, chunked(body), "application/json")

    assert response.status_code == 422, response.text
    assert "transcripts[70000]" in response.json()["detail"]
    assert "field 'response'" in response.json()["detail"]
    assert served.writes >= 100  # the good records before it had been stored, then dropped
    assert served.leftovers() == 0


async def test_an_ndjson_upload_makes_the_job_a_json_body_makes(served: Served) -> None:
    records = [record(i) for i in range(1200)]
    key = {"idempotency-key": "batch-1"}

    as_ndjson = await post(served, chunked(ndjson(SPEC, records)), "application/x-ndjson", **key)
    as_json = await post(
        served, json.dumps({"transcripts": records, **SPEC}), "application/json", **key
    )

    assert as_ndjson.status_code == 202, as_ndjson.text
    job = as_ndjson.json()
    assert job["total"] == 1200 and job["state"] == "queued"
    assert as_json.status_code == 202, as_json.text
    assert as_json.json()["id"] == job["id"]
    assert as_json.headers["idempotent-replayed"] == "true"  # same content, either way
    stored = served.store.transcripts(job["id"], 1198, 10)
    assert [(i, t.id) for i, t in stored] == [(1198, "t1198"), (1199, "t1199")]
    other = await post(served, ndjson(SPEC, records[:-1]), "application/x-ndjson", **key)
    assert other.status_code == 409


@pytest.fixture(params=["sqlite", "redis"])
async def impatient(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    """A server that waits at most 0.3 s for the next bytes of a body."""
    async for served in serve(request, tmp_path, body_idle_seconds=0.3):
        yield served


async def test_a_body_that_stops_coming_is_408_and_leaves_no_job(impatient: Served) -> None:
    async def stalls() -> AsyncIterator[bytes]:
        yield ndjson(SPEC, [record(i) for i in range(50)])
        await asyncio.sleep(30)  # a client that declared more than it sends
        yield b""

    started = time.perf_counter()
    response = await post(impatient, stalls(), "application/x-ndjson")

    assert response.status_code == 408, response.text
    assert response.json()["title"] == "Request Timeout"
    assert response.headers["connection"] == "close"  # the rest of the body is not read
    assert "no bytes for 0.3 s (JUDGE_BODY_IDLE_SECONDS)" in response.json()["detail"]
    assert time.perf_counter() - started < 10
    assert impatient.leftovers() == 0


async def test_an_empty_idempotency_key_is_not_a_key_all_clients_share(served: Served) -> None:
    response = await post(
        served, ndjson(SPEC, [record(1)]), "application/x-ndjson", **{"idempotency-key": ""}
    )
    assert response.status_code == 422, response.text
    assert "idempotency-key" in response.json()["detail"]
    assert served.leftovers() == 0


async def test_transcripts_may_come_before_the_spec_and_are_graded(served: Served) -> None:
    body = json.dumps({"transcripts": [record(1)], "rubrics": ["refusal"], "judge": {}})

    response = await post(served, body, "application/json")

    assert response.status_code == 202, response.text
    assert served.store.get(response.json()["id"]).spec.rubrics == ["refusal"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (ndjson({"rubrics": ["nope"]}, [record(1)]), "'nope'"),
        (b'["refusal"]\n' + json.dumps(record(1)).encode(), "the first line is the job spec"),
        (ndjson({**SPEC, "transcripts": []}, [record(1)]), "the transcripts follow the spec"),
        (ndjson(SPEC, [record(1), {"prompt": "p", "response": 3}]),
         "transcripts[1]: line 3, field 'response'"),
        (ndjson(SPEC, [record(1)]) + b'{"prompt": "a", "prompt": "b"}\n',
         "body.transcripts.1.prompt: line 3: duplicate key"),
        (ndjson(SPEC, []), "at least 1 item"),
        (b"", "the body is empty"),
        (ndjson(SPEC, [{"prompt": "q", "response": "x" * 1500}]), "JUDGE_MAX_TRANSCRIPT_CHARS"),
    ],
)  # fmt: skip
async def test_an_ndjson_body_is_checked_line_by_line(
    served: Served, body: bytes, where: str
) -> None:
    response = await post(served, body, "application/x-ndjson")

    assert response.status_code == 422, response.text
    assert where in response.json()["detail"]
    assert served.leftovers() == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"rubrics": ["refusal"]}, "body.transcripts: Field required"),
        ({**SPEC, "transcripts": "x"}, "body.transcripts: Input should be a valid list"),
        ({**SPEC, "transcripts": [record(1)], "extra": 1}, "body.extra: Extra inputs"),
        ({"transcripts": [record(1)]}, "body.rubrics: Field required"),
    ],
)
async def test_a_json_body_is_checked_as_before(
    served: Served, body: dict[str, Any], where: str
) -> None:
    response = await post(served, json.dumps(body), "application/json")

    assert response.status_code == 422, response.text
    assert where in response.json()["detail"]
    assert served.leftovers() == 0


async def test_an_unknown_rubric_stops_the_body_before_any_transcript_is_stored(
    served: Served,
) -> None:
    served.count_writes()
    body = json.dumps({"rubrics": ["nope"], "transcripts": [record(i) for i in range(5000)]})

    response = await post(served, chunked(body.encode()), "application/json")

    assert response.status_code == 422 and "'nope'" in response.json()["detail"]
    assert served.writes == 0


async def test_a_job_body_of_another_type_is_415(served: Served) -> None:
    response = await post(served, "rubrics=refusal", "application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert "application/x-ndjson" in response.json()["detail"]


async def test_a_body_cut_off_over_the_limit_leaves_nothing(served: Served) -> None:
    served.settings.max_job_body_bytes = 200_000
    served.count_writes()
    records = [record(i) for i in range(20_000)]  # about 1.3 MB

    response = await post(served, chunked(ndjson(SPEC, records), 4096), "application/x-ndjson")

    assert response.status_code == 413
    assert served.writes >= 1 and served.leftovers() == 0


async def test_the_server_answers_while_a_body_is_taken_in(served: Served) -> None:
    half_sent = asyncio.Event()
    resume = asyncio.Event()
    data = ndjson(SPEC, [record(i) for i in range(3000)])

    async def slow_body() -> AsyncIterator[bytes]:
        yield data[: len(data) // 2]
        half_sent.set()
        await resume.wait()
        yield data[len(data) // 2 :]

    submitting = asyncio.create_task(post(served, slow_body(), "application/x-ndjson"))
    await half_sent.wait()
    ready = await served.client.get("/readyz")
    resume.set()
    response = await submitting

    assert ready.status_code == 200
    assert response.status_code == 202 and response.json()["total"] == 3000


async def test_a_job_is_cut_into_parts_unless_its_spending_is_capped(served: Served) -> None:
    records = [record(i) for i in range(1001)]
    free = await post(served, ndjson(SPEC, records), "application/x-ndjson")
    capped = await post(served, ndjson({**SPEC, "max_cost_usd": 5}, records), NDJSON)

    assert free.status_code == capped.status_code == 202, capped.text
    assert served.store.get(free.json()["id"]).shape == JobShape(1001, 1001, parts=6)
    assert served.store.get(capped.json()["id"]).shape == JobShape(1001)  # one runner, one budget


async def test_a_dry_run_reads_either_body_and_stores_nothing(served: Served) -> None:
    records = [record(i) for i in range(30)]
    as_json = json.dumps({**SPEC, "transcripts": records})
    for content, kind in ((ndjson(SPEC, records), NDJSON), (as_json, "application/json")):
        response = await served.client.post(
            "/v1/jobs", params={"dry_run": "true"}, content=content, headers={"content-type": kind}
        )
        assert response.status_code == 200, response.text
        assert response.json()["pairs"] == 30
    assert served.leftovers() == 0
