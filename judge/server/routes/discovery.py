"""Discovery: the rubrics this server grades with and the judges a request may choose."""

from __future__ import annotations

from fastapi import APIRouter

from judge.errors import NotFoundError, UsageError
from judge.judges import OFFLINE_MODEL
from judge.rubric import Rubric
from judge.server.dependencies import State
from judge.server.json_route import StrictJSONRoute
from judge.server.openapi import errors
from judge.wire import JudgePublic, JudgesPublic, RubricPublic, RubricSummary

router = APIRouter(tags=["discovery"], route_class=StrictJSONRoute)


@router.get("/v1/rubrics")
async def list_rubrics(state: State) -> list[RubricSummary]:
    """Every rubric this server grades with."""
    return [_rubric_summary(rubric) for rubric in state.library]


@router.get("/v1/rubrics/{rubric_id}", responses=errors(404))
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


@router.get("/v1/judges")
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
        profiles=profiles,
        cascades=settings.cascades,
        allowed_models=settings.allowed_models,
        offline=OFFLINE_MODEL,
    )
