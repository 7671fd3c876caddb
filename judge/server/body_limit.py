"""Request bodies over the limit for their path are refused (413) without being read past it,
and bodies that stall are refused (408) instead of holding the request open.

A declared ``Content-Length`` over the limit is refused before any byte is read. A body sent
without one (``Transfer-Encoding: chunked``) is counted as it arrives: at the first byte over the
limit the app is told the client went away (so it stops reading), its reply to that is dropped,
and the 413 goes out instead. A body whose next bytes do not come within ``idle_seconds`` (a
client that declared more than it sends, or one that trickles on purpose) ends the same way, with
a 408. Starlette's own limiter answers the first case in plain text, and every error here is
problem details, so this one stays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from judge.server.state import send_problem

_CLOSE = {"connection": "close"}
"""A refused body's connection is closed: the rest of the body would otherwise be read as the
next request, or keep the connection open as long as it trickles in."""


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit_for(path)`` bytes with a 413, and one that
    pauses for more than ``idle_seconds`` with a 408."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int], idle_seconds: float):
        self.app = app
        self.limit_for = limit_for
        self.idle_seconds = idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_problem(send, 413, _too_large(limit, scope["path"]), _CLOSE)
            return
        received = 0
        whole = False
        refusal: tuple[int, str] | None = None
        started = False

        def refuse(status: int, detail: str) -> Message:
            nonlocal refusal
            refusal = (status, detail)
            scope.setdefault("state", {})["body_refused"] = True  # not the client that left
            return {"type": "http.disconnect"}

        async def limited_receive() -> Message:
            nonlocal received, whole
            if refusal is not None:
                return {"type": "http.disconnect"}
            if whole:  # past the body, receive waits for the client to leave: no time limit
                return await receive()
            try:
                async with asyncio.timeout(self.idle_seconds):  # a timer, not a task a chunk
                    message = await receive()
            except TimeoutError:
                return refuse(408, _stalled(self.idle_seconds))
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if received > limit:
                    return refuse(413, _too_large(limit, scope["path"]))
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:
                return  # the app's answer to a body it never got whole; the refusal replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not started:
            await send_problem(send, *refusal, _CLOSE)


def _too_large(limit: int, path: str) -> str:
    if path.startswith("/v1/jobs"):
        return (
            f"request body over {limit} bytes (JUDGE_MAX_JOB_BODY_BYTES); split the batch into "
            "several jobs"
        )
    return (
        f"request body over {limit} bytes (JUDGE_MAX_BODY_BYTES); send fewer transcripts per "
        "request, or use POST /v1/jobs for large batches"
    )


def _stalled(idle_seconds: float) -> str:
    return (
        f"the request body stopped: no bytes for {idle_seconds:g} s (JUDGE_BODY_IDLE_SECONDS); "
        "send the whole body, and as much as Content-Length declares"
    )
