"""kiosk.draw_receipt: a receipt's QR on the screen when the receipt could not be printed, at
every panel size and in both languages, on real pixels: the code read back by a real decoder
(zxing-cpp), the texts whole and beside it, no touch target (any touch closes the screen)."""

from __future__ import annotations

from collections.abc import Iterator

import pygame
import pytest

from kiosk import texts
from kiosk.palette import HEADER
from kiosk.qr import QUIET_ZONE, qr_matrix
from kiosk.screen import Screen
from kiosk.sizes import SIZES, PanelSize
from kiosk.view import ScreenView
from tests.kiosk.test_qr import decode

#: As long as a signed receipt link gets (a template of 120 characters, the longest allowed,
#: two 50-character serials and a 64-character matter code).
URLS = [
    "https://hcp.example.org/r?v=1&d=440500-hall1-w12&s=4405002026112600001&m=11440500MB2C9300X"
    "R4442111009000&c=A1023&ch=3&t=1780000000&e=1780604800&n=K7QD3MXA&k=3f0c9a4e&sig=" + "Q" * 86,
    "https://" + "h" * 100 + ".org/r?{query}".replace(
        "{query}",
        "v=1&d=" + "d" * 64 + "&s=" + "S" * 50 + "," + "T" * 50 + "&m=" + "M" * 64
        + "&c=T:ZZ-0107&ch=3&t=1780000000&e=1780604800&n=K7QD3MXA&k=3f0c9a4e&sig=" + "Q" * 86,
    ),
]  # fmt: skip


@pytest.fixture(params=SIZES, ids=lambda s: s.name)
def sized(request: pytest.FixtureRequest) -> Iterator[Screen]:
    size: PanelSize = request.param
    s = Screen(driver="dummy", width=size.width, height=size.height, dpi=size.dpi)
    pygame.event.clear()
    yield s
    s.close()


def view(url: str = URLS[0]) -> ScreenView:
    return ScreenView(
        "receipt_qr", window="12号窗口", qr=url, short_code="K7QD-3MXA", seconds_left=30
    )


@pytest.mark.parametrize("url", URLS, ids=["signed", "longest"])
@pytest.mark.parametrize("language", texts.LANGUAGES)
def test_the_code_reads_back_beside_whole_texts(sized: Screen, url: str, language: str) -> None:
    with texts.using(language):
        sized.render(view(url))
        layout = sized.layout
        qr = layout.boxes["qr"]
        assert decode(sized.surface, qr) == [url]
        modules = len(qr_matrix(url)) + 2 * QUIET_ZONE
        assert qr.width // modules >= 3  # three pixels a module or more: a phone reads it
        shown = [d.shown for d in layout.texts]
        for text in (texts.RECEIPT_QR_TITLE, texts.RECEIPT_QR_HINT, "K7QD-3MXA", "12号窗口"):
            assert text.replace(" ", "") in "".join(shown).replace(" ", "")
        whole = sized.surface.get_rect()
        for d in layout.texts:
            assert not d.shortened, d.shown
            assert whole.contains(d.rect) and not d.ink.colliderect(qr), d.shown
        assert layout.targets == []
        assert tuple(sized.surface.get_at((2, 2)))[:3] == HEADER


def test_the_short_code_is_shown_large(screen: Screen) -> None:
    screen.render(view())
    code = next(d for d in screen.layout.texts if "K7QD-3MXA" in d.shown)
    title = next(d for d in screen.layout.texts if d.text == texts.RECEIPT_QR_TITLE)
    assert code.size > title.size


def test_a_tap_on_it_is_no_action_for_the_app_to_apply(screen: Screen) -> None:
    """The app closes the screen on any touch; the screen itself maps no tap to an action."""
    screen.render(view())
    for pos in [(10, 200), screen.layout.boxes["qr"].center, (700, 240)]:
        assert screen.hit_test(pos) is None


def test_a_link_too_long_for_any_qr_shows_the_short_code_alone(screen: Screen) -> None:
    """A batch of fifty long serials makes a link no QR holds: the screen still gives the code."""
    url = "https://hcp.example.org/r?s=" + ",".join(f"{'ab' * 24}{n:02d}" for n in range(50))
    screen.render(view(url))
    assert "qr" not in screen.layout.boxes and decode(screen.surface) == []
    assert any("K7QD-3MXA" in d.shown for d in screen.layout.texts)
    assert not any(d.shortened for d in screen.layout.texts)
