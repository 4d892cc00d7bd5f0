"""The panels the pad is laid out for, and touch targets in millimetres.

Every tappable target is at least :data:`TARGET_MM` in both directions on the real panel, so its
size in pixels depends on the panel's density (``[screen] dpi``): :func:`min_target_px`.  The
screens are drawn, tested and shot (``evaluator screenshots``) at every size of :data:`SIZES`;
a panel with ``width < height`` is portrait and gets its own layout.  A panel mounted turned
(``[screen] rotate``, :data:`ROTATIONS`) is laid out at its logical size (:func:`logical_size`),
and a tap on it is turned back the same way (:func:`display_to_logical`, :func:`finger_to_logical`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Smallest side of a touch target, in millimetres (a fingertip, with room for a shaky hand).
TARGET_MM = 15.0
MM_PER_INCH = 25.4
#: The official 7" 800×480 Raspberry Pi display: the ``[screen] dpi`` default.
DEFAULT_DPI = 133


def min_target_px(dpi: float) -> int:
    """Pixels of :data:`TARGET_MM` at ``dpi`` (rounded up): 79 at 133 dpi, 88 at 149, 101 at 170."""
    return math.ceil(round(TARGET_MM / MM_PER_INCH * dpi, 6))


@dataclass(frozen=True)
class PanelSize:
    """A panel: its pixels and its density."""

    width: int
    height: int
    dpi: int

    @property
    def name(self) -> str:
        """``"800x480"``: the folder of its screenshots."""
        return f"{self.width}x{self.height}"

    @property
    def portrait(self) -> bool:
        return self.height > self.width

    @property
    def min_target(self) -> int:
        """The smallest target side in pixels on this panel."""
        return min_target_px(self.dpi)


#: Every size the screens are laid out, tested and shot at: the official 7" display, a 7"
#: 1024×600 panel, a 10.1" 1280×800 panel, and the two 7" panels turned to portrait.
SIZES: tuple[PanelSize, ...] = (
    PanelSize(800, 480, 133),
    PanelSize(1024, 600, 170),
    PanelSize(1280, 800, 149),
    PanelSize(480, 800, 133),
    PanelSize(600, 1024, 170),
)


#: ``[screen] rotate``: how many degrees the panel is turned **clockwise**, as the technician
#: facing it turned it, from its native position (the one in which its native mode, ``[screen]
#: width`` × ``height``, reads upright).  The pad draws its picture turned the other way, so it
#: reads upright on the turned panel: 90 on an 800×480 panel lays the screens out at 480×800.
ROTATIONS: tuple[int, ...] = (0, 90, 180, 270)


def logical_size(width: int, height: int, rotate: int) -> tuple[int, int]:
    """The size the screens are laid out at on a ``width`` × ``height`` display (its native
    mode) turned ``rotate`` degrees: the two sides swap at 90 and 270."""
    return (height, width) if rotate in (90, 270) else (width, height)


def display_to_logical(
    pos: tuple[int, int], display: tuple[int, int], rotate: int
) -> tuple[int, int]:
    """The logical pixel shown at the display's pixel ``pos`` (a mouse position) on a display
    of size ``display`` (its native mode) turned ``rotate`` degrees clockwise.

    Turned 90° clockwise, the panel's native left edge is the top the citizen sees, and its
    native bottom-left corner the top-left: the logical ``(x, y)`` sits at the native
    ``(y, H - 1 - x)``.  180: ``(W - 1 - x, H - 1 - y)``; 270: ``(W - 1 - y, x)``."""
    px, py = pos
    width, height = display
    if rotate == 90:
        return height - 1 - py, px
    if rotate == 180:
        return width - 1 - px, height - 1 - py
    if rotate == 270:
        return py, width - 1 - px
    return px, py


def finger_to_logical(x: float, y: float, rotate: int) -> tuple[float, float]:
    """A finger's position (SDL normalizes it to 0..1 across the touch panel, which turned
    with the display) as 0..1 across the logical screen: the same turn as
    :func:`display_to_logical`, on the unit square."""
    if rotate == 90:
        return 1.0 - y, x
    if rotate == 180:
        return 1.0 - x, 1.0 - y
    if rotate == 270:
        return y, 1.0 - x
    return x, y
