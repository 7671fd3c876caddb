"""Whether a transcript (or group) has what a rubric needs; if not, its verdict is
``not_applicable`` with the reason, and no judge is called."""

from __future__ import annotations

from judge.rubric import Requirement, Rubric
from judge.transcript import Subject, Transcript, TranscriptGroup


def shape_problem(rubric: Rubric, subject: Subject) -> str | None:
    """Why the transcript (or group) lacks what the rubric needs, or None when it has it."""
    if rubric.is_group:
        if not isinstance(subject, TranscriptGroup):
            return (
                f"rubric '{rubric.id}' grades transcripts that share metadata.group; "
                "this one has no group"
            )
        problem = _group_problem(rubric, subject)
        if problem is not None:
            return problem
        members: tuple[Transcript, ...] = subject.members
    else:
        assert isinstance(subject, Transcript), "single rubrics grade single transcripts"
        members = (subject,)
    for transcript in members:
        for requirement in rubric.requires:
            missing = _missing(requirement, transcript)
            if missing is not None:
                return f"rubric '{rubric.id}' needs {requirement.value}: {missing}"
    return None


def _group_problem(rubric: Rubric, group: TranscriptGroup) -> str | None:
    if Requirement.PAIRED in rubric.requires:
        variants = group.variants
        if len(group.members) != 2 or variants[0] != "neutral" or variants[1] == "neutral":
            return (
                f"rubric '{rubric.id}' needs a pair: two transcripts in group '{group.id}', one "
                f"with metadata.variant 'neutral' and one with another variant (got {variants})"
            )
    elif len(group.members) < 2:
        return f"rubric '{rubric.id}' needs at least two transcripts in group '{group.id}'"
    return None


def _missing(requirement: Requirement, transcript: Transcript) -> str | None:
    if requirement == Requirement.USER_TURN and not transcript.user_turns:
        return "it has no user message"
    if requirement == Requirement.ASSISTANT_TURN and not any(
        transcript.messages[i].text.strip() for i in transcript.assistant_turns
    ):
        return "it has no assistant reply"
    if requirement == Requirement.SYSTEM_PROMPT and not (transcript.system_prompt or "").strip():
        return "it has no system prompt"
    if requirement == Requirement.MULTI_TURN and len(transcript.assistant_turns) < 2:
        return "it has fewer than two assistant turns"
    return None
