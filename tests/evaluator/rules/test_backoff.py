"""Specification of the one backoff rule every retrying link uses."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.rules.backoff import Backoff


def waits(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next() for _ in range(n)]


def test_without_jitter_the_waits_double_from_first_up_to_cap() -> None:
    backoff = Backoff(1.0, cap=30.0, jitter=0.0)
    assert waits(backoff, 8) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_factor_sets_the_growth() -> None:
    backoff = Backoff(0.5, factor=3.0, cap=100.0, jitter=0.0)
    assert waits(backoff, 4) == [0.5, 1.5, 4.5, 13.5]


def test_factor_one_is_a_flat_wait() -> None:
    assert waits(Backoff(2.0, factor=1.0, cap=60.0, jitter=0.0), 5) == [2.0] * 5


def test_reset_starts_again_from_first() -> None:
    backoff = Backoff(1.0, cap=30.0, jitter=0.0)
    waits(backoff, 6)
    assert backoff.current == 30.0
    backoff.reset()
    assert backoff.current == 0.0
    assert waits(backoff, 3) == [1.0, 2.0, 4.0]


def test_jitter_only_shortens_by_at_most_its_fraction() -> None:
    # rand 0 → the full wait; rand just below 1 → just above (1 - jitter) of it.
    assert Backoff(4.0, cap=10.0, jitter=0.25, rand=lambda: 0.0).next() == 4.0
    assert Backoff(4.0, cap=10.0, jitter=0.25, rand=lambda: 0.5).next() == 3.5
    short = Backoff(4.0, cap=10.0, jitter=0.25, rand=lambda: 0.999999).next()
    assert 3.0 < short < 3.0001


def test_jitter_does_not_change_the_growth() -> None:
    values = itertools.cycle([0.9, 0.1, 0.6])
    backoff = Backoff(1.0, cap=8.0, jitter=0.5, rand=lambda: next(values))
    got = waits(backoff, 6)
    assert got == pytest.approx([0.55, 1.9, 2.8, 4.4, 7.6, 5.6])
    assert backoff.current == 8.0


def test_a_rand_outside_0_1_cannot_make_a_wait_negative_or_longer() -> None:
    assert Backoff(2.0, cap=4.0, jitter=0.5, rand=lambda: 7.0).next() == 1.0
    assert Backoff(2.0, cap=4.0, jitter=0.5, rand=lambda: -3.0).next() == 2.0


def test_a_cap_below_first_is_first() -> None:
    backoff = Backoff(5.0, cap=1.0, jitter=0.0)
    assert backoff.cap == 5.0
    assert waits(backoff, 3) == [5.0, 5.0, 5.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first": 0.0},
        {"first": -1.0},
        {"first": float("nan")},
        {"factor": 0.5},
        {"factor": float("nan")},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"jitter": float("nan")},
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    settings = {"first": 1.0, "cap": 10.0} | kwargs
    first = settings.pop("first")
    with pytest.raises(ValueError):
        Backoff(first, **settings)


def test_the_default_random_source_varies_the_waits() -> None:
    got = {Backoff(1.0, cap=1.0).next() for _ in range(50)}
    assert len(got) > 40
    assert all(0.75 <= w <= 1.0 for w in got)


@given(
    first=st.floats(0.001, 100),
    factor=st.floats(1, 10),
    cap=st.floats(0.001, 1000),
    jitter=st.floats(0, 0.99),
    rands=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=30),
)
def test_every_wait_lies_between_the_jittered_and_the_full_base(
    first: float, factor: float, cap: float, jitter: float, rands: list[float]
) -> None:
    feed = iter(rands)
    backoff = Backoff(first, factor=factor, cap=cap, jitter=jitter, rand=lambda: next(feed))
    base = 0.0
    for _ in rands:
        wait = backoff.next()
        base = first if base == 0 else min(base * factor, max(cap, first))
        assert backoff.current == base
        assert base * (1 - jitter) * (1 - 1e-12) <= wait <= base
        assert 0 < wait <= max(cap, first)
