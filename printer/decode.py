"""ESC/POS bytes read back: the commands :mod:`printer.commands` sends, as a printer would.

:func:`next_token` cuts one command (or a run of text) off a byte stream; it says when the
stream ends inside a command, so a reader fed piecemeal (a fake printer on a socket) can wait for
more.  :func:`decode` turns a whole stream into what the printer would put on paper: lines of
text (GB18030 in Chinese mode, code page 437 outside it, exactly as the bytes say), raster
images (adjacent ``GS v 0`` bands joined), QR codes (the data ``GS ( k`` stored, with its module
size and ECC), feeds and cuts.  :mod:`printer.preview` draws that; the tests read it.

A command outside the known set raises :class:`DecodeError` with its offset: the receipt
builder never sends one, so meeting one is a bug, not something to print around.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from PIL import Image

from printer.errors import DecodeError
from printer.glyphs import from_raster

_ECC_NAMES = {48: "L", 49: "M", 50: "Q", 51: "H"}
#: ESC/POS default line spacing (``ESC 2``), in dots.
DEFAULT_SPACING = 30


@dataclass(frozen=True)
class Token:
    """One command (``kind`` and its numeric ``args``, its payload in ``data``) or a text run,
    at ``offset``; ``end`` is the offset after it."""

    offset: int
    end: int
    kind: str
    args: tuple[int, ...] = ()
    data: bytes = b""


_ESC_ONE = {ord("a"): "align", ord("E"): "bold", ord("3"): "spacing", ord("J"): "feed_dots"}
_ESC_ONE[ord("d")] = "feed_lines"


def next_token(data: bytes, pos: int) -> Token | None:
    """The token at ``pos`` of ``data``; ``None`` when ``data`` ends inside a command.

    A text run is every byte from ``pos`` up to the next control byte (below 0x20): GB18030's
    multi-byte characters never hold one, so no command hides in a character.
    """
    size = len(data)
    if pos >= size:
        return None
    byte = data[pos]

    def need(n: int) -> bool:
        return pos + n <= size

    if byte >= 0x20:
        end = pos
        while end < size and data[end] >= 0x20:
            end += 1
        return Token(pos, end, "text", data=data[pos:end])
    if byte == 0x00:
        return Token(pos, pos + 1, "nul")
    if byte == 0x0A:
        return Token(pos, pos + 1, "lf")
    if not need(2):
        return None
    second = data[pos + 1]
    if byte == 0x1B:  # ESC
        if second == ord("@"):
            return Token(pos, pos + 2, "init")
        if second == ord("2"):
            return Token(pos, pos + 2, "spacing", (DEFAULT_SPACING,))
        if second in _ESC_ONE:
            return Token(pos, pos + 3, _ESC_ONE[second], (data[pos + 2],)) if need(3) else None
    elif byte == 0x1C:  # FS
        if second == ord("&"):
            return Token(pos, pos + 2, "chinese_on")
        if second == ord("."):
            return Token(pos, pos + 2, "chinese_off")
    elif byte == 0x10:  # DLE
        if second == 0x04:
            return Token(pos, pos + 3, "status", (data[pos + 2],)) if need(3) else None
    elif byte == 0x1D:  # GS
        if second == ord("!"):
            return Token(pos, pos + 3, "size", (data[pos + 2],)) if need(3) else None
        if second == ord("V"):
            if not need(3):
                return None
            mode = data[pos + 2]
            if mode in (0, 1, 48, 49):
                return Token(pos, pos + 3, "cut", (mode,))
            if mode in (65, 66):
                return Token(pos, pos + 4, "cut", (mode, data[pos + 3])) if need(4) else None
            raise DecodeError(pos, f"GS V with unknown mode {mode}")
        if second == ord("v"):
            if not need(8):
                return None
            if data[pos + 2] != ord("0") or data[pos + 3] != 0:
                raise DecodeError(pos, "GS v other than GS v 0 at normal size")
            width = int.from_bytes(data[pos + 4 : pos + 6], "little")
            rows = int.from_bytes(data[pos + 6 : pos + 8], "little")
            end = pos + 8 + width * rows
            if end > size:
                return None
            if not width * rows:  # nothing to print (a header torn and padded with NULs)
                return Token(pos, end, "nul")
            return Token(pos, end, "raster", (width, rows), data[pos + 8 : end])
        if second == ord("("):
            if not need(5):
                return None
            if data[pos + 2] != ord("k"):
                raise DecodeError(pos, f"GS ( {data[pos + 2]:#04x} is not GS ( k")
            length = int.from_bytes(data[pos + 3 : pos + 5], "little")
            end = pos + 5 + length
            if end > size:
                return None
            if length == 0:  # an empty function (a header torn and padded with NULs)
                return Token(pos, end, "nul")
            if length < 2 or data[pos + 5] != 49:
                raise DecodeError(pos, "GS ( k for a symbol other than QR (cn 49)")
            body = data[pos + 7 : end]
            return Token(pos, end, "qr", (data[pos + 6],), body)
    raise DecodeError(pos, f"unknown command {data[pos : pos + 2].hex(' ')}")


def tokens(data: bytes) -> Iterator[Token]:
    """Every token of a complete stream; :class:`DecodeError` if it ends inside a command."""
    pos = 0
    while pos < len(data):
        token = next_token(data, pos)
        if token is None:
            raise DecodeError(pos, "the stream ends inside a command")
        yield token
        pos = token.end


@dataclass(frozen=True)
class Segment:
    """Part of a line printed in one style: width and height multipliers, bold."""

    text: str
    width: int = 1
    height: int = 1
    bold: bool = False


@dataclass(frozen=True)
class Text:
    """A printed line: its segments, alignment (0 left, 1 centre, 2 right) and the dots fed."""

    segments: tuple[Segment, ...]
    align: int
    advance: int
    chinese: bool

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)


@dataclass(frozen=True)
class Raster:
    """A raster image (adjacent ``GS v 0`` bands joined): ``L``, black 0 on white 255."""

    image: Image.Image


@dataclass(frozen=True)
class QrCode:
    """A native QR printed: the stored ``data``, module size in dots, ECC level, alignment."""

    data: bytes
    module: int
    ecc: str
    align: int


@dataclass(frozen=True)
class Feed:
    """Paper fed, in dots."""

    dots: int


@dataclass(frozen=True)
class Cut:
    """The paper is cut (the end of a receipt)."""


Element = Text | Raster | QrCode | Feed | Cut


@dataclass
class _State:
    align: int = 0
    bold: bool = False
    width: int = 1
    height: int = 1
    spacing: int = DEFAULT_SPACING
    chinese: bool = False
    qr_module: int = 3
    qr_ecc: str = "L"
    qr_data: bytes | None = None
    line: list[tuple[bytes, int, int, bool]] = field(default_factory=list)
    line_align: int = 0


def decode(data: bytes) -> list[Element]:
    """What the printer puts on paper for ``data`` (see the module docstring)."""
    out: list[Element] = []
    s = _State()

    def end_line() -> None:
        encoding = "gb18030" if s.chinese else "cp437"
        segments = tuple(
            Segment(raw.decode(encoding, errors="replace"), w, h, b) for raw, w, h, b in s.line
        )
        tallest = max((seg.height for seg in segments), default=s.height)
        advance = max(s.spacing, 24 * tallest)
        out.append(Text(segments, s.line_align if s.line else s.align, advance, s.chinese))
        s.line.clear()

    def flush() -> None:  # ESC J / ESC d / GS V print what is buffered first
        if s.line:
            end_line()

    for t in tokens(data):
        if t.kind == "text":
            if not s.line:
                s.line_align = s.align
            style = (s.width, s.height, s.bold)
            if s.line and s.line[-1][1:] == style:
                s.line[-1] = (s.line[-1][0] + t.data, *style)
            else:
                s.line.append((t.data, *style))
        elif t.kind == "lf":
            end_line()
        elif t.kind == "init":
            s = _State()
        elif t.kind == "align":
            s.align = t.args[0] & 0x03  # 0/48 left, 1/49 centre, 2/50 right
        elif t.kind == "bold":
            s.bold = bool(t.args[0] & 1)
        elif t.kind == "size":
            s.width, s.height = (t.args[0] >> 4) + 1, (t.args[0] & 0x0F) + 1
        elif t.kind == "spacing":
            s.spacing = t.args[0]
        elif t.kind == "chinese_on":
            s.chinese = True
        elif t.kind == "chinese_off":
            s.chinese = False
        elif t.kind == "feed_dots":
            flush()
            out.append(Feed(t.args[0]))
        elif t.kind == "feed_lines":
            flush()
            out.append(Feed(t.args[0] * s.spacing))
        elif t.kind == "cut":
            flush()
            out.append(Cut())
        elif t.kind == "raster":
            flush()
            image = from_raster(t.args[0], t.args[1], t.data)
            if out and isinstance(out[-1], Raster) and out[-1].image.width == image.width:
                joined = Image.new("L", (image.width, out[-1].image.height + image.height))
                joined.paste(out[-1].image, (0, 0))
                joined.paste(image, (0, out[-1].image.height))
                out[-1] = Raster(joined)
            else:
                out.append(Raster(image))
        elif t.kind == "qr":
            _qr(t, s, out, flush)
        # "nul" is ignored; "status" is a question to the printer, nothing printed.
    flush()
    return out


def _qr(t: Token, s: _State, out: list[Element], flush: Callable[[], None]) -> None:
    function, body = t.args[0], t.data
    if function == 65:  # model: body n1 n2, n1 50 = model 2
        if body[:1] != b"\x32":
            raise DecodeError(t.offset, "QR model other than model 2")
    elif function == 67:
        s.qr_module = body[0]
    elif function == 69:
        if body[0] not in _ECC_NAMES:
            raise DecodeError(t.offset, f"QR ECC {body[0]} unknown")
        s.qr_ecc = _ECC_NAMES[body[0]]
    elif function == 80:
        if body[:1] != b"0":
            raise DecodeError(t.offset, "QR store with m other than 48")
        s.qr_data = body[1:]
    elif function == 81:
        if s.qr_data is None:
            raise DecodeError(t.offset, "QR print before any data was stored")
        if s.line:  # the symbol is printed on its own line
            flush()
        out.append(QrCode(s.qr_data, s.qr_module, s.qr_ecc, s.align))
    else:
        raise DecodeError(t.offset, f"QR function {function} unknown")
