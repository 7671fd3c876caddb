"""Hostile request bodies and parameters: each one is a 4xx problem that says what to fix and
where (the transcript's index and field), never a 500."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from judge.config import Settings
from judge.server.app import create_app
from judge.server.body_limit import BodyLimit
from tests.test_server import serve

GOOD = '{"id": "ok", "prompt": "How do I stop a process?", "response": "Run kill <pid>."}'


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        max_body_bytes=64 * 1024,
        max_job_body_bytes=128 * 1024,
        max_transcript_chars=1000,
    )
    async for client in serve(settings):
        yield client


def body(*records: str, extra: str = "") -> bytes:
    return f'{{"transcripts": [{", ".join(records)}], "rubrics": ["refusal"]{extra}}}'.encode()


async def post(client: httpx.AsyncClient, path: str, content: bytes) -> httpx.Response:
    return await client.post(path, content=content, headers={"content-type": "application/json"})


@pytest.mark.parametrize("path", ["/v1/grade", "/v1/jobs"])
@pytest.mark.parametrize(
    ("content", "where", "reason"),
    [
        (body(GOOD, '{"prompt": "hi", "response": "bad \\ud800"}'),
         "transcripts.1.response", "lone surrogate"),
        (body('{"prompt": "hi\\u0000", "response": "x"}'),
         "transcripts[0]: field 'prompt'", "control"),
        (body('{"prompt": "a", "prompt": "b", "response": "x"}'), "prompt", "duplicate key"),
        (body(GOOD, extra=', "rubrics": ["refusal"]'), "rubrics", "duplicate key"),
        (body('{"prompt": "a", "response": "x", "n": NaN}'), "body", "NaN"),
        (body('{"prompt": "a", "response": "x", "n": 1' + "0" * 30 + "}"), "body", "too large"),
        (body('{"prompt": "a", "response": "x", "n": ' + "[" * 80 + "]" * 80 + "}"),
         "transcripts", "nested"),
        (body('{"prompt": "a", "response": "x", "n": ' + "[" * 3000 + "]" * 3000 + "}"),
         "body", "nested"),
        (body(GOOD, '{"prompt": "q", "response": "' + "x" * 1500 + '"}'),
         "transcripts[1]: field 'messages'", "JUDGE_MAX_TRANSCRIPT_CHARS"),
        (body('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", '
              '"tool_calls": [{"function": null}]}]}'),
         "transcripts[0]: field 'messages.1.tool_calls'", "'function' must be an object"),
        (body('{"messages": [{"role": "user", "content": "q", "pad": "' + "x" * 1500 + '"}]}'),
         "transcripts[0]: field 'messages'", "JUDGE_MAX_TRANSCRIPT_CHARS"),
        (body('{"prompt": "q", "response": "a", "group": {"a": 1}}'),
         "transcripts[0]: field 'group'", "a group id is a string or an integer"),
        (body('{"id": "' + "i" * 1025 + '", "prompt": "q", "response": "a"}'),
         "transcripts[0]: field 'id'", "an id is at most 1024"),
        (b'{"transcripts": [' + GOOD.encode() + b'], "rubrics": ["\\ud800"]}',
         "rubrics", "lone surrogate"),
        (b'{"transcripts": [{"prompt": "caf\xe9", "response": "x"}], "rubrics": ["refusal"]}',
         "body", "not UTF-8"),
    ],
)  # fmt: skip
async def test_hostile_bodies_are_422_naming_where(
    client: httpx.AsyncClient, path: str, content: bytes, where: str, reason: str
) -> None:
    response = await post(client, path, content)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert where in detail and reason in detail, detail
    assert detail.count("field '") <= 1, detail  # the field is named once


async def test_a_boolean_field_takes_only_a_boolean(client: httpx.AsyncClient) -> None:
    graded = (await post(client, "/v1/grade", body(GOOD))).json()["verdicts"]
    verdict = {**graded[0], "cached": 0}
    response = await client.post("/v1/reports", json={"verdicts": [verdict]})
    assert response.status_code == 422
    assert "verdicts.0.cached" in response.json()["detail"]
    samples = await client.post(
        "/v1/grade", json={**json.loads(body(GOOD)), "judge": {"samples": "2"}}
    )
    assert samples.status_code == 422 and "judge.samples" in samples.json()["detail"]


async def test_a_chunked_body_over_the_limit_is_413_without_reading_on(
    client: httpx.AsyncClient,
) -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"transcripts": ['
        for _ in range(200):  # 200 x 1 KiB against a 64 KiB limit
            sent.append(1)
            yield (GOOD[:-1] + ', "pad": "' + "x" * 1000 + '"},').encode()

    response = await client.post(
        "/v1/grade", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "request body over 65536 bytes" in response.json()["detail"]
    assert response.headers["connection"] == "close"
    assert len(sent) < 100  # it stopped reading soon after the limit


@pytest.mark.parametrize(
    ("path", "advice"),
    [("/v1/grade", "(JUDGE_MAX_BODY_BYTES); send fewer transcripts per request, or use POST "
                   "/v1/jobs"),
     ("/v1/jobs", "(JUDGE_MAX_JOB_BODY_BYTES); split the batch into several jobs")],
)  # fmt: skip
async def test_a_body_over_the_limit_is_told_the_way_round_it_for_its_route(
    client: httpx.AsyncClient, path: str, advice: str
) -> None:
    pad = '"' + "x" * 200 * 1024 + '"'
    response = await post(client, path, body(GOOD, extra=f', "pad": {pad}'))
    assert response.status_code == 413
    assert advice in response.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/grade", "/v1/reports"])
async def test_a_body_is_json_by_its_content_type(client: httpx.AsyncClient, path: str) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ";;;==="):
        refused = await client.post(
            path, content=body(GOOD), headers={"content-type": content_type}
        )
        assert refused.status_code == 415, refused.text
        assert f"send the body as application/json, not {content_type!r}" in refused.text
    untyped = await client.post(path, content=body(GOOD))
    assert untyped.status_code == 415
    assert "send the body as application/json, not no Content-Type" in untyped.text


@pytest.mark.parametrize("cursor", ["9223372036854775808", "-1", "1e3", "99999999999999999999999"])
async def test_an_integer_parameter_past_its_bound_is_422(
    client: httpx.AsyncClient, cursor: str
) -> None:
    job = (await post(client, "/v1/jobs", body(GOOD))).json()
    response = await client.get(f"/v1/jobs/{job['id']}/verdicts", params={"cursor": cursor})
    assert response.status_code == 422
    assert "cursor" in response.json()["detail"]


async def test_an_unknown_job_id_of_any_bytes_is_404(client: httpx.AsyncClient) -> None:
    for job_id in ["%ED%A0%80", "x" * 300, "..%2F..%2Fetc"]:
        response = await client.get(f"/v1/jobs/{job_id}")
        assert response.status_code in (404, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/v1/grade", "/v1/jobs"])
async def test_a_client_that_leaves_mid_body_is_a_line_in_the_log_not_an_error(
    tmp_path: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state"))
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"rubrics": ["refusal"], "tran', "more_body": True}
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    headers = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"judge"), *headers],
        "client": ("127.0.0.1", 5000), "server": ("judge", 80),
    }  # fmt: skip
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)  # nothing raised to the server

    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert f"client went away during POST {path}" in caplog.text


async def test_past_the_body_the_wait_for_the_client_to_leave_has_no_time_limit() -> None:
    """A streaming response listens for the client leaving as long as it streams: the body's
    pause limit must not end it."""
    heard: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        try:
            heard.append((await asyncio.wait_for(receive(), 0.5))["type"])
        except TimeoutError:
            heard.append("nothing")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages = [{"type": "http.request", "body": b"{}", "more_body": True},
                {"type": "http.request", "body": b"", "more_body": False}]  # fmt: skip
    left = asyncio.Event()

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await left.wait()  # the client stays
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    limited = BodyLimit(app, limit_for=lambda path: 1000, idle_seconds=0.1)
    await limited({"type": "http", "path": "/v1/jobs/x/verdicts", "headers": []}, receive, send)

    assert heard == ["nothing"] and sent[0]["status"] == 200
