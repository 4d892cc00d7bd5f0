"""Attack on the pad's inbox: a flood of counter requests or city commands must not freeze
the citizen's screen.  A real App, real SQLite; the commands queued as the sync thread does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.app import INBOX_PER_STEP, App
from evaluator.rules.levels import Level
from evaluator.rules.protocol import decode
from tests.evaluator.apps import demo_app

CLERK = {"id": "A1023", "name": "陈晓明"}
CASE = {"serial": "44050020261126000123", "matter_code": "11440500MB2C9300XR4442111009000",
        "matter_name": "居民身份证换领", "kind": "instant"}  # fmt: skip


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    pad = demo_app(tmp_path, "flood-1")
    yield pad
    pad.shutdown()


def _command(app: App, rid: int, rtype: str, replies: list[dict[str, Any]], **body: Any) -> None:
    frame = json.dumps({"id": rid, "type": rtype, **body}, ensure_ascii=False).encode()
    app._queue_command(decode(frame), replies.append)  # what the sync's thread calls


def test_a_flood_of_commands_leaves_the_citizens_press_a_turn(app: App) -> None:
    """2,000 commands queued while a citizen rates: one turn of the loop answered them all
    (each a store check or write) before the press queued behind them, and the screen was
    not drawn for as long; now each turn answers at most INBOX_PER_STEP, does not sleep while
    more wait, and every command is answered once, in order."""
    replies: list[dict[str, Any]] = []
    _command(app, 1, "clerk.sign_in", replies, clerk=CLERK)
    _command(app, 2, "evaluation.start", replies, clerk=CLERK, stage="deliver", cases=[CASE])
    app.step()
    assert [r["ok"] for r in replies] == [True, True] and app.session.rating_open
    for n in range(3, 2003):
        _command(app, n, "status" if n % 2 else "window.resume", replies)
    app.presses.put(Level.SATISFIED)  # the citizen presses while the flood waits
    app.step()
    assert len(replies) <= 2 + INBOX_PER_STEP
    assert app.session.state.value == "thanks"  # the press was taken in the same turn
    assert app.store.outbox_size() == 1
    assert app._sleep_for() == 0.0  # the next turn comes at once
    turns = 1
    while len(replies) < 2002:
        app.step()
        turns += 1
        assert turns < 2000
    assert [r["id"] for r in replies] == list(range(1, 2003))
    assert app._sleep_for() > 0.0
