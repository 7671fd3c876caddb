"""Reading a judge's structured reply: find the JSON object, validate it against the rubric.

Judges wrap JSON in code fences or prose more often than providers admit. The extractor takes the
whole reply if it parses, else the last fenced block that does, else the last balanced ``{...}``
that does and is not nested in another (the last, because a judge that quotes the transcript may
quote JSON from it first).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

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


def _last_balanced_object(text: str) -> dict[str, Any] | None:
    """The last ``{...}`` that parses and stands in no other that does: scanning forward, an
    object that parses is skipped whole, so an object nested in it is never taken for it."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    start = text.find("{")
    while start != -1:
        try:
            found, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            end = start + 1
        start = text.find("{", end)
    return found


def _loads_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _extracted(rubric: Rubric, text: str) -> Any:
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
