"""The level buttons' colours."""

from __future__ import annotations

from kiosk.palette import BUTTON_COLORS


def test_good_buttons_green_bad_buttons_warm() -> None:
    for level, (r, g, _b) in BUTTON_COLORS.items():
        if level.is_bad:
            assert r > g
        else:
            assert g > r
