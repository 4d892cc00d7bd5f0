"""What a printer model can do: paper width, how Chinese text is sent, how the QR is made.

One :class:`PrinterProfile` per printer model, filled from the config by the wiring:

``paper``
    ``"58mm"`` (384 dots, 32 columns, 16 hanzi a line) or ``"80mm"`` (576 dots, 48 columns, 24
    hanzi), at 203 dpi (8 dots a millimetre).
``text``
    ``"gb18030"``: the printer has a Chinese font; text goes as GB18030 bytes in Chinese mode
    (``FS &``).  ``"raster"``: it has none; each line is drawn with the CJK font through Pillow and
    sent as a ``GS v 0`` raster image.
``qr``
    ``"native"``: the printer draws the QR (``GS ( k``: model 2, module size, ECC, store, print),
    ~200 bytes on the wire.  ``"image"``: the QR is drawn here (``qrcode``) and sent as a raster
    image, for printers without ``GS ( k``.
``four_byte``
    The printer's font covers GB18030's four-byte area (CJK extension B and other rare
    characters, ``¥`` as U+00A5…).  Most Chinese printer fonts are GB2312/GBK only and print such
    codes as garbage, so by default (False) a line holding one is sent as a raster image.
``cut``
    The printer has an auto-cutter (``GS V 66 0``, feed and partial cut); otherwise the receipt
    is fed out to the tear bar.
``status``
    The printer answers ``DLE EOT n`` (real-time status) on its back channel.  Without one,
    the state after a successful print is ``unknown``, never ``ok`` nor ``paper_out``.
``font``
    The CJK font (TrueType/OpenType file) for raster text and for previews; empty: the first
    found of :data:`evaluator.rules.shipped.FONT_SEARCH_PATHS`.
``qr_ecc``
    The QR's error correction level, ``"M"`` unless there is a reason (:mod:`printer.qr` says
    why M).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from printer.errors import PrinterConfigError

#: Printable dots across the paper, at 203 dpi.
PAPER_DOTS: dict[str, int] = {"58mm": 384, "80mm": 576}
#: Dots of one column (a font A character, 12×24); a hanzi takes two.
COLUMN_DOTS = 12
#: Dots of a character's height at size 1 (font A and the 24×24 hanzi font).
CHAR_DOTS = 24
TEXT_MODES: tuple[str, ...] = ("gb18030", "raster")
QR_MODES: tuple[str, ...] = ("native", "image")
ECC_LEVELS: tuple[str, ...] = ("L", "M", "Q", "H")


@dataclass(frozen=True)
class PrinterProfile:
    """A printer model's abilities (see the module docstring); checked when made."""

    paper: str = "58mm"
    text: str = "gb18030"
    qr: str = "native"
    four_byte: bool = False
    cut: bool = True
    status: bool = True
    font: str = ""
    qr_ecc: str = "M"

    def __post_init__(self) -> None:
        problems = []
        if self.paper not in PAPER_DOTS:
            problems.append(f"paper must be one of {', '.join(PAPER_DOTS)}, not {self.paper!r}")
        if self.text not in TEXT_MODES:
            problems.append(f"text must be one of {', '.join(TEXT_MODES)}, not {self.text!r}")
        if self.qr not in QR_MODES:
            problems.append(f"qr must be one of {', '.join(QR_MODES)}, not {self.qr!r}")
        if self.qr_ecc not in ECC_LEVELS:
            problems.append(f"qr_ecc must be one of {', '.join(ECC_LEVELS)}, not {self.qr_ecc!r}")
        for name in ("four_byte", "cut", "status"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false")
        if not isinstance(self.font, str):
            problems.append("font must be a path (a string)")
        if problems:
            raise PrinterConfigError(problems)

    @property
    def dots(self) -> int:
        """Printable dots across the paper."""
        return PAPER_DOTS[self.paper]

    @property
    def columns(self) -> int:
        """Font A columns across the paper (a hanzi takes two)."""
        return self.dots // COLUMN_DOTS

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> PrinterProfile:
        """A profile from a config table (the keys above); every problem in one
        :class:`PrinterConfigError`, unknown keys included."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            problems = [f"unknown printer profile key {k!r}" for k in unknown]
            try:
                cls(**{k: v for k, v in table.items() if k in known})
            except PrinterConfigError as exc:
                problems += exc.problems
            raise PrinterConfigError(problems)
        return cls(**dict(table))
