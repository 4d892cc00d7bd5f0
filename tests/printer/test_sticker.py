"""printer.sticker: the window's static QR sticker (art. 17(3)) — checked like a receipt, laid out
for both papers, printed by the spooler (never spooled to disk), its QR read back by zxing-cpp."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from printer import texts
from printer.connection import DummyConnection
from printer.decode import Cut, Text, decode
from printer.errors import ReceiptError
from printer.profile import PrinterProfile
from printer.render import sticker_bytes
from printer.spooler import PrintSpooler
from printer.sticker import Sticker
from tests.printer.fakes import PATIENCE, qr_texts

URL = "https://hcp.example.org/w/440500-hall1-w12"
MODES = list(itertools.product(["58mm", "80mm"], ["gb18030", "raster"], ["native", "image"]))


@pytest.mark.parametrize(("paper", "text", "qr"), MODES)
def test_the_sticker_reads_back_with_its_qr(paper: str, text: str, qr: str) -> None:
    sticker = Sticker(hall="汕头市政务服务中心", window="12号窗口", url=URL)
    elements = decode(sticker_bytes(sticker, PrinterProfile(paper=paper, text=text, qr=qr)))
    assert qr_texts(elements) == [URL]
    assert isinstance(elements[-1], Cut)
    if text == "gb18030":
        joined = "".join(e.text for e in elements if isinstance(e, Text))
        for wanted in (texts.STICKER_TITLE, sticker.hall, "12号窗口", texts.STICKER_CAPTION):
            assert wanted in joined


def test_hall_and_window_may_be_left_out_the_url_may_not() -> None:
    lines = [e.text for e in decode(sticker_bytes(Sticker("", "", URL), PrinterProfile()))
             if isinstance(e, Text)]  # fmt: skip
    assert lines == [texts.STICKER_TITLE, texts.STICKER_CAPTION]
    for bad in (
        {"url": ""},
        {"url": "https://hcp.example.org/w/12 34"},
        {"url": "https://hcp.example.org/" + "x" * 600},
        {"window": "12\x1b@"},
        {"hall": "大厅 13800138000"},
    ):
        with pytest.raises(ReceiptError):
            Sticker(**({"hall": "", "window": "", "url": URL} | bad))


def test_the_spooler_prints_a_sticker_and_keeps_no_file_of_it(tmp_path: Path) -> None:
    dummy = DummyConnection()
    spooler = PrintSpooler(dummy, PrinterProfile(), spool_dir=tmp_path / "spool")
    spooler.start()
    try:
        spooler.submit(Sticker("大厅", "12号窗口", URL))
        assert spooler.wait_until(lambda s: s.printed == 1, PATIENCE)
    finally:
        spooler.stop()
    assert qr_texts(decode(dummy.output)) == [URL]
    assert not (tmp_path / "spool").exists() or not list((tmp_path / "spool").iterdir())
