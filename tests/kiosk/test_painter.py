"""Drawing primitives on a plain surface (no window needed)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest

from kiosk.fonts import find_cjk_font
from kiosk.painter import Painter
from kiosk.palette import BACKGROUND, INK, OFFLINE_DOT, ONLINE_DOT
from kiosk.screen import Screen


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


# -- bold: a real bold face or the regular one, never pygame's fake bold -----------------------

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
REPO = Path(__file__).resolve().parents[2]


def _drawn(painter: Painter, text: str, bold: bool) -> bytes:
    painter.surface.fill(BACKGROUND)
    painter.text(text, 40, INK, bold=bold, max_width=800, topleft=(10, 10))
    return bytes(pygame.image.tobytes(painter.surface, "RGB"))


def _rendered(path: Path, text: str, size: int = 40) -> bytes:
    surface = pygame.font.Font(str(path), size).render(text, True, INK, BACKGROUND)
    return bytes(pygame.image.tobytes(surface, "RGB"))


def test_bold_text_comes_from_the_bold_face_file() -> None:
    pygame.font.init()
    painter = Painter(pygame.Surface((800, 480)), WQY, bold_path=DEJAVU_BOLD)
    assert painter.font_file(bold=True) == DEJAVU_BOLD and painter.font_file() == WQY
    bold = painter.font(40, bold=True).render("Bold", True, INK, BACKGROUND)
    assert bytes(pygame.image.tobytes(bold, "RGB")) == _rendered(DEJAVU_BOLD, "Bold")
    assert _rendered(DEJAVU_BOLD, "Bold") != _rendered(WQY, "Bold")  # the check can fail


def test_a_configured_bold_face_draws_bold_text_as_that_file_does() -> None:
    """The regular wqy file configured as the bold face: bold text is exactly that file's
    rendering, not pygame's smeared fake bold of it."""
    screen = Screen(driver="dummy", font_bold=WQY)
    try:
        assert screen.bold_path == WQY
        bold = screen.font(40, bold=True).render("满意评价", True, INK, BACKGROUND)
        assert bytes(pygame.image.tobytes(bold, "RGB")) == _rendered(WQY, "满意评价")
        fake = pygame.font.Font(str(WQY), 40)
        fake.set_bold(True)  # what the pad used to draw: must differ, or the test proves nothing
        smeared = fake.render("满意评价", True, INK, BACKGROUND)
        assert bytes(pygame.image.tobytes(smeared, "RGB")) != _rendered(WQY, "满意评价")
    finally:
        screen.close()


def test_without_a_bold_face_bold_is_pixel_identical_to_regular(painter: Painter) -> None:
    assert painter.bold_path is None
    assert _drawn(painter, "欢迎办理 A1023", bold=True) == _drawn(painter, "欢迎办理 A1023", False)


def test_no_fake_bold_anywhere() -> None:
    """No ``set_bold`` call in the pad's code (it smears hanzi into blots)."""
    calls = []
    for path in [*REPO.glob("kiosk/**/*.py"), *REPO.glob("evaluator/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("set_bold", "bold"):
                calls.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert calls == []
