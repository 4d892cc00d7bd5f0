"""The citizen-facing display: the SDL window and its driver, waiting for events, and turning
taps and keys into :data:`~kiosk.view.UiAction` values against the last rendered layout.

What each screen looks like lives in ``kiosk/draw_<screen>.py`` (one module per screen), the drawing
primitives in :mod:`kiosk.painter`, text fitting and hit targets in :mod:`kiosk.layout`.

The reasons may take several pages (:mod:`kiosk.draw_reasons`): the screen keeps which page
shows and turns it on a tap of the pager (or PageUp / PageDown) itself; that is no business of
the session.  A new reason screen starts at its first page, and choosing 其他 shows the page of
its text field.

A batch too long for the case panel is paged the same way (:mod:`kiosk.draw_presenting`), and
the screen also keeps which of its cases were drawn on a page shown since the cases came
(:attr:`Screen.cases_unseen`; kept through the reason screen and back, forgotten on any other
screen).  The app holds a level press back while one was not shown: :meth:`Screen.show_unseen`
turns to the first page not shown instead (art. 24: a citizen rates only cases they saw).

One tap is one action: a touch arrives from SDL as ``FINGERDOWN`` *and* as a synthetic
``MOUSEBUTTONDOWN`` with ``touch=True``; only the finger event is used.  A real mouse click
(``touch=False``) is handled too, for a desk test.

A panel mounted turned (``[screen] rotate``: 90, 180 or 270 degrees clockwise, as the technician
turned it) keeps its native display mode (``width`` × ``height``); the screens are laid out and
drawn at the logical size (480×800 on an 800×480 panel turned 90) on a surface of their own, which
is turned onto the display at each frame (``pygame.transform.rotate``, about 0.7 ms at 1280×800 on
a desktop; nothing of it at rotate 0, where the painter draws on the display itself).  Every tap
and click arrives on the display's pixels and is turned back to the logical screen
(:meth:`Screen.position`) before it is hit-tested, so :attr:`Screen.size`, :attr:`Screen.surface`
and the layout are always logical: what the citizen sees, upright.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pygame

from evaluator.rules.levels import BUTTON_ORDER
from kiosk import texts
from kiosk.draw_messages import (
    draw_idle,
    draw_paused,
    draw_screensaver,
    draw_signed_out,
    draw_thanks,
)
from kiosk.draw_presenting import draw_presenting
from kiosk.draw_reasons import draw_reasons
from kiosk.draw_receipt import draw_receipt_qr
from kiosk.draw_tech import draw_tech_menu, draw_tech_pin
from kiosk.fonts import find_bold_font, find_cjk_font
from kiosk.layout import Layout
from kiosk.painter import Painter
from kiosk.palette import BACKGROUND
from kiosk.sizes import (
    DEFAULT_DPI,
    ROTATIONS,
    display_to_logical,
    finger_to_logical,
    logical_size,
)
from kiosk.view import (
    Back,
    Backspace,
    PressLevel,
    ScreenView,
    ShownCase,
    Submit,
    TurnPage,
    TypeText,
    UiAction,
)

log = logging.getLogger(__name__)

#: Scancodes of the top-row digits 1–5 and keypad 1–5 (layout independent; NumLock off still
#: sends the keypad scancode).
_DIGIT_SCANCODES = (30, 31, 32, 33, 34)
_KEYPAD_SCANCODES = (89, 90, 91, 92, 93)
_DIGIT_KEYS = (pygame.K_1, pygame.K_2, pygame.K_3, pygame.K_4, pygame.K_5)
_KEYPAD_KEYS = (pygame.K_KP1, pygame.K_KP2, pygame.K_KP3, pygame.K_KP4, pygame.K_KP5)

#: The drawing of each screen: ``DRAW[view.screen](painter, view)``.
DRAW: dict[str, Callable[[Painter, ScreenView], None]] = {
    "signed_out": draw_signed_out,
    "idle": draw_idle,
    "presenting": draw_presenting,
    "reasons": draw_reasons,
    "thanks": draw_thanks,
    "paused": draw_paused,
    "screensaver": draw_screensaver,
    "receipt_qr": draw_receipt_qr,
    "tech_pin": draw_tech_pin,
    "tech_menu": draw_tech_menu,
}

#: Post this (``Screen.post_wake()``) from another thread to wake ``Screen.wait`` early.
WAKE_EVENT: int = pygame.event.custom_type()


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
        font_bold: Path | None = None,
        dpi: float = DEFAULT_DPI,
        driver: str = "auto",
        title: str | None = None,
        rotate: int = 0,
    ) -> None:
        if rotate not in ROTATIONS:  # before any window opens
            raise ValueError(
                f"rotate must be one of {', '.join(map(str, ROTATIONS))} (degrees the panel "
                f"is turned clockwise), not {rotate!r}"
            )
        # The fonts are checked first, so a missing font fails before any window opens.
        self.font_path: Path = find_cjk_font(font_path)
        self.bold_path: Path | None = find_bold_font(font_bold)
        chosen = choose_driver(driver)
        if chosen is not None:
            os.environ["SDL_VIDEODRIVER"] = chosen
        pygame.display.init()
        pygame.font.init()
        flags = pygame.FULLSCREEN if fullscreen else 0
        try:
            display = pygame.display.set_mode((width, height), flags)
        except pygame.error as exc:
            pygame.display.quit()
            raise pygame.error(
                f"cannot open the display with SDL video driver "
                f"{os.environ.get('SDL_VIDEODRIVER', 'default')!r}: {exc}"
            ) from exc
        pygame.display.set_caption(texts.WINDOW_TITLE if title is None else title)
        if fullscreen:
            pygame.mouse.set_visible(False)
        # Motion never changes the view: do not wake the loop for it.
        pygame.event.set_blocked([pygame.MOUSEMOTION, pygame.FINGERMOTION])
        self.rotate = rotate
        """Degrees the panel is turned clockwise (``[screen] rotate``)."""
        self._display = display
        # Turned: the screens are drawn upright on a surface of the logical size in the
        # display's pixel format (so turning it onto the display converts nothing); rotate 0
        # draws on the display itself.
        native = display.get_size()  # a fullscreen mode may not be the size asked for
        if native != (width, height):
            log.warning(
                "the display opened at %d×%d, not the %d×%d of [screen] width × height (the "
                "panel's native mode, before rotate): the screens are laid out at %d×%d",
                *native, width, height, *logical_size(*native, rotate),
            )  # fmt: skip
        frame = display
        if rotate:
            frame = pygame.Surface(logical_size(*native, rotate), 0, display)
        self._painter = Painter(frame, self.font_path, bold_path=self.bold_path, dpi=dpi)
        self._view: ScreenView | None = None
        self._page_key: tuple[object, ...] | None = None
        self._cases_key: tuple[object, ...] | None = None
        self._cases_seen: set[int] = set()
        self._text_input = False
        pygame.key.stop_text_input()  # started only while 其他 is being typed

    @property
    def surface(self) -> pygame.Surface:
        """What was last drawn, upright, at the logical size (the layout's coordinates): the
        display surface itself at rotate 0."""
        return self._painter.surface

    @property
    def size(self) -> tuple[int, int]:
        """The logical size the screens are laid out at: the display's, its sides swapped when
        the panel is turned 90 or 270."""
        return self._painter.size

    @property
    def display(self) -> pygame.Surface:
        """The display surface in its native mode: :attr:`surface` turned by :attr:`rotate`."""
        return self._display

    @property
    def display_size(self) -> tuple[int, int]:
        """The display's native mode as opened: ``[screen] width`` × ``height``, unless a
        fullscreen display gave another (logged at start)."""
        return self._display.get_size()

    @property
    def min_target(self) -> int:
        """The smallest side of a touch target on this panel: 15 mm at its dpi, in pixels."""
        return self._painter.min_target

    @property
    def view(self) -> ScreenView | None:
        """The last rendered view."""
        return self._view

    @property
    def layout(self) -> Layout:
        """Targets and boxes of the last rendered view."""
        return self._painter.layout

    def font(self, size: int, bold: bool = False) -> pygame.font.Font:
        """The CJK font at ``size`` pixels (cached)."""
        return self._painter.font(size, bold)

    def render(self, view: ScreenView) -> None:
        """Draw the whole screen for ``view`` and flip.  The reasons keep the page they show
        while the citizen chooses; a new reason screen starts at its first page, and choosing
        其他 shows its field's page."""
        before = self._view
        key = _page_key(view)
        if key is None or key != self._page_key:
            self._painter.page = None  # the view's default page
        elif view.other_selected and not (before is not None and before.other_selected):
            self._painter.page = None  # 其他 just chosen: its page
        self._page_key = key
        if view.screen == "presenting":
            cases = (view.cases, view.item_index)
            if cases != self._cases_key:  # other cases: none of them shown yet
                self._cases_key, self._cases_seen = cases, set()
        elif view.screen != "reasons":  # the rating ended (返回 from the reasons keeps them)
            self._cases_key, self._cases_seen = None, set()
        self._draw(view)

    def restart_pages(self) -> None:
        """The next render shows its view's default page, as if the screen were new (and no
        case of a batch counts as shown)."""
        self._page_key = None
        self._view = None
        self._cases_key, self._cases_seen = None, set()

    def _draw(self, view: ScreenView) -> None:
        self._view = view
        painter = self._painter
        painter.layout = Layout(screen=view.screen)
        painter.surface.fill(BACKGROUND)
        DRAW[view.screen](painter, view)
        if view.screen == "presenting":
            layout = painter.layout
            self._cases_seen.update(
                key.index
                for key, page in layout.page_of.items()
                if isinstance(key, ShownCase) and page == layout.page
            )
        if view.screen != "screensaver":  # nothing lit in a fixed place: no burn-in
            painter.online_dot(view.online)
        painter.page = painter.layout.page if painter.layout.pages > 1 else None
        self.present()
        self._set_text_input(view.screen == "reasons" and view.other_selected)

    def present(self) -> None:
        """Show what is on :attr:`surface`: turned onto the display when the panel is turned
        (``pygame.transform.rotate``, a new surface per frame), then flipped."""
        if self.rotate:
            self._display.blit(pygame.transform.rotate(self._painter.surface, self.rotate), (0, 0))
        pygame.display.flip()

    @property
    def page(self) -> int:
        """The page shown (from 0) of a screen that takes several; 0 otherwise."""
        return self._painter.layout.page

    @property
    def pages(self) -> int:
        """How many pages the last rendered screen takes (1 but for long reason lists and long
        batches)."""
        return self._painter.layout.pages

    @property
    def cases_unseen(self) -> tuple[int, ...]:
        """The places (from 0) of the rating screen's cases not drawn on any page shown since
        they came; ``()`` on every other screen."""
        view = self._view
        if view is None or view.screen != "presenting":
            return ()
        return tuple(i for i in range(len(view.cases)) if i not in self._cases_seen)

    def show_unseen(self) -> bool:
        """Show the first page holding a case of the rating screen not shown yet and redraw;
        False when every case was shown (a level press may then rate them)."""
        unseen = self.cases_unseen
        if not unseen or self._view is None:
            return False
        page = self._painter.layout.page_of.get(ShownCase(unseen[0]))
        if page is not None:
            self._painter.page = page
            self._draw(self._view)
        return True

    def turn_page(self, step: int) -> bool:
        """Show the page ``step`` pages on (▲ -1, ▼ +1) and redraw; False at either end."""
        layout = self._painter.layout
        page = layout.page + step
        if self._view is None or not 0 <= page < layout.pages:
            return False
        self._painter.page = page
        self._draw(self._view)
        return True

    def reveal(self, action: UiAction) -> bool:
        """Show the page holding ``action``'s target (as the citizen would by paging); False
        when no page has it."""
        layout = self._painter.layout
        if layout.find(action) is not None:
            return True
        page = layout.page_of.get(action)
        if page is None or self._view is None:
            return False
        self._painter.page = page
        self._draw(self._view)
        return self._painter.layout.find(action) is not None

    def hit_test(self, pos: tuple[int, int]) -> UiAction | None:
        """The action at ``pos`` on the last rendered screen; ``None`` off target or disabled.
        A tap on the pager turns the page here and gives ``None`` (nothing for the app)."""
        action = self._painter.layout.hit(pos)
        if isinstance(action, TurnPage):
            self.turn_page(action.step)
            return None
        return action

    def position(self, event: pygame.event.Event) -> tuple[int, int] | None:
        """Where on the logical screen (the layout's pixels) a ``FINGERDOWN`` or
        ``MOUSEBUTTONDOWN`` lands: the finger's 0..1 position across the panel, or the mouse's
        pixel on the display, turned back by :attr:`rotate`; ``None`` for any other event."""
        if event.type == pygame.FINGERDOWN:
            x, y = finger_to_logical(event.x, event.y, self.rotate)
            width, height = self.size
            return _clamp(int(x * width), width), _clamp(int(y * height), height)
        if event.type == pygame.MOUSEBUTTONDOWN:
            return display_to_logical(tuple(event.pos), self.display_size, self.rotate)
        return None

    def translate(self, event: pygame.event.Event) -> UiAction | None:
        """The UI action an input event means on the current screen, if any."""
        view = self._view
        if view is None:
            return None
        kind = event.type
        if kind == pygame.KEYDOWN:
            paged = view.screen in ("reasons", "presenting")
            if paged and event.key in (pygame.K_PAGEUP, pygame.K_PAGEDOWN):
                self.turn_page(-1 if event.key == pygame.K_PAGEUP else 1)
                return None
            return _key_action(view, event)
        if kind == pygame.TEXTINPUT:
            if view.screen == "reasons" and view.other_selected and event.text:
                return TypeText(event.text)
            return None
        if kind == pygame.MOUSEBUTTONDOWN and (
            getattr(event, "touch", False) or getattr(event, "button", 1) != 1
        ):
            return None  # a touch's mouse echo: the FINGERDOWN is the one used
        pos = self.position(event)
        return self.hit_test(pos) if pos is not None else None

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
        """Write what is on screen to a PNG file, upright (as the citizen sees it, whatever
        :attr:`rotate`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.surface, str(path))
        return path

    def close(self) -> None:
        """Close the display (fonts cached here become unusable)."""
        self._painter.forget_fonts()
        if self._text_input:
            pygame.key.stop_text_input()
        pygame.display.quit()

    def _set_text_input(self, on: bool) -> None:
        if on and not self._text_input:
            pygame.key.start_text_input()
        elif not on and self._text_input:
            pygame.key.stop_text_input()
        self._text_input = on


def _clamp(value: int, size: int) -> int:
    """``value`` within ``0 .. size - 1`` (a finger at 1.0 is on the last pixel)."""
    return min(max(value, 0), size - 1)


def _page_key(view: ScreenView) -> tuple[object, ...] | None:
    """What makes a reason screen another one (its page starts again): the level and what it
    offers; a rating screen: its cases; ``None`` for every other screen."""
    if view.screen == "presenting":
        return ("presenting", view.cases, view.item_index)
    if view.screen != "reasons":
        return None
    offered = tuple(item.code for item in view.reasons)
    return (view.level, offered, tuple(name for name, _ in view.agencies))


def _key_action(view: ScreenView, event: pygame.event.Event) -> UiAction | None:
    """Keys 1–5 on the rating screen; Enter, Escape and Backspace on the reason screen."""
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
