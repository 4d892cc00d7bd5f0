"""The five rating levels of art. 10, with explicit mappings to each boundary's code.

The provincial interfaces code ``satisfaction`` 5 非常满意 … 1 非常不满意, while GB/T 39046
annex A.8 codes 1 非常满意 … 5 非常不满意.  The level itself is always the named value; the
numbers only exist at the boundaries that need them.
"""

from __future__ import annotations

from enum import Enum


class Level(Enum):
    """A rating level; ``value`` is the stable named value used on every wire."""

    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
    VERY_DISSATISFIED = "very_dissatisfied"

    @property
    def label(self) -> str:
        """The Chinese label shown on the button (art. 10)."""
        return LABELS[self]

    @property
    def score(self) -> int:
        """Points for statistics (art. 10): 10, 8, 6, 3, 0."""
        return SCORES[self]

    @property
    def satisfaction(self) -> int:
        """Provincial interface code: 5 非常满意 … 1 非常不满意."""
        return SATISFACTION_CODES[self]

    @property
    def gbt_code(self) -> int:
        """GB/T 39046-2020 annex A.8 code: 1 非常满意 … 5 非常不满意."""
        return GBT_39046_CODES[self]

    @property
    def is_bad(self) -> bool:
        """True for 差评 (不满意, 非常不满意), which need a reason or text (art. 11)."""
        return self in (Level.DISSATISFIED, Level.VERY_DISSATISFIED)

    @classmethod
    def from_value(cls, value: str) -> Level:
        """The level for a named value; ``ValueError`` naming the valid ones otherwise."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(level.value for level in cls)
            raise ValueError(f"unknown level {value!r}; expected one of {valid}") from None


#: Buttons left to right, in the order of art. 10.
BUTTON_ORDER: tuple[Level, ...] = (
    Level.VERY_SATISFIED,
    Level.SATISFIED,
    Level.BASICALLY_SATISFIED,
    Level.DISSATISFIED,
    Level.VERY_DISSATISFIED,
)

LABELS: dict[Level, str] = {
    Level.VERY_SATISFIED: "非常满意",
    Level.SATISFIED: "满意",
    Level.BASICALLY_SATISFIED: "基本满意",
    Level.DISSATISFIED: "不满意",
    Level.VERY_DISSATISFIED: "非常不满意",
}

SCORES: dict[Level, int] = {
    Level.VERY_SATISFIED: 10,
    Level.SATISFIED: 8,
    Level.BASICALLY_SATISFIED: 6,
    Level.DISSATISFIED: 3,
    Level.VERY_DISSATISFIED: 0,
}

SATISFACTION_CODES: dict[Level, int] = {
    Level.VERY_SATISFIED: 5,
    Level.SATISFIED: 4,
    Level.BASICALLY_SATISFIED: 3,
    Level.DISSATISFIED: 2,
    Level.VERY_DISSATISFIED: 1,
}

GBT_39046_CODES: dict[Level, int] = {
    Level.VERY_SATISFIED: 1,
    Level.SATISFIED: 2,
    Level.BASICALLY_SATISFIED: 3,
    Level.DISSATISFIED: 4,
    Level.VERY_DISSATISFIED: 5,
}
