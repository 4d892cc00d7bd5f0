"""Specification of the five rating levels (art. 10) and their boundary codes."""

from __future__ import annotations

import pytest

from evaluator.rules.levels import BUTTON_ORDER, Level

#: Art. 10, in the order the article lists them: label, score, 差评?
ART_10 = [
    ("非常满意", 10, False),
    ("满意", 8, False),
    ("基本满意", 6, False),
    ("不满意", 3, True),
    ("非常不满意", 0, True),
]

#: Provincial ``satisfaction`` (5 非常满意 … 1 非常不满意) and GB/T 39046 annex A.8
#: (1 非常满意 … 5 非常不满意), by label.
SATISFACTION = {"非常满意": 5, "满意": 4, "基本满意": 3, "不满意": 2, "非常不满意": 1}
GBT_39046 = {"非常满意": 1, "满意": 2, "基本满意": 3, "不满意": 4, "非常不满意": 5}


def test_there_are_exactly_five_levels() -> None:
    assert len(Level) == 5
    assert {level.label for level in Level} == {label for label, _, _ in ART_10}


def test_named_values_are_distinct_lowercase_identifiers() -> None:
    values = [level.value for level in Level]
    assert len(set(values)) == 5
    for value in values:
        assert value.isascii() and value == value.lower() and value.replace("_", "").isalpha()


@pytest.mark.parametrize(
    ("position", "label", "score", "bad"), [(i, *row) for i, row in enumerate(ART_10)]
)
def test_button_order_labels_and_scores_follow_art_10(
    position: int, label: str, score: int, bad: bool
) -> None:
    level = BUTTON_ORDER[position]
    assert level.label == label
    assert level.score == score
    assert level.is_bad is bad


def test_button_order_holds_every_level_once() -> None:
    assert len(BUTTON_ORDER) == 5
    assert set(BUTTON_ORDER) == set(Level)
    assert [level.label for level in BUTTON_ORDER] == [label for label, _, _ in ART_10]


def test_scores_strictly_decrease_left_to_right() -> None:
    scores = [level.score for level in BUTTON_ORDER]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == 5


@pytest.mark.parametrize("level", list(Level), ids=lambda lv: lv.value)
def test_satisfaction_and_gbt_codes_map_explicitly(level: Level) -> None:
    assert level.satisfaction == SATISFACTION[level.label]
    assert level.gbt_code == GBT_39046[level.label]


@pytest.mark.parametrize("level", list(Level), ids=lambda lv: lv.value)
def test_satisfaction_and_gbt_codes_run_in_opposite_directions(level: Level) -> None:
    assert level.satisfaction + level.gbt_code == 6


def test_codes_in_button_order() -> None:
    assert [level.satisfaction for level in BUTTON_ORDER] == [5, 4, 3, 2, 1]
    assert [level.gbt_code for level in BUTTON_ORDER] == [1, 2, 3, 4, 5]


def test_only_dissatisfied_and_very_dissatisfied_are_bad() -> None:
    assert {level for level in Level if level.is_bad} == {
        Level.DISSATISFIED,
        Level.VERY_DISSATISFIED,
    }
    assert {level.label for level in Level if level.is_bad} == {"不满意", "非常不满意"}


def test_bad_levels_score_below_every_good_level() -> None:
    good = [level.score for level in Level if not level.is_bad]
    bad = [level.score for level in Level if level.is_bad]
    assert max(bad) < min(good)


@pytest.mark.parametrize("level", list(Level), ids=lambda lv: lv.value)
def test_from_value_round_trips(level: Level) -> None:
    assert Level.from_value(level.value) is level


@pytest.mark.parametrize(
    "bad_value", ["", "excellent", "VERY_SATISFIED", "非常满意", "very_satisfied ", "5"]
)
def test_from_value_error_names_the_value_and_every_valid_one(bad_value: str) -> None:
    with pytest.raises(ValueError) as info:
        Level.from_value(bad_value)
    message = str(info.value)
    assert repr(bad_value) in message
    for level in Level:
        assert level.value in message
