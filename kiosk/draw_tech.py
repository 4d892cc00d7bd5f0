"""The technician's menu: the PIN pad (``tech_pin``) and the menu (``tech_menu``).

The PIN shows as dots, never as digits (someone may stand behind the technician).  Every key and
item is a 15 mm target like the citizen's buttons.  The menu shows what the app put in
:class:`~kiosk.view.TechView` (device, IP, broker, printer, counter link, outbox, last error) and
never a rating: the button test names the button pressed, nothing else.
"""

from __future__ import annotations

import pygame

from kiosk import texts
from kiosk.painter import Painter
from kiosk.palette import (
    ACCENT,
    HEADER_NOTICE,
    HEADER_PAUSED,
    INK,
    MUTED,
    PANEL_EDGE,
    SUBMIT_ENABLED,
    WHITE,
)
from kiosk.view import ScreenView, TechBackspace, TechDigit, TechEnter, TechItem, TechView

#: The keypad, row by row: digits, then 删除 (⌫) 0 确定.
KEYPAD: tuple[tuple[str, ...], ...] = (
    ("1", "2", "3"),
    ("4", "5", "6"),
    ("7", "8", "9"),
    ("⌫", "0", "OK"),
)
#: The dot drawn for each digit typed.
DOT = "●"


def _tech(v: ScreenView) -> TechView:
    return v.tech if v.tech is not None else TechView("pin" if v.screen == "tech_pin" else "menu")


def _key(p: Painter, rect: pygame.Rect, label: str, action: object, *, fill: tuple[int, int, int],
         ink: tuple[int, int, int], size: int) -> None:  # fmt: skip
    pygame.draw.rect(p.surface, fill, rect, border_radius=p.px(10))
    pygame.draw.rect(p.surface, PANEL_EDGE, rect, width=max(1, p.px(2)), border_radius=p.px(10))
    with p.inside(rect):
        p.block(label, size, ink, rect.inflate(-p.px(8), -p.px(8)), bold=True)
    p.target(rect, action)  # type: ignore[arg-type]


def draw_tech_pin(p: Painter, v: ScreenView) -> None:
    """The PIN pad: prompt, dots, the message (wrong PIN, locked), keypad, 取消."""
    tech = _tech(v)
    width, height = p.size
    top = p.header(texts.TECH_TITLE, HEADER_PAUSED, left=v.window)
    margin, gap = p.px(16), p.px(8)
    rows = len(KEYPAD)
    side = max(p.min_target, min(p.px(96), (height - top - 2 * margin - (rows - 1) * gap) // rows))
    pad_w, pad_h = 3 * side + 2 * gap, rows * side + (rows - 1) * gap
    if p.portrait:
        pad = pygame.Rect((width - pad_w) // 2, height - margin - pad_h, pad_w, pad_h)
        text_box = pygame.Rect(margin, top + margin, width - 2 * margin, pad.top - top - 2 * margin)
    else:
        pad = pygame.Rect(width - margin - pad_w, top + (height - top - pad_h) // 2, pad_w, pad_h)
        text_box = pygame.Rect(margin, top + margin, pad.left - 2 * margin, height - top)
    for r, row in enumerate(KEYPAD):
        for c, key in enumerate(row):
            rect = pygame.Rect(pad.left + c * (side + gap), pad.top + r * (side + gap), side, side)
            if key == "⌫":
                _key(p, rect, texts.TECH_BACKSPACE, TechBackspace(), fill=WHITE, ink=INK,
                     size=p.px(26))  # fmt: skip
            elif key == "OK":
                _key(p, rect, texts.TECH_OK, TechEnter(), fill=SUBMIT_ENABLED, ink=WHITE,
                     size=p.px(26))  # fmt: skip
            else:
                _key(p, rect, key, TechDigit(key), fill=WHITE, ink=INK, size=p.px(34))
    p.layout.boxes["keypad"] = pad
    cancel_h = p.tap(56)
    cancel_w = max(p.min_target, min(text_box.width, p.px(200)))
    if p.portrait:
        cancel = pygame.Rect(margin, pad.top - gap - cancel_h, cancel_w, cancel_h)
        cancel.left = (width - cancel_w) // 2
    else:
        cancel = pygame.Rect(margin, height - margin - cancel_h, cancel_w, cancel_h)
    _key(p, cancel, texts.TECH_CANCEL, TechItem("close"), fill=WHITE, ink=INK, size=p.px(24))
    text_box.height = cancel.top - gap - text_box.top
    p.layout.boxes["pin_text"] = text_box
    line_h = text_box.height // 3
    prompt = pygame.Rect(text_box.left, text_box.top, text_box.width, line_h)
    with p.inside(prompt):
        p.block(texts.TECH_PIN_PROMPT, p.px(28), INK, prompt, bold=True)
    dots = pygame.Rect(text_box.left, prompt.bottom, text_box.width, line_h)
    p.layout.boxes["dots"] = dots
    if tech.entered:
        with p.inside(dots):
            p.text(DOT * tech.entered, p.px(30), ACCENT, max_width=dots.width, fixed=True,
                   center=dots.center)  # fmt: skip
    if tech.message:
        note = pygame.Rect(text_box.left, dots.bottom, text_box.width, line_h)
        p.layout.boxes["message"] = note
        with p.inside(note):
            p.block(tech.message, p.px(22), HEADER_NOTICE, note)


#: Each item's text key; on the button test, ``close`` goes back to the menu (返回).
ITEM_TEXTS = {
    "test_print": "tech_item_test_print",
    "button_test": "tech_item_button_test",
    "reload_config": "tech_item_reload_config",
    "close": "tech_item_close",
}


def draw_tech_menu(p: Painter, v: ScreenView) -> None:
    """The menu: the pad's state on the left (on top in portrait), the items beside it; on the
    button test the button pressed instead of the state."""
    tech = _tech(v)
    width, height = p.size
    top = p.header(texts.TECH_TITLE, HEADER_PAUSED, left=v.window)
    margin, gap = p.px(16), p.px(10)
    items = tech.items
    item_h = p.tap(64)
    if p.portrait:
        cols = 2
        item_w = (width - 2 * margin - gap) // cols
        rows = (len(items) + cols - 1) // cols
        block_h = rows * item_h + (rows - 1) * gap
        grid_top = height - margin - block_h
        rects = [
            pygame.Rect(margin + (i % cols) * (item_w + gap),
                        grid_top + (i // cols) * (item_h + gap), item_w, item_h)
            for i in range(len(items))
        ]  # fmt: skip
        info = pygame.Rect(margin, top + margin, width - 2 * margin, grid_top - top - 2 * margin)
    else:
        item_w = max(p.min_target, p.px(210))
        left = width - margin - item_w
        block_h = len(items) * item_h + max(0, len(items) - 1) * gap
        first = top + max(margin, (height - top - block_h) // 2)
        rects = [
            pygame.Rect(left, first + i * (item_h + gap), item_w, item_h) for i in range(len(items))
        ]
        info = pygame.Rect(margin, top + margin, left - 2 * margin, height - top - 2 * margin)
    for rect, (name, enabled) in zip(rects, items, strict=True):
        key = "button_back" if tech.phase == "button_test" and name == "close" else ITEM_TEXTS[name]
        if enabled:
            _key(p, rect, texts.get(key), TechItem(name), fill=WHITE, ink=INK, size=p.px(24))
        else:
            pygame.draw.rect(p.surface, PANEL_EDGE, rect, border_radius=p.px(10))
            with p.inside(rect):
                p.block(texts.get(key), p.px(24), INK, rect.inflate(-p.px(8), -p.px(8)))
            p.target(rect, TechItem(name))  # greyed, but a tap says why it is not available
    p.layout.boxes["info"] = info
    message_h = p.font(p.px(20)).get_linesize() * 2 if tech.message else 0
    body = pygame.Rect(info.left, info.top, info.width, info.height - message_h)
    if tech.phase == "button_test":
        half = body.height // 2
        prompt = pygame.Rect(body.left, body.top, body.width, half)
        with p.inside(prompt):
            p.block(texts.TECH_BUTTON_TEST_PROMPT, p.px(26), INK, prompt, bold=True)
        if tech.pressed:
            shown = pygame.Rect(body.left, prompt.bottom, body.width, body.height - half)
            p.layout.boxes["pressed"] = shown
            with p.inside(shown):
                p.block(texts.TECH_BUTTON_PRESSED_FMT.format(label=tech.pressed), p.px(40),
                        ACCENT, shown, bold=True)  # fmt: skip
    else:
        _info_lines(p, tech, body)
    if tech.message:
        note = pygame.Rect(info.left, info.bottom - message_h, info.width, message_h)
        p.layout.boxes["message"] = note
        with p.inside(note):
            p.block(tech.message, p.px(20), HEADER_NOTICE, note, align="left")


def _info_lines(p: Painter, tech: TechView, box: pygame.Rect) -> None:
    """``label: value`` lines, the labels in a column; a value too long is shortened ("…")."""
    if not tech.info:
        return
    size = p.px(20)
    line_h = p.font(size).get_linesize()
    step = min(box.height // len(tech.info), line_h + p.px(10))
    label_w = min(box.width // 3, max(p.font(size).size(label)[0] for label, _ in tech.info))
    y = box.top
    with p.inside(box):
        for label, value in tech.info:
            if y + line_h > box.bottom:
                break
            p.text(label, size, MUTED, max_width=label_w, fixed=True, topleft=(box.left, y))
            x = box.left + label_w + p.px(12)
            p.text(value, size, INK, max_width=box.right - x, topleft=(x, y))
            y += step
