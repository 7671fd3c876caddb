"""Batch jobs: submit, look at, cancel, and stream verdicts (resumable by cursor)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from judge.errors import NotFoundError
from judge.estimate import Estimate
from judge.jobs.store import TERMINAL
from judge.server.dependencies import State
from judge.server.job_intake import JSON, NDJSON, body_kind, estimate_body, take_in
from judge.server.json_route import StrictJSONRoute
from judge.server.openapi import errors
from judge.server.state import ServerState
from judge.wire import JobPublic

router = APIRouter(tags=["jobs"], route_class=StrictJSONRoute)

JobId = Annotated[str, Path(max_length=64, description="The id POST /v1/jobs returned.")]

MAX_CURSOR = 2**53
"""Far past any job (max_job_pairs bounds a job), and within every integer a store keeps."""


JOB_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": {"$ref": "#/components/schemas/JobCreate"}},
            NDJSON: {
                "schema": {
                    "type": "array",
                    "description": "One JSON value a line: the job spec (the JSON body without "
                    "its transcripts) on the first, then a transcript record a line. Read as "
                    "it arrives, so a body of any size takes flat memory.",
                    "prefixItems": [{"$ref": "#/components/schemas/JobSpec"}],
                    "items": {
                        "$ref": "#/components/schemas/GradeCreate/properties/transcripts/items"
                    },
                    "minItems": 2,
                }
            },
        },
    }
}
"""The body ``take_in`` reads, as FastAPI cannot see it (the route reads the stream itself)."""


@router.post(
    "/v1/jobs",
    status_code=202,
    openapi_extra=JOB_BODY,
    response_model=JobPublic,
    responses={
        200: {"model": Estimate, "description": "dry_run: what the job would take and cost"},
        202: {
            "headers": {"Location": {"description": "The job's URL", "schema": {"type": "string"}}}
        },
        **errors(409, 413, 415, 422, 503),
    },
)
async def create_job(
    request: Request,
    state: State,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
    dry_run: Annotated[
        bool,
        Query(
            description="Make no job and no judge call: answer with the pairs, cache hits, "
            "calls to make, estimated tokens and cost per model."
        ),
    ] = False,
) -> JobPublic | JSONResponse:
    """Queue a batch of any size (JSON, or NDJSON: the spec, then a transcript a line); poll
    it, stream its verdicts, or cancel it."""
    kind = body_kind(request.headers.get("content-type"))
    if dry_run:
        found = await estimate_body(state, kind, request.stream())
        return JSONResponse(found.model_dump(mode="json"), status_code=200)
    job, created = await take_in(state, kind, request.stream(), idempotency_key)
    if job.state not in TERMINAL:
        await state.dispatch.submitted(job.id)
    response.headers["location"] = f"/v1/jobs/{job.id}"
    if not created:
        response.headers["idempotent-replayed"] = "true"
    return JobPublic.of(job)


@router.get("/v1/jobs/{job_id}", responses=errors(404, 503))
async def get_job(job_id: JobId, state: State) -> JobPublic:
    """State, counts by status and error kind, calls made and cost so far."""
    return JobPublic.of(await asyncio.to_thread(state.store.get, job_id))


@router.post("/v1/jobs/{job_id}/cancel", responses=errors(404, 503))
async def cancel_job(job_id: JobId, state: State) -> JobPublic:
    """Stop a job; the verdicts it has stored stay available (a finished job stays as it is)."""
    return JobPublic.of(await asyncio.to_thread(state.store.cancel, job_id))


@router.delete("/v1/jobs/{job_id}", status_code=204, responses=errors(404, 503))
async def delete_job(job_id: JobId, state: State) -> Response:
    """Stop a job and remove it with its transcripts and verdicts (the verdict cache keeps
    every judge call it paid for). Its Idempotency-Key may then be used again."""
    await asyncio.to_thread(state.store.delete, job_id)
    return Response(status_code=204)


@router.get(
    "/v1/jobs/{job_id}/verdicts",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One verdict a line (NDJSON), in a fixed order",
            "content": {
                "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/Verdict-Output"}}
            },
        },
        **errors(404, 422, 503),
    },
)
async def job_verdicts(
    job_id: JobId,
    state: State,
    cursor: Annotated[
        int, Query(ge=0, le=MAX_CURSOR, description="Verdicts already received.")
    ] = 0,
    follow: Annotated[bool, Query(description="Keep streaming until the job ends.")] = True,
) -> StreamingResponse:
    """Verdicts as NDJSON, one per line, in a fixed order. A client that has received N lines
    resumes with ``cursor=N`` and gets every verdict exactly once."""
    await asyncio.to_thread(state.store.get, job_id)  # 404 before the stream starts
    return StreamingResponse(
        _stream(state, job_id, cursor, follow),
        media_type="application/x-ndjson",
        headers={"x-cursor-start": str(cursor)},
    )


async def _stream(state: ServerState, job_id: str, cursor: int, follow: bool) -> AsyncIterator[str]:
    while True:
        progress = state.dispatch.progress(job_id)
        lines = await asyncio.to_thread(state.store.verdict_lines, job_id, cursor, 500)
        if lines:
            cursor += len(lines)
            yield "".join(line + "\n" for line in lines)
            continue
        try:
            job = await asyncio.to_thread(state.store.get, job_id)
        except NotFoundError:  # deleted while streaming: the stream ends where it is
            return
        if not follow or job.state in TERMINAL:
            return
        with contextlib.suppress(TimeoutError):  # other processes' progress shows on the poll
            await asyncio.wait_for(progress.wait(), state.dispatch.poll_seconds)
