"""Views to PNG files on the dummy driver."""

from __future__ import annotations

from pathlib import Path

import pygame

from kiosk.palette import BUTTON_COLORS, HEADER_PAUSED
from kiosk.screenshots import save_pngs
from kiosk.view import ScreenView
from tests.kiosk.screen_views import presenting


def test_each_view_becomes_its_png(tmp_path: Path) -> None:
    views = {"a": presenting(), "b": ScreenView("signed_out", window="1号窗口")}
    paths = save_pngs(views, tmp_path / "out", width=1024, height=600)
    assert [p.name for p in paths] == ["a.png", "b.png"]
    a, b = (pygame.image.load(str(p)) for p in paths)
    assert a.get_size() == b.get_size() == (1024, 600)
    assert {tuple(a.get_at((x, 560)))[:3] for x in range(0, 1024, 4)} & set(BUTTON_COLORS.values())
    assert tuple(b.get_at((2, 2)))[:3] == HEADER_PAUSED
    again = save_pngs(views, tmp_path / "again", width=1024, height=600)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]
