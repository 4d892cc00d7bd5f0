"""The rating screen with real pixels on SDL's dummy driver."""

from __future__ import annotations

from pathlib import Path

import pygame

from evaluator.rules.levels import BUTTON_ORDER
from kiosk import texts
from kiosk.palette import ACCENT, BUTTON_COLORS
from kiosk.screen import Screen
from kiosk.view import PressLevel
from tests.kiosk.screen_views import MATTER, SERIAL, level_targets, presenting

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def test_presenting_draws_five_buttons_left_to_right_in_their_colours(screen: Screen) -> None:
    screen.render(presenting())
    targets = level_targets(screen)
    assert [level for _, level in targets] == list(BUTTON_ORDER)
    lefts = [rect.left for rect, _ in targets]
    assert lefts == sorted(lefts)
    for rect, level in targets:
        assert tuple(screen.surface.get_at(rect.center))[:3] == BUTTON_COLORS[level]
        assert rect.width >= 120 and rect.height >= 120, "buttons must be big enough to tap"
    for rect, _ in targets:
        assert screen.surface.get_rect().contains(rect)


def test_hit_test_on_each_button_centre_gives_its_level(screen: Screen) -> None:
    screen.render(presenting())
    for rect, level in level_targets(screen):
        assert screen.hit_test(rect.center) == PressLevel(level)
    assert screen.hit_test((400, 10)) is None  # the title is not a button


def test_the_button_labels_have_ink(screen: Screen) -> None:
    screen.render(presenting())
    rect, level = level_targets(screen)[1]
    label_band = pygame.Rect(
        rect.left, rect.top + rect.height * 2 // 3, rect.width, rect.height // 4
    )
    colours = {
        tuple(screen.surface.get_at((x, y)))[:3]
        for x in range(label_band.left, label_band.right)
        for y in range(label_band.top, label_band.bottom)
    }
    assert (255, 255, 255) in colours
    assert BUTTON_COLORS[level] in colours


def test_long_matter_name_stays_inside_its_box(screen: Screen) -> None:
    long_name = "建设工程规划许可证核发（建筑类）含附属设施及地下空间开发利用的联合审批" * 3
    screen.render(presenting(cases=((long_name, SERIAL * 3),), clerk_name="欧阳" * 10))
    box = screen.layout.boxes["case"]
    with_text = screen.surface.copy()
    screen.render(presenting(cases=(("", ""),), clerk_name="欧阳" * 10))
    assert screen.layout.boxes["case"] == box
    empty = screen.surface.copy()

    def outside(surface: pygame.Surface) -> bytes:
        masked = surface.copy()
        masked.fill((0, 0, 0), box)
        return bytes(pygame.image.tobytes(masked, "RGB"))

    assert outside(with_text) == outside(empty), "text drawn outside the case box"
    assert pygame.image.tobytes(with_text, "RGB") != pygame.image.tobytes(empty, "RGB")


def test_batch_shows_the_count(screen: Screen) -> None:
    cases = tuple((MATTER, f"4405002026112600{n:04d}") for n in range(12))
    screen.render(presenting(cases=cases))  # many more than fit: no error, nothing outside
    assert texts.BATCH_COUNT_FMT.format(count=12) == "共12件"
    assert "case" in screen.layout.boxes


def test_a_theme_or_a_notice_gets_the_accent_line(screen: Screen) -> None:
    screen.render(presenting())
    assert "extra" not in screen.layout.boxes
    plain_case = screen.layout.boxes["case"]
    screen.render(presenting(theme="开办餐饮店"))
    extra = screen.layout.boxes["extra"]
    assert screen.layout.boxes["case"].top >= extra.bottom > plain_case.top
    band = {
        tuple(screen.surface.get_at((x, y)))[:3]
        for x in range(extra.left, extra.right)
        for y in range(extra.top, extra.bottom)
    }
    assert ACCENT in band


def test_other_resolution_scales() -> None:
    s = Screen(driver="dummy", width=1024, height=600, font_path=WQY)
    try:
        s.render(presenting())
        for rect, level in level_targets(s):
            assert tuple(s.surface.get_at(rect.center))[:3] == BUTTON_COLORS[level]
            assert s.surface.get_rect().contains(rect)
    finally:
        s.close()
