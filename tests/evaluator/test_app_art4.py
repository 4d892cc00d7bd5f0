"""Art. 4 through the clerk's side of the real App: from the citizen's first press until the
谢谢 after the rating has ended, a 好评 (on 谢谢 from the press) and a 差评 (on its reasons, then
on 谢谢 from the submit) read the same on every channel the clerk's side has — the serial link's
replies and events, the same requests as the city's MQTT commands, ``status``'s figures — and
``evaluation.finished`` is sent when the 谢谢 ends, also after a power cut during it.

A real App on a real store file and the shipped dummy counter link; a fake clock moves time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message, decode
from kiosk.view import PressLevel, Submit, ToggleReason
from tests.support import without_head

REPO = Path(__file__).resolve().parents[2]
CLERK = {"id": "A1023", "name": "陈晓明"}


def case(serial: str) -> dict[str, str]:
    return {"serial": serial, "matter_code": "M1", "matter_name": "不动产登记", "kind": "instant"}


@pytest.fixture
def pad(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Opens Apps on one store file (a second one while the first runs is a power cut);
    every one is shut down at the end."""
    opened: list[App] = []

    def open_app(*, thanks: str = "3s", db: str = "r.db") -> App:
        override = tmp_path / "o.toml"
        override.write_text(
            f'[device]\nid = "art4-2"\narea_code = "440500"\n[counter]\nport = "dummy://"\n'
            f'[mqtt]\nenabled = false\n[storage]\npath = "{tmp_path / db}"\n'
            f'[screen]\ndriver = "dummy"\n[session]\nthanks = "{thanks}"\n',
            encoding="utf-8",
        )
        app = App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())
        opened.append(app)
        return app

    yield open_app
    for app in opened:
        app.shutdown()


def serial_link(app: App, rid: int, rtype: str, **body: Any) -> dict[str, Any]:
    """One request over the counter link, as the loop handles it."""
    return app.handle(Message(rid, rtype, body))


def mqtt_command(app: App, rid: int, rtype: str, **body: Any) -> dict[str, Any]:
    """One request as a city command (the sync's thread queues it, the loop answers it)."""
    replies: list[dict[str, Any]] = []
    frame = json.dumps({"id": rid, "type": rtype, **body}, ensure_ascii=False).encode()
    app._queue_command(decode(frame), replies.append)
    app.step()
    (reply,) = replies
    return reply


Ask = Callable[..., dict[str, Any]]


def clerk_view(app: App, ask: Ask) -> tuple[Any, ...]:
    """Everything the clerk's side can read now: the status, the answer to each request that
    would end or replace the presentation, and the events sent so far."""
    status = ask(app, 90, "status")
    answers = [
        ask(app, 91, "evaluation.cancel"),
        ask(app, 92, "window.pause"),
        ask(app, 93, "clerk.sign_out"),
        ask(app, 94, "clerk.sign_in", clerk={"id": "B7", "name": "王强"}),
        ask(app, 95, "evaluation.start", clerk=CLERK, stage="deliver", cases=[case("PROBE")]),
    ]
    codes = tuple(a["error"]["code"] if not a["ok"] else "ok" for a in answers)
    events = tuple(json.dumps(f, sort_keys=True) for f in app.link.sent if "event" in f)
    return json.dumps(status, sort_keys=True), codes, events


def rate(app: App, ask: Ask, level: Level) -> list[tuple[Any, ...]]:
    """Start, press ``level``; the clerk's view at the press and 8 s later (a 差评: still on
    its reasons)."""
    assert ask(app, 1, "evaluation.start", clerk=CLERK, stage="deliver", cases=[case("S1")])["ok"]
    app.clock.advance(1.0)  # past the press filter's guard
    app.act(PressLevel(level))
    views = [clerk_view(app, ask)]
    app.clock.advance(8)
    app.step()
    views.append(clerk_view(app, ask))
    return views


@pytest.mark.parametrize("ask", [serial_link, mqtt_command], ids=["serial", "mqtt"])
def test_every_level_reads_the_same_until_its_thanks_ends(pad: Callable[..., App],
                                                          ask: Ask) -> None:  # fmt: skip
    """The attack of test_attack_art4 on both request paths, for every level, with a 谢谢
    long enough to cover the 差评's reasons: nothing differs until the 谢谢 has ended."""
    views: dict[Level, list[tuple[Any, ...]]] = {}
    for level in Level:
        app = pad(thanks="20s", db=f"{level.value}.db")  # a store of its own, alike
        assert ask(app, 0, "clerk.sign_in", clerk=CLERK)["ok"]
        seen = rate(app, ask, level)
        if level.is_bad:
            app.act(ToggleReason("213" if level is Level.DISSATISFIED else "115"))
            app.clock.advance(1.0)
            app.act(Submit())
            app.clock.advance(10)
        else:
            app.clock.advance(11)
        app.step()  # 19 s after the press: a 好评's 谢谢 is about to end, a 差评's began 9 s ago
        seen.append(clerk_view(app, ask))
        views[level] = seen
        app.shutdown()
    first = views[Level.VERY_SATISFIED]
    assert all(v == first for v in views.values()), views
    status, codes, events = first[0]
    assert json.loads(status)["state"] == "rating" and events == ()
    assert codes == ("citizen_rating", "citizen_rating", "citizen_rating", "busy", "busy")


@pytest.mark.parametrize("ask", [serial_link, mqtt_command], ids=["serial", "mqtt"])
@pytest.mark.parametrize("level", [Level.SATISFIED, Level.VERY_DISSATISFIED])
def test_finished_is_sent_when_the_thanks_ends(
    pad: Callable[..., App], ask: Ask, level: Level
) -> None:
    app = pad()
    assert ask(app, 1, "evaluation.start", clerk=CLERK, stage="deliver", cases=[case("S1")])["ok"]
    app.clock.advance(1.0)
    app.act(PressLevel(level))
    if level.is_bad:
        app.clock.advance(5)
        app.act(ToggleReason("115"))
        app.clock.advance(1.0)
        app.act(Submit())
    assert app.session.state.value == "thanks" and app.store.outbox_size() == 1  # durable
    app.clock.advance(app.config.session.thanks - 0.05)
    app.step()
    assert [f for f in app.link.sent if "event" in f] == []
    assert ask(app, 2, "status")["state"] == "rating"
    assert ask(app, 3, "evaluation.cancel")["error"]["code"] == "citizen_rating"
    app.clock.advance(0.1)
    app.step()
    assert without_head([f for f in app.link.sent if "event" in f]) == [
        {"event": "evaluation.finished", "serials": ["S1"], "outcome": "rated"}
    ]
    assert ask(app, 4, "status")["state"] == "idle"
    assert ask(app, 5, "evaluation.cancel")["error"]["code"] == "not_presenting"
    assert ask(app, 6, "evaluation.start", clerk=CLERK, stage="deliver", cases=[case("S2")])["ok"]


def test_with_thanks_zero_finished_is_sent_at_the_next_turn(pad: Callable[..., App]) -> None:
    app = pad(thanks="0s")
    assert serial_link(app, 1, "evaluation.start", clerk=CLERK, stage="deliver",
                       cases=[case("S1")])["ok"]  # fmt: skip
    app.clock.advance(1.0)
    app.act(PressLevel(Level.SATISFIED))
    app.step()
    assert without_head(app.link.sent[-1]) == {
        "event": "evaluation.finished", "serials": ["S1"], "outcome": "rated"
    }  # fmt: skip


def test_an_untouched_screen_may_still_be_cancelled_at_once(pad: Callable[..., App]) -> None:
    """Before any touch a cancel works (it reveals nothing) and is told at once."""
    app = pad()
    assert serial_link(app, 1, "evaluation.start", clerk=CLERK, stage="deliver",
                       cases=[case("S1")])["ok"]  # fmt: skip
    assert serial_link(app, 2, "status")["state"] == "rating"
    assert serial_link(app, 3, "evaluation.cancel")["ok"]
    assert app.link.sent[-1]["outcome"] == "cancelled"


def test_status_figures_stay_those_of_the_opening_until_the_thanks_ends(
    pad: Callable[..., App],
) -> None:
    """A 好评 is stored at the press: the live outbox grows then, a 差评's only at its submit;
    status repeats the opening's outbox (and faults, printer) until the 谢谢 has ended."""
    app = pad()
    assert serial_link(app, 1, "evaluation.start", clerk=CLERK, stage="deliver",
                       cases=[case("S1")])["ok"]  # fmt: skip
    opening = serial_link(app, 2, "status")
    app.clock.advance(1.0)
    app.act(PressLevel(Level.VERY_SATISFIED))
    assert app.store.outbox_size() == 1 and opening["outbox"] == 0
    during = serial_link(app, 3, "status")
    assert {k: during[k] for k in ("state", "outbox", "faults", "printer")} == {
        k: opening[k] for k in ("state", "outbox", "faults", "printer")
    }
    app.clock.advance(app.config.session.thanks + 0.1)
    app.step()
    after = serial_link(app, 4, "status")
    assert (after["state"], after["outbox"]) == ("idle", 1)


def test_a_storage_fault_during_the_thanks_is_told_when_it_ends(pad: Callable[..., App]) -> None:
    """A fault told during 谢谢 would say "not on the reason screen", i.e. a 好评."""
    from sync.store import StoreError

    app = pad()
    assert serial_link(app, 1, "evaluation.start", clerk=CLERK, stage="deliver",
                       cases=[case("S1")])["ok"]  # fmt: skip
    app.clock.advance(1.0)
    app.act(PressLevel(Level.SATISFIED))
    app.store.conn.execute("PRAGMA query_only = 1")  # every write now fails, like a full disk
    with pytest.raises(StoreError):
        app.ledger.write_meta("probe", "x")
    app.step()
    assert app.ledger.fault and [f for f in app.link.sent if "event" in f] == []
    assert serial_link(app, 2, "status")["faults"] == []
    app.clock.advance(app.config.session.thanks + 0.1)
    app.step()
    kinds = [f["event"] for f in app.link.sent if "event" in f]
    assert kinds == ["evaluation.finished", "device.fault"]
    assert serial_link(app, 3, "status")["faults"] == ["storage"]
    app.store.conn.execute("PRAGMA query_only = 0")


def test_a_power_cut_during_the_thanks_still_tells_the_rating_once(
    pad: Callable[..., App],
) -> None:
    """The rating is stored at the press; its telling waits for the 谢谢, and is kept with the
    window state, so the next start tells it (once: the start after that does not)."""
    first = pad()
    assert serial_link(first, 0, "clerk.sign_in", clerk=CLERK)["ok"]
    assert serial_link(first, 1, "evaluation.start", clerk=CLERK, stage="deliver",
                       cases=[case("S1"), case("S2")])["ok"]  # fmt: skip
    first.clock.advance(1.0)
    first.act(PressLevel(Level.SATISFIED))
    assert [f for f in first.link.sent if "event" in f] == []
    second = pad()  # the first never ran on: a power cut during its 谢谢
    assert second.view().screen == "idle" and second.link.sent == []
    second.step()
    assert without_head(second.link.sent) == [
        {"event": "evaluation.finished", "serials": ["S1", "S2"], "outcome": "rated"}
    ]
    third = pad()
    third.step()
    assert third.link.sent == []
    assert third.view().clerk_id == CLERK["id"]


def test_a_kept_rating_waits_for_the_counter_link(pad: Callable[..., App]) -> None:
    """After a restart the kept outcome is told once the link is up, not into a closed port."""
    first = pad()
    assert serial_link(first, 1, "evaluation.start", clerk=CLERK, stage="deliver",
                       cases=[case("S1")])["ok"]  # fmt: skip
    first.clock.advance(1.0)
    first.act(PressLevel(Level.SATISFIED))
    second = pad()
    second.link.connected.clear()  # the port is not open yet
    second.step()
    assert second.link.sent == [] and second.session.untold
    second.link.connected.set()
    second.step()
    assert [f["outcome"] for f in second.link.sent] == ["rated"]
