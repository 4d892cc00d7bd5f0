"""Attack on art. 4 (the clerk never learns the level) through the clerk's own requests.

Fixed by the lead's decision: a touched presentation looks the same to the clerk's side from the
first press until its 谢谢 has ended, whatever was pressed (``status`` says ``rating``, a cancel
is refused ``citizen_rating``, ``evaluation.finished`` comes when the 谢谢 ends)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.app import App
from evaluator.rules.levels import Level
from evaluator.rules.protocol import decode
from tests.evaluator.apps import demo_app

CLERK = {"id": "A1023", "name": "陈晓明"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    pad = demo_app(tmp_path, "art4-1")
    yield pad
    pad.shutdown()


def _ask(app: App, rid: int, rtype: str, **body: Any) -> dict[str, Any]:
    """One clerk-side request (the city's command path; the serial link's is the same)."""
    replies: list[dict[str, Any]] = []
    frame = json.dumps({"id": rid, "type": rtype, **body}, ensure_ascii=False).encode()
    app._queue_command(decode(frame), replies.append)
    app.step()
    return replies[0]


def _probe(app: App, serial: str, level: Level) -> tuple[str, str]:
    """Present a case, let the citizen press ``level``, then what the clerk's side reads: the
    status's state, and the answer to an evaluation.cancel."""
    case = {"serial": serial, "matter_code": "M1", "matter_name": "不动产登记", "kind": "instant"}
    assert _ask(app, 1, "evaluation.start", clerk=CLERK, stage="deliver", cases=[case])["ok"]
    app.session.press(level)
    state = _ask(app, 2, "status")["state"]
    cancel = _ask(app, 3, "evaluation.cancel")
    return state, "ok" if cancel["ok"] else cancel["error"]["code"]


def test_the_clerks_side_cannot_tell_a_bad_press_from_a_good_one(app: App) -> None:
    """A 好评 ends the screen at the press (state 'thanks', a cancel is 'not_presenting'); a
    差评 keeps a touched rating screen open for its reasons (state 'rating', a cancel refused
    'citizen_rating').  An untouched screen answers 'rating' and cancels.  So one
    evaluation.cancel sent while the status says 'rating' tells the clerk, before the citizen
    has submitted anything, that a 差评 is being chosen — and the clerk can then interfere.
    Closing it needs a protocol decision (e.g. the same answer for a touched screen and 谢谢,
    and 谢谢 shown as 'rating' to the clerk's side), so it is reported, not patched here."""
    assert _ask(app, 0, "clerk.sign_in", clerk=CLERK)["ok"]
    good = _probe(app, "S1", Level.SATISFIED)
    deadline = time.monotonic() + 30
    while app.session.public_state != "idle":  # 谢谢 runs out ([session] thanks, real clock)
        assert time.monotonic() < deadline, "谢谢 never ended"
        app.step()
        time.sleep(0.05)
    bad = _probe(app, "S2", Level.DISSATISFIED)
    assert good == bad, f"a good press reads {good}, a bad one {bad}"
