"""Reports: rates with intervals, paired comparisons and agreement between judges (JSON), or
the self-contained HTML report, over a job's verdicts or verdicts sent inline."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from judge.agreement import judge_agreement
from judge.reports import compare, rates
from judge.server.dependencies import State
from judge.server.json_route import StrictJSONRoute
from judge.server.openapi import errors
from judge.server.state import ServerState
from judge.transcript import Transcript
from judge.verdict import Verdict
from judge.wire import Grouping, Groupings, ReportCreate, ReportPublic

router = APIRouter(tags=["reports"], route_class=StrictJSONRoute)

Format = Annotated[
    Literal["json", "html"] | None,
    Query(description="json or html; by default html when Accept asks for text/html first."),
]
HTML_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}},
}


@router.post(
    "/v1/reports",
    response_model=ReportPublic,
    responses={**HTML_RESPONSE, **errors(404, 415, 422, 503)},
)
async def create_report(
    body: ReportCreate, state: State, request: Request, format: Format = None
) -> Any:
    """Flag rates with 95% intervals (Wilson, or a bootstrap over prompts when prompts have
    several samples), counts of every status, an optional paired model comparison, and the
    agreement between judges and samples (per group of ``by``, always with the rubric); or, with
    ``Accept: text/html`` or ``?format=html``, the HTML report with plots."""
    verdicts = body.verdicts if body.verdicts is not None else await _verdicts(state, body.job_id)
    if _wants_html(request, format):
        texts = await _transcripts(state, body.job_id, verdicts) if body.job_id else []
        return await _html(state, verdicts, body.by, body.compare, texts)
    return await asyncio.to_thread(_report, verdicts, body.by, body.compare)


@router.get(
    "/v1/jobs/{job_id}/report",
    response_model=ReportPublic,
    responses={**HTML_RESPONSE, **errors(404, 422, 503)},
)
async def job_report(
    job_id: Annotated[str, Path(max_length=64)],
    state: State,
    request: Request,
    by: Annotated[Groupings, Query()] = ["model", "rubric"],  # noqa: B006 (read only)
    compare_models: Annotated[
        list[str] | None,
        Query(alias="compare", min_length=2, max_length=2, description="base, then tuned"),
    ] = None,
    format: Format = None,
) -> Any:
    """A job's report: the HTML report (with the flagged transcripts' text) by default for a
    browser, or its rates as JSON with ``?format=json``."""
    verdicts = await _verdicts(state, job_id)
    pair = (compare_models[0], compare_models[1]) if compare_models else None
    if format == "html" or (format is None and _wants_html(request, None)):
        texts = await _transcripts(state, job_id, verdicts)
        return await _html(state, verdicts, by, pair, texts)
    return await asyncio.to_thread(_report, verdicts, by, pair)


def _report(
    verdicts: list[Verdict], by: list[Grouping], pair: tuple[str, str] | None
) -> ReportPublic:
    """The JSON report (bootstraps are CPU work: the routes run this in a thread)."""
    return ReportPublic(
        rates=rates(verdicts, by),
        comparisons=compare(verdicts, *pair) if pair else [],
        agreement=judge_agreement(verdicts, by),
    )


def _wants_html(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "html"
    first = request.headers.get("accept", "").split(",")[0].split(";")[0].strip()
    return first == "text/html"


async def _verdicts(state: ServerState, job_id: str | None) -> list[Verdict]:
    assert job_id is not None, "ReportCreate gives a job id or verdicts"
    job = await asyncio.to_thread(state.store.get, job_id)
    lines = await asyncio.to_thread(state.store.verdict_lines, job.id, 0, job.total)
    return [Verdict.model_validate_json(line) for line in lines]


async def _transcripts(
    state: ServerState, job_id: str, verdicts: list[Verdict]
) -> list[Transcript]:
    """The job's transcripts that a flagged verdict names (all the drill-down can show), read
    from the store in chunks so a large job is never held whole."""
    wanted = {key for v in verdicts if v.flagged for key in (v.transcript_id, *v.members)}
    kept: list[Transcript] = []
    start = 0
    while wanted:
        chunk = await asyncio.to_thread(state.store.transcripts, job_id, start, 1000)
        if not chunk:
            break
        kept += [t for _, t in chunk if t.key in wanted]
        start = chunk[-1][0] + 1
    return kept


async def _html(
    state: ServerState,
    verdicts: list[Verdict],
    by: list[Grouping],
    pair: tuple[str, str] | None,
    transcripts: list[Transcript],
) -> HTMLResponse:
    page = await asyncio.to_thread(
        _render, verdicts, by=by, compare=pair, rubrics=state.library, transcripts=transcripts
    )
    return HTMLResponse(page)


def _render(verdicts: list[Verdict], **options: Any) -> str:
    """The page, in a worker thread. Its view is imported on the first HTML report (and there,
    off the event loop), not at start-up: the plots (matplotlib) and templates add about 33 MiB
    to a server that may never render one."""
    from judge.views.html import render_html

    return render_html(verdicts, **options)
