"""printer.decode: ESC/POS bytes read back the way a printer reads them."""

from __future__ import annotations

import pytest

from printer import commands as cmd
from printer.decode import Cut, Feed, QrCode, Raster, Text, decode, next_token, tokens
from printer.errors import DecodeError


def test_text_is_gb18030_only_in_chinese_mode() -> None:
    line = "请扫码：".encode("gb18030") + cmd.LF
    inside = decode(cmd.INIT + cmd.CHINESE_ON + line)
    outside = decode(cmd.INIT + line)
    assert [e.text for e in inside if isinstance(e, Text)] == ["请扫码："]
    printed = [e.text for e in outside if isinstance(e, Text)]
    assert printed == [line[:-1].decode("cp437")]  # what a printer without FS & prints


def test_styles_alignment_and_spacing_are_kept_per_line() -> None:
    data = (
        cmd.INIT
        + cmd.CHINESE_ON
        + cmd.align(cmd.CENTER)
        + cmd.char_size(2, 2)
        + cmd.bold(True)
        + cmd.line_spacing(56)
        + "办件".encode("gb18030")
        + cmd.LF
        + cmd.align(cmd.LEFT)
        + cmd.char_size(1, 1)
        + cmd.bold(False)
        + cmd.line_spacing(32)
        + b"A1"
        + cmd.LF
    )
    first, second = decode(data)
    assert isinstance(first, Text) and isinstance(second, Text)
    assert (first.text, first.align, first.advance) == ("办件", 1, 56)
    assert (first.segments[0].width, first.segments[0].height, first.segments[0].bold) == (
        2,
        2,
        True,
    )
    assert (second.text, second.align, second.advance) == ("A1", 0, 32)


def test_adjacent_raster_bands_are_one_image_and_feeds_and_cuts_are_kept() -> None:
    band = cmd.raster(2, 3, bytes([0xFF, 0x00] * 3))
    elements = decode(cmd.INIT + band + band + cmd.feed_dots(10) + cmd.CUT)
    assert [type(e) for e in elements] == [Raster, Feed, Cut]
    image = elements[0].image  # type: ignore[union-attr]
    assert image.size == (16, 6)
    assert image.getpixel((0, 0)) == 0 and image.getpixel((8, 0)) == 255


def test_native_qr_keeps_data_module_and_ecc() -> None:
    data = cmd.INIT + cmd.align(cmd.CENTER) + cmd.qr_native(b"https://x.org/1", module=5, ecc="Q")
    assert decode(data) == [QrCode(b"https://x.org/1", 5, "Q", 1)]


def test_a_stream_cut_inside_a_command_waits_for_more_and_nul_is_ignored() -> None:
    band = cmd.raster(2, 3, bytes(6))
    assert next_token(band[:-1], 0) is None
    assert next_token(band, 0).kind == "raster"  # type: ignore[union-attr]
    with pytest.raises(DecodeError, match="ends inside"):
        list(tokens(band[:5]))
    assert decode(cmd.NUL * 50 + cmd.INIT + cmd.NUL + cmd.CUT) == [Cut()]


def test_a_torn_header_padded_with_nul_prints_nothing() -> None:
    torn = b"\x1dv0\x00\x30" + cmd.NUL * 20  # width 0x30, then zero rows
    assert decode(torn + cmd.CUT) == [Cut()]
    assert decode(b"\x1d(k" + cmd.NUL * 10 + cmd.CUT) == [Cut()]


def test_an_unknown_command_is_an_error_with_its_offset() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(cmd.INIT + b"\x1b\x7a\x01")
    assert caught.value.offset == 2
