"""The screens without targets (谢谢, idle, signed out, paused, notice), real pixels."""

from __future__ import annotations

import pytest

from kiosk.palette import HEADER, HEADER_NOTICE, HEADER_PAUSED, THANKS_GREEN
from kiosk.screen import DRAW, Screen
from kiosk.view import SCREENS, ScreenView

MESSAGE_SCREENS = [s for s in SCREENS if s not in ("presenting", "reasons")]


def test_every_screen_has_a_drawing() -> None:
    assert set(DRAW) == set(SCREENS)


@pytest.mark.parametrize("name", MESSAGE_SCREENS)
def test_every_other_screen_renders_without_targets(screen: Screen, name: str) -> None:
    view = ScreenView(
        name,
        window="综合受理区第十二号窗口（不动产登记与税务联办）",
        clerk_name="陈晓明",
        clerk_id="A1023",
        message="很长的提示" * 40,
        seconds_left=5,
        online=False,
    )
    screen.render(view)
    assert screen.layout.targets == []
    assert screen.hit_test((400, 240)) is None


@pytest.mark.parametrize(
    ("name", "pixel", "colour"),
    [
        ("idle", (4, 4), HEADER),
        ("signed_out", (4, 4), HEADER_PAUSED),
        ("paused", (4, 4), HEADER_PAUSED),
        ("notice", (4, 4), HEADER_NOTICE),
        ("thanks", (400, int(480 * 0.34) + 40), THANKS_GREEN),
    ],
)
def test_each_message_screen_shows_its_colour(
    screen: Screen, name: str, pixel: tuple[int, int], colour: tuple[int, int, int]
) -> None:
    screen.render(ScreenView(name, window="1号窗口"))
    assert tuple(screen.surface.get_at(pixel))[:3] == colour
