"""printer.commands: the ESC/POS bytes, checked against the command reference byte by byte."""

from __future__ import annotations

import pytest

from printer import commands as cmd


def test_the_fixed_commands() -> None:
    assert cmd.INIT == b"\x1b\x40"
    assert cmd.CHINESE_ON == b"\x1c\x26" and cmd.CHINESE_OFF == b"\x1c\x2e"
    assert cmd.CUT == b"\x1d\x56\x42\x00"
    assert cmd.align(cmd.CENTER) == b"\x1b\x61\x01"
    assert cmd.bold(True) == b"\x1b\x45\x01"
    assert cmd.char_size(2, 2) == b"\x1d\x21\x11"
    assert cmd.char_size(1, 1) == b"\x1d\x21\x00"
    assert cmd.line_spacing(32) == b"\x1b\x33\x20"
    assert cmd.feed_dots(24) == b"\x1b\x4a\x18"
    assert cmd.status_request(4) == b"\x10\x04\x04"


def test_raster_header_is_width_in_bytes_then_rows_little_endian() -> None:
    data = bytes(72 * 300)
    out = cmd.raster(72, 300, data)
    assert out[:8] == b"\x1d\x76\x30\x00\x48\x00\x2c\x01"
    assert out[8:] == data
    with pytest.raises(ValueError):
        cmd.raster(72, 300, data[:-1])


def test_native_qr_is_model_size_ecc_store_print() -> None:
    url = b"https://hcp.example.org/r/1"
    out = cmd.qr_native(url, module=6, ecc="M")
    store_len = (len(url) + 3).to_bytes(2, "little")
    assert out == (
        b"\x1d(k\x04\x00\x31\x41\x32\x00"
        + b"\x1d(k\x03\x00\x31\x43\x06"
        + b"\x1d(k\x03\x00\x31\x45\x31"
        + b"\x1d(k"
        + store_len
        + b"\x31\x50\x30"
        + url
        + b"\x1d(k\x03\x00\x31\x51\x30"
    )
    with pytest.raises(ValueError):
        cmd.qr_native(url, module=17, ecc="M")
    with pytest.raises(ValueError):
        cmd.qr_native(b"", module=6, ecc="M")


def test_only_real_status_requests() -> None:
    with pytest.raises(ValueError):
        cmd.status_request(5)
