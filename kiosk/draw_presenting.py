"""The rating screen (art. 17(1)): the case(s) and the clerk above five level buttons.

A self-service terminal (自助终端, art. 18/23) shows "终端机编号：<n>" where the clerk panel is.

The theme (一件事, art. 31) and a notice share the accent lines under the header; a theme with
several cases adds the 分项评价 button at their right end, and while the items are rated one by
one the line says which ("第1项/共3项：事项名称").  A batch (art. 24) shows its count and as many
serials as fit, then "……等N件".

Landscape: the case and clerk panels side by side, the level buttons a row.  Portrait: the panels
stacked, the level buttons a full-width column (face left, label right), so the labels stay
large.  Every button is at least 15 mm each way at the panel's dpi.
"""

from __future__ import annotations

import pygame

from evaluator.rules.levels import BUTTON_ORDER, Level
from kiosk import texts
from kiosk.layout import wrap_all, wrap_lines
from kiosk.painter import Painter
from kiosk.palette import (
    ACCENT,
    BUTTON_COLORS,
    HEADER,
    HEADER_NOTICE,
    INK,
    MUTED,
    PANEL,
    WHITE,
)
from kiosk.view import ExpandTheme, PressLevel, ScreenView

#: The 分项评价 button (design pixels; never under 15 mm).
EXPAND_H = 80
EXPAND_W = 220

#: Mouth curvature of the face drawn on each button (+ smile, - frown).
MOUTH: dict[Level, float] = {
    Level.VERY_SATISFIED: 1.0,
    Level.SATISFIED: 0.6,
    Level.BASICALLY_SATISFIED: 0.2,
    Level.DISSATISFIED: -0.45,
    Level.VERY_DISSATISFIED: -1.0,
}


def draw_presenting(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    margin = p.px(12)
    gap = p.px(10)
    top = p.header(texts.PRESENT_TITLE, HEADER, left=v.window, seconds=v.seconds_left)
    y = _accent_lines(p, v, top + p.px(8))
    inner_w = width - 2 * margin
    if p.portrait:
        count = len(BUTTON_ORDER)
        room = height - margin - y - p.px(190)  # what the panels need at least
        button_h = max(p.min_target, min(p.px(84), (room - (count - 1) * p.px(6)) // count))
        column_h = count * button_h + (count - 1) * p.px(6)
        buttons = pygame.Rect(margin, height - margin - column_h, inner_w, column_h)
    else:
        button_h = max(p.min_target, min(p.px(150), (height - y) // 2))
        buttons = pygame.Rect(margin, height - margin - button_h, inner_w, button_h)
    panels = pygame.Rect(margin, y, inner_w, buttons.top - gap - y)
    # The side panel names who serves: the clerk at a window, or a self-service terminal's
    # 终端机编号 in the same place (art. 18/23: a terminal has no clerk to show).
    side = "terminal" if v.terminal else ("clerk" if v.clerk_name or v.clerk_id else "")
    if not side:
        case_rect, side_rect = panels, None
    elif p.portrait:
        side_h = _side_height(p, side)
        case_rect = pygame.Rect(panels.left, panels.top, panels.width, panels.height - side_h - gap)
        side_rect = pygame.Rect(panels.left, case_rect.bottom + gap, panels.width, side_h)
    else:
        side_w = int((inner_w - gap) * 0.36)
        case_rect = pygame.Rect(panels.left, panels.top, inner_w - side_w - gap, panels.height)
        side_rect = pygame.Rect(case_rect.right + gap, panels.top, side_w, panels.height)
    p.layout.boxes["case"] = case_rect
    p.panel(case_rect)
    with p.inside(case_rect):
        _draw_cases(p, case_rect, v.cases)
    if side_rect is not None:
        p.layout.boxes[side] = side_rect
        p.panel(side_rect)
        with p.inside(side_rect):
            if side == "terminal":
                _draw_terminal(p, side_rect, v.terminal)
            else:
                _draw_clerk(p, side_rect, v.clerk_name, v.clerk_id)
    draw_level_buttons(p, buttons)


def _accent_lines(p: Painter, v: ScreenView, y: int) -> int:
    """The theme / item line and a notice under the header, with 分项评价 at their right when
    offered; returns the y below them."""
    width, _ = p.size
    margin, gap = p.px(12), p.px(10)
    item = (
        texts.THEME_ITEM_FMT.format(
            index=v.item_index, count=v.item_count, matter=v.cases[0][0] if v.cases else ""
        )
        if v.item_index
        else ""
    )
    parts = [part for part in (texts.THEME_FMT.format(theme=v.theme) if v.theme else "", item)
             if part]  # fmt: skip
    if not (parts or v.message or v.can_expand):
        return y
    size = p.px(22)
    font = p.font(size, True)
    text_w = width - 2 * margin
    expand = None
    if v.can_expand:
        label_w = p.font(p.px(28), True).size(texts.BUTTON_EXPAND_THEME)[0] + p.px(24)
        design_w = p.px(EXPAND_W if not p.portrait else 170)
        button_w = max(design_w, p.min_target, min(label_w, text_w // 2))
        expand = pygame.Rect(width - margin - button_w, y, button_w, p.tap(EXPAND_H))
        text_w = expand.left - gap - margin
    # The theme and the item on one line when they fit, else each on its own (up to two lines).
    joined = texts.SEPARATOR.join(parts)
    if font.size(joined)[0] <= text_w:
        theme_lines = [(joined, [joined])] if parts else []
    else:
        theme_lines = [(part, wrap_lines(font, part, text_w, 2)) for part in parts]
    line_h = font.get_linesize()
    message_h = 0
    if v.message:
        _, lines = p.fit(v.message, size, text_w, 10**6, bold=True)
        message_h = len(lines) * line_h
    text_h = sum(len(lines) for _, lines in theme_lines) * line_h + message_h
    box_h = max(text_h + p.px(6), expand.height if expand else 0, p.px(32))
    box = pygame.Rect(margin, y, text_w, box_h)
    p.layout.boxes["extra"] = box
    with p.inside(box):
        top = box.centery - text_h // 2
        for part, lines in theme_lines:
            drawn = p.draw_lines(part, lines, size, ACCENT, bold=True, fixed=False, top=top,
                                 x=margin, align="left")  # fmt: skip
            top = drawn.top + len(lines) * line_h
        if v.message:
            p.block(v.message, size, HEADER_NOTICE, pygame.Rect(margin, top, text_w, message_h),
                    bold=True, align="left")  # fmt: skip
    if expand is not None:
        _expand_button(p, expand)
    return y + box_h + gap


def _expand_button(p: Painter, rect: pygame.Rect) -> None:
    """分项评价 (art. 31): rate the theme's items one by one; the level buttons stay below."""
    radius = p.px(12)
    pygame.draw.rect(p.surface, PANEL, rect, border_radius=radius)
    pygame.draw.rect(p.surface, ACCENT, rect, width=p.px(3), border_radius=radius)
    with p.inside(rect):
        p.block(texts.BUTTON_EXPAND_THEME, p.px(28), ACCENT, rect.inflate(-p.px(12), -p.px(8)),
                bold=True)  # fmt: skip
    p.target(rect, ExpandTheme())


def _side_height(p: Painter, side: str) -> int:
    """The portrait clerk / terminal panel's height: one line."""
    del side
    return 2 * p.px(8) + p.font(p.px(28), True).get_linesize()


def _draw_cases(p: Painter, box: pygame.Rect, cases: tuple[tuple[str, str], ...]) -> None:
    pad = p.px(14 if not p.portrait else 8)
    col = p.column(box.inflate(-2 * pad, -2 * pad))
    label_size = p.px(18)
    if len(cases) <= 1:
        matter, serial = cases[0] if cases else ("", "")
        # The matter (up to three lines) and the serial at the largest sizes that fit the panel.
        label_h = p.font(label_size).get_linesize()
        for factor in (1.0, 0.9, 0.8, 0.7, 0.6):
            value_size, serial_size = p.px(32 * factor), p.px(26 * factor)
            value_font = p.font(value_size, True)
            serial_h = p.font(serial_size).get_linesize()
            room = col.room - 2 * label_h - serial_h - p.px(6)
            lines = wrap_all(value_font, matter, col.rect.width) or [matter]
            if len(lines) * value_font.get_linesize() <= room:
                break
        max_lines = max(1, min(3, room // value_font.get_linesize()))
        col.line(texts.LABEL_MATTER, label_size, MUTED, fixed=True)
        for line in wrap_lines(value_font, matter, col.rect.width, max_lines):
            col.line(line, value_size, INK, bold=True)
        col.space(p.px(6))
        col.line(texts.LABEL_SERIAL, label_size, MUTED, fixed=True)
        col.line(serial, serial_size, INK)
        return
    count = texts.BATCH_COUNT_FMT.format(count=len(cases))
    matters = {matter for matter, _ in cases}
    col.pair(texts.LABEL_MATTER, label_size, MUTED, count, p.px(22), ACCENT)
    if len(matters) == 1:
        col.line(cases[0][0], p.px(26), INK, bold=True)
        col.space(p.px(4))
        col.line(texts.LABEL_SERIAL, label_size, MUTED, fixed=True)
        items = [serial for _, serial in cases]
    else:
        items = [
            texts.BATCH_LINE_FMT.format(matter=matter, serial=serial) for matter, serial in cases
        ]
    item_size = p.px(22 if not p.portrait else 20)
    line_h = p.font(item_size).get_linesize()
    fits = max(0, col.room // line_h)
    if len(items) > fits and fits > 0:
        shown = items[: fits - 1]
        more = texts.BATCH_MORE_FMT.format(count=len(items) - len(shown))
    else:
        shown, more = items, ""
    for item in shown:
        col.line(item, item_size, INK)
    if more:
        col.line(more, item_size, MUTED, fixed=True)


def _draw_clerk(p: Painter, box: pygame.Rect, name: str, clerk_id: str) -> None:
    number = texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=clerk_id)
    if p.portrait:  # one line: the label, the name, the number at the right
        inner = box.inflate(-2 * p.px(12), 0)
        mid = box.centery
        label = p.text(texts.LABEL_CLERK, p.px(18), MUTED, fixed=True,
                       max_width=inner.width // 4, midleft=(inner.left, mid))  # fmt: skip
        right = inner.right
        if clerk_id:
            drawn = p.text(number, p.px(24), INK, max_width=inner.width // 2,
                           midright=(inner.right, mid))  # fmt: skip
            right = drawn.left - p.px(12)
        if name:
            left = label.right + p.px(12)
            p.text(name, p.px(28), INK, bold=True, max_width=right - left,
                   midleft=(left, mid))  # fmt: skip
        return
    pad = p.px(14)
    col = p.column(box.inflate(-2 * pad, -2 * pad))
    col.line(texts.LABEL_CLERK, p.px(18), MUTED, fixed=True)
    col.space(p.px(4))
    if name:
        col.line(name, p.px(36), INK, bold=True)
    if clerk_id:
        col.space(p.px(6))
        col.line(number, p.px(24), INK)


def _draw_terminal(p: Painter, box: pygame.Rect, terminal: str) -> None:
    """终端机编号：<n> (art. 23) in the clerk panel's place: one line when it fits, else the
    number on its own lines under "终端机编号：" (never broken inside the label)."""
    pad = p.px(14 if not p.portrait else 8)
    col = p.column(box.inflate(-2 * pad, -2 * pad))
    size = p.px(28)
    font = p.font(size, True)
    text = texts.LABELLED_FMT.format(label=texts.LABEL_TERMINAL, value=terminal)
    if font.size(text)[0] <= col.rect.width:
        col.line(text, size, INK, bold=True)
        return
    label = texts.LABELLED_FMT.format(label=texts.LABEL_TERMINAL, value="").rstrip()
    col.line(label, size, INK, bold=True, fixed=True)
    for line in wrap_lines(font, terminal, col.rect.width, 2):
        col.line(line, size, INK, bold=True)


def draw_level_buttons(p: Painter, area: pygame.Rect) -> None:
    """The five level buttons in :data:`BUTTON_ORDER`, each a target: left to right in
    landscape, top to bottom in portrait; their labels all at one size (the largest at which
    every label fits its button)."""
    gap = p.px(8 if not p.portrait else 6)
    count = len(BUTTON_ORDER)
    along = area.height if p.portrait else area.width
    step = (along - gap * (count - 1)) / count
    rects = []
    for i in range(count):
        start = round(i * (step + gap))
        end = round(i * (step + gap) + step)
        if p.portrait:
            rects.append(pygame.Rect(area.left, area.top + start, area.width, end - start))
        else:
            rects.append(pygame.Rect(area.left + start, area.top, end - start, area.height))
    design = p.px(30 if p.portrait else 26)
    boxes = [_label_box(p, rect) for rect in rects]
    size = min(
        p.fit(texts.level_label(level), design, box.width, box.height, bold=True)[0]
        for level, box in zip(BUTTON_ORDER, boxes, strict=True)
    )
    for level, rect in zip(BUTTON_ORDER, rects, strict=True):
        _level_button(p, rect, level, size)
        p.target(rect, PressLevel(level))


def _face_at(p: Painter, rect: pygame.Rect) -> tuple[tuple[int, int], int]:
    """Centre and radius of a button's face: at the left in portrait, in the upper third
    otherwise (so the centre of the button always shows the plain button colour)."""
    if p.portrait:
        radius = int(rect.height * 0.3)
        return (rect.left + p.px(16) + radius, rect.centery), radius
    radius = int(min(rect.width, rect.height) * 0.16)
    return (rect.centerx, rect.top + int(rect.height * 0.28)), radius


def _label_box(p: Painter, rect: pygame.Rect) -> pygame.Rect:
    """Where a button's label goes: right of the face in portrait, in the lower part else."""
    (face_x, _), radius = _face_at(p, rect)
    if p.portrait:
        left = face_x + radius + p.px(16)
        return pygame.Rect(left, rect.top + p.px(4), rect.right - p.px(8) - left,
                           rect.height - p.px(8))  # fmt: skip
    top = rect.top + int(rect.height * 0.56)
    return pygame.Rect(rect.left + p.px(4), top, rect.width - p.px(8), rect.bottom - p.px(4) - top)


def _level_button(p: Painter, rect: pygame.Rect, level: Level, size: int) -> None:
    pygame.draw.rect(p.surface, BUTTON_COLORS[level], rect, border_radius=p.px(14))
    face, radius = _face_at(p, rect)
    _face(p.surface, face, radius, MOUTH[level])
    with p.inside(rect):
        p.block(texts.level_label(level), size, WHITE, _label_box(p, rect), bold=True,
                align="left" if p.portrait else "center")  # fmt: skip


def _face(surface: pygame.Surface, center: tuple[int, int], radius: int, mouth: float) -> None:
    cx, cy = center
    line = max(2, radius // 8)
    pygame.draw.circle(surface, WHITE, center, radius, width=line)
    eye_r = max(2, radius // 8)
    for dx in (-1, 1):
        pygame.draw.circle(
            surface, WHITE, (cx + dx * int(radius * 0.36), cy - int(radius * 0.25)), eye_r
        )
    base = cy + radius * (0.42 if mouth > 0 else 0.3)
    half = radius * 0.5
    points = []
    for step in range(-6, 7):
        t = step / 6
        points.append((cx + t * half, base - mouth * radius * 0.28 * t * t))
    pygame.draw.lines(surface, WHITE, False, points, max(2, radius // 7))
