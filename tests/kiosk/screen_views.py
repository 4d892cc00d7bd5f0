"""Views and helpers the screen tests share (not a test module)."""

from __future__ import annotations

from collections.abc import Callable

import pygame
from PIL import Image

from evaluator.rules.levels import Level
from kiosk.layout import Target
from kiosk.screen import Screen
from kiosk.view import PressLevel, ReasonItem, ScreenView, TurnPage

MATTER = "居民身份证换领"
SERIAL = "44050020261126000123"

#: 不满意 reasons of the national list (v2) with targets, plus 其他.
REASONS: tuple[ReasonItem, ...] = (
    ReasonItem("213", "窗口人员业务不熟练", "clerk"),
    ReasonItem("214", "服务态度生硬", "clerk"),
    ReasonItem("207", "没有提供材料样本", "matter"),
    ReasonItem("208", "没有提供材料清单", "matter"),
    ReasonItem("209", "未在承诺时间内办结", "matter"),
    ReasonItem("210", "同样内容的证明材料被要求多次提交", "matter"),
    ReasonItem("211", "承诺网办但无法在线办理", "matter"),
    ReasonItem("212", "在线预约办理后到实体大厅重复取号排队", "matter"),
    ReasonItem("other", "其他", "other"),
)


def presenting(**changes: object) -> ScreenView:
    fields: dict[str, object] = {
        "window": "1号窗口",
        "clerk_name": "陈晓明",
        "clerk_id": "A1023",
        "cases": ((MATTER, SERIAL),),
        "seconds_left": 60,
    }
    fields.update(changes)
    return ScreenView("presenting", **fields)  # type: ignore[arg-type]


def reasons_view(*, other: bool = False, can_submit: bool = False, comment: str = "") -> ScreenView:
    items = tuple(
        ReasonItem(r.code, r.text, r.target, selected=(r.target == "other" and other))
        for r in REASONS
    )
    return ScreenView(
        "reasons",
        window="1号窗口",
        level=Level.DISSATISFIED,
        reasons=items,
        agencies=(("市公安局", False),),
        comment=comment,
        can_submit=can_submit,
        seconds_left=90,
    )


def level_targets(s: Screen) -> list[tuple[pygame.Rect, Level]]:
    return [(t.rect, t.action.level) for t in s.layout.targets if isinstance(t.action, PressLevel)]


def key(code: int, scancode: int = 0) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, key=code, mod=0, scancode=scancode, unicode="")


def on_display(screen: Screen, pos: tuple[float, float]) -> tuple[float, float]:
    """Where the logical point ``pos`` (the layout's coordinates) is on the display, in its
    native pixels, by the documented direction (docs/technician.md): ``rotate`` is how far the
    panel was turned clockwise, so at 90 the logical top edge runs down the native left edge
    and the logical top-left corner is the native bottom-left one."""
    x, y = pos
    width, height = screen.display_size
    if screen.rotate == 90:
        return y, height - x
    if screen.rotate == 180:
        return width - x, height - y
    if screen.rotate == 270:
        return width - y, x
    return x, y


def finger_at(screen: Screen, pos: tuple[float, float]) -> pygame.event.Event:
    """A finger on the display's point ``pos`` (native pixels) as SDL delivers it: 0..1 across
    the touch panel, which turned with the display."""
    width, height = screen.display_size
    x, y = pos[0] / width, pos[1] / height
    return pygame.event.Event(pygame.FINGERDOWN, x=x, y=y, dx=0, dy=0, touch_id=0, finger_id=0)


def click_at(pos: tuple[float, float]) -> pygame.event.Event:
    """A real mouse click on the display's pixel holding ``pos`` (native pixels)."""
    pixel = (int(pos[0]), int(pos[1]))
    return pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pixel, button=1, touch=False)


def tap_event(screen: Screen, rect: pygame.Rect, kind: str = "touch") -> pygame.event.Event:
    """A tap on the centre of ``rect`` (logical) as SDL delivers it on the display, however
    the panel is turned: a mouse click or a finger."""
    centre = on_display(screen, (rect.centerx + 0.5, rect.centery + 0.5))  # the pixel's middle
    if kind == "mouse":
        return click_at(centre)
    return finger_at(screen, centre)


def rotated_screen(rotate: int, width: int = 800, height: int = 480, **kwargs: object) -> Screen:
    """A real screen on the dummy driver laid out at ``width`` × ``height`` (logical) on a
    panel turned ``rotate`` degrees: its display is ``height`` × ``width`` at 90 and 270."""
    display = (height, width) if rotate in (90, 270) else (width, height)
    s = Screen(driver="dummy", width=display[0], height=display[1], rotate=rotate, **kwargs)
    assert s.size == (width, height)
    return s


#: PIL's turn of an upright frame onto a panel turned ``rotate`` clockwise: the picture turns
#: the other way, counter-clockwise (PIL's ROTATE_90 is counter-clockwise).
_TURNS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


def assert_display_shows_frame(screen: Screen) -> None:
    """The display's pixels are the upright frame (``screen.surface``, what the layout
    describes) turned by ``rotate``: compared with PIL's own turn, byte for byte."""
    frame = Image.frombytes("RGB", screen.size, pygame.image.tobytes(screen.surface, "RGB"))
    shown = pygame.image.tobytes(screen.display, "RGB")
    if screen.rotate == 0:
        assert screen.display is screen.surface  # drawn on the display itself: no copy
        return
    assert screen.display_size == frame.transpose(_TURNS[screen.rotate]).size
    expected = frame.transpose(_TURNS[screen.rotate]).tobytes()
    assert shown == expected, f"the display is not the frame turned by {screen.rotate}"


def turn_to(
    screen: Screen, action: object, send: Callable[[pygame.event.Event], None], kind: str = "touch"
) -> Target:
    """Tap ▲ / ▼ (real events of ``kind``, each through ``send``, e.g. an app's
    ``handle_events``) until ``action``'s target shows, as a citizen pages to it; its target."""
    for _ in range(screen.pages + 1):
        target = screen.layout.find(action)  # type: ignore[arg-type]
        if target is not None:
            return target
        page = screen.layout.page_of.get(action)  # type: ignore[arg-type]
        assert page is not None, f"{action} is on no page of the {screen.layout.screen} screen"
        pager = screen.layout.find(TurnPage(1 if page > screen.page else -1))
        assert pager is not None and pager.enabled, "no pager to turn"
        before = screen.page
        send(tap_event(screen, pager.rect, kind))
        assert screen.page != before, "the pager did not turn the page"
    raise AssertionError(f"{action} never showed")
