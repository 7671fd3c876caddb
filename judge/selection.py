"""Judge selections: which judges a request or job asks for, and the pool that turns a selection
into a shared ``Grader``.

Graders are cached per (selection, cache policy), and judges per profile or model, so every request
that uses the same judge shares its single-flight table, concurrency limits and rate limiter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from judge.assembly import Reducer
from judge.cache import CachePolicy, CallCache
from judge.config import Settings
from judge.errors import JudgeSpecError
from judge.grading import Grader
from judge.judges import OFFLINE_MODEL, Judge, judge_for
from judge.plan import JudgePlan
from judge.verdict import Verdict


class JudgeSelection(BaseModel):
    """Which judge grades: a configured profile, or models from profiles and the allow-list.

    There is deliberately no ``api_base`` or key here: a caller can never aim the server's
    credentials at a URL of its choosing.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    profile: str | None = Field(default=None, description="A configured judge profile.")
    models: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Profile names or allow-listed model strings, graded as an ensemble.",
    )
    samples: int = Field(default=1, ge=1, le=20)
    reducer: Reducer = Field(default=Reducer.MAJORITY, strict=False)


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
        """The profile or model names a selection stands for; ``JudgeSpecError`` if not allowed."""
        if selection.profile is not None and selection.models is not None:
            raise JudgeSpecError("give either 'profile' or 'models', not both")
        if selection.models is not None:
            names = list(dict.fromkeys(selection.models))
        elif selection.profile is not None:
            names = [selection.profile]
        else:
            names = [self.settings.default_profile or OFFLINE_MODEL]
        for name in names:
            self._check_allowed(name, is_profile=selection.profile is not None)
        return names

    def _check_allowed(self, name: str, *, is_profile: bool) -> None:
        allowed = name in self.settings.profiles or name == OFFLINE_MODEL
        if not is_profile:
            allowed = allowed or name in self.settings.allowed_models
        if not allowed:
            choices = [*self.settings.profiles, *self.settings.allowed_models, OFFLINE_MODEL]
            kind = "profile" if is_profile else "judge"
            raise JudgeSpecError(
                f"{kind} '{name}' is not configured on this server; choose one of: "
                f"{', '.join(choices)} (GET /v1/judges lists them)"
            )

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
        names = self.names(selection)
        key = f"{names}|{selection.samples}|{selection.reducer}|{policy}"
        if key not in self._graders:
            plan = JudgePlan(
                [self._judge(name) for name in names],
                samples=selection.samples,
                reducer=selection.reducer,
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
