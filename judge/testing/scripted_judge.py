"""A scripted judge: a real ``Judge`` whose outputs are given in advance and whose calls are
recorded, for tests of the engine and of anything built on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from judge.errors import ErrorKind
from judge.judges.base import JudgeRequest
from judge.verdict import JudgeResult, VerdictError


@dataclass(frozen=True)
class Scored:
    """Criterion values with the judge's own probability of them (a calibrated classifier)."""

    values: dict[str, str | float]
    probability: float


Output = dict[str, str | float] | Scored | ErrorKind | str
"""Criterion values (with a probability: ``Scored``); an ``ErrorKind`` to fail the call; or a
string: an unscored reason."""


class ScriptedJudge:
    """Answers each call with ``script(request)``; ``calls`` lists the requests in order and
    ``peak_in_flight`` is the most calls it was ever answering at once; ``closed`` counts
    ``aclose`` calls."""

    def __init__(
        self,
        script: Callable[[JudgeRequest], Output],
        *,
        name: str = "scripted",
        delay: float = 0.0,
    ):
        self._script = script
        self._name = name
        self.delay = delay
        self.calls: list[JudgeRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.closed = 0

    @property
    def name(self) -> str:
        return self._name

    def identity(self, request: JudgeRequest) -> dict[str, Any]:
        return {"model": self._name}

    async def aclose(self) -> None:
        self.closed += 1

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        self.calls.append(request)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        output = self._script(request)
        base: dict[str, Any] = {
            "model": self._name,
            "sample": request.sample,
            "criteria": request.criterion_names,
        }
        if isinstance(output, ErrorKind):
            error = VerdictError(kind=output, message=f"scripted {output.value} failure")
            return JudgeResult(**base, error=error)
        if isinstance(output, str):
            return JudgeResult(**base, scoring="structured", unscored=output)
        if isinstance(output, Scored):
            return JudgeResult(
                **base,
                scoring="structured",
                values=output.values,
                probability=output.probability,
                reasoning="scripted",
            )
        return JudgeResult(**base, scoring="structured", values=output, reasoning="scripted")


def constant(**values: str | float) -> Callable[[JudgeRequest], Output]:
    """A script that answers every call with the given values for the criteria it asks about."""

    def script(request: JudgeRequest) -> Output:
        return {name: values[name] for name in request.criterion_names}

    return script
