"""Reading a judge's structured reply: find the JSON object, validate it against the rubric.

Judges wrap JSON in code fences or prose more often than providers admit. The extractor takes the
whole reply if it parses, else the last fenced block that does, else the last balanced ``{...}``
that does and is not nested in another (the last, because a judge that quotes the transcript may
quote JSON from it first). The judge is not trusted: JSON with a lone surrogate (which no store
or output could write) does not parse, nesting past orjson's depth limit does not parse, and the
search for a balanced object is bounded, as its worst case is quadratic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from judge.rubric import Rubric
from judge.verdict import Evidence

_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL | re.IGNORECASE)


class ReplyInvalid(ValueError):
    """A reply that does not hold a valid object; the message is fit to send back to the judge."""

    def __init__(self, message: str, *, found_json: bool):
        self.found_json = found_json
        super().__init__(message)


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object a reply carries, or None when there is none."""
    candidates = [text.strip()]
    candidates += reversed([match.group(1).strip() for match in _FENCE.finditer(text)])
    for candidate in candidates:
        value = _loads_object(candidate)
        if value is not None:
            return value
    return _last_balanced_object(text)


MAX_SEARCHED_CHARS = 100_000
"""Of a reply that is not itself an object, how much (its end) is searched for a balanced one: a
verdict object is a few kilobytes."""
MAX_ATTEMPTS = 1_000
"""Openings ``{`` tried at most (each failed try costs up to the searched length); a reply with
more holds no object that can be trusted to be the last."""


def _last_balanced_object(text: str) -> dict[str, Any] | None:
    """The last ``{...}`` that parses and stands in no other that does: scanning forward, an
    object that parses is skipped whole, so an object nested in it is never taken for it."""
    text = text[-MAX_SEARCHED_CHARS:]
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    start = text.find("{")
    for _ in range(MAX_ATTEMPTS):
        if start == -1:
            return found
        try:
            value, end = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            end = start + 1
        else:
            if _writable(value):
                found = value
            else:
                end = start + 1
        start = text.find("{", end)
    return None  # tries left over: what was found may not be the last object, and no guess


def _writable(value: Any) -> bool:
    """Whether JSON can hold it again (the standard decoder lets a lone surrogate through)."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _loads_object(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _extracted(rubric: Rubric, text: str) -> Any:
    if not text.strip():
        raise ReplyInvalid("the reply is empty", found_json=False)
    document = extract_json_object(text)
    if document is None:
        raise ReplyInvalid("the reply holds no JSON object", found_json=False)
    try:
        return rubric.output_model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()
        )
        raise ReplyInvalid(problems, found_json=True) from None


@dataclass(frozen=True)
class StructuredReply:
    """A validated reply: criterion values, reasoning, free-text fields, claimed evidence."""

    values: dict[str, str | float]
    reasoning: str
    details: dict[str, str]
    evidence: list[Evidence]


def parse_structured(rubric: Rubric, text: str) -> StructuredReply:
    """The validated reply, or ``ReplyInvalid`` saying what is off (fit to send to the judge)."""
    try:  # most replies are exactly the object: pydantic parses and validates it in one pass
        parsed = rubric.output_model.model_validate_json(text)
    except ValidationError:
        parsed = _extracted(rubric, text)
    data = parsed.model_dump()
    return StructuredReply(
        values={c.name: data[c.name] for c in rubric.structured_criteria},
        reasoning=str(data["reasoning"]),
        details={f.name: str(data[f.name]) for f in rubric.fields},
        evidence=[Evidence(**item) for item in data.get("evidence", [])],
    )
