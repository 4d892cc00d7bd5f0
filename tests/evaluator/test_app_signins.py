"""The pad tells the city who is signed in at its window (issue 16): every change of the clerk
(a ``clerk.sign_in`` / ``clerk.sign_out``, or an ``evaluation.start`` naming another clerk) is a
signed event on the events chain, valid against the published schema; a repeat of the same
clerk is no change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluator.rules.protocol import Message
from sync.hub import schemas
from tests.evaluator.apps import START_BODY, demo_app

A1 = {"id": "A1", "name": "李娜"}
B2 = {"id": "B2", "name": "王芳"}


def _clerk_events(app: Any) -> list[dict[str, Any]]:
    return [e for e in app.store.event_records() if e["kind"].startswith("clerk_")]


def test_each_change_of_the_clerk_is_a_signed_event_for_the_city(tmp_path: Path) -> None:
    app = demo_app(tmp_path, "pad-1")
    try:
        steps = [("clerk.sign_in", {"clerk": A1}), ("clerk.sign_in", {"clerk": A1}),
                 ("evaluation.start", {**START_BODY, "clerk": B2}), ("evaluation.cancel", {}),
                 ("clerk.sign_out", {}), ("clerk.sign_out", {})]  # fmt: skip
        for n, (kind, body) in enumerate(steps, 1):
            app.handle(Message(n, kind, body))
        events = _clerk_events(app)
    finally:
        app.shutdown()
    assert [(e["kind"], e["clerk"]["id"]) for e in events] == [
        ("clerk_sign_in", "A1"), ("clerk_sign_in", "B2"), ("clerk_sign_out", "B2")]  # fmt: skip
    for event in events:
        assert schemas.first_error("event", event) is None, event
        assert event["device_id"] == "pad-1" and "sig" in event and event["at"]
