"""Routes: parse the request, call the library, render the result. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from judge.errors import (
    AuthenticationError,
    NotFoundError,
    TooLargeError,
    TranscriptError,
    UsageError,
)
from judge.grouping import units
from judge.judges import OFFLINE_MODEL
from judge.reports import compare, rates
from judge.rubric import Rubric
from judge.server.app import ServerState, problem
from judge.server.jobs import TERMINAL
from judge.server.schemas import (
    GradeCreate,
    GradePublic,
    JobPublic,
    JudgePublic,
    JudgesPublic,
    ReportCreate,
    ReportPublic,
    RubricPublic,
    RubricSummary,
)
from judge.transcript import Transcript
from judge.transcript_files import parse_record
from judge.verdict import Summary, Verdict

_bearer = HTTPBearer(auto_error=False)


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.judge
    return state


State = Annotated[ServerState, Depends(get_state)]


async def require_api_key(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Accept any configured key (constant-time comparison); no keys configured: no auth."""
    keys = state.settings.api_keys
    if not keys:
        return
    given = credentials.credentials.encode() if credentials else b""
    matches = [hmac.compare_digest(given, key.get_secret_value().encode()) for key in keys]
    if not any(matches):
        raise AuthenticationError("missing or invalid API key: send 'Authorization: Bearer <key>'")


router = APIRouter()
protected = APIRouter(dependencies=[Depends(require_api_key)])


def _transcripts(records: list[dict[str, object]], max_chars: int) -> list[Transcript]:
    transcripts = []
    for index, record in enumerate(records):
        try:
            transcript = parse_record(record)
        except TranscriptError as exc:
            raise TranscriptError(f"transcripts[{index}]: {exc}", field=exc.field) from None
        size = sum(len(message.text) for message in transcript.messages)
        if size > max_chars:
            raise TooLargeError(
                f"transcripts[{index}] has {size} characters; this server accepts at most "
                f"{max_chars} per transcript"
            )
        transcripts.append(transcript)
    return transcripts


def _rubrics(state: ServerState, ids: list[str]) -> list[Rubric]:
    return [state.library.get(rubric_id) for rubric_id in dict.fromkeys(ids)]


@protected.post("/v1/grade", tags=["grading"])
async def grade(body: GradeCreate, state: State) -> GradePublic:
    """Grade a small batch and wait for the verdicts: one per (transcript, rubric) in input order,
    then one per (group, paired or group rubric)."""
    pairs = len(body.transcripts) * len(dict.fromkeys(body.rubrics))
    if pairs > state.settings.max_sync_pairs:
        raise TooLargeError(
            f"{pairs} (transcript, rubric) pairs; POST /v1/grade takes at most "
            f"{state.settings.max_sync_pairs}: submit larger batches to POST /v1/jobs"
        )
    rubrics = _rubrics(state, body.rubrics)
    grader = state.pool.grader(body.judge, body.cache)
    transcripts = _transcripts(body.transcripts, state.settings.max_transcript_chars)
    verdicts: dict[int, Verdict] = {}
    summary = Summary()
    async for number, verdict in grader.grade_pairs(units(transcripts, rubrics)):
        verdicts[number] = verdict
        summary.add(verdict)
    return GradePublic(verdicts=[verdicts[n] for n in sorted(verdicts)], summary=summary)


@protected.post("/v1/jobs", status_code=202, tags=["jobs"])
async def create_job(
    body: GradeCreate,
    state: State,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobPublic:
    """Queue a batch of any size; poll it, stream its verdicts, or cancel it."""
    pairs = len(body.transcripts) * len(dict.fromkeys(body.rubrics))
    if pairs > state.settings.max_job_pairs:
        raise TooLargeError(
            f"{pairs} (transcript, rubric) pairs; a job takes at most "
            f"{state.settings.max_job_pairs}: split the batch into several jobs"
        )
    body = body.model_copy(update={"rubrics": list(dict.fromkeys(body.rubrics))})
    rubrics = _rubrics(state, body.rubrics)
    state.pool.names(body.judge)
    transcripts = _transcripts(body.transcripts, state.settings.max_transcript_chars)
    request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    job, created = await asyncio.to_thread(
        state.store.create,
        body,
        transcripts,
        rubrics,
        request_hash=request_hash,
        idempotency_key=idempotency_key,
    )
    if job.state not in TERMINAL:
        await state.dispatch.submitted(job.id)
    response.headers["location"] = f"/v1/jobs/{job.id}"
    if not created:
        response.headers["idempotent-replayed"] = "true"
    return job.public()


@protected.get("/v1/jobs/{job_id}", tags=["jobs"])
async def get_job(job_id: str, state: State) -> JobPublic:
    """State, counts by status and error kind, calls made and cost so far."""
    return (await asyncio.to_thread(state.store.get, job_id)).public()


@protected.delete("/v1/jobs/{job_id}", tags=["jobs"])
async def cancel_job(job_id: str, state: State) -> JobPublic:
    """Cancel a job; verdicts already stored stay available."""
    return (await asyncio.to_thread(state.store.cancel, job_id)).public()


@protected.get(
    "/v1/jobs/{job_id}/verdicts",
    tags=["jobs"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def job_verdicts(
    job_id: str,
    state: State,
    cursor: Annotated[int, Query(ge=0, description="Verdicts already received.")] = 0,
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
        progress = state.dispatch.progress()
        lines = await asyncio.to_thread(state.store.verdict_lines, job_id, cursor, 500)
        if lines:
            cursor += len(lines)
            yield "".join(line + "\n" for line in lines)
            continue
        job = await asyncio.to_thread(state.store.get, job_id)
        if not follow or job.state in TERMINAL:
            return
        with contextlib.suppress(TimeoutError):  # other processes' progress shows on the poll
            await asyncio.wait_for(progress.wait(), state.dispatch.poll_seconds)


@protected.post("/v1/reports", tags=["reports"])
async def create_report(body: ReportCreate, state: State) -> ReportPublic:
    """Flag rates with 95% intervals (Wilson, or a bootstrap over prompts when prompts have
    several samples), counts of every status, and an optional paired model comparison."""
    if (body.job_id is None) == (body.verdicts is None):
        raise UsageError("give either 'job_id' or 'verdicts'")
    verdicts = body.verdicts
    if body.job_id is not None:
        job = await asyncio.to_thread(state.store.get, body.job_id)
        lines = await asyncio.to_thread(state.store.verdict_lines, job.id, 0, job.total)
        verdicts = [Verdict.model_validate_json(line) for line in lines]
    assert verdicts is not None
    rows = rates(verdicts, body.by)
    comparisons = compare(verdicts, *body.compare) if body.compare else []
    return ReportPublic(rates=rows, comparisons=comparisons)


@protected.get("/v1/rubrics", tags=["discovery"])
async def list_rubrics(state: State) -> list[RubricSummary]:
    """Every rubric this server grades with."""
    return [_rubric_summary(rubric) for rubric in state.library]


@protected.get("/v1/rubrics/{rubric_id}", tags=["discovery"])
async def get_rubric(rubric_id: str, state: State) -> RubricPublic:
    """One rubric: version, hash, labels and scales, decision rule, output schema, shape."""
    try:
        rubric = state.library.get(rubric_id)
    except UsageError as exc:
        raise NotFoundError(str(exc)) from None
    schema = rubric.response_schema if rubric.structured_criteria else None
    return RubricPublic(
        **_rubric_summary(rubric).model_dump(),
        definition=rubric.model_dump(mode="json"),
        output_schema=schema,
    )


def _rubric_summary(rubric: Rubric) -> RubricSummary:
    return RubricSummary(
        id=rubric.id,
        version=rubric.version,
        hash=rubric.content_hash,
        category=rubric.category,
        description=rubric.description.strip(),
        requires=[r.value for r in rubric.requires],
        criteria=[c.name for c in rubric.criteria],
    )


@protected.get("/v1/judges", tags=["discovery"])
async def list_judges(state: State) -> JudgesPublic:
    """The judges a request may choose. Never keys, key variables or addresses."""
    settings = state.settings
    profiles = [
        JudgePublic(
            name=name,
            model=profile.model,
            temperature=profile.temperature,
            max_tokens=profile.max_tokens,
            rpm=profile.rpm,
            default=name == settings.default_profile,
        )
        for name, profile in settings.profiles.items()
    ]
    return JudgesPublic(
        profiles=profiles, allowed_models=settings.allowed_models, offline=OFFLINE_MODEL
    )


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"])
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


@protected.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(state: State) -> Response:
    """Prometheus exposition: requests, verdicts, judge calls and latency, cache, cost."""
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")


router.include_router(protected)
