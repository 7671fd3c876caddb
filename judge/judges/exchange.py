"""One judge call as an exchange of messages: what a call group of a rubric asks, and what a
reply means (a result, a re-ask, or a named failure).

Live calls (``judge.judges.llm``) and provider batches (``judge.batch``) both build requests and
read replies here, so a reply means the same whichever way it came back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judge.errors import ErrorKind, JudgeCallError
from judge.heuristics import phrase_label
from judge.judges.base import JudgeRequest
from judge.parsing import ReplyInvalid, parse_structured
from judge.prompt import (
    ChatMessages,
    render_logprob,
    render_reask,
    render_structured,
    static_lengths,
)
from judge.rubric import Criterion
from judge.scoring import logprob_expectation, matching_escape, sampled_number
from judge.transports import Completion
from judge.verdict import JudgeResult

LOGPROB_DECODING: dict[str, Any] = {
    "temperature": 0.0,
    "max_tokens": 1,
    "logprobs": True,
    "top_logprobs": 20,
}
"""How a logprob criterion is asked: one token, its top-20 alternatives, no sampling."""


@dataclass(frozen=True)
class Ask:
    """The messages and parameters of one request to the model, and how many leading
    characters of each message are the same for every transcript (``prompt.static_lengths``:
    where a provider's prompt cache may be asked to stop)."""

    messages: ChatMessages
    params: dict[str, Any]
    static: tuple[int, ...] = ()


@dataclass(frozen=True)
class Reask:
    """A structured reply that did not validate: ask again with these messages added."""

    messages: ChatMessages


def is_logprob(request: JudgeRequest) -> bool:
    return request.criteria[0].scoring == "logprob"


def first_ask(request: JudgeRequest, decoding: dict[str, Any]) -> Ask:
    """The call's first request: the rendered prompt, the decoding parameters, and for
    structured criteria the JSON schema the reply must follow."""
    rubric = request.rubric
    if is_logprob(request):
        criterion = request.criteria[0]
        messages = render_logprob(rubric, criterion, request.transcript)
        return Ask(messages, decoding, static_lengths(rubric, criterion))
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": f"{rubric.id}_verdict",
            "schema": rubric.response_schema,
            "strict": True,
        },
    }
    return Ask(
        render_structured(rubric, request.transcript),
        {**decoding, "response_format": response_format},
        static_lengths(rubric),
    )


def read(
    request: JudgeRequest, model: str, completion: Completion, *, final: bool
) -> JudgeResult | Reask:
    """What a reply means: a result (``unscored`` when a logprob criterion gets no number), a
    re-ask (a structured reply that does not validate, unless ``final``), or a
    ``JudgeCallError`` (the judge declined; an invalid reply after the re-ask)."""
    base: dict[str, Any] = {
        "model": model,
        "sample": request.sample,
        "criteria": request.criterion_names,
        "raw_output": completion.content,
    }
    if is_logprob(request):
        return _read_number(request.criteria[0], completion, base)
    return _read_structured(request, completion, base, final=final)


def _read_structured(
    request: JudgeRequest, completion: Completion, base: dict[str, Any], *, final: bool
) -> JudgeResult | Reask:
    text, refusal = completion.content, completion.refusal
    if refusal or completion.finish_reason == "content_filter":
        raise JudgeCallError(
            ErrorKind.JUDGE_REFUSED, f"the judge declined: {refusal}", raw_output=text
        )
    try:
        reply = parse_structured(request.rubric, text)
    except ReplyInvalid as exc:
        if not final:
            reask = render_reask(str(exc))
            return Reask(
                [{"role": "assistant", "content": text}, {"role": "user", "content": reask}]
            )
        if not exc.found_json and text.strip() and phrase_label(text) != "full_compliance":
            raise JudgeCallError(
                ErrorKind.JUDGE_REFUSED, f"the judge declined: {text[:200]}", raw_output=text
            ) from None
        raise JudgeCallError(
            ErrorKind.PARSE, f"invalid reply after one re-ask: {exc}", raw_output=text
        ) from None
    return JudgeResult(
        **base,
        scoring="structured",
        values=reply.values,
        reasoning=reply.reasoning,
        details=reply.details,
        evidence=reply.evidence,
    )


def _read_number(criterion: Criterion, completion: Completion, base: dict[str, Any]) -> JudgeResult:
    assert criterion.scale is not None
    text, top = completion.content, completion.top_logprobs
    if top is None:
        number = sampled_number(text, criterion.scale)
        if number is not None:
            return JudgeResult(**base, scoring="sampled", values={criterion.name: number})
        return JudgeResult(**base, scoring="sampled", unscored=_unscored(criterion, text, None))
    scored = logprob_expectation(top, criterion.scale, min_mass=criterion.min_numeric_mass)
    if scored.score is None:
        reason = _unscored(criterion, scored.top_token, scored.numeric_mass)
        return JudgeResult(
            **base, scoring="logprob", unscored=reason, numeric_mass=scored.numeric_mass
        )
    return JudgeResult(
        **base,
        scoring="logprob",
        values={criterion.name: scored.score},
        numeric_mass=scored.numeric_mass,
    )


def _unscored(criterion: Criterion, head: str, mass: float | None) -> str:
    escape = matching_escape(criterion, head)
    if escape is not None:
        return f"{criterion.name}: the judge answered {escape}"
    if mass is None:
        return f"{criterion.name}: no logprobs and the reply {head[:80]!r} is not a number"
    return (
        f"{criterion.name}: numeric probability mass {mass:.2f} is below "
        f"{criterion.min_numeric_mass} (top token {head!r})"
    )
