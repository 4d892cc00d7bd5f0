"""``evaluator receipt static`` and ``receipt preview``: the window's static QR sticker on the
configured printer (the stand-in, a FIFO a reader drains, a device that is not there), and PNG
previews of the exact bytes, their QR read back by a real decoder (zxing-cpp)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from evaluator.cli import main
from evaluator.rules import ratelink
from printer.decode import decode
from sync.keys import DeviceKey
from tests.printer.fakes import PATIENCE, PipeReader, cuts, qr_texts

STATIC = "https://hcp.example.org/w/440500-hall1-w12"


def site(tmp_path: Path, extra: str = "", *, static: str = STATIC) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[device]\nid = "440500-hall1-w12"\nwindow = "12号窗口"\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f'[idle]\nstatic_qr = "{static}"\n[receipt]\nhall = "汕头市政务服务中心"\n{extra}',
        encoding="utf-8",
    )
    return path


def read_png(path: Path) -> list[str]:
    """The distinct QR codes in the PNG: QR only (other formats can "see" a code in raster
    hanzi), one entry per symbol (the decoder may find one symbol at two scales)."""
    found = zxingcpp.read_barcodes(Image.open(path), formats=zxingcpp.BarcodeFormat.QRCode)
    return list(dict.fromkeys(r.text for r in found))


@pytest.mark.parametrize(
    "printer",
    ["", '[printer]\npaper = "80mm"\ntext = "raster"\nqr = "image"\n'],
    ids=["58mm_native", "80mm_raster_image"],
)
def test_preview_writes_a_png_whose_qr_decodes_to_a_signed_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], printer: str
) -> None:
    out = tmp_path / "out" / "receipt.png"
    assert main(["receipt", "preview", "--config", str(site(tmp_path, printer)), "--out",
                 str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    [url] = read_png(out)
    assert f"QR: {url} " in printed
    assert Image.open(out).width == (576 if "80mm" in printer else 384)
    parsed = ratelink.parse(url)
    assert parsed is not None
    link = parsed[0]
    assert link.device_id == "440500-hall1-w12" and link.serials == ("4405002026112600001",)
    assert url.startswith("https://hcp.example.org/r?v=1&")  # the sample template: none is set
    # Signed, but with a throw-away key: never a code the city takes for this pad's.
    key = DeviceKey.create(tmp_path / "device.key")
    verdict = ratelink.verify(url, key_id=key.key_id, check=key.public.check, now=link.issued)
    assert verdict.reason == "wrong_key"


def test_preview_of_the_static_sticker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sticker.png"
    config = site(tmp_path)
    assert main(["receipt", "preview", "--config", str(config), "--static", "--out",
                 str(out)]) == 0  # fmt: skip
    assert read_png(out) == [STATIC]
    no_qr = site(tmp_path, static="")
    assert main(["receipt", "preview", "--config", str(no_qr), "--static", "--out",
                 str(out)]) == 2  # fmt: skip
    assert "[idle] static_qr is not set" in capsys.readouterr().err


def test_static_prints_the_sticker_on_the_stand_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["receipt", "static", "--config", str(site(tmp_path))]) == 0
    assert (
        f"printed the static QR sticker ({STATIC}) on dummy; printer ok" in capsys.readouterr().out
    )


def test_static_prints_the_sticker_on_a_device_file_whose_bytes_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = PipeReader(str(fifo))
    reader.start()
    try:
        config = site(tmp_path, f'[printer]\nkind = "file"\npath = "{fifo}"\n')
        assert main(["receipt", "static", "--config", str(config)]) == 0
        assert reader.wait_for(lambda data: cuts(data) == 1, PATIENCE)
        assert qr_texts(decode(reader.data())) == [STATIC]
    finally:
        reader.close()
    assert "printer unknown" in capsys.readouterr().out  # no back channel: never "ok"
    assert not (tmp_path / "receipts").exists()  # nothing spooled beside the pad's queue


def test_static_on_a_printer_that_is_not_there_says_so_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path, f'[printer]\nkind = "file"\npath = "{tmp_path / "lp9"}"\n')
    assert main(["receipt", "static", "--config", str(config)]) == 1
    said = capsys.readouterr().out
    assert said.startswith(f"NOT printed: printer offline (file {tmp_path / 'lp9'}): cannot open")


def test_static_gives_up_on_a_printer_that_hangs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reader that never reads and a sticker bigger than the pipe (raster, 80 mm)."""
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = PipeReader(str(fifo))  # never started
    try:
        printer = f'[printer]\nkind = "file"\npath = "{fifo}"\npaper = "80mm"\ntext = "raster"\n'
        config = site(tmp_path, printer + 'qr = "image"\ntimeout = "60s"\n')
        assert main(["receipt", "static", "--config", str(config), "--wait", "0.5"]) == 1
    finally:
        reader.close()
    assert "NOT printed: printer unknown" in capsys.readouterr().out
