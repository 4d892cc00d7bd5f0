"""Find and check a CJK font by path.  ``pygame.font.SysFont`` is never used: it silently falls
back to a font without hanzi and the citizen sees boxes.

Bold text comes from a real bold face (``[screen] font_bold``, or a known Noto Sans CJK Bold file)
or, with none, from the regular face: pygame's ``set_bold`` smears the glyphs sideways and is
never used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pygame

import kiosk.pgcompat  # noqa: F401  (pygame.image.tobytes on Debian's pygame 2.1.2)
from evaluator.rules.errors import FontError
from evaluator.rules.shipped import FONT_SEARCH_PATHS
from kiosk import texts

#: Searched in order when no font is configured (the one list ``config check`` also uses).
KNOWN_FONT_PATHS: tuple[Path, ...] = FONT_SEARCH_PATHS

#: Bold CJK faces searched in order when no bold face is configured (none found: bold text is
#: drawn in the regular face).  Debian's ``fonts-noto-cjk`` installs the first.
KNOWN_BOLD_FONT_PATHS: tuple[Path, ...] = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJKsc-Bold.otf"),
    Path("/usr/share/fonts/truetype/noto/NotoSansCJK-Bold.ttc"),
    Path("/usr/share/fonts/truetype/noto/NotoSansCJKsc-Bold.otf"),
    Path("/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc"),
    Path("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc"),
)

log = logging.getLogger(__name__)

#: Characters every screen needs; each must have a real glyph.
_PROBE = "满意评价窗口"
#: A noncharacter no font maps: renders as the font's "missing glyph" box.
_MISSING = "\uffff"


def find_cjk_font(configured: Path | None = None) -> Path:
    """The CJK font to use: ``configured`` if given, else the first known location that exists.

    The chosen font is checked to really draw hanzi.  Raises :class:`FontError` with a message an
    operator can act on (the path, or every path searched and the package to install).
    """
    if configured is not None:
        path = Path(configured)
        if not path.is_file():
            raise FontError(texts.FONT_CONFIGURED_MISSING_FMT.format(path=path))
        check_hanzi(path)
        return path
    for path in KNOWN_FONT_PATHS:
        if path.is_file():
            check_hanzi(path)
            return path
    raise FontError(
        texts.FONT_NOT_FOUND_FMT.format(paths=", ".join(str(p) for p in KNOWN_FONT_PATHS))
    )


def find_bold_font(configured: Path | None = None) -> Path | None:
    """The bold CJK face: ``configured`` if given (checked like the regular font: a missing
    file or one without hanzi raises :class:`FontError`), else the first known bold face that
    draws hanzi, else ``None`` (bold text then uses the regular face)."""
    if configured is not None:
        return find_cjk_font(configured)
    for path in KNOWN_BOLD_FONT_PATHS:
        if path.is_file():
            try:
                check_hanzi(path)
            except FontError as exc:
                log.warning("bold font skipped: %s", exc)
                continue
            return path
    return None


def check_hanzi(path: Path) -> None:
    """Raise :class:`FontError` unless the font at ``path`` loads and has glyphs for hanzi.

    ``Font.metrics`` gives ``None`` for a missing glyph on some SDL_ttf builds but the metrics of
    the "missing glyph" box on others, so the rendered hanzi are also compared with that box.
    """
    if not pygame.font.get_init():
        pygame.font.init()
    try:
        font = pygame.font.Font(str(path), 32)
    except (OSError, pygame.error, TypeError) as exc:
        # TypeError: pygame 2.1.2 (Debian Bookworm) says "not a file object" for a file that
        # is not a font; later versions raise pygame.error.
        raise FontError(texts.FONT_UNREADABLE_FMT.format(path=path, error=exc)) from exc
    if not has_hanzi(font):
        raise FontError(texts.FONT_NO_HANZI_FMT.format(path=path))


def has_hanzi(font: pygame.font.Font) -> bool:
    """True when every probe hanzi has its own glyph in ``font`` (not None, not the box)."""
    if any(m is None for m in font.metrics(_PROBE)):
        return False

    def pixels(text: str) -> bytes:
        surface = font.render(text, False, (255, 255, 255), (0, 0, 0))
        return bytes(pygame.image.tobytes(surface, "RGB")) + repr(surface.get_size()).encode()

    box = pixels(_MISSING)
    seen = set()
    for char in _PROBE:
        drawn = pixels(char)
        if drawn == box:
            return False
        seen.add(drawn)
    # A font drawing one and the same shape for every hanzi is a box font too.
    return len(seen) == len(set(_PROBE))
