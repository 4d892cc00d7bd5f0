"""The colours: level buttons green to red, and WCAG AA contrast for every text colour."""

from __future__ import annotations

import pytest

from kiosk.draw_messages import SAVER_BACKGROUND, SAVER_INK, SAVER_MUTED
from kiosk.palette import (
    ACCENT,
    BACKGROUND,
    BUTTON_COLORS,
    HEADER,
    HEADER_COUNTDOWN,
    HEADER_NOTICE,
    HEADER_PAUSED,
    INK,
    MIN_CONTRAST,
    MUTED,
    PANEL,
    SUBMIT_DISABLED,
    SUBMIT_DISABLED_INK,
    SUBMIT_ENABLED,
    WHITE,
    contrast_ratio,
    relative_luminance,
)


def test_good_buttons_green_bad_buttons_warm() -> None:
    for level, (r, g, _b) in BUTTON_COLORS.items():
        if level.is_bad:
            assert r > g
        else:
            assert g > r


@pytest.mark.parametrize(
    ("a", "b", "ratio"),
    [
        ((0, 0, 0), (255, 255, 255), 21.0),  # the maximum
        ((255, 255, 255), (255, 255, 255), 1.0),  # the minimum
        ((119, 119, 119), (255, 255, 255), 4.48),  # #777 on white: just fails AA
        ((118, 118, 118), (255, 255, 255), 4.54),  # #767676 on white: the lightest grey passing
        ((0, 0, 255), (255, 255, 255), 8.59),  # pure blue on white
        ((255, 0, 0), (255, 255, 255), 4.0),  # pure red on white
        ((0, 128, 0), (255, 255, 255), 5.14),  # HTML green on white
    ],
)
def test_contrast_ratio_matches_known_wcag_pairs(
    a: tuple[int, int, int], b: tuple[int, int, int], ratio: float
) -> None:
    assert contrast_ratio(a, b) == pytest.approx(ratio, abs=0.01)
    assert contrast_ratio(b, a) == contrast_ratio(a, b)  # order does not matter


def test_relative_luminance_ends() -> None:
    assert relative_luminance((0, 0, 0)) == 0.0
    assert relative_luminance((255, 255, 255)) == pytest.approx(1.0)


PAIRS = {
    "ink on background": (INK, BACKGROUND),
    "muted on background": (MUTED, BACKGROUND),
    "muted on a panel": (MUTED, PANEL),
    "accent on background": (ACCENT, BACKGROUND),
    "title on the header": (WHITE, HEADER),
    "title on the paused header": (WHITE, HEADER_PAUSED),
    "countdown on the header": (HEADER_COUNTDOWN, HEADER),
    "countdown on the paused header": (HEADER_COUNTDOWN, HEADER_PAUSED),
    "notice on background": (HEADER_NOTICE, BACKGROUND),
    "selected chip": (WHITE, ACCENT),
    "提交": (WHITE, SUBMIT_ENABLED),
    "disabled 提交 and phrases": (SUBMIT_DISABLED_INK, SUBMIT_DISABLED),
    "screensaver label": (SAVER_INK, SAVER_BACKGROUND),
    "screensaver hint": (SAVER_MUTED, SAVER_BACKGROUND),
    **{f"label on {level.name}": (WHITE, colour) for level, colour in BUTTON_COLORS.items()},
}


@pytest.mark.parametrize(("fg", "bg"), PAIRS.values(), ids=PAIRS.keys())
def test_every_text_colour_meets_wcag_aa_on_its_background(
    fg: tuple[int, int, int], bg: tuple[int, int, int]
) -> None:
    assert contrast_ratio(fg, bg) >= MIN_CONTRAST
