"""The client's protocol against scripted replies (httpx's MockTransport): retries and what is
never retried, Retry-After, the wait budget, error bodies, and resuming a verdict stream by cursor,
for ``Client`` and ``AsyncClient`` alike. The real server: tests/test_client_process.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from judge.client import AsyncClient, Client, JudgeAPIError, JudgeUnavailableError, resume
from judge.client.calls import batch, canonical
from judge.client.resume import Cursor, Outage
from judge.transcript import Transcript
from judge.verdict import RubricRef, Status, Verdict
from judge.wire import JobPublic, RubricSummary

URL = "http://judge.test"
REFUSAL = RubricRef(id="refusal", version="1", hash="h")
Handler = Callable[[httpx.Request], httpx.Response]


def verdict_line(number: int) -> bytes:
    verdict = Verdict(transcript_id=f"t{number}", rubric=REFUSAL, status=Status.GRADED)
    return verdict.model_dump_json().encode() + b"\n"


def job_json(state: str = "queued") -> dict[str, Any]:
    summary: dict[str, Any] = {}
    return JobPublic(
        id="j1",
        state=state,
        created_at=0,
        updated_at=0,
        rubrics=["refusal"],
        total=5,
        summary=summary,
        verdicts_url="/v1/jobs/j1/verdicts",
    ).model_dump(mode="json")


RUBRICS = [
    RubricSummary(
        id="refusal",
        version="1",
        hash="h",
        category="refusal",
        description="d",
        requires=[],
        criteria=["refusal"],
    ).model_dump(mode="json")
]


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": "T", "status": status, "detail": detail, **extra}
    headers = {"content-type": "application/problem+json", **extra.pop("headers", {})}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """Replies in order (a response, or an exception to raise as the transport would), and the
    requests that got them."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def client(script: Handler, **options: Any) -> Client:
    return Client(URL, transport=httpx.MockTransport(script), **options)


def test_importing_the_client_imports_neither_the_server_nor_litellm() -> None:
    code = (
        "import sys, judge.client; "
        "print(sorted(m for m in ('fastapi', 'redis', 'litellm', 'saq', 'starlette', 'uvicorn')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_key_and_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_URL", "http://from-env:9000/")
    monkeypatch.setenv("JUDGE_API_KEY", "k-env")
    script = Script(httpx.Response(200, json=RUBRICS))
    with Client(transport=httpx.MockTransport(script)) as env_client:
        assert env_client.rubrics()[0].id == "refusal"
    [request] = script.requests
    assert str(request.url) == "http://from-env:9000/v1/rubrics"
    assert request.headers["authorization"] == "Bearer k-env"
    with Client("http://given", api_key="k-arg") as given:
        assert given.base_url == "http://given"
        assert given._http.headers["authorization"] == "Bearer k-arg"


def test_submit_sends_the_same_key_and_body_on_every_attempt() -> None:
    """A connection refused and a 503 later, the job is made once: each attempt carries the
    sha256 of the canonical body as its Idempotency-Key."""
    script = Script(
        httpx.ConnectError("refused"),
        problem(503, "busy", headers={"retry-after": "0"}),
        httpx.Response(202, json=job_json()),
    )
    records = [{"id": "a", "prompt": "q", "response": "r"}]
    transcript = Transcript.from_prompt("q2", "r2", id="b", metadata={"model": "m"})
    with client(script) as c:
        job = c.submit([*records, transcript], "refusal", judge=["fake", "offline"])

    assert job.id == "j1" and len(script.requests) == 3
    bodies = {r.content for r in script.requests}
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(bodies) == 1 and len(keys) == 1
    [body] = bodies
    assert keys == {hashlib.sha256(body).hexdigest()}
    sent = json.loads(body)
    assert sent["judge"] == {"models": ["fake", "offline"]} and sent["rubrics"] == ["refusal"]
    assert sent["transcripts"][1]["messages"][0] == {"role": "user", "content": "q2"}
    assert sent["transcripts"][1]["metadata"] == {"model": "m"}


def test_the_idempotency_key_depends_on_content_only() -> None:
    one = batch([{"prompt": "q", "response": "r", "id": "a"}], ["refusal"], "fake", "use")
    same = batch([{"id": "a", "response": "r", "prompt": "q"}], "refusal", "fake", "use")
    other = batch([{"id": "a", "response": "r", "prompt": "q"}], "refusal", "fake", "refresh")
    assert canonical(one) == canonical(same) != canonical(other)


def test_given_idempotency_key_is_sent_as_given() -> None:
    script = Script(httpx.Response(202, json=job_json()))
    with client(script) as c:
        c.submit([{"prompt": "q", "response": "r"}], ["refusal"], idempotency_key="ckpt-1200")
    assert script.requests[0].headers["idempotency-key"] == "ckpt-1200"


def test_retry_after_is_honoured() -> None:
    script = Script(
        problem(503, "the job store is unavailable", headers={"retry-after": "1"}),
        problem(429, "slow down", headers={"retry-after": "0.5"}),
        httpx.Response(200, json=RUBRICS),
    )
    with client(script) as c:
        assert [r.id for r in c.rubrics()] == ["refusal"]
    gaps = [b - a for a, b in zip(script.times, script.times[1:], strict=False)]
    assert gaps[0] >= 1.0 and 0.5 <= gaps[1] < 1.0


def test_a_retry_after_past_max_wait_gives_up_at_once_with_the_problem() -> None:
    script = Script(problem(503, "down for maintenance", headers={"retry-after": "120"}))
    with client(script, max_wait=5) as c, pytest.raises(JudgeUnavailableError) as caught:
        c.judges()
    assert len(script.requests) == 1
    assert isinstance(caught.value.last_error, JudgeAPIError)
    assert caught.value.last_error.detail == "down for maintenance"


def test_a_service_that_stays_away_raises_after_max_wait() -> None:
    script = Script(*[httpx.ConnectError("connection refused")] * 100)
    started = time.monotonic()
    with client(script, max_wait=1.0) as c, pytest.raises(JudgeUnavailableError) as caught:
        c.job("j1")
    elapsed = time.monotonic() - started
    assert elapsed <= 1.5 and len(script.requests) >= 3
    assert "http://judge.test" in str(caught.value) and caught.value.waited <= 1.5
    assert isinstance(caught.value.last_error, httpx.ConnectError)


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 422, 500])
def test_error_replies_raise_at_once_with_their_problem(status: int) -> None:
    errors = [{"location": "body.judge.samples", "message": "too small"}]
    script = Script(problem(status, "what to fix", errors=errors))
    with client(script) as c, pytest.raises(JudgeAPIError) as caught:
        c.job("j1")
    assert len(script.requests) == 1
    error = caught.value
    assert (error.status, error.title, error.detail, error.errors) == (
        status,
        "T",
        "what to fix",
        errors,
    )
    assert error.body["status"] == status and str(error) == f"{status} T: what to fix"


def test_a_reply_that_is_not_problem_json_still_says_what_happened() -> None:
    script = Script(*[httpx.Response(502, text="<html>bad gateway</html>")] * 2)
    with client(script, max_wait=0.1) as c, pytest.raises(JudgeUnavailableError) as caught:
        c.rubrics()
    last = caught.value.last_error
    assert isinstance(last, JudgeAPIError) and last.detail == "<html>bad gateway</html>"


def test_grade_is_not_sent_again_once_it_may_have_reached_the_server() -> None:
    """A read error after sending could mean the server is grading it: a second request could pay
    twice, so it raises; a refused connection is safe to retry."""
    sent_and_lost = Script(httpx.ReadError("connection reset"))
    with client(sent_and_lost) as c, pytest.raises(httpx.ReadError):
        c.grade([{"prompt": "q", "response": "r"}], ["refusal"])
    assert len(sent_and_lost.requests) == 1

    never_sent = Script(
        httpx.ConnectError("refused"),
        httpx.Response(200, json={"verdicts": [], "summary": {}}),
    )
    with client(never_sent) as c:
        assert c.grade([{"prompt": "q", "response": "r"}], ["refusal"]).verdicts == []
    assert len(never_sent.requests) == 2


# -- resuming a verdict stream ----------------------------------------------------------------


class Stream:
    """A verdict stream that breaks: each connection serves from the requested cursor up to a
    given number of lines (cutting the next line in half), then drops or ends."""

    def __init__(
        self, total: int, cuts: list[int | Exception | httpx.Response], asynchronous: bool
    ) -> None:
        self.total = total
        self.cuts = cuts
        self.asynchronous = asynchronous
        self.cursors: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/jobs/j1/verdicts"
        cursor = int(request.url.params["cursor"])
        self.cursors.append(cursor)
        cut = self.cuts.pop(0) if self.cuts else self.total
        if isinstance(cut, Exception):
            raise cut
        if isinstance(cut, httpx.Response):
            return cut
        data = b"".join(verdict_line(n) for n in range(cursor, min(cut, self.total)))
        if cut < self.total:
            data += verdict_line(cut)[:20]
        chunks = [data[i : i + 7] for i in range(0, len(data), 7)]  # lines split across chunks
        dropped = cut < self.total
        if self.asynchronous:
            return httpx.Response(200, content=self._async_body(chunks, dropped))
        return httpx.Response(200, content=self._body(chunks, dropped))

    @staticmethod
    def _body(chunks: list[bytes], dropped: bool) -> Iterator[bytes]:
        yield from chunks
        if dropped:
            raise httpx.RemoteProtocolError("peer closed connection: incomplete chunked read")

    @staticmethod
    async def _async_body(chunks: list[bytes], dropped: bool) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
        if dropped:
            raise httpx.RemoteProtocolError("peer closed connection: incomplete chunked read")


async def read_verdicts(stream: Stream, **options: Any) -> list[Verdict]:
    transport = httpx.MockTransport(stream)
    if stream.asynchronous:
        async with AsyncClient(URL, transport=transport, **options) as async_client:
            return [v async for v in async_client.verdicts("j1")]
    with Client(URL, transport=transport, **options) as sync_client:
        return list(sync_client.verdicts("j1"))


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Client", "AsyncClient"])
async def test_a_dropped_stream_resumes_from_its_cursor_and_yields_each_verdict_once(
    asynchronous: bool,
) -> None:
    """Dropped after 3 whole lines and half a fourth; dropped again before a whole line; refused;
    503; then 5 more lines and a drop; then the rest."""
    restarting = problem(503, "starting", headers={"retry-after": "0"})
    cuts: list[int | Exception | httpx.Response] = [3, 3, httpx.ConnectError("x"), restarting, 8]
    stream = Stream(total=10, cuts=cuts, asynchronous=asynchronous)
    received = await read_verdicts(stream)

    assert [v.transcript_id for v in received] == [f"t{n}" for n in range(10)]
    assert stream.cursors == [0, 3, 3, 3, 3, 8]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Client", "AsyncClient"])
async def test_a_stream_that_keeps_dropping_without_progress_gives_up(asynchronous: bool) -> None:
    stream = Stream(total=10, cuts=[2, *[2] * 50], asynchronous=asynchronous)
    with pytest.raises(JudgeUnavailableError) as caught:
        await read_verdicts(stream, max_wait=0.3)
    assert isinstance(caught.value.last_error, httpx.RemoteProtocolError)
    assert stream.cursors[0] == 0 and set(stream.cursors[1:]) == {2}


def test_a_drop_after_a_healthy_stream_starts_a_fresh_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream that reopened after an outage and then stayed up (a slow job) gets the whole
    max_wait again when it drops; one that dies at once continues the outage it came from."""
    monkeypatch.setattr(resume, "HEALTHY", 0.05)
    outage = Outage(URL, limit=1.0)
    cursor = Cursor("j1", 0, outage)
    outage.since = time.monotonic() - 10  # an outage long ago, before the stream reopened
    cursor.call()
    cursor.opened()
    time.sleep(0.1)
    cursor.dropped(httpx.ReadError("connection reset"))
    assert outage.waited < 0.1

    outage.since = time.monotonic() - 10
    cursor.call()
    cursor.opened()
    with pytest.raises(JudgeUnavailableError):
        cursor.dropped(httpx.ReadError("connection reset"))


def test_a_stream_that_ends_inside_a_line_is_resumed_not_trusted() -> None:
    cursor = Cursor("j1", 0, Outage(URL, 60))
    assert cursor.feed(verdict_line(0) + verdict_line(1)[:10]) != []
    with pytest.raises(httpx.RemoteProtocolError):
        cursor.end()
    assert cursor.position == 1 and cursor.call().params == {"cursor": 1}
    assert [v.transcript_id for v in cursor.feed(verdict_line(1))] == ["t1"]
    cursor.end()


def test_a_404_stream_raises_at_once() -> None:
    script = Script(problem(404, "no job 'j1'"))
    with client(script) as c, pytest.raises(JudgeAPIError) as caught:
        list(c.verdicts("j1"))
    assert caught.value.status == 404 and len(script.requests) == 1


def test_wait_polls_until_the_job_ends_or_times_out() -> None:
    states = ["queued", "running", "succeeded"]
    script = Script(*(httpx.Response(200, json=job_json(state)) for state in states))
    with client(script) as c:
        assert c.wait("j1", poll=0.01).state == "succeeded"
    assert len(script.requests) == 3

    running = Script(*[httpx.Response(200, json=job_json("running"))] * 100)
    with client(running) as c, pytest.raises(TimeoutError, match=r"still running after 0\.2 s"):
        c.wait("j1", timeout=0.2, poll=0.05)
