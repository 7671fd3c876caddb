"""Reports: rates with intervals and paired comparisons, over a job's verdicts or given ones."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from judge.errors import UsageError
from judge.reports import compare, rates
from judge.server.dependencies import State
from judge.server.json_route import StrictJSONRoute
from judge.verdict import Verdict
from judge.wire import ReportCreate, ReportPublic

router = APIRouter(tags=["reports"], route_class=StrictJSONRoute)


@router.post("/v1/reports")
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
