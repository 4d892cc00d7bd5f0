"""The city link through a real App (issue 8): commands over MQTT answered exactly as on the
serial link, the events of presentations that end without a rating (once, even across a
crash), and the device state in the status.  A real mosquitto, real SQLite, the real worker;
the counter link is the shipped stand-in (dummy://)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.errors import StoreError
from evaluator.rules.protocol import LineFramer, decode, encode, reply_error
from sync.store import Store
from tests.support import log_lines
from tests.sync.test_mqtt import wait_until
from tests.sync.test_mqtt_events import Peer, assert_valid, schema

REPO = Path(__file__).resolve().parents[2]
DEVICE = "unit-city"
BASE = f"hcp/v1/{DEVICE}"
CLERK = {"id": "A1023", "name": "陈晓明"}
CASE = {"serial": "44050020261126000123", "matter_code": "11440500MB2C9300XR4442111009000",
        "matter_name": "居民身份证换领", "kind": "instant"}  # fmt: skip
START = {"type": "evaluation.start", "clerk": CLERK, "stage": "deliver", "cases": [CASE]}


def make_app(tmp_path: Path, broker: Any, *, mqtt: bool = True, extra: str = "") -> Any:
    from evaluator.app import App
    from evaluator.config import load_config
    from evaluator.rules.clock import FakeClock

    tmp_path.mkdir(parents=True, exist_ok=True)
    override = tmp_path / "city.toml"
    override.write_text(
        f'[device]\nid = "{DEVICE}"\narea_code = "440500"\n[counter]\nport = "dummy://"\n'
        f'[mqtt]\nenabled = {"true" if mqtt else "false"}\nhost = "{broker.host}"\n'
        f"port = {broker.port}\n[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n" + extra,
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())
    opened = app.store.open_epoch()  # the store's epoch event, acked by the city long ago:
    app.store.ack([opened["id"]] if opened else [])  # the events here are the tests' own
    return app


@pytest.fixture
def peer(broker: Any) -> Iterator[Peer]:
    p = Peer(broker.host, broker.port, base=BASE)
    yield p
    p.close()


@pytest.fixture
def app(tmp_path: Path, broker: Any, peer: Peer) -> Iterator[Any]:
    a = make_app(tmp_path, broker)
    a.sync.start()
    wait_until(lambda: a.sync.status.connected, 10, "the app's sync to connect")
    yield a
    a.shutdown()


def command(app: Any, peer: Peer, payload: bytes) -> dict[str, Any]:
    """Publish one command and run the app's loop until its reply is at the city."""
    before = len(peer.on("commands/replies"))
    peer.publish("commands", payload)
    deadline = time.monotonic() + 10
    while len(peer.on("commands/replies")) == before:
        assert time.monotonic() < deadline, "no reply"
        app.step()
        time.sleep(0.01)
    return peer.on("commands/replies")[before]


def serial(app: Any, request: dict[str, Any]) -> dict[str, Any]:
    """A request on the counter link (the stand-in's feed, then the loop)."""
    before = len(app.link.sent)
    app.link.feed(request)
    while len(app.link.sent) == before:
        app.step()
    return app.link.sent[before]


def test_commands_drive_the_pad_with_the_serial_links_replies(
    app: Any, peer: Peer, tmp_path: Path, broker: Any
) -> None:
    twin = make_app(tmp_path / "twin", broker, mqtt=False)  # the same requests on its link
    replies = schema("command-reply")
    requests = [
        {"id": 1, "type": "evaluation.cancel"},  # nothing open: not_presenting
        {"id": "w-2", "type": "window.pause", "reason": "lunch"},  # unknown_field
        {"id": 3, "type": "clerk.sign_in", "clerk": CLERK},
        {"id": 4, "type": "window.pause"},
        {"id": 5, **START},  # paused
        {"id": 6, "type": "window.resume"},
        {"id": 7, "type": "clerk.fly"},  # unknown_type
        {"id": 8, **START, "id_number": "440500199001010011"},  # unknown_field, no identity
    ]
    for request in requests:
        over_mqtt = command(app, peer, json.dumps(request, ensure_ascii=False).encode())
        assert_valid(replies, over_mqtt)
        assert over_mqtt == serial(twin, request), request
    twin.shutdown()
    codes = [r.get("error", {}).get("code") for r in peer.on("commands/replies")]
    assert codes == ["not_presenting", "unknown_field", None, None, "paused", None,
                     "unknown_type", "unknown_field"]  # fmt: skip
    opened = command(app, peer, json.dumps({"id": 9, **START}, ensure_ascii=False).encode())
    assert opened == {"id": 9, "ok": True} and app.view().screen == "presenting"
    status = command(app, peer, b'{"id":10,"type":"status"}\n')  # a serial line, newline and all
    assert status["ok"] and status["state"] == "rating" and status["online"] is True


def test_frames_the_link_refuses_get_the_same_refusal(app: Any, peer: Peer) -> None:
    framer = LineFramer()
    frames = [b"{not json", b"[1,2]", b'{"type":"status"}', b"\xff\xfe", b"[" * 40 + b"]" * 40,
              b'{"id":' + b"1" * 30 + b',"type":"status"}']  # fmt: skip
    for frame in frames:
        expected = decode(frame)
        assert not hasattr(expected, "type")
        assert command(app, peer, frame) == json.loads(
            encode(reply_error(expected.id, expected.error))  # type: ignore[union-attr]
        )
    too_long = b'{"id":1,"type":"status","x":"' + b"a" * 5000 + b'"}'
    (bad,) = list(framer.feed(too_long + b"\n"))
    assert command(app, peer, too_long) == reply_error(bad.id, bad.error)  # type: ignore[union-attr]


def test_a_retained_command_is_never_run(app: Any, peer: Peer, broker: Any) -> None:
    app.sync.stop()
    app.sync.join(5)
    peer.publish("commands", json.dumps({"id": 1, "type": "clerk.sign_in", "clerk": CLERK})
                 .encode(), retain=True)  # fmt: skip
    # Delivered, flagged retained, at the next subscription.
    again = make_app(Path(app.config.storage.path).parent / "second", broker)
    try:
        again.sync.on_command = None  # nothing may reach the app: a reply would show it
        again.sync.start()
        wait_until(lambda: "retained command" in again.sync.status.last_error, 10,
                   "the retained command seen and ignored")  # fmt: skip
        assert peer.on("commands/replies") == []
    finally:
        peer.publish("commands", b"", retain=True)  # clear it from the broker
        again.shutdown()


def test_a_command_published_retained_while_the_pad_is_connected_is_never_run(
    app: Any, peer: Peer
) -> None:
    # A broker clears the retain flag of what it forwards to a client subscribed already: only
    # the subscription's "Retain As Published" option lets the pad see it (MQTT 5).
    requests = [
        {"id": 1, "type": "status"},
        {"id": 2, "type": "clerk.sign_in", "clerk": CLERK},
        {"id": 3, "type": "window.pause"},
        {"id": 4, **START},
    ]
    with log_lines("sync.mqtt") as warnings:
        for n, request in enumerate(requests, 1):
            # each one, then the empty retained message that clears it, is refused as retained
            for body, seen in ((json.dumps(request, ensure_ascii=False).encode(), 2 * n - 1),
                               (b"", 2 * n)):  # fmt: skip
                peer.publish("commands", body, retain=True)
                deadline = time.monotonic() + 10
                while len(warnings.having("retained command")) < seen:
                    assert time.monotonic() < deadline, f"{request} not seen as retained"
                    app.step()
                    time.sleep(0.01)
    app.step()
    assert peer.on("commands/replies") == [] and app.view().screen != "presenting"
    assert "retained command" in app.sync.status.last_error
    live = command(app, peer, b'{"id":5,"type":"status"}')  # a live one is still answered
    assert live["id"] == 5 and live["ok"] and live["state"] == "signed_out"  # no sign-in ran


def test_a_cancel_and_a_timeout_each_give_one_event_without_a_level(app: Any, peer: Peer) -> None:
    command(app, peer, json.dumps({"id": 1, "type": "clerk.sign_in", "clerk": CLERK}).encode())
    command(app, peer, json.dumps({"id": 2, **START}, ensure_ascii=False).encode())
    command(app, peer, b'{"id":3,"type":"evaluation.cancel"}')

    def ends() -> list[dict[str, Any]]:  # the clerk's sign-in is an event too (issue 16)
        return [e for e in peer.on("events") if e["kind"] != "clerk_sign_in"]

    wait_until(lambda: len(ends()) == 1, 5, "the cancel's event")
    command(app, peer, json.dumps({"id": 4, **START}, ensure_ascii=False).encode())
    app.clock.advance(app.config.session.timeout + 1)
    deadline = time.monotonic() + 10
    while len(ends()) < 3:  # represented, then the timeout's end
        assert time.monotonic() < deadline, peer.on("events")
        app.step()
        time.sleep(0.01)
    cancelled, again, timed_out = ends()
    (signed_in,) = [e for e in peer.on("events") if e["kind"] == "clerk_sign_in"]
    assert signed_in["clerk"] == CLERK and signed_in["seq"] == 2
    validator = schema("event")
    for event in (cancelled, again, timed_out):
        assert_valid(validator, event)
        assert "level" not in event and "score" not in event
    assert (cancelled["kind"], cancelled["outcome"], cancelled["by"]) == (
        "presentation_end", "cancelled", "clerk")  # fmt: skip
    assert cancelled["cases"] == [CASE] and cancelled["clerk"] == CLERK
    assert cancelled["area_code"] == "440500" and cancelled["terminal"] is None
    assert again["kind"] == "represented" and again["represents"] == [cancelled["presentation_id"]]
    assert (timed_out["outcome"], timed_out["by"]) == ("not_rated", "timeout")
    assert [e["seq"] for e in (cancelled, again, timed_out)] == [3, 4, 5]  # 1: the epoch
    peer.ack([e["id"] for e in (signed_in, cancelled, again, timed_out)])
    wait_until(lambda: app.store.event_outbox_size() == 0, 5, "the events acked")


def test_a_presentation_open_at_a_crash_gives_exactly_one_event(
    tmp_path: Path, broker: Any
) -> None:
    first = make_app(tmp_path, broker, mqtt=False)
    first.handle(_msg(1, "clerk.sign_in", clerk=CLERK))
    first.handle(_msg(2, **START))
    pid = first.session.presentation.id
    first.ledger.close()  # the power goes: nothing closes the presentation
    for _ in range(2):  # the start that closes it, and one more
        again = make_app(tmp_path, broker, mqtt=False)
        again.shutdown()
    with Store(tmp_path / "r.db", device_id=DEVICE) as store:
        ends = [e for e in store.event_records() if e["kind"] == "presentation_end"]
    assert len(ends) == 1
    assert (ends[0]["presentation_id"], ends[0]["by"], ends[0]["outcome"]) == (
        pid, "restart", "not_rated")  # fmt: skip


def test_the_status_tells_the_printer_link_and_clock(app: Any, peer: Peer) -> None:
    app.step()
    wait_until(lambda: bool(peer.on("status")) and peer.on("status")[-1]["counter_link"] == "up",
               5, "the app's state in the status")  # fmt: skip
    status = peer.on("status")[-1]
    assert_valid(schema("status"), status)
    assert status["clock_synced"] is True and status["printer"] is None  # print = "never"
    app.link.connected.clear()  # the counter link drops
    app.step()
    wait_until(lambda: peer.on("status")[-1]["counter_link"] == "down", 5, "link down")


def test_a_storage_fault_is_told_to_the_city_once_the_store_works(app: Any, peer: Peer) -> None:
    app.store.conn.execute("PRAGMA query_only = 1")  # SQLite now refuses every write
    with pytest.raises(StoreError):
        app.ledger.write_meta("probe", "x")
    assert app.ledger.fault
    app.step()
    app.store.conn.execute("PRAGMA query_only = 0")
    assert app.store.event_outbox_size() == 0  # nothing could be written meanwhile
    app.ledger.maintain()  # the loop's upkeep: the store takes writes again
    assert not app.ledger.fault
    wait_until(lambda: len(peer.on("events")) == 2, 5, "the fault's two events")
    began, ended = peer.on("events")
    assert (began["active"], ended["active"]) == (True, False)
    assert "readonly" in began["message"] or "read-only" in began["message"], began
    assert ended["since"] == began["at"]
    for event in (began, ended):
        assert_valid(schema("event"), event)


def _msg(rid: int, rtype: str = "", **body: Any) -> Any:
    from evaluator.rules.protocol import Message

    rtype = rtype or body.pop("type")
    return Message(rid, rtype, body)


def test_a_printer_going_offline_is_an_event_and_in_the_status(
    tmp_path: Path, broker: Any, peer: Peer
) -> None:
    from evaluator.rules.levels import Level
    from kiosk.view import PressLevel

    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)  # nobody reads it: the printer is offline at its first receipt
    app = make_app(tmp_path / "pad", broker, extra=(
        '[receipt]\nprint = "always"\nurl_template = "https://hcp.example.org/r?{query}"\n'
        f'hall = "汕头市政务服务中心"\n[printer]\nkind = "file"\npath = "{fifo}"\n'))  # fmt: skip
    try:
        app.printer.start()
        app.sync.start()
        app.handle(_msg(1, "clerk.sign_in", clerk=CLERK))
        assert app.handle(_msg(2, **START))["ok"]
        app.clock.advance(1.0)  # past the press filter's guard
        app.act(PressLevel(Level.SATISFIED))
        app.step()
        # Art. 4: nothing printed during the 谢谢 (a 差评's receipt would come only at its
        # submit): the receipt is made when the 谢谢 ends, with the counter told.
        assert app.session.state.value == "thanks"
        assert app.printer.status.pending == 0 and len(app.receipts.issued) == 0
        assert not [e for e in app.store.event_records() if e["kind"] == "printer_fault"]
        app.clock.advance(app.config.session.thanks + 0.1)  # the 谢谢 ends: the receipt is made
        deadline = time.monotonic() + 20
        while app.printer.status.state != "offline":  # the receipt fails at once
            assert time.monotonic() < deadline, app.printer.status
            app.step()
            time.sleep(0.02)
        while not any(e["kind"] == "printer_fault" for e in peer.on("events")):
            assert time.monotonic() < deadline, (app.printer.status, peer.on("events"))
            app.step()
            time.sleep(0.02)
        (down,) = [e for e in peer.on("events") if e["kind"] == "printer_fault"]
        assert_valid(schema("event"), down)
        assert (down["fault"], down["active"]) == ("offline", True)
        wait_until(lambda: peer.on("status")[-1]["printer"] == "offline", 5, "the status")
    finally:
        app.shutdown()
