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
    font: pygame.font.Font,
    text: str,
    max_width: int,
    piece: Callable[[int], str],
    shorten: Callable[[int], str],
) -> str:
    """``text`` if it fits, else ``shorten(n)`` for the largest ``n`` that fits; ``piece(n)``
    is the ``n`` characters of ``text`` kept (measured first: a long text is never measured
    whole)."""
    if _largest(len(text), lambda n: font.size(piece(n))[0] <= max_width) == len(text):
        return text
    if max_width <= 0 or font.size(ELLIPSIS)[0] > max_width:
        return ""
    return shorten(_largest(len(text), lambda n: font.size(shorten(n))[0] <= max_width))


def _largest(limit: int, fits: Callable[[int], bool]) -> int:
    """The largest ``n`` in 0…``limit`` with ``fits(n)`` (``fits`` true up to some ``n``, false
    after; ``fits(0)`` assumed): doubling from 1, then halving, so a long text is measured in
    pieces about as long as what fits, never whole."""
    lo, hi = 0, 1
    while hi < limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit)
    if hi > lo and fits(hi):
        return hi
    hi -= 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def fits(font: pygame.font.Font, text: str, max_width: int) -> bool:
    """``text`` is at most ``max_width`` wide (a long text that does not fit is never measured
    whole: cheap for a 200-character name in a 400-pixel box)."""
    return _prefix_fit(font, text, max_width) == len(text)


def _prefix_fit(font: pygame.font.Font, text: str, max_width: int) -> int:
    """How many characters from the start of ``text`` fit ``max_width``."""
    return _largest(len(text), lambda n: font.size(text[:n])[0] <= max_width)


def ellipsize(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` shortened with "…" at the end so it is at most ``max_width`` pixels wide."""
    return _longest_fit(
        font, text, max_width, lambda n: text[:n], lambda n: text[:n].rstrip() + ELLIPSIS
    )


def ellipsize_head(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` shortened with "…" at the start (keeps the end, e.g. what is being typed)."""
    return _longest_fit(
        font,
        text,
        max_width,
        lambda n: text[len(text) - n :],
        lambda n: ELLIPSIS + text[len(text) - n :],
    )


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
            lo = _prefix_fit(font, rest, max_width)
            if lo == len(rest):
                lines.append(rest)
                break
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
        while (lo := _prefix_fit(font, rest, max_width)) < len(rest):
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


#: Where a name breaks naturally besides a space: after the middle dot of a transliterated
#: name ("阿卜杜热合曼·艾合买提").
NAME_BREAKS = "·・"


def wrap_words(font: pygame.font.Font, text: str, max_width: int) -> list[str] | None:
    """``text`` broken only where it breaks naturally (at spaces, after a name's middle dot)
    into lines of at most ``max_width``, never shortened; ``None`` when a part is too wide."""
    words: list[str] = []
    word = ""
    for char in text:
        if char == " ":
            if word:
                words.append(word)
            word = ""
            continue
        word += char
        if char in NAME_BREAKS:
            words.append(word)
            word = ""
    if word:
        words.append(word)
    lines: list[str] = []
    for word in words:
        if font.size(word)[0] > max_width:
            return None
        if lines:
            glue = "" if lines[-1][-1] in NAME_BREAKS else " "
            joined = lines[-1] + glue + word
            if font.size(joined)[0] <= max_width:
                lines[-1] = joined
                continue
        lines.append(word)
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
