"""The receipt's QR on the screen (issue 7): shown after 谢谢 (or at the end of a rating screen)
when the receipt could not be printed, so the citizen still leaves with the code.

The header names the window and counts down; the QR (the very link the receipt would have
carried) sits beside the text (below it on a portrait panel): the receipt's prompt, why it is on
the screen, the short code to type when a scan fails, and that a touch closes it.  No targets:
any touch closes the screen (the app does that), so nothing here needs 15 mm.
"""

from __future__ import annotations

import pygame

from kiosk import texts
from kiosk.painter import Line, Painter
from kiosk.palette import ACCENT, HEADER, INK, MUTED
from kiosk.qr import qr_surface
from kiosk.view import ScreenView


def draw_receipt_qr(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    top = p.header(v.window, HEADER, seconds=v.seconds_left)
    margin, gap = p.px(24), p.px(16)
    lines = [
        Line(texts.RECEIPT_QR_TITLE, p.px(34), ACCENT, bold=True),
        Line(texts.RECEIPT_QR_NOTE, p.px(24), INK),
        Line(texts.RECEIPT_QR_CODE_FMT.format(code=v.short_code), p.px(40), INK, bold=True),
        Line(texts.RECEIPT_QR_HINT, p.px(20), MUTED),
    ]
    room_w, room_h = width - 2 * margin, height - top - 2 * margin
    # The code takes up to 55 % of the free space along the panel's long side, the text the rest.
    long_side, short_side = (room_h, room_w) if p.portrait else (room_w, room_h)
    max_side = min(short_side, long_side * 11 // 20)
    code = _code(v.qr, max_side)
    side = code.get_width() if code is not None else 0
    if p.portrait:
        qr_rect = pygame.Rect((width - side) // 2, height - margin - side, side, side)
        text_box = pygame.Rect(margin, top, room_w, qr_rect.top - gap - top)
    else:
        qr_rect = pygame.Rect(margin, top + (height - top - side) // 2, side, side)
        text_box = pygame.Rect(qr_rect.right + gap, top, width - qr_rect.right - gap - margin,
                               height - top)  # fmt: skip
    if code is not None:
        p.surface.blit(code, qr_rect)
        p.layout.boxes["qr"] = qr_rect
    else:  # a link too long for any QR (a batch of many long serials): the short code only
        text_box = pygame.Rect(margin, top, room_w, height - top)
    p.layout.boxes["receipt_text"] = p.centered_lines(lines, text_box, prefix="receipt_line")


def _code(url: str, max_side: int) -> pygame.Surface | None:
    """``url`` as a QR of at most ``max_side`` pixels; ``None`` when there is none, it does not
    fit, or it is more than a QR holds (2331 bytes at level M)."""
    if not url:
        return None
    from qrcode.exceptions import DataOverflowError

    try:
        return qr_surface(url, max_side)
    except (DataOverflowError, ValueError):  # qrcode says "Invalid version (was 41…)" too
        return None
