"""Operations: liveness and readiness (no key needed: probes) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from judge.server.dependencies import State
from judge.server.openapi import errors
from judge.server.state import problem
from judge.wire import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=errors(503))
async def readyz(state: State) -> JSONResponse:
    """Rubrics loaded, cache and job store writable."""
    checks = {
        "rubrics": len(state.library) > 0,
        "cache": await state.cache.ping(),
        "jobs": await asyncio.to_thread(state.store.ping),
    }
    if all(checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, ok in checks.items() if not ok)
    return problem(503, f"not ready: {failing}", checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}}},
)
async def metrics(state: State) -> Response:
    """Prometheus exposition: requests, verdicts, judge calls and latency, cache, cost."""
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")
