"""What drawing and hit testing share: text fitted to a width, and the tappable targets.

Text fitting is a pure function of a font; every drawing helper that draws a tappable thing
also records its rectangle and action as a :class:`Target` of the screen's :class:`Layout`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pygame

from kiosk.view import UiAction

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


@dataclass(frozen=True)
class Target:
    """A tappable rectangle of the last rendered screen."""

    rect: pygame.Rect
    action: UiAction
    enabled: bool = True


@dataclass
class Layout:
    """Tappable targets and named boxes of the last rendered screen (shared by draw and hit)."""

    screen: str = ""
    targets: list[Target] = field(default_factory=list)
    boxes: dict[str, pygame.Rect] = field(default_factory=dict)

    def find(self, action: UiAction) -> Target | None:
        """The target that emits ``action`` (enabled or not), if drawn."""
        for target in self.targets:
            if target.action == action:
                return target
        return None

    def hit(self, pos: tuple[int, int]) -> UiAction | None:
        """The action at ``pos``; ``None`` off target or on a disabled one (topmost wins)."""
        for target in reversed(self.targets):
            if target.rect.collidepoint(pos):
                return target.action if target.enabled else None
        return None
