"""Whether a transcript (or group) has what a rubric needs: if not, the verdict is
``not_applicable`` with the reason, and no judge is called.

The rule: each requirement is checked on every member, a missing one is named in the reason, and
a transcript that has everything is never turned away.
"""

from __future__ import annotations

import pytest

from judge.rubric import RubricLibrary
from judge.shape import shape_problem
from judge.transcript import Message, Transcript, TranscriptGroup


def chat(*turns: tuple[str, str | None], **metadata: str) -> Transcript:
    messages = tuple(Message.model_validate({"role": r, "content": t}) for r, t in turns)
    return Transcript(messages=messages, metadata=metadata)


FULL = chat(
    ("system", "Be brief."),
    ("user", "Hi?"),
    ("assistant", "Hello."),
    ("user", "Sure?"),
    ("assistant", "Yes."),
)


@pytest.mark.parametrize(
    ("rubric_id", "transcript", "reason"),
    [
        ("refusal", FULL, None),
        ("refusal", chat(("assistant", "Hello.")), "needs user_turn: it has no user message"),
        ("refusal", chat(("user", "Hi?")), "needs assistant_turn: it has no assistant reply"),
        (
            "refusal",
            chat(("user", "Hi?"), ("assistant", "  \n"), ("assistant", None)),
            "needs assistant_turn: it has no assistant reply",
        ),
        ("refusal", chat(("user", "Hi?"), ("assistant", " "), ("assistant", "ok")), None),
        (
            "steer_refusal",
            chat(("user", "Hi?"), ("assistant", "Hello.")),
            "needs system_prompt: it has no system prompt",
        ),
        (
            "steer_refusal",
            chat(("system", " \n"), ("user", "Hi?"), ("assistant", "Hello.")),
            "needs system_prompt: it has no system prompt",
        ),
        (
            "syc_are_you_sure",
            chat(("user", "Hi?"), ("assistant", "Hello.")),
            "needs multi_turn: it has fewer than two assistant turns",
        ),
        ("syc_are_you_sure", FULL, None),
    ],
)
def test_each_requirement_of_a_single_rubric(
    library: RubricLibrary, rubric_id: str, transcript: Transcript, reason: str | None
) -> None:
    problem = shape_problem(library.get(rubric_id), transcript)
    if reason is None:
        assert problem is None
    else:
        assert problem == f"rubric '{rubric_id}' {reason}"


def member(variant: str, reply: str = "Paris.") -> Transcript:
    return chat(("user", "Capital of France?"), ("assistant", reply), variant=variant)


def test_a_paired_rubric_needs_a_group(library: RubricLibrary) -> None:
    problem = shape_problem(library.get("syc_answer"), member("neutral"))
    assert problem == (
        "rubric 'syc_answer' grades transcripts that share metadata.group; this one has no group"
    )


@pytest.mark.parametrize(
    ("variants", "fits"),
    [
        (["neutral", "suggested"], True),
        (["neutral", "user_stake"], True),
        (["suggested", "user_stake"], False),
        (["neutral", "neutral"], False),
        (["neutral"], False),
        (["neutral", "suggested", "user_stake"], False),
    ],
)
def test_a_pair_is_one_neutral_transcript_and_one_other(
    library: RubricLibrary, variants: list[str], fits: bool
) -> None:
    group = TranscriptGroup.of("g1", [member(v, f"reply {v} {i}") for i, v in enumerate(variants)])
    problem = shape_problem(library.get("syc_answer"), group)
    if fits:
        assert problem is None
    else:
        assert problem == (
            "rubric 'syc_answer' needs a pair: two transcripts in group 'g1', one with "
            f"metadata.variant 'neutral' and one with another variant (got {group.variants})"
        )


def test_every_member_of_a_pair_is_checked(library: RubricLibrary) -> None:
    group = TranscriptGroup.of("g1", [member("neutral"), member("suggested", " ")])
    assert shape_problem(library.get("syc_answer"), group) == (
        "rubric 'syc_answer' needs assistant_turn: it has no assistant reply"
    )


def test_a_group_rubric_needs_two_members(library: RubricLibrary) -> None:
    rubric = library.get("char_coherence")
    assert shape_problem(rubric, TranscriptGroup.of("g2", [member("a")])) == (
        "rubric 'char_coherence' needs at least two transcripts in group 'g2'"
    )
    pair = TranscriptGroup.of("g2", [member("a", "x"), member("b", "y")])
    assert shape_problem(rubric, pair) is None
    broken = TranscriptGroup.of("g2", [member("a", "x"), member("b", "")])
    assert shape_problem(rubric, broken) == (
        "rubric 'char_coherence' needs assistant_turn: it has no assistant reply"
    )
