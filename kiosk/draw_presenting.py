"""The rating screen (art. 17(1)): the case(s) and the clerk above five level buttons.

A self-service terminal (自助终端, art. 18/23) shows "终端机编号：<n>" where the clerk panel is.

The theme (一件事, art. 31) and a notice share the accent lines under the header; a theme with
several cases adds the 分项评价 button at their right end, and while the items are rated one by
one the line says which ("第1项/共3项：事项名称").  A batch (art. 24) shows its count and
every serial: on one page when they fit, else on pages turned with the reasons' 15 mm pager
(▲ n/m ▼, a column right of the case panel, a row under it in portrait), each page but the
last ending with how many cases the next pages hold.  The screen (:class:`kiosk.screen.Screen`)
keeps which page shows and which cases were shown: a level press before every case was shown
turns to the first page not shown instead of rating (the app asks it).

Landscape: the case and clerk panels side by side, the level buttons a row.  Portrait: the panels
stacked, the level buttons a full-width column (face left, label right), so the labels stay
large.  Every button is at least 15 mm each way at the panel's dpi.

What the citizen must read is always drawn whole: the 业务流水号 of every case shown, the clerk's
name and 工号 (or the 终端机编号), and the matter name (on up to :data:`MATTER_LINES` lines, "…"
only beyond them).  The layout is the first of these steps that holds them all:

1. the panels' texts at smaller sizes (:data:`FACTORS`, never under :data:`SMALLEST`), broken
   only where they break naturally (between words, after a name's "·", after "工号：", a theme
   item's serial under its matter);
2. the same sizes with a name, 工号, 终端机编号 or serial broken anywhere, on as many lines as it
   takes;
3. more room for the panels (:func:`_rooms`): the theme, item and notice lines one line each
   (the item reduced to "第2项/共3项": its matter is in the case panel); in landscape a wider
   clerk panel; lower level buttons, down to 15 mm; in portrait the buttons in two rows;
4. only then does the optional decoration give: the labels 事项名称 / 业务流水号 / 窗口人员 are
   left out.  The theme's name (data) is shortened with "…" when it does not fit its line.

A batch or a theme's list shows all its cases when they fit without taking room from anything
else; else it is paged at the room of the steps that takes the fewest pages, each page holding
the cases' head and at least its tallest case (the labels left out only when no room with them
holds one).  A list is never cut short to "……等N件": beyond any layout it is paged at the last
step, a case taller than a page alone on its page (recorded as cut).  Nothing is dropped
silently: a text the layout left out or could not place is recorded as asked and not shown
(``Painter.draw_line``), and a line shortened is recorded so.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass

import pygame

from evaluator.rules.levels import BUTTON_ORDER, Level
from kiosk import texts
from kiosk.draw_reasons import draw_pager
from kiosk.layout import ellipsize, fits, wrap_all, wrap_lines, wrap_words
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
    Color,
)
from kiosk.view import ExpandTheme, PressLevel, ScreenView, ShownCase

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

#: The sizes the panels' texts are tried at, as shares of their design sizes, largest first.
FACTORS: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7)
#: No text of the panels is drawn smaller (design pixels: 14 px on the 7" 800×480 panel).
SMALLEST = 14
#: A matter name takes at most this many lines; "…" only beyond them.
MATTER_LINES = 3
#: Shares of the width the clerk / terminal panel is tried at in landscape.
SIDE_SHARES: tuple[float, ...] = (0.36, 0.44, 0.52)
#: Design sizes (pixels at the 800×480 / 480×800 design) of the panels' and accent's texts.
LABEL_SIZE = 18
MATTER_SIZE = 32
SERIAL_SIZE = 26
BATCH_MATTER_SIZE = 26
COUNT_SIZE = 22
ITEM_SIZE = 22
ITEM_SIZE_PORTRAIT = 20
NAME_SIZE = 36
NAME_SIZE_PORTRAIT = 28
NUMBER_SIZE = 24
TERMINAL_SIZE = 28
ACCENT_SIZE = 22
#: The level buttons' two rows in portrait when a column leaves the panels too little room
#: (design pixels each; never under 15 mm).
GRID_ROW_H = 120

#: (break anywhere, size factor) in the order tried: every size breaking only where the text
#: breaks naturally, then every size breaking anywhere.
TRIES: tuple[tuple[bool, float], ...] = tuple(
    (anywhere, factor) for anywhere in (False, True) for factor in FACTORS
)
_NEVER = 10**9


@dataclass(frozen=True)
class _Room:
    """One step of the search: the accent lines ``capped`` to a line each; the level buttons
    ``button_h`` high (each), in two rows (``grid``, portrait) or as designed; the clerk
    panel ``share`` of the width (landscape); the panels' ``labels`` shown."""

    capped: bool
    button_h: int
    grid: bool = False
    share: float = SIDE_SHARES[0]
    labels: bool = True
    lean: bool = False
    """The level buttons as designed: the room takes nothing from them."""


@dataclass(frozen=True)
class _Row:
    """One text of a panel laid out: ``text`` as asked, broken into ``lines`` (none: left out,
    recorded as not shown), ``before`` pixels above it; ``note`` a fixed bold text at the right
    end of its line (the batch's count)."""

    text: str
    lines: tuple[str, ...]
    size: int
    color: Color
    bold: bool = False
    fixed: bool = False
    before: int = 0
    note: str = ""
    note_size: int = 0

    def height(self, p: Painter) -> int:
        lines_h = len(self.lines) * p.font(self.size, self.bold).get_linesize()
        if self.note:
            lines_h = max(lines_h, p.font(self.note_size, True).get_linesize())
        return self.before + lines_h


def _height(p: Painter, rows: Sequence[_Row]) -> int:
    return sum(row.height(p) for row in rows)


@dataclass(frozen=True)
class _Accent:
    """The theme / item / notice lines (bold, left-aligned) in a box ``height`` high and
    ``text_w`` wide, and the 分项评价 button (its top at 0: moved to the box's top when drawn)."""

    rows: tuple[_Row, ...]
    height: int
    text_w: int
    expand: pygame.Rect | None


@dataclass(frozen=True)
class _Side:
    """The clerk or terminal panel laid out: ``rows`` in a column, or in portrait one line
    (``inline``: the label, the name, the number)."""

    rows: tuple[_Row, ...] = ()
    inline: tuple[_Row, _Row, _Row] | None = None


class _Case:
    """The case panel's parts at one size: the rows above the cases (all of one case), and
    each case's rows of a list, laid out when first asked for (a list may hold 50 cases)."""

    def __init__(
        self,
        head: tuple[_Row, ...],
        item_size: int,
        single: bool,
        lay: Callable[[str, str], tuple[_Row, ...] | None] | None = None,
        cases: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.head, self.item_size, self.single = head, item_size, single
        self.count = 0 if single else len(cases)
        self._lay, self._cases = lay, cases
        self._items: list[tuple[_Row, ...] | None] = []

    def item(self, i: int) -> tuple[_Row, ...] | None:
        """The rows of the list's ``i``-th case; ``None`` when its serial does not fit so."""
        while len(self._items) <= i:
            matter, serial = self._cases[len(self._items)]
            self._items.append(self._lay(matter, serial) if self._lay else None)
        return self._items[i]


@dataclass(frozen=True)
class _Plan:
    accent: _Accent | None
    buttons: pygame.Rect
    grid: bool
    case_rect: pygame.Rect
    case_pages: tuple[tuple[_Row, ...], ...]
    side: str
    side_rect: pygame.Rect | None
    side_plan: _Side | None
    case_index: tuple[tuple[int, ...], ...] = ((0,),)
    """The cases (their places in the view's list) on each page."""
    pager: pygame.Rect | None = None


def draw_presenting(p: Painter, v: ScreenView) -> None:
    top = p.header(texts.PRESENT_TITLE, HEADER, left=v.window, seconds=v.seconds_left)
    y = top + p.px(8)
    plan = _layout(p, v, y)
    if plan.accent is not None:
        _draw_accent(p, plan.accent, y)
    pages = len(plan.case_pages)
    page = 0 if p.page is None else max(0, min(pages - 1, p.page))
    p.layout.page, p.layout.pages = page, pages
    for number, shown in enumerate(plan.case_index):
        for index in shown:
            p.layout.page_of[ShownCase(index)] = number
    p.layout.boxes["case"] = plan.case_rect
    p.panel(plan.case_rect)
    with p.inside(plan.case_rect):
        _draw_rows(p, _case_inner(p, plan.case_rect), plan.case_pages[page])
    if plan.pager is not None:
        draw_pager(p, plan.pager, page, pages)
    if plan.side_rect is not None and plan.side_plan is not None:
        p.layout.boxes[plan.side] = plan.side_rect
        p.panel(plan.side_rect)
        with p.inside(plan.side_rect):
            _draw_side(p, plan.side_rect, plan.side_plan)
    draw_level_buttons(p, plan.buttons, grid=plan.grid)


# -- the search ------------------------------------------------------------------------------


def _layout(p: Painter, v: ScreenView, y: int) -> _Plan:
    """The layout of ``v`` with the panels from ``y``: searched once per view and panel (the
    countdown does not change it)."""
    key: Hashable = (
        "presenting",
        p.size,
        p.dpi,
        texts.language(),
        y,
        v.cases,
        v.theme,
        v.message,
        v.clerk_name,
        v.clerk_id,
        v.terminal,
        v.item_index,
        v.item_count,
        v.can_expand,
    )
    plan = p.memo.get(key)
    if not isinstance(plan, _Plan):
        if len(p.memo) > 16:
            p.memo.clear()
        plan = _search(p, v, y)
        p.memo[key] = plan
    return plan


def _search(p: Painter, v: ScreenView, y: int) -> _Plan:
    """The first layout that holds every text the citizen must read whole (the module's
    steps); when none does, the last step at the smallest size (what does not fit is then
    recorded as not shown)."""
    side = "terminal" if v.terminal else ("clerk" if v.clerk_name or v.clerk_id else "")
    rooms = list(_rooms(p, v, y, side))
    cases = len(v.cases)
    search = _Search(p, v, side)
    # Every case of a list on one page when they fit without taking room from anything else;
    # then paged (a list) or with more room (one case).
    for room in rooms:
        if room.lean:
            plan = search.plan(y, room, cases)
            if plan is not None:
                return plan
    if cases > 1:  # paged: at the room that takes the fewest pages (the labels shown if any)
        for labels in (True, False):
            plans = [search.plan(y, room, 1, paged=True) for room in rooms if room.labels == labels]
            fewest = min(
                (plan for plan in plans if plan is not None),
                key=lambda plan: len(plan.case_pages),
                default=None,
            )
            if fewest is not None:
                return fewest
        return search.plan(y, rooms[-1], 1, last=True, paged=True) or _never()
    for room in rooms:
        plan = search.plan(y, room, 1)
        if plan is not None:
            return plan
    return search.plan(y, rooms[-1], 1, last=True) or _never()


def _never() -> _Plan:
    raise AssertionError("the last step always gives a layout")


def _rooms(p: Painter, v: ScreenView, y: int, side: str) -> Iterator[_Room]:
    """The steps of the search that give the panels room, in order: the accent lines capped;
    at each height of the level buttons, from the design down to 15 mm, the clerk panel at
    each of its widths (landscape); the buttons in two rows (portrait); the labels left out."""
    yield _Room(False, _design_button_h(p, v, y, capped=False), lean=True)
    shares = SIDE_SHARES if side and not p.portrait else SIDE_SHARES[:1]
    design = _design_button_h(p, v, y, capped=True)
    for share in shares:
        yield _Room(True, design, share=share, lean=True)
    for h in _down_to(p, design)[1:]:
        for share in shares:
            yield _Room(True, h, share=share)
    if p.portrait:  # the level buttons in two rows
        for h in _down_to(p, p.tap(GRID_ROW_H)):
            yield _Room(True, h, grid=True)
    for share in shares:
        yield _Room(True, p.min_target, grid=p.portrait, share=share, labels=False)


def _down_to(p: Painter, design: int) -> list[int]:
    """Button heights from ``design`` down to 15 mm, a step at a time."""
    heights = list(range(design, p.min_target, -p.px(10)))
    return [*heights, p.min_target] if design > p.min_target else [design]


def _design_button_h(p: Painter, v: ScreenView, y: int, *, capped: bool) -> int:
    """The level buttons' height (each, in portrait) as designed below the accent lines."""
    _, height = p.size
    accent = _accent(p, v, capped=capped)
    if accent is not None:
        y += accent.height + p.px(10)
    margin = p.px(12)
    if p.portrait:
        count = len(BUTTON_ORDER)
        room = height - margin - y - p.px(190)  # what the panels need at least
        return max(p.min_target, min(p.px(84), (room - (count - 1) * p.px(6)) // count))
    return max(p.min_target, min(p.px(150), (height - y) // 2))


class _Search:
    """The layouts of one view: what each panel needs at each try is worked out once (by
    width), then each room is a comparison of heights."""

    def __init__(self, p: Painter, v: ScreenView, side: str) -> None:
        self.p, self.v, self.side = p, v, side
        self._case: dict[tuple[int, bool, bool, float], _Case | None] = {}
        self._side: dict[tuple[int, bool, bool, float], _Side | None] = {}

    def case(self, width: int, labels: bool, anywhere: bool, factor: float) -> _Case | None:
        key = (width, labels, anywhere, factor)
        if key not in self._case:
            self._case[key] = _case_parts(self.p, self.v.cases, width, factor, anywhere, labels)
        return self._case[key]

    def side_plan(self, width: int, labels: bool, anywhere: bool, factor: float) -> _Side | None:
        key = (width, labels, anywhere, factor)
        if key not in self._side:
            self._side[key] = _side_plan(self.p, self.v, self.side, width, factor, anywhere, labels)
        return self._side[key]

    def case_need(
        self, width: int, labels: bool, need: int, anywhere: bool, factor: float, room: int
    ) -> int:
        """The height the case panel needs (more than ``room`` once it is known to)."""
        parts = self.case(width, labels, anywhere, factor)
        return _NEVER if parts is None else _case_need(self.p, parts, need, room)

    def page_need(self, width: int, labels: bool, anywhere: bool, factor: float) -> int:
        """The height a page of a paged list needs: the head, its tallest case and the line
        that points to the next page."""
        parts = self.case(width, labels, anywhere, factor)
        if parts is None:
            return _NEVER
        tallest = 0
        for i in range(parts.count):
            item = parts.item(i)
            if item is None:
                return _NEVER
            tallest = max(tallest, _height(self.p, item))
        return _height(self.p, parts.head) + tallest + _next(parts, parts.count).height(self.p)

    def need(
        self, width: int, labels: bool, need: int, try_: tuple[bool, float], room: int, paged: bool
    ) -> int:
        """The case panel's height: :meth:`page_need` when ``paged``, else :meth:`case_need`."""
        if paged:
            return self.page_need(width, labels, *try_)
        return self.case_need(width, labels, need, *try_, room)

    def side_need(self, width: int, labels: bool, anywhere: bool, factor: float) -> int:
        plan = self.side_plan(width, labels, anywhere, factor)
        return _NEVER if plan is None else _side_height(self.p, plan)

    def plan(
        self, y: int, room: _Room, need: int, last: bool = False, paged: bool = False
    ) -> _Plan | None:
        """The layout at ``room`` showing at least ``need`` cases of a list (``paged``: all of
        them, on pages beside a pager), or ``None`` when something that must be shown does not
        fit (``last``: the smallest, whatever fits)."""
        p, v = self.p, self.v
        width, _ = p.size
        margin, gap = p.px(12), p.px(10)
        accent = _accent(p, v, capped=room.capped)
        if accent is not None:
            y += accent.height + gap
        inner_w = width - 2 * margin
        buttons = _buttons_area(p, room)
        panels = pygame.Rect(margin, y, inner_w, max(0, buttons.top - gap - y))
        tries = TRIES[-1:] if last else TRIES
        if not self.side or p.portrait:
            side_h, chosen = 0, None
            for anywhere, factor in tries:
                if self.side:
                    side_w = _side_inner(p, panels).width
                    side_h = self.side_need(side_w, room.labels, anywhere, factor)
                    side_h += 2 * _side_pad(p) + gap
                case_h = max(0, panels.height - side_h)
                case_rect = pygame.Rect(panels.left, panels.top, inner_w, case_h)
                case_rect, pager = _carve_pager(p, case_rect, paged)
                inner = _case_inner(p, case_rect)
                needed = self.need(
                    inner.width, room.labels, need, (anywhere, factor), inner.height, paged
                )
                fits_pager = pager is None or _pager_fits(p, pager)
                if last or (side_h < _NEVER and needed <= inner.height and fits_pager):
                    chosen = (anywhere, factor)
                    break
            if chosen is None:
                return None
            anywhere, factor = chosen
            parts = self.case(inner.width, room.labels, anywhere, factor)
            filled = _case_fill(p, parts, inner.width, inner.height, need, last, paged)
            if filled is None:
                return None
            side_rect = side_plan = None
            if self.side:
                side_plan = self.side_plan(side_w, room.labels, anywhere, factor)
                side_top = (pager.bottom if pager is not None else case_rect.bottom) + gap
                side_h = min(side_h - gap, max(0, panels.bottom - side_top))
                side_rect = pygame.Rect(panels.left, side_top, inner_w, side_h)
            return _Plan(
                accent, buttons, room.grid, case_rect, filled[0], self.side, side_rect,
                side_plan, filled[1], _pager_if(p, pager, filled[0]),
            )  # fmt: skip
        side_w = int((inner_w - gap) * room.share)
        case_rect = pygame.Rect(panels.left, panels.top, inner_w - side_w - gap, panels.height)
        side_rect = pygame.Rect(case_rect.right + gap, panels.top, side_w, panels.height)
        case_rect, pager = _carve_pager(p, case_rect, paged)
        if pager is not None and not _pager_fits(p, pager) and not last:
            return None
        inner, side_inner = _case_inner(p, case_rect), _side_inner(p, side_rect)
        case_try = side_try = None
        for attempt in tries:
            needed = self.need(inner.width, room.labels, need, attempt, inner.height, paged)
            if last or needed <= inner.height:
                case_try = attempt
                break
        for attempt in tries:
            if last or self.side_need(side_inner.width, room.labels, *attempt) <= side_inner.height:
                side_try = attempt
                break
        if case_try is None or side_try is None:
            return None
        parts = self.case(inner.width, room.labels, *case_try)
        filled = _case_fill(p, parts, inner.width, inner.height, need, last, paged)
        side_plan = self.side_plan(side_inner.width, room.labels, *side_try)
        if filled is None:
            return None
        return _Plan(
            accent, buttons, room.grid, case_rect, filled[0], self.side, side_rect, side_plan,
            filled[1], _pager_if(p, pager, filled[0]),
        )  # fmt: skip


def _carve_pager(
    p: Painter, rect: pygame.Rect, paged: bool
) -> tuple[pygame.Rect, pygame.Rect | None]:
    """The case panel and its pager out of ``rect``: a 15 mm column at its right (a row under
    it in portrait), as the reasons' pager; the whole of ``rect`` when not ``paged``."""
    if not paged:
        return rect, None
    side, gap = p.min_target, p.px(10)
    if p.portrait:
        case = pygame.Rect(rect.left, rect.top, rect.width, max(0, rect.height - side - gap))
        return case, pygame.Rect(rect.left, case.bottom + gap, rect.width, side)
    case = pygame.Rect(rect.left, rect.top, max(0, rect.width - side - gap), rect.height)
    return case, pygame.Rect(case.right + gap, rect.top, side, rect.height)


def _pager_if(
    p: Painter, pager: pygame.Rect | None, pages: tuple[tuple[_Row, ...], ...]
) -> pygame.Rect | None:
    """The pager when there are pages to turn and it fits (beyond any layout it may not: the
    pages are then turned by the level presses held back, :mod:`kiosk.screen`)."""
    if pager is None or len(pages) < 2 or not _pager_fits(p, pager):
        return None
    return pager


def _pager_fits(p: Painter, pager: pygame.Rect) -> bool:
    """Room for ▲, "n/m" and ▼, each button 15 mm."""
    label = p.font(p.px(22), True).get_linesize()
    if p.portrait:
        return pager.width >= 3 * p.min_target and pager.height >= p.min_target
    return pager.width >= p.min_target and pager.height >= 2 * p.min_target + label


def _buttons_area(p: Painter, room: _Room) -> pygame.Rect:
    width, height = p.size
    margin = p.px(12)
    inner_w = width - 2 * margin
    if room.grid:
        area_h = 2 * room.button_h + p.px(6)
    elif p.portrait:
        count = len(BUTTON_ORDER)
        area_h = count * room.button_h + (count - 1) * p.px(6)
    else:
        area_h = room.button_h
    return pygame.Rect(margin, height - margin - area_h, inner_w, area_h)


def _draw_rows(p: Painter, box: pygame.Rect, rows: Sequence[_Row]) -> None:
    col = p.column(box)
    for row in rows:
        col.space(row.before)
        if row.note:
            col.pair(
                row.text,
                row.size,
                row.color,
                row.note,
                row.note_size,
                ACCENT,
                show_left=bool(row.lines),
            )
        elif row.lines:
            col.lines(row.text, row.lines, row.size, row.color, bold=row.bold, fixed=row.fixed)
        else:
            col.omit(row.text, row.size, row.color, bold=row.bold, fixed=row.fixed)


def _size(p: Painter, design: float, factor: float) -> int:
    return max(p.px(SMALLEST), p.px(design * factor))


def _whole(
    p: Painter, text: str, size: int, width: int, anywhere: bool, bold: bool = False
) -> tuple[str, ...] | None:
    """``text`` on one line, else broken between words (``anywhere``: anywhere), never
    shortened; ``None`` when it does not fit so.  Broken anywhere it always fits but in a box
    narrower than one character (then shortened: the record shows it)."""
    font = p.font(size, bold)
    if fits(font, text, width):
        return (text,)
    lines = wrap_all(font, text, width) if anywhere else wrap_words(font, text, width)
    if lines is None and anywhere:
        lines = wrap_lines(font, text, width, len(text))
    return tuple(lines) if lines else None


# -- the case panel --------------------------------------------------------------------------


def _case_inner(p: Painter, rect: pygame.Rect) -> pygame.Rect:
    pad = p.px(14 if not p.portrait else 8)
    return _inset(rect, pad, pad)


def _inset(rect: pygame.Rect, across: int, down: int) -> pygame.Rect:
    """``rect`` less ``across`` pixels each side and ``down`` at the top and bottom (never
    less than nothing: a panel with no room holds no line)."""
    return pygame.Rect(
        rect.left + across,
        rect.top + down,
        max(0, rect.width - 2 * across),
        max(0, rect.height - 2 * down),
    )


def _label(p: Painter, text: str, factor: float, width: int, shown: bool, before: int = 0) -> _Row:
    """A panel's label (fixed, muted), or the label left out (``shown`` False)."""
    size = _size(p, LABEL_SIZE, max(factor, 0.8))
    if not shown:
        return _Row(text, (), size, MUTED, fixed=True)
    size, lines = p.fit(text, size, width, 10**6)
    return _Row(text, tuple(lines), size, MUTED, fixed=True, before=before)


def _matter(p: Painter, text: str, size: int, width: int, bold: bool = True) -> tuple[str, ...]:
    """A matter name on up to :data:`MATTER_LINES` lines, "…" only beyond them."""
    return tuple(wrap_lines(p.font(size, bold), text, width, MATTER_LINES)) if text else ()


def _case_parts(
    p: Painter,
    cases: tuple[tuple[str, str], ...],
    width: int,
    factor: float,
    anywhere: bool,
    labels: bool,
) -> _Case | None:
    """The case panel's rows ``width`` wide at ``factor``; ``None`` when a serial does not fit
    the width so."""
    if len(cases) <= 1:
        matter, serial = cases[0] if cases else ("", "")
        matter_size, serial_size = _size(p, MATTER_SIZE, factor), _size(p, SERIAL_SIZE, factor)
        serial_lines = _whole(p, serial, serial_size, width, anywhere) if serial else ()
        if serial_lines is None:
            return None
        head = (
            _label(p, texts.LABEL_MATTER, factor, width, labels),
            _Row(matter, _matter(p, matter, matter_size, width), matter_size, INK, bold=True),
            _label(p, texts.LABEL_SERIAL, factor, width, labels, before=p.px(6)),
            _Row(serial, serial_lines, serial_size, INK),
        )
        return _Case(head, serial_size, True)
    label_size = _size(p, LABEL_SIZE, max(factor, 0.8))
    count = texts.BATCH_COUNT_FMT.format(count=len(cases))
    head = [
        _Row(
            texts.LABEL_MATTER,
            (texts.LABEL_MATTER,) if labels else (),
            label_size,
            MUTED,
            fixed=True,
            note=count,
            note_size=_size(p, COUNT_SIZE, factor),
        )
    ]
    item_size = _size(p, ITEM_SIZE if not p.portrait else ITEM_SIZE_PORTRAIT, factor)
    if len({matter for matter, _ in cases}) == 1:
        size = _size(p, BATCH_MATTER_SIZE, factor)
        head.append(_Row(cases[0][0], _matter(p, cases[0][0], size, width), size, INK, bold=True))
        head.append(_label(p, texts.LABEL_SERIAL, factor, width, labels, before=p.px(4)))

        def lay(matter: str, serial: str) -> tuple[_Row, ...] | None:
            lines = _whole(p, serial, item_size, width, anywhere)
            return None if lines is None else (_Row(serial, lines, item_size, INK),)

    else:

        def lay(matter: str, serial: str) -> tuple[_Row, ...] | None:
            return _theme_item(p, matter, serial, item_size, width, anywhere)

    return _Case(tuple(head), item_size, False, lay, cases)


def _theme_item(
    p: Painter, matter: str, serial: str, size: int, width: int, anywhere: bool
) -> tuple[_Row, ...] | None:
    """One case of a theme's list: "matter　serial" on one line when it fits, else the matter
    (up to :data:`MATTER_LINES` lines) and the serial whole under it."""
    line = texts.BATCH_LINE_FMT.format(matter=matter, serial=serial)
    if fits(p.font(size), line, width):
        return (_Row(line, (line,), size, INK),)
    serial_lines = _whole(p, serial, size, width, anywhere)
    if serial_lines is None:
        return None
    return (
        _Row(matter, _matter(p, matter, size, width, bold=False), size, INK, before=p.px(4)),
        _Row(serial, serial_lines, size, INK),
    )


def _next(parts: _Case, after: int) -> _Row:
    """The last line of a page of a paged list: how many cases the next pages hold."""
    text = texts.BATCH_NEXT_FMT.format(count=after)
    return _Row(text, (text,), parts.item_size, ACCENT, bold=True, fixed=True)


def _more(parts: _Case, hidden: int) -> _Row:
    text = texts.BATCH_MORE_FMT.format(count=hidden)
    return _Row(text, (text,), parts.item_size, MUTED, fixed=True)


def _case_need(p: Painter, parts: _Case, need: int, room: int = _NEVER) -> int:
    """The height the case panel's text needs with the first ``need`` cases of a list (a case
    whose serial does not fit the width: never); the cases are not laid out further once the
    height passes ``room``."""
    shown = min(need, parts.count)
    height = _height(p, parts.head)
    for i in range(shown):
        item = parts.item(i) if height <= room else None
        if item is None:
            return _NEVER
        height += _height(p, item)
    if shown < parts.count:
        height += _more(parts, parts.count - shown).height(p)
    return height


def _case_fill(
    p: Painter,
    parts: _Case | None,
    width: int,
    height: int,
    need: int,
    last: bool,
    paged: bool = False,
) -> tuple[tuple[tuple[_Row, ...], ...], tuple[tuple[int, ...], ...]] | None:
    """The case panel's pages in ``height`` and the cases on each: one page with a list's
    cases as many as fit (at least ``need``), room kept for "……等N件" while some are left;
    ``paged``: every case, as many on each page as fit under the head, each page but the
    last ending with how many follow.  ``None`` when that does not fit (``last``: whatever
    fits; a case taller than a page then has a page of its own)."""
    if parts is None:
        return None
    if parts.single:
        rows = _fewer_matter_lines(p, parts.head, width, height) if last else parts.head
        return (rows,), ((0,),)
    if paged:
        return _case_pages(p, parts, height, last)
    used = _height(p, parts.head)
    rows_: list[_Row] = list(parts.head)
    count = parts.count
    more_h = _more(parts, count).height(p)
    shown = 0
    for i in range(count):
        item = parts.item(i)
        reserve = more_h if i < count - 1 else 0
        if item is None or used + _height(p, item) + reserve > height:
            break
        item_h = _height(p, item)
        rows_.extend(item)
        used += item_h
        shown += 1
    index = (tuple(range(shown)),)
    if shown == count:
        return (tuple(rows_),), index
    if (shown < min(need, count) or used + more_h > height) and not last:
        return None
    return ((*rows_, _more(parts, count - shown)),), index


def _case_pages(
    p: Painter, parts: _Case, height: int, last: bool
) -> tuple[tuple[tuple[_Row, ...], ...], tuple[tuple[int, ...], ...]] | None:
    """A list cut into pages of ``height``: the head on each, then its cases in order, and
    (but on the last page) the line saying how many cases the next pages hold."""
    head_h = _height(p, parts.head)
    next_h = _next(parts, parts.count).height(p)
    pages: list[tuple[_Row, ...]] = []
    index: list[tuple[int, ...]] = []
    rows: list[_Row] = list(parts.head)
    on_page: list[int] = []
    used = head_h
    for i in range(parts.count):
        item = parts.item(i)
        if item is None and not last:
            return None
        item = item or ()
        item_h = _height(p, item)
        reserve = next_h if i < parts.count - 1 else 0
        if on_page and used + item_h + reserve > height:
            pages.append((*rows, _next(parts, parts.count - i)))
            index.append(tuple(on_page))
            rows, on_page, used = list(parts.head), [], head_h
        if used + item_h + reserve > height and not last:
            return None  # one case alone does not fit a page
        rows.extend(item)
        on_page.append(i)
        used += item_h
    pages.append(tuple(rows))
    index.append(tuple(on_page))
    return tuple(pages), tuple(index)


def _fewer_matter_lines(
    p: Painter, rows: tuple[_Row, ...], width: int, height: int
) -> tuple[_Row, ...]:
    """The last resort for one case: the matter on fewer lines ("…"), down to one, so the
    serial under it keeps its room."""
    matter = rows[1]
    font = p.font(matter.size, matter.bold)
    count = len(matter.lines)
    while count > 1 and _height(p, rows) > height:
        count -= 1
        lines = tuple(wrap_lines(font, matter.text, width, count))
        shorter = _Row(matter.text, lines, matter.size, matter.color, bold=matter.bold)
        rows = (rows[0], shorter, *rows[2:])
    return rows


# -- the clerk / terminal panel --------------------------------------------------------------


def _side_pad(p: Painter) -> int:
    return p.px(14 if not p.portrait else 8)


def _side_inner(p: Painter, rect: pygame.Rect) -> pygame.Rect:
    pad = _side_pad(p)
    across = p.px(12) if p.portrait else pad
    return _inset(rect, across, pad)


def _side_height(p: Painter, plan: _Side) -> int:
    if plan.inline is not None:
        return max(row.height(p) for row in plan.inline)
    return _height(p, plan.rows)


def _labelled(
    p: Painter, label: str, value: str, size: int, width: int, anywhere: bool, bold: bool
) -> tuple[str, ...] | None:
    """The lines of "label：value": one line, else the label and the value under it (broken
    between words; ``anywhere``: first "label：value" broken anywhere after the label, then
    the value broken anywhere under it); never shortened, ``None`` when it does not fit so."""
    text = texts.LABELLED_FMT.format(label=label, value=value)
    font = p.font(size, bold)
    if font.size(text)[0] <= width:
        return (text,)
    head = texts.LABELLED_FMT.format(label=label, value="").rstrip()
    if anywhere:
        lines = wrap_all(font, text, width)
        if lines and lines[0].startswith(head) and lines[0] != head:
            return tuple(lines)
    if font.size(head)[0] > width:
        return _whole(p, text, size, width, anywhere, bold)
    rest = _whole(p, value, size, width, anywhere, bold)
    return (head, *rest) if rest is not None else None


def _side_plan(
    p: Painter, v: ScreenView, side: str, width: int, factor: float, anywhere: bool, labels: bool
) -> _Side | None:
    """The clerk or terminal panel ``width`` wide at ``factor``; ``None`` when its name or
    number does not fit the width so."""
    if side == "terminal":
        size = _size(p, TERMINAL_SIZE, factor)
        lines = _labelled(p, texts.LABEL_TERMINAL, v.terminal, size, width, anywhere, True)
        if lines is None:
            return None
        text = texts.LABELLED_FMT.format(label=texts.LABEL_TERMINAL, value=v.terminal)
        return _Side(rows=(_Row(text, lines, size, INK, bold=True),))
    name_size = _size(p, NAME_SIZE if not p.portrait else NAME_SIZE_PORTRAIT, factor)
    number_size = _size(p, NUMBER_SIZE, factor)
    number = texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=v.clerk_id)
    label_size = _size(p, LABEL_SIZE, max(factor, 0.8))
    if p.portrait and not anywhere and labels:  # one line: the label, the name, the number
        parts = (
            _Row(texts.LABEL_CLERK, (texts.LABEL_CLERK,), label_size, MUTED, fixed=True),
            _Row(v.clerk_name, (v.clerk_name,) if v.clerk_name else (), name_size, INK, bold=True),
            _Row(number, (number,) if v.clerk_id else (), number_size, INK),
        )
        shown = [row for row in parts if row.lines]
        used = sum(p.font(row.size, row.bold).size(row.text)[0] for row in shown)
        if used + p.px(12) * (len(shown) - 1) <= width:
            return _Side(inline=parts)
    rows = [_label(p, texts.LABEL_CLERK, factor, width, labels)]
    if v.clerk_name:
        lines = _whole(p, v.clerk_name, name_size, width, anywhere, bold=True)
        if lines is None:
            return None
        rows.append(_Row(v.clerk_name, lines, name_size, INK, bold=True, before=p.px(4)))
    if v.clerk_id:
        lines = _labelled(p, texts.LABEL_CLERK_ID, v.clerk_id, number_size, width, anywhere, False)
        if lines is None:
            return None
        rows.append(_Row(number, lines, number_size, INK, before=p.px(6)))
    return _Side(rows=tuple(rows))


def _draw_side(p: Painter, rect: pygame.Rect, plan: _Side) -> None:
    inner = _side_inner(p, rect)
    if plan.inline is None:
        _draw_rows(p, inner, plan.rows)
        return
    label, name, number = plan.inline
    mid = rect.centery
    drawn = p.draw_line(
        label.text, label.text, label.size, label.color, fixed=True, midleft=(inner.left, mid)
    )
    if number.lines:
        p.draw_line(number.text, number.text, number.size, INK, midright=(inner.right, mid))
    if name.lines:
        p.draw_line(
            name.text, name.text, name.size, INK, bold=True, midleft=(drawn.right + p.px(12), mid)
        )


# -- the accent lines ------------------------------------------------------------------------


def _accent(p: Painter, v: ScreenView, *, capped: bool) -> _Accent | None:
    """The theme / item line and a notice under the header, with 分项评价 at their right when
    offered.  As they come: the theme and the item on one line when they fit, else each on up
    to two; the notice on as many as it needs.  ``capped``: one line for the theme and the item
    together (the item as "第2项/共3项", its matter being in the case panel; the theme
    shortened with "…"), one for the notice (a text of the pad: it only shrinks, and wraps when
    even its smallest size is too wide)."""
    width, _ = p.size
    margin, gap = p.px(12), p.px(10)
    theme = texts.THEME_FMT.format(theme=v.theme) if v.theme else ""
    matter = v.cases[0][0] if v.cases else ""
    item = ""
    if v.item_index:
        item = texts.THEME_ITEM_FMT.format(index=v.item_index, count=v.item_count, matter=matter)
    if not (theme or item or v.message or v.can_expand):
        return None
    size = p.px(ACCENT_SIZE)
    font = p.font(size, True)
    text_w = width - 2 * margin
    expand = None
    if v.can_expand:
        label_w = p.font(p.px(28), True).size(texts.BUTTON_EXPAND_THEME)[0] + p.px(24)
        design_w = p.px(EXPAND_W if not p.portrait else 170)
        button_w = max(design_w, p.min_target, min(label_w, text_w // 2))
        expand = pygame.Rect(width - margin - button_w, 0, button_w, p.tap(EXPAND_H))
        text_w = expand.left - gap - margin
    rows: list[_Row] = []
    parts = [part for part in (theme, item) if part]
    joined = texts.SEPARATOR.join(parts)
    if parts and font.size(joined)[0] <= text_w:
        rows.append(_Row(joined, (joined,), size, ACCENT, bold=True))
    elif parts and capped:
        if item:  # "第2项/共3项" first: which item this is matters more than the theme's name
            index = texts.THEME_ITEM_FMT.format(index=v.item_index, count=v.item_count, matter="")
            joined = texts.SEPARATOR.join(part for part in (_bare(index), theme) if part)
        rows.append(_Row(joined, (ellipsize(font, joined, text_w),), size, ACCENT, bold=True))
    else:
        for part in parts:
            rows.append(
                _Row(part, tuple(wrap_lines(font, part, text_w, 2)), size, ACCENT, bold=True)
            )
    if v.message:
        fitted = _notice(p, v.message, size, text_w, capped)
        rows.append(_Row(v.message, fitted[1], fitted[0], HEADER_NOTICE, bold=True, fixed=True))
    text_h = _height(p, rows)
    box_h = max(text_h + p.px(6), expand.height if expand else 0, p.px(32))
    return _Accent(tuple(rows), box_h, text_w, expand)


def _bare(text: str) -> str:
    """``text`` without the spaces and punctuation it ends with: "第2项/共3项：" → "第2项/共3项"."""
    while text and (text[-1].isspace() or unicodedata.category(text[-1]).startswith("P")):
        text = text[:-1]
    return text


def _notice(
    p: Painter, text: str, size: int, width: int, capped: bool
) -> tuple[int, tuple[str, ...]]:
    """A notice's size and lines: as few lines as it takes at its largest size that fits
    (``capped``: one line at any size it may shrink to, else two, else as many as needed)."""
    line_h = p.font(size, True).get_linesize()
    for rows in (1, 2) if capped else ():
        fitted, lines = p.fit(text, size, width, rows * line_h, bold=True)
        if "".join(lines).replace(" ", "") == text.replace(" ", ""):
            return fitted, tuple(lines)
    fitted, lines = p.fit(text, size, width, 10**6, bold=True)
    return fitted, tuple(lines)


def _draw_accent(p: Painter, accent: _Accent, y: int) -> None:
    margin = p.px(12)
    box = pygame.Rect(margin, y, accent.text_w, accent.height)
    p.layout.boxes["extra"] = box
    text_h = _height(p, accent.rows)
    with p.inside(box):
        top = box.centery - text_h // 2
        for row in accent.rows:
            p.draw_lines(
                row.text,
                row.lines,
                row.size,
                row.color,
                bold=row.bold,
                fixed=row.fixed,
                top=top,
                x=margin,
                align="left",
            )
            top += row.height(p)
    if accent.expand is not None:
        _expand_button(p, accent.expand.move(0, y))


def _expand_button(p: Painter, rect: pygame.Rect) -> None:
    """分项评价 (art. 31): rate the theme's items one by one; the level buttons stay below."""
    radius = p.px(12)
    pygame.draw.rect(p.surface, PANEL, rect, border_radius=radius)
    pygame.draw.rect(p.surface, ACCENT, rect, width=p.px(3), border_radius=radius)
    with p.inside(rect):
        p.block(
            texts.BUTTON_EXPAND_THEME,
            p.px(28),
            ACCENT,
            rect.inflate(-p.px(12), -p.px(8)),
            bold=True,
        )
    p.target(rect, ExpandTheme())


# -- the level buttons -----------------------------------------------------------------------


def draw_level_buttons(p: Painter, area: pygame.Rect, *, grid: bool = False) -> None:
    """The five level buttons in :data:`BUTTON_ORDER`, each a target: left to right in
    landscape, top to bottom in portrait, or (``grid``: portrait short of room) three over
    two, all one size, left to right then down; their labels all at one size (the largest at
    which every label fits its button)."""
    count = len(BUTTON_ORDER)
    rects = []
    if grid:
        gap = p.px(6)
        across = (count + 1) // 2
        cell_w = (area.width - gap * (across - 1)) // across
        cell_h = (area.height - gap) // 2
        for i in range(count):
            row, col = divmod(i, across)
            in_row = min(across, count - row * across)
            row_w = in_row * cell_w + (in_row - 1) * gap
            left = area.left + (area.width - row_w) // 2 + col * (cell_w + gap)
            rects.append(pygame.Rect(left, area.top + row * (cell_h + gap), cell_w, cell_h))
    else:
        gap = p.px(8 if not p.portrait else 6)
        along = area.height if p.portrait else area.width
        step = (along - gap * (count - 1)) / count
        for i in range(count):
            start = round(i * (step + gap))
            end = round(i * (step + gap) + step)
            if p.portrait:
                rects.append(pygame.Rect(area.left, area.top + start, area.width, end - start))
            else:
                rects.append(pygame.Rect(area.left + start, area.top, end - start, area.height))
    beside = p.portrait and not grid
    design = p.px(30 if beside else 26)
    boxes = [_label_box(p, rect, beside) for rect in rects]
    size = min(
        p.fit(texts.level_label(level), design, box.width, box.height, bold=True)[0]
        for level, box in zip(BUTTON_ORDER, boxes, strict=True)
    )
    for level, rect in zip(BUTTON_ORDER, rects, strict=True):
        _level_button(p, rect, level, size, beside)
        p.target(rect, PressLevel(level))


def _face_at(p: Painter, rect: pygame.Rect, beside: bool) -> tuple[tuple[int, int], int]:
    """Centre and radius of a button's face: at the left (``beside`` the label, portrait's
    column), in the upper third otherwise (so the centre of the button always shows the plain
    button colour)."""
    if beside:
        radius = int(rect.height * 0.3)
        return (rect.left + p.px(16) + radius, rect.centery), radius
    radius = int(min(rect.width, rect.height) * 0.16)
    return (rect.centerx, rect.top + int(rect.height * 0.28)), radius


def _label_box(p: Painter, rect: pygame.Rect, beside: bool) -> pygame.Rect:
    """Where a button's label goes: right of the face (``beside``), in the lower part else."""
    (face_x, _), radius = _face_at(p, rect, beside)
    if beside:
        left = face_x + radius + p.px(16)
        return pygame.Rect(
            left, rect.top + p.px(4), rect.right - p.px(8) - left, rect.height - p.px(8)
        )
    top = rect.top + int(rect.height * 0.56)
    return pygame.Rect(rect.left + p.px(4), top, rect.width - p.px(8), rect.bottom - p.px(4) - top)


def _level_button(p: Painter, rect: pygame.Rect, level: Level, size: int, beside: bool) -> None:
    pygame.draw.rect(p.surface, BUTTON_COLORS[level], rect, border_radius=p.px(14))
    face, radius = _face_at(p, rect, beside)
    _face(p.surface, face, radius, MOUTH[level])
    with p.inside(rect):
        p.block(
            texts.level_label(level),
            size,
            WHITE,
            _label_box(p, rect, beside),
            bold=True,
            align="left" if beside else "center",
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
