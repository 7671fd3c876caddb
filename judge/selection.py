"""Judge selections: which judges a request or job asks for, and the pool that turns a selection
into a shared ``Grader``.

Graders are cached per (selection, cache policy), and judges per profile or model, so every request
that uses the same judge shares its single-flight table, concurrency limits and rate limiter.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.assembly import Reducer
from judge.budget import Budget, check_priced
from judge.cache import CachePolicy, CallCache
from judge.config import Settings
from judge.errors import JudgeSpecError
from judge.grading import Grader
from judge.judges import OFFLINE_MODEL, Judge, judge_for
from judge.plan import JudgePlan, Order
from judge.verdict import Integer, Verdict


def alternatives(data: Any, names: tuple[str, ...], *, required: bool) -> Any:
    """Check, before validation, that at most one of these fields is given (exactly one when
    ``required``), and none as null: the API documents them as alternatives, and a request
    that names both is ambiguous however the server would read it."""
    if not isinstance(data, dict):
        return data
    given = [name for name in names if name in data]
    nulls = [name for name in given if data[name] is None]
    if nulls:
        raise ValueError(f"'{nulls[0]}' may not be null; leave it out instead")
    quoted = " or ".join(f"'{name}'" for name in names)
    if len(given) > 1:
        raise ValueError(f"give only one of {quoted}")
    if required and not given:
        raise ValueError(f"give {quoted}")
    return data


def alternatives_schema(
    names: tuple[str, ...], *, required: bool
) -> Callable[[dict[str, Any]], None]:
    """A model's ``json_schema_extra`` that documents ``alternatives``: the fields are never
    null, and at most one (exactly one when ``required``) is given."""

    def edit(schema: dict[str, Any]) -> None:
        for name in names:
            field = schema["properties"][name]
            options = [o for o in field.pop("anyOf", []) if o != {"type": "null"}]
            field.update(options[0] if len(options) == 1 else {"anyOf": options} if options else {})
            field.pop("default", None)
        if required:
            schema["oneOf"] = [{"required": [name]} for name in names]
        else:  # no two of them together
            schema["not"] = {"anyOf": [{"required": list(pair)} for pair in combinations(names, 2)]}

    return edit


class JudgeSelection(BaseModel):
    """Which judge grades: a configured profile or cascade, models from profiles and the
    allow-list (an ensemble), or a cascade of them (neither: the server's default profile, else
    the offline judge).

    There is deliberately no ``api_base`` or key here: a caller can never aim the server's
    credentials at a URL of its choosing.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra=alternatives_schema(("profile", "models", "cascade"), required=False),
    )

    profile: str | None = Field(
        default=None,
        min_length=1,
        exclude_if=lambda value: value is None,
        description="A configured judge profile (or named cascade).",
    )
    models: Annotated[list[str], Field(min_length=1)] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Profile names or allow-listed model strings, graded as an ensemble.",
    )
    cascade: Annotated[list[str], Field(min_length=1)] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Profile names or allow-listed model strings, cheapest first: each decides "
        "what it is confident about (the rubric's cascade thresholds), the next the rest.",
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        exclude_if=lambda value: not value,
        description="Profile names or allow-listed models to ask, in order, when a judge "
        "declines to grade a call (besides the fallbacks its profile names).",
    )
    samples: Integer = Field(default=1, ge=1, le=20)
    reducer: Reducer = Field(default=Reducer.MAJORITY, strict=False)
    order: Order = Field(
        default=Order.RANDOM,
        strict=False,
        description="Paired and group rubrics: the transcripts in a seeded random order (the "
        "verdict records it), in both orders (an 'inconsistent' verdict when they disagree), "
        "or in the fixed canonical order.",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_way(cls, data: Any) -> Any:
        return alternatives(data, ("profile", "models", "cascade"), required=False)


class GraderPool:
    """Resolves judge selections against the server's profiles and allow-list."""

    def __init__(
        self,
        settings: Settings,
        cache: CallCache,
        on_verdict: Callable[[Verdict], Any] | None = None,
    ):
        self.settings = settings
        self.cache = cache
        self.on_verdict = on_verdict
        self._judges: dict[str, Judge] = {}
        self._graders: dict[str, Grader] = {}

    def names(self, selection: JudgeSelection) -> list[str]:
        """The profile or model names a selection stands for (a cascade's stages in order);
        ``JudgeSpecError`` if not allowed."""
        return self._resolve(selection)[0]

    def _resolve(self, selection: JudgeSelection) -> tuple[list[str], bool]:
        """The names, and whether they are the stages of a cascade (a configured cascade's
        stages are the operator's choice, so they are not checked against the allow-list)."""
        for name in selection.fallbacks:
            self._check_allowed(name, is_profile=False)
        if selection.models is not None or selection.cascade is not None:
            names = list(dict.fromkeys(selection.models or selection.cascade or []))
            for name in names:
                self._check_allowed(name, is_profile=False)
            return names, selection.cascade is not None
        name = selection.profile or self.settings.default_profile or OFFLINE_MODEL
        if name in self.settings.cascades:
            return list(dict.fromkeys(self.settings.cascades[name])), True
        self._check_allowed(name, is_profile=selection.profile is not None)
        return [name], False

    def _check_allowed(self, name: str, *, is_profile: bool) -> None:
        allowed = name in self.settings.profiles or name == OFFLINE_MODEL
        if not is_profile:
            allowed = allowed or name in self.settings.allowed_models
        if not allowed:
            choices = [
                *self.settings.profiles,
                *self.settings.cascades,
                *self.settings.allowed_models,
                OFFLINE_MODEL,
            ]
            kind = "profile" if is_profile else "judge"
            raise JudgeSpecError(
                f"{kind} '{name}' is not configured on this server; choose one of: "
                f"{', '.join(choices)} (GET /v1/judges lists them)"
            )

    def budget(
        self, selection: JudgeSelection, requested_usd: float | None, spent_usd: float = 0.0
    ) -> Budget | None:
        """The spending limit of a job or request: what it asks for, capped by the
        ``max_cost_usd_per_job`` of the profiles it uses (None: no limit)."""
        caps = [
            cap
            for name in self.names(selection)
            if (cap := self.settings.judge_profile(name).max_cost_usd_per_job) is not None
        ]
        limits = [*caps, *([requested_usd] if requested_usd is not None else [])]
        if not limits:
            return None
        check_priced(self.grader(selection).plan)
        return Budget(min(limits), spent_usd=spent_usd)

    async def aclose(self) -> None:
        """Close every judge the pool built (the cache belongs to whoever opened it)."""
        judges, self._judges, self._graders = list(self._judges.values()), {}, {}
        for judge in judges:
            await judge.aclose()

    def _judge(self, name: str) -> Judge:
        if name not in self._judges:
            self._judges[name] = judge_for(self.settings.judge_profile(name))
        return self._judges[name]

    def grader(self, selection: JudgeSelection, policy: CachePolicy = CachePolicy.USE) -> Grader:
        """The shared grader for a selection (validated first)."""
        names, cascade = self._resolve(selection)
        key = f"{names}|{cascade}|{selection.model_dump_json()}|{policy}"
        if key not in self._graders:
            judges = [self._judge(name) for name in names]
            fallbacks = {
                judge.name: [
                    self._judge(f) for f in self.settings.fallbacks(name, selection.fallbacks)
                ]
                for name, judge in zip(names, judges, strict=True)
            }
            if cascade:
                plan = JudgePlan.cascade(judges, selection.samples, fallbacks, selection.order)
            else:
                plan = JudgePlan(
                    judges,
                    samples=selection.samples,
                    reducer=selection.reducer,
                    fallbacks=fallbacks,
                    order=selection.order,
                )
            self._graders[key] = Grader(
                plan,
                self.cache,
                concurrency=self.settings.concurrency,
                per_model_concurrency=self.settings.per_model_concurrency,
                policy=policy,
                on_verdict=self.on_verdict,
            )
        return self._graders[key]
