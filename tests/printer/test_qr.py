"""printer.qr: one symbol for both QR modes, sized to print sharp on the paper."""

from __future__ import annotations

import pytest
import zxingcpp

from printer.errors import ReceiptError
from printer.qr import (
    MIN_MODULE,
    QUIET_ZONE,
    module_dots,
    qr_image,
    qr_matrix,
    qr_modules,
    qr_version,
)


def url_of(length: int) -> bytes:
    head = b"https://hcp.example.org/r/"
    return head + b"a" * (length - len(head))


@pytest.mark.parametrize(
    ("length", "version", "dots_58", "dots_80"),
    [(100, 6, 7, 8), (122, 7, 7, 8), (140, 8, 6, 8)],
)
def test_a_signed_url_of_100_to_140_characters_gets_big_modules(
    length: int, version: int, dots_58: int, dots_80: int
) -> None:
    """The figures docs/technician.md gives: level M, versions 6–8, 6–7 dots a module at 58 mm
    (0.75–0.875 mm), 8 at 80 mm."""
    matrix = qr_matrix(url_of(length), "M")
    assert qr_version(len(matrix)) == version
    assert qr_modules(url_of(length), "M") == len(matrix)  # the native path's shortcut
    assert module_dots(len(matrix), 384) == dots_58
    assert module_dots(len(matrix), 576) == dots_80


def test_a_url_too_long_for_sharp_modules_is_refused() -> None:
    matrix = qr_matrix(url_of(700), "M")
    assert 384 // (len(matrix) + 2 * QUIET_ZONE) < MIN_MODULE
    with pytest.raises(ReceiptError, match="shorten the URL"):
        module_dots(len(matrix), 384)


@pytest.mark.parametrize("ecc", ["L", "M", "Q", "H"])
def test_the_image_reads_back_with_a_quiet_zone(ecc: str) -> None:
    data = url_of(130)
    matrix = qr_matrix(data, ecc)
    image = qr_image(matrix, 4)
    assert image.size == ((len(matrix) + 8) * 4,) * 2
    border = image.crop((0, 0, image.width, QUIET_ZONE * 4))
    assert border.getextrema() == (255, 255)
    results = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [r.text for r in results] == [data.decode()]
    assert results[0].ec_level == ecc
