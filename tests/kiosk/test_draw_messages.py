"""The screens without targets (谢谢, idle, signed out, paused, screensaver), real pixels."""

from __future__ import annotations

import pygame
import pytest

from kiosk.palette import HEADER, HEADER_PAUSED, THANKS_GREEN
from kiosk.screen import DRAW, Screen
from kiosk.view import SCREENS, ScreenView

#: Screens with targets: the rating screens, the technician's menu (tests/kiosk/test_draw_tech.py).
TARGET_SCREENS = ("presenting", "reasons", "tech_pin", "tech_menu")
MESSAGE_SCREENS = [s for s in SCREENS if s not in TARGET_SCREENS]


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
        ("thanks", (400, int(480 * 0.34) + 40), THANKS_GREEN),
    ],
)
def test_each_message_screen_shows_its_colour(
    screen: Screen, name: str, pixel: tuple[int, int], colour: tuple[int, int, int]
) -> None:
    screen.render(ScreenView(name, window="1号窗口"))
    assert tuple(screen.surface.get_at(pixel))[:3] == colour


# -- the screensaver (issue 6: idle screen) ------------------------------------------------------


@pytest.mark.parametrize("size", [(800, 480), (1280, 800), (480, 800)], ids=str)
def test_the_screensaver_is_dark_and_its_label_drifts_inside_the_screen(
    size: tuple[int, int],
) -> None:
    """Few lit pixels (low burn), none of them bright, and the label at a new place each step,
    always whole on screen; no targets (a touch only wakes the pad)."""
    screen = Screen(driver="dummy", width=size[0], height=size[1])
    try:
        whole = screen.surface.get_rect()
        places = []
        for step in range(40):
            screen.render(
                ScreenView("screensaver", window="综合受理区第十二号窗口", saver_step=step)
            )
            block = screen.layout.boxes["saver"]
            assert whole.contains(block) and screen.layout.targets == []
            places.append(block.topleft)
        assert len(set(places)) == len(places)  # never the same place twice in 40 minutes
        xs, ys = {x for x, _ in places}, {y for _, y in places}
        assert max(xs) - min(xs) > whole.width // 3 and max(ys) - min(ys) > whole.height // 3
        image = pygame.image.tobytes(screen.surface, "RGB")
        pixels = [image[i : i + 3] for i in range(0, len(image), 3)]
        lit = [p for p in pixels if max(p) > 0]
        assert len(lit) / len(pixels) < 0.03
        block = screen.layout.boxes["saver"]
        inside = {tuple(screen.surface.get_at(xy))[:3] for xy in _points(block)}
        assert any(max(c) >= 100 for c in inside)  # the label is drawn, readable
        online_dot = pygame.Rect(whole.width - 20, whole.height - 20, 20, 20)
        bright = [
            xy for xy in _points(whole) if not online_dot.collidepoint(xy)
            and max(screen.surface.get_at(xy)[:3]) > 160
        ]  # fmt: skip
        assert bright == []
    finally:
        screen.close()


def _points(rect: pygame.Rect) -> list[tuple[int, int]]:
    return [
        (x, y) for x in range(rect.left, rect.right, 2) for y in range(rect.top, rect.bottom, 2)
    ]


def test_the_screensaver_without_a_window_label_says_welcome(screen: Screen) -> None:
    screen.render(ScreenView("screensaver"))
    assert screen.layout.boxes["saver"].width > 0
    assert tuple(screen.surface.get_at((0, 0)))[:3] == (0, 0, 0)


def test_the_screensaver_lights_nothing_in_a_fixed_place(screen: Screen) -> None:
    """The online dot is drawn on every other screen, never on the screensaver (burn-in)."""
    lit_corner = []
    for online in (True, False):
        screen.render(ScreenView("screensaver", online=online, saver_step=0))
        w, h = screen.surface.get_size()
        corner = [(x, y) for x in range(w - 30, w) for y in range(h - 30, h)]
        lit_corner.append(max(max(screen.surface.get_at(xy)[:3]) for xy in corner))
    assert lit_corner == [0, 0]
    screen.render(ScreenView("idle", online=True))
    w, h = screen.surface.get_size()
    assert any(
        screen.surface.get_at((x, y))[:3] != screen.surface.get_at((0, 0))[:3]
        for x in range(w - 30, w)
        for y in range(h - 30, h)
    )  # the dot is there on the idle screen
