"""A real :class:`~kiosk.screen.Screen` on SDL's dummy driver (tests/conftest.py sets it),
on a panel mounted as it comes and turned 90, 180 and 270 degrees (``[screen] rotate``): every
test of the ``screen`` fixture runs four times on the same logical 800×480 layout, taps go in on
the turned display's coordinates (``screen_views.tap_event``), and after each test the display
must hold the last frame turned."""

from __future__ import annotations

from collections.abc import Iterator

import pygame
import pytest

from kiosk.screen import Screen
from kiosk.sizes import ROTATIONS
from tests.kiosk.screen_views import assert_display_shows_frame, rotated_screen


@pytest.fixture(params=ROTATIONS, ids=lambda r: f"rotate{r}")
def screen(request: pytest.FixtureRequest) -> Iterator[Screen]:
    s = rotated_screen(request.param)
    pygame.event.clear()
    yield s
    if s.view is not None:
        assert_display_shows_frame(s)
    s.close()
