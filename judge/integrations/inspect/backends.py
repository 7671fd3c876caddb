"""Where a scorer's verdicts come from: a ``Grader`` in this process, or a running
``judge serve``; and one of them per event loop, closed when the loop's run ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import httpx
from pydantic import ValidationError

from judge.assembly import Reducer
from judge.config import Settings
from judge.errors import JudgeSpecError
from judge.grading import Grader
from judge.judges import judge_for
from judge.plan import JudgePlan
from judge.rubric import Rubric
from judge.selection import JudgeSelection
from judge.transcript import Transcript
from judge.verdict import Verdict
from judge.wire import GradeCreate, GradePublic


class Backend(Protocol):
    """Grades one transcript against the scorer's rubric; ``aclose`` releases what it holds."""

    async def grade(self, transcript: Transcript) -> Verdict: ...

    async def aclose(self) -> None: ...


class _Library:
    """Grades in this process: one ``Grader`` on the named judges and the configured cache."""

    def __init__(self, grader: Grader, rubric: Rubric):
        self.grader = grader
        self.rubric = rubric

    async def grade(self, transcript: Transcript) -> Verdict:
        return await self.grader.grade(transcript, self.rubric)

    async def aclose(self) -> None:
        await self.grader.aclose()


class LibraryGrading:
    """A library configuration, checked once; ``fresh`` builds its judges and grader for one
    loop (judges hold connections and locks that belong to the loop that made them)."""

    def __init__(
        self, settings: Settings, rubric_id: str, names: list[str], samples: int, reducer: Reducer
    ):
        self.settings = settings
        self.rubric = settings.rubric_library().get(rubric_id)
        if self.rubric.is_group:
            raise JudgeSpecError(
                f"rubric '{rubric_id}' grades groups of transcripts and a scorer sees one "
                "sample: grade the log with `judge grade` instead"
            )
        self.profiles = [settings.judge_profile(name) for name in dict.fromkeys(names)]
        self.samples = samples
        self.reducer = reducer
        self.plan()  # a bad sample count fails here, not at the first sample

    def plan(self) -> JudgePlan:
        judges = [judge_for(profile) for profile in self.profiles]
        return JudgePlan(judges, samples=self.samples, reducer=self.reducer)

    def fresh(self) -> Backend:
        grader = Grader(
            self.plan(),
            self.settings.open_cache(),
            concurrency=self.settings.concurrency,
            per_model_concurrency=self.settings.per_model_concurrency,
        )
        return _Library(grader, self.rubric)


class ServiceError(Exception):
    """``judge serve`` could not be reached or refused the request."""


class ServiceGrading:
    """Grades on a running ``judge serve``: one verdict per ``POST /v1/grade``."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        rubric: str,
        selection: JudgeSelection,
        timeout: float,
    ):
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout)
        self.rubric = rubric
        self.selection = selection

    async def grade(self, transcript: Transcript) -> Verdict:
        record = transcript.model_dump(mode="json", exclude_none=True)
        body = GradeCreate(transcripts=[record], rubrics=[self.rubric], judge=self.selection)
        try:
            response = await self.client.post(
                "/v1/grade",
                content=body.model_dump_json(),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ServiceError(f"judge serve unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            detail = response.text[:500]
            raise ServiceError(f"judge serve answered {response.status_code}: {detail}")
        try:
            return GradePublic.model_validate_json(response.content).verdicts[0]
        except (ValidationError, IndexError) as exc:
            raise ServiceError(f"judge serve sent an unexpected reply: {exc}") from exc

    async def aclose(self) -> None:
        await self.client.aclose()


class PerLoop:
    """One backend per event loop, closed when the loop's run ends.

    ``asyncio.run`` (and anyio's runner, which Inspect's ``eval`` uses) cancels the tasks still
    pending when its main coroutine returns and waits for them: the closer task waits for that
    moment and closes the backend on the loop that opened it.
    """

    def __init__(self, make: Callable[[], Backend]):
        self._make = make
        self._backends: dict[asyncio.AbstractEventLoop, Backend] = {}
        self._closers: set[asyncio.Task[None]] = set()

    def get(self) -> Backend:
        loop = asyncio.get_running_loop()
        backend = self._backends.get(loop)
        if backend is None:
            backend = self._backends[loop] = self._make()
            closer = loop.create_task(self._close_at_end(loop, backend))
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)
        return backend

    async def _close_at_end(self, loop: asyncio.AbstractEventLoop, backend: Backend) -> None:
        try:
            await loop.create_future()  # never set: returns when the run cancels it
        finally:
            del self._backends[loop]
            await backend.aclose()
