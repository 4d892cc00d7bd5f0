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
    assert tall.portrait and tall.scale == 1.0  # the portrait design is 480×800
    assert Painter(pygame.Surface((600, 1024)), find_cjk_font(None)).scale == 600 / 480
    tiny = Painter(pygame.Surface((80, 48)), find_cjk_font(None))
    assert tiny.scale == 0.1 and tiny.px(1) == 1  # never below one pixel


@pytest.mark.parametrize(("dpi", "pixels"), [(133, 79), (149, 88), (170, 101), (96, 57)])
def test_targets_are_15_mm_at_the_panel_dpi(dpi: int, pixels: int) -> None:
    pygame.font.init()
    painter = Painter(pygame.Surface((800, 480)), find_cjk_font(None), dpi=dpi)
    assert painter.min_target == pixels
    assert painter.tap(10) == pixels and painter.tap(200) == 200


# -- bold: a real bold face or the regular one, never pygame's fake bold -----------------------

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
REPO = Path(__file__).resolve().parents[2]
WHITE_INK = (255, 255, 255)


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
    """No ``set_bold`` call, no ``font.bold = …`` in the pad's code (it smears hanzi)."""
    calls = []
    for path in [*REPO.glob("kiosk/**/*.py"), *REPO.glob("evaluator/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and (
                node.attr == "set_bold" or (node.attr == "bold" and isinstance(node.ctx, ast.Store))
            ):
                calls.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert calls == []


# -- texts: recorded, fixed ones never shortened -----------------------------------------------


def test_every_text_is_recorded_with_its_box(painter: Painter) -> None:
    panel = pygame.Rect(100, 100, 300, 100)
    with painter.inside(panel):
        painter.text("窗口人员", 24, INK, fixed=True, max_width=280, topleft=(110, 110))
    painter.text("陈晓明", 24, INK, max_width=280, topleft=(110, 300))
    first, second = painter.layout.texts
    assert (first.text, first.owner, first.fixed) == ("窗口人员", panel, True)
    assert second.owner == painter.surface.get_rect() and not second.fixed
    assert first.rect.contains(first.ink) and first.ink.width > 0
    assert first.color == INK


def test_a_fixed_text_shrinks_where_data_is_shortened(painter: Painter) -> None:
    text = "请选择不满意的原因（可多选）"
    width = painter.font(32).size(text)[0] * 8 // 10  # 80 %: too narrow at 32 px
    painter.text(text, 32, INK, max_width=width, topleft=(0, 0))
    painter.text(text, 32, INK, fixed=True, max_width=width, topleft=(0, 100))
    data, fixed = painter.layout.texts
    assert data.shortened and data.shown.endswith("…")
    assert not fixed.shortened and fixed.size < 32 and fixed.rect.width <= width


def test_a_block_wraps_words_before_it_shrinks_far(painter: Painter) -> None:
    box = pygame.Rect(0, 0, 150, 80)
    painter.block("Very dissatisfied", 26, WHITE_INK, box, bold=True)
    lines = [d.shown for d in painter.layout.texts]
    assert lines == ["Very", "dissatisfied"]
    assert all(box.contains(d.rect) for d in painter.layout.texts)
    assert all(not d.shortened for d in painter.layout.texts)


def test_a_block_that_cannot_fit_is_recorded_as_shortened(painter: Painter) -> None:
    painter.block("在线预约办理后到实体大厅重复取号排队" * 4, 30, INK, pygame.Rect(0, 0, 120, 40))
    assert any(d.shortened for d in painter.layout.texts)  # the tests then fail the layout
