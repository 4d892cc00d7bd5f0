"""Drawing primitives on a plain surface (no window needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pygame
import pytest

from kiosk.fonts import find_cjk_font
from kiosk.painter import Painter
from kiosk.palette import BACKGROUND, INK, OFFLINE_DOT, ONLINE_DOT


@pytest.fixture
def painter() -> Iterator[Painter]:
    pygame.font.init()
    surface = pygame.Surface((800, 480))
    surface.fill(BACKGROUND)
    yield Painter(surface, find_cjk_font(None))


def test_hanzi_are_drawn_as_glyphs_not_boxes(painter: Painter) -> None:
    cjk = painter.font(30)
    latin = pygame.font.Font(None, 30)

    def pixels(font: pygame.font.Font, text: str) -> bytes:
        surface = font.render(text, False, (255, 255, 255), (0, 0, 0))
        return bytes(pygame.image.tobytes(surface, "RGB"))

    assert pixels(cjk, "满意") != pixels(latin, "满意")
    assert pixels(cjk, "满意") != pixels(cjk, "\uffff\uffff")  # not the missing-glyph box
    assert pixels(cjk, "满") != pixels(cjk, "意")


def test_text_stays_inside_its_width_and_reports_where_it_went(painter: Painter) -> None:
    rect = painter.text(
        "在线预约办理后到实体大厅重复取号排队" * 3, 24, INK, max_width=200, topleft=(10, 10)
    )
    assert rect.left == 10 and 0 < rect.width <= 200
    inked = [
        x
        for x in range(0, 800)
        for y in range(rect.top, rect.bottom)
        if tuple(painter.surface.get_at((x, y)))[:3] != BACKGROUND
    ]
    assert inked and min(inked) >= 10 and max(inked) < 210
    assert painter.text("满意", 24, INK, max_width=0, topleft=(0, 0)).width == 0


@pytest.mark.parametrize(("online", "colour"), [(True, ONLINE_DOT), (False, OFFLINE_DOT)])
def test_the_online_dot_is_filled_only_while_online(
    painter: Painter, online: bool, colour: tuple[int, int, int]
) -> None:
    painter.online_dot(online)
    width, height = painter.size
    centre = (width - painter.px(7), height - painter.px(7))
    ring = (centre[0] - painter.px(4) + 1, centre[1])
    assert tuple(painter.surface.get_at(ring))[:3] == colour
    centre_colour = tuple(painter.surface.get_at(centre))[:3]
    assert centre_colour == (ONLINE_DOT if online else BACKGROUND)


def test_sizes_scale_with_the_surface() -> None:
    pygame.font.init()
    big = Painter(pygame.Surface((1280, 800)), find_cjk_font(None))
    assert big.scale == 1280 / 800 and big.px(10) == 16
    tall = Painter(pygame.Surface((480, 800)), find_cjk_font(None))
    assert tall.scale == 480 / 800 and tall.px(1) == 1  # never below one pixel
