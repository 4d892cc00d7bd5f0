"""The technician's PIN pad and menu, real pixels on SDL's dummy driver at every panel size."""

from __future__ import annotations

from itertools import combinations

import pygame
import pytest

from kiosk import texts
from kiosk.draw_tech import DOT
from kiosk.palette import PANEL_EDGE
from kiosk.screen import Screen
from kiosk.sizes import SIZES, PanelSize
from kiosk.view import ScreenView, TechBackspace, TechDigit, TechEnter, TechItem, TechView

INFO = (
    ("设备编号", "440500-hall1-w12"),
    ("IP 地址", "192.168.1.23 (eth0), 10.8.0.4 (wlan0)"),
    ("上传服务器", "mqtts://mqtt.hall.example.org:8883 未连接"),
    # issue 14: why the link failed, and the client certificate (the two longest forms)
    ("上传连接故障", "对方不是 TLS 服务（mqtts 地址指向了普通端口？）"
                     "（1234 次，12-07 18:20 至 12-08 09:13，已恢复）"),
    ("本机证书", "已于 2026-12-01 过期，无法连接市平台，请申请新证书"),
    ("打印机", "offline (2)"),
    ("业务系统连接", "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0 已连接"),
    ("待上传评价", "12 条，最早 5 min 前"),
    ("最近错误", "evaluator.app: storage fault: database or disk is full " * 3),
)
ITEMS = (("test_print", True), ("button_test", True), ("reload_config", False), ("close", True))


def pin_view(entered: int = 0, message: str = "") -> ScreenView:
    return ScreenView("tech_pin", window="3号窗口", tech=TechView("pin", entered, message))


def menu_view(message: str = "") -> ScreenView:
    tech = TechView("menu", info=INFO, items=ITEMS, message=message)
    return ScreenView("tech_menu", window="3号窗口", tech=tech)


def check(s: Screen, where: str) -> None:
    """Every target 15 mm, inside, apart; every fixed text whole and inside its box."""
    whole = s.surface.get_rect()
    layout = s.layout
    for t in layout.targets:
        assert whole.contains(t.rect), f"{where}: {t.action} leaves the screen"
        assert min(t.rect.size) >= s.min_target, f"{where}: {t.action} is under 15 mm"
    for a, b in combinations(layout.targets, 2):
        assert not a.rect.colliderect(b.rect), f"{where}: {a.action} overlaps {b.action}"
    for d in layout.texts:
        assert d.owner.contains(d.ink), f"{where}: {d.text!r} leaves its box"
        if d.fixed:
            assert not d.shortened, f"{where}: {d.text!r} shortened"
        for t in layout.targets:
            if t.rect != d.owner:
                assert not d.ink.colliderect(t.rect), f"{where}: {d.text!r} on {t.action}"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: s.name)
@pytest.mark.parametrize("language", texts.LANGUAGES)
def test_pin_pad_and_menu_fit_every_panel(size: PanelSize, language: str) -> None:
    with texts.using(language):
        s = Screen(driver="dummy", width=size.width, height=size.height, dpi=size.dpi)
        try:
            s.render(pin_view(4, texts.TECH_PIN_WRONG_FMT.format(left=2)))
            check(s, f"{size.name} pin")
            actions = {t.action for t in s.layout.targets}
            assert actions == {TechDigit(str(d)) for d in range(10)} | {
                TechBackspace(),
                TechEnter(),
                TechItem("close"),
            }
            s.render(menu_view(texts.TECH_PRINT_SENT))
            check(s, f"{size.name} menu")
            assert [t.action for t in s.layout.targets] == [TechItem(n) for n, _ in ITEMS]
            greyed = s.layout.find(TechItem("reload_config"))
            assert greyed is not None  # a tap says why it is not available
            corner = (greyed.rect.left + 12, greyed.rect.centery)
            assert tuple(s.surface.get_at(corner))[:3] == PANEL_EDGE
        finally:
            s.close()


def test_the_pin_shows_as_dots_and_each_key_is_where_it_is_drawn(screen: Screen) -> None:
    screen.render(pin_view(3))
    shown = [d.shown for d in screen.layout.texts]
    assert DOT * 3 in shown
    assert not any(ch.isdigit() for d in shown if DOT in d for ch in d)
    seven = screen.layout.find(TechDigit("7"))
    assert seven is not None
    assert screen.hit_test(seven.rect.center) == TechDigit("7")
    # Real pixels: the key's label is inked inside its white key.
    label = next(d for d in screen.layout.texts if d.text == "7")
    assert seven.rect.contains(label.ink)
    inked = {tuple(screen.surface.get_at((x, label.ink.centery)))[:3]
             for x in range(label.ink.left, label.ink.right)}  # fmt: skip
    assert len(inked) > 1  # something was drawn there, not only the key's white


def test_the_menu_draws_every_info_line_and_the_pressed_button(screen: Screen) -> None:
    screen.render(menu_view())
    drawn = [d.text for d in screen.layout.texts]
    for label, value in INFO:
        assert label in drawn and value in drawn
    error = next(d for d in screen.layout.texts if d.text == INFO[-1][1])
    assert error.shortened and error.shown.endswith("…")
    from evaluator.rules.levels import BUTTON_ORDER

    label = texts.level_label(BUTTON_ORDER[0])
    tech = TechView("button_test", items=(("close", True),), pressed=label)
    screen.render(ScreenView("tech_menu", tech=tech))
    shown = "".join(d.shown for d in screen.layout.texts)
    assert texts.TECH_BUTTON_TEST_PROMPT in shown and "非常满意" in shown
    assert texts.BUTTON_BACK in shown  # close goes back to the menu here
    box = screen.layout.boxes["pressed"]
    assert any(
        tuple(screen.surface.get_at((x, box.centery)))[:3] != (244, 246, 249)
        for x in range(box.left, box.right)
    )


def test_the_checks_can_fail(screen: Screen) -> None:
    screen.render(menu_view())
    first = screen.layout.targets[0]
    screen.layout.targets.append(
        type(first)(pygame.Rect(first.rect.topleft, (20, 20)), first.action)
    )
    with pytest.raises(AssertionError, match=r"15 mm|overlaps"):
        check(screen, "a small target")
