"""The clerk's sign-in, the pause and the open presentation across a restart or a power cut
(issue 9): a real App on a real store file; a "power cut" is a new App opened on the same
files while the old one was never shut down.  The SIGKILL of the real process is in
tests/evaluator/test_app.py."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.app import WINDOW_STATE_KEY, App
from evaluator.config import load_config
from evaluator.rules.protocol import Message
from tests.evaluator.apps import START_BODY

REPO = Path(__file__).resolve().parents[2]
BODY = START_BODY
CLERK = {"id": "A1", "name": "李娜"}


@pytest.fixture
def pad(tmp_path: Path) -> Iterator[Callable[[], App]]:
    """Opens Apps on one store file; every one is shut down at the end of the test."""
    override = tmp_path / "unit.toml"
    override.write_text(
        f'[device]\nid = "unit-1"\nwindow = "3号窗口"\n[counter]\nport = ""\n'
        f'[mqtt]\nenabled = false\n[storage]\npath = "{tmp_path / "r.db"}"\n',
        encoding="utf-8",
    )
    opened: list[App] = []

    def open_app() -> App:
        app = App(load_config([REPO / "config" / "demo.toml", override]))
        opened.append(app)
        return app

    yield open_app
    for app in opened:
        app.shutdown()


def ok(app: App, rtype: str, **body: Any) -> None:
    reply = app.handle(Message(1, rtype, body))
    assert reply.get("ok") is True, reply


def screen(app: App) -> tuple[str, str, str]:
    view = app.view()
    return view.screen, view.clerk_id, view.clerk_name


def test_a_signed_in_clerk_is_signed_in_after_a_shutdown_and_a_start(
    pad: Callable[[], App],
) -> None:
    first = pad()
    assert screen(first) == ("signed_out", "", "")
    ok(first, "clerk.sign_in", clerk=CLERK)
    first.shutdown()
    assert screen(pad()) == ("idle", "A1", "李娜")


def test_sign_in_and_pause_survive_a_power_cut(pad: Callable[[], App]) -> None:
    first = pad()
    ok(first, "clerk.sign_in", clerk=CLERK)
    ok(first, "window.pause")
    second = pad()  # the first was never shut down: nothing more than the request's own write
    assert second.view().screen == "paused"
    assert second.handle(Message(2, "evaluation.start", BODY))["error"]["code"] == "paused"
    ok(second, "window.resume")
    assert screen(second) == ("idle", "A1", "李娜")


def test_a_pause_while_signed_out_resumes_signed_out_after_a_restart(
    pad: Callable[[], App],
) -> None:
    ok(pad(), "window.pause")
    second = pad()
    assert second.view().screen == "paused"
    ok(second, "window.resume")
    assert screen(second) == ("signed_out", "", "")


def test_a_sign_out_survives_a_restart(pad: Callable[[], App]) -> None:
    first = pad()
    ok(first, "clerk.sign_in", clerk=CLERK)
    assert screen(pad()) == ("idle", "A1", "李娜")
    ok(first, "clerk.sign_out")
    assert screen(pad()) == ("signed_out", "", "")


def test_a_presentation_open_at_a_power_cut_ends_not_rated_and_the_clerk_stays(
    pad: Callable[[], App], tmp_path: Path
) -> None:
    first = pad()
    ok(first, "clerk.sign_in", clerk=CLERK)
    ok(first, "evaluation.start", **BODY)  # its clerk (A1023) takes the window
    assert first.view().screen == "presenting"
    second = pad()
    assert screen(second) == ("idle", "A1023", "陈晓明")
    with sqlite3.connect(tmp_path / "r.db") as conn:
        rows = conn.execute("SELECT outcome, end_cause FROM presentations").fetchall()
    assert rows == [("not_rated", "restart")]
    ok(second, "evaluation.start", **BODY)  # the window takes the next citizen
    assert second.view().screen == "presenting"


@pytest.mark.parametrize(
    "kept",
    ["{not json", '"idle"', '{"clerk": {"id": 7}, "state": "idle"}', '{"state": "thanks"}'],
)
def test_an_unusable_kept_state_starts_signed_out_and_is_replaced(
    pad: Callable[[], App], tmp_path: Path, kept: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="evaluator.app")  # whatever an earlier test set
    pad().shutdown()
    with sqlite3.connect(tmp_path / "r.db") as conn:
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [WINDOW_STATE_KEY, kept])
    app = pad()
    assert screen(app) == ("signed_out", "", "")
    assert "unusable" in caplog.text
    ok(app, "clerk.sign_in", clerk=CLERK)
    with sqlite3.connect(tmp_path / "r.db") as conn:
        (value,) = conn.execute(
            "SELECT value FROM meta WHERE key = ?", [WINDOW_STATE_KEY]
        ).fetchone()
    assert json.loads(value) == {"clerk": CLERK, "state": "idle"}
    assert screen(pad()) == ("idle", "A1", "李娜")


def test_only_a_change_is_written(pad: Callable[[], App], tmp_path: Path) -> None:
    """A status poll (every few seconds from the counter) writes nothing to the card."""
    app = pad()
    ok(app, "clerk.sign_in", clerk=CLERK)
    changes = app.store.conn.total_changes
    for _ in range(5):
        ok(app, "status")
        app.step()
    assert app.store.conn.total_changes == changes
    ok(app, "window.pause")
    assert app.store.conn.total_changes == changes + 1
