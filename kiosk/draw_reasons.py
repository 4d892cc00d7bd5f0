"""The 差评 reason screen (art. 11/23/27/29): reason chips grouped by target, the 联办
agencies, 其他 with its text field and 常用意见 chips, and 返回 / 提交 at the bottom.

Every chip is a touch target of at least 15 mm each way at the panel's dpi.  When the chips do
not all fit at that size, they are paged: a pager column at the right (▲, "2/3", ▼, each button
15 mm too) turns the pages, and every reason, agency and phrase is on some page.  The 其他
section (其他, its field, the 常用意见) then starts a page of its own, and choosing 其他 shows
that page.  The screen (:class:`kiosk.screen.Screen`) keeps which page shows.

Landscape: the group headings in a column at the left of their chips.  Portrait: each heading
on a line above its chips, and the hint over 返回 / 提交 (the buttons take the whole width).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygame

from evaluator.rules.levels import Level
from kiosk import texts
from kiosk.layout import ellipsize_head, wrap_all, wrap_lines
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
    TurnPage,
    UiAction,
    reason_groups,
)

#: Chip font sizes (design pixels) tried for one page, largest first; paged at the last one.
CHIP_SIZES = (24, 22, 20)
#: The pager's page number, "2/3" (the same in every language).
PAGE_FMT = "{page}/{pages}"
#: A chip's text takes at most this many lines (a long reason on a narrow portrait panel).
CHIP_LINES = 2


@dataclass
class Placed:
    """One planned item of the reasons area: ``y`` is relative to its row."""

    kind: str  # "chip" | "field"
    rect: pygame.Rect
    text: str = ""
    lines: list[str] = field(default_factory=list)
    selected: bool = False
    action: UiAction | None = None
    enabled: bool = True
    size: int = 0
    """The font size of its text."""


@dataclass
class Row:
    """One row of chips of a group; ``first`` when the group starts with it."""

    group: int
    heading: str
    items: list[Placed]
    height: int
    first: bool
    other: bool  # the 其他 section: starts a page of its own when the chips are paged


@dataclass
class Plan:
    """Each page's rows: (y offset in the area, the row, whether its heading is drawn there)."""

    pages: list[list[tuple[int, Row, bool]]]


def draw_reasons(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    margin = p.px(12)
    level = v.level or Level.DISSATISFIED
    title = texts.REASONS_TITLE_FMT.format(level=texts.level_label(level))
    top = p.header(title, HEADER, seconds=v.seconds_left)
    bar_h = p.tap(60)
    bar_top = height - margin - bar_h
    hint_h = 0
    if p.portrait:  # the hint gets a row above the buttons (they take the whole width)
        hint_h = 2 * p.font(p.px(20)).get_linesize() + p.px(8)
    area = pygame.Rect(margin, top + p.px(10), width - 2 * margin, 0)
    area.height = bar_top - hint_h - p.px(8) - area.top
    p.layout.boxes["reasons"] = area
    plan, chips = plan_pages(p, v, area)
    pages = len(plan.pages)
    page = _page_to_show(p, v, plan)
    p.layout.page, p.layout.pages = page, pages
    for number, rows in enumerate(plan.pages):
        for _, row, _ in rows:
            for item in row.items:
                if item.action is not None:
                    p.layout.page_of[item.action] = number
    for y, row, heading in plan.pages[page]:
        _draw_row(p, v, row, chips, area.top + y, heading)
    if pages > 1:
        draw_pager(p, _pager_rect(p, area), page, pages)
    _bottom_bar(p, v, bar_top, bar_h, hint_h)


def _page_to_show(p: Painter, v: ScreenView, plan: Plan) -> int:
    """The page asked for (``p.page``), or by default the first one, or the 其他 section's
    when 其他 is chosen (its field is where the citizen writes)."""
    last = len(plan.pages) - 1
    if p.page is not None:
        return max(0, min(last, p.page))
    if v.other_selected:
        for number, rows in enumerate(plan.pages):
            if any(row.other for _, row, _ in rows):
                return number
    return 0


def plan_pages(p: Painter, v: ScreenView, area: pygame.Rect) -> tuple[Plan, pygame.Rect]:
    """The reasons on one page at the largest chip size that allows it, else paged at the
    smallest beside a pager; and the rectangle the chips take (the area less the pager)."""
    for size in CHIP_SIZES:
        plan = _paginate(p, _rows(p, v, area.width, p.px(size)), area.height, paged=False)
        if len(plan.pages) == 1:
            return plan, area
    pager = _pager_rect(p, area)
    if p.portrait:  # the pager is a row under the chips
        chips = pygame.Rect(area.left, area.top, area.width, pager.top - p.px(10) - area.top)
    else:  # a column at their right
        chips = pygame.Rect(area.left, area.top, pager.left - p.px(10) - area.left, area.height)
    rows = _rows(p, v, chips.width, p.px(CHIP_SIZES[-1]))
    return _paginate(p, rows, chips.height, paged=True), chips


def _pager_rect(p: Painter, area: pygame.Rect) -> pygame.Rect:
    """Where the pager goes: a column at the right of the area, a row under it in portrait."""
    side = p.min_target
    if p.portrait:
        return pygame.Rect(area.left, area.bottom - side, area.width, side)
    return pygame.Rect(area.right - side, area.top, side, area.height)


def _heading_w(p: Painter) -> int:
    """Landscape: the width of the heading column left of the chips."""
    return 0 if p.portrait else p.px(104)


def _heading_h(p: Painter) -> int:
    """Portrait: the height of a heading line above its chips."""
    return p.font(p.px(20), True).get_linesize() + p.px(4) if p.portrait else 0


def _groups(v: ScreenView) -> list[tuple[str, list[tuple[str, bool, UiAction, bool]], str]]:
    """(heading, chips as (text, selected, action, enabled), kind) in drawing order: the
    reasons for the clerk and the matter, the 联办 agencies, then 其他 and its phrases."""
    groups: list[tuple[str, list[tuple[str, bool, UiAction, bool]], str]] = []
    other: list[tuple[str, list[tuple[str, bool, UiAction, bool]], str]] = []
    for heading, items in reason_groups(v.reasons):
        chips = [(item.text, item.selected, ToggleReason(item.code), True) for item in items]
        if items[0].target == "other":
            other.append((heading, chips, "other"))
            if v.other_selected and v.phrases:
                phrases = [(ph.text, ph.selected, TogglePhrase(ph.text), ph.enabled)
                           for ph in v.phrases]  # fmt: skip
                other.append((texts.GROUP_PHRASES, phrases, "phrases"))
        else:
            groups.append((heading, chips, "reasons"))
    if v.agencies:
        agencies = [(name, sel, ToggleAgency(name), True) for name, sel in v.agencies]
        groups.append((texts.GROUP_AGENCIES, agencies, "agencies"))  # type: ignore[arg-type]
    return groups + other


def _rows(p: Painter, v: ScreenView, width: int, size: int) -> list[Row]:
    """Every chip placed in rows ``width`` wide (the heading column included)."""
    font = p.font(size)
    chip_h = max(p.min_target, round(size * 1.9))
    chip_gap = p.px(10)
    left = _heading_w(p)
    room = width - left
    rows: list[Row] = []
    for number, (heading, chips, kind) in enumerate(_groups(v)):
        lines: list[list[Placed]] = [[]]
        x = left
        for text, selected, action, enabled in chips:
            chip_w, wrapped, height = _chip_size(p, font, text, chip_h, room)
            if x > left and x + chip_w > width:
                lines.append([])
                x = left
            lines[-1].append(Placed("chip", pygame.Rect(x, 0, chip_w, height), text, wrapped,
                                    selected, action, enabled, size))  # fmt: skip
            x += chip_w + chip_gap
        if kind == "other" and v.other_selected:
            if width - x < p.px(260) or p.portrait:  # portrait: the whole width to write in
                lines.append([])
                x = left
            lines[-1].append(Placed("field", pygame.Rect(x, 0, width - x, chip_h), size=size))
        for i, items in enumerate(line for line in lines if line):
            height = max(item.rect.height for item in items)
            rows.append(Row(number, heading, items, height, i == 0, kind in ("other", "phrases")))
    return rows


def _chip_size(
    p: Painter, font: pygame.font.Font, text: str, chip_h: int, room: int
) -> tuple[int, list[str], int]:
    """Width, text lines and height of a chip: one line when it fits ``room``, else wrapped
    (at most :data:`CHIP_LINES` lines, the last one shortened only when that is not enough)."""
    pad, box, gap = _chip_metrics(chip_h)
    chrome = pad + box + gap + pad
    if chrome + font.size(text)[0] <= room:
        return chrome + font.size(text)[0], [text], chip_h
    lines = wrap_all(font, text, room - chrome)
    if lines is None or len(lines) > CHIP_LINES:
        lines = wrap_lines(font, text, room - chrome, CHIP_LINES)
    height = max(chip_h, len(lines) * font.get_linesize() + 2 * max(4, chip_h // 8))
    return room, lines, height


def _paginate(p: Painter, rows: list[Row], height: int, *, paged: bool) -> Plan:
    """Rows cut into pages of ``height``; a portrait heading is repeated on each page its
    group spans; paged, the 其他 section starts a page."""
    row_gap, group_gap = p.px(8), p.px(6)
    heading_h = _heading_h(p)
    pages: list[list[tuple[int, Row, bool]]] = [[]]
    y = 0
    for row in rows:
        page = pages[-1]
        starts_group = not page or page[-1][1].group != row.group
        gap = 0 if not page else row_gap + (group_gap if starts_group else 0)
        need = (heading_h if starts_group else 0) + row.height
        break_for_other = paged and row.other and page and not page[-1][1].other
        if page and (y + gap + need > height or break_for_other):
            pages.append([])
            y, gap, need, starts_group = 0, 0, heading_h + row.height, True
        pages[-1].append((y + gap + (need - row.height), row, starts_group))
        y += gap + need
    return Plan(pages)


def _draw_row(
    p: Painter, v: ScreenView, row: Row, chips: pygame.Rect, y: int, heading: bool
) -> None:
    """One row at ``y``: its chips, and the heading when its group starts on this page."""
    for item in row.items:
        rect = item.rect.move(chips.left, y)
        if rect.bottom > chips.bottom:
            continue  # never overflow into the buttons (only with absurd lists)
        if item.kind == "chip":
            _chip(p, Placed("chip", rect, item.text, item.lines, item.selected, item.action,
                            item.enabled, item.size))  # fmt: skip
            assert item.action is not None
            p.target(rect, item.action, enabled=item.enabled)
        else:
            p.layout.boxes["comment"] = rect
            _comment_field(p, rect, v.comment, item.size)
    if not heading:
        return
    if p.portrait:
        heading_h = _heading_h(p)
        box = pygame.Rect(chips.left, y - heading_h, chips.width, heading_h - p.px(4))
        with p.inside(box):
            p.text(row.heading, p.px(20), ACCENT, bold=True, fixed=True, max_width=box.width,
                   midleft=box.midleft)  # fmt: skip
        return
    first_h = row.items[0].rect.height if row.items else row.height
    box = pygame.Rect(chips.left, y, _heading_w(p) - p.px(8), first_h)
    with p.inside(box):
        p.block(row.heading, p.px(22), ACCENT, box, bold=True, align="left")


def draw_pager(p: Painter, bar: pygame.Rect, page: int, pages: int) -> None:
    """▲ first, "page/pages" between, ▼ last (top to bottom, or left to right in portrait);
    the button at an end disabled."""
    if p.portrait:
        side = max(p.min_target, bar.width // 3)
        up = pygame.Rect(bar.left, bar.top, side, bar.height)
        down = pygame.Rect(bar.right - side, bar.top, side, bar.height)
        label = pygame.Rect(up.right, bar.top, down.left - up.right, bar.height)
    else:
        side = bar.width
        up = pygame.Rect(bar.left, bar.top, side, side)
        down = pygame.Rect(bar.left, bar.bottom - side, side, side)
        label = pygame.Rect(bar.left, up.bottom, side, down.top - up.bottom)
    p.layout.boxes["pager"] = bar
    for rect, step, enabled in ((up, -1, page > 0), (down, 1, page < pages - 1)):
        fill, edge, ink = (PANEL, ACCENT, ACCENT) if enabled else (
            SUBMIT_DISABLED, SUBMIT_DISABLED, SUBMIT_DISABLED_INK)  # fmt: skip
        radius = p.px(12)
        pygame.draw.rect(p.surface, fill, rect, border_radius=radius)
        pygame.draw.rect(p.surface, edge, rect, width=p.px(3), border_radius=radius)
        half = min(rect.width, rect.height) * 0.22
        cx, cy = rect.center
        tip = -1 if step < 0 else 1
        pygame.draw.polygon(
            p.surface,
            ink,
            [(cx - half, cy - tip * half * 0.6), (cx + half, cy - tip * half * 0.6),
             (cx, cy + tip * half * 0.7)],
        )  # fmt: skip
        p.target(rect, TurnPage(step), enabled=enabled)
    with p.inside(label):
        p.block(PAGE_FMT.format(page=page + 1, pages=pages), p.px(22), INK, label, bold=True)


def _bottom_bar(p: Painter, v: ScreenView, bar_top: int, bar_h: int, hint_h: int) -> None:
    """返回 left, 提交 right, a hint between (above them in portrait) while nothing is chosen;
    a notice (nothing stored, an ID number in the text) wins over the hint."""
    width, _ = p.size
    margin, gap = p.px(12), p.px(12)
    radius = p.px(12)
    back_label = p.font(p.px(26), True).size(texts.BUTTON_BACK)[0] + p.px(24)
    submit_label = p.font(p.px(28), True).size(texts.BUTTON_SUBMIT)[0] + p.px(24)
    if p.portrait:
        back_w = max(p.min_target, (width - 2 * margin - gap) * 2 // 5)
        submit_w = width - 2 * margin - gap - back_w
    else:
        back_w = max(p.px(150), p.min_target, back_label)
        submit_w = max(p.px(200), p.min_target, submit_label)
    back = pygame.Rect(margin, bar_top, back_w, bar_h)
    submit = pygame.Rect(width - margin - submit_w, bar_top, submit_w, bar_h)
    pygame.draw.rect(p.surface, PANEL, back, border_radius=radius)
    pygame.draw.rect(p.surface, CHIP_EDGE, back, width=p.px(2), border_radius=radius)
    with p.inside(back):
        p.block(texts.BUTTON_BACK, p.px(26), INK, back.inflate(-p.px(8), -p.px(8)), bold=True)
    p.target(back, Back())
    fill = SUBMIT_ENABLED if v.can_submit else SUBMIT_DISABLED
    ink = WHITE if v.can_submit else SUBMIT_DISABLED_INK
    pygame.draw.rect(p.surface, fill, submit, border_radius=radius)
    with p.inside(submit):
        p.block(texts.BUTTON_SUBMIT, p.px(28), ink, submit.inflate(-p.px(8), -p.px(8)),
                bold=True)  # fmt: skip
    p.target(submit, Submit(), enabled=v.can_submit)
    hint = v.message or ("" if v.can_submit else texts.SUBMIT_HINT)
    if not hint:
        return
    if p.portrait:
        box = pygame.Rect(margin, bar_top - hint_h, width - 2 * margin, hint_h - p.px(4))
    else:
        box = pygame.Rect(back.right + gap, bar_top, submit.left - back.right - 2 * gap, bar_h)
    p.layout.boxes["hint"] = box
    with p.inside(box):
        p.block(hint, p.px(20), HEADER_NOTICE if v.message else MUTED, box)


def _chip_metrics(chip_h: int) -> tuple[int, int, int]:
    """(padding, checkbox size, gap after checkbox) of a chip ``chip_h`` high (at least 15 mm:
    the box stays the size of a short chip's)."""
    base = min(chip_h, 80)
    return max(4, base // 5), max(8, int(base * 0.36)), max(4, base // 7)


def _chip(p: Painter, item: Placed) -> None:
    rect = item.rect
    surface = p.surface
    pad, box, gap = _chip_metrics(rect.height)
    radius = min(rect.height, 80) // 5
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
        check_edge = ink if not item.enabled else CHIP_EDGE
        pygame.draw.rect(
            surface, check_edge, check, width=max(2, box // 10), border_radius=max(2, box // 6)
        )
    text_left = check.right + gap
    size = item.size
    line_h = p.font(size).get_linesize()
    top = rect.centery - len(item.lines) * line_h // 2
    with p.inside(rect):
        p.draw_lines(item.text, item.lines, size, ink, fixed=False, top=top, x=text_left,
                     align="left")  # fmt: skip


def _comment_field(p: Painter, rect: pygame.Rect, comment: str, size: int) -> None:
    pad = max(4, min(rect.height, 80) // 5)
    radius = min(rect.height, 80) // 5
    pygame.draw.rect(p.surface, PANEL, rect, border_radius=radius)
    pygame.draw.rect(p.surface, ACCENT, rect, width=p.px(2), border_radius=radius)
    counter = texts.COMMENT_COUNTER_FMT.format(count=len(comment), limit=COMMENT_LIMIT)
    with p.inside(rect):
        counter_rect = p.text(counter, max(10, int(size * 0.8)), MUTED, fixed=True,
                              max_width=rect.width // 2,
                              midright=(rect.right - pad, rect.centery))  # fmt: skip
        text_room = counter_rect.left - pad - rect.left - pad - p.px(6)
        if comment:
            shown = ellipsize_head(p.font(size), comment, text_room)
            drawn = p.draw_line(comment, shown, size, INK,
                                midleft=(rect.left + pad, rect.centery))  # fmt: skip
            caret_x = min(drawn.right + 2, rect.left + pad + text_room + 2)
        else:
            box = pygame.Rect(rect.left + pad + p.px(6), rect.top, text_room - p.px(6),
                              rect.height)  # fmt: skip
            p.block(texts.COMMENT_PLACEHOLDER, size, MUTED, box, align="left")
            caret_x = rect.left + pad
    half = int(size * 0.6)
    pygame.draw.line(
        p.surface,
        ACCENT,
        (caret_x, rect.centery - half),
        (caret_x, rect.centery + half),
        max(2, p.px(2)),
    )
