"""The SDL window, its driver, waiting for events and input translation (real pygame on the
dummy driver; tests/conftest.py sets it)."""

from __future__ import annotations

import time
from pathlib import Path

import pygame
import pytest

from evaluator.rules.errors import FontError
from evaluator.rules.levels import BUTTON_ORDER
from kiosk import screen as screen_module
from kiosk.screen import Screen, choose_driver
from kiosk.view import Backspace, PressLevel, ScreenView, ToggleReason, TypeText
from tests.kiosk.screen_views import key, level_targets, presenting, reasons_view, tap_event


@pytest.mark.parametrize(
    "keys",
    [
        (pygame.K_1, pygame.K_2, pygame.K_3, pygame.K_4, pygame.K_5),
        (pygame.K_KP1, pygame.K_KP2, pygame.K_KP3, pygame.K_KP4, pygame.K_KP5),
    ],
)
def test_keys_one_to_five_map_left_to_right(screen: Screen, keys: tuple[int, ...]) -> None:
    screen.render(presenting())
    for index, code in enumerate(keys):
        assert screen.translate(key(code)) == PressLevel(BUTTON_ORDER[index])
    assert screen.translate(key(pygame.K_6)) is None


def test_keypad_with_numlock_off_maps_by_scancode(screen: Screen) -> None:
    screen.render(presenting())
    assert screen.translate(key(pygame.K_END, scancode=89)) == PressLevel(BUTTON_ORDER[0])
    assert screen.translate(key(pygame.K_KP_5, scancode=93)) == PressLevel(BUTTON_ORDER[4])


def test_digit_keys_do_nothing_off_the_presenting_screen(screen: Screen) -> None:
    for view in (
        ScreenView("idle", window="1号窗口"),
        ScreenView("thanks"),
        reasons_view(),
    ):
        screen.render(view)
        assert screen.translate(key(pygame.K_1)) is None


def test_nothing_is_translated_before_the_first_render(screen: Screen) -> None:
    assert screen.view is None
    assert screen.translate(key(pygame.K_1)) is None


def test_one_tap_is_one_action(screen: Screen) -> None:
    screen.render(presenting())
    rect, level = level_targets(screen)[3]
    # What SDL delivers for one tap on a touch screen: the finger and its mouse echo.
    finger = tap_event(screen, rect)
    pygame.event.post(finger)
    echo = tap_event(screen, rect, "mouse").pos
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=echo, button=1, touch=True))
    events = screen.wait(1.0)
    actions = [a for a in (screen.translate(e) for e in events) if a is not None]
    assert actions == [PressLevel(level)]


def test_touch_mouse_echo_is_ignored_but_a_real_click_works(screen: Screen) -> None:
    screen.render(presenting())
    rect, level = level_targets(screen)[0]
    pos = tap_event(screen, rect, "mouse").pos  # the button's centre on the (turned) display
    echo = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1, touch=True)
    click = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1, touch=False)
    wheel = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=4, touch=False)
    assert screen.translate(echo) is None
    assert screen.translate(click) == PressLevel(level)
    assert screen.translate(wheel) is None


def test_text_input_only_while_other_is_selected(screen: Screen) -> None:
    typed = pygame.event.Event(pygame.TEXTINPUT, text="排队")
    screen.render(reasons_view(other=False))
    assert "comment" not in screen.layout.boxes
    assert screen.translate(typed) is None
    assert screen.translate(key(pygame.K_BACKSPACE)) is None
    screen.render(reasons_view(other=True, comment="等候", can_submit=True))
    assert "comment" in screen.layout.boxes
    assert screen.translate(typed) == TypeText("排队")
    assert screen.translate(key(pygame.K_BACKSPACE)) == Backspace()
    screen.render(presenting())
    assert screen.translate(typed) is None


def test_the_layout_belongs_to_the_last_rendered_view(screen: Screen) -> None:
    screen.render(presenting())
    assert screen.layout.screen == "presenting" and len(level_targets(screen)) == 5
    screen.render(ScreenView("idle", window="1号窗口"))
    assert screen.layout.screen == "idle" and screen.layout.targets == []
    assert screen.view == ScreenView("idle", window="1号窗口")


def test_choose_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_driver("kmsdrm", {}) == "kmsdrm"
    assert choose_driver("auto", {"SDL_VIDEODRIVER": "x11"}) is None
    assert choose_driver("auto", {"DISPLAY": ":0"}) is None
    assert choose_driver("auto", {"WAYLAND_DISPLAY": "wayland-0"}) is None
    monkeypatch.setattr(screen_module.glob, "glob", lambda pattern: [])
    assert choose_driver("auto", {}) == "dummy"
    monkeypatch.setattr(screen_module.glob, "glob", lambda pattern: ["/dev/dri/card0"])
    assert choose_driver("auto", {}) == "kmsdrm"


def test_wait_blocks_until_timeout_and_wakes_on_post(screen: Screen) -> None:
    screen.render(ScreenView("idle"))
    pygame.event.clear()
    start = time.monotonic()
    assert screen.wait(0.3) == []
    assert time.monotonic() - start >= 0.25
    Screen.post_wake()
    start = time.monotonic()
    events = screen.wait(5.0)
    assert time.monotonic() - start < 1.0
    assert [e.type for e in events] == [screen_module.WAKE_EVENT]


def test_missing_font_fails_before_a_window_opens(tmp_path: Path) -> None:
    with pytest.raises(FontError):
        Screen(driver="dummy", font_path=tmp_path / "missing.ttc")


def test_save_png_writes_what_is_on_screen(screen: Screen, tmp_path: Path) -> None:
    screen.render(presenting())
    path = screen.save_png(tmp_path / "deep" / "shot.png")
    image = pygame.image.load(str(path))
    assert pygame.image.tobytes(image, "RGB") == pygame.image.tobytes(screen.surface, "RGB")


@pytest.mark.parametrize(("dpi", "side"), [(133, 79), (149, 88), (170, 101)])
def test_the_screen_sizes_targets_for_its_panel_dpi(dpi: int, side: int) -> None:
    s = Screen(driver="dummy", width=1024, height=600, dpi=dpi)
    try:
        assert s.min_target == side
        s.render(reasons_view())
        assert all(min(t.rect.size) >= side for t in s.layout.targets)
    finally:
        s.close()


def test_reveal_turns_to_the_page_of_a_target(screen: Screen) -> None:
    screen.render(reasons_view())
    assert screen.pages > 1 and screen.page == 0
    last = list(screen.layout.page_of)[-1]
    assert screen.layout.find(last) is None
    assert screen.reveal(last) and screen.layout.find(last) is not None
    assert screen.page == screen.layout.page_of[last]
    assert not screen.reveal(ToggleReason("no-such-code"))
    screen.restart_pages()
    screen.render(reasons_view())
    assert screen.page == 0  # as if the screen were new
