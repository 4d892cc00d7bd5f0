"""printer.preview: the PNG drawn from the bytes, read back by a real QR decoder."""

from __future__ import annotations

import io
import itertools

import pytest
import zxingcpp
from PIL import Image

from printer import commands as cmd
from printer.preview import page_image, preview
from printer.profile import PrinterProfile
from printer.render import receipt_bytes
from tests.printer.fakes import receipt

MODES = list(itertools.product(["58mm", "80mm"], ["gb18030", "raster"], ["native", "image"]))


@pytest.mark.parametrize(("paper", "text", "qr"), MODES)
def test_the_preview_is_the_paper_and_its_qr_reads_back(paper: str, text: str, qr: str) -> None:
    profile = PrinterProfile(paper=paper, text=text, qr=qr)
    made = receipt(9)
    image = Image.open(io.BytesIO(preview(made, profile)))
    assert image.format == "PNG" and image.width == profile.dots
    assert [
        r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    ] == [made.qr_url]


def test_text_and_raster_text_previews_are_the_same_length_and_ink_in_the_same_rows() -> None:
    made = receipt(3)
    text = page_image(receipt_bytes(made, PrinterProfile(qr="image")), PrinterProfile())
    raster = page_image(
        receipt_bytes(made, PrinterProfile(text="raster", qr="image")), PrinterProfile()
    )
    assert text.size == raster.size

    def inked_rows(image: Image.Image) -> list[bool]:
        return [
            image.crop((0, y, image.width, y + 1)).getextrema()[0] < 128
            for y in range(image.height)
        ]

    same = sum(a == b for a, b in zip(inked_rows(text), inked_rows(raster), strict=True))
    assert same / text.height > 0.97  # glyph shapes differ a little, lines do not


def test_the_preview_shows_what_a_wrong_byte_does() -> None:
    """Drawn from the bytes, not from the receipt: the same text without Chinese mode is the
    garbage a printer would print."""
    good = receipt_bytes(receipt(1), PrinterProfile())
    bad = good.replace(cmd.CHINESE_ON, b"", 1)
    assert (
        page_image(good, PrinterProfile()).tobytes() != page_image(bad, PrinterProfile()).tobytes()
    )


def test_the_same_receipt_gives_the_same_png() -> None:
    made = receipt(2)
    assert preview(made, PrinterProfile()) == preview(made, PrinterProfile())
