"""The technician's menu: the state machine alone, then in a real App with a real Screen (SDL
dummy driver), real SDL events, a real SQLite store and the real clock of the app (FakeClock)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pygame
import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message
from evaluator.techmenu import (
    GESTURE_WINDOW,
    IDLE_CLOSE,
    META_KEY,
    CornerTaps,
    Phase,
    TechMenu,
    in_corner,
)
from kiosk import texts
from kiosk.screen import Screen
from kiosk.view import TechBackspace, TechDigit, TechEnter, TechItem

REPO = Path(__file__).resolve().parents[2]
EVENT_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((REPO / "docs" / "schemas" / "event.schema.json").read_text(encoding="utf-8"))
)

REPO = Path(__file__).resolve().parents[2]
PIN = "2468"
CLERK = {"id": "A1023", "name": "陈晓明"}
CASE = {"serial": "S-1", "matter_code": "M1", "matter_name": "居民身份证换领", "kind": "instant"}


# -- the state machine ---------------------------------------------------------------------------


def test_five_corner_taps_within_three_seconds_and_nothing_else() -> None:
    taps = CornerTaps()
    assert not any(taps.tap(t * 0.5, True) for t in range(4))
    assert taps.tap(2.0, True)  # the fifth within 3 s
    assert not any(taps.tap(10 + t, True) for t in range(5))  # one a second: too slow
    for t in range(4):
        taps.tap(20 + t * 0.1, True)
    assert not taps.tap(20.45, False)  # a tap elsewhere starts again
    assert not taps.tap(20.5, True)
    assert in_corner((0, 0), 79) and in_corner((78, 78), 79)
    assert not in_corner((79, 10), 79) and not in_corner((10, 79), 79)


def _open(menu: TechMenu, now: float) -> None:
    for i in range(5):
        menu.tap(now + i * 0.1, True)


def test_pin_opens_wrong_three_times_locks_and_the_count_survives_a_restart() -> None:
    kept: dict[str, str] = {}
    events: list[tuple[str, dict[str, object]]] = []
    wall = [1_780_000_000.0]

    def menu() -> TechMenu:
        m = TechMenu(PIN, 300.0, read=lambda: kept.get("v"), write=lambda t: kept.update(v=t),
                     record=lambda e, f: events.append((e, f)), wall=lambda: wall[0])  # fmt: skip
        m.restore(0.0, wall[0])
        return m

    m = menu()
    _open(m, 0.0)
    assert m.phase is Phase.PIN
    for digit in "1111":
        m.digit(digit, 1.0)
    assert m.enter(1.0) == "wrong" and m.failures == 1
    assert json.loads(kept["v"]) == {"failures": 1, "locked_until": None}
    # A restart: the count goes on from where it was.
    m = menu()
    assert m.failures == 1
    _open(m, 0.0)
    for _ in range(2):
        for digit in "9999":
            m.digit(digit, 1.0)
        m.enter(1.0)
    assert m.locked_for(1.0) == 300.0
    assert [e for e, _ in events] == ["pin_wrong", "pin_wrong", "locked"]
    for digit in PIN:
        m.digit(digit, 2.0)
    assert m.entered == "" and m.enter(2.0) == "locked"  # digits ignored while locked
    # Another restart 100 s later (its monotonic clock starts again): still locked, 200 s.
    wall[0] += 100
    m = menu()
    assert m.locked_for(0.0) == pytest.approx(200.0)
    m.tick(200.0)
    assert m.locked_for(200.0) == 0 and m.failures == 0
    _open(m, 201.0)
    for digit in PIN:
        m.digit(digit, 202.0)
    assert m.enter(202.0) == "opened" and m.phase is Phase.MENU
    assert events[-1] == ("opened", {})
    assert PIN not in json.dumps(events) + json.dumps(kept)  # the PIN is never recorded


def test_a_clock_set_back_never_locks_longer_than_the_lockout() -> None:
    kept = {"v": json.dumps({"failures": 3, "locked_until": 1_780_000_000.0 + 10**6})}
    m = TechMenu(PIN, 300.0, read=lambda: kept["v"])
    m.restore(5.0, 1_780_000_000.0)
    assert m.locked_for(5.0) == 300.0


def test_no_pin_no_menu_and_it_closes_after_a_minute_untouched() -> None:
    m = TechMenu("", 300.0)
    _open(m, 0.0)
    assert not m.enabled and m.phase is Phase.CLOSED
    m = TechMenu(PIN, 300.0)
    _open(m, 0.0)
    m.digit("2", 30.0)
    m.tick(30.0 + IDLE_CLOSE - 0.1)
    assert m.phase is Phase.PIN
    m.tick(30.0 + IDLE_CLOSE)
    assert m.phase is Phase.CLOSED and m.entered == ""


# -- in the app -------------------------------------------------------------------------------


def make_app(tmp_path: Path, *, pin: str = PIN, extra: str = "") -> App:
    override = tmp_path / "pad.toml"
    override.write_text(
        f'[device]\nid = "unit-1"\nwindow = "3号窗口"\n[counter]\nport = "dummy://"\n'
        f"[mqtt]\nenabled = false\n[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f'[tech]\npin = "{pin}"\nlockout = "5m"\n[buttons]\npin_factory = "mock"\n'
        f"very_satisfied = 17\ndissatisfied = 23\n{extra}",
        encoding="utf-8",
    )
    return App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())


@pytest.fixture
def pad(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path)
    app.screen = Screen(driver="dummy")
    pygame.event.clear()
    try:
        yield app
    finally:
        app.shutdown()


def finger(app: App, pos: tuple[int, int]) -> Any:
    width, height = app.screen.size
    return pygame.event.Event(pygame.FINGERDOWN, x=pos[0] / width, y=pos[1] / height, dx=0,
                              dy=0, touch_id=0, finger_id=0)  # fmt: skip


def tap_target(app: App, action: Any) -> None:
    """A real finger on the target of ``action`` as the screen drew it."""
    target = app.screen.layout.find(action)
    assert target is not None, f"{action} is not drawn on {app.screen.view.screen}"
    app.clock.advance(0.4)  # a technician's pace (past the press filter's guard)
    app.handle_events([finger(app, target.rect.center)])


def gesture(app: App, pos: tuple[int, int] = (5, 5)) -> None:
    for _ in range(5):
        app.clock.advance(0.3)
        app.handle_events([finger(app, pos)])


def type_pin(app: App, pin: str) -> None:
    for digit in pin:
        tap_target(app, TechDigit(digit))
    tap_target(app, TechEnter())


def records(app: App) -> list[dict[str, Any]]:
    """The menu's durable records: the store's ``tech_menu`` events (valid by the published
    schema, waiting in the event outbox for the city)."""
    events = [e for e in app.store.event_records() if e["kind"] == "tech_menu"]
    for event in events:
        EVENT_SCHEMA.validate(event)
    waiting = {str(r[0]) for r in app.store.conn.execute("SELECT event_id FROM event_outbox")}
    assert {e["id"] for e in events} <= waiting
    return events


def ratings(app: App) -> int:
    with contextlib.closing(sqlite3.connect(app.config.storage.path)) as conn:
        return int(conn.execute("SELECT count(*) FROM ratings").fetchone()[0])


def test_the_gesture_on_the_idle_screen_opens_the_pin_pad_and_the_pin_the_menu(pad: App) -> None:
    assert pad.handle(Message(1, "clerk.sign_in", {"clerk": CLERK}))["ok"]
    pad._show()
    gesture(pad, (400, 240))  # the middle of the screen: nothing
    assert pad.screen.view.screen == "idle"
    gesture(pad)
    assert pad.screen.view.screen == "tech_pin"
    type_pin(pad, "1357")
    view = pad.screen.view
    assert view.tech.message == texts.TECH_PIN_WRONG_FMT.format(left=2)
    assert [r["event"] for r in records(pad)] == ["pin_wrong"]
    tap_target(pad, TechDigit("2"))
    assert pad.screen.view.tech.entered == 1
    tap_target(pad, TechBackspace())
    type_pin(pad, PIN)
    view = pad.screen.view
    assert view.screen == "tech_menu"
    info = dict(view.tech.info)
    assert info[texts.TECH_LABEL_DEVICE] == "unit-1"
    assert info[texts.TECH_LABEL_OUTBOX] == "0"
    assert info[texts.TECH_LABEL_COUNTER] == f"dummy:// {texts.TECH_CONNECTED}"
    assert "mqtt://" not in info[texts.TECH_LABEL_BROKER]  # [mqtt] enabled = false
    # The PIN as dots, never as digits; and the drawn screen holds no PIN.
    assert PIN not in "".join(d.shown for d in pad.screen.layout.texts)
    tap_target(pad, TechItem("reload_config"))
    if not callable(getattr(pad, "reload_config", None)):
        assert pad.screen.view.tech.message.startswith(texts.TECH_NOT_AVAILABLE.split("{")[0])
    tap_target(pad, TechItem("close"))
    assert pad.screen.view.screen == "idle"
    assert [r["event"] for r in records(pad)][-4:] == ["opened", "item", "item", "closed"]


def test_never_on_a_rating_screen(pad: App) -> None:
    assert pad.handle(Message(1, "evaluation.start", {"clerk": CLERK, "stage": "deliver",
                                                      "cases": [CASE]}))["ok"]  # fmt: skip
    pad._show()
    gesture(pad)
    assert pad.screen.view.screen == "presenting" and not pad.tech.is_open


def test_button_test_names_the_button_and_records_nothing(pad: App) -> None:
    pad._show()  # signed out: the gesture works here too
    gesture(pad)
    type_pin(pad, PIN)
    tap_target(pad, TechItem("button_test"))
    pad.presses.put(Level.DISSATISFIED)
    pad.step()
    pad._show()
    assert pad.screen.view.tech.pressed == texts.level_label(Level.DISSATISFIED)
    assert any(texts.level_label(Level.DISSATISFIED) in d.shown for d in pad.screen.layout.texts)
    tap_target(pad, TechItem("close"))  # 返回: back to the menu
    assert pad.screen.view.tech.phase == "menu"
    assert ratings(pad) == 0 and pad.session.presentation is None


def test_a_counter_start_closes_the_menu_and_shows_the_rating_screen(pad: App) -> None:
    pad._show()
    gesture(pad)
    type_pin(pad, PIN)
    assert pad.screen.view.screen == "tech_menu"
    reply = pad.handle(Message(2, "evaluation.start", {"clerk": CLERK, "stage": "deliver",
                                                       "cases": [CASE]}))  # fmt: skip
    assert reply["ok"]
    pad._show()
    assert pad.screen.view.screen == "presenting" and not pad.tech.is_open
    assert records(pad)[-1]["event"] == "closed"
    assert "evaluation.start" in records(pad)[-1]["why"]


def test_three_wrong_pins_lock_it_across_a_restart_and_it_closes_when_idle(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    app.screen = Screen(driver="dummy")
    try:
        app._show()
        gesture(app)
        for _ in range(3):
            type_pin(app, "0000")
        locked = texts.TECH_LOCKED_FMT.format(minutes=5)
        assert app.screen.view.tech.message == locked
        type_pin(app, PIN)  # the right PIN does nothing while locked
        assert app.screen.view.screen == "tech_pin"
        app.clock.advance(IDLE_CLOSE)
        app.step()
        app._show()
        assert app.screen.view.screen == "signed_out"
        assert [r["event"] for r in records(app)] == ["pin_wrong", "pin_wrong", "locked"]
    finally:
        app.shutdown()
    again = make_app(tmp_path)  # the same store: a restart
    again.screen = Screen(driver="dummy")
    try:
        assert json.loads(again.ledger.read_meta(META_KEY))["failures"] == 3
        again._show()
        gesture(again)
        type_pin(again, PIN)
        assert again.screen.view.screen == "tech_pin"
        assert again.screen.view.tech.message.startswith(locked[:3])
    finally:
        again.shutdown()


def test_without_a_pin_the_gesture_does_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path, pin="")
    app.screen = Screen(driver="dummy")
    try:
        app._show()
        gesture(app)
        assert app.screen.view.screen == "signed_out" and not app.tech.is_open
    finally:
        app.shutdown()


def test_the_taps_must_come_quickly(pad: App) -> None:
    pad._show()
    for _ in range(5):
        pad.clock.advance(GESTURE_WINDOW / 4 + 0.01)
        pad.handle_events([finger(pad, (5, 5))])
    assert not pad.tech.is_open


def test_test_print_sends_the_selftest_receipt_through_the_pads_spooler(tmp_path: Path) -> None:
    printing = (
        '[receipt]\nprint = "always"\nurl_template = "https://hcp.example.org/r?{query}"\n'
        'hall = "汕头市政务服务中心"\n[printer]\nkind = "dummy"\n'
    )
    app = make_app(tmp_path, extra=printing)
    app.screen = Screen(driver="dummy")
    try:
        assert app.printer is not None
        app.printer.start()
        app._show()
        gesture(app)
        type_pin(app, PIN)
        tap_target(app, TechItem("test_print"))
        assert app.screen.view.tech.message == texts.TECH_PRINT_SENT
        assert app.printer.wait_until(lambda s: s.printed >= 1, 30)
        printed = app.printer.connection.output  # every byte the dummy printer took
        assert "测试".encode("gb18030") in printed
        assert records(app)[-1]["event"] == "test_print"
        assert ratings(app) == 0
    finally:
        app.shutdown()
