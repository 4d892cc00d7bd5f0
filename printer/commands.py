"""The ESC/POS commands the receipts use, as bytes (Epson ESC/POS, as Chinese thermal printers
implement it).  Only what is listed here is ever sent, and :mod:`printer.decode` reads exactly
this set back."""

from __future__ import annotations

NUL = b"\x00"
LF = b"\n"
ESC = b"\x1b"
GS = b"\x1d"
FS = b"\x1c"
DLE = b"\x10"
EOT = b"\x04"

#: ``ESC @``: clear the buffer, every mode back to its power-on value.
INIT = ESC + b"@"
#: ``FS &`` / ``FS .``: Chinese (Kanji) character mode on / off.  In it a byte 0x81–0xFE starts a
#: two- or four-byte GB18030 character; ASCII stays one byte.
CHINESE_ON = FS + b"&"
CHINESE_OFF = FS + b"."
#: ``GS V 66 0``: feed to the cutter and cut partially (the receipt hangs on by a tab).
CUT = GS + b"V" + bytes((66, 0))
#: Alignment values of ``ESC a``.
LEFT, CENTER, RIGHT = 0, 1, 2
#: ``GS ( k`` ECC values (function 169).
QR_ECC: dict[str, int] = {"L": 48, "M": 49, "Q": 50, "H": 51}
#: Largest module size ``GS ( k`` accepts (function 167).
QR_MODULE_MAX = 16
#: Most data ``GS ( k`` stores (function 180): model 2, version 40, ECC L, bytes.
QR_STORE_MAX = 7089
#: ``DLE EOT n`` requests: printer status, offline cause, error cause, roll paper sensor.
STATUS_PRINTER, STATUS_OFFLINE, STATUS_ERROR, STATUS_PAPER = 1, 2, 3, 4


def align(where: int) -> bytes:
    """``ESC a n``: justification of the following lines (:data:`LEFT`, :data:`CENTER`)."""
    return ESC + b"a" + bytes((where,))


def bold(on: bool) -> bytes:
    """``ESC E n``: emphasised (bold) on or off."""
    return ESC + b"E" + bytes((1 if on else 0,))


def char_size(width: int, height: int) -> bytes:
    """``GS ! n``: character width and height multipliers, 1–8 each (hanzi and ASCII alike)."""
    if not (1 <= width <= 8 and 1 <= height <= 8):
        raise ValueError(f"character size {width}×{height} is outside 1–8")
    return GS + b"!" + bytes(((width - 1) << 4 | (height - 1),))


def line_spacing(dots: int) -> bytes:
    """``ESC 3 n``: the line feed amount, in dots (0–255)."""
    return ESC + b"3" + bytes((dots,))


def feed_dots(dots: int) -> bytes:
    """``ESC J n``: print the buffer and feed ``dots`` dots (0–255)."""
    return ESC + b"J" + bytes((dots,))


def feed_lines(lines: int) -> bytes:
    """``ESC d n``: print the buffer and feed ``lines`` lines."""
    return ESC + b"d" + bytes((lines,))


def raster(width_bytes: int, rows: int, data: bytes) -> bytes:
    """``GS v 0 0``: a raster image of ``width_bytes`` × 8 dots by ``rows`` dots, normal size.

    ``data`` holds the rows top to bottom, each ``width_bytes`` bytes, the most significant bit
    leftmost, 1 = black.
    """
    if len(data) != width_bytes * rows:
        raise ValueError(f"raster data is {len(data)} bytes, not {width_bytes}×{rows}")
    if not (0 < width_bytes < 65536 and 0 < rows < 65536):
        raise ValueError(f"raster size {width_bytes}×{rows} out of range")
    size = width_bytes.to_bytes(2, "little") + rows.to_bytes(2, "little")
    return GS + b"v0" + b"\x00" + size + data


def _qr_function(function: int, params: bytes) -> bytes:
    # GS ( k pL pH cn=49 fn params: pL pH count cn, fn and the params.
    return GS + b"(k" + (len(params) + 2).to_bytes(2, "little") + bytes((49, function)) + params


def qr_native(data: bytes, *, module: int, ecc: str) -> bytes:
    """The whole native QR: model 2 (fn 165), module size (167), ECC (169), store (180), print
    (181).  The printer picks the smallest version that holds ``data`` (byte mode)."""
    if not 1 <= module <= QR_MODULE_MAX:
        raise ValueError(f"QR module size {module} is outside 1–{QR_MODULE_MAX}")
    if not 0 < len(data) <= QR_STORE_MAX:
        raise ValueError(f"QR data is {len(data)} bytes, not 1–{QR_STORE_MAX}")
    return (
        _qr_function(65, bytes((50, 0)))  # fn 165: model 2
        + _qr_function(67, bytes((module,)))  # fn 167: module size in dots
        + _qr_function(69, bytes((QR_ECC[ecc],)))  # fn 169: error correction level
        + _qr_function(80, b"0" + data)  # fn 180: store the data
        + _qr_function(81, b"0")  # fn 181: print the stored symbol
    )


def status_request(n: int) -> bytes:
    """``DLE EOT n``: ask for one status byte in real time (answered even while busy)."""
    if n not in (STATUS_PRINTER, STATUS_OFFLINE, STATUS_ERROR, STATUS_PAPER):
        raise ValueError(f"DLE EOT {n} is not a status request")
    return DLE + EOT + bytes((n,))
