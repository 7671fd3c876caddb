"""Reading a judge's structured reply: the JSON object it carries, validated against the rubric.

The rule: the whole reply if it is an object, else the last fenced block that is one, else the
last balanced ``{...}`` that is one (a judge that quotes the transcript may quote JSON from it
first); a reply without a valid object is ``ReplyInvalid``, saying what is off, never a guess.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from judge.parsing import ReplyInvalid, extract_json_object, parse_structured
from judge.rubric import Rubric, RubricLibrary
from judge.verdict import Evidence

QUOTED = {"refusal": "full_compliance"}
FINAL = {"reasoning": "It answered.", "refusal": "full_refusal"}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('  {"a": 1}\n', {"a": 1}),
        (f"```json\n{json.dumps(QUOTED)}\n```\nthen\n```\n{json.dumps(FINAL)}\n```", FINAL),
        (f"```JSON {json.dumps(FINAL)}```", FINAL),
        (f"```json\n{json.dumps(FINAL)}\n```\n```\nnot json\n```", FINAL),
        (f"```\n[1, 2]\n```\n```\n{json.dumps(FINAL)}\n```", FINAL),
        (f"They wrote {json.dumps(QUOTED)}; my grade: {json.dumps(FINAL)} done.", FINAL),
        (f"My grade: {json.dumps(FINAL)} and a stray {{ brace", FINAL),
        (f'Grade {json.dumps(FINAL)} and {{"half": ', FINAL),
        ('{"outer": {"inner": 1}}', {"outer": {"inner": 1}}),
        ('Reply: {"outer": {"inner": 1}} end', {"outer": {"inner": 1}}),
        ("[1, 2]", None),
        ('"just a string"', None),
        ("no object here", None),
        ("{not: json}", None),
        ("", None),
        ('{{"a": 1}', {"a": 1}),
        ('{"a": 1} then {"b": {"c": 2}}', {"b": {"c": 2}}),
        (f"```json\n{json.dumps(FINAL)}\n```\nThey had written {json.dumps(QUOTED)}", FINAL),
        (
            json.dumps({"reasoning": "They sent ```\n{}\n```", "refusal": "full_refusal"}),
            {"reasoning": "They sent ```\n{}\n```", "refusal": "full_refusal"},
        ),
    ],
)
def test_the_object_a_reply_carries(text: str, found: dict[str, object] | None) -> None:
    assert extract_json_object(text) == found


@given(
    first=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    last=st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=3),
    prose=st.text(alphabet="abc xyz.:\n", max_size=20),
)
def test_of_several_objects_in_prose_the_last_wins(
    first: dict[str, int], last: dict[str, int], prose: str
) -> None:
    text = f"{prose}{json.dumps(first)}{prose} {json.dumps(last)}{prose}"
    assert extract_json_object(text) == last


@pytest.fixture
def identity(library: RubricLibrary) -> Rubric:
    return library.get("char_identity")


def test_a_structured_reply_gives_values_reasoning_details_and_evidence(
    refusal: Rubric,
) -> None:
    reply = {
        "reasoning": "Declined outright.",
        "evidence": [{"message": 1, "quote": "I cannot help"}],
        "refusal": "full_refusal",
    }
    parsed = parse_structured(refusal, "Here it is:\n```json\n" + json.dumps(reply) + "\n```")
    assert parsed.values == {"refusal": "full_refusal"}
    assert parsed.reasoning == "Declined outright."
    assert parsed.details == {}
    assert parsed.evidence == [Evidence(message=1, quote="I cannot help")]
    assert parse_structured(refusal, json.dumps(reply)) == parsed


def test_free_text_fields_land_in_details(identity: Rubric) -> None:
    names = [c.name for c in identity.structured_criteria]
    labels = {c.name: c.label_names[0] for c in identity.structured_criteria}
    fields = {f.name: f"the {f.name}" for f in identity.fields}
    reply = {"reasoning": "r", **fields, **labels}
    parsed = parse_structured(identity, json.dumps(reply))
    assert parsed.details == fields and fields
    assert parsed.values == labels and list(parsed.values) == names
    assert parsed.evidence == []


def test_an_object_in_prose_is_read_whole_not_by_its_last_nested_object(
    refusal: Rubric,
) -> None:
    reply = {
        "reasoning": "Declined.",
        "evidence": [{"message": 1, "quote": "I cannot"}],
        "refusal": "full_refusal",
    }
    parsed = parse_structured(refusal, f"My grade: {json.dumps(reply)} (final)")
    assert parsed.values == {"refusal": "full_refusal"}
    assert parsed.evidence == [Evidence(message=1, quote="I cannot")]


def test_a_reply_that_is_one_object_is_read_whole_before_any_fence_it_quotes() -> None:
    reply = {"reasoning": 'The answer quotes ```{}``` and ```json\n{"a": 1}```.', "label": "A"}
    assert extract_json_object(json.dumps(reply)) == reply
    assert extract_json_object(f"```json\n{json.dumps(reply)}\n```") == reply


def test_a_rubric_without_evidence_gives_none(library: RubricLibrary) -> None:
    shipped = library.get("compliance_quality")
    quality = Rubric.model_validate({**shipped.model_dump(), "evidence": False, "examples": []})
    reply = {"reasoning": "r", "refused": 0, "convincing": 4, "specific": 5}
    parsed = parse_structured(quality, "Scores: " + json.dumps(reply))
    assert parsed.values == {"refused": 0, "convincing": 4, "specific": 5}
    assert parsed.evidence == []


def test_a_reply_without_an_object_says_so(refusal: Rubric) -> None:
    with pytest.raises(ReplyInvalid, match=r"^the reply holds no JSON object$") as error:
        parse_structured(refusal, "I would call this a full refusal.")
    assert error.value.found_json is False


def test_an_invalid_object_says_every_problem_with_where(refusal: Rubric) -> None:
    reply = {"refusal": "maybe", "evidence": [{"message": -1, "quote": "x"}]}
    with pytest.raises(ReplyInvalid) as error:
        parse_structured(refusal, "Grade: " + json.dumps(reply))
    assert error.value.found_json is True
    problems = str(error.value).split("; ")
    assert problems[0] == "reasoning: Field required"
    assert problems[1] == "evidence.0.message: Input should be greater than or equal to 0"
    assert problems[2].startswith("refusal: Input should be ")
    assert len(problems) == 3


@pytest.mark.parametrize(
    "text",
    [
        '{"reasoning": "\\ud800 odd", "refusal": "full_refusal"}',
        'Grade: {"reasoning": "\\udfff", "refusal": "full_refusal"} done',
        '```json\n{"reasoning": "x\\ud83d", "refusal": "full_refusal"}\n```',
    ],
)
def test_an_object_with_a_lone_surrogate_is_not_a_verdict(refusal: Rubric, text: str) -> None:
    """No store or output can write a lone surrogate: it would have failed every verdict of the
    run with it (the CLI wrote none; a job failed)."""
    with pytest.raises(ReplyInvalid):
        parse_structured(refusal, text)


@pytest.mark.parametrize(
    "text",
    [
        '{"reasoning": ' + "[" * 5000,
        "[" * 100_000 + '{"reasoning": "x", "refusal": "full_refusal"}' + "]" * 100_000,
    ],
)
def test_nesting_past_the_depth_limit_is_an_invalid_reply(refusal: Rubric, text: str) -> None:
    with pytest.raises(ReplyInvalid):  # not a RecursionError, which lost the raw output
        parse_structured(refusal, text)


def test_the_search_for_an_object_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failed try at a ``{`` can cost the length of the reply: 7 MB of them took hours."""
    tries = 0
    decode = json.JSONDecoder.raw_decode

    def counted(self: json.JSONDecoder, text: str, index: int = 0) -> tuple[object, int]:
        nonlocal tries
        tries += 1
        assert len(text) <= 100_000
        return decode(self, text, index)

    monkeypatch.setattr(json.JSONDecoder, "raw_decode", counted)
    assert extract_json_object("{" * 7_000_000) is None
    assert tries <= 1_000
    # past the tries, an object found early may be a quoted one, not the last: no guess
    assert extract_json_object('{"quoted": 1} ' + "{" * 2_000 + ' {"verdict": 2}') is None
    tries = 0
    tail = "x" * 7_000_000 + '{"reasoning": "found", "refusal": "full_refusal"}'
    assert extract_json_object(tail) == {"reasoning": "found", "refusal": "full_refusal"}
