"""The press filter: presses aimed at the previous screen and repeated presses do not count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.rules.pressfilter import PressFilter


def test_a_press_just_after_a_screen_change_is_ignored_then_counts() -> None:
    f = PressFilter(guard=0.3, repeat=0.15)
    f.screen("presenting", 10.0)
    assert not f.accept("4", 10.1)  # the second tap of a double tap on the previous screen
    assert not f.accept("2", 10.29)
    assert f.accept("2", 10.3)


def test_the_same_screen_again_does_not_restart_the_guard() -> None:
    f = PressFilter(guard=0.3)
    f.screen("reasons", 0.0)
    f.screen("reasons", 5.0)  # a chip toggled: same screen
    assert f.accept("chip-213", 5.01)


def test_a_repeat_of_the_same_target_within_repeat_is_one_press() -> None:
    f = PressFilter(guard=0.0, repeat=0.15)
    f.screen("reasons", 0.0)
    assert f.accept("chip-213", 1.0)
    assert not f.accept("chip-213", 1.05)  # bounce / double tap would unselect it again
    assert not f.accept("chip-213", 1.19)  # still bouncing: measured from the last edge
    assert f.accept("chip-214", 1.2)  # another chip is another press
    assert f.accept("chip-213", 1.5)


def test_negative_times_are_refused() -> None:
    with pytest.raises(ValueError):
        PressFilter(guard=-1)


@given(st.lists(st.floats(min_value=0, max_value=0.299), min_size=1, max_size=50))
def test_nothing_counts_inside_the_guard_whatever_the_burst(offsets: list[float]) -> None:
    f = PressFilter(guard=0.3, repeat=0.0)
    f.screen("presenting", 100.0)
    assert not any(f.accept(i % 5, 100.0 + off) for i, off in enumerate(sorted(offsets)))
    assert f.ignored == len(offsets)
