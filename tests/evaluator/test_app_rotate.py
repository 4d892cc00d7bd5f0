"""A pad whose panel is mounted turned (``[screen] rotate``), as the pad runs it: the config,
the screen ``Devices`` opens from it (SDL dummy driver), the real App loop fed real finger
events on the turned display's pixels, a real SQLite store (FakeClock).  The citizen's rating
and the technician's corner gesture both land where the turned panel shows them."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import BUTTON_ORDER, Level
from evaluator.rules.protocol import Message
from evaluator.techmenu import GESTURE_TAPS
from kiosk.view import PressLevel, Submit, TechDigit, TechEnter, ToggleReason
from tests.evaluator.apps import START_BODY
from tests.kiosk.screen_views import assert_display_shows_frame, finger_at, on_display, tap_event

REPO = Path(__file__).resolve().parents[2]
PIN = "2468"


@pytest.fixture(params=[90, 180, 270], ids=lambda r: f"rotate{r}")
def pad(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    override = tmp_path / "site.toml"
    override.write_text(
        '[device]\nid = "unit-1"\nwindow = "3号窗口"\n[counter]\nport = ""\n'
        f"[mqtt]\nenabled = false\n[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f'[tech]\npin = "{PIN}"\n'
        f'[screen]\ndriver = "dummy"\nwidth = 800\nheight = 480\nrotate = {request.param}\n',
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())
    app.screen = app.devices.open_screen()  # as App.run opens it: [screen] through Devices
    pygame.event.clear()
    try:
        yield app
    finally:
        app.shutdown()


def wait(app: App, seconds: float) -> None:
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(seconds)


def tap(app: App, action: object) -> None:
    """A finger on the display where the turned panel shows ``action``'s target, at a
    technician's pace (past the press filter's guard)."""
    target = app.screen.layout.find(action)
    assert target is not None, f"{action} is not drawn on {app.screen.view.screen}"
    wait(app, 0.4)
    app.handle_events([tap_event(app.screen, target.rect)])


def corner_taps(app: App, pos: tuple[float, float]) -> None:
    """The technician's five quick taps on the display's point ``pos`` (native pixels)."""
    for _ in range(GESTURE_TAPS):
        wait(app, 0.3)
        app.handle_events([finger_at(app.screen, pos)])


def test_the_pad_opens_its_display_native_and_lays_out_turned(pad: App) -> None:
    rotate = pad.config.screen.rotate
    assert pad.screen.rotate == rotate
    assert pad.screen.display_size == (800, 480)
    assert pad.screen.size == ((480, 800) if rotate in (90, 270) else (800, 480))


def test_the_corner_gesture_is_on_the_corner_the_technician_sees(pad: App) -> None:
    """Five taps on the top-left corner as the turned panel shows it open the PIN pad; five on
    the native top-left corner (another corner of what the technician sees) do not; the PIN
    is typed on the turned keypad."""
    assert pad.handle(Message(1, "clerk.sign_in", {"clerk": START_BODY["clerk"]}))["ok"]
    pad._show()
    corner_taps(pad, (5, 5))  # the panel's native corner: not the top-left seen
    assert pad.screen.view.screen == "idle" and not pad.tech.is_open
    wait(pad, 5.0)
    corner_taps(pad, on_display(pad.screen, (5.5, 5.5)))  # the top-left as seen
    assert pad.screen.view.screen == "tech_pin"
    for digit in PIN:
        tap(pad, TechDigit(digit))
    tap(pad, TechEnter())
    assert pad.screen.view.screen == "tech_menu"
    assert_display_shows_frame(pad.screen)


@pytest.mark.parametrize("index", range(len(BUTTON_ORDER)))
def test_a_finger_on_a_level_button_stores_that_level(pad: App, index: int) -> None:
    level = BUTTON_ORDER[index]
    assert pad.handle(Message(1, "evaluation.start", START_BODY))["ok"]
    pad._show()
    assert pad.screen.view.screen == "presenting"
    assert_display_shows_frame(pad.screen)
    wait(pad, 1.0)  # the citizen reads, past the press guard
    tap(pad, PressLevel(level))
    if pad.view().screen == "reasons":  # a 差评 asks for its reasons first
        assert pad.view().level == level and level in (Level.DISSATISFIED, Level.VERY_DISSATISFIED)
        chip = next(t for t in pad.screen.layout.targets if isinstance(t.action, ToggleReason))
        tap(pad, chip.action)
        tap(pad, Submit())
    with contextlib.closing(sqlite3.connect(pad.config.storage.path)) as conn:
        stored = [json.loads(r[0])["level"] for r in conn.execute("SELECT record FROM ratings")]
    assert stored == [level.value]


def test_a_changed_rotate_needs_a_restart_and_the_pad_keeps_its_turn(
    pad: App, tmp_path: Path
) -> None:
    """``systemctl reload`` with another rotate: the open display cannot turn, so the reload
    says it needs a restart (a WARNING) and the pad keeps drawing and mapping as before."""
    from evaluator.reload import reload

    rotate = pad.config.screen.rotate
    site = tmp_path / "site.toml"
    turned = (rotate + 90) % 360
    site.write_text(
        site.read_text(encoding="utf-8").replace(f"rotate = {rotate}", f"rotate = {turned}"),
        encoding="utf-8",
    )
    assert "needs a restart: [screen] rotate" in reload(pad)
    assert pad.config.screen.rotate == pad.screen.rotate == rotate


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_selftest_shows_its_hanzi_on_a_turned_panel(
    rotate: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evaluator selftest`` draws its hanzi on Screen.surface: on a turned panel that is the
    off-screen frame, so the technician must see it on the display too, turned (it showed a
    black panel while the check said PASS)."""
    from evaluator import selftest
    from kiosk.screen import Screen

    site = tmp_path / "site.toml"
    site.write_text(f'[device]\nid = "unit-1"\n[screen]\ndriver = "dummy"\nrotate = {rotate}\n',
                    encoding="utf-8")  # fmt: skip
    seen: list[Screen] = []
    close = Screen.close

    def looked_at_then_closed(screen: Screen) -> None:  # the panel as the technician sees it
        assert_display_shows_frame(screen)
        assert any(pygame.image.tobytes(screen.display, "RGB"))  # not a black panel
        seen.append(screen)
        close(screen)

    monkeypatch.setattr(Screen, "close", looked_at_then_closed)
    config = load_config([REPO / "config" / "demo.toml", site])
    assert "drew" in selftest.check_screen(config, selftest.Options())
    assert [s.rotate for s in seen] == [rotate]
