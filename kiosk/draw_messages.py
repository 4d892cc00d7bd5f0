"""The screens that only say something and have no targets: 谢谢, idle (欢迎办理), signed out,
paused and the full-screen notice."""

from __future__ import annotations

import pygame

from kiosk import texts
from kiosk.layout import wrap_lines
from kiosk.painter import Line, Painter
from kiosk.palette import (
    ACCENT,
    HEADER,
    HEADER_NOTICE,
    HEADER_PAUSED,
    INK,
    MUTED,
    THANKS_GREEN,
    WHITE,
)
from kiosk.view import ScreenView


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
    lines: list[Line] = [(texts.THANKS, p.px(56), INK, True)]
    if v.message:
        lines.append((v.message, p.px(24), MUTED, False))
    p.centered_lines(lines, int(height * 0.72), width - 2 * p.px(24))
    p.countdown_corner(v.seconds_left)


def draw_idle(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    top = p.header(v.window, HEADER)
    lines: list[Line] = [(texts.IDLE_WELCOME, p.px(72), ACCENT, True)]
    clerk = clerk_line(v)
    if clerk:
        lines.append((clerk, p.px(30), INK, False))
    if v.message:
        lines.append((v.message, p.px(22), MUTED, False))
    p.centered_lines(lines, (top + height) // 2, width - 2 * p.px(24))


def draw_signed_out(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    top = p.header(v.window, HEADER_PAUSED)
    lines: list[Line] = [
        (texts.SIGNED_OUT_TITLE, p.px(72), INK, True),
        (texts.SIGNED_OUT_SUBTITLE, p.px(32), MUTED, False),
    ]
    if v.message:
        lines.append((v.message, p.px(22), MUTED, False))
    p.centered_lines(lines, (top + height) // 2, width - 2 * p.px(24))


def draw_paused(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    top = p.header(v.window, HEADER_PAUSED)
    lines: list[Line] = [(texts.PAUSED_TITLE, p.px(56), INK, True)]
    if v.message:
        lines.append((v.message, p.px(24), MUTED, False))
    p.centered_lines(lines, (top + height) // 2, width - 2 * p.px(24))
    p.countdown_corner(v.seconds_left, top)


def draw_notice(p: Painter, v: ScreenView) -> None:
    width, height = p.size
    top = p.header(texts.NOTICE_TITLE, HEADER_NOTICE, left=v.window)
    margin = p.px(40)
    box = pygame.Rect(margin, top + p.px(24), width - 2 * margin, height - top - p.px(60))
    p.layout.boxes["message"] = box
    size = p.px(32)
    font = p.font(size, True)
    max_lines = max(1, box.height // font.get_linesize())
    lines = wrap_lines(font, v.message, box.width, max_lines)
    p.centered_lines([(line, size, INK, True) for line in lines], box.centery, box.width)
    p.countdown_corner(v.seconds_left, top)


def clerk_line(v: ScreenView) -> str:
    """The idle screen's clerk line, "窗口人员：name　工号：id" (either part may be missing)."""
    parts = []
    if v.clerk_name:
        parts.append(texts.LABELLED_FMT.format(label=texts.LABEL_CLERK, value=v.clerk_name))
    if v.clerk_id:
        parts.append(texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=v.clerk_id))
    return "　".join(parts)
