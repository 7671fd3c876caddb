"""Rendering judge prompts from a rubric and a transcript.

Transcript text is data: every piece of it (message text, the question and answer, the system
prompt, the reference answer, a group's variant names) is neutralized (``judge.neutralize``)
before it enters a prompt, so a judged model cannot close the transcript block and write
instructions to the judge.

The shipped rubrics put everything static (instructions, criteria, output format, worked
examples) before anything from the transcript, so every call of a rubric starts with the same
bytes: providers that cache prompt prefixes (OpenAI by itself, Anthropic where asked with
``cache_control``) bill that part at the cached rate. ``static_lengths`` says where it ends.
"""

from __future__ import annotations

import json
from string import Template
from typing import Any

from judge.neutralize import attribute, neutralize
from judge.rubric import Criterion, Rubric
from judge.transcript import Message, Subject, Transcript, TranscriptGroup
from judge.transcript_files import parse_record

PROMPT_VERSION = "3"
"""Bumped whenever rendering or parsing changes what a judge sees or how replies are read; it is
part of every cache key."""

ChatMessages = list[dict[str, str]]


def render_transcript(subject: Subject) -> str:
    """The whole conversation, one tagged block per message, indices as evidence refers to them;
    a group renders each member as a numbered transcript."""
    if isinstance(subject, TranscriptGroup):
        return "\n".join(
            _render_one(member, f' index="{i}" variant="{attribute(variant)}"')
            for i, (member, variant) in enumerate(
                zip(subject.members, subject.variants, strict=True)
            )
        )
    return _render_one(subject, "")


def _render_one(transcript: Transcript, attributes: str) -> str:
    blocks = [_render_message(index, message) for index, message in enumerate(transcript.messages)]
    return f"<transcript{attributes}>\n" + "\n".join(blocks) + "\n</transcript>"


def _render_message(index: int, message: Message) -> str:
    return (
        f'<message index="{index}" role="{message.role}">\n{neutralize(message.text)}\n</message>'
    )


def _criteria_text(criteria: tuple[Criterion, ...]) -> str:
    lines = []
    for criterion in criteria:
        lines.append(f"{criterion.name}: {criterion.description.strip()}")
        if criterion.labels is not None:
            lines += [
                f"  - {label.name}: {label.description.strip()}" for label in criterion.labels
            ]
        elif criterion.scale is not None:
            lines.append(f"  an integer from {criterion.scale.min} to {criterion.scale.max}")
    return "\n".join(lines)


def _output_format(rubric: Rubric) -> str:
    fields = ['"reasoning": your reasoning (a string), written first']
    fields += [f'"{field.name}": {field.description.strip()} (a string)' for field in rubric.fields]
    if rubric.evidence:
        where = '"transcript": its index, ' if rubric.is_group else ""
        fields.append(
            f'"evidence": a list of quotes that support your decision, each {{{where}'
            '"message": the message index, "quote": words copied exactly from that message}; '
            "an empty list if there is nothing to quote"
        )
    for criterion in rubric.structured_criteria:
        if criterion.labels is not None:
            choices = ", ".join(f'"{name}"' for name in criterion.label_names)
            fields.append(f'"{criterion.name}": one of {choices}')
        elif criterion.scale is not None:
            scale = criterion.scale
            fields.append(f'"{criterion.name}": an integer from {scale.min} to {scale.max}')
    return (
        "Reply with one JSON object and nothing else, with exactly these fields in this order:\n"
        + "\n".join(f"- {field}" for field in fields)
    )


def _render_examples(rubric: Rubric) -> str:
    if not rubric.examples:
        return ""
    parts = []
    for number, example in enumerate(rubric.examples, start=1):
        parts.append(
            f"Example {number}:\n{render_transcript(example_subject(example.transcript))}\n"
            f"Correct reply: {json.dumps(example.output, ensure_ascii=False)}"
        )
    return "Worked examples:\n\n" + "\n\n".join(parts)


def _fields(rubric: Rubric, subject: Subject, criterion: Criterion | None) -> dict[str, str]:
    first = subject.members[0] if isinstance(subject, TranscriptGroup) else subject
    return {
        "transcript": render_transcript(subject),
        "question": neutralize(first.last_text("user")),
        "answer": neutralize(first.last_text("assistant")),
        "system_prompt": neutralize(first.system_prompt or ""),
        "reference": neutralize(str(first.metadata.get("gold", "(none given)"))),
        **_static_fields(rubric, criterion),
    }


def example_subject(record: dict[str, Any] | list[dict[str, Any]]) -> Subject:
    """A few-shot example's transcript, or its group when the example lists several."""
    if isinstance(record, list):
        return TranscriptGroup.of("example", [parse_record(item) for item in record])
    return parse_record(record)


def render_structured(rubric: Rubric, transcript: Subject) -> ChatMessages:
    """The messages asking for one JSON reply covering all structured criteria."""
    assert rubric.prompt is not None, "validated rubrics with structured criteria have a prompt"
    fields = _fields(rubric, transcript, None)
    return [
        {"role": "system", "content": Template(rubric.prompt.system).substitute(fields).strip()},
        {"role": "user", "content": Template(rubric.prompt.user).substitute(fields).strip()},
    ]


def render_logprob(rubric: Rubric, criterion: Criterion, transcript: Subject) -> ChatMessages:
    """The single user message asking for one number (read from the first token's logprobs)."""
    assert criterion.prompt is not None, "validated logprob criteria have a prompt"
    fields = _fields(rubric, transcript, criterion)
    return [{"role": "user", "content": Template(criterion.prompt).substitute(fields).strip()}]


DYNAMIC_FIELDS = ("transcript", "question", "answer", "system_prompt", "reference")
"""Template fields that come from the transcript; the others are the same for every call."""

_SENTINEL = "\x00dynamic\x00"


def static_lengths(rubric: Rubric, criterion: Criterion | None = None) -> tuple[int, ...]:
    """For each message of the rubric's structured prompt (or of a logprob criterion's), how
    many leading characters are the same for every transcript: the whole message while nothing
    from the transcript has appeared yet, then up to the first transcript field, then none."""
    key = (rubric.content_hash, criterion.name if criterion else None)
    if key not in _STATIC:
        fields = {**_static_fields(rubric, criterion), **dict.fromkeys(DYNAMIC_FIELDS, _SENTINEL)}
        if criterion is None:
            assert rubric.prompt is not None
            templates = [rubric.prompt.system, rubric.prompt.user]
        else:
            assert criterion.prompt is not None
            templates = [criterion.prompt]
        lengths: list[int] = []
        dynamic_seen = False
        for template in templates:
            text = Template(template).substitute(fields).strip()
            position = text.find(_SENTINEL)
            lengths.append(0 if dynamic_seen else len(text) if position < 0 else position)
            dynamic_seen = dynamic_seen or position >= 0
        _STATIC[key] = tuple(lengths)
    return _STATIC[key]


_STATIC: dict[tuple[str, str | None], tuple[int, ...]] = {}


def _static_fields(rubric: Rubric, criterion: Criterion | None) -> dict[str, str]:
    """The fields that are the same for every transcript, rendered once per rubric."""
    key = (rubric.content_hash, criterion.name if criterion else None)
    if key not in _STATIC_FIELDS:
        criteria = rubric.structured_criteria if criterion is None else (criterion,)
        _STATIC_FIELDS[key] = {
            "criteria": _criteria_text(criteria),
            "output_format": _output_format(rubric),
            "examples": _render_examples(rubric),
        }
    return _STATIC_FIELDS[key]


_STATIC_FIELDS: dict[tuple[str, str | None], dict[str, str]] = {}


def render_reask(error: str) -> str:
    """The follow-up message after an invalid structured reply."""
    return (
        f"Your reply could not be used: {error}\n"
        "Reply again with only the JSON object, following the required fields exactly."
    )
