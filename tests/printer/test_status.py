"""printer.status: DLE EOT answers to a state; no answer is "unknown", never "paper_out"."""

from __future__ import annotations

import pytest

from printer.status import (
    COVER_OPEN,
    HEALTHY,
    NO_ANSWER,
    OFFLINE,
    OK,
    PAPER_OUT,
    UNKNOWN,
    reading,
    valid,
)


@pytest.mark.parametrize(
    ("replies", "state"),
    [
        (HEALTHY, OK),
        ({1: 0x1A, 2: 0x16, 4: 0x12}, COVER_OPEN),  # offline, cause: cover open
        ({1: 0x1A, 2: 0x32, 4: 0x72}, PAPER_OUT),  # offline, paper end stop, roll sensor
        ({1: 0x12, 2: 0x12, 4: 0x72}, PAPER_OUT),  # roll sensor alone
        ({1: 0x1A, 2: 0x52, 4: 0x12}, OFFLINE),  # error occurred
        ({1: 0x1A, 2: 0x12, 4: 0x12}, OFFLINE),  # offline, no cause given
        ({1: None, 2: None, 4: None}, UNKNOWN),  # no back channel
        ({}, UNKNOWN),
        ({1: 0x00, 2: 0xFF, 4: 0x41}, UNKNOWN),  # garbage: fixed bits wrong
        ({1: 0x12}, OK),  # only the printer status: online
    ],
)
def test_answers_to_states(replies: dict[int, int | None], state: str) -> None:
    assert reading(replies).state == state


def test_no_answer_is_unknown_not_out_of_paper() -> None:
    # python-escpos's paper_status() returns 0, "no paper", here.
    got = reading({1: None, 2: None, 4: None})
    assert got.state == UNKNOWN != PAPER_OUT
    assert got.detail == NO_ANSWER


def test_paper_near_end_is_still_ok_but_said() -> None:
    got = reading({1: 0x12, 2: 0x12, 4: 0x1E})
    assert got.state == OK and "near end" in got.detail


def test_fixed_bits() -> None:
    assert valid(0x12) and valid(0x7E)
    assert not valid(0x13) and not valid(0x92) and not valid(0x02) and not valid(None)
