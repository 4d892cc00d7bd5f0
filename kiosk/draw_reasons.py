"""The 差评 reason screen (art. 11/23/27/29): reason chips grouped by target, the 联办
agencies, the 其他 text field, and 返回 / 提交 at the bottom.

The chips are planned first at the largest font that fits the area, then drawn; a chip that
would still overflow (only with absurd lists) is left out rather than drawn over the buttons.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

from evaluator.rules.levels import Level
from kiosk import texts
from kiosk.layout import ellipsize_head
from kiosk.painter import Painter
from kiosk.palette import (
    ACCENT,
    CHIP_EDGE,
    HEADER,
    HEADER_NOTICE,
    INK,
    MUTED,
    PANEL,
    SUBMIT_DISABLED,
    SUBMIT_DISABLED_INK,
    SUBMIT_ENABLED,
    WHITE,
)
from kiosk.view import (
    COMMENT_LIMIT,
    Back,
    ScreenView,
    Submit,
    ToggleAgency,
    TogglePhrase,
    ToggleReason,
    UiAction,
    reason_groups,
)

#: Chip font sizes tried, largest first (design pixels).
CHIP_SIZES = (24, 22, 21, 20, 19, 18, 17, 16, 15, 14)


@dataclass
class Placed:
    """One planned item of the reasons area."""

    kind: str  # "heading" | "chip" | "field"
    rect: pygame.Rect
    text: str = ""
    selected: bool = False
    action: UiAction | None = None
    enabled: bool = True


def draw_reasons(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    margin = p.px(12)
    level = v.level or Level.DISSATISFIED
    title = texts.REASONS_TITLE_FMT.format(level=texts.level_label(level))
    top = p.header(title, HEADER, seconds=v.seconds_left)
    bar_h = p.px(60)
    bar_top = height - margin - bar_h
    area = pygame.Rect(
        margin,
        top + p.px(10),
        width - 2 * margin,
        bar_top - p.px(8) - top - p.px(10),
    )
    p.layout.boxes["reasons"] = area
    for item in plan_fitting(p, v, area):
        if item.rect.bottom > area.bottom:
            continue  # never overflow into the buttons (only with absurd lists)
        if item.kind == "heading":
            p.text(
                item.text,
                item.rect.height // 2,
                ACCENT,
                bold=True,
                max_width=item.rect.width,
                midleft=item.rect.midleft,
            )
        elif item.kind == "chip":
            _chip(p, item)
            assert item.action is not None
            p.target(item.rect, item.action, enabled=item.enabled)
        elif item.kind == "field":
            p.layout.boxes["comment"] = item.rect
            _comment_field(p, item.rect, v.comment)
    _bottom_bar(p, v, bar_top, bar_h)


def _bottom_bar(p: Painter, v: ScreenView, bar_top: int, bar_h: int) -> None:
    """返回 left, 提交 right, a hint between while nothing is chosen."""
    width, _ = p.size
    margin = p.px(12)
    back = pygame.Rect(margin, bar_top, p.px(150), bar_h)
    submit = pygame.Rect(width - margin - p.px(200), bar_top, p.px(200), bar_h)
    radius = p.px(12)
    pygame.draw.rect(p.surface, PANEL, back, border_radius=radius)
    pygame.draw.rect(p.surface, CHIP_EDGE, back, width=p.px(2), border_radius=radius)
    p.text(
        texts.BUTTON_BACK, p.px(26), INK, bold=True, max_width=back.width - 8, center=back.center
    )
    p.target(back, Back())
    fill = SUBMIT_ENABLED if v.can_submit else SUBMIT_DISABLED
    ink = WHITE if v.can_submit else SUBMIT_DISABLED_INK
    pygame.draw.rect(p.surface, fill, submit, border_radius=radius)
    p.text(
        texts.BUTTON_SUBMIT,
        p.px(28),
        ink,
        bold=True,
        max_width=submit.width - 8,
        center=submit.center,
    )
    p.target(submit, Submit(), enabled=v.can_submit)
    hint = v.message or ("" if v.can_submit else texts.SUBMIT_HINT)
    if hint:  # a notice (nothing stored, an ID number in the text) wins over the hint
        gap = p.px(12)
        p.text(
            hint,
            p.px(20),
            HEADER_NOTICE if v.message else MUTED,
            max_width=submit.left - back.right - 2 * gap,
            center=((back.right + submit.left) // 2, submit.centery),
        )


def plan_fitting(p: Painter, v: ScreenView, area: pygame.Rect) -> list[Placed]:
    """The reasons layout at the largest chip font that fits ``area``."""
    placed: list[Placed] = []
    for size in CHIP_SIZES:
        placed, bottom = _plan(p, v, area, p.px(size))
        if bottom <= area.bottom:
            break
    return placed


def _plan(p: Painter, v: ScreenView, area: pygame.Rect, size: int) -> tuple[list[Placed], int]:
    font = p.font(size)
    chip_h = round(size * 1.9)
    row_gap = p.px(8)
    chip_gap = p.px(10)
    group_gap = p.px(4)
    heading_w = p.px(104)
    left, right = area.left + heading_w, area.right
    # (heading, chips as (text, selected, action, enabled), the 其他 group?)
    groups: list[tuple[str, list[tuple[str, bool, UiAction, bool]], bool]] = []
    for heading, items in reason_groups(v.reasons):
        is_other = items[0].target == "other"
        chips = [(item.text, item.selected, ToggleReason(item.code), True) for item in items]
        groups.append((heading, chips, is_other))
        if is_other and v.other_selected and v.phrases:
            groups.append(
                (
                    texts.GROUP_PHRASES,
                    [(ph.text, ph.selected, TogglePhrase(ph.text), ph.enabled) for ph in v.phrases],
                    False,
                )
            )
    if v.agencies:
        groups.append(
            (
                texts.GROUP_AGENCIES,
                [(name, sel, ToggleAgency(name), True) for name, sel in v.agencies],
                False,
            )
        )
    placed: list[Placed] = []
    y = area.top
    for heading, chips, is_other in groups:
        placed.append(
            Placed("heading", pygame.Rect(area.left, y, heading_w - p.px(8), chip_h), heading)
        )
        x = left
        for text, selected, action, enabled in chips:
            chip_w = min(_chip_width(font, text, chip_h), right - left)
            if x > left and x + chip_w > right:
                x = left
                y += chip_h + row_gap
            rect = pygame.Rect(x, y, chip_w, chip_h)
            placed.append(Placed("chip", rect, text, selected, action, enabled))
            x += chip_w + chip_gap
        if is_other and v.other_selected:
            if right - x < p.px(260):
                x = left
                y += chip_h + row_gap
            placed.append(Placed("field", pygame.Rect(x, y, right - x, chip_h)))
        y += chip_h + row_gap + group_gap
    return placed, y - row_gap - group_gap


def _chip_metrics(chip_h: int) -> tuple[int, int, int]:
    """(padding, checkbox size, gap after checkbox) of a chip of height ``chip_h``."""
    return max(4, chip_h // 4), max(8, int(chip_h * 0.46)), max(4, chip_h // 6)


def _chip_width(font: pygame.font.Font, text: str, chip_h: int) -> int:
    pad, box, gap = _chip_metrics(chip_h)
    return pad + box + gap + font.size(text)[0] + pad


def _chip(p: Painter, item: Placed) -> None:
    rect = item.rect
    surface = p.surface
    size = round(rect.height / 1.9)
    pad, box, gap = _chip_metrics(rect.height)
    radius = rect.height // 4
    fill, edge, ink = (ACCENT, ACCENT, WHITE) if item.selected else (PANEL, CHIP_EDGE, INK)
    if not item.enabled:  # a phrase that no longer fits the 150 characters
        fill, edge, ink = SUBMIT_DISABLED, SUBMIT_DISABLED, SUBMIT_DISABLED_INK
    pygame.draw.rect(surface, fill, rect, border_radius=radius)
    pygame.draw.rect(surface, edge, rect, width=p.px(2), border_radius=radius)
    check = pygame.Rect(rect.left + pad, rect.centery - box // 2, box, box)
    if item.selected:
        pygame.draw.rect(surface, WHITE, check, border_radius=max(2, box // 6))
        pygame.draw.lines(
            surface,
            ACCENT,
            False,
            [
                (check.left + box * 0.2, check.top + box * 0.52),
                (check.left + box * 0.42, check.top + box * 0.74),
                (check.left + box * 0.8, check.top + box * 0.28),
            ],
            max(2, box // 6),
        )
    else:
        pygame.draw.rect(
            surface, CHIP_EDGE, check, width=max(2, box // 10), border_radius=max(2, box // 6)
        )
    text_left = check.right + gap
    p.text(
        item.text,
        size,
        ink,
        max_width=rect.right - pad - text_left,
        midleft=(text_left, rect.centery),
    )


def _comment_field(p: Painter, rect: pygame.Rect, comment: str) -> None:
    size = round(rect.height / 1.9)
    pad = max(4, rect.height // 4)
    radius = rect.height // 4
    pygame.draw.rect(p.surface, PANEL, rect, border_radius=radius)
    pygame.draw.rect(p.surface, ACCENT, rect, width=p.px(2), border_radius=radius)
    counter = texts.COMMENT_COUNTER_FMT.format(count=len(comment), limit=COMMENT_LIMIT)
    counter_rect = p.text(
        counter,
        max(10, int(size * 0.8)),
        MUTED,
        max_width=rect.width // 2,
        midright=(rect.right - pad, rect.centery),
    )
    text_room = counter_rect.left - pad - rect.left - pad - p.px(6)
    if comment:
        shown = ellipsize_head(p.font(size), comment, text_room)
        drawn = p.text(
            shown, size, INK, max_width=text_room, midleft=(rect.left + pad, rect.centery)
        )
        caret_x = min(drawn.right + 2, rect.left + pad + text_room + 2)
    else:
        p.text(
            texts.COMMENT_PLACEHOLDER,
            size,
            MUTED,
            max_width=text_room,
            midleft=(rect.left + pad + p.px(6), rect.centery),
        )
        caret_x = rect.left + pad
    half = int(size * 0.6)
    pygame.draw.line(
        p.surface,
        ACCENT,
        (caret_x, rect.centery - half),
        (caret_x, rect.centery + half),
        max(2, p.px(2)),
    )
