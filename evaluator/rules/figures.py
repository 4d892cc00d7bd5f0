"""One rounding rule for every art. 33 figure the pad and the city show or export.

A mean score (平均分, 服务事项得分) or a rate (参评率, 覆盖率) is computed as an exact fraction
(:class:`fractions.Fraction`: the sum of integer scores over their count, rated over presented;
the item score is the exact mean of the matters' exact means) and rounded **once**, from that
fraction, never from a float or from a figure already rounded:

* the rule is 四舍五入 (``ROUND_HALF_UP``: a discarded part of exactly one half goes away from
  zero), the rule the people who read a hall's figures apply by hand.  The Shantou rules
  (细则 art. 33) define the figures but say nothing about decimals, nor does the provincial
  direction; GB/T 8170-2008 would round an exact half to the even digit (四舍六入五成双), a
  rule for measured values that a clerk checking "1297 ÷ 200 = 6.485 → 6.49" by hand would
  not expect.  Ties are rare (the exact fraction must end in a 5 at the next place) and every
  figure here follows the same rule, so pad and city always agree;
* a score keeps :data:`SCORE_PLACES` decimals ("6.48");
* a rate is a fraction with :data:`RATE_PLACES` decimals (0.905) and shows as a percentage with
  one decimal ("90.5%"): the same digits, so the JSON figure and the text never disagree.

Rounding twice is the fault this module exists to prevent: 6.4848 rounded to 3 places is
6.485, and 6.485 to 2 places is 6.49, where 6.4848 to 2 places once is 6.48.  A float on the
way in is no better: ``1297 / 200`` is stored as 6.48499999…, which ``f"{x:.2f}"`` shows as 6.48
where the rule says 6.49.  So the figures are computed with :class:`~fractions.Fraction`, and
what leaves (JSON numbers, text) is made by :func:`score_figure` / :func:`rate_figure` /
:func:`score_text` / :func:`percent_text` here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from numbers import Rational

__all__ = [
    "RATE_PLACES",
    "SCORE_PLACES",
    "mean",
    "mean_of",
    "percent_text",
    "rate_figure",
    "ratio",
    "round_half_up",
    "score_figure",
    "score_text",
]

#: Decimals of a mean score (平均分, 服务事项得分) as shown and exported.
SCORE_PLACES = 2
#: Decimals of a rate as a fraction (0.905), i.e. one decimal of its percentage (90.5%).
RATE_PLACES = 3

Exact = Fraction | int


def mean(scores: Iterable[int | float | Fraction]) -> Fraction | None:
    """The exact mean of ``scores`` (10 8 6 3 0), ``None`` for none."""
    values = list(scores)
    if not values:
        return None
    if all(type(v) is int for v in values):  # the usual case: integer sum, one fraction
        return Fraction(sum(values), len(values))
    return sum(map(_exact, values), Fraction(0)) / len(values)


def mean_of(means: Iterable[Fraction | None]) -> Fraction | None:
    """The exact mean of exact means (the item score: the matters' means), skipping ``None``."""
    return mean(m for m in means if m is not None)


def ratio(part: int, whole: int) -> Fraction | None:
    """``part ÷ whole`` exactly (participation, coverage); ``None`` when ``whole`` is 0."""
    return Fraction(part, whole) if whole else None


def round_half_up(value: Exact, places: int) -> Decimal:
    """``value`` rounded once to ``places`` decimals, an exact half away from zero (四舍五入).

    Integer arithmetic on the fraction: no decimal context, no float, no precision limit."""
    scaled = _exact(value) * 10**places
    sign = -1 if scaled < 0 else 1
    whole, rest = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * rest >= scaled.denominator:
        whole += 1
    return Decimal(sign * whole).scaleb(-places)


def score_figure(value: Exact | None) -> float | None:
    """A mean score as a JSON number: the rounded decimal (6.48), ``None`` stays ``None``."""
    return None if value is None else float(round_half_up(value, SCORE_PLACES))


def rate_figure(value: Exact | None) -> float | None:
    """A rate as a JSON number: the rounded fraction (0.905), ``None`` stays ``None``."""
    return None if value is None else float(round_half_up(value, RATE_PLACES))


def score_text(value: Exact | float | None) -> str:
    """A mean score as text, "6.48"; "-" for none.  A float is taken as a figure this module
    already rounded (:func:`score_figure`), its shortest decimal form, never rounded again."""
    if value is None:
        return "-"
    return f"{_decimal(value, SCORE_PLACES):f}"


def percent_text(value: Exact | float | None) -> str:
    """A rate as a percentage with one decimal, "90.5%"; "-" for none.  A float is taken as a
    figure already rounded (:func:`rate_figure`), never rounded again."""
    if value is None:
        return "-"
    return f"{_decimal(value, RATE_PLACES).scaleb(2):f}%"


def _decimal(value: Exact | float, places: int) -> Decimal:
    if isinstance(value, float):
        text = Decimal(repr(value))
        if text != text.quantize(Decimal(1).scaleb(-places)):
            raise ValueError(
                f"{value!r} has more than {places} decimals: pass the exact fraction, a figure "
                "is rounded once"
            )
        return text.quantize(Decimal(1).scaleb(-places))
    return round_half_up(value, places)


def _exact(value: int | float | Fraction) -> Fraction:
    """A score as given (a float score is taken at its exact binary value), as a fraction."""
    if isinstance(value, bool) or not isinstance(value, int | float | Rational):
        raise TypeError(f"a figure needs a number, not {value!r}")
    return Fraction(value)
