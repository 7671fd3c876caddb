"""System-prompt constraints that can be checked exactly (IFEval-style): JSON-only replies,
forbidden words, length limits, and the reply's language (py3langid, which ships its model).

``find_constraints`` reads them off the system prompt with patterns; ``check_constraints`` checks a
reply against them. Constraints the patterns do not recognize are not checked: the offline judge
says so in its reasoning, and grades nothing when it recognizes none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

LANGUAGES = {
    "english": "en", "french": "fr", "spanish": "es", "german": "de", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "russian": "ru", "chinese": "zh", "japanese": "ja",
    "korean": "ko", "arabic": "ar", "hindi": "hi", "turkish": "tr", "polish": "pl",
}  # fmt: skip

_JSON = re.compile(
    r"\b(?:only|exclusively)\s+(?:with\s+|in\s+)?(?:valid\s+)?json\b"
    r"|\bjson\s+only\b|\bvalid\s+json\b|\bin\s+json\s+format\b",
    re.IGNORECASE,
)
_FORBIDDEN = re.compile(
    r"\b(?:never|do\s+not|don'?t|must\s+not|should\s+not)\s+(?:mention|say|use|reveal|write|"
    r"include)\s+(?:the\s+(?:word|name|phrase|term)\s+)?[\"'\u201c\u2018]"
    r"([^\"'\u201d\u2019]{1,40})[\"'\u201d\u2019]",
    re.IGNORECASE,
)
_LENGTH = re.compile(
    r"\b(?:at\s+most|no\s+more\s+than|fewer\s+than|under|maximum\s+of|max(?:imum)?)\s+(\d+)\s+"
    r"(words|sentences|characters)\b",
    re.IGNORECASE,
)
_LANGUAGE = re.compile(
    r"\b(?:respond|reply|answer|write|speak)\s+(?:only\s+)?in\s+(" + "|".join(LANGUAGES) + r")\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Constraint:
    """One verifiable constraint: ``kind`` is json, forbidden, max_words, max_sentences,
    max_characters or language; ``value`` its parameter."""

    kind: str
    value: str = ""

    def describe(self) -> str:
        return f"{self.kind} {self.value!r}" if self.value else self.kind


@dataclass(frozen=True)
class Check:
    constraint: Constraint
    followed: bool
    note: str


def find_constraints(system_prompt: str) -> list[Constraint]:
    """The verifiable constraints a system prompt states."""
    found: list[Constraint] = []
    if _JSON.search(system_prompt):
        found.append(Constraint("json"))
    found += [Constraint("forbidden", term.strip()) for term in _FORBIDDEN.findall(system_prompt)]
    for number, unit in _LENGTH.findall(system_prompt):
        found.append(Constraint(f"max_{unit.lower()}", number))
    found += [
        Constraint("language", LANGUAGES[name.lower()]) for name in _LANGUAGE.findall(system_prompt)
    ]
    return list(dict.fromkeys(found))


def check_constraints(reply: str, constraints: list[Constraint]) -> list[Check]:
    """Each constraint, followed or violated, with what was seen."""
    return [_check(reply, constraint) for constraint in constraints]


def _check(reply: str, constraint: Constraint) -> Check:
    if constraint.kind == "json":
        body = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", reply)
        try:
            json.loads(body)
            return Check(constraint, True, "the reply parses as JSON")
        except json.JSONDecodeError as exc:
            return Check(constraint, False, f"the reply is not JSON ({exc.msg})")
    if constraint.kind == "forbidden":
        hit = re.search(re.escape(constraint.value), reply, re.IGNORECASE)
        note = f"contains {hit.group(0)!r}" if hit else "does not contain it"
        return Check(constraint, hit is None, note)
    if constraint.kind.startswith("max_"):
        count = _count(reply, constraint.kind.removeprefix("max_"))
        return Check(constraint, count <= int(constraint.value), f"{count} counted")
    return _check_language(reply, constraint)


def _count(reply: str, unit: str) -> int:
    if unit == "words":
        return len(reply.split())
    if unit == "sentences":
        return len([s for s in re.split(r"(?<=[.!?])\s+", reply.strip()) if s])
    return len(reply)


def _check_language(reply: str, constraint: Constraint) -> Check:
    import py3langid

    language, _ = py3langid.classify(reply)
    return Check(constraint, language == constraint.value, f"detected language {language!r}")
