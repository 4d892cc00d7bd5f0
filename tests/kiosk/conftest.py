"""A real :class:`~kiosk.screen.Screen` on SDL's dummy driver (tests/conftest.py sets it)."""

from __future__ import annotations

from collections.abc import Iterator

import pygame
import pytest

from kiosk.screen import Screen


@pytest.fixture
def screen() -> Iterator[Screen]:
    s = Screen(driver="dummy")
    pygame.event.clear()
    yield s
    s.close()
