"""What drawing and hit testing share: text fitted to a width, the tappable targets, and the
texts drawn.

Text fitting is a pure function of a font; every drawing helper that draws a tappable thing
also records its rectangle and action as a :class:`Target` of the screen's :class:`Layout`, and
every text drawn is recorded as a :class:`Drawn` (what was asked, what was shown, where, in
which colour, inside which box) so tests check the real pixels against it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import pygame

from kiosk.view import TurnPage, UiAction

Color = tuple[int, int, int]

ELLIPSIS = "…"


def _longest_fit(
    font: pygame.font.Font, text: str, max_width: int, shorten: Callable[[int], str]
) -> str:
    """``text`` if it fits, else ``shorten(n)`` for the largest ``n`` that fits (binary search)."""
    if font.size(text)[0] <= max_width:
        return text
    if max_width <= 0 or font.size(ELLIPSIS)[0] > max_width:
        return ""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.size(shorten(mid))[0] <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return shorten(lo)


def ellipsize(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` shortened with "…" at the end so it is at most ``max_width`` pixels wide."""
    return _longest_fit(font, text, max_width, lambda n: text[:n].rstrip() + ELLIPSIS)


def ellipsize_head(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` shortened with "…" at the start (keeps the end, e.g. what is being typed)."""
    return _longest_fit(font, text, max_width, lambda n: ELLIPSIS + text[len(text) - n :])


def wrap_lines(font: pygame.font.Font, text: str, max_width: int, max_lines: int) -> list[str]:
    """``text`` broken into at most ``max_lines`` lines of ``max_width``; the last one gets "…"
    when text remains.  Breaks anywhere (hanzi need no spaces); honours newlines."""
    if max_lines <= 0:
        return []
    lines: list[str] = []
    paragraphs = text.split("\n")
    for p_index, paragraph in enumerate(paragraphs):
        rest = paragraph
        while True:
            if len(lines) == max_lines - 1:
                remaining = "".join([rest, *(" " + p for p in paragraphs[p_index + 1 :])]).strip()
                if remaining or not lines:
                    lines.append(ellipsize(font, remaining, max_width))
                return lines
            if font.size(rest)[0] <= max_width:
                lines.append(rest)
                break
            lo, hi = 0, len(rest)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if font.size(rest[:mid])[0] <= max_width:
                    lo = mid
                else:
                    hi = mid - 1
            if lo == 0:
                lines.append(ellipsize(font, rest, max_width))
                return lines
            cut = lo
            space = rest.rfind(" ", 0, lo + 1)
            if space > lo // 2 and rest[lo : lo + 1] not in ("", " "):
                cut = space  # keep a Latin word whole when a space is near
            lines.append(rest[:cut].rstrip())
            rest = rest[cut:].lstrip()
            if not rest:
                break
    return lines


def wrap_all(font: pygame.font.Font, text: str, max_width: int) -> list[str] | None:
    """``text`` broken into lines of at most ``max_width`` (Latin words kept whole where a
    space allows, hanzi anywhere), never shortened; ``None`` when one character is too wide."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        rest = paragraph
        while font.size(rest)[0] > max_width:
            lo, hi = 0, len(rest)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if font.size(rest[:mid])[0] <= max_width:
                    lo = mid
                else:
                    hi = mid - 1
            if lo == 0:
                return None
            cut = lo
            space = rest.rfind(" ", 0, lo + 1)
            splits_word = rest[lo : lo + 1] not in ("", " ") and _is_latin(rest[lo - 1 : lo + 1])
            if space > 0 and splits_word:
                cut = space  # keep a Latin word whole
            lines.append(rest[:cut].rstrip())
            rest = rest[cut:].lstrip()
        lines.append(rest)
    return lines


def _is_latin(pair: str) -> bool:
    """True when a cut between these two characters would split a Latin word."""
    return all(c.isascii() and not c.isspace() for c in pair)


@dataclass(frozen=True)
class Target:
    """A tappable rectangle of the last rendered screen."""

    rect: pygame.Rect
    action: UiAction | TurnPage
    enabled: bool = True


@dataclass(frozen=True)
class Drawn:
    """One line of text as drawn: ``text`` what was asked for, ``shown`` what was drawn (shorter,
    ending in "…", when it did not fit), ``rect`` the rendered line, ``ink`` its inked pixels,
    ``owner`` the box it must stay inside (its panel, button, band; the screen by default),
    ``fixed`` a text of the pad itself (title, label, button), which is never shortened."""

    text: str
    shown: str
    rect: pygame.Rect
    ink: pygame.Rect
    color: Color
    owner: pygame.Rect
    fixed: bool = False
    size: int = 0

    @property
    def shortened(self) -> bool:
        return self.shown != self.text


@dataclass
class Layout:
    """Tappable targets and named boxes of the last rendered screen (shared by draw and hit)."""

    screen: str = ""
    targets: list[Target] = field(default_factory=list)
    boxes: dict[str, pygame.Rect] = field(default_factory=dict)
    texts: list[Drawn] = field(default_factory=list)
    page: int = 0
    """The page shown, from 0, of a screen whose targets take several pages (the reasons)."""
    pages: int = 1
    page_of: dict[Hashable, int] = field(default_factory=dict)
    """Every paged target's action → its page (targets of other pages are not in ``targets``)."""

    def find(self, action: UiAction | TurnPage) -> Target | None:
        """The target that emits ``action`` (enabled or not), if drawn."""
        for target in self.targets:
            if target.action == action:
                return target
        return None

    def hit(self, pos: tuple[int, int]) -> UiAction | TurnPage | None:
        """The action at ``pos``; ``None`` off target or on a disabled one (topmost wins)."""
        for target in reversed(self.targets):
            if target.rect.collidepoint(pos):
                return target.action if target.enabled else None
        return None
