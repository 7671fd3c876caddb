"""Untrusted JSON in: what ``json`` would accept but breaks later is refused, saying where.

The rules: a document is refused for a duplicate key, ``NaN``/``Infinity``, a number beyond
``MAX_NUMBER`` or nesting beyond ``MAX_DEPTH`` (both bounds themselves accepted), a lone
surrogate, or (in transcript text) a control character other than tab, line feed and carriage
return; everything else decodes exactly as ``json`` decodes it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from judge.json_input import MAX_DEPTH, MAX_NUMBER, JSONInputError, check, decode_text, loads


def refused(text: str | bytes, **options: Any) -> JSONInputError:
    with pytest.raises(JSONInputError) as error:
        loads(text, **options)
    return error.value


def test_bytes_decode_as_utf8_without_the_byte_order_mark() -> None:
    assert decode_text("\ufeff{}".encode()) == "{}"
    assert decode_text("caf\u00e9 \ufeff".encode()) == "caf\u00e9 \ufeff"
    assert loads(b'\xef\xbb\xbf{"a": "\xc3\xa9"}') == {"a": "\u00e9"}


def test_bytes_that_are_not_utf8_say_which_and_where() -> None:
    with pytest.raises(JSONInputError, match=r"^not UTF-8 text: byte 0xff at offset 3$") as error:
        decode_text(b'{"a\xff": 1}')
    assert error.value.field is None


@pytest.mark.parametrize(
    ("text", "message", "field"),
    [
        ('{"a": 1, "b": {"c": 2, "c": 3}}', "duplicate key 'c' in an object", "c"),
        ('{"a": NaN}', "NaN is not a JSON number", None),
        ("[-Infinity]", "-Infinity is not a JSON number", None),
        ('{"a": 1e400}', "number 1e400 is too large", None),
        ('{"a": -9.3e18}', "number -9.3e18 is too large", None),
        ("[9223372036854775808]", "integer 9223372036854775808 is too large", None),
        ("[-9223372036854775808]", "integer -9223372036854775808 is too large", None),
        ("[" + "1" * 30 + "]", "integer " + "1" * 24 + "... is too large", None),
        ("[" + "1" * 24 + "]", "integer " + "1" * 24 + " is too large", None),
        ("[" + "1" * 25 + "]", "integer " + "1" * 24 + "... is too large", None),
        ("[" + "1" * 30 + ".5]", "number " + "1" * 24 + " is too large", None),
        ('{"a": 1', "invalid JSON: Expecting ',' delimiter (line 1, column 8)", None),
        ('{"a":\n tru}', "invalid JSON: Expecting value (line 2, column 2)", None),
    ],
)
def test_what_is_refused_says_what_and_where(text: str, message: str, field: str | None) -> None:
    error = refused(text)
    assert str(error) == message
    assert error.field == field


@pytest.mark.parametrize(
    "number", [MAX_NUMBER, -MAX_NUMBER, 0, -1, 1234567890123456789, 9.2e18, -9.2e18, 0.5]
)
def test_numbers_up_to_the_bound_are_accepted(number: float) -> None:
    assert loads(json.dumps([number])) == [number]
    check({"a": [number]})


def test_the_bound_applies_to_decoded_values_too() -> None:
    with pytest.raises(JSONInputError, match=r"^number beyond \+-9223372036854775807$") as error:
        check({"a": [1, MAX_NUMBER + 1]})
    assert error.value.field == "a.1"
    with pytest.raises(JSONInputError) as error:
        check(-float("inf"))
    assert error.value.field is None


def nested(depth: int) -> str:
    return '{"messages": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def test_nesting_up_to_the_bound_is_accepted_and_one_more_level_is_not() -> None:
    assert loads(nested(MAX_DEPTH)) is not None
    error = refused(nested(MAX_DEPTH + 1))
    assert str(error) == f"nested deeper than {MAX_DEPTH} levels"
    assert error.field == "messages"


def test_nesting_beyond_the_stack_is_refused_not_crashed() -> None:
    error = refused("[" * 100_000 + "]" * 100_000)
    assert str(error) == f"nested deeper than {MAX_DEPTH} levels"


def test_a_deep_list_at_the_top_is_refused_at_its_first_item() -> None:
    with pytest.raises(JSONInputError) as error:
        check(json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)))
    assert error.value.field == "0"


@pytest.mark.parametrize(
    ("value", "message", "field"),
    [
        ({"messages": [{"content": "ok\x00"}]}, "a control character (U+0000 at character 2)",
         "messages.0.content"),
        ({"a": "\x1f"}, "a control character (U+001F at character 0)", "a"),
        ({"a": "\x7f\x0b"}, "a control character (U+000B at character 1)", "a"),
        ({"ke\x0cy": 1}, "a control character (U+000C at character 2)", "ke\x0cy"),
        (["x", "\ud800"], "a lone surrogate (U+D800 at character 0)", "1"),
        ({"a": ["ok", {"b": "a\udfff"}]}, "a lone surrogate (U+DFFF at character 1)", "a.1.b"),
        ("\udc00", "a lone surrogate (U+DC00 at character 0)", None),
        (["\x00", True, None], "a control character (U+0000 at character 0)", "0"),
    ],
)  # fmt: skip
def test_text_that_no_store_can_hold_is_refused_with_its_field(
    value: Any, message: str, field: str | None
) -> None:
    with pytest.raises(JSONInputError) as error:
        check(value)
    assert str(error.value) == f"contains {message}, which text may not hold"
    assert error.value.field == field


def test_tab_line_feed_and_carriage_return_are_text() -> None:
    check({"a": "one\ttwo\nthree\r\n\x7f\ue000\U0001f600"})


def test_control_characters_are_allowed_where_asked_but_lone_surrogates_never() -> None:
    assert loads('{"raw": "bell\\u0007"}', controls=True) == {"raw": "bell\x07"}
    assert "control character" in str(refused('{"raw": "bell\\u0007"}'))
    assert "lone surrogate" in str(refused('{"raw": "\\ud800"}', controls=True))
    check({"a\x00": ["\x01"]}, controls=True)


def test_a_field_prefix_names_where_the_value_hangs() -> None:
    with pytest.raises(JSONInputError) as error:
        check({"b": "\x00"}, "transcripts.3")
    assert error.value.field == "transcripts.3.b"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_NUMBER, MAX_NUMBER)
    | st.floats(-1e18, 1e18)
    | st.text(st.characters(blacklist_categories=("Cs", "Cc"))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs", "Cc"))), children, max_size=4
        )
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_everything_else_decodes_as_json_decodes_it(value: Any) -> None:
    text = json.dumps(value)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)
