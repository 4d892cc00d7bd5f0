"""A batch (art. 24) is rated only once the citizen was shown every case of it (issue 15: a
batch of 12 showed 3 serials and "……等9件").  A real App with a real Screen (dummy driver), its
counter link on a socat pty the test writes ``evaluation.start`` into, a real store file and a
fake clock: a level press (finger tap, key 1–5 or hardware button) before every page of cases
was shown turns to the first page not shown and rates nothing; once all were shown, one press
rates every case, and the counter hears ``rated`` for all of them."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pygame
import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import BUTTON_ORDER, Level
from evaluator.rules.protocol import MAX_FRAME
from evaluator.rules.request import CASES_MAX
from evaluator.rules.session import State
from kiosk.screen import Screen
from kiosk.view import PressLevel, TurnPage
from tests.conftest import PtyPair
from tests.evaluator.apps import START_BODY
from tests.evaluator.test_app import Counter
from tests.kiosk.screen_views import tap_event
from tests.support import without_head

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0  # [session] timeout of the demo configuration (the shipped default)


def batch(count: int) -> dict[str, Any]:
    """An ``evaluation.start`` of ``count`` cases of one matter (a batch, art. 24), short
    enough for one frame of the serial link (4096 bytes) at the protocol's most cases."""
    case = {"matter_code": "M", "matter_name": "户籍", "kind": "instant"}
    cases = [{"serial": f"B{i}", **case} for i in range(count)]
    return {"id": 1, "type": "evaluation.start", **START_BODY, "cases": cases}


@pytest.fixture(params=[(800, 480, 133), (480, 800, 133)], ids=["800x480", "480x800"])
def pad(
    request: pytest.FixtureRequest, tmp_path: Path, pty_pair: PtyPair
) -> Iterator[tuple[App, Counter]]:
    width, height, dpi = request.param
    override = tmp_path / "o.toml"
    override.write_text(
        f'[device]\nid = "batch-1"\narea_code = "440500"\n'
        f'[counter]\nport = "{pty_pair.device}"\nreconnect = "200ms"\n'
        f"[mqtt]\nenabled = false\n[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f'[screen]\ndriver = "dummy"\nwidth = {width}\nheight = {height}\ndpi = {dpi}\n'
        f'[session]\ntimeout = "{int(TIMEOUT)}s"\n',
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())
    app.screen = Screen(driver="dummy", width=width, height=height, dpi=dpi)
    pygame.event.clear()
    app.link.start()
    counter = Counter(pty_pair.counter)
    try:
        yield app, counter
    finally:
        counter.port.close()
        app.shutdown()


def until(
    app: App, counter: Counter, match: Callable[[dict[str, Any]], bool], advance: float = 0.0
) -> dict[str, Any]:
    """Turn the app's loop (real time for the link's thread; the pad's clock ``advance``d at
    each turn) until the counter reads a frame that ``match``es."""
    assert isinstance(app.clock, FakeClock)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        app.clock.advance(advance)
        app.step()
        app._show()
        with contextlib.suppress(AssertionError):
            return counter.expect(match, timeout=0.05)
    raise AssertionError(f"the counter read no matching frame; got {counter.frames}")


def finished(app: App, counter: Counter) -> dict[str, Any]:
    """The ``evaluation.finished`` the counter reads (the 谢谢 screen ends on the pad's clock)."""
    return until(app, counter, lambda f: f.get("event") == "evaluation.finished", advance=1.0)


def start(app: App, counter: Counter, count: int) -> None:
    """The counter opens a batch of ``count`` over the pty; the pad shows it."""
    deadline = time.monotonic() + 20
    for n in range(1000):  # the pad flushes its input when it opens the port: ask until heard
        counter.send({"id": f"ping{n}", "type": "status"})
        if answered(app, counter, f"ping{n}"):
            break
        assert time.monotonic() < deadline, "the pad never answered status"
    frame = json.dumps(batch(count), ensure_ascii=False, separators=(",", ":")).encode()
    assert len(frame) < MAX_FRAME, "the batch must fit one frame of the serial link"
    counter.port.write(frame + b"\n")
    assert until(app, counter, lambda f: f.get("id") == 1) == {"id": 1, "ok": True}
    assert app.session.state is State.PRESENTING
    assert app.screen.view is not None and app.screen.view.screen == "presenting"


def answered(app: App, counter: Counter, rid: str) -> bool:
    """The pad answered the request ``rid`` within a few turns of its loop."""
    for _ in range(10):
        app.step()
        with contextlib.suppress(AssertionError):
            counter.expect(lambda f: f.get("id") == rid, timeout=0.05)
            return True
    return False


def press(app: App, level: Level, how: str) -> None:
    """A level press as the citizen gives it, past the press filter's guard: a finger on the
    button, the key 1–5, or the hardware button."""
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(max(app.press_filter.guard, 0.2))
    if how == "tap":
        target = app.screen.layout.find(PressLevel(level))
        assert target is not None and target.enabled
        app.handle_events([tap_event(app.screen, target.rect)])
    elif how == "key":
        key = pygame.K_1 + BUTTON_ORDER.index(level)
        app.handle_events([pygame.event.Event(pygame.KEYDOWN, key=key, scancode=0, mod=0)])
    else:
        app.presses.put(level)
        app.step()
    app._show()


def stored_cases(app: App) -> list[str]:
    db = app.config.storage.path
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [row[0] for row in conn.execute("SELECT serial FROM rating_cases ORDER BY serial")]


@pytest.mark.parametrize("count", [12, CASES_MAX])
@pytest.mark.parametrize("how", ["tap", "key", "button"])
def test_a_press_before_every_case_was_shown_shows_them_and_rates_nothing(
    pad: tuple[App, Counter], count: int, how: str
) -> None:
    app, counter = pad
    start(app, counter, count)
    screen = app.screen
    pages = screen.pages
    assert pages > 1, "a long batch takes pages"
    shown_pages = [screen.page]
    while screen.cases_unseen:
        unseen = len(screen.cases_unseen)
        press(app, Level.VERY_DISSATISFIED, how)
        assert app.session.state is State.PRESENTING, "a press rated unseen cases"
        assert len(screen.cases_unseen) < unseen, "the press did not show the next page"
        shown_pages.append(screen.page)
    assert shown_pages == list(range(pages)), "each press shows the next page not shown"
    assert stored_cases(app) == []
    assert not [f for f in counter.frames if f.get("event") == "evaluation.finished"]

    press(app, Level.VERY_SATISFIED, how)  # every case was shown: this press rates them all
    serials = [case["serial"] for case in batch(count)["cases"]]
    told = finished(app, counter)
    assert without_head(told) == {
        "event": "evaluation.finished", "serials": serials, "outcome": "rated"
    }  # fmt: skip
    assert stored_cases(app) == sorted(serials)


def test_a_batch_on_one_page_rates_at_the_first_press(pad: tuple[App, Counter]) -> None:
    app, counter = pad
    start(app, counter, 3)
    assert app.screen.pages == 1 and app.screen.cases_unseen == ()
    press(app, Level.SATISFIED, "tap")
    told = finished(app, counter)
    assert told["outcome"] == "rated" and len(told["serials"]) == 3
    assert len(stored_cases(app)) == 3


def test_the_pages_seen_are_kept_through_the_reasons_and_back(pad: tuple[App, Counter]) -> None:
    """返回 from the reason screen shows the cases again: the pages already shown count."""
    app, counter = pad
    start(app, counter, 12)
    while app.screen.cases_unseen:
        press(app, Level.SATISFIED, "tap")
    press(app, Level.DISSATISFIED, "tap")
    assert app.session.state is State.CHOOSING_REASONS
    app.clock.advance(1.0)
    app.handle_events([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, scancode=0, mod=0)])
    app._show()
    assert app.session.state is State.PRESENTING and app.screen.cases_unseen == ()
    press(app, Level.SATISFIED, "tap")
    told = finished(app, counter)
    assert told["outcome"] == "rated" and len(told["serials"]) == 12


def test_turning_the_case_pages_restarts_the_not_rated_timeout(pad: tuple[App, Counter]) -> None:
    app, counter = pad
    start(app, counter, 12)
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(TIMEOUT - 5)
    press(app, Level.SATISFIED, "button")  # held: it shows the next page, and restarts it
    assert app.screen.page == 1 and app.session.state is State.PRESENTING
    for _ in range(3):  # three times most of the timeout, a page turned by the pager between
        app.clock.advance(TIMEOUT - 5)
        app.step()
        assert app.session.state is State.PRESENTING
        step = 1 if app.screen.page < app.screen.pages - 1 else -1
        pager = app.screen.layout.find(TurnPage(step))
        assert pager is not None and pager.enabled
        before = app.screen.page
        app.handle_events([tap_event(app.screen, pager.rect)])
        assert app.screen.page == before + step and app.session.state is State.PRESENTING
    app.clock.advance(TIMEOUT + 1)  # untouched past the timeout: not rated, nothing stored
    told = finished(app, counter)
    assert told["outcome"] == "not_rated" and stored_cases(app) == []


def test_a_double_tap_on_a_level_does_not_rate_the_page_it_just_showed(
    pad: tuple[App, Counter],
) -> None:
    """The second tap of a double tap lands on the page the first one turned to: the press
    filter's guard holds it (a new page of cases is a new screen), so nothing is rated until
    the citizen has had the page before them for the guard time."""
    app, counter = pad
    start(app, counter, 12)
    assert isinstance(app.clock, FakeClock)
    while len(app.screen.cases_unseen) > 0:
        press(app, Level.VERY_DISSATISFIED, "tap")
    target = app.screen.layout.find(PressLevel(Level.VERY_SATISFIED))
    assert target is not None
    app.clock.advance(0.1)  # the double tap's second touch, on the last page just shown
    app.handle_events([tap_event(app.screen, target.rect)])
    app._show()
    assert app.session.state is State.PRESENTING and stored_cases(app) == []
    press(app, Level.VERY_SATISFIED, "tap")  # past the guard: it rates every case
    assert finished(app, counter)["outcome"] == "rated" and len(stored_cases(app)) == 12


def test_a_button_press_queued_with_a_start_rates_nothing_not_drawn(
    pad: tuple[App, Counter],
) -> None:
    """A hardware press made while the idle screen showed, queued in the same turn of the loop
    as the counter's ``evaluation.start`` of a long batch (a clerk's press timed with their own
    request, found by review): it was applied after the request, to a batch the screen had not
    even drawn (the screen still held the idle view: no case unseen), and rated all 12."""
    app, counter = pad
    start(app, counter, 1)  # the link is up; rate this one away to the idle screen
    press(app, Level.VERY_SATISFIED, "button")
    finished(app, counter)
    assert app.session.state is State.IDLE and app.screen.view is not None
    assert app.screen.view.screen != "presenting"
    second = batch(12)
    second["id"] = 2
    for case in second["cases"]:
        case["serial"] = "C" + case["serial"]
    counter.port.write(json.dumps(second, ensure_ascii=False).encode() + b"\n")
    deadline = time.monotonic() + 20
    while app.inbox.empty():  # the link's thread has queued the request, not yet applied
        assert time.monotonic() < deadline, "the link never queued the request"
        time.sleep(0.01)
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(1.0)
    app.presses.put(Level.VERY_SATISFIED)  # pressed on the idle screen
    app.step()
    app._show()
    assert app.session.state is State.PRESENTING, "a press rated a batch never drawn"
    assert stored_cases(app) == ["B0"]
    assert len(app.screen.cases_unseen) > 0


@pytest.mark.parametrize("request_type", ["evaluation.cancel", "window.pause", "clerk.sign_out"])
def test_a_held_press_is_a_press_the_clerk_cannot_cancel(
    pad: tuple[App, Counter], request_type: str
) -> None:
    """Art. 4: once the citizen pressed a level, only the citizen or the timeout ends the
    presentation.  A press held back on a long batch (it shows the next page) is such a press:
    the clerk, seeing the citizen press, could cancel the batch before its last page was shown,
    and the presentation's row said the citizen never touched it (found by review)."""
    app, counter = pad
    start(app, counter, 12)
    press(app, Level.VERY_DISSATISFIED, "button")  # held: the next page
    assert app.session.state is State.PRESENTING and app.screen.page == 1
    counter.send({"id": 7, "type": request_type})
    reply = until(app, counter, lambda f: f.get("id") == 7)
    assert reply.get("error", {}).get("code") == "citizen_rating", reply
    assert app.session.state is State.PRESENTING
    while app.screen.cases_unseen:
        press(app, Level.SATISFIED, "key")
    press(app, Level.SATISFIED, "key")  # every page shown: the citizen rates
    assert finished(app, counter)["outcome"] == "rated" and len(stored_cases(app)) == 12


def test_a_press_after_the_timeout_is_not_held_into_a_longer_one(pad: tuple[App, Counter]) -> None:
    """A press that reaches the app after the not-rated timeout ran out, before the loop's
    deadline check, ends the presentation not rated as any other press does (the session
    checks its deadline first); held back, it turned a page and restarted the timeout of a
    presentation already over, which the clerk could then no longer cancel (found by
    review)."""
    app, counter = pad
    start(app, counter, 12)
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(TIMEOUT + 1)  # the loop has not looked yet
    app.act(PressLevel(Level.SATISFIED))
    app._show()
    assert app.session.state is not State.PRESENTING and app.screen.page == 0
    told = finished(app, counter)
    assert told["outcome"] == "not_rated" and stored_cases(app) == []
