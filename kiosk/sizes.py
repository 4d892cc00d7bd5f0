"""The panels the pad is laid out for, and touch targets in millimetres.

Every tappable target is at least :data:`TARGET_MM` in both directions on the real panel, so its
size in pixels depends on the panel's density (``[screen] dpi``): :func:`min_target_px`.  The
screens are drawn, tested and shot (``evaluator screenshots``) at every size of :data:`SIZES`;
a panel with ``width < height`` is portrait and gets its own layout.
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
