"""Drawing primitives every screen shares: scaled sizes, fonts, fitted text, panels, the header
band, the countdown, the online dot, centred and column text.

A :class:`Painter` draws on one surface at a scale of the 800×480 design and records tappable
targets and named boxes in its current :class:`~kiosk.layout.Layout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pygame

from kiosk import texts
from kiosk.layout import Layout, Target, ellipsize
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
from kiosk.view import UiAction

#: One centred line: (text, size in pixels, colour, bold).
Line = tuple[str, int, Color, bool]


class Painter:
    """Draws on ``surface`` with the CJK font at ``font_path`` (bold text with the face at
    ``bold_path``, or the regular face when there is none); ``layout`` collects targets."""

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
        self._fonts: dict[tuple[int, Path], pygame.font.Font] = {}

    @property
    def size(self) -> tuple[int, int]:
        return self.surface.get_size()

    @property
    def scale(self) -> float:
        width, height = self.size
        return min(width / 800, height / 480)

    @property
    def min_target(self) -> int:
        """The smallest side of a touch target on this panel: 15 mm at its dpi, in pixels."""
        return min_target_px(self.dpi)

    def px(self, value: float) -> int:
        """``value`` pixels of the 800×480 design at this surface's scale (at least 1)."""
        return max(1, round(value * self.scale))

    def font_file(self, bold: bool = False) -> Path:
        """The face drawing regular or ``bold`` text: the bold face when there is one."""
        return self.bold_path if bold and self.bold_path is not None else self.font_path

    def font(self, size: int, bold: bool = False) -> pygame.font.Font:
        """The CJK font at ``size`` pixels (cached); ``bold`` from the real bold face, or the
        regular one (never pygame's smeared fake bold)."""
        path = self.font_file(bold)
        key = (size, path)
        font = self._fonts.get(key)
        if font is None:
            font = pygame.font.Font(str(path), size)
            self._fonts[key] = font
        return font

    def forget_fonts(self) -> None:
        """Drop the cached fonts (before the font module closes)."""
        self._fonts.clear()

    def target(self, rect: pygame.Rect, action: UiAction, *, enabled: bool = True) -> None:
        """Record a tappable ``rect`` emitting ``action``."""
        self.layout.targets.append(Target(rect, action, enabled))

    def text(
        self,
        text: str,
        size: int,
        color: Color,
        *,
        max_width: int,
        bold: bool = False,
        **anchor: tuple[int, int],
    ) -> pygame.Rect:
        """Draw one line, shortened with "…" to ``max_width``; ``anchor`` like ``center=(x, y)``."""
        font = self.font(size, bold)
        shown = ellipsize(font, text, max_width)
        if not shown:
            return pygame.Rect(0, 0, 0, 0)
        image = font.render(shown, True, color)
        rect = image.get_rect(**anchor)
        self.surface.blit(image, rect)
        return rect

    def panel(self, rect: pygame.Rect) -> None:
        radius = self.px(12)
        pygame.draw.rect(self.surface, PANEL, rect, border_radius=radius)
        pygame.draw.rect(self.surface, PANEL_EDGE, rect, width=self.px(2), border_radius=radius)

    def header(
        self, title: str, color: Color, *, left: str = "", seconds: int | None = None
    ) -> int:
        """A coloured band with a centred title, a label left and the countdown right; returns
        its height."""
        width, _ = self.size
        height = self.px(64)
        margin = self.px(12)
        side = self.px(130)
        pygame.draw.rect(self.surface, color, pygame.Rect(0, 0, width, height))
        mid = height // 2
        self.text(
            title,
            self.px(32),
            WHITE,
            bold=True,
            max_width=width - 2 * side,
            center=(width // 2, mid),
        )
        if left:
            self.text(left, self.px(22), WHITE, max_width=side - margin - 6, midleft=(margin, mid))
        if seconds is not None:
            self.text(
                texts.COUNTDOWN_FMT.format(seconds=max(0, seconds)),
                self.px(20),
                HEADER_COUNTDOWN,
                max_width=side - margin - 6,
                midright=(width - margin, mid),
            )
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

    def centered_lines(self, lines: Sequence[Line], center_y: int, max_width: int) -> None:
        """Draw (text, size, color, bold) lines centred horizontally, as a block around y."""
        spacing = self.px(10)
        heights = [self.font(size, bold).get_linesize() + spacing for _, size, _, bold in lines]
        y = center_y - (sum(heights) - spacing) // 2
        width, _ = self.size
        for (text, size, color, bold), line_h in zip(lines, heights, strict=True):
            if text:
                self.text(text, size, color, bold=bold, max_width=max_width, midtop=(width // 2, y))
            y += line_h

    def column(self, rect: pygame.Rect) -> Column:
        return Column(self, rect)


class Column:
    """Lines written top to bottom inside a rectangle; a line that would not fit is skipped."""

    def __init__(self, painter: Painter, rect: pygame.Rect) -> None:
        self.painter = painter
        self.rect = rect
        self.y = rect.top

    def line(self, text: str, size: int, color: Color, *, bold: bool = False) -> bool:
        line_h = self.painter.font(size, bold).get_linesize()
        if self.y + line_h > self.rect.bottom:
            return False
        if text:
            self.painter.text(
                text,
                size,
                color,
                bold=bold,
                max_width=self.rect.width,
                topleft=(self.rect.left, self.y),
            )
        self.y += line_h
        return True

    def pair(
        self,
        left: str,
        left_size: int,
        left_color: Color,
        right: str,
        right_size: int,
        right_color: Color,
    ) -> bool:
        """A label left and a bold note right on one line (right side wins the room)."""
        line_h = max(
            self.painter.font(left_size).get_linesize(),
            self.painter.font(right_size, True).get_linesize(),
        )
        if self.y + line_h > self.rect.bottom:
            return False
        mid = self.y + line_h // 2
        drawn = self.painter.text(
            right,
            right_size,
            right_color,
            bold=True,
            max_width=self.rect.width,
            midright=(self.rect.right, mid),
        )
        self.painter.text(
            left,
            left_size,
            left_color,
            max_width=max(0, drawn.left - self.rect.left - 8) if drawn.width else self.rect.width,
            midleft=(self.rect.left, mid),
        )
        self.y += line_h
        return True

    def space(self, pixels: int) -> None:
        self.y += pixels
