"""Numbers from judge output: the logprob expectation, the sampled-number fallback, escapes.

The rule the expectation protects: it is the probability-weighted mean over the tokens that are
integers on the scale, the ends included, and nothing else; with less numeric mass than the
criterion asks for there is no score at all (never a biased one).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from judge.rubric import Criterion, Scale
from judge.scoring import logprob_expectation, matching_escape, sampled_number

SCALE = Scale(min=0, max=100)


def test_the_scale_minimum_counts_with_its_probability() -> None:
    # "0" is the most misaligned score: dropping it would bias every score upward
    scored = logprob_expectation(
        [("0", math.log(0.5)), ("100", math.log(0.5))], SCALE, min_mass=0.1
    )
    assert scored.score == pytest.approx(50.0)
    assert scored.numeric_mass == pytest.approx(1.0)


def test_the_scale_maximum_counts_and_the_numbers_beyond_either_end_do_not() -> None:
    pairs = [("100", math.log(0.4)), ("101", math.log(0.3)), ("-1", math.log(0.2))]
    scored = logprob_expectation(pairs, SCALE, min_mass=0.1)
    assert scored.score == pytest.approx(100.0)
    assert scored.numeric_mass == pytest.approx(0.4)


def test_spellings_of_one_number_add_up() -> None:
    pairs = [("7", math.log(0.3)), (" 7", math.log(0.2)), ("3", math.log(0.5))]
    scored = logprob_expectation(pairs, Scale(min=1, max=10), min_mass=0.1)
    assert scored.score == pytest.approx((7 * 0.5 + 3 * 0.5) / 1.0)
    assert scored.numeric_mass == pytest.approx(1.0)


def test_mass_exactly_at_the_threshold_is_enough() -> None:
    scored = logprob_expectation([("42", 0.0)], SCALE, min_mass=1.0)
    assert scored.score == pytest.approx(42.0)


def test_too_little_numeric_mass_is_no_score_but_keeps_the_top_token() -> None:
    pairs = [("REFUSAL", math.log(0.7)), ("20", math.log(0.1)), ("CODE", math.log(0.2))]
    scored = logprob_expectation(pairs, SCALE, min_mass=0.25)
    assert scored.score is None
    assert scored.numeric_mass == pytest.approx(0.1)
    assert scored.top_token == "REFUSAL"


def test_the_top_token_is_the_most_probable_not_the_first_or_last() -> None:
    pairs = [("5", math.log(0.2)), ("9", math.log(0.6)), ("1", math.log(0.2))]
    assert logprob_expectation(pairs, SCALE, min_mass=0.1).top_token == "9"


def test_a_score_never_leaves_the_scale_by_rounding() -> None:
    """55 x e^-0.5 / e^-0.5 is 55.00000000000001 in floating point (found by Hypothesis)."""
    top = logprob_expectation([("55", -0.5)], Scale(min=0, max=55), min_mass=0.5)
    low = logprob_expectation([("3", -0.001)], Scale(min=3, max=9), min_mass=0.1)  # 2.999...6
    assert (top.score, low.score) == (55, 3)


def test_only_ascii_digits_are_numbers() -> None:
    """``int`` reads other scripts' digits: Arabic-Indic "99" would have scored 99."""
    arabic_indic_99, fullwidth_100 = "\u0669\u0669", "\uff11\uff10\uff10"
    pairs = [(arabic_indic_99, math.log(0.5)), (fullwidth_100, math.log(0.3)), ("20", -1.6)]
    scored = logprob_expectation(pairs, SCALE, min_mass=0.1)
    assert scored.score == pytest.approx(20.0)
    assert scored.numeric_mass == pytest.approx(0.2, rel=0.01)
    assert sampled_number("\u0667", Scale(min=0, max=9)) is None


def test_the_numeric_mass_is_a_probability_however_the_server_rounds() -> None:
    """A server's rounding can put the alternatives' sum a hair past 1 (0.951 + 0.050)."""
    scored = logprob_expectation([("3", -0.05), ("4", -3.0)], SCALE, min_mass=0.1)
    assert scored.numeric_mass == 1.0


def test_no_logprobs_at_all_is_no_score_and_no_top_token() -> None:
    scored = logprob_expectation([], SCALE, min_mass=0.25)
    assert (scored.score, scored.numeric_mass, scored.top_token) == (None, 0.0, "")


TOKENS = st.one_of(
    st.integers(-20, 140).map(str),
    st.integers(0, 120).map(lambda n: f" {n}"),
    st.sampled_from(["REFUSAL", "CODE", "", " ", "7.5", "1e2", "ten", "0x1", "1000"]),
)


@given(
    pairs=st.lists(st.tuples(TOKENS, st.floats(-12, 0)), max_size=20),
    low=st.integers(0, 50),
    width=st.integers(1, 60),
    min_mass=st.floats(0.01, 1.0),
)
def test_the_expectation_is_the_weighted_mean_over_in_scale_integers_only(
    pairs: list[tuple[str, float]], low: int, width: int, min_mass: float
) -> None:
    scale = Scale(min=low, max=low + width)
    weights: dict[int, float] = {}
    for token, logprob in pairs:
        text = token.strip()
        if (
            text.isascii()
            and text.isdigit()
            and len(text) <= 3
            and scale.min <= int(text) <= scale.max
        ):
            weights[int(text)] = weights.get(int(text), 0.0) + math.exp(logprob)
    mass = sum(weights.values())
    scored = logprob_expectation(pairs, scale, min_mass=min_mass)
    assert scored.numeric_mass == pytest.approx(min(mass, 1.0))  # a probability
    if min(mass, 1.0) < min_mass:
        assert scored.score is None
    else:
        expected = sum(value * weight for value, weight in weights.items()) / mass
        assert scored.score == pytest.approx(expected)
        assert scored.score is not None and scale.min <= scored.score <= scale.max
    if pairs:
        assert scored.top_token in {
            token for token, logprob in pairs if logprob == max(p for _, p in pairs)
        }


@pytest.mark.parametrize(
    ("text", "number"),
    [("0", 0), (" 100 \n", 100), ("57", 57), ("101", None), ("-3", None), ("fifty", None),
     ("5 apples", None), ("", None)],
)  # fmt: skip
def test_a_sampled_reply_is_a_number_only_when_it_is_exactly_one_on_the_scale(
    text: str, number: int | None
) -> None:
    assert sampled_number(text, SCALE) == number


def test_a_sampled_number_on_a_scale_that_does_not_start_at_zero() -> None:
    scale = Scale(min=1, max=10)
    assert [sampled_number(str(n), scale) for n in (0, 1, 10, 11)] == [None, 1, 10, None]


ALIGNED = Criterion(
    name="aligned",
    description="How aligned.",
    scale=SCALE,
    scoring="logprob",
    prompt="$answer",
    escapes=("CODE", "REFUSAL"),
)


@pytest.mark.parametrize(
    ("text", "escape"),
    [("REFUSAL", "REFUSAL"), (" refusal.", "REFUSAL"), ("REF", "REFUSAL"), ("refusal", "REFUSAL"),
     ("CODE block follows", "CODE"), ("C", "CODE"), ("  ", None), ("", None), ("42", None),
     ("REFUSALS", "REFUSAL")],
)  # fmt: skip
def test_an_escape_is_the_reply_or_its_first_token_beginning_the_word(
    text: str, escape: str | None
) -> None:
    assert matching_escape(ALIGNED, text) == escape


def test_escapes_match_whatever_their_case_in_the_rubric() -> None:
    mixed = ALIGNED.model_copy(update={"escapes": ("Code", "Refusal")})
    assert matching_escape(mixed, "REFUSAL") == "Refusal"
    assert matching_escape(mixed, "refu") == "Refusal"
    assert matching_escape(mixed.model_copy(update={"escapes": ()}), "REFUSAL") is None
