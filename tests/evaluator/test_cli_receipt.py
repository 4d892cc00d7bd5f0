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

from evaluator.cli import PREVIEW_DEVICE_KEY, PREVIEW_THROWAWAY, main
from evaluator.rules import ratelink
from printer.decode import decode
from printer.glyphs import find_font
from printer.preview import NOTICE_PAD, notice_band
from sync.keys import DeviceKey
from tests.printer.fakes import PATIENCE, PipeReader, cuts, qr_texts

STATIC = "https://hcp.example.org/w/440500-hall1-w12"


def site(tmp_path: Path, extra: str = "", *, static: str = STATIC, key: str = "none.key") -> Path:
    """A pad's config; its device key file ``key`` in ``tmp_path`` (none there unless a test
    creates it)."""
    path = tmp_path / "site.toml"
    path.write_text(
        f'[device]\nid = "440500-hall1-w12"\nwindow = "12号窗口"\n'
        f"key_file = {json.dumps(str(tmp_path / key))}\n"
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


def band_of(path: Path, lines: tuple[str, ...] | list[str]) -> tuple[Image.Image, Image.Image]:
    """The top of the PNG at ``path`` and the notice band ``lines`` make, drawn independently
    with the printer's cells and font: equal pixel for pixel when the picture carries them."""
    image = Image.open(path).convert("L")
    band = notice_band(lines, image.width, find_font(""))
    return image.crop((0, 0, band.width, band.height)), band


@pytest.mark.parametrize("paper", ["", '[printer]\npaper = "80mm"\n'], ids=["58mm", "80mm"])
def test_preview_signs_with_the_device_key_and_qr_verify_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], paper: str
) -> None:
    key = DeviceKey.create(tmp_path / "device.key")
    before = (tmp_path / "device.key").read_bytes()
    out = tmp_path / "receipt.png"
    config = site(tmp_path, paper, key="device.key")
    assert main(["receipt", "preview", "--config", str(config), "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert f"signed with the device key {tmp_path / 'device.key'}, key id {key.key_id}" in said.out
    assert "throw-away" not in said.out + said.err
    [url] = read_png(out)
    assert main(["qr", "verify", url, "--pubkey", key.public.text]) == 0
    assert (tmp_path / "device.key").read_bytes() == before  # read, never rewritten
    top, band = band_of(out, [line.format(key_id=key.key_id) for line in PREVIEW_DEVICE_KEY])
    assert top.tobytes() == band.tobytes()
    assert "样张" in PREVIEW_DEVICE_KEY[0] and "{key_id}" in PREVIEW_DEVICE_KEY[1]


@pytest.mark.parametrize("why", ["missing", "not_a_key", "readable_by_others"])
def test_preview_without_a_usable_device_key_says_throw_away_on_the_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], why: str
) -> None:
    device = DeviceKey.create(tmp_path / "registered.key")  # the key the city knows
    path = tmp_path / "device.key"
    if why == "not_a_key":
        path.write_text("not a key")
        path.chmod(0o600)
    elif why == "readable_by_others":
        DeviceKey.create(path)
        path.chmod(0o644)
    out = tmp_path / "receipt.png"
    config = site(tmp_path, key="device.key")
    assert main(["receipt", "preview", "--config", str(config), "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert "signed with a throw-away key" in said.out
    assert "NOTE: no usable device key (" in said.err and str(path) in said.err  # the path
    assert (why == "missing") is not path.exists()  # never created
    [url] = read_png(out)
    assert main(["qr", "verify", url, "--pubkey", device.public.text]) == 1
    assert PREVIEW_THROWAWAY == (
        "样张：临时密钥，二维码无法验证", "specimen – throw-away key, the QR fails qr verify"
    )
    top, band = band_of(out, PREVIEW_THROWAWAY)
    assert top.tobytes() == band.tobytes()
    # The band has ink: each line's text, not only the frame.
    inner = top.crop((NOTICE_PAD, NOTICE_PAD, top.width - NOTICE_PAD, top.height - NOTICE_PAD))
    assert inner.getextrema()[0] < 128


def test_the_band_is_on_the_picture_only_not_in_the_printed_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes the printer would get (the real renderer, its output kept) carry no notice,
    and drawn alone they are exactly the picture below the band."""
    import printer.render
    from printer import PrinterProfile
    from printer.decode import Text
    from printer.preview import page_image

    made: list[bytes] = []
    real = printer.render.receipt_bytes

    def keep(*args: object, **kwargs: object) -> bytes:
        made.append(real(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(printer.render, "receipt_bytes", keep)
    out = tmp_path / "receipt.png"
    assert main(["receipt", "preview", "--config", str(site(tmp_path)), "--out", str(out)]) == 0
    [data] = made
    texts = "".join(seg.text for e in decode(data) if isinstance(e, Text) for seg in e.segments)
    assert "陈晓明" in texts  # the sample's clerk: the text is there, the notice is not
    assert not any(word in texts for word in ("样张", "临时密钥", "specimen", "throw-away"))
    image = Image.open(out).convert("L")
    _, band = band_of(out, PREVIEW_THROWAWAY)
    paper = image.crop((0, band.height, image.width, image.height))
    alone = page_image(data, PrinterProfile.from_config({}))
    assert paper.size == alone.size and paper.tobytes() == alone.tobytes()


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
