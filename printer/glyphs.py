"""Text drawn the way a thermal printer lays it out, with a CJK font through Pillow.

A printer in Chinese mode prints a one-byte (ASCII) character in a cell of 12×24 dots and a
multi-byte (GB18030) character in 24×24, scaled by ``GS !``.  Raster text (printers without a
Chinese font) and the preview of printed text both draw into those same cells, so a line is as
wide on every kind of printer and the layout's column count is exact.

The font is found by path (:data:`evaluator.rules.shipped.FONT_SEARCH_PATHS`, the screen's list),
never by family name, and checked to really have hanzi: a font without them draws boxes.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

from evaluator.rules.errors import FontError
from evaluator.rules.shipped import FONT_SEARCH_PATHS
from printer.profile import CHAR_DOTS, COLUMN_DOTS

#: Hanzi every receipt needs; each must have its own glyph.
_PROBE = "办件回执评价窗口"
#: A noncharacter no font maps: its glyph is the font's "missing" box.
_MISSING = "\uffff"
WHITE, BLACK = 255, 0


def columns(char: str) -> int:
    """Columns ``char`` takes on the printer: 1 for ASCII, 2 for a GB18030 multi-byte character."""
    return 1 if ord(char) < 0x80 else 2


def text_columns(text: str) -> int:
    """Columns ``text`` takes at size 1."""
    return sum(columns(c) for c in text)


def find_font(configured: str = "") -> Path:
    """The CJK font to draw with: ``configured`` if given, else the first known one found.

    :class:`FontError` names the path (or every path searched) when no font with hanzi loads.
    """
    candidates = [Path(configured)] if configured else list(FONT_SEARCH_PATHS)
    for path in candidates:
        if path.is_file():
            if not has_hanzi(path):
                raise FontError(f"{path}: the font has no hanzi (it would print boxes)")
            return path
        if configured:
            raise FontError(f"{path}: font not found")
    raise FontError(
        "no CJK font found for the receipt printer; install fonts-wqy-microhei or set the "
        "printer profile's font; searched: " + ", ".join(str(p) for p in candidates)
    )


@functools.cache
def has_hanzi(path: Path) -> bool:
    """True when every probe hanzi has a glyph of its own in the font at ``path``."""
    try:
        font = ImageFont.truetype(str(path), CHAR_DOTS)
    except OSError:
        return False

    def pixels(text: str) -> bytes:
        image = Image.new("L", (CHAR_DOTS * 2, CHAR_DOTS * 2), WHITE)
        ImageDraw.Draw(image).text((0, 0), text, font=font, fill=BLACK)
        return image.tobytes()

    box = pixels(_MISSING)
    drawn = {pixels(c) for c in _PROBE}
    return box not in drawn and len(drawn) == len(_PROBE)


@functools.cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


@functools.cache
def glyph(path: Path, char: str, scale: int, bold: bool) -> Image.Image:
    """``char`` in its printer cell at ``scale``: an ``L`` image, black ink on white, the cell's
    size exactly; a glyph wider than its cell is narrowed to fit."""
    width = COLUMN_DOTS * columns(char) * scale
    height = CHAR_DOTS * scale
    font = _font(path, round(22 * scale))
    advance = font.getlength(char)
    squeeze = advance > width
    canvas = Image.new("L", (max(width, round(advance) + 2), height), WHITE)
    x = 0 if squeeze else (width - advance) / 2
    ImageDraw.Draw(canvas).text((x, height / 2), char, font=font, fill=BLACK, anchor="lm")
    if bold:
        canvas = ImageChops.darker(canvas, ImageChops.offset(canvas, 1, 0))
    if squeeze:
        canvas = canvas.resize((width, height), Image.Resampling.LANCZOS)
    return canvas.crop((0, 0, width, height))


def draw_text(
    image: Image.Image, x: int, y: int, text: str, *, font: Path, scale: int = 1, bold: bool = False
) -> int:
    """Draw ``text`` cell by cell on the ``L`` image from (``x``, ``y``) (top left); returns the
    x after the last cell."""
    for char in text:
        cell = glyph(font, char, scale, bold)
        image.paste(
            ImageChops.darker(image.crop((x, y, x + cell.width, y + cell.height)), cell), (x, y)
        )
        x += cell.width
    return x


def to_raster(image: Image.Image) -> tuple[int, int, bytes]:
    """``(width_bytes, rows, data)`` of an ``L`` image for ``GS v 0``: a dot is black when its
    grey value is below 128.  The width must be a whole number of bytes."""
    if image.width % 8:
        raise ValueError(f"raster width {image.width} is not a multiple of 8")
    bits = image.point(lambda v: 255 if v < 128 else 0).convert("1")
    return image.width // 8, image.height, bits.tobytes()


def from_raster(width_bytes: int, rows: int, data: bytes) -> Image.Image:
    """The ``L`` image (black 0, white 255) of ``GS v 0`` raster data."""
    bits = Image.frombytes("1", (width_bytes * 8, rows), data)
    return ImageChops.invert(bits.convert("L"))
