"""The counter link over a real pseudo-terminal (socat): no input and no fault silences it.

The far end of the pty plays the business system.  ``CounterLink`` is used directly with an
``on_message`` that answers like the app would (the app is not needed).  Faults of the port
itself come from ``faulty://<pty path>`` (tests/kiosk/protocol_faulty.py): the real pty, with a
planned exception at the next open/read/write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import serial

from evaluator.rules.errors import RequestError
from evaluator.rules.protocol import MAX_DEPTH, MAX_FRAME, Message, reply_error, reply_ok
from kiosk.counter import CounterLink, reopen_cap
from tests.dropper import Dropper
from tests.kiosk import protocol_faulty

if "tests.kiosk" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("tests.kiosk")


class Counter:
    """The business system's end of the pty: writes raw lines, reads whole reply lines."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, timeout=0.05)
        self._buf = b""
        self.lines: list[bytes] = []

    def write(self, raw: bytes) -> None:
        self.port.write(raw)
        self.port.flush()

    def _read_lines(self) -> None:
        self._buf += self.port.read(4096)
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self.lines.append(line)

    def reply_to(self, rid: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The (complete) reply line whose id is ``rid``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read_lines()
            for line in self.lines:
                obj = json.loads(line.decode("utf-8"))  # every line must be UTF-8 JSON
                if obj.get("id") == rid:
                    self.lines.remove(line)
                    return obj
        raise AssertionError(f"no reply with id {rid!r} in {timeout}s; got {self.lines!r}")

    def ask_status(self, rid: str, timeout: float = 5.0) -> dict[str, Any]:
        self.write(json.dumps({"id": rid, "type": "status"}).encode() + b"\n")
        return self.reply_to(rid, timeout)

    def ask_status_until_answered(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask again (new id each time) until one is answered: bytes written while the pad
        had the port closed are discarded when it reopens it."""
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.ask_status(f"retry-{attempt}", timeout=0.5)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def counter(pty_pair: Any) -> Iterator[Counter]:
    c = Counter(pty_pair.counter)
    yield c
    c.close()


Handler = Callable[[CounterLink, Message], None]


def answer(link: CounterLink, message: Message) -> None:
    """What the app does, in short: one reply per request (status carries a state)."""
    if message.type == "status":
        link.send(reply_ok(message.id, state="idle", outbox=0, online=False))
    else:
        link.send(reply_ok(message.id))


@pytest.fixture
def start_link() -> Iterator[Callable[..., CounterLink]]:
    links: list[CounterLink] = []
    protocol_faulty.reset()

    def start(port: str, handler: Handler = answer, reconnect: float = 0.1) -> CounterLink:
        holder: list[CounterLink] = []
        link = CounterLink(port, reconnect=reconnect, on_message=lambda m: handler(holder[0], m))
        holder.append(link)
        links.append(link)
        link.start()
        assert link.connected.wait(5), f"link did not open {port}: {link.last_error}"
        return link

    yield start
    for link in links:
        link.stop()
        link.join(5)
    protocol_faulty.reset()


HOSTILE: dict[str, bytes] = {
    "lone_surrogate_id": b'{"id":"\\ud800"}',  # issue 5: killed the link thread
    "lone_surrogate_id_status": b'{"id":"\\udfff","type":"status"}',
    "deep_brackets": b"[" * 999,  # issue 5: RecursionError
    "deep_objects": b'{"a":' * 800,
    "deep_inside_request": b'{"id":7,"type":"status","x":' + b"[" * 600 + b"]" * 600 + b"}",
    "just_over_the_depth": b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    "invalid_utf8": b"\xff\xfe{\xc3(\x80}",
    "control_chars": b"\x00\x01\x1b[2J\x07\x7f",
    "over_long": b"{" * (MAX_FRAME * 3),
    "long_id": b'{"id":"' + b"i" * 1000 + b'","type":"status"}',
    "huge_int_id": b'{"id":' + b"9" * 4000 + b',"type":"status"}',
    "not_an_object": b'"\\ud800"',
    "surrogate_type": b'{"id":5,"type":"\\ud800"}',
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_frame_is_answered_and_the_link_still_answers(
    name: str, pty_pair: Any, counter: Counter, start_link: Callable[..., CounterLink]
) -> None:
    link = start_link(pty_pair.device)
    counter.write(HOSTILE[name] + b"\n")
    assert counter.ask_status("after")["state"] == "idle"
    assert link.is_alive() and link.connected.is_set()
    # every line the pad wrote is valid UTF-8 JSON, and the hostile frame got its refusal
    refusals = [json.loads(line.decode("utf-8")) for line in counter.lines]
    assert len(refusals) == 1 and refusals[0]["ok"] is False, refusals
    if name in ("lone_surrogate_id", "lone_surrogate_id_status", "long_id", "huge_int_id"):
        assert (
            refusals == [{"id": None, "ok": False, "error": refusals[0]["error"]}]
            and refusals[0]["error"]["code"] == "malformed"
        )


def test_all_hostile_frames_in_one_burst(
    pty_pair: Any, counter: Counter, start_link: Callable[..., CounterLink]
) -> None:
    link = start_link(pty_pair.device)
    counter.write(b"\n".join(HOSTILE.values()) + b"\n")
    assert counter.ask_status("after", timeout=10)["ok"] is True
    assert link.is_alive()


@pytest.mark.parametrize(
    "error", [RuntimeError("app bug"), RecursionError("deep"), KeyError("x"), MemoryError()]
)
def test_an_exception_in_on_message_does_not_end_the_link(
    error: Exception, pty_pair: Any, counter: Counter, start_link: Callable[..., CounterLink]
) -> None:
    def handler(link: CounterLink, message: Message) -> None:
        if message.type == "window.pause":
            raise error
        answer(link, message)

    link = start_link(pty_pair.device, handler)
    counter.write(b'{"id":1,"type":"window.pause"}\n')
    assert counter.ask_status("after")["ok"] is True
    assert link.is_alive()
    assert type(error).__name__ in link.last_error


def test_a_reply_that_cannot_be_written_does_not_end_the_link(
    pty_pair: Any, counter: Counter, start_link: Callable[..., CounterLink]
) -> None:
    def handler(link: CounterLink, message: Message) -> None:
        if message.type == "window.pause":
            loop: dict[str, Any] = {"id": message.id}
            loop["self"] = loop  # json cannot write a circular object
            assert link.send(loop) is False
            big = reply_ok(message.id, n=10**5000)  # more digits than int→str allows
            assert link.send(big) is False
            return
        answer(link, message)

    link = start_link(pty_pair.device, handler)
    counter.write(b'{"id":1,"type":"window.pause"}\n')
    assert counter.ask_status("after")["ok"] is True
    assert link.is_alive()


def test_a_reply_with_lone_surrogates_still_goes_out(
    pty_pair: Any, counter: Counter, start_link: Callable[..., CounterLink]
) -> None:
    def handler(link: CounterLink, message: Message) -> None:
        link.send(reply_error(message.id, RequestError("unknown_field", "field '\ud800' ?")))

    start_link(pty_pair.device, handler)
    counter.write(b'{"id":3,"type":"window.pause"}\n')
    reply = counter.reply_to(3)
    assert reply["error"]["message"] == "field '\ud800' ?"


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("driver bug"),
        ValueError("bad"),
        serial.SerialTimeoutException("write timeout"),
        OSError(5, "Input/output error"),
    ],
)
def test_a_failing_port_write_does_not_end_the_link(
    error: Exception, pty_pair: Any, counter: Counter, start_link: Callable[..., CounterLink]
) -> None:
    link = start_link(f"faulty://{pty_pair.device}")
    protocol_faulty.plan("write", error)
    counter.write(b'{"id":1,"type":"window.pause"}\n')  # its reply hits the fault
    deadline = time.monotonic() + 5
    while protocol_faulty.RAISED["write"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert protocol_faulty.RAISED["write"] == 1
    assert counter.ask_status("after")["ok"] is True
    assert link.is_alive()


@pytest.mark.parametrize(
    "error",
    [
        TypeError("backend bug"),
        RuntimeError("?"),
        serial.SerialException("device reports readiness to read but returned no data"),
        OSError(5, "Input/output error"),
    ],
)
def test_a_failing_port_read_closes_and_reopens_the_port(
    error: Exception, pty_pair: Any, counter: Counter, start_link: Callable[..., CounterLink]
) -> None:
    link = start_link(f"faulty://{pty_pair.device}")
    assert counter.ask_status("before")["ok"] is True
    protocol_faulty.plan("read", error)
    deadline = time.monotonic() + 5
    while protocol_faulty.RAISED["read"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert protocol_faulty.RAISED["read"] == 1
    assert counter.ask_status_until_answered()["ok"] is True  # answered on the reopened port
    assert link.is_alive() and link.connected.is_set()
    assert str(error) in link.last_error


def test_a_port_that_fails_to_open_with_any_error_is_retried(
    pty_pair: Any, counter: Counter
) -> None:
    protocol_faulty.reset()
    protocol_faulty.plan("open", RuntimeError("driver bug"), KeyError("x"), OSError(2, "gone"))
    link = CounterLink(f"faulty://{pty_pair.device}", reconnect=0.05, on_message=lambda m: None)
    link.on_message = lambda m: answer(link, m)
    link.start()
    try:
        assert link.connected.wait(5), link.last_error
        assert protocol_faulty.RAISED["open"] == 3
        assert counter.ask_status("after")["ok"] is True
    finally:
        link.stop()
        link.join(5)
        protocol_faulty.reset()
    assert not link.is_alive()


def test_send_without_a_port_returns_false() -> None:
    link = CounterLink("loop://", on_message=lambda m: None)  # never started
    assert link.send(reply_ok(1)) is False


# --- reopening: a growing wait, reset by a healthy port ----------------------------------------

#: pyserial's ``socket://`` sleeps this long in ``close()`` ("give the server some time"): part of
#: every measured gap between a drop and the next attempt, on top of the link's own wait.
SOCKET_CLOSE_PAUSE = 0.3


def test_reopen_cap_is_ten_times_reconnect_but_at_most_30_s() -> None:
    assert reopen_cap(0.05) == pytest.approx(0.5)
    assert reopen_cap(2.0) == pytest.approx(20.0)
    assert reopen_cap(5.0) == 30.0
    assert reopen_cap(60.0) == 60.0  # never below the first wait


def test_a_flapping_port_is_reopened_after_growing_waits_and_fast_after_a_healthy_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A port that opens and drops at once, again and again (a flapping USB adapter), then one
    # connection (n = 6) that stays up longer than the cap: healthy, so the next loss is a replug.
    import kiosk.counter

    chosen: list[float] = []

    class Recording(kiosk.counter.Backoff):  # the real rule, its choices kept for the checks
        def next(self) -> float:
            wait = super().next()
            chosen.append(wait)
            return wait

    monkeypatch.setattr(kiosk.counter, "Backoff", Recording)
    reconnect, cap = 0.08, 0.8
    with Dropper(hold=lambda n: 0.8 if n == 6 else 0.0) as port:
        link = CounterLink(
            f"socket://127.0.0.1:{port.port}", reconnect=reconnect, on_message=lambda m: None
        )
        link.start()
        try:
            accepted, closed = port.wait_for(9, timeout=20)
        finally:
            link.stop()
            link.join(5)
    assert not link.is_alive()
    # From each drop to the next attempt: the link's wait plus the close pause (and a little).
    waits = [
        nxt - drop - SOCKET_CLOSE_PAUSE for drop, nxt in zip(closed[:8], accepted[1:9], strict=True)
    ]
    bases = [0.08, 0.16, 0.32, 0.64, 0.8, 0.8, 0.08, 0.16]  # doubling, capped; reset after n=6
    for wait, base in zip(waits, bases, strict=True):
        assert wait >= 0.75 * base - 0.005, (waits, bases)  # jitter shortens by at most 25 %
    # Upper bounds from the waits the link chose, not from wall time (a loaded machine only
    # makes measured gaps longer): the cap holds, and after the healthy turn it starts again.
    assert max(chosen[4:6]) <= cap, chosen  # uncapped it would be 1.28 and 2.56 s
    assert chosen[6] <= reconnect, chosen
