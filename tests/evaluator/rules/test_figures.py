"""The one rounding rule (evaluator.rules.figures): an exact fraction rounded once, half up."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.rules import figures as fig

SCORES = st.sampled_from([10, 8, 6, 3, 0])


def once(num: int, den: int, places: int) -> Decimal:
    """The reference, written independently: the decimal quotient with 60 digits (exact for
    every tie these denominators can make), quantized half up once."""
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(num) / Decimal(den)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)


def test_the_issue_example_rounds_once() -> None:
    # 29 × 6 + 4 × 10 over 33 = 214/33 = 6.4848…: once → 6.48 (twice, via 6.485, gave 6.49).
    scores = [6] * 29 + [10] * 4
    assert fig.mean(scores) == Fraction(214, 33)
    assert fig.score_figure(fig.mean(scores)) == 6.48
    assert fig.score_text(fig.mean(scores)) == "6.48"
    assert fig.score_text(fig.score_figure(fig.mean(scores))) == "6.48"


def test_an_exact_half_goes_up_where_a_float_would_go_down() -> None:
    # 1297/200 = 6.485 exactly: half up → 6.49.  0.125 is exact in binary, and Python's
    # format rounds it half-even (0.12): the text must come from the rule, not from format.
    assert fig.score_text(Fraction(1297, 200)) == "6.49"
    assert fig.score_text(Fraction(1, 8)) == "0.13" and f"{0.125:.2f}" == "0.12"
    assert fig.percent_text(Fraction(181, 200)) == "90.5%"  # 0.905 exactly
    assert fig.percent_text(Fraction(1, 3)) == "33.3%" and fig.rate_figure(Fraction(1, 3)) == 0.333
    assert fig.percent_text(1) == "100.0%" and fig.score_text(10) == "10.00"


def test_none_and_nothing() -> None:
    assert fig.mean([]) is None and fig.ratio(3, 0) is None and fig.mean_of([None]) is None
    assert fig.score_figure(None) is None and fig.rate_figure(None) is None
    assert fig.score_text(None) == "-" and fig.percent_text(None) == "-"


def test_a_float_with_more_decimals_is_refused_not_rounded_again() -> None:
    with pytest.raises(ValueError, match="rounded once"):
        fig.score_text(6.485)
    with pytest.raises(ValueError, match="rounded once"):
        fig.percent_text(2 / 3)
    with pytest.raises(TypeError):
        fig.mean(["6"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        fig.mean([10, True])
    assert fig.mean([6.0, 7, Fraction(1, 2)]) == Fraction(27, 6)  # a stored float, taken exactly


@given(st.lists(SCORES, min_size=1, max_size=400))
def test_any_multiset_of_scores_is_rounded_once(scores: list[int]) -> None:
    exact = fig.mean(scores)
    assert exact == Fraction(sum(scores), len(scores))
    want = once(sum(scores), len(scores), fig.SCORE_PLACES)
    assert fig.round_half_up(exact, fig.SCORE_PLACES) == want
    assert fig.score_text(exact) == f"{want:f}"
    # The JSON figure, printed by the other side, gives the same text: no second rounding.
    assert fig.score_text(fig.score_figure(exact)) == f"{want:f}"


@given(st.integers(0, 5000), st.integers(1, 5000))
def test_any_rate_is_rounded_once(part: int, extra: int) -> None:
    whole = part + extra - 1 if part + extra > 1 else 1
    part = min(part, whole)
    exact = fig.ratio(part, whole)
    want = once(part, whole, fig.RATE_PLACES)
    assert fig.rate_figure(exact) == float(want)
    assert fig.percent_text(exact) == f"{want.scaleb(2):f}%"
    assert fig.percent_text(fig.rate_figure(exact)) == fig.percent_text(exact)


@given(st.lists(st.lists(SCORES, min_size=1, max_size=50), min_size=1, max_size=8))
def test_the_item_score_is_the_exact_mean_of_exact_means(matters: list[list[int]]) -> None:
    exact = fig.mean_of(fig.mean(m) for m in matters)
    reference = sum(Fraction(sum(m), len(m)) for m in matters) / len(matters)
    assert exact == reference
    assert fig.score_text(exact) == f"{once(reference.numerator, reference.denominator, 2):f}"


@given(st.fractions(min_value=-1000, max_value=1000, max_denominator=10**9), st.integers(0, 6))
def test_round_half_up_against_decimal(value: Fraction, places: int) -> None:
    want = once(value.numerator, value.denominator, places)
    assert fig.round_half_up(value, places) == want
