"""Every reason, 联办 agency and 常用意见 can be reached and toggled by touch at every panel size:
a real App with a real Screen, real finger events for the chips and for the pager's ▲ / ▼, and
the stored rating holds what was tapped."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygame
import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message
from evaluator.rules.reasons import OTHER_CODE
from kiosk.screen import Screen
from kiosk.sizes import SIZES, PanelSize
from kiosk.view import (
    PressLevel,
    Submit,
    ToggleAgency,
    TogglePhrase,
    ToggleReason,
    TurnPage,
    UiAction,
)
from tests.evaluator.apps import START_BODY
from tests.kiosk.screen_views import tap_event, turn_to

REPO = Path(__file__).resolve().parents[2]
AGENCIES = ["市公安局", "市政务服务数据管理局"]
START = {**START_BODY, "agencies": AGENCIES}


@pytest.fixture(params=SIZES, ids=lambda s: s.name)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    size: PanelSize = request.param
    override = tmp_path / "site.toml"
    override.write_text(
        '[device]\nid = "unit-1"\n[counter]\nport = ""\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f"[screen]\nwidth = {size.width}\nheight = {size.height}\ndpi = {size.dpi}\n",
        encoding="utf-8",
    )
    config = load_config([REPO / "config" / "demo.toml", override])
    a = App(config, clock=FakeClock())
    sc = config.screen
    a.screen = Screen(driver="dummy", width=sc.width, height=sc.height, dpi=sc.dpi)
    pygame.event.clear()
    yield a
    a.shutdown()


def tap(app: App, action: UiAction) -> None:
    """Page to ``action`` with finger taps on the pager, tap it, then wait as a citizen does
    (past the press filter's guard)."""
    target = turn_to(app.screen, action, lambda event: app.handle_events([event]))
    app.handle_events([tap_event(app.screen, target.rect)])
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(max(app.press_filter.guard, 0.2))


@pytest.mark.parametrize("level", [Level.DISSATISFIED, Level.VERY_DISSATISFIED])
def test_every_reason_agency_and_phrase_is_toggled_by_touch(app: App, level: Level) -> None:
    assert app.handle(Message(1, "evaluation.start", START))["ok"]
    app._show()
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(1.0)
    tap(app, PressLevel(level))
    tap(app, ToggleReason(OTHER_CODE))  # 其他 first: its 常用意见 show
    screen = app.screen
    actions = list(screen.layout.page_of)
    reasons = [a for a in actions if isinstance(a, ToggleReason) and a.code != OTHER_CODE]
    phrases = [a for a in actions if isinstance(a, TogglePhrase)]
    agencies = [a for a in actions if isinstance(a, ToggleAgency)]
    offered = [item.code for item in app.view().reasons if item.code != OTHER_CODE]
    assert sorted(a.code for a in reasons) == sorted(offered)  # every one, on some page
    assert len(phrases) == len(app.phrases.phrases)
    assert [a.name for a in agencies] == AGENCIES
    assert screen.pages > 1  # 15 mm chips page the reasons at every size
    for action in [*reasons, *agencies, *phrases]:
        tap(app, action)
        assert screen.layout.find(action) is not None  # still on its page after the tap
    view = app.view()
    assert all(item.selected for item in view.reasons)
    assert all(selected for _, selected in view.agencies)
    assert view.comment == "；".join(a.text for a in phrases)
    tap(app, Submit())
    assert app.view().screen == "thanks"
    with contextlib.closing(sqlite3.connect(app.config.storage.path)) as conn:
        [(stored,)] = conn.execute("SELECT record FROM ratings").fetchall()
    record: dict[str, Any] = json.loads(stored)
    assert record["level"] == level.value
    assert sorted(r["code"] for r in record["reasons"]) == sorted([*offered, OTHER_CODE])
    assert record["comment"] == view.comment
    assert list(record["agencies_concerned"]) == AGENCIES


def test_a_tap_on_the_pager_turns_the_page_and_rates_nothing(app: App) -> None:
    assert app.handle(Message(1, "evaluation.start", START))["ok"]
    app._show()
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(1.0)
    tap(app, PressLevel(Level.VERY_DISSATISFIED))
    screen = app.screen
    assert screen.pages > 1  # 15 mm chips page the reasons at every size
    before = app.view()
    down = screen.layout.find(TurnPage(1))
    assert down is not None
    app.handle_events([tap_event(screen, down.rect)])
    assert screen.page == 1 and app.view() == before  # the session saw nothing
    up = screen.layout.find(TurnPage(-1))
    assert up is not None
    app.handle_events([tap_event(screen, up.rect, "mouse")])
    assert screen.page == 0


def test_turning_the_reason_pages_keeps_the_rating_screen_open(app: App) -> None:
    """A citizen paging through the reasons is still there: the timeout starts again, as after
    a choice (before, page turns never reached the session and the screen timed out mid-read)."""
    assert app.handle(Message(1, "evaluation.start", START))["ok"]
    app._show()
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(1.0)
    tap(app, PressLevel(Level.VERY_DISSATISFIED))
    timeout = app.config.session.timeout
    screen = app.screen
    for _ in range(3):
        app.clock.advance(timeout - 5)
        step = 1 if screen.page == 0 else -1
        pager = screen.layout.find(TurnPage(step))
        assert pager is not None
        app.handle_events([tap_event(screen, pager.rect)])
        app.clock.advance(10)
        app.step()
        assert app.view().screen == "reasons"
    app.clock.advance(timeout)
    app.step()
    assert app.view().screen != "reasons"  # left alone, it times out (not rated)
