"""Request bodies over the limit for their path are refused (413) without being read past it.

A declared ``Content-Length`` over the limit is refused before any byte is read. A body sent
without one (``Transfer-Encoding: chunked``) is counted as it arrives: at the first byte over the
limit the app is told the client went away (so it stops reading), its reply to that is dropped,
and the 413 goes out instead. Starlette's own limiter answers the first case in plain text, and
every error here is problem details, so this one stays.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from judge.server.state import send_problem


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit_for(path)`` bytes with a 413."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_too_large(send, limit)
            return
        received = 0
        over = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the app's answer to a body it never got whole; the 413 replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _send_too_large(send, limit)


def _too_large(limit: int) -> str:
    return (
        f"request body over {limit} bytes; send fewer transcripts per request, or use "
        "POST /v1/jobs for large batches (JUDGE_MAX_BODY_BYTES, JUDGE_MAX_JOB_BODY_BYTES)"
    )


async def _send_too_large(send: Send, limit: int) -> None:
    await send_problem(send, 413, _too_large(limit))
