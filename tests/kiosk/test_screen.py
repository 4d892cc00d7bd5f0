"""The pad's screen with real pixels on SDL's dummy driver (tests/conftest.py sets it)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest

from evaluator.rules.errors import FontError
from evaluator.rules.levels import BUTTON_ORDER, Level
from kiosk import screen as screen_module
from kiosk import texts
from kiosk.screen import (
    BUTTON_COLORS,
    SUBMIT_DISABLED,
    SUBMIT_ENABLED,
    Screen,
    choose_driver,
    ellipsize,
    ellipsize_head,
    wrap_lines,
)
from kiosk.screenshots import SAMPLE_REASONS, render_all
from kiosk.view import (
    SCREENS,
    Back,
    Backspace,
    PressLevel,
    ReasonItem,
    ScreenView,
    Submit,
    ToggleAgency,
    ToggleReason,
    TypeText,
    reason_groups,
)

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
MATTER = "居民身份证换领"
SERIAL = "44050020261126000123"


@pytest.fixture
def screen() -> Iterator[Screen]:
    s = Screen(driver="dummy")
    pygame.event.clear()
    yield s
    s.close()


def presenting(**changes: object) -> ScreenView:
    fields: dict[str, object] = {
        "window": "1号窗口",
        "clerk_name": "陈晓明",
        "clerk_id": "A1023",
        "cases": ((MATTER, SERIAL),),
        "seconds_left": 60,
    }
    fields.update(changes)
    return ScreenView("presenting", **fields)  # type: ignore[arg-type]


def reasons_view(*, other: bool = False, can_submit: bool = False, comment: str = "") -> ScreenView:
    items = tuple(
        ReasonItem(r.code, r.text, r.target, selected=(r.target == "other" and other))
        for r in SAMPLE_REASONS
    )
    return ScreenView(
        "reasons",
        window="1号窗口",
        level=Level.DISSATISFIED,
        reasons=items,
        agencies=(("市公安局", False),),
        comment=comment,
        can_submit=can_submit,
        seconds_left=90,
    )


def level_targets(s: Screen) -> list[tuple[pygame.Rect, Level]]:
    return [(t.rect, t.action.level) for t in s.layout.targets if isinstance(t.action, PressLevel)]


def key(code: int, scancode: int = 0) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, key=code, mod=0, scancode=scancode, unicode="")


# --- presenting -------------------------------------------------------------------------------
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


def test_good_buttons_green_bad_buttons_warm() -> None:
    for level, (r, g, _b) in BUTTON_COLORS.items():
        if level.is_bad:
            assert r > g
        else:
            assert g > r


def test_hit_test_on_each_button_centre_gives_its_level(screen: Screen) -> None:
    screen.render(presenting())
    for rect, level in level_targets(screen):
        assert screen.hit_test(rect.center) == PressLevel(level)
    assert screen.hit_test((400, 10)) is None  # the title is not a button


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


def test_one_tap_is_one_action(screen: Screen) -> None:
    screen.render(presenting())
    rect, level = level_targets(screen)[3]
    width, height = screen.size
    # What SDL delivers for one tap on a touch screen: the finger and its mouse echo.
    pygame.event.post(
        pygame.event.Event(
            pygame.FINGERDOWN,
            x=rect.centerx / width,
            y=rect.centery / height,
            touch_id=1,
            finger_id=0,
            pressure=1.0,
            dx=0.0,
            dy=0.0,
        )
    )
    pygame.event.post(
        pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1, touch=True)
    )
    events = screen.wait(1.0)
    actions = [a for a in (screen.translate(e) for e in events) if a is not None]
    assert actions == [PressLevel(level)]


def test_touch_mouse_echo_is_ignored_but_a_real_click_works(screen: Screen) -> None:
    screen.render(presenting())
    rect, level = level_targets(screen)[0]
    echo = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1, touch=True)
    click = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1, touch=False)
    wheel = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=4, touch=False)
    assert screen.translate(echo) is None
    assert screen.translate(click) == PressLevel(level)
    assert screen.translate(wheel) is None


def test_hanzi_are_drawn_as_glyphs_not_boxes(screen: Screen) -> None:
    cjk = screen.font(30)
    latin = pygame.font.Font(None, 30)

    def pixels(font: pygame.font.Font, text: str) -> bytes:
        surface = font.render(text, False, (255, 255, 255), (0, 0, 0))
        return bytes(pygame.image.tobytes(surface, "RGB"))

    assert pixels(cjk, "满意") != pixels(latin, "满意")
    assert pixels(cjk, "满意") != pixels(cjk, "\uffff\uffff")  # not the missing-glyph box
    assert pixels(cjk, "满") != pixels(cjk, "意")
    # and the label on screen really has ink: white text pixels in the lower part of a button
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


# --- reasons ----------------------------------------------------------------------------------
def test_reason_chips_toggle_by_code(screen: Screen) -> None:
    screen.render(reasons_view())
    codes = [t.action.code for t in screen.layout.targets if isinstance(t.action, ToggleReason)]
    assert codes == [r.code for r in SAMPLE_REASONS]
    for t in screen.layout.targets:
        assert screen.layout.boxes["reasons"].contains(t.rect) or isinstance(
            t.action, Submit | Back
        )
        assert screen.hit_test(t.rect.center) == (t.action if t.enabled else None)
    agency = screen.layout.find(ToggleAgency("市公安局"))
    assert agency is not None


def test_reason_groups_follow_target_order() -> None:
    headings = [heading for heading, _ in reason_groups(SAMPLE_REASONS)]
    assert headings == [texts.GROUP_CLERK, texts.GROUP_MATTER, texts.GROUP_OTHER]
    only_matter = tuple(r for r in SAMPLE_REASONS if r.target == "matter")
    assert [h for h, _ in reason_groups(only_matter)] == [texts.GROUP_MATTER]


def test_submit_disabled_is_a_no_op(screen: Screen) -> None:
    screen.render(reasons_view(can_submit=False))
    target = screen.layout.find(Submit())
    assert target is not None and not target.enabled
    assert tuple(screen.surface.get_at(target.rect.midleft))[:3] != SUBMIT_ENABLED
    assert (
        tuple(screen.surface.get_at((target.rect.left + 6, target.rect.centery)))[:3]
        == SUBMIT_DISABLED
    )
    assert screen.hit_test(target.rect.center) is None
    assert screen.translate(key(pygame.K_RETURN)) is None


def test_submit_enabled(screen: Screen) -> None:
    screen.render(reasons_view(can_submit=True))
    target = screen.layout.find(Submit())
    assert target is not None and target.enabled
    assert (
        tuple(screen.surface.get_at((target.rect.left + 6, target.rect.centery)))[:3]
        == SUBMIT_ENABLED
    )
    assert screen.hit_test(target.rect.center) == Submit()
    assert screen.translate(key(pygame.K_RETURN)) == Submit()
    assert screen.translate(key(pygame.K_KP_ENTER)) == Submit()


def test_back_by_tap_and_escape(screen: Screen) -> None:
    screen.render(reasons_view())
    target = screen.layout.find(Back())
    assert target is not None
    assert screen.hit_test(target.rect.center) == Back()
    assert screen.translate(key(pygame.K_ESCAPE)) == Back()


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


def test_comment_field_shows_the_counter_and_keeps_long_text_inside(screen: Screen) -> None:
    screen.render(reasons_view(other=True, comment="", can_submit=False))
    box = screen.layout.boxes["comment"]
    empty = screen.surface.copy()
    screen.render(reasons_view(other=True, comment="字" * 150, can_submit=False))
    assert screen.layout.boxes["comment"] == box
    full = screen.surface.copy()
    for surface in (empty, full):
        surface.fill((0, 0, 0), box)
    assert pygame.image.tobytes(empty, "RGB") == pygame.image.tobytes(full, "RGB")
    assert texts.COMMENT_COUNTER_FMT.format(count=150, limit=150) == "150/150"


def test_many_reasons_never_overflow_into_the_buttons(screen: Screen) -> None:
    many = tuple(
        ReasonItem(str(n), f"非常非常长的不满意原因第{n}条需要缩短显示", "matter")
        for n in range(30)
    )
    view = ScreenView("reasons", level=Level.VERY_DISSATISFIED, reasons=many)
    screen.render(view)
    area = screen.layout.boxes["reasons"]
    for target in screen.layout.targets:
        if isinstance(target.action, ToggleReason):
            assert area.contains(target.rect)


# --- other screens ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [s for s in SCREENS if s not in ("presenting", "reasons")])
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


# --- text fitting -----------------------------------------------------------------------------
def test_ellipsize_and_wrap_fit_the_width(screen: Screen) -> None:
    font = screen.font(24)
    text = "在线预约办理后到实体大厅重复取号排队" * 4
    short = ellipsize(font, text, 200)
    assert short.endswith("…") and font.size(short)[0] <= 200
    assert ellipsize(font, "满意", 200) == "满意"
    head = ellipsize_head(font, text, 200)
    assert head.startswith("…") and head.endswith("排队") and font.size(head)[0] <= 200
    lines = wrap_lines(font, text, 300, 3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(font.size(line)[0] <= 300 for line in lines)
    assert wrap_lines(font, "短句", 300, 3) == ["短句"]


# --- driver, loop helpers ---------------------------------------------------------------------
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


def test_other_resolution_scales(tmp_path: Path) -> None:
    s = Screen(driver="dummy", width=1024, height=600, font_path=WQY)
    try:
        s.render(presenting())
        for rect, level in level_targets(s):
            assert tuple(s.surface.get_at(rect.center))[:3] == BUTTON_COLORS[level]
            assert s.surface.get_rect().contains(rect)
    finally:
        s.close()


# --- screenshots ------------------------------------------------------------------------------
def test_screenshots_one_non_blank_png_per_screen(tmp_path: Path) -> None:
    paths = render_all(tmp_path / "shots")
    names = {p.stem for p in paths}
    assert set(SCREENS) <= names
    for path in paths:
        assert path.is_file() and path.suffix == ".png"
        image = pygame.image.load(str(path))
        assert image.get_size() == (800, 480)
        width, height = image.get_size()
        colours = {
            tuple(image.get_at((x, y)))[:3] for x in range(0, width, 7) for y in range(0, height, 7)
        }
        assert len(colours) > 5, f"{path.name} looks blank"
    assert os.environ.get("SDL_VIDEODRIVER") == "dummy"
