"""What the routes share: the server's state, built once per app in its lifespan, and the one
shape every error leaves in (RFC 9457 problem details)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import Send

from judge.cache import CallCache
from judge.config import Settings
from judge.jobs.dispatch import JobDispatch
from judge.jobs.store import JobStore
from judge.metrics import Metrics
from judge.rubric import RubricLibrary
from judge.selection import GraderPool


@dataclass
class ServerState:
    """What the routes need, built once per app in its lifespan."""

    settings: Settings
    library: RubricLibrary
    cache: CallCache
    store: JobStore
    pool: GraderPool
    dispatch: JobDispatch
    metrics: Metrics


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    """A problem-details response."""
    titles = {
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        409: "Conflict",
        413: "Content Too Large",
        422: "Unprocessable Content",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }
    body = {
        "type": "about:blank",
        "title": titles.get(status, "Error"),
        "status": status,
        "detail": _printable(detail),
        **extra,
    }
    return JSONResponse(jsonable(body), status_code=status, media_type="application/problem+json")


def _printable(text: str) -> str:
    """Text any encoder takes: a detail may quote input (a lone surrogate in a rubric id)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of a problem's fields with every string made printable."""
    if isinstance(value, str):
        return _printable(value)
    if isinstance(value, dict):
        return {_printable(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


async def send_problem(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """A problem response sent by ASGI middleware, which answers before any route runs."""
    response = problem(status, detail)
    response.headers.update(headers or {})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
