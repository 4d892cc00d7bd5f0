"""The receipt's QR code: its matrix, the module size for the paper, and its raster image.

Both QR modes use one symbol: byte mode (what a printer's ``GS ( k`` encoder uses for a URL),
the profile's error correction level (M by default), the smallest version that holds the data.
So the image fallback prints the very symbol a native printer would, and the preview of a native
QR is exact.

Why M and the module size (docs/technician.md, "Receipt printer"): a signed rating link of one case
is about 256 characters (278 for a batch of two), version 12 at level M (65 modules); with the
4-module quiet zone on each side (ISO/IEC 18004) that is 73 modules, so 58 mm paper (384 dots)
gives 5 dots (0.63 mm) a module and 80 mm paper (576 dots) gives 7. A thermal head's dots bleed by
a fraction of a dot, so modules of 1–3 dots print smudged; at 4 dots and more (0.5 mm) a phone
reads the code from arm's length. Level L (7 % recovery) saves one version but a crumpled or faded
receipt loses more than 7 %; Q and H (25 %, 30 %) need two to four versions more, which at 58 mm
costs a dot per module for nothing a fresh receipt needs.
"""

from __future__ import annotations

import qrcode
import qrcode.util
from PIL import Image
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q

from printer.errors import ReceiptError

#: Light modules around the symbol (ISO/IEC 18004 asks for 4).
QUIET_ZONE = 4
#: Module sizes, in dots: below the minimum a 203 dpi head smudges the code; above the maximum
#: (1 mm) the code only costs paper.
MIN_MODULE = 4
MAX_MODULE = 8
_ECC = {"L": ERROR_CORRECT_L, "M": ERROR_CORRECT_M, "Q": ERROR_CORRECT_Q, "H": ERROR_CORRECT_H}


def qr_matrix(data: bytes, ecc: str = "M") -> list[list[bool]]:
    """The modules of ``data`` in byte mode at level ``ecc`` (True = dark), no quiet zone."""
    code = qrcode.QRCode(error_correction=_ECC[ecc], border=0)
    code.add_data(qrcode.util.QRData(data, mode=qrcode.util.MODE_8BIT_BYTE))
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def qr_modules(data: bytes, ecc: str = "M") -> int:
    """How many modules wide the symbol of ``data`` is (its version only: no matrix is made,
    so this is what a native QR costs here, a fraction of a millisecond)."""
    code = qrcode.QRCode(error_correction=_ECC[ecc], border=0)
    code.add_data(qrcode.util.QRData(data, mode=qrcode.util.MODE_8BIT_BYTE))
    return 17 + 4 * code.best_fit()


def qr_version(modules: int) -> int:
    """The QR version of a symbol ``modules`` wide."""
    return (modules - 17) // 4


def module_dots(modules: int, paper_dots: int) -> int:
    """The module size, in dots, for a symbol ``modules`` wide: the largest whole size up to
    :data:`MAX_MODULE` with which it and its quiet zone fit across the paper.

    :class:`ReceiptError` when that is below :data:`MIN_MODULE` (the URL is too long to print
    sharp on this paper).
    """
    size = min(MAX_MODULE, paper_dots // (modules + 2 * QUIET_ZONE))
    if size < MIN_MODULE:
        raise ReceiptError(
            f"the QR code (version {qr_version(modules)}, {modules} modules) needs"
            f" {MIN_MODULE} dots a module and does not fit {paper_dots} dots: shorten the URL"
        )
    return size


def qr_image(matrix: list[list[bool]], module: int, *, quiet_zone: bool = True) -> Image.Image:
    """The symbol as an ``L`` image (black 0 on white 255), ``module`` dots a module, with the
    quiet zone unless told otherwise."""
    border = QUIET_ZONE if quiet_zone else 0
    side = len(matrix) + 2 * border
    small = Image.new("L", (side, side), 255)
    small.putdata(
        [
            0
            if border <= y < side - border
            and border <= x < side - border
            and matrix[y - border][x - border]
            else 255
            for y in range(side)
            for x in range(side)
        ]
    )
    return small.resize((side * module, side * module), Image.Resampling.NEAREST)
