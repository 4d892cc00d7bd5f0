"""What a receipt looks like on paper, drawn from the very bytes the printer would get.

:func:`preview` builds the receipt's ESC/POS stream (:func:`printer.render.receipt_bytes`) and
:func:`page_image` draws what :func:`printer.decode.decode` reads from it: text in the printer's
cells (:mod:`printer.glyphs`; the glyph shapes are this font's, the positions the printer's),
raster images as sent, a native QR as the symbol the printer would draw from the stored data,
feeds as blank paper, a cut as a dashed grey line.  Nothing is drawn from the receipt itself,
so a wrong byte shows.  :func:`with_notice` puts a framed band above the paper saying what the
picture is (a specimen, and which key signed its QR): it is on the picture only, never in the
printer's bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from printer.decode import Cut, Element, Feed, QrCode, Raster, Text, decode
from printer.glyphs import draw_text, find_font, text_columns
from printer.layout import wrap
from printer.profile import CHAR_DOTS, COLUMN_DOTS, PrinterProfile
from printer.qr import qr_image, qr_matrix
from printer.receipt import Receipt
from printer.render import receipt_bytes

#: Blank paper drawn above the first line and below a cut.
MARGIN = 16
CUT_GREY = 160
#: White around a notice's text inside its frame, and the frame's width.
NOTICE_PAD = 10
NOTICE_FRAME = 3


def preview(receipt: Receipt, profile: PrinterProfile) -> bytes:
    """The PNG of ``receipt`` as ``profile``'s printer would print it."""
    return png(page_image(receipt_bytes(receipt, profile), profile))


def png(image: Image.Image) -> bytes:
    """``image`` as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _x(align: int, width: int, paper: int) -> int:
    if align == 1:
        return max((paper - width) // 2, 0)
    if align == 2:
        return max(paper - width, 0)
    return 0


def _text_rows(element: Text, paper: int) -> list[list[tuple[str, int, int, bool]]]:
    """The line's characters (char, width, height, bold) split where the paper ends, as the
    printer wraps a line too long for it."""
    rows: list[list[tuple[str, int, int, bool]]] = [[]]
    used = 0
    for seg in element.segments:
        for char in seg.text:
            width = text_columns(char) * COLUMN_DOTS * seg.width
            if used + width > paper and rows[-1]:
                rows.append([])
                used = 0
            rows[-1].append((char, seg.width, seg.height, seg.bold))
            used += width
    return rows


def _draw_text(page: Image.Image, y: int, element: Text, font: Path, paper: int) -> int:
    rows = _text_rows(element, paper)
    for n, row in enumerate(rows):
        width = sum(text_columns(c) * COLUMN_DOTS * w for c, w, _, _ in row)
        x = _x(element.align, width, paper)
        tallest = max((h for _, _, h, _ in row), default=1)
        for char, w, h, bold in row:
            cell = Image.new("L", (text_columns(char) * COLUMN_DOTS * h, CHAR_DOTS * h), 255)
            draw_text(cell, 0, 0, char, font=font, scale=h, bold=bold)
            if w != h:
                cell = cell.resize((text_columns(char) * COLUMN_DOTS * w, cell.height))
            page.paste(cell, (x, y + (tallest - h) * CHAR_DOTS))
            x += cell.width
        y += element.advance if n == len(rows) - 1 else max(element.advance, CHAR_DOTS * tallest)
    return y


def page_image(data: bytes, profile: PrinterProfile) -> Image.Image:
    """The paper ``data`` would come out as on ``profile``'s printer: an ``L`` image as wide as
    the paper's printable dots."""
    elements = decode(data)
    paper = profile.dots
    height = MARGIN * 2 + sum(_height(e, paper) for e in elements)
    page = Image.new("L", (paper, height), 255)
    font = find_font(profile.font)
    y = MARGIN
    for element in elements:
        if isinstance(element, Text):
            y = _draw_text(page, y, element, font, paper)
        elif isinstance(element, Raster):
            page.paste(
                element.image.crop((0, 0, min(element.image.width, paper), element.image.height)),
                (0, y),
            )
            y += element.image.height
        elif isinstance(element, QrCode):
            symbol = qr_image(
                qr_matrix(element.data, element.ecc), element.module, quiet_zone=False
            )
            page.paste(symbol, (_x(element.align, symbol.width, paper), y))
            y += symbol.height
        elif isinstance(element, Feed):
            y += element.dots
        elif isinstance(element, Cut):
            y += MARGIN // 2
            draw = ImageDraw.Draw(page)
            for x in range(0, paper, 12):
                draw.line((x, y, x + 6, y), fill=CUT_GREY)
            y += MARGIN // 2
    return page


def _height(element: Element, paper: int) -> int:
    if isinstance(element, Text):
        rows = _text_rows(element, paper)
        tallest = max((h for row in rows for _, _, h, _ in row), default=1)
        return (len(rows) - 1) * max(element.advance, CHAR_DOTS * tallest) + element.advance
    if isinstance(element, Raster):
        return element.image.height
    if isinstance(element, QrCode):
        return len(qr_matrix(element.data, element.ecc)) * element.module
    if isinstance(element, Feed):
        return element.dots
    return MARGIN


def with_notice(page: Image.Image, lines: Sequence[str], font: Path) -> Image.Image:
    """``page`` below a framed band carrying ``lines`` (:func:`notice_band`): what a preview
    says about itself, on the picture only (the printer's bytes are not touched)."""
    band = notice_band(lines, page.width, font)
    out = Image.new("L", (page.width, band.height + page.height), 255)
    out.paste(band, (0, 0))
    out.paste(page, (0, band.height))
    return out


def notice_band(lines: Sequence[str], width: int, font: Path) -> Image.Image:
    """``lines`` drawn in printer-sized cells inside a black frame ``width`` dots wide, each
    line wrapped where the frame ends."""
    fits = max((width - 2 * NOTICE_PAD) // COLUMN_DOTS, 2)
    rows = [row for line in lines for row in wrap(line, fits) or [""]]
    height = 2 * NOTICE_PAD + len(rows) * CHAR_DOTS
    band = Image.new("L", (width, height), 255)
    for n, row in enumerate(rows):
        draw_text(band, NOTICE_PAD, NOTICE_PAD + n * CHAR_DOTS, row, font=font)
    ImageDraw.Draw(band).rectangle((0, 0, width - 1, height - 1), outline=0, width=NOTICE_FRAME)
    return band

