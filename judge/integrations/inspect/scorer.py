"""An Inspect AI scorer that grades each sample's conversation against a rubric.

The conversation (``state.messages``: the system prompt, the input, the model's turns, tool
calls and results) becomes a transcript and is graded through the library (a ``Grader`` on the
judges ``model`` names, with the configured cache) or, given ``url``, by a running
``judge serve`` (``POST /v1/grade``).

The score's value is 1.0 when the verdict is flagged and 0.0 when not (``value="score"``: the
rubric's first scale score instead), so the ``mean`` metric is the flag rate and ``stderr`` its
standard error. ``answer`` is the label, ``explanation`` the judge's, and
``metadata["verdict"]`` the whole verdict. A verdict that is not graded (not applicable, or a
failed judge call) is recorded as ``Score.unscored`` with its reason: Inspect leaves it out of
metrics and reducers and counts it as unscored, so a failure never reads as "not flagged".

One grader (or HTTP client) serves every sample of a run: it is made on the run's event loop at
the first sample and closed when the run ends (when ``asyncio.run`` cancels the tasks left on
its loop), so its cache, single-flight table, concurrency limits and connections are shared.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import httpx
from inspect_ai.scorer import Score, Scorer, Target, mean, scorer, stderr
from inspect_ai.solver import TaskState
from pydantic import SecretStr, ValidationError

from judge.assembly import Reducer
from judge.config import Settings
from judge.errors import ErrorKind, JudgeSpecError
from judge.grading import Grader
from judge.integrations.inspect.messages import sample_metadata, transcript_of
from judge.judges import OFFLINE_MODEL, judge_for
from judge.plan import JudgePlan
from judge.rubric import Rubric
from judge.selection import JudgeSelection
from judge.transcript import Transcript
from judge.verdict import Status, Verdict
from judge.wire import GradeCreate, GradePublic

ScoreValue = Literal["flagged", "score"]


def rubric_scorer(
    rubric: str,
    *,
    model: str | Sequence[str] | None = None,
    samples: int = 1,
    reducer: Literal["majority", "any", "all"] = "majority",
    value: ScoreValue = "flagged",
    api_base: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
) -> Scorer:
    """An Inspect scorer grading each sample against ``rubric``.

    Args:
        rubric: A rubric id (shipped, or in ``JUDGE_RUBRIC_DIRS``; with ``url``, the server's).
        model: Judge(s): model strings or profiles of ``JUDGE_CONFIG``, as ``judge grade -m``
            takes them (default: the built-in offline judge); with ``url``, profiles or
            allow-listed models of the server (default: the server's default judge).
        samples: Samples per judge.
        reducer: How samples and judges combine: ``majority``, ``any`` or ``all``.
        value: ``flagged`` (1.0 or 0.0) or ``score`` (the rubric's first scale score).
        api_base: OpenAI-compatible server for model strings (as ``--api-base``).
        url: A ``judge serve`` to grade on instead of this process.
        api_key: Its bearer key (default: ``JUDGE_API_KEY``). Inspect records a scorer's
            arguments in the log: the key is recorded masked.
    """
    key = os.environ.get("JUDGE_API_KEY") if api_key is None else api_key
    return judge_rubric(
        rubric,
        model=model,
        samples=samples,
        reducer=reducer,
        value=value,
        api_base=api_base,
        url=url,
        api_key=SecretStr(key) if key else None,
    )


@scorer(metrics=[mean(), stderr()], name="judge_rubric")
def judge_rubric(
    rubric: str,
    *,
    model: str | Sequence[str] | None = None,
    samples: int = 1,
    reducer: Literal["majority", "any", "all"] = "majority",
    value: ScoreValue = "flagged",
    api_base: str | None = None,
    url: str | None = None,
    api_key: SecretStr | None = None,
) -> Scorer:
    """The registered scorer behind ``rubric_scorer`` (call that one: it masks the key)."""
    if value not in ("flagged", "score"):
        raise JudgeSpecError(f"value must be 'flagged' or 'score', not '{value}'")
    names = [model] if isinstance(model, str) else list(model or [])
    settings = Settings() if api_base is None else Settings(api_base=api_base)
    make: Callable[[], _Backend]
    if url is None:
        library = _LibrarySpec(
            settings, rubric, names or [OFFLINE_MODEL], samples, Reducer(reducer)
        )
        make = library.fresh
        if value == "score" and not any(c.scale for c in library.rubric.criteria):
            raise JudgeSpecError(f"rubric '{rubric}' has no scale criterion for value='score'")
    else:
        selection = JudgeSelection(models=names or None, samples=samples, reducer=Reducer(reducer))
        secret = api_key.get_secret_value() if api_key is not None else None
        timeout = settings.timeout * (settings.max_retries + 1) + 10

        def make() -> _Backend:
            return _Service(url, secret, rubric, selection, timeout)

    backends = _PerLoop(make)

    async def score(state: TaskState, target: Target) -> Score:
        try:
            transcript = _transcript(state, target)
        except ValidationError as exc:
            why = f"the conversation is not a transcript: {exc.errors()[0]['msg']}"
            return Score.unscored(reason="scoring_failed", explanation=why)
        try:
            verdict = await backends.get().grade(transcript)
        except _ServiceError as exc:
            return Score.unscored(reason="scoring_failed", explanation=str(exc))
        return score_of(verdict, value)

    return score


def score_of(verdict: Verdict, value: ScoreValue = "flagged") -> Score:
    """An Inspect score for a verdict: graded ones scored, the rest unscored with the reason."""
    metadata = {"verdict": verdict.model_dump(mode="json", exclude={"metadata"})}
    if verdict.status == Status.GRADED:
        number = float(bool(verdict.flagged)) if value == "flagged" else verdict.score
        if number is not None:
            answer = verdict.label if verdict.label is not None else _number(verdict.score)
            return Score(
                value=number, answer=answer, explanation=verdict.explanation, metadata=metadata
            )
        why, reason = "the verdict has no scale score", "scoring_failed"
    elif verdict.status == Status.NOT_APPLICABLE:
        why, reason = verdict.reason or "not applicable", "not_applicable"
    else:
        error = verdict.error
        why = f"{error.kind}: {error.message}" if error else "error"
        failed_here = error is not None and error.kind in (ErrorKind.NO_JUDGE, ErrorKind.BUDGET)
        reason = "scoring_failed" if failed_here else "grader_failed"
    return Score.unscored(reason=reason, explanation=why, metadata=metadata)


def _number(score: float | None) -> str | None:
    return None if score is None else f"{score:g}"


def _transcript(state: TaskState, target: Target) -> Transcript:
    ours = {
        "model": str(state.model),
        "sample_id": state.sample_id,
        "epoch": state.epoch,
        "prompt_id": str(state.sample_id),
        "target": target.text if len(target) == 1 else list(target),  # as the log has it
    }
    return transcript_of(
        state.messages,
        id=f"{state.sample_id}/{state.epoch}",
        metadata=sample_metadata(state.metadata, ours),
    )


class _Backend(Protocol):
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


class _LibrarySpec:
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

    def fresh(self) -> _Backend:
        grader = Grader(
            self.plan(),
            self.settings.open_cache(),
            concurrency=self.settings.concurrency,
            per_model_concurrency=self.settings.per_model_concurrency,
        )
        return _Library(grader, self.rubric)


class _ServiceError(Exception):
    """``judge serve`` could not be reached or refused the request."""


class _Service:
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
            raise _ServiceError(f"judge serve unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            detail = response.text[:500]
            raise _ServiceError(f"judge serve answered {response.status_code}: {detail}")
        try:
            return GradePublic.model_validate_json(response.content).verdicts[0]
        except (ValidationError, IndexError) as exc:
            raise _ServiceError(f"judge serve sent an unexpected reply: {exc}") from exc

    async def aclose(self) -> None:
        await self.client.aclose()


class _PerLoop:
    """One backend per event loop, closed when the loop's run ends.

    ``asyncio.run`` (and anyio's runner, which Inspect's ``eval`` uses) cancels the tasks still
    pending when its main coroutine returns and waits for them: the closer task waits for that
    moment and closes the backend on the loop that opened it.
    """

    def __init__(self, make: Callable[[], _Backend]):
        self._make = make
        self._backends: dict[asyncio.AbstractEventLoop, _Backend] = {}
        self._closers: set[asyncio.Task[None]] = set()

    def get(self) -> _Backend:
        loop = asyncio.get_running_loop()
        backend = self._backends.get(loop)
        if backend is None:
            backend = self._backends[loop] = self._make()
            closer = loop.create_task(self._close_at_end(loop, backend))
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)
        return backend

    async def _close_at_end(self, loop: asyncio.AbstractEventLoop, backend: _Backend) -> None:
        try:
            await loop.create_future()  # never set: returns when the run cancels it
        finally:
            del self._backends[loop]
            await backend.aclose()
