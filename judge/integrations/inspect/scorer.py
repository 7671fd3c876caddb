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
the first sample and closed when the run ends (``judge.integrations.inspect.backends``), so its
cache, single-flight table, concurrency limits and connections are shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Literal

from inspect_ai.scorer import Score, Scorer, Target, mean, scorer, stderr
from inspect_ai.solver import TaskState
from pydantic import SecretStr, ValidationError

from judge.assembly import Reducer
from judge.config import Settings
from judge.errors import ErrorKind, JudgeSpecError
from judge.integrations.inspect.backends import (
    Backend,
    LibraryGrading,
    PerLoop,
    ServiceError,
    ServiceGrading,
)
from judge.integrations.inspect.messages import sample_metadata, transcript_of
from judge.judges import OFFLINE_MODEL
from judge.selection import JudgeSelection
from judge.transcript import Transcript
from judge.verdict import Status, Verdict

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
    make: Callable[[], Backend]
    if url is None:
        library = LibraryGrading(
            settings, rubric, names or [OFFLINE_MODEL], samples, Reducer(reducer)
        )
        make = library.fresh
        if value == "score" and not any(c.scale for c in library.rubric.criteria):
            raise JudgeSpecError(f"rubric '{rubric}' has no scale criterion for value='score'")
    else:
        selection = JudgeSelection(models=names or None, samples=samples, reducer=Reducer(reducer))
        secret = api_key.get_secret_value() if api_key is not None else None
        timeout = settings.timeout * (settings.max_retries + 1) + 10

        def make() -> Backend:
            return ServiceGrading(url, secret, rubric, selection, timeout)

    backends = PerLoop(make)

    async def score(state: TaskState, target: Target) -> Score:
        try:
            transcript = _transcript(state, target)
        except ValidationError as exc:
            why = f"the conversation is not a transcript: {exc.errors()[0]['msg']}"
            return Score.unscored(reason="scoring_failed", explanation=why)
        try:
            verdict = await backends.get().grade(transcript)
        except ServiceError as exc:
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
    elif verdict.status == Status.INCONSISTENT:
        why, reason = verdict.reason or "the orders disagree", "inconsistent"
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
