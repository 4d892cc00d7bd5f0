"""In-process frame latencies of the real :class:`~evaluator.app.App` at 1280×800 (issue 6).

Devices come from the config, as on a pad: ``[counter] port = "dummy://"`` (requests played in
with ``app.link.feed``), ``[buttons]`` on gpiozero's ``MockFactory`` pins, ``[mqtt]`` disabled, a
real :class:`~kiosk.screen.Screen` on the SDL ``dummy`` driver, the SQLite store in the run's
temporary directory (``bench.run`` prints its file system: on a tmpfs ``synchronous=FULL`` syncs
nothing) and the real clock (``[session] press_guard`` is waited out before a press, untimed).
``[session] thanks`` is :data:`THANKS` here and waited out after each press, untimed: the next
``evaluation.start`` is refused ``busy`` until the 谢谢 after a rating has ended (art. 4), and
"0s" would end the 谢谢 in the press's own turn, before it is drawn.
Each sample is followed by one sample of its reference, so noise hits both alike:

- trigger → frame: ``link.feed(evaluation.start)``, ``app.step()``, ``app._show()`` until the rating
  screen is drawn; reference: a bare ``pygame.display.flip()`` of the same 1280×800 display;
- GPIO press → 谢谢 frame: the mock pin driven low, ``app.step()``, ``app._show()`` until the
  thanks screen is drawn and the rating committed; reference: one raw ``sqlite3`` insert with the
  store's pragmas (WAL, ``synchronous=FULL``) plus one flip.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pygame

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.levels import BUTTON_ORDER, Level

WIDTH, HEIGHT = 1280, 800
PINS = dict(zip(BUTTON_ORDER, (17, 27, 22, 23, 24), strict=True))
#: Waited after the rating screen is shown, before a press: past ``[session] press_guard``.
GUARD_WAIT = 0.35
#: ``[session] thanks`` of the benches' pads: far beyond a press's turn and its drawing, short
#: enough to wait out after every press (untimed).
THANKS = 0.5
#: Bounds of each loop: samples, and seconds.
N_TRIGGER, TRIGGER_SECONDS = 300, 30.0
N_PRESS = 100
PRESS_SECONDS = 60.0 + N_PRESS * THANKS

CLERK = {"id": "A1023", "name": "陈晓明"}


def start_request(msg_id: int, serial: str) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "evaluation.start",
        "stage": "deliver",
        "clerk": dict(CLERK),
        "cases": [
            {
                "serial": serial,
                "matter_code": "M1",
                "matter_name": "居民身份证换领",
                "kind": "instant",
            }
        ],
    }


def make_app(tmp: Path, repo: Path) -> App:
    """The App as a pad at 1280×800 would run it, its screen opened as ``App.run`` does."""
    pins = "\n".join(f"{level.value} = {pin}" for level, pin in PINS.items())
    site = tmp / "frames.toml"
    site.write_text(
        '[device]\nid = "bench-frames"\n'
        '[counter]\nport = "dummy://"\n'
        "[mqtt]\nenabled = false\n"
        f"[storage]\npath = {json.dumps(str(tmp / 'frames.db'))}\n"
        f'[buttons]\n{pins}\npin_factory = "mock"\n'
        f'[session]\nthanks = "{THANKS * 1000:g}ms"\n'
        f'[screen]\nwidth = {WIDTH}\nheight = {HEIGHT}\ndriver = "dummy"\n',
        encoding="utf-8",
    )
    app = App(load_config([repo / "config" / "demo.toml", site]))
    app.screen = app.devices.open_screen()
    return app


def shown(app: App) -> str:
    """The screen last drawn (``""`` before any)."""
    view = app.screen.view
    return view.screen if view is not None else ""


def expect(app: App, screen: str) -> None:
    if app.view().screen != screen or shown(app) != screen:
        raise RuntimeError(
            f"expected the {screen!r} screen drawn, got {app.view().screen!r} / {shown(app)!r}"
        )


def drain(app: App) -> None:
    """Take the wake-up events the link posted (the loop would, in ``Screen.wait``)."""
    app.handle_events(app.screen.wait(0))


def end_thanks(app: App, patience: float = 10.0) -> None:
    """Turn the loop until the 谢谢 after a rating has ended (the counter told, the receipt
    made): only then does ``evaluation.start`` open the next rating screen (art. 4)."""
    deadline = time.monotonic() + patience
    while app.session.held or (app.receipts is not None and app.receipts.due):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the 谢谢 did not end within {patience:g} s")
        time.sleep(min(app._sleep_for(), 0.05))  # as the loop waits (no spinning)
        app.step()
        app._show()
        drain(app)


def count_ratings(path: Path) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM ratings").fetchone()[0])


def bench_trigger(app: App) -> tuple[list[float], list[float]]:
    """trigger → rating screen drawn, and bare flips, interleaved."""
    times: list[float] = []
    refs: list[float] = []
    msg_id = 1000
    deadline = time.monotonic() + TRIGGER_SECONDS
    for i in range(-3, N_TRIGGER):  # three warm-up rounds (fonts, glyph caches), not kept
        if time.monotonic() > deadline:
            break
        msg_id += 1
        request = start_request(msg_id, f"T{i}")
        t0 = time.perf_counter()
        app.link.feed(request)
        app.step()
        app._show()
        t1 = time.perf_counter()
        expect(app, "presenting")
        t2 = time.perf_counter()
        pygame.display.flip()
        t3 = time.perf_counter()
        if i >= 0:
            times.append(t1 - t0)
            refs.append(t3 - t2)
        msg_id += 1
        app.link.feed({"id": msg_id, "type": "evaluation.cancel"})
        app.step()
        app._show()
        drain(app)
    return times, refs


def timed_press(app: App, pin: Any) -> float:
    """Seconds from driving the GPIO ``pin`` low to the rating durable and 谢谢 drawn; the pin is
    released and the 谢谢 screen checked after the clock stops."""
    t0 = time.perf_counter()
    pin.drive_low()  # pull-up: pressed = low; gpiozero calls the app back
    while app.presses.empty() and time.perf_counter() - t0 < 1.0:
        pass
    app.step()
    app._show()
    t1 = time.perf_counter()
    pin.drive_high()
    drain(app)
    expect(app, "thanks")
    return t1 - t0


def bench_press(app: App, tmp: Path, n: int = N_PRESS) -> tuple[list[float], list[float]]:
    """GPIO press → rating durable and 谢谢 drawn, and a raw durable insert + flip, interleaved;
    ``n`` samples (tests run a few)."""
    ref_db = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    ref_db.execute("PRAGMA journal_mode = WAL")
    ref_db.execute("PRAGMA synchronous = FULL")
    ref_db.execute("CREATE TABLE IF NOT EXISTS ratings (seq INTEGER PRIMARY KEY, record TEXT)")
    record = json.dumps({"level": "satisfied", "pad": "x" * 900}, ensure_ascii=False)
    pin = app.buttons.pin(Level.SATISFIED)
    times: list[float] = []
    refs: list[float] = []
    msg_id = 100_000
    stored = count_ratings(app.config.storage.path) if app.config.storage.path.exists() else 0
    deadline = time.monotonic() + PRESS_SECONDS
    try:
        for i in range(-2, n):  # two warm-up rounds, not kept
            if time.monotonic() > deadline:
                break
            msg_id += 1
            app.link.feed(start_request(msg_id, f"G{i}"))
            app.step()
            app._show()
            drain(app)
            expect(app, "presenting")
            time.sleep(GUARD_WAIT)  # past [session] press_guard, untimed
            press_seconds = timed_press(app, pin)
            stored += 1
            if count_ratings(app.config.storage.path) != stored:
                raise RuntimeError("the rating is not in the store after 谢谢")
            t2 = time.perf_counter()
            ref_db.execute("INSERT INTO ratings (record) VALUES (?)", (record,))  # autocommit
            pygame.display.flip()
            t3 = time.perf_counter()
            end_thanks(app)  # untimed: the next start is refused until it has ended
            if i >= 0:
                times.append(press_seconds)
                refs.append(t3 - t2)
    finally:
        ref_db.close()
    return times, refs


def run(tmp: Path, repo: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Both benchmarks on one App; seconds."""
    app = make_app(tmp, repo)
    try:
        trigger = bench_trigger(app)
        press = bench_press(app, tmp)
    finally:
        app.shutdown()
    return {"trigger": trigger, "press": press}
