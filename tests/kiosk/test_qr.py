"""kiosk.qr and the idle screen's static QR: real pixels read by a real decoder (zxing-cpp)."""

from __future__ import annotations

import pygame
import pytest
import zxingcpp
from PIL import Image

from kiosk.palette import INK
from kiosk.qr import DARK, LIGHT, QUIET_ZONE, qr_matrix, qr_side, qr_surface
from kiosk.screen import Screen
from kiosk.view import ScreenView

URLS = [
    "https://hcp.example.org/w/440500-hall1-w12",
    "http://10.0.0.5/rate?window=12&hall=1",
    "https://hcp.example.org/" + "x" * (200 - len("https://hcp.example.org/")),  # the longest
]
SIZES = [(800, 480), (1024, 600), (1280, 800), (480, 800)]


def decode(surface: pygame.Surface, rect: pygame.Rect | None = None) -> list[str]:
    """What a QR decoder reads in ``rect`` of ``surface`` (the whole surface by default)."""
    part = surface.subsurface(rect) if rect is not None else surface
    image = Image.frombytes("RGB", part.get_size(), pygame.image.tobytes(part, "RGB"))
    return [
        result.text
        for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    ]


@pytest.mark.parametrize("url", URLS)
def test_the_surface_decodes_to_the_text(url: str) -> None:
    surface = qr_surface(url, 300)
    assert surface is not None
    assert decode(surface) == [url]


@pytest.mark.parametrize("max_side", [37, 100, 299, 300, 1000])
def test_whole_pixel_modules_a_quiet_zone_and_dark_on_light(max_side: int) -> None:
    url = URLS[0]
    modules = len(qr_matrix(url))
    surface = qr_surface(url, max_side)
    assert surface is not None
    module = max_side // (modules + 2 * QUIET_ZONE)  # the largest whole size that fits
    side = qr_side(modules, module)
    assert surface.get_size() == (side, side) and side <= max_side
    assert qr_side(modules, module + 1) > max_side
    quiet = QUIET_ZONE * module
    colours = {
        tuple(surface.get_at((x, y)))[:3]
        for x in range(side)
        for y in range(side)
        if min(x, y) < quiet or max(x, y) >= side - quiet
    }
    assert colours == {LIGHT}
    matrix = qr_matrix(url)
    for y, row in enumerate(matrix):  # every pixel of every module is the module's colour
        for x, dark in enumerate(row):
            want = DARK if dark else LIGHT
            for dx, dy in ((0, 0), (module - 1, module - 1)):
                px = (quiet + x * module + dx, quiet + y * module + dy)
                assert tuple(surface.get_at(px))[:3] == want


def test_no_surface_when_a_module_cannot_get_one_pixel() -> None:
    modules = len(qr_matrix(URLS[0]))
    assert qr_surface(URLS[0], modules + 2 * QUIET_ZONE - 1) is None
    assert qr_surface(URLS[0], modules + 2 * QUIET_ZONE) is not None


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("url", URLS, ids=["short", "query", "longest"])
def test_the_idle_screen_shows_the_static_qr_a_phone_can_read(
    size: tuple[int, int], url: str
) -> None:
    """On the real Screen the QR cropped from the drawn pixels decodes to the configured URL,
    with its caption under it, beside (or under) the welcome text and inside the screen."""
    width, height = size
    screen = Screen(driver="dummy", width=width, height=height)
    try:
        view = ScreenView(
            "idle", window="12号窗口", clerk_name="陈晓明", clerk_id="A1023", qr=url, online=False
        )
        screen.render(view)
        boxes = screen.layout.boxes
        qr, caption, text = boxes["qr"], boxes["qr_caption"], boxes["idle_text"]
        whole = screen.surface.get_rect()
        for box in (qr, caption, text):
            assert whole.contains(box), (box, whole)
        assert not qr.colliderect(text) and not caption.colliderect(text)
        assert caption.top >= qr.bottom and caption.width > 0
        caption_colours = {
            tuple(screen.surface.get_at((x, y)))[:3]
            for x in range(caption.left, caption.right)
            for y in range(caption.top, caption.bottom)
        }
        assert INK in caption_colours  # the caption is drawn, in ink
        assert qr.width >= 120  # a phone reads it from the counter
        assert decode(screen.surface, qr) == [url]
        portrait = height > width  # the portrait design is 480×800
        scale = min(width / 480, height / 800) if portrait else min(width / 800, height / 480)
        font = screen.font(max(1, round(30 * scale)))
        for i, part in ((1, "窗口人员：陈晓明"), (2, "工号：A1023")):  # whole, never "A1…"
            drawn = boxes[f"idle_line{i}"]
            assert drawn.width == font.size(part)[0] and text.contains(drawn)
        assert decode(screen.surface) == [url]  # and nothing else on screen looks like a code
        assert screen.layout.targets == []
        screen.render(ScreenView("idle", window="12号窗口"))
        assert "qr" not in screen.layout.boxes and decode(screen.surface) == []
    finally:
        screen.close()
