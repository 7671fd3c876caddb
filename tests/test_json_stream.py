"""A JSON object decoded as a stream, in pieces of any size, agrees with ``json_input.loads``: the
same value where loads takes the text, a refusal (with the same field) where it does not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judge.json_input import MAX_NUMBER, JSONInputError, loads
from judge.json_stream import JSONObjectStream

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
LEAVES = (
    st.none() | st.booleans() | st.integers(-MAX_NUMBER, MAX_NUMBER) | st.floats(-1e18, 1e18) | TEXT
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def decode(data: bytes, sizes: list[int]) -> tuple[dict[str, Any], list[Any]]:
    """The fields and streamed items, feeding ``data`` in pieces of the given sizes (cycled)."""
    stream = JSONObjectStream("transcripts")
    items: list[Any] = []
    start, turn = 0, 0
    while start < len(data):
        size = sizes[turn % len(sizes)]
        items += stream.feed(data[start : start + size])
        start, turn = start + size, turn + 1
    items += stream.close()
    return stream.fields, items


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(TEXT.filter(lambda k: k != "transcripts"), VALUES, max_size=3),
    items=st.lists(VALUES, max_size=6),
    ascii_only=st.booleans(),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
)
def test_pieces_of_any_size_decode_to_what_loads_gives(
    fields: dict[str, Any], items: list[Any], ascii_only: bool, sizes: list[int]
) -> None:
    document = {**fields, "transcripts": items}
    data = json.dumps(document, ensure_ascii=ascii_only).encode()  # ascii: surrogate pairs

    got_fields, got_items = decode(data, sizes)

    expected = loads(data, controls=True)
    assert got_fields == {k: v for k, v in expected.items() if k != "transcripts"}
    assert got_items == expected["transcripts"]


@settings(max_examples=200, deadline=None)
@given(
    prefix=TEXT,
    code=st.integers(0xD800, 0xDFFF),
    backslashes=st.integers(0, 3),
    sizes=st.lists(st.integers(1, 16), min_size=1, max_size=4),
)
def test_a_lone_surrogate_escape_is_refused_by_its_path_and_an_escaped_backslash_is_not_one(
    prefix: str, code: int, backslashes: int, sizes: list[int]
) -> None:
    escaped = json.dumps(prefix)[1:-1] + "\\" * (2 * backslashes) + f"\\u{code:04x}"
    data = ('{"transcripts": [{"a": 1}, {"b": "' + escaped + '"}]}').encode()
    with pytest.raises(JSONInputError, match="lone surrogate") as refused:
        decode(data, sizes)
    assert refused.value.field == "transcripts.1.b"
    # the escape's own backslash escaped (a "\\u" in the prefix itself stays as it is)
    as_text = json.dumps(prefix)[1:-1] + "\\" * (2 * backslashes) + f"\\\\u{code:04x}"
    literal = ('{"transcripts": [{"b": "' + as_text + '"}]}').encode()
    assert decode(literal, sizes)[1] == loads(literal, controls=True)["transcripts"]


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (b'{"transcripts": [{"a": 1, "a": 2}]}', "a", "duplicate key"),
        (b'{"transcripts": [], "transcripts": []}', "transcripts", "duplicate key"),
        (b'{"transcripts": [{"n": 9223372036854775808}]}', None, "too large"),
        (b'{"transcripts": [{"n": 1e300}]}', None, "too large"),
        (b'{"transcripts": [{"n": NaN}]}', None, "NaN"),
        (b'{"transcripts": [' + b"[" * 70 + b"]" * 70 + b"]}", "transcripts", "nested"),
        (b'{"a": "caf\xe9"}', None, "not UTF-8"),
        (b"", None, "empty"),
        (b'{"a": 1', None, "premature EOF"),
        (b'{"a": 1} {}', None, "trailing garbage"),
    ],
)
def test_what_loads_refuses_is_refused_with_its_field(
    data: bytes, field: str | None, reason: str
) -> None:
    with pytest.raises(JSONInputError, match=reason) as refused:
        decode(data, [7])
    assert refused.value.field == field
    with pytest.raises(JSONInputError):
        loads(data)


@pytest.mark.parametrize("body", [b'["a"]', b"1", b"-2.5e3 ", b"true", b'"text"', b"null"])
def test_the_body_must_be_an_object(body: bytes) -> None:
    """A bare number is whole only when the input ends: the parser's last events count too."""
    with pytest.raises(JSONInputError, match="must be a JSON object"):
        decode(body, [1])


def test_a_byte_order_mark_is_dropped_as_loads_drops_it() -> None:
    assert decode(b'\xef\xbb\xbf{"transcripts": [1]}', [2]) == ({}, [1])


def test_a_long_run_of_backslashes_is_carried_in_bounded_pieces() -> None:
    text = "\\" * 100_000 + "\N{GRINNING FACE}"  # escaped as a surrogate pair
    data = json.dumps({"transcripts": [text]}).encode()
    stream = JSONObjectStream("transcripts")
    items = []
    for start in range(0, len(data), 4096):
        items += stream.feed(data[start : start + 4096])
        assert len(stream._scan.carry) <= 18
    assert items + stream.close() == [text]
