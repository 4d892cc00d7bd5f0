"""printer.render: the bytes a printer gets, read back — text as GB18030, the QR command's data
or the raster image — and every QR read by a real decoder (zxing-cpp), for both paper widths,
both text modes and both QR modes."""

from __future__ import annotations

import itertools
import re

import pytest
from escpos.printer import Dummy

from printer import commands as cmd
from printer import texts
from printer.decode import Cut, QrCode, Raster, Text, decode, tokens
from printer.profile import PrinterProfile
from printer.render import MAX_COMMAND, receipt_bytes
from tests.printer.fakes import qr_texts, receipt

MODES = list(itertools.product(["58mm", "80mm"], ["gb18030", "raster"], ["native", "image"]))
URLS = {
    100: "https://hcp.example.org/r/1?c=4405002026112700001&k=" + "A" * 48,
    140: "https://hcp.example.org/r/1?c=4405002026112700001&k=" + "b9" * 44,
}


@pytest.mark.parametrize(("paper", "text", "qr"), MODES)
@pytest.mark.parametrize("length", sorted(URLS))
def test_the_qr_decodes_to_the_url_given(paper: str, text: str, qr: str, length: int) -> None:
    url = URLS[length]
    assert len(url) == length
    made = receipt(1, url=url)
    data = receipt_bytes(made, PrinterProfile(paper=paper, text=text, qr=qr))
    elements = decode(data)
    assert qr_texts(elements) == [url]
    natives = [e for e in elements if isinstance(e, QrCode)]
    if qr == "native":
        assert [n.data for n in natives] == [url.encode()] and natives[0].ecc == "M"
        assert natives[0].module >= 4
    else:
        assert natives == []
    assert isinstance(elements[-1], Cut)


@pytest.mark.parametrize(
    ("paper", "qr"), list(itertools.product(["58mm", "80mm"], ["native", "image"]))
)
def test_gb18030_text_reads_back_as_the_receipt_says(paper: str, qr: str) -> None:
    made = receipt(2, serials=2)
    data = receipt_bytes(made, PrinterProfile(paper=paper, qr=qr))
    lines = [e.text for e in decode(data) if isinstance(e, Text)]
    joined = "".join(lines)
    for wanted in (texts.TITLE, made.hall, made.matter_name, *made.serials, made.clerk_name):
        assert wanted in joined
    assert texts.PROMPT in joined and made.short_code in joined
    assert "\ufffd" not in joined
    # Deliberate bytes: Chinese mode before the first text, the title's GB18030 bytes as sent.
    assert data.index(cmd.CHINESE_ON) < data.index(texts.TITLE.encode("gb18030"))
    width = PrinterProfile(paper=paper).columns
    assert all(sum(1 if ord(c) < 128 else 2 for c in line) <= width for line in lines)


def test_cjk_punctuation_alone_goes_as_gb18030_not_as_question_marks() -> None:
    punctuation = "：（）、。"
    magic = Dummy()
    magic.text(punctuation)  # python-escpos 3.1's magic encode: no hanzi, so a code page search
    assert magic.output.endswith(b"?" * len(punctuation))
    made = receipt(1)
    bare = type(made).from_json(made.to_json() | {"window": punctuation})
    data = receipt_bytes(bare, PrinterProfile())
    assert f"窗口：{punctuation}".encode("gb18030") + cmd.LF in data
    assert any(e.text == f"窗口：{punctuation}" for e in decode(data) if isinstance(e, Text))


@pytest.mark.parametrize("four_byte", [False, True])
def test_a_line_with_a_four_byte_character_is_rastered_unless_the_font_has_them(
    four_byte: bool,
) -> None:
    made = receipt(1)
    rare = type(made).from_json(made.to_json() | {"clerk_name": "吉𠮷"})  # 𠮷: GB18030 4 bytes
    data = receipt_bytes(rare, PrinterProfile(four_byte=four_byte))
    lines = [e.text for e in decode(data) if isinstance(e, Text)]
    as_text = any("𠮷" in line for line in lines)
    assert as_text == four_byte
    assert ("𠮷".encode("gb18030") in data) == four_byte
    if not four_byte:  # the clerk line went as an image: one raster more than the QR alone
        assert not any("工号" in line for line in lines)
        assert sum(isinstance(e, Raster) for e in decode(data)) == 1


@pytest.mark.parametrize("paper", ["58mm", "80mm"])
def test_raster_text_sends_no_text_at_all_and_every_image_spans_the_paper(paper: str) -> None:
    profile = PrinterProfile(paper=paper, text="raster", qr="image")
    data = receipt_bytes(receipt(3), profile)
    kinds = {t.kind for t in tokens(data)}
    assert "text" not in kinds and "chinese_on" not in kinds
    rasters = [t for t in tokens(data) if t.kind == "raster"]
    assert {t.args[0] * 8 for t in rasters} == {profile.dots}
    assert max(t.end - t.offset for t in rasters) <= MAX_COMMAND


@pytest.mark.parametrize("paper", ["58mm", "80mm"])
def test_raster_text_draws_the_lines_where_the_printer_font_would(paper: str) -> None:
    """The same receipt in both text modes: the raster images take the rows the text lines
    would (so raster-text paper is as long as GB18030 paper)."""
    text_mode = decode(receipt_bytes(receipt(4), PrinterProfile(paper=paper, qr="image")))
    raster_mode = decode(
        receipt_bytes(receipt(4), PrinterProfile(paper=paper, text="raster", qr="image"))
    )
    text_rows = sum(e.advance for e in text_mode if isinstance(e, Text)) + sum(
        e.image.height for e in text_mode if isinstance(e, Raster)
    )
    raster_rows = sum(e.image.height for e in raster_mode if isinstance(e, Raster))
    assert text_rows == raster_rows


def test_no_cutter_feeds_to_the_tear_bar() -> None:
    data = receipt_bytes(receipt(1), PrinterProfile(cut=False))
    assert cmd.CUT not in data and data.endswith(cmd.CHINESE_OFF + cmd.feed_lines(4))
    assert not any(isinstance(e, Cut) for e in decode(data))


def test_the_bytes_carry_nothing_but_the_receipt() -> None:
    made = receipt(5)
    data = receipt_bytes(made, PrinterProfile())
    assert re.search(rb"\x10\x04", data) is None  # no status request inside a receipt
    assert data.startswith(cmd.INIT + cmd.CHINESE_ON)
    assert receipt_bytes(made, PrinterProfile()) == data  # the same bytes every time
