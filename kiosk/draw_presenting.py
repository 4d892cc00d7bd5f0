"""The rating screen (art. 17(1)): the case(s) and the clerk above five level buttons.

A self-service terminal (自助终端, art. 18/23) shows "终端机编号：<n>" where the clerk panel is.

The theme (一件事, art. 31) and a notice share one accent line under the header; a theme with
several cases adds the 分项评价 button at its right end, and while the items are rated one by one
the line says which ("第1项/共3项：事项名称").  A batch
(art. 24) shows its count and as many serials as fit, then "……等N件".
"""

from __future__ import annotations

import pygame

from evaluator.rules.levels import BUTTON_ORDER, Level
from kiosk import texts
from kiosk.layout import wrap_lines
from kiosk.painter import Painter
from kiosk.palette import ACCENT, BUTTON_COLORS, HEADER, INK, MUTED, PANEL, WHITE
from kiosk.view import ExpandTheme, PressLevel, ScreenView

#: The 分项评价 button (design pixels): 80 px is 15 mm on a 7" 800×480 panel (133 dpi).
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
    y = top + p.px(8)
    item = (
        texts.THEME_ITEM_FMT.format(
            index=v.item_index, count=v.item_count, matter=v.cases[0][0] if v.cases else ""
        )
        if v.item_index
        else ""
    )
    extra = texts.SEPARATOR.join(
        part
        for part in (texts.THEME_FMT.format(theme=v.theme) if v.theme else "", item, v.message)
        if part
    )
    if extra or v.can_expand:
        line_h = p.px(EXPAND_H) if v.can_expand else p.px(32)
        text_w = width - 2 * margin
        if v.can_expand:
            expand = pygame.Rect(width - margin - p.px(EXPAND_W), y, p.px(EXPAND_W), line_h)
            text_w = expand.left - gap - margin
            _expand_button(p, expand)
        p.layout.boxes["extra"] = pygame.Rect(margin, y, text_w, line_h)
        if extra:
            p.text(
                extra,
                p.px(22),
                ACCENT,
                bold=True,
                max_width=text_w,
                midleft=(margin, y + line_h // 2),
            )
        y += line_h + (gap if v.can_expand else 0)
    button_h = min(p.px(150), (height - y) // 2)
    button_top = height - margin - button_h
    panels_bottom = button_top - gap
    # The side panel names who serves: the clerk at a window, or a self-service terminal's
    # 终端机编号 in the same place (art. 18/23: a terminal has no clerk to show).
    side = "terminal" if v.terminal else ("clerk" if v.clerk_name or v.clerk_id else "")
    inner_w = width - 2 * margin
    side_w = int((inner_w - gap) * 0.36) if side else 0
    case_w = inner_w - (side_w + gap if side else 0)
    case_rect = pygame.Rect(margin, y, case_w, panels_bottom - y)
    p.layout.boxes["case"] = case_rect
    p.panel(case_rect)
    _draw_cases(p, case_rect, v.cases)
    if side:
        side_rect = pygame.Rect(case_rect.right + gap, y, side_w, panels_bottom - y)
        p.layout.boxes[side] = side_rect
        p.panel(side_rect)
        if side == "terminal":
            _draw_terminal(p, side_rect, v.terminal)
        else:
            _draw_clerk(p, side_rect, v.clerk_name, v.clerk_id)
    draw_level_buttons(p, pygame.Rect(margin, button_top, inner_w, button_h))


def _expand_button(p: Painter, rect: pygame.Rect) -> None:
    """分项评价 (art. 31): rate the theme's items one by one; the level buttons stay below."""
    radius = p.px(12)
    pygame.draw.rect(p.surface, PANEL, rect, border_radius=radius)
    pygame.draw.rect(p.surface, ACCENT, rect, width=p.px(3), border_radius=radius)
    p.text(
        texts.BUTTON_EXPAND_THEME,
        p.px(28),
        ACCENT,
        bold=True,
        max_width=rect.width - p.px(12),
        center=rect.center,
    )
    p.target(rect, ExpandTheme())


def _draw_cases(p: Painter, box: pygame.Rect, cases: tuple[tuple[str, str], ...]) -> None:
    pad = p.px(14)
    col = p.column(box.inflate(-2 * pad, -2 * pad))
    label_size, value_size, serial_size = p.px(18), p.px(32), p.px(26)
    serial_block = p.font(label_size).get_linesize() + p.font(serial_size).get_linesize() + p.px(6)
    if len(cases) <= 1:
        matter, serial = cases[0] if cases else ("", "")
        col.line(texts.LABEL_MATTER, label_size, MUTED)
        value_font = p.font(value_size, True)
        room = col.rect.bottom - serial_block - col.y
        max_lines = max(1, min(3, room // value_font.get_linesize()))
        for line in wrap_lines(value_font, matter, col.rect.width, max_lines):
            col.line(line, value_size, INK, bold=True)
        col.space(p.px(6))
        col.line(texts.LABEL_SERIAL, label_size, MUTED)
        col.line(serial, serial_size, INK)
        return
    count = texts.BATCH_COUNT_FMT.format(count=len(cases))
    matters = {matter for matter, _ in cases}
    col.pair(texts.LABEL_MATTER, label_size, MUTED, count, p.px(22), ACCENT)
    if len(matters) == 1:
        col.line(cases[0][0], p.px(26), INK, bold=True)
        col.space(p.px(4))
        col.line(texts.LABEL_SERIAL, label_size, MUTED)
        items = [serial for _, serial in cases]
    else:
        items = [
            texts.BATCH_LINE_FMT.format(matter=matter, serial=serial) for matter, serial in cases
        ]
    item_size = p.px(22)
    line_h = p.font(item_size).get_linesize()
    fits = max(0, (col.rect.bottom - col.y) // line_h)
    if len(items) > fits and fits > 0:
        shown = items[: fits - 1]
        more = texts.BATCH_MORE_FMT.format(count=len(items) - len(shown))
    else:
        shown, more = items, ""
    for item in shown:
        col.line(item, item_size, INK)
    if more:
        col.line(more, item_size, MUTED)


def _draw_clerk(p: Painter, box: pygame.Rect, name: str, clerk_id: str) -> None:
    pad = p.px(14)
    col = p.column(box.inflate(-2 * pad, -2 * pad))
    col.line(texts.LABEL_CLERK, p.px(18), MUTED)
    col.space(p.px(4))
    if name:
        col.line(name, p.px(36), INK, bold=True)
    if clerk_id:
        col.space(p.px(6))
        col.line(
            texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=clerk_id),
            p.px(24),
            INK,
        )


def _draw_terminal(p: Painter, box: pygame.Rect, terminal: str) -> None:
    """终端机编号：<n> (art. 23) in the clerk panel's place: one line when it fits, else the
    number on its own lines under "终端机编号：" (never broken inside the label)."""
    pad = p.px(14)
    col = p.column(box.inflate(-2 * pad, -2 * pad))
    size = p.px(28)
    font = p.font(size, True)
    text = texts.LABELLED_FMT.format(label=texts.LABEL_TERMINAL, value=terminal)
    if font.size(text)[0] <= col.rect.width:
        lines = [text]
    else:
        label = texts.LABELLED_FMT.format(label=texts.LABEL_TERMINAL, value="")
        lines = [label, *wrap_lines(font, terminal, col.rect.width, 2)]
    for line in lines:
        col.line(line, size, INK, bold=True)


def draw_level_buttons(p: Painter, row: pygame.Rect) -> None:
    """The five level buttons, left to right in :data:`BUTTON_ORDER`, each a target."""
    gap = p.px(8)
    count = len(BUTTON_ORDER)
    button_w = (row.width - gap * (count - 1)) / count
    for i, level in enumerate(BUTTON_ORDER):
        left = row.left + round(i * (button_w + gap))
        right = row.left + round(i * (button_w + gap) + button_w)
        rect = pygame.Rect(left, row.top, right - left, row.height)
        _level_button(p, rect, level)
        p.target(rect, PressLevel(level))


def _level_button(p: Painter, rect: pygame.Rect, level: Level) -> None:
    pygame.draw.rect(p.surface, BUTTON_COLORS[level], rect, border_radius=p.px(14))
    # The face sits in the upper third and the label in the lower quarter, so the
    # centre of the button always shows the plain button colour.
    radius = int(min(rect.width, rect.height) * 0.16)
    face = (rect.centerx, rect.top + int(rect.height * 0.28))
    _face(p.surface, face, radius, MOUTH[level])
    p.text(
        texts.level_label(level),
        p.px(26),
        WHITE,
        bold=True,
        max_width=rect.width - p.px(8),
        center=(rect.centerx, rect.top + int(rect.height * 0.76)),
    )


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
