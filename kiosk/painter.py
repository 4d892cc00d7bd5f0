"""Drawing primitives every screen shares: scaled sizes, touch-target sizes, fonts, fitted text,
panels, the header band, the countdown, the online dot, centred and column text.

A :class:`Painter` draws on one surface at a scale of the design (800×480 landscape, 480×800
portrait) and records in its current :class:`~kiosk.layout.Layout` the tappable targets, the
named boxes and every text it drew (:class:`~kiosk.layout.Drawn`).

Two kinds of text: the pad's own texts (titles, labels, button texts: ``fixed=True``) are never
shortened; they get smaller, then wrap, to fit their box.  Data (a matter name, a clerk's name,
typed text) that does not fit is shortened with "…".
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pygame

import kiosk.pgcompat  # noqa: F401  (pygame.image.tobytes on Debian's pygame 2.1.2)
from kiosk import texts
from kiosk.layout import ELLIPSIS, Drawn, Layout, Target, ellipsize, wrap_all, wrap_lines
from kiosk.palette import (
    HEADER_COUNTDOWN,
    MUTED,
    OFFLINE_DOT,
    ONLINE_DOT,
    PANEL,
    PANEL_EDGE,
    WHITE,
    Color,
)
from kiosk.sizes import DEFAULT_DPI, min_target_px
from kiosk.view import TurnPage, UiAction

#: The smallest a fixed text may shrink to fit, as a share of the size asked for.
SHRINK = 0.6


@dataclass(frozen=True)
class Line:
    """One paragraph of a centred block: ``fixed`` texts shrink and wrap, data is shortened
    ("…") after ``max_lines`` lines."""

    text: str
    size: int
    color: Color
    bold: bool = False
    fixed: bool = True
    max_lines: int = 3


class Painter:
    """Draws on ``surface`` with the CJK font at ``font_path`` (bold text with the face at
    ``bold_path``, or the regular face when there is none); ``layout`` collects targets, boxes
    and texts.  ``dpi`` is the panel's: targets are at least :attr:`min_target` pixels."""

    def __init__(
        self,
        surface: pygame.Surface,
        font_path: Path,
        *,
        bold_path: Path | None = None,
        dpi: float = DEFAULT_DPI,
    ) -> None:
        self.surface = surface
        self.font_path = font_path
        self.bold_path = bold_path
        self.dpi = dpi
        self.layout = Layout()
        self.page: int | None = None
        """The page of a paged screen to draw (``None``: the screen's default page)."""
        self._fonts: dict[tuple[int, Path], pygame.font.Font] = {}
        self._owner: pygame.Rect | None = None
        self.memo: dict[Hashable, object] = {}
        """What a screen worked out for a view and may reuse when it draws the same again
        (the rating screen's layout: searched once, not at every countdown tick)."""

    # -- sizes -------------------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        return self.surface.get_size()

    @property
    def portrait(self) -> bool:
        """Taller than wide: the screens use their portrait layouts."""
        width, height = self.size
        return height > width

    @property
    def scale(self) -> float:
        """This surface against the design: 800×480, or 480×800 in portrait."""
        width, height = self.size
        if self.portrait:
            return min(width / 480, height / 800)
        return min(width / 800, height / 480)

    def px(self, value: float) -> int:
        """``value`` pixels of the design at this surface's scale (at least 1)."""
        return max(1, round(value * self.scale))

    @property
    def min_target(self) -> int:
        """The smallest side of a touch target on this panel: 15 mm at its dpi, in pixels."""
        return min_target_px(self.dpi)

    def tap(self, value: float) -> int:
        """A touch target's side: ``value`` design pixels, but never under 15 mm."""
        return max(self.px(value), self.min_target)

    # -- fonts -------------------------------------------------------------------------------

    def font_file(self, bold: bool = False) -> Path:
        """The face drawing regular or ``bold`` text: the bold face when there is one."""
        return self.bold_path if bold and self.bold_path is not None else self.font_path

    def font(self, size: int, bold: bool = False) -> pygame.font.Font:
        """The CJK font at ``size`` pixels (cached); ``bold`` from the real bold face, or the
        regular one (never pygame's smeared fake bold)."""
        path = self.font_file(bold)
        key = (max(1, size), path)
        font = self._fonts.get(key)
        if font is None:
            font = pygame.font.Font(str(path), key[0])
            self._fonts[key] = font
        return font

    def forget_fonts(self) -> None:
        """Drop the cached fonts (before the font module closes) and what was worked out with
        them."""
        self._fonts.clear()
        self.memo.clear()

    def fit(
        self, text: str, size: int, width: int, height: int, *, bold: bool = False
    ) -> tuple[int, list[str]]:
        """The largest size from ``size`` down to :data:`SHRINK` of it at which ``text`` fits
        ``width`` × ``height`` whole, and its lines: on one line, or broken between words
        (a text with spaces: "Very / dissatisfied" rather than a tiny one-liner); hanzi are
        broken only when no size fits them on one line.  At the smallest size, the lines that
        fit, the last one shortened (never in a good layout: the tests check every fixed text
        is whole)."""
        smallest = max(1, int(size * SHRINK))
        sizes = range(size, smallest - 1, -1)
        for anywhere in (False, True):  # between words at any size first, then anywhere
            for s in sizes:
                font = self.font(s, bold)
                line_h = font.get_linesize()
                if font.size(text)[0] <= width and line_h <= height:
                    return s, [text]
                if anywhere or " " in text.strip():
                    lines = wrap_all(font, text, width)
                    if lines is not None and len(lines) * line_h <= height:
                        return s, lines
        font = self.font(smallest, bold)
        room = max(1, height // font.get_linesize())
        return smallest, wrap_lines(font, text, width, room)

    # -- recording ---------------------------------------------------------------------------

    @contextmanager
    def inside(self, rect: pygame.Rect) -> Iterator[None]:
        """Texts drawn in the block belong to ``rect`` (a panel, a button): they must stay in it."""
        before, self._owner = self._owner, pygame.Rect(rect)
        try:
            yield
        finally:
            self._owner = before

    def target(
        self, rect: pygame.Rect, action: UiAction | TurnPage, *, enabled: bool = True
    ) -> None:
        """Record a tappable ``rect`` emitting ``action``."""
        self.layout.targets.append(Target(pygame.Rect(rect), action, enabled))

    # -- text --------------------------------------------------------------------------------

    def text(
        self,
        text: str,
        size: int,
        color: Color,
        *,
        max_width: int,
        bold: bool = False,
        fixed: bool = False,
        **anchor: tuple[int, int],
    ) -> pygame.Rect:
        """Draw one line, ``anchor`` like ``center=(x, y)``; returns where it went.  Data is
        shortened with "…" to ``max_width``; a ``fixed`` text shrinks instead (to
        :data:`SHRINK` of ``size``; only then is it shortened)."""
        if fixed:
            smallest = max(1, int(size * SHRINK))
            while size > smallest and self.font(size, bold).size(text)[0] > max_width:
                size -= 1
        font = self.font(size, bold)
        shown = ellipsize(font, text, max_width)
        return self.draw_line(text, shown, size, color, bold=bold, fixed=fixed, **anchor)

    def draw_line(
        self,
        text: str,
        shown: str,
        size: int,
        color: Color,
        *,
        bold: bool = False,
        fixed: bool = False,
        **anchor: tuple[int, int],
    ) -> pygame.Rect:
        """Draw ``shown`` (``text`` as it fitted) and record it; returns its rectangle.  A text
        with nothing of it shown is still recorded (shown ``""``, an empty rectangle at the
        anchor): nothing asked for vanishes from the record."""
        if not shown:
            if not text:
                return pygame.Rect(0, 0, 0, 0)
            rect = pygame.Rect(0, 0, 0, 0)
            for name, point in anchor.items():
                setattr(rect, name, point)
            owner = self._owner if self._owner is not None else self.surface.get_rect()
            self.layout.texts.append(Drawn(text, "", rect, rect.copy(), color, owner, fixed, size))
            return rect
        image = self.font(size, bold).render(shown, True, color)
        rect = image.get_rect(**anchor)
        self.surface.blit(image, rect)
        ink = image.get_bounding_rect().move(rect.topleft)
        owner = self._owner if self._owner is not None else self.surface.get_rect()
        self.layout.texts.append(Drawn(text, shown, rect, ink, color, owner, fixed, size))
        return rect

    def draw_lines(
        self,
        text: str,
        lines: Sequence[str],
        size: int,
        color: Color,
        *,
        bold: bool = False,
        fixed: bool = True,
        top: int,
        x: int,
        align: str = "center",
    ) -> pygame.Rect:
        """``lines`` (``text`` wrapped) from ``top`` down, centred on ``x`` or starting at it
        (``align="left"``); the last line is recorded as shortened when it does not hold the
        rest of ``text``.  Returns their union."""
        line_h = self.font(size, bold).get_linesize()
        drawn: list[pygame.Rect] = []
        for i, line in enumerate(lines):
            asked = _rest_after(text, lines[:i]) if i == len(lines) - 1 else line
            anchor = {"topleft": (x, top)} if align == "left" else {"midtop": (x, top)}
            drawn.append(self.draw_line(asked, line, size, color, bold=bold, fixed=fixed,
                                        **anchor))  # fmt: skip
            top += line_h
        if not drawn:
            return pygame.Rect(x, top, 0, 0)
        return drawn[0].unionall(drawn[1:])

    def block(
        self,
        text: str,
        size: int,
        color: Color,
        box: pygame.Rect,
        *,
        bold: bool = False,
        align: str = "center",
    ) -> pygame.Rect:
        """A fixed text fitted into ``box`` (smaller, then wrapped: never shortened in a good
        layout), its lines centred vertically, ``align`` "center" or "left"; returns their
        union (empty for no text)."""
        if not text:
            return pygame.Rect(box.centerx, box.centery, 0, 0)
        fitted, lines = self.fit(text, size, box.width, box.height, bold=bold)
        line_h = self.font(fitted, bold).get_linesize()
        top = box.centery - len(lines) * line_h // 2
        x = box.left if align == "left" else box.centerx
        return self.draw_lines(text, lines, fitted, color, bold=bold, top=top, x=x, align=align)

    def paragraph(self, line: Line, width: int) -> tuple[int, list[str]]:
        """Size and lines of ``line`` in ``width``: fixed texts shrink then wrap (any number
        of lines), data wraps to ``max_lines`` lines, the last one shortened."""
        if not line.text:
            return line.size, []
        if line.fixed:
            return self.fit(line.text, line.size, width, 10**6, bold=line.bold)
        font = self.font(line.size, line.bold)
        return line.size, wrap_lines(font, line.text, width, line.max_lines)

    def centered_lines(
        self, lines: Sequence[Line], box: pygame.Rect, *, prefix: str = ""
    ) -> pygame.Rect:
        """Paragraphs centred as one block in ``box`` (each horizontally, the block
        vertically); each paragraph's rectangle is kept as box ``<prefix><i>`` when a prefix is
        given.  Returns the union of what was drawn."""
        spacing = self.px(10)
        fitted = [(i, line, *self.paragraph(line, box.width)) for i, line in enumerate(lines)]
        fitted = [item for item in fitted if item[3]]
        heights = [
            len(w) * self.font(size, line.bold).get_linesize() for _, line, size, w in fitted
        ]
        top = box.centery - (sum(heights) + spacing * (len(heights) - 1)) // 2
        drawn: list[pygame.Rect] = []
        for (i, line, size, wrapped), height in zip(fitted, heights, strict=True):
            union = self.draw_lines(line.text, wrapped, size, line.color, bold=line.bold,
                                    fixed=line.fixed, top=top, x=box.centerx)  # fmt: skip
            if prefix:
                self.layout.boxes[f"{prefix}{i}"] = union
            drawn.append(union)
            top += height + spacing
        if not drawn:
            return pygame.Rect(box.centerx, box.centery, 0, 0)
        return drawn[0].unionall(drawn[1:])

    # -- shared pieces -----------------------------------------------------------------------

    def panel(self, rect: pygame.Rect) -> None:
        radius = self.px(12)
        pygame.draw.rect(self.surface, PANEL, rect, border_radius=radius)
        pygame.draw.rect(self.surface, PANEL_EDGE, rect, width=self.px(2), border_radius=radius)

    def header(
        self, title: str, color: Color, *, left: str = "", seconds: int | None = None
    ) -> int:
        """A coloured band with a centred title, a label left and the countdown right; returns
        its height.  In portrait the label and the countdown get a row of their own above the
        title (the title needs the whole width)."""
        width, _ = self.size
        margin = self.px(12)
        small = self.px(20)
        countdown = (
            texts.COUNTDOWN_FMT.format(seconds=max(0, seconds)) if seconds is not None else ""
        )
        two_rows = self.portrait and bool(left or countdown)
        row_h = self.font(small).get_linesize() + self.px(6) if two_rows else 0
        height = row_h + self.px(64 if not two_rows else 48)
        band = pygame.Rect(0, 0, width, height)
        pygame.draw.rect(self.surface, color, band)
        self.layout.boxes["header"] = band
        with self.inside(band):
            side = self.px(130)
            if two_rows:
                title_box = pygame.Rect(margin, row_h, width - 2 * margin, height - row_h)
                mid = row_h // 2 + self.px(3)
                label_w = width - 2 * margin
            else:
                title_box = pygame.Rect(side, 0, width - 2 * side, height)
                if not (left or countdown):
                    title_box = pygame.Rect(margin, 0, width - 2 * margin, height)
                mid = height // 2
                label_w = side - margin - self.px(6)
            count_rect = pygame.Rect(width - margin, mid, 0, 0)
            if countdown:
                right = (width - margin, mid)
                count_rect = self.text(countdown, small, HEADER_COUNTDOWN, fixed=True,
                                       max_width=label_w, midright=right)  # fmt: skip
            if left:
                room = (count_rect.left - margin - self.px(12)) if two_rows else label_w
                self.text(left, self.px(22) if not two_rows else small, WHITE, max_width=room,
                          midleft=(margin, mid))  # fmt: skip
            self.block(title, self.px(32), WHITE, title_box.inflate(0, -self.px(8)), bold=True)
        return height

    def countdown_corner(self, seconds: int | None, top: int = 0) -> None:
        """The small countdown at the top right, ``top`` pixels down (below a header band)."""
        if seconds is None:
            return
        width, _ = self.size
        margin = self.px(12)
        self.text(
            texts.COUNTDOWN_FMT.format(seconds=max(0, seconds)),
            self.px(20),
            MUTED,
            fixed=True,
            max_width=self.px(120),
            topright=(width - margin, top + margin),
        )

    def online_dot(self, online: bool) -> None:
        """A small dot at the bottom right: filled while the sync is connected."""
        width, height = self.size
        radius = self.px(4)
        center = (width - self.px(7), height - self.px(7))
        if online:
            pygame.draw.circle(self.surface, ONLINE_DOT, center, radius)
        else:
            pygame.draw.circle(self.surface, OFFLINE_DOT, center, radius, width=max(1, radius // 2))

    def column(self, rect: pygame.Rect) -> Column:
        return Column(self, rect)


class Column:
    """Lines written top to bottom inside a rectangle.  A line with no room left is not drawn
    but recorded as asked and not shown (see :meth:`Painter.draw_line`): the screen lays its
    texts out to fit first, and the tests read the record."""

    def __init__(self, painter: Painter, rect: pygame.Rect) -> None:
        self.painter = painter
        self.rect = rect
        self.y = rect.top

    def line(
        self, text: str, size: int, color: Color, *, bold: bool = False, fixed: bool = False
    ) -> bool:
        """One line (data shortened with "…" to the width, a ``fixed`` text shrunk); False
        when it had no room (recorded as not shown)."""
        line_h = self.painter.font(size, bold).get_linesize()
        if self.y + line_h > self.rect.bottom:
            self.omit(text, size, color, bold=bold, fixed=fixed)
            return False
        if text:
            self.painter.text(
                text,
                size,
                color,
                bold=bold,
                fixed=fixed,
                max_width=self.rect.width,
                topleft=(self.rect.left, self.y),
            )
        self.y += line_h
        return True

    def lines(
        self,
        text: str,
        lines: Sequence[str],
        size: int,
        color: Color,
        *,
        bold: bool = False,
        fixed: bool = False,
    ) -> bool:
        """``text`` as already broken into ``lines`` that fit the width, left-aligned; the
        lines with no room are not drawn and the last one drawn is recorded as shortened (none
        drawn: recorded as not shown).  False when not all had room."""
        line_h = self.painter.font(size, bold).get_linesize()
        room = max(0, (self.rect.bottom - self.y) // line_h)
        if not lines:
            return True
        if room == 0:
            self.omit(text, size, color, bold=bold, fixed=fixed)
            return False
        drawn = list(lines[:room])
        cut = len(drawn) < len(lines)
        if cut:
            drawn[-1] = ellipsize(self.painter.font(size, bold), drawn[-1] + ELLIPSIS,
                                  self.rect.width)  # fmt: skip
        self.painter.draw_lines(text, drawn, size, color, bold=bold, fixed=fixed, top=self.y,
                                x=self.rect.left, align="left")  # fmt: skip
        self.y += len(drawn) * line_h
        return not cut

    def omit(
        self, text: str, size: int, color: Color, *, bold: bool = False, fixed: bool = False
    ) -> None:
        """Record ``text`` as asked for and not shown (a decoration the layout left out, or a
        line with no room), where the next line would go."""
        self.painter.draw_line(text, "", size, color, bold=bold, fixed=fixed,
                               topleft=(self.rect.left, min(self.y, self.rect.bottom)))  # fmt: skip

    def pair(
        self,
        left: str,
        left_size: int,
        left_color: Color,
        right: str,
        right_size: int,
        right_color: Color,
        *,
        show_left: bool = True,
    ) -> bool:
        """A fixed label left and a fixed bold note right on one line (the note wins the
        room); ``show_left`` False records the label as left out.  False when the line had no
        room (both recorded as not shown)."""
        line_h = max(
            self.painter.font(left_size).get_linesize() if show_left else 0,
            self.painter.font(right_size, True).get_linesize(),
        )
        if self.y + line_h > self.rect.bottom:
            self.omit(right, right_size, right_color, bold=True, fixed=True)
            self.omit(left, left_size, left_color, fixed=True)
            return False
        mid = self.y + line_h // 2
        drawn = self.painter.text(
            right,
            right_size,
            right_color,
            bold=True,
            fixed=True,
            max_width=self.rect.width // 2,
            midright=(self.rect.right, mid),
        )
        if show_left:
            self.painter.text(
                left,
                left_size,
                left_color,
                fixed=True,
                max_width=max(0, drawn.left - self.rect.left - 8)
                if drawn.width
                else self.rect.width,
                midleft=(self.rect.left, mid),
            )
        else:
            self.omit(left, left_size, left_color, fixed=True)
        self.y += line_h
        return True

    def space(self, pixels: int) -> None:
        self.y += pixels

    @property
    def room(self) -> int:
        """Pixels left below the last line."""
        return self.rect.bottom - self.y


def _rest_after(text: str, lines: Sequence[str]) -> str:
    """What of ``text`` is left after the characters of ``lines`` (wrapping drops the spaces
    and newlines it breaks at)."""
    i = 0
    for line in lines:
        for char in line:
            while i < len(text) and text[i] != char and text[i].isspace():
                i += 1
            if i < len(text) and text[i] == char:
                i += 1
    return text[i:].strip()
