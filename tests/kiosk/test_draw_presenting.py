"""The rating screen with real pixels on SDL's dummy driver."""

from __future__ import annotations

from pathlib import Path

import pygame

from evaluator.rules.levels import BUTTON_ORDER
from kiosk import texts
from kiosk.palette import ACCENT, BACKGROUND, BUTTON_COLORS
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
    """A matter, serial and clerk name too long for their panels: every text stays in its box,
    and on the real pixels nothing but the plain background lies outside the header, the
    panels and the buttons."""
    long_name = "建设工程规划许可证核发（建筑类）含附属设施及地下空间开发利用的联合审批" * 3
    view = presenting(cases=((long_name, SERIAL * 2 + "A-0123456789"),), clerk_name="欧阳" * 16)
    screen.render(view)
    for drawn in screen.layout.texts:
        assert drawn.owner.contains(drawn.ink), f"{drawn.text!r} leaves {drawn.owner}"
    masked = screen.surface.copy()
    for rect in (
        *(screen.layout.boxes[name] for name in ("case", "clerk", "header")),
        *(t.rect for t in screen.layout.targets),
        pygame.Rect(780, 460, 20, 20),  # the online dot
    ):
        masked.fill(BACKGROUND, rect)
    raw = pygame.image.tobytes(masked, "RGB")
    outside = {raw[i : i + 3] for i in range(0, len(raw), 3)}
    assert outside == {bytes(BACKGROUND)}, "text drawn outside its box"
    case = screen.layout.boxes["case"]
    inside = pygame.image.tobytes(screen.surface.subsurface(case), "RGB")
    assert len({inside[i : i + 3] for i in range(0, len(inside), 3)}) > 2, "no text in the case"


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


def test_a_long_batch_pages_by_key_and_a_level_key_is_still_a_press(screen: Screen) -> None:
    """PageDown / PageUp turn the case pages as they turn the reasons'; keys 1–5 still give
    the level (whether it rates is the app's: it holds the press back while a case is
    unseen)."""
    cases = tuple((MATTER, f"{SERIAL[:-2]}{i:02d}") for i in range(30))
    screen.render(presenting(cases=cases))
    assert screen.pages > 1 and screen.page == 0
    unseen = len(screen.cases_unseen)
    down = pygame.event.Event(pygame.KEYDOWN, key=pygame.K_PAGEDOWN, scancode=0, mod=0)
    assert screen.translate(down) is None
    assert screen.page == 1 and len(screen.cases_unseen) < unseen
    up = pygame.event.Event(pygame.KEYDOWN, key=pygame.K_PAGEUP, scancode=0, mod=0)
    assert screen.translate(up) is None and screen.page == 0
    one = pygame.event.Event(pygame.KEYDOWN, key=pygame.K_1, scancode=30, mod=0)
    assert screen.translate(one) == PressLevel(BUTTON_ORDER[0])
    assert screen.page == 0, "a key press never turns the page by itself"
