"""pygame rendering of a :class:`~kiosk.view.ScreenView`, hit testing and event translation.

One tap is one action: a touch arrives from SDL as ``FINGERDOWN`` *and* as a synthetic
``MOUSEBUTTONDOWN`` with ``touch=True``; only the finger event is used.  A real mouse click
(``touch=False``) is handled too, for a desk test.

Drawing and hit testing share one layout: every drawing helper that draws a tappable thing also
records its rectangle and action as a :class:`Target`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pygame

from evaluator.rules.levels import BUTTON_ORDER, Level
from kiosk import texts
from kiosk.fonts import find_cjk_font
from kiosk.view import (
    COMMENT_LIMIT,
    Back,
    Backspace,
    PressLevel,
    ScreenView,
    Submit,
    ToggleAgency,
    ToggleReason,
    TypeText,
    UiAction,
    reason_groups,
)

Color = tuple[int, int, int]

# --- palette: high contrast, calm background ---------------------------------------------------
BACKGROUND: Color = (244, 246, 249)
INK: Color = (24, 28, 36)
MUTED: Color = (88, 96, 108)
WHITE: Color = (255, 255, 255)
HEADER: Color = (0, 82, 155)
HEADER_PAUSED: Color = (84, 96, 112)
HEADER_NOTICE: Color = (196, 96, 0)
ACCENT: Color = (0, 92, 180)
PANEL: Color = (255, 255, 255)
PANEL_EDGE: Color = (196, 204, 216)
CHIP_EDGE: Color = (140, 150, 166)
SUBMIT_ENABLED: Color = (0, 124, 62)
SUBMIT_DISABLED: Color = (204, 208, 214)
SUBMIT_DISABLED_INK: Color = (120, 126, 134)
THANKS_GREEN: Color = (0, 140, 70)
ONLINE_DOT: Color = (40, 170, 80)
OFFLINE_DOT: Color = (160, 164, 170)

#: Fill of each level button: good levels in greens, bad ones orange / red.
BUTTON_COLORS: dict[Level, Color] = {
    Level.VERY_SATISFIED: (0, 120, 60),
    Level.SATISFIED: (30, 142, 66),
    Level.BASICALLY_SATISFIED: (84, 142, 40),
    Level.DISSATISFIED: (206, 100, 0),
    Level.VERY_DISSATISFIED: (186, 32, 32),
}

#: Mouth curvature of the face drawn on each button (+ smile, - frown).
_MOUTH: dict[Level, float] = {
    Level.VERY_SATISFIED: 1.0,
    Level.SATISFIED: 0.6,
    Level.BASICALLY_SATISFIED: 0.2,
    Level.DISSATISFIED: -0.45,
    Level.VERY_DISSATISFIED: -1.0,
}

ELLIPSIS = "…"

#: Scancodes of the top-row digits 1–5 and keypad 1–5 (layout independent; NumLock off still
#: sends the keypad scancode).
_DIGIT_SCANCODES = (30, 31, 32, 33, 34)
_KEYPAD_SCANCODES = (89, 90, 91, 92, 93)
_DIGIT_KEYS = (pygame.K_1, pygame.K_2, pygame.K_3, pygame.K_4, pygame.K_5)
_KEYPAD_KEYS = (pygame.K_KP1, pygame.K_KP2, pygame.K_KP3, pygame.K_KP4, pygame.K_KP5)

#: Post this (``Screen.post_wake()``) from another thread to wake ``Screen.wait`` early.
WAKE_EVENT: int = pygame.event.custom_type()


# --- text fitting (pure functions of a font) ---------------------------------------------------
def _longest_fit(
    font: pygame.font.Font, text: str, max_width: int, shorten: Callable[[int], str]
) -> str:
    """``text`` if it fits, else ``shorten(n)`` for the largest ``n`` that fits (binary search)."""
    if font.size(text)[0] <= max_width:
        return text
    if max_width <= 0 or font.size(ELLIPSIS)[0] > max_width:
        return ""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.size(shorten(mid))[0] <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return shorten(lo)


def ellipsize(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` shortened with "…" at the end so it is at most ``max_width`` pixels wide."""
    return _longest_fit(font, text, max_width, lambda n: text[:n].rstrip() + ELLIPSIS)


def ellipsize_head(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` shortened with "…" at the start (keeps the end, e.g. what is being typed)."""
    return _longest_fit(font, text, max_width, lambda n: ELLIPSIS + text[len(text) - n :])


def wrap_lines(font: pygame.font.Font, text: str, max_width: int, max_lines: int) -> list[str]:
    """``text`` broken into at most ``max_lines`` lines of ``max_width``; the last one gets "…"
    when text remains.  Breaks anywhere (hanzi need no spaces); honours newlines."""
    if max_lines <= 0:
        return []
    lines: list[str] = []
    paragraphs = text.split("\n")
    for p_index, paragraph in enumerate(paragraphs):
        rest = paragraph
        while True:
            if len(lines) == max_lines - 1:
                remaining = "".join([rest, *(" " + p for p in paragraphs[p_index + 1 :])]).strip()
                if remaining or not lines:
                    lines.append(ellipsize(font, remaining, max_width))
                return lines
            if font.size(rest)[0] <= max_width:
                lines.append(rest)
                break
            lo, hi = 0, len(rest)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if font.size(rest[:mid])[0] <= max_width:
                    lo = mid
                else:
                    hi = mid - 1
            if lo == 0:
                lines.append(ellipsize(font, rest, max_width))
                return lines
            cut = lo
            space = rest.rfind(" ", 0, lo + 1)
            if space > lo // 2 and rest[lo : lo + 1] not in ("", " "):
                cut = space  # keep a Latin word whole when a space is near
            lines.append(rest[:cut].rstrip())
            rest = rest[cut:].lstrip()
            if not rest:
                break
    return lines


# --- driver choice ----------------------------------------------------------------------------
def choose_driver(driver: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The SDL video driver to force, or ``None`` to let SDL choose.

    ``"auto"``: an explicit ``SDL_VIDEODRIVER`` or a desktop session (``DISPLAY`` /
    ``WAYLAND_DISPLAY``) lets SDL choose; a console with a DRM device (Pi OS Lite) gets
    ``"kmsdrm"``; anything else is headless and gets ``"dummy"``.  Other values are used as given.
    """
    if driver != "auto":
        return driver
    env = os.environ if environ is None else environ
    if env.get("SDL_VIDEODRIVER") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    if glob.glob("/dev/dri/card*"):
        return "kmsdrm"
    return "dummy"


def is_quit(event: pygame.event.Event) -> bool:
    """True for the window-manager close request (``QUIT``)."""
    return event.type == pygame.QUIT


@dataclass(frozen=True)
class Target:
    """A tappable rectangle of the last rendered screen."""

    rect: pygame.Rect
    action: UiAction
    enabled: bool = True


@dataclass
class Layout:
    """Tappable targets and named boxes of the last rendered screen (shared by draw and hit)."""

    screen: str = ""
    targets: list[Target] = field(default_factory=list)
    boxes: dict[str, pygame.Rect] = field(default_factory=dict)

    def find(self, action: UiAction) -> Target | None:
        """The target that emits ``action`` (enabled or not), if drawn."""
        for target in self.targets:
            if target.action == action:
                return target
        return None


@dataclass
class _Placed:
    kind: str  # "heading" | "chip" | "field"
    rect: pygame.Rect
    text: str = ""
    selected: bool = False
    action: UiAction | None = None


class Screen:
    """The citizen-facing display.  ``render`` draws a view; ``wait`` + ``translate`` turn
    events into :data:`~kiosk.view.UiAction` values against the last rendered layout."""

    def __init__(
        self,
        *,
        width: int = 800,
        height: int = 480,
        fullscreen: bool = False,
        font_path: Path | None = None,
        driver: str = "auto",
        title: str = texts.WINDOW_TITLE,
    ) -> None:
        # The font is checked first, so a missing font fails before any window opens.
        self.font_path: Path = find_cjk_font(font_path)
        chosen = choose_driver(driver)
        if chosen is not None:
            os.environ["SDL_VIDEODRIVER"] = chosen
        pygame.display.init()
        pygame.font.init()
        flags = pygame.FULLSCREEN if fullscreen else 0
        try:
            self._surface = pygame.display.set_mode((width, height), flags)
        except pygame.error as exc:
            pygame.display.quit()
            raise pygame.error(
                f"cannot open the display with SDL video driver "
                f"{os.environ.get('SDL_VIDEODRIVER', 'default')!r}: {exc}"
            ) from exc
        pygame.display.set_caption(title)
        if fullscreen:
            pygame.mouse.set_visible(False)
        # Motion never changes the view: do not wake the loop for it.
        pygame.event.set_blocked([pygame.MOUSEMOTION, pygame.FINGERMOTION])
        self._fonts: dict[tuple[int, bool], pygame.font.Font] = {}
        self._view: ScreenView | None = None
        self._layout = Layout()
        self._text_input = False
        pygame.key.stop_text_input()  # started only while 其他 is being typed

    # --- public API ---------------------------------------------------------------------------
    @property
    def surface(self) -> pygame.Surface:
        """The display surface (what was last drawn)."""
        return self._surface

    @property
    def size(self) -> tuple[int, int]:
        return self._surface.get_size()

    @property
    def view(self) -> ScreenView | None:
        """The last rendered view."""
        return self._view

    @property
    def layout(self) -> Layout:
        """Targets and boxes of the last rendered view."""
        return self._layout

    def render(self, view: ScreenView) -> None:
        """Draw the whole screen for ``view`` and flip."""
        self._view = view
        self._layout = Layout(screen=view.screen)
        self._surface.fill(BACKGROUND)
        draw = {
            "signed_out": self._draw_signed_out,
            "idle": self._draw_idle,
            "presenting": self._draw_presenting,
            "reasons": self._draw_reasons,
            "thanks": self._draw_thanks,
            "paused": self._draw_paused,
            "notice": self._draw_notice,
        }[view.screen]
        draw(view)
        self._draw_online(view.online)
        pygame.display.flip()
        self._set_text_input(view.screen == "reasons" and view.other_selected)

    def hit_test(self, pos: tuple[int, int]) -> UiAction | None:
        """The action at ``pos`` on the last rendered screen; ``None`` off target or disabled."""
        for target in reversed(self._layout.targets):
            if target.rect.collidepoint(pos):
                return target.action if target.enabled else None
        return None

    def translate(self, event: pygame.event.Event) -> UiAction | None:
        """The UI action an input event means on the current screen, if any."""
        view = self._view
        if view is None:
            return None
        kind = event.type
        if kind == pygame.KEYDOWN:
            if view.screen == "presenting":
                index = _digit_index(event)
                return PressLevel(BUTTON_ORDER[index]) if index is not None else None
            if view.screen == "reasons":
                if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
                    return Submit() if view.can_submit else None
                if event.key == pygame.K_ESCAPE:
                    return Back()
                if event.key == pygame.K_BACKSPACE and view.other_selected:
                    return Backspace()
            return None
        if kind == pygame.TEXTINPUT:
            if view.screen == "reasons" and view.other_selected and event.text:
                return TypeText(event.text)
            return None
        if kind == pygame.MOUSEBUTTONDOWN:
            if getattr(event, "touch", False) or getattr(event, "button", 1) != 1:
                return None  # a touch's mouse echo: the FINGERDOWN is the one used
            return self.hit_test(tuple(event.pos))
        if kind == pygame.FINGERDOWN:
            width, height = self.size
            return self.hit_test((int(event.x * width), int(event.y * height)))
        return None

    def wait(self, timeout_s: float) -> list[pygame.event.Event]:
        """Block up to ``timeout_s`` for input, then return every pending event (maybe none)."""
        events: list[pygame.event.Event] = []
        timeout_ms = int(timeout_s * 1000)
        if timeout_ms > 0:
            first = pygame.event.wait(timeout_ms)
            if first.type != pygame.NOEVENT:
                events.append(first)
        events.extend(pygame.event.get())
        return events

    @staticmethod
    def post_wake() -> None:
        """Wake a blocked :meth:`wait` from another thread (e.g. a trigger arrived)."""
        pygame.event.post(pygame.event.Event(WAKE_EVENT))

    def save_png(self, path: Path | str) -> Path:
        """Write what is on screen to a PNG file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self._surface, str(path))
        return path

    def close(self) -> None:
        """Close the display (fonts cached here become unusable)."""
        self._fonts.clear()
        if self._text_input:
            pygame.key.stop_text_input()
        pygame.display.quit()

    # --- drawing primitives -------------------------------------------------------------------
    @property
    def _scale(self) -> float:
        width, height = self.size
        return min(width / 800, height / 480)

    def _px(self, value: float) -> int:
        return max(1, round(value * self._scale))

    def font(self, size: int, bold: bool = False) -> pygame.font.Font:
        """The CJK font at ``size`` pixels (cached)."""
        key = (size, bold)
        font = self._fonts.get(key)
        if font is None:
            font = pygame.font.Font(str(self.font_path), size)
            font.set_bold(bold)
            self._fonts[key] = font
        return font

    def _text(
        self,
        text: str,
        size: int,
        color: Color,
        *,
        max_width: int,
        bold: bool = False,
        **anchor: tuple[int, int],
    ) -> pygame.Rect:
        """Draw one line, shortened with "…" to ``max_width``; ``anchor`` like ``center=(x, y)``."""
        font = self.font(size, bold)
        shown = ellipsize(font, text, max_width)
        if not shown:
            return pygame.Rect(0, 0, 0, 0)
        image = font.render(shown, True, color)
        rect = image.get_rect(**anchor)
        self._surface.blit(image, rect)
        return rect

    def _panel(self, rect: pygame.Rect) -> None:
        radius = self._px(12)
        pygame.draw.rect(self._surface, PANEL, rect, border_radius=radius)
        pygame.draw.rect(self._surface, PANEL_EDGE, rect, width=self._px(2), border_radius=radius)

    def _header(
        self, title: str, color: Color, *, left: str = "", seconds: int | None = None
    ) -> int:
        """A coloured band with a centred title, a label left and the countdown right."""
        width, _ = self.size
        height = self._px(64)
        margin = self._px(12)
        side = self._px(130)
        pygame.draw.rect(self._surface, color, pygame.Rect(0, 0, width, height))
        mid = height // 2
        self._text(
            title,
            self._px(32),
            WHITE,
            bold=True,
            max_width=width - 2 * side,
            center=(width // 2, mid),
        )
        if left:
            self._text(
                left, self._px(22), WHITE, max_width=side - margin - 6, midleft=(margin, mid)
            )
        if seconds is not None:
            self._text(
                texts.COUNTDOWN_FMT.format(seconds=max(0, seconds)),
                self._px(20),
                (220, 230, 242),
                max_width=side - margin - 6,
                midright=(width - margin, mid),
            )
        return height

    def _countdown_corner(self, seconds: int | None, top: int = 0) -> None:
        """The small countdown at the top right, ``top`` pixels down (below a header band)."""
        if seconds is None:
            return
        width, _ = self.size
        margin = self._px(12)
        self._text(
            texts.COUNTDOWN_FMT.format(seconds=max(0, seconds)),
            self._px(20),
            MUTED,
            max_width=self._px(120),
            topright=(width - margin, top + margin),
        )

    def _draw_online(self, online: bool) -> None:
        width, height = self.size
        radius = self._px(4)
        center = (width - self._px(7), height - self._px(7))
        if online:
            pygame.draw.circle(self._surface, ONLINE_DOT, center, radius)
        else:
            pygame.draw.circle(
                self._surface, OFFLINE_DOT, center, radius, width=max(1, radius // 2)
            )

    def _column(self, rect: pygame.Rect) -> _Column:
        return _Column(self, rect)

    def _centered_lines(
        self,
        lines: Sequence[tuple[str, int, Color, bool]],
        center_y: int,
        max_width: int,
    ) -> None:
        """Draw (text, size, color, bold) lines centred horizontally, as a block around y."""
        spacing = self._px(10)
        heights = [self.font(size, bold).get_linesize() + spacing for _, size, _, bold in lines]
        y = center_y - (sum(heights) - spacing) // 2
        width, _ = self.size
        for (text, size, color, bold), line_h in zip(lines, heights, strict=True):
            if text:
                self._text(
                    text, size, color, bold=bold, max_width=max_width, midtop=(width // 2, y)
                )
            y += line_h

    # --- presenting -----------------------------------------------------------------------------
    def _draw_presenting(self, v: ScreenView) -> None:
        width, height = self.size
        margin = self._px(12)
        gap = self._px(10)
        top = self._header(texts.PRESENT_TITLE, HEADER, left=v.window, seconds=v.seconds_left)
        y = top + self._px(8)
        extra = "　".join(
            part
            for part in (texts.THEME_FMT.format(theme=v.theme) if v.theme else "", v.message)
            if part
        )
        if extra:
            line_h = self._px(32)
            self._layout.boxes["extra"] = pygame.Rect(margin, y, width - 2 * margin, line_h)
            self._text(
                extra,
                self._px(22),
                ACCENT,
                bold=True,
                max_width=width - 2 * margin,
                midleft=(margin, y + line_h // 2),
            )
            y += line_h
        button_h = min(self._px(150), (height - y) // 2)
        button_top = height - margin - button_h
        panels_bottom = button_top - gap
        has_clerk = bool(v.clerk_name or v.clerk_id)
        inner_w = width - 2 * margin
        clerk_w = int((inner_w - gap) * 0.36) if has_clerk else 0
        case_w = inner_w - (clerk_w + gap if has_clerk else 0)
        case_rect = pygame.Rect(margin, y, case_w, panels_bottom - y)
        self._layout.boxes["case"] = case_rect
        self._panel(case_rect)
        self._draw_cases(case_rect, v.cases)
        if has_clerk:
            clerk_rect = pygame.Rect(case_rect.right + gap, y, clerk_w, panels_bottom - y)
            self._layout.boxes["clerk"] = clerk_rect
            self._panel(clerk_rect)
            self._draw_clerk(clerk_rect, v.clerk_name, v.clerk_id)
        self._draw_level_buttons(pygame.Rect(margin, button_top, inner_w, button_h))

    def _draw_cases(self, box: pygame.Rect, cases: tuple[tuple[str, str], ...]) -> None:
        pad = self._px(14)
        col = self._column(box.inflate(-2 * pad, -2 * pad))
        label_size, value_size, serial_size = self._px(18), self._px(32), self._px(26)
        serial_block = (
            self.font(label_size).get_linesize()
            + self.font(serial_size).get_linesize()
            + self._px(6)
        )
        if len(cases) <= 1:
            matter, serial = cases[0] if cases else ("", "")
            col.line(texts.LABEL_MATTER, label_size, MUTED)
            value_font = self.font(value_size, True)
            room = col.rect.bottom - serial_block - col.y
            max_lines = max(1, min(3, room // value_font.get_linesize()))
            for line in wrap_lines(value_font, matter, col.rect.width, max_lines):
                col.line(line, value_size, INK, bold=True)
            col.space(self._px(6))
            col.line(texts.LABEL_SERIAL, label_size, MUTED)
            col.line(serial, serial_size, INK)
            return
        count = texts.BATCH_COUNT_FMT.format(count=len(cases))
        matters = {matter for matter, _ in cases}
        if len(matters) == 1:
            col.pair(texts.LABEL_MATTER, label_size, MUTED, count, self._px(22), ACCENT)
            col.line(cases[0][0], self._px(26), INK, bold=True)
            col.space(self._px(4))
            col.line(texts.LABEL_SERIAL, label_size, MUTED)
            items = [serial for _, serial in cases]
            item_size = self._px(22)
        else:
            col.pair(texts.LABEL_MATTER, label_size, MUTED, count, self._px(22), ACCENT)
            items = [
                texts.BATCH_LINE_FMT.format(matter=matter, serial=serial)
                for matter, serial in cases
            ]
            item_size = self._px(22)
        line_h = self.font(item_size).get_linesize()
        fits = max(0, (col.rect.bottom - col.y) // line_h)
        if len(items) > fits and fits > 0:
            shown = items[: fits - 1]
            more = texts.BATCH_MORE_FMT.format(count=len(items) - len(shown))
        else:
            shown, more = items, ""
        for item in shown:
            col.line(item, item_size, INK)
        if more:
            col.line(more, item_size, MUTED)

    def _draw_clerk(self, box: pygame.Rect, name: str, clerk_id: str) -> None:
        pad = self._px(14)
        col = self._column(box.inflate(-2 * pad, -2 * pad))
        col.line(texts.LABEL_CLERK, self._px(18), MUTED)
        col.space(self._px(4))
        if name:
            col.line(name, self._px(36), INK, bold=True)
        if clerk_id:
            col.space(self._px(6))
            col.line(
                texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=clerk_id),
                self._px(24),
                INK,
            )

    def _draw_level_buttons(self, row: pygame.Rect) -> None:
        gap = self._px(8)
        count = len(BUTTON_ORDER)
        button_w = (row.width - gap * (count - 1)) / count
        for i, level in enumerate(BUTTON_ORDER):
            left = row.left + round(i * (button_w + gap))
            right = row.left + round(i * (button_w + gap) + button_w)
            rect = pygame.Rect(left, row.top, right - left, row.height)
            self._level_button(rect, level)
            self._layout.targets.append(Target(rect, PressLevel(level)))

    def _level_button(self, rect: pygame.Rect, level: Level) -> None:
        color = BUTTON_COLORS[level]
        pygame.draw.rect(self._surface, color, rect, border_radius=self._px(14))
        # The face sits in the upper third and the label in the lower quarter, so the
        # centre of the button always shows the plain button colour.
        radius = int(min(rect.width, rect.height) * 0.16)
        face = (rect.centerx, rect.top + int(rect.height * 0.28))
        self._face(face, radius, _MOUTH[level])
        self._text(
            level.label,
            self._px(26),
            WHITE,
            bold=True,
            max_width=rect.width - self._px(8),
            center=(rect.centerx, rect.top + int(rect.height * 0.76)),
        )

    def _face(self, center: tuple[int, int], radius: int, mouth: float) -> None:
        cx, cy = center
        line = max(2, radius // 8)
        pygame.draw.circle(self._surface, WHITE, center, radius, width=line)
        eye_r = max(2, radius // 8)
        for dx in (-1, 1):
            pygame.draw.circle(
                self._surface,
                WHITE,
                (cx + dx * int(radius * 0.36), cy - int(radius * 0.25)),
                eye_r,
            )
        base = cy + radius * (0.42 if mouth > 0 else 0.3)
        half = radius * 0.5
        points = []
        for step in range(-6, 7):
            t = step / 6
            points.append((cx + t * half, base - mouth * radius * 0.28 * t * t))
        pygame.draw.lines(self._surface, WHITE, False, points, max(2, radius // 7))

    # --- reasons ------------------------------------------------------------------------------
    def _draw_reasons(self, v: ScreenView) -> None:
        width, height = self.size
        margin = self._px(12)
        level = v.level or Level.DISSATISFIED
        top = self._header(
            texts.REASONS_TITLE_FMT.format(level=level.label), HEADER, seconds=v.seconds_left
        )
        bar_h = self._px(60)
        bar_top = height - margin - bar_h
        area = pygame.Rect(
            margin,
            top + self._px(10),
            width - 2 * margin,
            bar_top - self._px(8) - top - self._px(10),
        )
        self._layout.boxes["reasons"] = area
        placed = self._plan_fitting(v, area)
        for item in placed:
            if item.rect.bottom > area.bottom:
                continue  # never overflow into the buttons (only with absurd lists)
            if item.kind == "heading":
                self._text(
                    item.text,
                    item.rect.height // 2,
                    ACCENT,
                    bold=True,
                    max_width=item.rect.width,
                    midleft=item.rect.midleft,
                )
            elif item.kind == "chip":
                self._chip(item)
                assert item.action is not None
                self._layout.targets.append(Target(item.rect, item.action))
            elif item.kind == "field":
                self._layout.boxes["comment"] = item.rect
                self._comment_field(item.rect, v.comment)
        # bottom bar: 返回 left, 提交 right, a hint between while nothing is chosen
        back = pygame.Rect(margin, bar_top, self._px(150), bar_h)
        submit = pygame.Rect(width - margin - self._px(200), bar_top, self._px(200), bar_h)
        radius = self._px(12)
        pygame.draw.rect(self._surface, PANEL, back, border_radius=radius)
        pygame.draw.rect(self._surface, CHIP_EDGE, back, width=self._px(2), border_radius=radius)
        self._text(
            texts.BUTTON_BACK,
            self._px(26),
            INK,
            bold=True,
            max_width=back.width - 8,
            center=back.center,
        )
        self._layout.targets.append(Target(back, Back()))
        fill = SUBMIT_ENABLED if v.can_submit else SUBMIT_DISABLED
        ink = WHITE if v.can_submit else SUBMIT_DISABLED_INK
        pygame.draw.rect(self._surface, fill, submit, border_radius=radius)
        self._text(
            texts.BUTTON_SUBMIT,
            self._px(28),
            ink,
            bold=True,
            max_width=submit.width - 8,
            center=submit.center,
        )
        self._layout.targets.append(Target(submit, Submit(), enabled=v.can_submit))
        hint = v.message or ("" if v.can_submit else texts.SUBMIT_HINT)
        if hint:  # a notice (nothing stored, an ID number in the text) wins over the hint
            gap = self._px(12)
            self._text(
                hint,
                self._px(20),
                HEADER_NOTICE if v.message else MUTED,
                max_width=submit.left - back.right - 2 * gap,
                center=((back.right + submit.left) // 2, submit.centery),
            )

    def _plan_fitting(self, v: ScreenView, area: pygame.Rect) -> list[_Placed]:
        """The reasons layout at the largest chip font that fits ``area``."""
        placed: list[_Placed] = []
        for size in (24, 22, 21, 20, 19, 18, 17, 16, 15, 14):
            placed, bottom = self._plan_reasons(v, area, self._px(size))
            if bottom <= area.bottom:
                break
        return placed

    def _plan_reasons(
        self, v: ScreenView, area: pygame.Rect, size: int
    ) -> tuple[list[_Placed], int]:
        font = self.font(size)
        chip_h = round(size * 1.9)
        row_gap = self._px(8)
        chip_gap = self._px(10)
        group_gap = self._px(4)
        heading_w = self._px(104)
        left, right = area.left + heading_w, area.right
        groups: list[tuple[str, list[tuple[str, bool, UiAction]], bool]] = [
            (
                heading,
                [(item.text, item.selected, ToggleReason(item.code)) for item in items],
                items[0].target == "other",
            )
            for heading, items in reason_groups(v.reasons)
        ]
        if v.agencies:
            groups.append(
                (
                    texts.GROUP_AGENCIES,
                    [(name, sel, ToggleAgency(name)) for name, sel in v.agencies],
                    False,
                )
            )
        placed: list[_Placed] = []
        y = area.top
        for heading, items, is_other in groups:
            placed.append(
                _Placed(
                    "heading", pygame.Rect(area.left, y, heading_w - self._px(8), chip_h), heading
                )
            )
            x = left
            for text, selected, action in items:
                chip_w = min(self._chip_width(font, text, chip_h), right - left)
                if x > left and x + chip_w > right:
                    x = left
                    y += chip_h + row_gap
                placed.append(
                    _Placed("chip", pygame.Rect(x, y, chip_w, chip_h), text, selected, action)
                )
                x += chip_w + chip_gap
            if is_other and v.other_selected:
                if right - x < self._px(260):
                    x = left
                    y += chip_h + row_gap
                placed.append(_Placed("field", pygame.Rect(x, y, right - x, chip_h)))
            y += chip_h + row_gap + group_gap
        return placed, y - row_gap - group_gap

    def _chip_metrics(self, chip_h: int) -> tuple[int, int, int]:
        """(padding, checkbox size, gap after checkbox) of a chip of height ``chip_h``."""
        return max(4, chip_h // 4), max(8, int(chip_h * 0.46)), max(4, chip_h // 6)

    def _chip_width(self, font: pygame.font.Font, text: str, chip_h: int) -> int:
        pad, box, gap = self._chip_metrics(chip_h)
        return pad + box + gap + font.size(text)[0] + pad

    def _chip(self, item: _Placed) -> None:
        rect = item.rect
        size = round(rect.height / 1.9)
        pad, box, gap = self._chip_metrics(rect.height)
        radius = rect.height // 4
        fill, edge, ink = (ACCENT, ACCENT, WHITE) if item.selected else (PANEL, CHIP_EDGE, INK)
        pygame.draw.rect(self._surface, fill, rect, border_radius=radius)
        pygame.draw.rect(self._surface, edge, rect, width=self._px(2), border_radius=radius)
        check = pygame.Rect(rect.left + pad, rect.centery - box // 2, box, box)
        if item.selected:
            pygame.draw.rect(self._surface, WHITE, check, border_radius=max(2, box // 6))
            pygame.draw.lines(
                self._surface,
                ACCENT,
                False,
                [
                    (check.left + box * 0.2, check.top + box * 0.52),
                    (check.left + box * 0.42, check.top + box * 0.74),
                    (check.left + box * 0.8, check.top + box * 0.28),
                ],
                max(2, box // 6),
            )
        else:
            pygame.draw.rect(
                self._surface,
                CHIP_EDGE,
                check,
                width=max(2, box // 10),
                border_radius=max(2, box // 6),
            )
        text_left = check.right + gap
        self._text(
            item.text,
            size,
            ink,
            max_width=rect.right - pad - text_left,
            midleft=(text_left, rect.centery),
        )

    def _comment_field(self, rect: pygame.Rect, comment: str) -> None:
        size = round(rect.height / 1.9)
        pad = max(4, rect.height // 4)
        radius = rect.height // 4
        pygame.draw.rect(self._surface, PANEL, rect, border_radius=radius)
        pygame.draw.rect(self._surface, ACCENT, rect, width=self._px(2), border_radius=radius)
        counter = texts.COMMENT_COUNTER_FMT.format(count=len(comment), limit=COMMENT_LIMIT)
        counter_size = max(10, int(size * 0.8))
        counter_rect = self._text(
            counter,
            counter_size,
            MUTED,
            max_width=rect.width // 2,
            midright=(rect.right - pad, rect.centery),
        )
        text_room = counter_rect.left - pad - rect.left - pad - self._px(6)
        font = self.font(size)
        if comment:
            shown = ellipsize_head(font, comment, text_room)
            drawn = self._text(
                shown, size, INK, max_width=text_room, midleft=(rect.left + pad, rect.centery)
            )
            caret_x = min(drawn.right + 2, rect.left + pad + text_room + 2)
        else:
            self._text(
                texts.COMMENT_PLACEHOLDER,
                size,
                MUTED,
                max_width=text_room,
                midleft=(rect.left + pad + self._px(6), rect.centery),
            )
            caret_x = rect.left + pad
        half = int(size * 0.6)
        pygame.draw.line(
            self._surface,
            ACCENT,
            (caret_x, rect.centery - half),
            (caret_x, rect.centery + half),
            max(2, self._px(2)),
        )

    # --- the other screens --------------------------------------------------------------------
    def _draw_thanks(self, v: ScreenView) -> None:
        width, height = self.size
        radius = self._px(64)
        center = (width // 2, int(height * 0.34))
        pygame.draw.circle(self._surface, THANKS_GREEN, center, radius)
        cx, cy = center
        pygame.draw.lines(
            self._surface,
            WHITE,
            False,
            [
                (cx - radius * 0.45, cy + radius * 0.02),
                (cx - radius * 0.1, cy + radius * 0.36),
                (cx + radius * 0.48, cy - radius * 0.3),
            ],
            self._px(10),
        )
        lines: list[tuple[str, int, Color, bool]] = [(texts.THANKS, self._px(56), INK, True)]
        if v.message:
            lines.append((v.message, self._px(24), MUTED, False))
        self._centered_lines(lines, int(height * 0.72), width - 2 * self._px(24))
        self._countdown_corner(v.seconds_left)

    def _draw_idle(self, v: ScreenView) -> None:
        width, height = self.size
        top = self._header(v.window, HEADER)
        lines: list[tuple[str, int, Color, bool]] = [
            (texts.IDLE_WELCOME, self._px(72), ACCENT, True)
        ]
        clerk = self._clerk_line(v)
        if clerk:
            lines.append((clerk, self._px(30), INK, False))
        if v.message:
            lines.append((v.message, self._px(22), MUTED, False))
        self._centered_lines(lines, (top + height) // 2, width - 2 * self._px(24))

    def _draw_signed_out(self, v: ScreenView) -> None:
        width, height = self.size
        top = self._header(v.window, HEADER_PAUSED)
        lines: list[tuple[str, int, Color, bool]] = [
            (texts.SIGNED_OUT_TITLE, self._px(72), INK, True),
            (texts.SIGNED_OUT_SUBTITLE, self._px(32), MUTED, False),
        ]
        if v.message:
            lines.append((v.message, self._px(22), MUTED, False))
        self._centered_lines(lines, (top + height) // 2, width - 2 * self._px(24))

    def _draw_paused(self, v: ScreenView) -> None:
        width, height = self.size
        top = self._header(v.window, HEADER_PAUSED)
        lines: list[tuple[str, int, Color, bool]] = [(texts.PAUSED_TITLE, self._px(56), INK, True)]
        if v.message:
            lines.append((v.message, self._px(24), MUTED, False))
        self._centered_lines(lines, (top + height) // 2, width - 2 * self._px(24))
        self._countdown_corner(v.seconds_left, top)

    def _draw_notice(self, v: ScreenView) -> None:
        width, height = self.size
        top = self._header(texts.NOTICE_TITLE, HEADER_NOTICE, left=v.window)
        margin = self._px(40)
        box = pygame.Rect(
            margin, top + self._px(24), width - 2 * margin, height - top - self._px(60)
        )
        self._layout.boxes["message"] = box
        size = self._px(32)
        font = self.font(size, True)
        max_lines = max(1, box.height // font.get_linesize())
        lines = wrap_lines(font, v.message, box.width, max_lines)
        self._centered_lines([(line, size, INK, True) for line in lines], box.centery, box.width)
        self._countdown_corner(v.seconds_left, top)

    def _clerk_line(self, v: ScreenView) -> str:
        parts = []
        if v.clerk_name:
            parts.append(texts.LABELLED_FMT.format(label=texts.LABEL_CLERK, value=v.clerk_name))
        if v.clerk_id:
            parts.append(texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=v.clerk_id))
        return "　".join(parts)

    def _set_text_input(self, on: bool) -> None:
        if on and not self._text_input:
            pygame.key.start_text_input()
        elif not on and self._text_input:
            pygame.key.stop_text_input()
        self._text_input = on


class _Column:
    """Lines written top to bottom inside a rectangle; a line that would not fit is skipped."""

    def __init__(self, screen: Screen, rect: pygame.Rect) -> None:
        self.screen = screen
        self.rect = rect
        self.y = rect.top

    def line(self, text: str, size: int, color: Color, *, bold: bool = False) -> bool:
        line_h = self.screen.font(size, bold).get_linesize()
        if self.y + line_h > self.rect.bottom:
            return False
        if text:
            self.screen._text(
                text,
                size,
                color,
                bold=bold,
                max_width=self.rect.width,
                topleft=(self.rect.left, self.y),
            )
        self.y += line_h
        return True

    def pair(
        self,
        left: str,
        left_size: int,
        left_color: Color,
        right: str,
        right_size: int,
        right_color: Color,
    ) -> bool:
        """A label left and a bold note right on one line (right side wins the room)."""
        line_h = max(
            self.screen.font(left_size).get_linesize(),
            self.screen.font(right_size, True).get_linesize(),
        )
        if self.y + line_h > self.rect.bottom:
            return False
        mid = self.y + line_h // 2
        drawn = self.screen._text(
            right,
            right_size,
            right_color,
            bold=True,
            max_width=self.rect.width,
            midright=(self.rect.right, mid),
        )
        self.screen._text(
            left,
            left_size,
            left_color,
            max_width=max(0, drawn.left - self.rect.left - 8) if drawn.width else self.rect.width,
            midleft=(self.rect.left, mid),
        )
        self.y += line_h
        return True

    def space(self, pixels: int) -> None:
        self.y += pixels


def _digit_index(event: pygame.event.Event) -> int | None:
    """0–4 for keys 1–5 on the top row or the keypad, else ``None``."""
    key = getattr(event, "key", None)
    for keys in (_DIGIT_KEYS, _KEYPAD_KEYS):
        if key in keys:
            return keys.index(key)
    scancode = getattr(event, "scancode", None)
    for codes in (_DIGIT_SCANCODES, _KEYPAD_SCANCODES):
        if scancode in codes:
            return codes.index(scancode)
    return None
