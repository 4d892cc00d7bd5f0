"""Hardware level buttons: real gpiozero Buttons on gpiozero's MockFactory pins, through the app."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from evaluator.rules.levels import BUTTON_ORDER, Level
from kiosk.buttons import LevelButtons, pin_factory
from tests.support import without_head

REPO = Path(__file__).resolve().parents[2]
PINS = dict(zip(BUTTON_ORDER, (17, 27, 22, 23, 24), strict=True))


def wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def test_a_press_hands_its_level_to_on_press(factory: MockFactory) -> None:
    got: list[Level] = []
    done = threading.Event()

    def on_press(level: Level) -> None:
        got.append(level)
        done.set()

    buttons = LevelButtons(PINS, bounce_time=None, factory=factory, on_press=on_press)
    try:
        buttons.pin(Level.DISSATISFIED).drive_low()  # pull-up: pressed = low
        assert done.wait(5)
        assert got == [Level.DISSATISFIED]
    finally:
        buttons.close()


def test_two_buttons_on_one_pin_are_refused(factory: MockFactory) -> None:
    pins = {**PINS, Level.SATISFIED: 17}
    with pytest.raises(ValueError, match="share a pin"):
        LevelButtons(pins, factory=factory)


def test_close_releases_the_pins(factory: MockFactory) -> None:
    LevelButtons(PINS, factory=factory).close()
    LevelButtons(PINS, factory=factory).close()  # the same pins again: nothing reserved


def test_pin_factory_names() -> None:
    assert pin_factory("") is None
    assert isinstance(pin_factory("mock"), MockFactory)
    with pytest.raises(ValueError, match="unknown pin factory"):
        pin_factory("gpio-magic")


def make_app(tmp_path: Path) -> Any:
    from evaluator.app import App
    from evaluator.config import load_config
    from evaluator.rules.clock import FakeClock

    site = tmp_path / "site.toml"
    pins = "\n".join(f"{level.value} = {pin}" for level, pin in PINS.items())
    site.write_text(
        f'[device]\nid = "btn-1"\n[counter]\nport = "dummy://"\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f'[buttons]\n{pins}\npin_factory = "mock"\nbounce_time = "10ms"\n',
        encoding="utf-8",
    )
    return App(load_config([REPO / "config" / "demo.toml", site]), clock=FakeClock())


START = {
    "id": 1,
    "type": "evaluation.start",
    "stage": "deliver",
    "clerk": {"id": "A1", "name": "李娜"},
    "cases": [{"serial": "S-1", "matter_code": "M1", "matter_name": "户籍", "kind": "instant"}],
}


def ratings(path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return [json.loads(r[0]) for r in conn.execute("SELECT record FROM ratings ORDER BY seq")]


def press(app: Any, level: Level) -> None:
    pin = app.buttons.pin(level)
    pin.drive_low()
    pin.drive_high()


def test_a_gpio_press_goes_through_the_whole_app_to_a_stored_rating(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        app.link.feed(START)
        app.step()
        assert app.session.rating_open
        press(app, Level.SATISFIED)
        wait_for(lambda: not app.presses.empty())
        app.step()  # the loop applies the queued press
        [rating] = ratings(app.config.storage.path)
        assert rating["level"] == "satisfied"
        app.clock.advance(app.config.session.thanks + 0.1)  # told when the 谢谢 ends (art. 4)
        app.step()
        assert without_head(app.link.sent[-1]) == {
            "event": "evaluation.finished",
            "serials": ["S-1"],
            "outcome": "rated",
        }
    finally:
        app.shutdown()


def test_a_child_hammering_every_button_makes_one_rating(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        app.link.feed(START)
        app.step()
        for _ in range(5):
            for level in (Level.VERY_SATISFIED, Level.SATISFIED, Level.BASICALLY_SATISFIED):
                press(app, level)
        wait_for(lambda: app.presses.qsize() >= 15)
        app.step()
        assert len(ratings(app.config.storage.path)) == 1
    finally:
        app.shutdown()


def test_presses_outside_a_rating_screen_rate_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        press(app, Level.VERY_DISSATISFIED)
        wait_for(lambda: not app.presses.empty())
        app.step()
        assert app.session.state.value == "signed_out"
        assert not app.config.storage.path.exists() or ratings(app.config.storage.path) == []
    finally:
        app.shutdown()
