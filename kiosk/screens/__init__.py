"""One drawing function per screen: ``DRAW[view.screen](painter, view)``."""

from __future__ import annotations

from collections.abc import Callable

from kiosk.painter import Painter
from kiosk.screens.messages import (
    draw_idle,
    draw_notice,
    draw_paused,
    draw_signed_out,
    draw_thanks,
)
from kiosk.screens.presenting import draw_presenting
from kiosk.screens.reasons import draw_reasons
from kiosk.view import ScreenView

DRAW: dict[str, Callable[[Painter, ScreenView], None]] = {
    "signed_out": draw_signed_out,
    "idle": draw_idle,
    "presenting": draw_presenting,
    "reasons": draw_reasons,
    "thanks": draw_thanks,
    "paused": draw_paused,
    "notice": draw_notice,
}
