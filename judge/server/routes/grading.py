"""Synchronous grading: a small batch in, its verdicts out."""

from __future__ import annotations

from fastapi import APIRouter

from judge.errors import TooLargeError
from judge.grouping import units
from judge.server.dependencies import State
from judge.server.intake import parse_transcripts, rubrics_for
from judge.server.json_route import StrictJSONRoute
from judge.server.openapi import errors
from judge.verdict import Summary, Verdict
from judge.wire import GradeCreate, GradePublic

router = APIRouter(tags=["grading"], route_class=StrictJSONRoute)


@router.post("/v1/grade", responses=errors(413, 415, 422))
async def grade(body: GradeCreate, state: State) -> GradePublic:
    """Grade a small batch and wait for the verdicts: one per (transcript, rubric) in input order,
    then one per (group, paired or group rubric)."""
    pairs = len(body.transcripts) * len(dict.fromkeys(body.rubrics))
    if pairs > state.settings.max_sync_pairs:
        raise TooLargeError(
            f"{pairs} (transcript, rubric) pairs; POST /v1/grade takes at most "
            f"{state.settings.max_sync_pairs}: submit larger batches to POST /v1/jobs"
        )
    rubrics = rubrics_for(state, body.rubrics)
    grader = state.pool.grader(body.judge, body.cache)
    budget = state.pool.budget(body.judge, body.max_cost_usd)
    transcripts = parse_transcripts(body.transcripts, state.settings.max_transcript_chars)
    verdicts: dict[int, Verdict] = {}
    summary = Summary()
    async for number, verdict in grader.grade_pairs(units(transcripts, rubrics), budget=budget):
        verdicts[number] = verdict
        summary.add(verdict)
    return GradePublic(verdicts=[verdicts[n] for n in sorted(verdicts)], summary=summary)
