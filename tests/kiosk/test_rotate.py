"""``[screen] rotate``: a panel mounted turned (issue 14), on real pixels (SDL dummy driver).

The display keeps its native mode; the screens are laid out at the logical size, drawn upright
on a surface of their own and turned onto the display.  What is checked here is what a
technician and a citizen see on the turned panel: where the title band and the corner dot land
on the display's pixels, that the display is the frame turned pixel for pixel, and that a finger
or a click on a button *as it appears on the display* chooses that button.  (The other screen
tests run turned too: tests/kiosk/conftest.py.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pygame
import pytest
from PIL import Image, ImageChops

from evaluator.rules.levels import BUTTON_ORDER
from kiosk.palette import BUTTON_COLORS, HEADER, ONLINE_DOT
from kiosk.screen import Screen
from kiosk.sizes import (
    ROTATIONS,
    SIZES,
    PanelSize,
    display_to_logical,
    finger_to_logical,
    logical_size,
)
from kiosk.view import PressLevel, ScreenView
from tests.kiosk.screen_views import (
    assert_display_shows_frame,
    click_at,
    finger_at,
    on_display,
    presenting,
    tap_event,
)

Colour = tuple[int, int, int]
#: The documented direction (docs/technician.md, config/default.toml): where the top of the
#: picture -- the title band -- lies on the display's native pixels at each ``rotate``.
TOP_EDGE = {0: "top", 90: "left", 180: "bottom", 270: "right"}
#: ... and in which native corner the logical bottom-right corner (the online dot) lies.
DOT_CORNER = {0: "bottom-right", 90: "top-right", 180: "top-left", 270: "bottom-left"}
#: The panels that really come in landscape and get mounted in portrait or upside down.
NATIVE = [size for size in SIZES if not size.portrait]


@pytest.fixture
def open_screens() -> Iterator[list[Screen]]:
    """Screens a test opens, closed after it (one at a time: SDL has one display)."""
    opened: list[Screen] = []
    yield opened
    for s in opened:
        s.close()


def turned(opened: list[Screen], size: PanelSize, rotate: int) -> Screen:
    """The panel ``size`` in its native mode, mounted turned ``rotate`` degrees clockwise."""
    for s in opened:
        s.close()
    opened.clear()
    s = Screen(driver="dummy", width=size.width, height=size.height, dpi=size.dpi, rotate=rotate)
    pygame.event.clear()
    opened.append(s)
    return s


def display_image(s: Screen) -> Image.Image:
    return Image.frombytes("RGB", s.display_size, pygame.image.tobytes(s.display, "RGB"))


def where(image: Image.Image, colour: Colour) -> tuple[int, int, int, int] | None:
    """The bounding box (left, top, right, bottom) of the pixels of exactly ``colour``."""
    bands = [
        band.point(lambda v, c=c: 255 if v == c else 0)
        for band, c in zip(image.split(), colour, strict=True)
    ]
    mask = ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])
    return mask.getbbox()


def edge_pixels(image: Image.Image, edge: str) -> set[Colour]:
    width, height = image.size
    if edge in ("top", "bottom"):
        y = 0 if edge == "top" else height - 1
        return {image.getpixel((x, y)) for x in range(width)}  # type: ignore[misc]
    x = 0 if edge == "left" else width - 1
    return {image.getpixel((x, y)) for y in range(height)}  # type: ignore[misc]


@pytest.mark.parametrize("rotate", ROTATIONS)
def test_the_title_band_is_where_the_technician_sees_the_top(
    open_screens: list[Screen], rotate: int
) -> None:
    """The direction, as documented: turned 90 clockwise, the panel's native left edge is the
    top the technician sees, and the title band is drawn there; the online dot (the logical
    bottom-right corner) is in the native top-right corner: not a mirror image either."""
    s = turned(open_screens, NATIVE[0], rotate)
    s.render(
        ScreenView("idle", window="1号窗口", clerk_name="陈晓明", clerk_id="A1023", online=True)
    )
    image = display_image(s)
    assert image.size == (800, 480)  # the native mode, whatever rotate says
    assert s.size == logical_size(800, 480, rotate)
    assert edge_pixels(image, TOP_EDGE[rotate]) == {HEADER}
    assert HEADER not in edge_pixels(image, _opposite(TOP_EDGE[rotate]))
    dot = where(image, ONLINE_DOT)
    assert dot is not None, "no online dot on the display"
    centre = ((dot[0] + dot[2]) / 2, (dot[1] + dot[3]) / 2)
    vertical, horizontal = DOT_CORNER[rotate].split("-")
    assert (centre[1] > 240) == (vertical == "bottom"), f"dot at {centre}"
    assert (centre[0] > 400) == (horizontal == "right"), f"dot at {centre}"
    assert_display_shows_frame(s)


def _opposite(edge: str) -> str:
    return {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}[edge]


@pytest.mark.parametrize("rotate", ROTATIONS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: s.name)
def test_a_tap_on_a_level_button_as_it_appears_on_the_display_chooses_it(
    open_screens: list[Screen], size: PanelSize, rotate: int
) -> None:
    """Each of the five level buttons is found on the display's pixels (its colour), and a
    finger and a mouse click on the middle of what the display shows choose that level."""
    s = turned(open_screens, size, rotate)
    s.render(presenting())
    image = display_image(s)
    drawn = {t.action.level: t.rect for t in s.layout.targets if isinstance(t.action, PressLevel)}
    assert sorted(drawn, key=BUTTON_ORDER.index) == list(BUTTON_ORDER)
    for level in BUTTON_ORDER:
        box = where(image, BUTTON_COLORS[level])
        assert box is not None, f"{level} is not on the display"
        seen = (box[2] - box[0], box[3] - box[1])
        rect = drawn[level]
        expected = rect.size if rotate in (0, 180) else (rect.height, rect.width)
        assert seen == expected, f"{level}: {seen} on the display, {expected} drawn"
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        assert s.translate(finger_at(s, centre)) == PressLevel(level)
        assert s.translate(click_at(centre)) == PressLevel(level)


@pytest.mark.parametrize("rotate", ROTATIONS)
def test_every_target_of_the_rating_screens_answers_a_tap_where_the_display_shows_it(
    open_screens: list[Screen], rotate: int
) -> None:
    """Every target of a theme's rating screen (the five levels and 分项评价): the display's
    pixel at the target's middle is the frame's pixel there, and a finger on it chooses it."""
    s = turned(open_screens, NATIVE[0], rotate)
    s.render(presenting(theme="开办餐饮店", can_expand=True))
    assert len(s.layout.targets) == 6
    for target in s.layout.targets:
        middle = on_display(s, (target.rect.centerx + 0.5, target.rect.centery + 0.5))
        pixel = (int(middle[0]), int(middle[1]))
        assert s.display.get_at(pixel) == s.surface.get_at(target.rect.center)
        assert s.translate(tap_event(s, target.rect)) == target.action
        assert s.translate(tap_event(s, target.rect, "mouse")) == target.action


@pytest.mark.parametrize("rotate", ROTATIONS)
def test_each_display_pixel_shows_the_logical_pixel_a_click_there_reaches(
    open_screens: list[Screen], rotate: int
) -> None:
    """``display_to_logical`` is the turn the display shows: on a grid over the whole display
    (corners and edges included) the pixel shown is the frame's pixel it maps to, and the map
    is one to one onto the logical screen."""
    s = turned(open_screens, NATIVE[0], rotate)
    s.render(presenting())
    width, height = s.display_size
    xs = sorted({*range(0, width, 7), width - 1})
    ys = sorted({*range(0, height, 7), height - 1})
    for pos in itertools.product(xs, ys):
        logical = display_to_logical(pos, (width, height), rotate)
        assert s.surface.get_rect().collidepoint(logical), f"{pos} → {logical}"
        assert s.display.get_at(pos) == s.surface.get_at(logical), f"{pos} → {logical}"
    small = (5, 3)  # every pixel of a small display: a permutation of the logical pixels
    logical = {display_to_logical(p, small, rotate) for p in itertools.product(range(5), range(3))}
    assert logical == set(itertools.product(*map(range, logical_size(*small, rotate))))


@pytest.mark.parametrize("rotate", ROTATIONS)
def test_a_finger_at_a_pixel_lands_where_a_click_on_that_pixel_does(rotate: int) -> None:
    """SDL's finger (0..1 across the panel) and its mouse (pixels) agree: the middle of each
    pixel of a small display maps to the same logical pixel both ways; the panel's far edges
    (1.0) stay on the screen."""
    width, height = 5, 3
    lw, lh = logical_size(width, height, rotate)
    for px, py in itertools.product(range(width), range(height)):
        fx, fy = finger_to_logical((px + 0.5) / width, (py + 0.5) / height, rotate)
        assert (int(fx * lw), int(fy * lh)) == display_to_logical((px, py), (width, height), rotate)
    for corner in itertools.product((0.0, 1.0), repeat=2):
        x, y = finger_to_logical(*corner, rotate)
        assert 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0


@pytest.mark.parametrize("rotate", [90, 270])
def test_a_finger_on_the_panels_far_edge_is_on_the_screen(
    open_screens: list[Screen], rotate: int
) -> None:
    s = turned(open_screens, NATIVE[0], rotate)
    s.render(presenting())
    width, height = s.size
    for corner in itertools.product((0.0, 1.0), repeat=2):
        event = pygame.event.Event(pygame.FINGERDOWN, x=corner[0], y=corner[1], dx=0, dy=0,
                                   touch_id=0, finger_id=0)  # fmt: skip
        pos = s.position(event)
        assert pos is not None and 0 <= pos[0] < width and 0 <= pos[1] < height


def test_rotate_zero_draws_on_the_display_itself(open_screens: list[Screen]) -> None:
    """No copy and no turn at rotate 0: the painter's surface is the display."""
    s = turned(open_screens, NATIVE[0], 0)
    s.render(presenting())
    assert s.display is s.surface and s.size == s.display_size == (800, 480)


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_the_turned_frame_is_the_unturned_layout_of_its_logical_size(
    open_screens: list[Screen], rotate: int
) -> None:
    """An 800×480 panel turned 90 shows exactly what a 480×800 panel shows (the portrait
    layouts), byte for byte; turned 180, what it shows as it comes."""
    view = presenting(theme="开办餐饮店", can_expand=True)
    s = turned(open_screens, NATIVE[0], rotate)
    s.render(view)
    frame = pygame.image.tobytes(s.surface, "RGB")
    targets = [(t.action, tuple(t.rect)) for t in s.layout.targets]
    width, height = logical_size(800, 480, rotate)
    s = turned(open_screens, PanelSize(width, height, NATIVE[0].dpi), 0)
    s.render(view)
    assert pygame.image.tobytes(s.surface, "RGB") == frame
    assert [(t.action, tuple(t.rect)) for t in s.layout.targets] == targets


@pytest.mark.parametrize("rotate", [-90, 45, 360, "90"])
def test_a_rotate_other_than_0_90_180_270_is_refused_before_a_window_opens(
    rotate: object,
) -> None:
    with pytest.raises(ValueError, match=r"one of 0, 90, 180, 270 \(degrees the panel is turned"):
        Screen(driver="dummy", rotate=rotate)  # type: ignore[arg-type]


@pytest.mark.parametrize("rotate", ROTATIONS)
def test_a_display_of_another_size_than_asked_is_laid_out_turned_as_it_is_and_said(
    open_screens: list[Screen], rotate: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A fullscreen mode is what the display gives, not always the size asked (SDL's dummy
    driver gives its 1024×768 desktop, as KMSDRM may give the panel's own mode): the screens
    are laid out turned on the display as it is, taps land, and one WARNING names both sizes."""
    for s in open_screens:
        s.close()
    open_screens.clear()
    with caplog.at_level("WARNING", logger="kiosk.screen"):
        s = Screen(driver="dummy", width=800, height=480, fullscreen=True, rotate=rotate)
    open_screens.append(s)
    native = s.display_size
    assert native != (800, 480), "the dummy driver's fullscreen gave the size asked for"
    assert s.size == logical_size(*native, rotate)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    laid = "{}×{}".format(*s.size)
    assert warned == [
        f"the display opened at {native[0]}×{native[1]}, not the 800×480 of [screen] width × "
        f"height (the panel's native mode, before rotate): the screens are laid out at {laid}"
    ]
    s.render(presenting())
    assert_display_shows_frame(s)
    for target in s.layout.targets:
        assert s.translate(tap_event(s, target.rect)) == target.action


@pytest.mark.parametrize("rotate", ROTATIONS)
def test_what_is_drawn_on_the_surface_shows_once_presented(
    open_screens: list[Screen], rotate: int
) -> None:
    """Drawing straight on :attr:`Screen.surface` (as ``selftest`` draws its hanzi) reaches
    the turned display with :meth:`Screen.present`."""
    s = turned(open_screens, NATIVE[0], rotate)
    s.surface.fill((0, 0, 0))
    s.surface.fill((255, 255, 255), pygame.Rect(10, 10, 40, 20))  # top-left as seen
    s.present()
    assert_display_shows_frame(s)
    white = where(display_image(s), (255, 255, 255))
    assert white is not None
    corner = on_display(s, (10, 10))
    assert min(abs(corner[0] - white[0]), abs(corner[0] - white[2])) == 0
    assert min(abs(corner[1] - white[1]), abs(corner[1] - white[3])) == 0
