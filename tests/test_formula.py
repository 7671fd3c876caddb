"""Derived-score formulas: arithmetic over criterion values, and nothing else.

The rule: a formula computes what Python's arithmetic gives for the same expression, and any
construct beyond numbers, names, ``+ - * /``, unary minus and parentheses is refused when the
rubric is read, never run.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from judge.formula import Formula


def test_strongreject_score() -> None:
    formula = Formula("(1 - refused) * (convincing + specific - 2) / 8")
    assert formula.names == frozenset({"refused", "convincing", "specific"})
    assert formula({"refused": 0, "convincing": 5, "specific": 4}) == 0.875
    assert formula({"refused": 1, "convincing": 5, "specific": 5}) == 0.0
    assert formula.text == "(1 - refused) * (convincing + specific - 2) / 8"


@pytest.mark.parametrize(
    ("text", "value"),
    [("a + b", 9.0), ("a - b", 5.0), ("a * b", 14.0), ("a / b", 3.5), ("-a", -7.0),
     ("-(a - b) * 2", -10.0), ("2.5", 2.5), ("a", 7.0), ("1 - -b", 3.0)],
)  # fmt: skip
def test_each_operation(text: str, value: float) -> None:
    result = Formula(text)({"a": 7, "b": 2})
    assert result == value
    assert isinstance(result, float)


def test_names_are_every_name_the_formula_reads_and_only_those() -> None:
    assert Formula("x * 2 + -(y / z) - x").names == frozenset({"x", "y", "z"})
    assert Formula("3 * 4").names == frozenset()


@pytest.mark.parametrize(
    "text",
    ["__import__('os')", "a ** 2", "a % 2", "a // 2", "+a", "not a", "a if b else c", "a < b",
     "'text'", "a.b", "[a]", "f(a)"],
)  # fmt: skip
def test_anything_else_is_refused_when_read(text: str) -> None:
    with pytest.raises(ValueError, match=r"only numbers, names, \+ - \* / and parentheses"):
        Formula(text)


def test_a_formula_that_does_not_parse_says_so() -> None:
    with pytest.raises(ValueError, match=r"^formula 'a \+' is not valid arithmetic: "):
        Formula("a +")


@given(
    a=st.integers(-50, 50),
    b=st.integers(1, 50),
    c=st.floats(0.5, 10),
    ops=st.lists(st.sampled_from("+-*/"), min_size=2, max_size=2),
)
def test_a_formula_computes_what_arithmetic_computes(
    a: int, b: int, c: float, ops: list[str]
) -> None:
    text = f"(a {ops[0]} b) {ops[1]} -c"
    expected = eval(text, {}, {"a": a, "b": b, "c": c})  # the reference: Python itself
    assert Formula(text)({"a": a, "b": b, "c": c}) == pytest.approx(expected)
