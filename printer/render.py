"""A receipt as the exact ESC/POS bytes its printer gets, chosen by the printer's profile.

Text (profile ``text``):

* ``"gb18030"``: Chinese mode on (``FS &``), then each line's text encoded *deliberately* as
  GB18030, whatever it holds.  python-escpos's ``text()`` is not used: its "magic encode"
  (``escpos/magicencode.py``, ``MagicEncode.write``) sends a string as GB18030 only when it holds
  a character in U+4E00–U+9FA5, so a line of CJK punctuation, full-width digits or symbols alone
  goes through its code-page search and prints as ``?``, and it never sends ``FS &``.  A line
  with a four-byte GB18030 character (rare hanzi, ``¥``) is sent as a raster image instead,
  unless the profile says the printer's font has that area (``four_byte``).
* ``"raster"``: every line is drawn with the CJK font (:mod:`printer.glyphs`) into the same
  cells the printer's font would use and sent as ``GS v 0`` raster images.

The QR (profile ``qr``): ``"native"`` sends ``GS ( k`` (model 2, module size, ECC, store,
print) centred by ``ESC a 1`` (set before, as the printer needs); ``"image"`` sends the same
symbol (:mod:`printer.qr`) drawn here, as raster.

Raster images go in bands of at most :data:`BAND_ROWS` rows, so that no single command is longer
than :data:`MAX_COMMAND` bytes: after a write torn mid-way, :data:`RESYNC` (that many NUL bytes,
which a printer in standard mode ignores) completes whatever command the printer was left inside
before the next receipt's ``ESC @``.
"""

from __future__ import annotations

from PIL import Image

from printer import commands as cmd
from printer.glyphs import draw_text, find_font, text_columns, to_raster
from printer.layout import Block, Gap, Line, Qr, receipt_blocks, sticker_blocks
from printer.profile import CHAR_DOTS, COLUMN_DOTS, PAPER_DOTS, PrinterProfile
from printer.qr import QUIET_ZONE, module_dots, qr_image, qr_matrix, qr_modules
from printer.receipt import Receipt
from printer.sticker import Sticker

#: Dots of blank paper under each line of text.
LINE_GAP = 8
#: Rows of one ``GS v 0`` command.
BAND_ROWS = 128
#: The longest single command a receipt holds: a raster band across 80 mm paper.
MAX_COMMAND = 8 + max(PAPER_DOTS.values()) // 8 * BAND_ROWS
#: Sent before a receipt when the previous write was torn mid-way.
RESYNC = cmd.NUL * MAX_COMMAND
#: Dots fed after the last line, before the cut (or the tear bar).
TAIL_FEED = 24
TEAR_FEED_LINES = 4


def receipt_bytes(receipt: Receipt, profile: PrinterProfile) -> bytes:
    """Everything the printer gets for ``receipt``: from ``ESC @`` to the cut."""
    return blocks_bytes(receipt_blocks(receipt, profile), profile)


def sticker_bytes(sticker: Sticker, profile: PrinterProfile) -> bytes:
    """Everything the printer gets for the window's static QR sticker (art. 17(3))."""
    return blocks_bytes(sticker_blocks(sticker, profile), profile)


def document_bytes(document: Receipt | Sticker, profile: PrinterProfile) -> bytes:
    """The bytes of a receipt or a sticker (what the spooler prints)."""
    if isinstance(document, Sticker):
        return sticker_bytes(document, profile)
    return receipt_bytes(document, profile)


def needs_raster(text: str, profile: PrinterProfile) -> bool:
    """Whether a line of ``text`` is sent as an image on this printer."""
    if profile.text == "raster":
        return True
    return not profile.four_byte and any(len(c.encode("gb18030")) == 4 for c in text)


def line_image(line: Line, profile: PrinterProfile) -> Image.Image:
    """``line`` drawn across the paper, as tall as the printer would feed for it."""
    image = Image.new("L", (profile.dots, CHAR_DOTS * line.scale + LINE_GAP), 255)
    width = text_columns(line.text) * COLUMN_DOTS * line.scale
    x = (profile.dots - width) // 2 if line.center else 0
    font = find_font(profile.font)
    draw_text(image, max(x, 0), 0, line.text, font=font, scale=line.scale, bold=line.bold)
    return image


def raster_bands(image: Image.Image) -> bytes:
    """``image`` (an ``L`` image as wide as the paper) as ``GS v 0`` commands."""
    out = bytearray()
    for top in range(0, image.height, BAND_ROWS):
        band = image.crop((0, top, image.width, min(top + BAND_ROWS, image.height)))
        out += cmd.raster(*to_raster(band))
    return bytes(out)


def qr_strip(data: bytes, profile: PrinterProfile) -> Image.Image:
    """The QR of ``data`` with its quiet zone, centred on a strip as wide as the paper."""
    matrix = qr_matrix(data, profile.qr_ecc)
    symbol = qr_image(matrix, module_dots(len(matrix), profile.dots))
    strip = Image.new("L", (profile.dots, symbol.height), 255)
    strip.paste(symbol, ((profile.dots - symbol.width) // 2, 0))
    return strip


def blocks_bytes(blocks: list[Block], profile: PrinterProfile) -> bytes:
    """The bytes of laid-out ``blocks`` on ``profile``'s printer."""
    chinese = profile.text == "gb18030"
    out = bytearray(cmd.INIT)
    if chinese:
        out += cmd.CHINESE_ON
    state: dict[str, object] = {}

    def setting(name: str, value: object, command: bytes) -> None:
        if state.get(name) != value:
            out.extend(command)
            state[name] = value

    for block in blocks:
        if isinstance(block, Gap):
            out += cmd.feed_dots(block.dots)
        elif isinstance(block, Line):
            if needs_raster(block.text, profile):
                out += raster_bands(line_image(block, profile))
                continue
            setting("align", block.center, cmd.align(cmd.CENTER if block.center else cmd.LEFT))
            setting("scale", block.scale, cmd.char_size(block.scale, block.scale))
            setting("bold", block.bold, cmd.bold(block.bold))
            spacing = CHAR_DOTS * block.scale + LINE_GAP
            setting("spacing", spacing, cmd.line_spacing(spacing))
            out += block.text.encode("gb18030") + cmd.LF
        elif isinstance(block, Qr):
            if profile.qr == "image":
                out += raster_bands(qr_strip(block.data, profile))
                continue
            module = module_dots(qr_modules(block.data, profile.qr_ecc), profile.dots)
            setting("align", True, cmd.align(cmd.CENTER))
            out += cmd.feed_dots(QUIET_ZONE * module)
            out += cmd.qr_native(block.data, module=module, ecc=profile.qr_ecc)
            out += cmd.feed_dots(QUIET_ZONE * module)
    out += cmd.feed_dots(TAIL_FEED)
    if chinese:
        out += cmd.CHINESE_OFF
    out += cmd.CUT if profile.cut else cmd.feed_lines(TEAR_FEED_LINES)
    return bytes(out)
