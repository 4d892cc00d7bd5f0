"""A receipt laid out as lines for a paper width, before it becomes bytes.

The layout is the same for every kind of printer: :mod:`printer.render` sends each
:class:`Line` as GB18030 text or as a raster image, and the QR natively or as an image, but the
lines, their wrapping and their order do not change.  Lines are wrapped by printer columns
(:func:`printer.glyphs.columns`: ASCII 1, hanzi and full-width punctuation 2), so nothing relies
on the printer's own wrapping; an ASCII word is not split unless it is longer than a line, and a
closing punctuation mark never starts a line (it takes the character before it along).
"""

from __future__ import annotations

from dataclasses import dataclass

from printer import texts
from printer.glyphs import columns, text_columns
from printer.profile import PrinterProfile
from printer.receipt import Receipt
from printer.sticker import Sticker

#: Characters that may not start a line (closing punctuation, CJK and ASCII).
NO_LINE_START = frozenset("，。、：；！？）》」』】〕,.:;!?)]}%")
#: Dots fed between the parts of a receipt.
SECTION_GAP = 12


@dataclass(frozen=True)
class Line:
    """One printed line: text, centred or left, size 1 or 2 (``GS !`` width and height), bold."""

    text: str
    center: bool = False
    scale: int = 1
    bold: bool = False


@dataclass(frozen=True)
class Gap:
    """Blank paper, in dots."""

    dots: int


@dataclass(frozen=True)
class Qr:
    """The QR code of ``data`` (the URL's bytes), centred."""

    data: bytes


Block = Line | Gap | Qr


def _units(text: str) -> list[str]:
    """``text`` cut where a line may break: each non-ASCII character, each space, each run of
    other ASCII characters (a word)."""
    units: list[str] = []
    word = ""
    for char in text:
        if ord(char) < 0x80 and not char.isspace():
            word += char
            continue
        if word:
            units.append(word)
            word = ""
        units.append(char)
    if word:
        units.append(word)
    return units


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` columns (see the module docstring)."""
    if width < 2:
        raise ValueError(f"a line of {width} columns cannot hold a hanzi")
    lines: list[list[str]] = [[]]

    def used() -> int:
        return sum(text_columns(u) for u in lines[-1])

    for unit in _units(text):
        size = text_columns(unit)
        if used() + size <= width:
            lines[-1].append(unit)
            continue
        if unit.isspace():
            continue  # a space at the break is dropped
        if size > width:  # a word longer than a line: cut it where the line ends
            for char in unit:
                if used() + columns(char) > width:
                    lines.append([])
                lines[-1].append(char)
            continue
        carried: list[str] = []
        if unit[0] in NO_LINE_START:  # take the characters before it along, a run of marks too
            while len(lines[-1]) > 1 and (not carried or carried[0][0] in NO_LINE_START):
                carried.insert(0, lines[-1].pop())
            if sum(text_columns(u) for u in carried) + size > width:  # cannot: put them back
                lines[-1] += carried
                carried = []
        while lines[-1] and lines[-1][-1].isspace():
            lines[-1].pop()
        lines.append([*carried, unit])
    return ["".join(line) for line in lines if line]


def receipt_blocks(receipt: Receipt, profile: PrinterProfile) -> list[Block]:
    """The receipt as blocks for ``profile``'s paper, top to bottom."""
    cols = profile.columns
    blocks: list[Block] = []

    def text(value: str, *, center: bool = False, scale: int = 1, bold: bool = False) -> None:
        for line in wrap(value, cols // scale):
            blocks.append(Line(line, center=center, scale=scale, bold=bold))

    rule = Line("-" * cols)
    text(texts.TITLE, center=True, scale=2, bold=True)
    blocks.append(Gap(SECTION_GAP))
    text(receipt.hall, center=True)
    text(texts.WINDOW_FMT.format(window=receipt.window), center=True)
    blocks.append(rule)
    text(texts.MATTER_FMT.format(matter=receipt.matter_name))
    if len(receipt.serials) == 1:
        text(texts.SERIAL_FMT.format(serial=receipt.serials[0]))
    else:
        text(texts.SERIALS_FMT.format(count=len(receipt.serials)))
        for serial in receipt.serials:
            text("  " + serial)
    if receipt.clerk_id:
        text(texts.CLERK_FMT.format(name=receipt.clerk_name, id=receipt.clerk_id))
    text(texts.TIME_FMT.format(time=receipt.issued_at.strftime(texts.TIME_FORMAT)))
    blocks.append(rule)
    blocks.append(Gap(SECTION_GAP))
    text(texts.PROMPT, center=True, bold=True)
    blocks.append(Qr(receipt.qr_url.encode("ascii")))
    text(texts.CODE_LABEL, center=True)
    text(receipt.short_code, center=True, scale=2, bold=True)
    return blocks


def sticker_blocks(sticker: Sticker, profile: PrinterProfile) -> list[Block]:
    """The static QR sticker (art. 17(3)) as blocks for ``profile``'s paper: title, hall,
    window, the QR, its caption."""
    cols = profile.columns
    blocks: list[Block] = []

    def text(value: str, *, scale: int = 1, bold: bool = False) -> None:
        for line in wrap(value, cols // scale):
            blocks.append(Line(line, center=True, scale=scale, bold=bold))

    text(texts.STICKER_TITLE, scale=2, bold=True)
    blocks.append(Gap(SECTION_GAP))
    if sticker.hall:
        text(sticker.hall)
    if sticker.window:
        text(texts.WINDOW_FMT.format(window=sticker.window), scale=2, bold=True)
    blocks.append(Gap(SECTION_GAP))
    blocks.append(Qr(sticker.url.encode("ascii")))
    text(texts.STICKER_CAPTION, bold=True)
    return blocks
