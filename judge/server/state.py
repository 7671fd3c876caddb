"""What the routes share: the server's state, built once per app in its lifespan, and the one
shape every error leaves in (RFC 9457 problem details)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
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


_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}
"""RFC 9110's names where Python's ``HTTPStatus`` still has the older ones."""


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    """A problem-details response."""
    try:
        title = _TITLES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {
        "type": "about:blank",
        "title": title,
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
