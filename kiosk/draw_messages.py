"""The screens that only say something and have no targets: 谢谢, idle (欢迎办理, with the window's
static QR when configured), signed out, paused and the screensaver."""

from __future__ import annotations

import pygame

from kiosk import texts
from kiosk.painter import Line, Painter
from kiosk.palette import (
    ACCENT,
    HEADER,
    HEADER_PAUSED,
    INK,
    MUTED,
    THANKS_GREEN,
    WHITE,
    Color,
)
from kiosk.qr import qr_surface
from kiosk.view import ScreenView

#: The screensaver: a black screen, the label in grey (contrast 7:1, few lit pixels).
SAVER_BACKGROUND: Color = (0, 0, 0)
SAVER_INK: Color = (150, 150, 150)
SAVER_MUTED: Color = (120, 120, 120)
#: Steps of the screensaver's drift along each axis (golden-ratio walk: places spread evenly
#: and repeat only after many steps).
_DRIFT_X = 0.6180339887
_DRIFT_Y = 0.7548776662


def draw_thanks(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    radius = p.px(64)
    center = (width // 2, int(height * 0.34))
    pygame.draw.circle(p.surface, THANKS_GREEN, center, radius)
    cx, cy = center
    pygame.draw.lines(
        p.surface,
        WHITE,
        False,
        [
            (cx - radius * 0.45, cy + radius * 0.02),
            (cx - radius * 0.1, cy + radius * 0.36),
            (cx + radius * 0.48, cy - radius * 0.3),
        ],
        p.px(10),
    )
    lines = [Line(texts.THANKS, p.px(56), INK, bold=True)]
    if v.message:
        lines.append(Line(v.message, p.px(24), MUTED))
    margin = p.px(24)
    top = cy + radius + p.px(12)
    p.centered_lines(lines, pygame.Rect(margin, top, width - 2 * margin, height - top - margin))
    p.countdown_corner(v.seconds_left)


def draw_idle(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    top = p.header(v.window, HEADER)
    welcome = Line(texts.IDLE_WELCOME, p.px(72), ACCENT, bold=True)
    message = [Line(v.message, p.px(22), MUTED)] if v.message else []
    # The clerk's name and number on one line, or on two when that is too wide (portrait, or
    # beside the QR): each is shown whole, never "A1…".
    parts = clerk_parts(v)
    one_line = clerk_line(v)
    margin = p.px(24)
    if v.qr and _draw_idle_qr(p, v.qr, top, welcome, parts, message):
        return
    box = pygame.Rect(margin, top, width - 2 * margin, height - top)
    if p.font(p.px(30)).size(one_line)[0] <= box.width:
        clerk = [Line(one_line, p.px(30), INK, fixed=False)] if one_line else []
    else:
        clerk = [Line(part, p.px(30), INK, fixed=False) for part in parts]
    p.centered_lines([welcome, *clerk, *message], box, prefix="idle_line")


def _draw_idle_qr(
    p: Painter, url: str, top: int, welcome: Line, parts: list[str], message: list[Line]
) -> bool:
    """The window's static QR with its caption beside the idle text (below it on a portrait
    screen); False, drawing nothing, when the code does not fit at one pixel a module."""
    width, height = p.size
    margin, gap = p.px(24), p.px(8)
    caption_size = p.px(24)
    caption_h = p.font(caption_size).get_linesize()
    if p.portrait:
        max_side = min(width - 2 * margin, (height - top) // 2 - caption_h - gap - margin)
    else:
        max_side = min(height - top - 2 * margin - caption_h - gap, int(width * 0.42))
    code = qr_surface(url, max_side) if max_side > 0 else None
    if code is None:
        return False
    side = code.get_width()
    block_h = side + gap + caption_h
    if p.portrait:
        qr_rect = pygame.Rect((width - side) // 2, height - margin - block_h, side, side)
        text_box = pygame.Rect(margin, top, width - 2 * margin, qr_rect.top - top)
    else:
        area_mid = (top + height) // 2
        qr_rect = pygame.Rect(width - margin - side, area_mid - block_h // 2, side, side)
        text_box = pygame.Rect(margin, top, qr_rect.left - 2 * margin, height - top)
    p.surface.blit(code, qr_rect)
    p.layout.boxes["qr"] = qr_rect
    caption_w = max(side, width // 3)
    caption_box = pygame.Rect(qr_rect.centerx - caption_w // 2, qr_rect.bottom + gap,
                              caption_w, caption_h)  # fmt: skip
    caption = p.block(texts.IDLE_QR_CAPTION, caption_size, INK, caption_box)
    p.layout.boxes["qr_caption"] = caption
    clerk = [Line(part, p.px(30), INK, fixed=False) for part in parts]
    p.centered_lines([welcome, *clerk, *message], text_box, prefix="idle_line")
    p.layout.boxes["idle_text"] = text_box
    return True


def draw_screensaver(p: Painter, v: ScreenView) -> None:
    """Dark and low-burn: the window label (欢迎办理 without one) and a small hint, small and
    grey, at a new place for each ``saver_step`` so no pixel stays lit."""
    width, height = p.size
    p.surface.fill(SAVER_BACKGROUND)
    margin = p.px(24)
    # Small enough to drift across a third of a portrait panel too.
    label_size, hint_size = p.px(28 if not p.portrait else 22), p.px(18)
    max_width = max(1, width - 2 * margin)
    label_text = v.window or texts.IDLE_WELCOME
    label_w = p.font(label_size).size(label_text)[0]
    hint_w = p.font(hint_size).size(texts.SCREENSAVER_HINT)[0]
    block_w = min(max_width, max(label_w, hint_w))
    block_h = p.font(label_size).get_linesize() + p.px(6) + p.font(hint_size).get_linesize()
    free_x = max(0, width - 2 * margin - block_w)
    free_y = max(0, height - 2 * margin - block_h)
    x = margin + int((v.saver_step * _DRIFT_X) % 1.0 * free_x)
    y = margin + int((v.saver_step * _DRIFT_Y) % 1.0 * free_y)
    block = pygame.Rect(x, y, block_w, block_h)
    drawn = p.text(label_text, label_size, SAVER_INK, max_width=block_w, fixed=not v.window,
                   midtop=(block.centerx, block.top))  # fmt: skip
    p.text(texts.SCREENSAVER_HINT, hint_size, SAVER_MUTED, max_width=block_w, fixed=True,
           midtop=(block.centerx, drawn.bottom + p.px(6)))  # fmt: skip
    p.layout.boxes["saver"] = block


def draw_signed_out(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    top = p.header(v.window, HEADER_PAUSED)
    lines = [
        Line(texts.SIGNED_OUT_TITLE, p.px(72), INK, bold=True),
        Line(texts.SIGNED_OUT_SUBTITLE, p.px(32), MUTED),
    ]
    if v.message:
        lines.append(Line(v.message, p.px(22), MUTED))
    margin = p.px(24)
    p.centered_lines(lines, pygame.Rect(margin, top, width - 2 * margin, height - top))


def draw_paused(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    top = p.header(v.window, HEADER_PAUSED)
    lines = [Line(texts.PAUSED_TITLE, p.px(56), INK, bold=True)]
    if v.message:
        lines.append(Line(v.message, p.px(24), MUTED))
    margin = p.px(24)
    count_h = p.font(p.px(20)).get_linesize() + 2 * p.px(12) if v.seconds_left is not None else 0
    box = pygame.Rect(margin, top + count_h, width - 2 * margin, height - top - 2 * count_h)
    p.centered_lines(lines, box)
    p.countdown_corner(v.seconds_left, top)


def clerk_parts(v: ScreenView) -> list[str]:
    """The idle screen's clerk parts, "窗口人员：name" and "工号：id" (either may be missing)."""
    parts = []
    if v.clerk_name:
        parts.append(texts.LABELLED_FMT.format(label=texts.LABEL_CLERK, value=v.clerk_name))
    if v.clerk_id:
        parts.append(texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=v.clerk_id))
    return parts


def clerk_line(v: ScreenView) -> str:
    """The idle screen's clerk line, "窗口人员：name　工号：id" (either part may be missing)."""
    return texts.SEPARATOR.join(clerk_parts(v))
