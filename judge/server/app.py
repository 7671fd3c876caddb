"""The HTTP service: ``create_app(settings)`` builds it; nothing is read from globals.

The app's lifespan loads the rubrics, opens the verdict cache and the job store, and either runs a
job runner in the background (a single server) or hands jobs to ``judge worker`` processes through
a Redis queue (``queue_url``: replicas then keep no state of their own). Every error leaves as
JSON problem details (RFC 9457) whose ``detail`` says what to fix; the table from exception to
status is ``_STATUS`` below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from judge.config import Settings
from judge.errors import (
    ConflictError,
    JudgeError,
    JudgeSpecError,
    NotFoundError,
    RubricError,
    TooLargeError,
    TranscriptError,
    UsageError,
)
from judge.heap import collect_seldom, freeze_long_lived
from judge.jobs.dispatch import JobDispatch, LocalDispatch
from judge.jobs.queue import QueueDispatch
from judge.jobs.redis_store import RedisJobStore
from judge.jobs.retention import prune_forever
from judge.jobs.runner import JobRunner
from judge.jobs.sqlite_store import SqliteJobStore
from judge.jobs.store import JobStore
from judge.metrics import Metrics
from judge.selection import GraderPool
from judge.server.auth import APIKeys
from judge.server.body_limit import BodyLimit
from judge.server.openapi import allowed_methods, document
from judge.server.routes import add_routes
from judge.server.state import ServerState, problem

access_log = logging.getLogger("judge.access")
logger = logging.getLogger(__name__)

_STATUS: list[tuple[type[Exception], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (RubricError, 422),
    (TranscriptError, 422),
    (JudgeSpecError, 422),
    (UsageError, 400),
]
"""Exception -> HTTP status, first match wins. Anything else is a 500 (and a bug)."""


def create_app(settings: Settings) -> FastAPI:
    """A ready-to-serve app for these settings."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        library = settings.rubric_library()
        cache = settings.open_cache()
        pool = GraderPool(settings, cache, on_verdict=metrics.observe_verdict)
        runner_task: asyncio.Task[None] | None = None
        store: JobStore
        dispatch: JobDispatch
        if settings.queue_url is not None:  # a stateless replica: workers grade the jobs
            shared = RedisJobStore(settings.queue_url)
            store, dispatch = shared, QueueDispatch(settings, shared.progress_channel)
        else:
            local = SqliteJobStore(settings.state_dir / "jobs.sqlite3")
            runner = JobRunner(local, pool, library, lease_seconds=settings.job_lease_seconds)
            runner_task = asyncio.create_task(runner.run_forever(local), name="job-runner")
            store, dispatch = local, LocalDispatch(runner)
        app.state.judge = ServerState(settings, library, cache, store, pool, dispatch, metrics)
        tasks = [] if runner_task is None else [runner_task]
        if settings.job_ttl is not None:
            tasks.append(asyncio.create_task(prune_forever(store, settings.job_ttl), name="prune"))
        freeze_long_lived()  # imports, rubrics, app: what the server keeps till it stops
        collect_seldom()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await dispatch.close()
            store.close()
            await pool.aclose()
            await cache.close()

    app = FastAPIOffline(  # the docs' assets come from the package: air-gapped hosts see them
        title="judge",
        summary="Grade model transcripts for misgeneralization with LLM judges.",
        version="0.1.0",
        lifespan=lifespan,
    )
    add_routes(app)
    app.openapi = document(app, settings)  # type: ignore[method-assign]
    _add_error_handlers(app)
    # Outermost last: the access log sees every answer, the key is checked before the body.
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: (
            settings.max_job_body_bytes if path.startswith("/v1/jobs") else settings.max_body_bytes
        ),
        idle_seconds=settings.body_idle_seconds,
    )
    app.add_middleware(APIKeys, keys=settings.api_keys)
    app.middleware("http")(_access_middleware(metrics))
    return app


def app_from_environment() -> FastAPI:
    """The app for ``JUDGE_*`` settings: the factory ``judge serve`` hands to uvicorn."""
    return create_app(Settings())


def _add_error_handlers(app: FastAPI) -> None:
    async def judge_error(request: Request, exc: Exception) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        return problem(status, str(exc))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:10])
        return problem(422, f"invalid request: {detail}", errors=errors)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        if exc.status_code == 405:  # Starlette's Allow names one route's methods, not the path's
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            allowed = allowed_methods(app, request.url.path)
            headers["allow"] = ", ".join(allowed)
            if request.method == "OPTIONS" and allowed:
                return Response(status_code=204, headers=headers)
            detail = f"{request.method} is not allowed here; use one of: {headers['allow']}"
        response = problem(exc.status_code, detail)
        response.headers.update(headers)
        return response

    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        logger.error("Redis failed on %s %s: %s", request.method, request.url.path, exc)
        response = problem(503, f"the job store or queue (Redis) is unavailable: {exc}; retry")
        response.headers["retry-after"] = "5"
        return response

    async def client_gone(request: Request, exc: Exception) -> JSONResponse:
        # Not the server's error, and nobody is left to read the answer: a line, no traceback
        # (none when BodyLimit cut the body off: it answers, and its access line says so).
        if not getattr(request.state, "body_refused", False):
            logger.info("client went away during %s %s", request.method, request.url.path)
        return problem(400, "the client closed the connection before the whole body came")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal error; the server log has the details")

    app.add_exception_handler(JudgeError, judge_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RedisError, redis_down)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)


def _access_middleware(
    metrics: Metrics,
) -> Callable[[Request, Callable[[Request], Awaitable[Any]]], Awaitable[Any]]:
    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        response.headers["x-request-id"] = request_id
        access_log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return response

    return middleware
