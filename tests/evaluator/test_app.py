"""End to end: the real process, a real pseudo-terminal, a real broker, a real X window.

The counter side is played through a socat pty pair, the citizen presses a key on the pad's
window (Xvfb + xdotool, real X key events), and the city is a subscriber on a private mosquitto.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import serial

from sync.audit import stats as audited_stats
from tests.conftest import Broker, Display, PtyPair
from tests.evaluator.apps import START_BODY
from tests.support import start_pad, stop_pad, without_head

REPO = Path(__file__).resolve().parents[2]
DEVICE = "e2e-0001"
PREFIX = "hcp/v1"


def write_override(path: Path, *, counter: str, broker: Broker, db: Path) -> Path:
    path.write_text(
        f"""
[device]
id = "{DEVICE}"
window = "8号窗口"

[counter]
port = "{counter}"
reconnect = "200ms"

[mqtt]
host = "{broker.host}"
port = {broker.port}
resend_after = "1s"

[storage]
path = "{db}"

# Keys follow each other faster than a citizen's taps (xdotool); the press filter, which
# ignores presses in the first 300 ms of a screen, has its own tests (tests/evaluator/
# test_app.py::test_the_press_filter_*), so it is off here.
[session]
press_guard = "0s"

[screen]
driver = "auto"
""",
        encoding="utf-8",
    )
    return path


class Evaluator:
    """The evaluator as a child process, its log kept for failure messages."""

    def __init__(self, tmp: Path, override: Path, *, display: str | None, name: str) -> None:
        self.log = tmp / f"{name}.log"
        self._log_file = self.log.open("wb")
        self.process = start_pad(override, self._log_file, display=display)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        code = stop_pad(self.process, 10)
        self._log_file.close()
        return code


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Evaluator]]:
    started: list[Evaluator] = []

    def start(override: Path, *, display: str | None, name: str = "evaluator") -> Evaluator:
        ev = Evaluator(tmp_path, override, display=display, name=name)
        started.append(ev)
        return ev

    yield start
    for ev in started:
        ev.stop()


class Counter:
    """The clerk's business system on the other end of the pty."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, 9600, timeout=0.1)
        self.frames: list[dict[str, Any]] = []
        self._buf = b""

    def send(self, obj: dict[str, Any]) -> None:
        self.port.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        """Ask ``status`` until the pad answers (it flushes its input when it opens the port)."""
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            n += 1
            ping = f"ping{n}"
            self.send({"id": ping, "type": "status"})
            try:
                return self.expect(lambda f, ping=ping: f.get("id") == ping, timeout=0.5)
            except AssertionError:
                continue
        raise AssertionError(f"the pad did not answer status within {timeout}s")

    def expect(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.frames:
                if match(frame):
                    self.frames.remove(frame)
                    return frame
            self._buf += self.port.read(4096)
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                if line.strip():
                    self.frames.append(json.loads(line))
        raise AssertionError(f"no matching frame within {timeout}s; got {self.frames}")


class City:
    """The city system: subscribes to the pad's ratings and acknowledges them."""

    def __init__(self, broker: Broker) -> None:
        self.ratings: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="city-test")
        self.client.on_message = lambda c, u, m: self.ratings.put(json.loads(m.payload))
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{PREFIX}/{DEVICE}/ratings", qos=1)
        self.client.loop_start()

    def next_rating(self, timeout: float = 15) -> dict[str, Any]:
        return self.ratings.get(timeout=timeout)

    def ack(self, *ids: str) -> None:
        self.client.publish(f"{PREFIX}/{DEVICE}/acks", json.dumps({"ids": list(ids)}), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def city(broker: Broker) -> Iterator[City]:
    c = City(broker)
    yield c
    c.close()


def press_key(display: Display, ev: Evaluator, key: str) -> None:
    """A real X key event (XTEST) into the pad's focused window."""
    env = {**os.environ, "DISPLAY": display.name}
    wid = subprocess.run(
        ["xdotool", "search", "--sync", "--pid", str(ev.process.pid)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()[0]
    subprocess.run(["xdotool", "windowfocus", "--sync", wid], env=env, timeout=10, check=True)
    subprocess.run(["xdotool", "key", key], env=env, timeout=10, check=True)


#: Errors a read of a store that another process is still creating or writing can raise: the
#: file is missing or empty, its schema is not committed yet ("no such table"), it is locked.
STORE_NOT_READY = (sqlite3.OperationalError, sqlite3.DatabaseError)


def db_count(db: Path, table: str) -> int:
    """Rows of ``table``, read through a read-only connection that never creates the file.

    Raises ``STORE_NOT_READY`` errors while the pad has not committed its schema yet: inside a
    :func:`wait_until` predicate that means "not yet", never a failure.
    """
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def wait_until(
    check: Callable[[], bool],
    timeout: float = 30,
    what: str = "",
    *,
    ev: Evaluator | None = None,
) -> None:
    """Wait for a consistent state another process is producing.

    The whole read is retried: ``check`` raising a ``STORE_NOT_READY`` error (the store is being
    created or written) counts as "not yet", like ``False``.  The timeout only bounds a failure;
    a passing wait returns as soon as ``check`` holds.  With ``ev``, a pad that exits fails the
    wait at once, and a failure carries the pad's log.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            if check():
                return
        except STORE_NOT_READY as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            break
        if ev is not None and ev.process.poll() is not None:
            raise AssertionError(
                f"the pad exited ({ev.process.returncode}) while waiting for {what}"
                f"\n--- pad log ---\n{ev.output()}"
            )
        time.sleep(0.05)
    detail = f" (last read failed: {last_error!r})" if last_error else ""
    log = f"\n--- pad log ---\n{ev.output()}" if ev is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}{log}")


START = {"id": 1, "type": "evaluation.start", **START_BODY}


def test_trigger_to_synced_rating(
    tmp_path: Path,
    pty_pair: PtyPair,
    broker: Broker,
    xvfb: Display,
    city: City,
    launch: Callable[..., Evaluator],
) -> None:
    db = tmp_path / "ratings.db"
    override = write_override(tmp_path / "e2e.toml", counter=pty_pair.device, broker=broker, db=db)
    ev = launch(override, display=xvfb.name)
    counter = Counter(pty_pair.counter)
    status = counter.wait_ready()
    assert status["ok"] is True and status["state"] == "signed_out" and status["outbox"] == 0

    # a malformed frame gets a clear error and changes nothing
    counter.port.write(b"{not json\n")
    bad = counter.expect(lambda f: f.get("ok") is False, timeout=20)
    assert bad["error"]["code"] == "malformed"

    counter.send(START)
    assert counter.expect(lambda f: f.get("id") == 1) == {"id": 1, "ok": True}
    press_key(xvfb, ev, "1")  # leftmost button: 非常满意

    finished = counter.expect(lambda f: f.get("event") == "evaluation.finished")
    assert without_head(finished) == {
        "event": "evaluation.finished",
        "serials": ["44050020261126000123"],
        "outcome": "rated",
    }  # never the level
    rating = city.next_rating()
    assert rating["level"] == "very_satisfied" and rating["score"] == 10
    assert rating["satisfaction"] == 5 and rating["device_id"] == DEVICE
    assert [c["serial"] for c in rating["cases"]] == ["44050020261126000123"]
    assert rating["clerk"] == {"id": "A1023", "name": "陈晓明"}
    assert db_count(db, "ratings") == 1

    # the same case again at the same stage is refused
    counter.send({**START, "id": 2})
    refused = counter.expect(lambda f: f.get("id") == 2)
    assert refused["ok"] is False and refused["error"]["code"] == "already_rated"

    assert db_count(db, "outbox") == 1
    city.ack(rating["id"])
    wait_until(lambda: db_count(db, "outbox") == 0, what="the ack to empty the outbox", ev=ev)
    assert ev.stop() == 0, ev.output()


def test_rating_survives_sigkill_right_after_the_outcome(
    tmp_path: Path,
    pty_pair: PtyPair,
    broker: Broker,
    xvfb: Display,
    launch: Callable[..., Evaluator],
) -> None:
    db = tmp_path / "ratings.db"
    broker.stop()  # the city is unreachable: nothing leaves the pad before the kill
    override = write_override(tmp_path / "e2e.toml", counter=pty_pair.device, broker=broker, db=db)
    ev = launch(override, display=xvfb.name, name="first")
    counter = Counter(pty_pair.counter)
    counter.wait_ready()
    counter.send(START)
    assert counter.expect(lambda f: f.get("id") == 1, timeout=20)["ok"] is True
    press_key(xvfb, ev, "4")  # 不满意 → reasons screen
    press_key(xvfb, ev, "Escape")  # back to the level buttons: nothing rated
    press_key(xvfb, ev, "2")  # 满意
    counter.expect(lambda f: f.get("event") == "evaluation.finished")
    ev.process.send_signal(signal.SIGKILL)
    ev.process.wait(10)

    assert db_count(db, "ratings") == 1 and db_count(db, "outbox") == 1
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        kept = conn.execute("SELECT value FROM meta WHERE key = 'window_state'").fetchone()
    assert json.loads(kept[0]) == {"clerk": START["clerk"], "state": "idle"}

    broker.start()
    city = City(broker)
    try:
        restart = write_override(tmp_path / "restart.toml", counter="", broker=broker, db=db)
        second = launch(restart, display=None, name="second")
        rating = city.next_rating(timeout=60)
        assert rating["level"] == "satisfied"
        city.ack(rating["id"])
        wait_until(lambda: db_count(db, "outbox") == 0, what="delivery after restart", ev=second)
        # The clerk of the killed pad's last presentation is still signed in (issue 9).
        assert "restored after a restart: idle, clerk A1023" in second.output()
    finally:
        city.close()
    from sync.keys import DeviceKey

    pubkey = DeviceKey.load(db.parent / "device.key").public  # the pad made it at first start
    verify = subprocess.run(
        [sys.executable, "-m", "evaluator", "verify", "--db", str(db), "--pubkey", pubkey.text],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verify.returncode == 0 and "intact over 1 rating" in verify.stdout, verify.stdout
    assert f"signatures good: 1 by key id {pubkey.key_id}" in verify.stdout


def test_demo_runs_headless_and_stops_cleanly(
    tmp_path: Path, broker: Broker, launch: Callable[..., Evaluator]
) -> None:
    db = tmp_path / "ratings.db"
    override = write_override(
        tmp_path / "demo.toml", counter="sim://demo?first=0.2", broker=broker, db=db
    )
    ev = launch(override, display=None)
    wait_until(
        lambda: db_count(db, "presentations") >= 1,
        timeout=60,
        what="the simulated counter to open a presentation",
        ev=ev,
    )
    assert ev.stop() == 0, ev.output()
    assert db_count(db, "ratings") == 0  # nobody pressed anything: nothing was rated


#: A writer that creates a store the way ``Store.__init__`` does (the file first, the schema in a
#: later transaction, then a row), pausing where it said so on stdout until told to go on.
SLOW_STORE_WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
for step in (
    "CREATE TABLE presentations (id TEXT PRIMARY KEY)",
    "INSERT INTO presentations (id) VALUES ('p1')",
):
    print("paused", flush=True)
    sys.stdin.readline()
    conn.execute(step)
print("done", flush=True)
sys.stdin.readline()
"""


def test_wait_until_retries_reads_of_a_store_another_process_is_creating(tmp_path: Path) -> None:
    """The file exists before its tables: a wait keeps re-reading until the read succeeds."""
    db = tmp_path / "ratings.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_STORE_WRITER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline() == "paused\n"  # the file exists, no table yet
        assert db.exists()
        seen: list[int] = []

        def presented() -> bool:
            seen.append(db_count(db, "presentations"))
            return seen[-1] >= 1

        with pytest.raises(AssertionError, match="no such table: presentations"):
            wait_until(presented, timeout=0.3, what="a presentation")
        for expected in ("paused", "done"):
            writer.stdin.write("go\n")
            writer.stdin.flush()
            assert writer.stdout.readline() == f"{expected}\n"
        wait_until(presented, timeout=10, what="a presentation")
        assert seen == [1]  # every read before the schema failed and was retried
    finally:
        writer.kill()
        writer.wait(5)


# -- the app's request handling and views, in process (no threads, no window) -------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    from evaluator.app import App
    from evaluator.config import load_config

    override = tmp_path / "unit.toml"
    override.write_text(
        f'[device]\nid = "unit-1"\nwindow = "3号窗口"\n[counter]\nport = ""\n'
        f'[mqtt]\nenabled = false\n[storage]\npath = "{tmp_path / "r.db"}"\n',
        encoding="utf-8",
    )
    a = App(load_config([REPO / "config" / "demo.toml", override]))
    yield a
    a.shutdown()


def msg(rid: int, rtype: str, **body: Any) -> Any:
    from evaluator.rules.protocol import Message

    return Message(rid, rtype, body)


def test_requests_drive_the_screens_and_replies_never_carry_a_level(app: Any) -> None:
    from evaluator.rules.levels import Level
    from kiosk.view import PressLevel

    assert app.view().screen == "signed_out"
    assert app.handle(msg(1, "clerk.sign_in", clerk={"id": "A1", "name": "李娜"}))["ok"]
    idle = app.view()
    assert (idle.screen, idle.clerk_name, idle.window) == ("idle", "李娜", "3号窗口")
    body = START_BODY
    assert app.handle(msg(2, "evaluation.start", **body)) == {"id": 2, "ok": True}
    shown = app.view()
    assert shown.screen == "presenting"
    assert shown.cases == (("居民身份证换领", "44050020261126000123"),)
    assert (shown.clerk_name, shown.clerk_id) == ("陈晓明", "A1023")
    assert shown.seconds_left == 60
    app.act(PressLevel(Level.VERY_DISSATISFIED))
    reasons = app.view()
    assert reasons.screen == "reasons" and not reasons.can_submit
    assert [r.code for r in reasons.reasons][-1] == "other"
    status = app.handle(msg(3, "status"))
    assert status["state"] == "rating"  # the same as before the press (art. 4)
    assert "level" not in json.dumps(status) and "dissatisfied" not in json.dumps(status)


def test_pause_cancel_and_sign_out(app: Any) -> None:
    body = START_BODY
    assert app.handle(msg(1, "evaluation.cancel"))["error"]["code"] == "not_presenting"
    assert app.handle(msg(2, "window.pause"))["ok"]
    assert app.view().screen == "paused"
    assert app.handle(msg(3, "evaluation.start", **body))["error"]["code"] == "paused"
    app.handle(msg(4, "window.resume"))
    assert app.handle(msg(5, "evaluation.start", **body))["ok"]
    assert app.handle(msg(6, "evaluation.cancel"))["ok"]
    assert app.view().screen == "idle"
    app.handle(msg(7, "clerk.sign_out"))
    assert app.view().screen == "signed_out"
    bad = app.handle(msg(8, "evaluation.start", **{**body, "id_number": "4405"}))
    assert bad["error"]["code"] == "unknown_field" and "id_number" in bad["error"]["message"]
    clerk = {"id": "A1", "name": "李娜", "phone": "138"}
    bad = app.handle(msg(9, "clerk.sign_in", clerk=clerk))
    assert bad["error"]["code"] == "unknown_field" and "phone" in bad["error"]["message"]
    bad = app.handle(msg(10, "window.pause", reason="lunch"))
    assert bad["error"]["code"] == "unknown_field"
    assert app.view().screen == "signed_out"


def test_a_refused_write_shows_a_notice_and_the_citizen_can_press_again(app: Any) -> None:
    from evaluator.rules.levels import Level
    from kiosk import texts
    from kiosk.view import PressLevel

    body = START_BODY
    app.handle(msg(1, "evaluation.start", **body))
    app.store.db.execute("PRAGMA query_only = 1")  # SQLite now refuses every write
    app.act(PressLevel(Level.SATISFIED))
    view = app.view()
    assert view.screen == "presenting" and view.message == texts.STORAGE_FAILED
    assert db_count(app.store.path, "ratings") == 0
    app.store.db.execute("PRAGMA query_only = 0")  # writable again
    time.sleep(app.press_filter.repeat)  # the citizen reads the notice and presses again
    app.act(PressLevel(Level.SATISFIED))
    assert app.view().screen == "thanks"
    assert db_count(app.store.path, "ratings") == 1


def make_app(tmp_path: Path, storage: Path) -> Any:
    from evaluator.app import App
    from evaluator.config import load_config
    from evaluator.rules.clock import FakeClock

    override = tmp_path / "unit.toml"
    override.write_text(
        f'[device]\nid = "unit-1"\n[counter]\nport = "dummy://"\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(storage))}\n",
        encoding="utf-8",
    )
    return App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())


START_BODY_SERIALS = [c["serial"] for c in START_BODY["cases"]]


def test_a_store_refusing_writes_at_a_timeout_never_stops_the_pad(tmp_path: Path) -> None:
    """Disk full / read-only while a screen is open: the press is refused with a notice (nothing
    stored), the timeout still ends the screen, the pad keeps running, shows the fault and tells
    the counter until writes work again; then the kept-back outcome is written."""
    from evaluator.rules.levels import Level
    from kiosk import texts
    from kiosk.view import PressLevel

    app = make_app(tmp_path, tmp_path / "r.db")
    try:
        pid_reply = app.handle(msg(1, "evaluation.start", **START_BODY))
        assert pid_reply["ok"]
        pid = app.session.presentation.id
        app.store.db.execute("PRAGMA query_only = 1")  # every write now fails, like a full disk
        app.act(PressLevel(Level.VERY_SATISFIED))
        assert app.view().message == texts.STORAGE_FAILED and app.session.rating_open
        # Not told while the screen is open: a failed 好评 write would otherwise say which it was.
        assert app.link.sent == [] and app.handle(msg(9, "status"))["faults"] == []
        app.clock.advance(61)
        app.step()  # the timeout: its outcome cannot be written, the pad goes on
        assert app.view().screen == "idle" and app.view().message == texts.STORAGE_FAULT
        finished, fault = app.link.sent[-2:]
        assert finished == {
            "event": "evaluation.finished",
            "serials": ["44050020261126000123"],
            "outcome": "not_rated",
        }
        assert {"event": "device.fault", "fault": "storage", "active": True}.items() <= (
            fault.items()
        )
        status = app.handle(msg(2, "status"))
        assert status["faults"] == ["storage"]
        refused = app.handle(msg(3, "evaluation.start", **START_BODY))
        assert refused["error"]["code"] == "storage"
        app.clock.advance(5)
        app.step()  # still failing: still faulted, nothing raised
        assert app.handle(msg(4, "status"))["faults"] == ["storage"]
        app.store.db.execute("PRAGMA query_only = 0")  # space returns
        app.clock.advance(5)
        app.step()
        assert app.handle(msg(5, "status"))["faults"] == []
        assert app.link.sent[-1]["event"] == "device.fault" and not app.link.sent[-1]["active"]
        row = app.store.presentation_row(pid)
        assert (row["outcome"], row["end_cause"]) == ("not_rated", "timeout")
        assert db_count(app.config.storage.path, "ratings") == 0
        # The citizen touched it and left it unrated: not shown again at the counter (art. 4,
        # 22; issue 15), but the pad takes the next case.
        again = app.handle(msg(6, "evaluation.start", **START_BODY))
        assert again["error"]["code"] == "left_unrated"
        other = {**START_BODY, "cases": [{**START_BODY["cases"][0], "serial": "S-NEXT"}]}
        assert app.handle(msg(7, "evaluation.start", **other))["ok"]
    finally:
        app.shutdown()


def test_a_store_that_cannot_be_opened_shows_the_fault_until_it_can(tmp_path: Path) -> None:
    from kiosk import texts

    blocker = tmp_path / "state"
    blocker.write_text("a file where the store's directory should be", encoding="utf-8")
    app = make_app(tmp_path, blocker / "r.db")
    try:
        assert app.ledger.fault
        app.handle(msg(1, "clerk.sign_in", clerk={"id": "A1", "name": "李娜"}))
        view = app.view()
        assert view.screen == "idle" and view.message == texts.STORAGE_FAULT
        status = app.handle(msg(2, "status"))
        assert (status["faults"], status["outbox"]) == (["storage"], None)
        assert app.handle(msg(3, "evaluation.start", **START_BODY))["error"]["code"] == "storage"
        blocker.unlink()
        app.clock.advance(5)
        app.step()
        assert not app.ledger.fault and app.view().message == ""
        assert app.handle(msg(4, "evaluation.start", **START_BODY))["ok"]
    finally:
        app.shutdown()


def test_cancels_and_re_presentations_are_kept_with_clerk_cause_and_time(tmp_path: Path) -> None:
    app = make_app(tmp_path, tmp_path / "r.db")
    try:
        app.handle(msg(1, "evaluation.start", **START_BODY))
        first = app.session.presentation.id
        app.clock.advance(2)
        assert app.handle(msg(2, "evaluation.cancel"))["ok"]
        app.handle(msg(3, "evaluation.start", **START_BODY))
        second = app.session.presentation.id
        app.handle(msg(4, "window.pause"))
        cancelled = app.store.presentation_row(first)
        assert cancelled["outcome"] == "cancelled"
        assert cancelled["end_cause"] == "evaluation.cancel"
        assert cancelled["clerk_id"] == "A1023" and cancelled["ended_at"]
        again = app.store.presentation_row(second)
        assert again["represents"] == [first] and again["end_cause"] == "window.pause"
        [clerk] = audited_stats(app.store)["clerks"]
        assert (clerk["cancelled"], clerk["represented"]) == (2, 1)
    finally:
        app.shutdown()


@pytest.mark.parametrize("level_name", ["VERY_SATISFIED", "DISSATISFIED", "VERY_DISSATISFIED"])
def test_nothing_the_clerk_side_reads_tells_the_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, level_name: str
) -> None:
    """No reply, event, status or INFO log names a level, a score or a reason; and from the
    press until the 谢谢 has ended every level reads the same (``rating``, the same refusals,
    no event), though a 好评 is on 谢谢 while a 差评 is on its reasons (art. 4)."""
    import logging

    from evaluator.rules.levels import Level
    from kiosk.view import PressLevel, Submit, ToggleReason

    level = Level[level_name]
    app = make_app(tmp_path, tmp_path / "r.db")
    caplog.set_level(logging.INFO)
    try:
        replies = [app.handle(msg(1, "evaluation.start", **START_BODY))]
        app.act(PressLevel(level))
        replies += [app.handle(msg(i, t)) for i, t in enumerate(
            ["status", "evaluation.cancel", "window.pause", "clerk.sign_out"], start=2)]
        if level.is_bad:
            code = "213" if level is Level.DISSATISFIED else "115"
            app.act(ToggleReason(code))
            app.act(Submit())
        replies.append(app.handle(msg(9, "status")))
        assert app.link.sent == []  # nothing told before the 谢谢 ends
        app.clock.advance(app.config.session.thanks + 0.1)
        app.step()
        replies.append(app.handle(msg(10, "status")))
        seen = json.dumps([replies, app.link.sent], ensure_ascii=False) + "\n".join(
            r.getMessage() for r in caplog.records if r.levelno >= logging.INFO
        )
        for word in ("satisfied", "满意", "score", "level", "差评", "好评", "reason"):
            assert word not in seen.replace("levels", ""), word
        # From the press until the 谢谢 ends, the same for every level: everything refused.
        assert replies[1]["state"] == replies[5]["state"] == "rating"
        assert {r["error"]["code"] for r in replies[2:5]} == {"citizen_rating"}
        assert replies[6]["state"] == "idle"
        assert without_head(app.link.sent) == [
            {"event": "evaluation.finished", "serials": START_BODY_SERIALS, "outcome": "rated"}
        ]
    finally:
        app.shutdown()


def test_a_fault_inside_one_request_refuses_that_request_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, tmp_path / "r.db")
    try:

        def broken(request: Any) -> Any:
            raise KeyError("a bug")

        monkeypatch.setattr(app.session, "start", broken)
        reply = app.handle(msg(1, "evaluation.start", **START_BODY))
        assert (reply["ok"], reply["error"]["code"]) == (False, "internal")
        monkeypatch.undo()
        assert app.handle(msg(2, "evaluation.start", **START_BODY))["ok"]
    finally:
        app.shutdown()


def test_a_damaged_store_at_start_is_kept_aside_and_reported_to_the_counter(
    tmp_path: Path,
) -> None:
    db = tmp_path / "r.db"
    db.write_bytes(b"")  # a store that was there and is now empty
    app = make_app(tmp_path, db)
    try:
        status = app.handle(msg(1, "status"))
        assert status["faults"] == ["store_gap"]
        kept = list(tmp_path.glob("r.db.damaged-*"))
        assert kept and str(kept[0]) in app.store_gap
        app._tell_store_gap()  # what run() does once the counter link is up
        assert app.link.sent[-1]["fault"] == "store_gap" and app.link.sent[-1]["active"]
        assert app.handle(msg(2, "evaluation.start", **START_BODY))["ok"]  # the pad goes on
    finally:
        app.shutdown()


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE presentations SET serials = 'oops' WHERE outcome IS NULL",
        "UPDATE presentations SET clerk_id = CAST(x'ff00ff' AS TEXT) WHERE outcome IS NULL",
        "UPDATE presentations SET rating_ids = '{' WHERE outcome IS NULL",
    ],
)
def test_a_damaged_presentation_row_never_stops_the_pad_starting(
    tmp_path: Path, damage: str
) -> None:
    db = tmp_path / "r.db"
    app = make_app(tmp_path, db)
    app.handle(msg(1, "evaluation.start", **START_BODY))  # open when the power goes
    app.shutdown()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS presentations_fixed_facts")
        conn.execute(damage)
    finally:
        conn.close()
    again = make_app(tmp_path, db)
    try:
        assert not again.ledger.fault
        assert again.handle(msg(2, "status"))["ok"]
    finally:
        again.shutdown()


def test_a_storage_fault_clears_only_with_room_for_a_rating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny probe write succeeds on a nearly full disk: the fault must not flap off then."""
    import shutil

    import evaluator.app as app_module

    app = make_app(tmp_path, tmp_path / "r.db")
    try:
        app.store.db.execute("PRAGMA query_only = 1")
        assert app.handle(msg(1, "evaluation.start", **START_BODY))["error"]["code"] == "storage"
        app.store.db.execute("PRAGMA query_only = 0")  # writes work, but the disk is "full":
        free = shutil.disk_usage(tmp_path).free
        monkeypatch.setattr(app_module, "MIN_FREE_BYTES", free + (1 << 40))
        app.clock.advance(5)
        app.step()
        assert app.handle(msg(2, "status"))["faults"] == ["storage"]
        assert app.handle(msg(3, "evaluation.start", **START_BODY))["error"]["code"] == "storage"
        monkeypatch.setattr(app_module, "MIN_FREE_BYTES", 1 << 20)  # room again
        app.clock.advance(5)
        app.step()
        assert app.handle(msg(4, "status"))["faults"] == []
        assert app.handle(msg(5, "evaluation.start", **START_BODY))["ok"]
    finally:
        app.shutdown()


def _event(app: Any, kind: str, level: Any) -> Any:
    """One press of ``level``'s button as a real SDL event of the given input kind."""
    import pygame

    from evaluator.rules.levels import BUTTON_ORDER
    from kiosk.view import PressLevel

    if kind == "key":
        key = (pygame.K_1, pygame.K_2, pygame.K_3, pygame.K_4, pygame.K_5)[
            BUTTON_ORDER.index(level)
        ]
        return pygame.event.Event(pygame.KEYDOWN, key=key, scancode=0, mod=0, unicode="")
    rect = app.screen.layout.find(PressLevel(level)).rect
    if kind == "mouse":
        return pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1, touch=False)
    width, height = app.screen.size
    x, y = rect.centerx / width, rect.centery / height
    return pygame.event.Event(pygame.FINGERDOWN, x=x, y=y, dx=0, dy=0, touch_id=0, finger_id=0)


def _back_event(app: Any, kind: str) -> Any:
    """返回 on the reason screen as a real SDL event of the given input kind."""
    import pygame

    from kiosk.view import Back

    if kind == "key":
        return pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, scancode=0, mod=0)
    rect = app.screen.layout.find(Back()).rect
    if kind == "mouse":
        return pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1, touch=False)
    width, height = app.screen.size
    x, y = rect.centerx / width, rect.centery / height
    return pygame.event.Event(pygame.FINGERDOWN, x=x, y=y, dx=0, dy=0, touch_id=0, finger_id=0)


@pytest.mark.parametrize("kind", ["key", "mouse", "touch"])
def test_the_press_filter_ignores_a_second_press_aimed_at_the_previous_screen(
    tmp_path: Path, kind: str
) -> None:
    """A double tap on 不满意 then 满意 (or a child's burst): the second press lands within the
    guard of the reason screen and does nothing; a deliberate press after it counts."""
    from evaluator.rules.levels import Level
    from kiosk.screen import Screen

    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
        app._show()
        app.clock.advance(1.0)  # the citizen looks at the screen first
        app.handle_events([_event(app, kind, Level.DISSATISFIED)])  # the reason screen shows
        assert app.session.state.value == "choosing_reasons"
        # The same finger or key again at once: 返回 (Escape) on the new screen is ignored.
        app.handle_events([_back_event(app, kind)])
        assert app.session.state.value == "choosing_reasons" and app.press_filter.ignored == 1
        app.clock.advance(app.press_filter.guard)
        app.handle_events([_back_event(app, kind)])  # a deliberate 返回 counts
        assert app.session.state.value == "presenting"
        app.clock.advance(app.press_filter.guard)
        app.handle_events([_event(app, kind, Level.SATISFIED)])
        assert app.session.state.value == "thanks"
        with contextlib.closing(sqlite3.connect(app.config.storage.path)) as conn:
            [(record,)] = conn.execute("SELECT record FROM ratings").fetchall()
        assert json.loads(record)["level"] == "satisfied"
    finally:
        app.shutdown()


def test_the_press_filter_applies_to_gpio_buttons_too(tmp_path: Path) -> None:
    from evaluator.rules.levels import Level
    from kiosk.screen import Screen

    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
        app._show()
        app.presses.put(Level.SATISFIED)  # what a gpiozero callback queues
        app.step()
        assert app.session.rating_open and app.press_filter.ignored == 1  # too soon: ignored
        app.clock.advance(app.press_filter.guard)
        app.presses.put(Level.SATISFIED)
        app.step()
        assert app.session.state.value == "thanks"
    finally:
        app.shutdown()


# -- screens a citizen can finish by touch: 常用意见 for 其他, 分项评价 for a theme (issue 6) -----


def _tap(app: Any, kind: str, action: Any) -> None:
    """One tap on ``action``'s target as a real SDL event (mouse click or finger) through the
    app, then the time a citizen takes before the next tap (past the press filter's guard)."""
    import pygame

    from tests.kiosk.screen_views import turn_to

    # The reasons may take pages: turn to the one showing it with taps on the pager.
    target = turn_to(app.screen, action, lambda event: app.handle_events([event]), kind)
    rect = target.rect
    if kind == "mouse":
        event = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1, touch=False)
    else:
        width, height = app.screen.size
        x, y = rect.centerx / width, rect.centery / height
        event = pygame.event.Event(pygame.FINGERDOWN, x=x, y=y, dx=0, dy=0, touch_id=0, finger_id=0)
    app.handle_events([event])
    app.clock.advance(max(app.press_filter.guard, 0.2))


def _records(app: Any) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(app.config.storage.path)) as conn:
        rows = conn.execute("SELECT record FROM ratings ORDER BY rowid").fetchall()
    return [json.loads(record) for (record,) in rows]


@pytest.mark.parametrize("kind", ["mouse", "touch"])
def test_other_is_finished_by_touch_with_common_phrases(tmp_path: Path, kind: str) -> None:
    """其他 without a keyboard: the phrases appear with 其他, a tap appends one, a second tap
    takes it out, typed text still goes in, and 提交 stores the phrase as the comment."""
    import pygame

    from evaluator.rules.levels import Level
    from evaluator.rules.phrases import shipped_phrases
    from evaluator.rules.reasons import OTHER_CODE
    from kiosk.screen import Screen
    from kiosk.view import PressLevel, Submit, TogglePhrase, ToggleReason

    first, second = shipped_phrases().phrases[:2]
    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
        app._show()
        app.clock.advance(1.0)
        _tap(app, kind, PressLevel(Level.DISSATISFIED))
        layout = app.screen.layout
        assert layout.screen == "reasons"
        assert not any(isinstance(t.action, TogglePhrase) for t in layout.targets)
        _tap(app, kind, ToggleReason(OTHER_CODE))
        shown = [a.text for a in app.screen.layout.page_of if isinstance(a, TogglePhrase)]
        assert shown == list(shipped_phrases().phrases)
        assert not app.screen.layout.find(Submit()).enabled  # 其他 with no text yet
        _tap(app, kind, TogglePhrase(first))
        assert app.view().comment == first and app.view().can_submit
        _tap(app, kind, TogglePhrase(second))
        assert app.view().comment == f"{first}；{second}"
        _tap(app, kind, TogglePhrase(first))  # again: taken out
        assert app.view().comment == second
        assert [p.selected for p in app.view().phrases[:2]] == [False, True]
        # A keyboard still types into the same text.
        app.handle_events([pygame.event.Event(pygame.TEXTINPUT, text="人太多")])
        _tap(app, kind, TogglePhrase(first))
        assert app.view().comment == f"{second}人太多；{first}"
        _tap(app, kind, Submit())
        assert app.session.state.value == "thanks"
        [record] = _records(app)
        assert record["comment"] == f"{second}人太多；{first}"
        assert [r["code"] for r in record["reasons"]] == [OTHER_CODE]
    finally:
        app.shutdown()


@pytest.mark.parametrize("kind", ["mouse", "touch"])
def test_a_phrase_alone_is_enough_to_submit(tmp_path: Path, kind: str) -> None:
    from evaluator.rules.levels import Level
    from evaluator.rules.phrases import shipped_phrases
    from evaluator.rules.reasons import OTHER_CODE
    from kiosk.screen import Screen
    from kiosk.view import PressLevel, Submit, TogglePhrase, ToggleReason

    phrase = shipped_phrases().phrases[-1]
    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
        app._show()
        app.clock.advance(1.0)
        _tap(app, kind, PressLevel(Level.VERY_DISSATISFIED))
        _tap(app, kind, ToggleReason(OTHER_CODE))
        _tap(app, kind, TogglePhrase(phrase))
        _tap(app, kind, Submit())
        [record] = _records(app)
        assert record["level"] == "very_dissatisfied" and record["comment"] == phrase
    finally:
        app.shutdown()


def test_a_phrase_that_would_pass_the_cap_is_disabled_and_does_nothing(tmp_path: Path) -> None:
    import pygame

    from evaluator.rules.levels import Level
    from evaluator.rules.phrases import shipped_phrases
    from evaluator.rules.reasons import COMMENT_MAX, OTHER_CODE
    from kiosk.screen import Screen
    from kiosk.view import PressLevel, TogglePhrase, ToggleReason

    phrase = shipped_phrases().phrases[0]
    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
        app._show()
        app.clock.advance(1.0)
        _tap(app, "touch", PressLevel(Level.DISSATISFIED))
        _tap(app, "touch", ToggleReason(OTHER_CODE))
        typed = "字" * (COMMENT_MAX - len(phrase))  # the phrase fits, its separator does not
        app.handle_events([pygame.event.Event(pygame.TEXTINPUT, text=typed)])
        target = app.screen.layout.find(TogglePhrase(phrase))
        assert target is not None and not target.enabled
        assert app.screen.hit_test(target.rect.center) is None
        app.act(TogglePhrase(phrase))  # even sent directly, the text is not cut or overrun
        assert app.view().comment == typed
        app.handle_events([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_BACKSPACE, mod=0)])
        assert app.screen.layout.find(TogglePhrase(phrase)).enabled  # room again
    finally:
        app.shutdown()


THEME_CASES = [
    {
        "serial": f"4405002026112600020{n}",
        "matter_code": code,
        "matter_name": name,
        "kind": "instant",
    }
    for n, (code, name) in enumerate(
        [
            ("11440500007000000X4440511003000", "食品经营许可证核发"),
            ("11440500MB2C9300XR4442111017000", "营业执照设立登记"),
            ("11440500MB2C9300XR4442111023000", "公共场所卫生许可"),
        ]
    )
]
THEME_BODY = {
    **START_BODY,
    "cases": THEME_CASES,
    "theme": {"code": "YJS-0007", "name": "开办餐饮店"},
}


@pytest.mark.parametrize("kind", ["mouse", "touch"])
def test_a_theme_is_rated_item_by_item_after_a_tap_on_its_button(tmp_path: Path, kind: str) -> None:
    """分项评价 (art. 31): each linked item gets its own rating, the screen names the item."""
    from evaluator.rules.levels import Level
    from kiosk.screen import Screen
    from kiosk.view import ExpandTheme, PressLevel, Submit, ToggleReason

    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        assert app.handle(msg(1, "evaluation.start", **THEME_BODY))["ok"]
        app._show()
        app.clock.advance(1.0)
        assert app.screen.layout.find(PressLevel(Level.SATISFIED)) is not None  # overall: 1 tap
        _tap(app, kind, ExpandTheme())
        seen = []
        for level in (Level.SATISFIED, Level.VERY_SATISFIED):
            view = app.view()
            seen.append((view.item_index, view.item_count, view.cases, view.can_expand))
            assert app.screen.layout.find(ExpandTheme()) is None
            _tap(app, kind, PressLevel(level))
        view = app.view()
        seen.append((view.item_index, view.item_count, view.cases, view.can_expand))
        _tap(app, kind, PressLevel(Level.DISSATISFIED))
        reason = next(r for r in app.view().reasons if r.target != "other")
        _tap(app, kind, ToggleReason(reason.code))
        _tap(app, kind, Submit())
        assert app.session.state.value == "thanks"
        assert seen == [
            (i + 1, 3, ((c["matter_name"], c["serial"]),), False) for i, c in enumerate(THEME_CASES)
        ]
        records = _records(app)
        assert [[c["serial"] for c in r["cases"]] for r in records] == [
            [c["serial"]] for c in THEME_CASES
        ]
        assert [r["level"] for r in records] == ["satisfied", "very_satisfied", "dissatisfied"]
        assert all(r["theme"]["name"] == "开办餐饮店" for r in records)
    finally:
        app.shutdown()


@pytest.mark.parametrize("kind", ["mouse", "touch"])
def test_a_theme_is_still_rated_overall_in_one_press(tmp_path: Path, kind: str) -> None:
    from evaluator.rules.levels import Level
    from kiosk.screen import Screen
    from kiosk.view import ExpandTheme, PressLevel

    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        assert app.handle(msg(1, "evaluation.start", **THEME_BODY))["ok"]
        app._show()
        app.clock.advance(1.0)
        assert app.screen.layout.find(ExpandTheme()) is not None
        _tap(app, kind, PressLevel(Level.SATISFIED))
        [record] = _records(app)
        assert [c["serial"] for c in record["cases"]] == [c["serial"] for c in THEME_CASES]
    finally:
        app.shutdown()


@pytest.mark.parametrize(
    "body",
    [
        START_BODY,  # no theme
        {  # a batch of one matter, not a theme
            **START_BODY,
            "cases": [
                {**START_BODY["cases"][0], "serial": f"4405002026112600030{n}"} for n in (1, 2)
            ],
        },
        {**THEME_BODY, "cases": THEME_CASES[:1]},  # a theme of one case
    ],
    ids=["one_case", "batch", "theme_of_one"],
)
def test_no_itemise_button_without_a_theme_of_several_cases(tmp_path: Path, body: Any) -> None:
    from kiosk.screen import Screen
    from kiosk.view import ExpandTheme

    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        assert app.handle(msg(1, "evaluation.start", **body))["ok"]
        app._show()
        assert app.screen.layout.find(ExpandTheme()) is None and not app.view().can_expand
    finally:
        app.shutdown()


def test_the_pad_offers_the_phrases_of_its_configured_file(tmp_path: Path) -> None:
    from evaluator.app import App
    from evaluator.config import load_config
    from evaluator.rules.clock import FakeClock

    (tmp_path / "mine.toml").write_text(
        'version = "hall 1"\n[[phrase]]\ntext = "叫号不准"\n[[phrase]]\ntext = "没有座位"\n',
        encoding="utf-8",
    )
    site = tmp_path / "site.toml"
    site.write_text(
        f'[device]\nid = "unit-1"\n[counter]\nport = "dummy://"\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        '[session]\nphrases_file = "mine.toml"\n',
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", site]), clock=FakeClock())
    try:
        assert [p for p in app.phrases.phrases] == ["叫号不准", "没有座位"]
    finally:
        app.shutdown()


# -- the idle screen: the window's static QR and the screensaver (issue 6) ----------------------

STATIC_QR = "https://hcp.example.org/w/440500-hall1-w12"


def idle_app(tmp_path: Path, idle: str) -> Any:
    """An app on a real dummy Screen (FakeClock, dummy:// counter) with ``idle`` as [idle]."""
    from evaluator.app import App
    from evaluator.config import load_config
    from evaluator.rules.clock import FakeClock
    from kiosk.screen import Screen

    site = tmp_path / "site.toml"
    site.write_text(
        f'[device]\nid = "unit-1"\nwindow = "12号窗口"\n[counter]\nport = "dummy://"\n'
        f"[mqtt]\nenabled = false\n[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f"[idle]\n{idle}\n",
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", site]), clock=FakeClock())
    app.screen = Screen(driver="dummy")
    return app


def _decoded_qr(app: Any) -> list[str]:
    import pygame
    import zxingcpp
    from PIL import Image

    surface = app.screen.surface
    image = Image.frombytes("RGB", surface.get_size(), pygame.image.tobytes(surface, "RGB"))
    qr = zxingcpp.BarcodeFormat.QRCode  # a QR only: other formats "see" codes in hanzi
    return [r.text for r in zxingcpp.read_barcodes(image, formats=qr)]


def test_the_idle_screen_shows_the_configured_static_qr(tmp_path: Path) -> None:
    """Signed in and waiting: the real pixels hold a QR that decodes to [idle] static_qr; the
    rating screen has none, and without the key the idle screen has none either."""
    import pygame
    import zxingcpp
    from PIL import Image

    app = idle_app(tmp_path, f"static_qr = {json.dumps(STATIC_QR)}")
    try:
        app.handle(msg(1, "clerk.sign_in", clerk={"id": "A1", "name": "李娜"}))
        _loop_turn(app)
        assert app.screen.view.screen == "idle" and app.screen.view.qr == STATIC_QR
        crop = app.screen.surface.subsurface(app.screen.layout.boxes["qr"])
        assert crop.get_width() >= 120
        image = Image.frombytes("RGB", crop.get_size(), pygame.image.tobytes(crop, "RGB"))
        qr = zxingcpp.BarcodeFormat.QRCode
        assert [r.text for r in zxingcpp.read_barcodes(image, formats=qr)] == [STATIC_QR]
        assert app.handle(msg(2, "evaluation.start", **START_BODY))["ok"]
        _loop_turn(app)
        assert app.screen.view.screen == "presenting" and _decoded_qr(app) == []
    finally:
        app.shutdown()
    (tmp_path / "plain").mkdir()
    plain = idle_app(tmp_path / "plain", "")
    try:
        plain.handle(msg(1, "clerk.sign_in", clerk={"id": "A1", "name": "李娜"}))
        _loop_turn(plain)
        assert plain.screen.view.screen == "idle" and _decoded_qr(plain) == []
    finally:
        plain.shutdown()


def _finger(x: float = 0.5, y: float = 0.5) -> Any:
    import pygame

    return pygame.event.Event(pygame.FINGERDOWN, x=x, y=y, dx=0, dy=0, touch_id=0, finger_id=0)


def _key1() -> Any:
    import pygame

    return pygame.event.Event(pygame.KEYDOWN, key=pygame.K_1, scancode=30, mod=0, unicode="1")


def _loop_turn(app: Any) -> None:
    """One turn of App.run's loop without the wait: work, then draw what changed."""
    app.step()
    app._show()


@pytest.mark.parametrize("signed_in", [True, False], ids=["idle", "signed_out"])
def test_the_screensaver_starts_after_the_configured_time_and_a_touch_wakes_it(
    tmp_path: Path, signed_in: bool
) -> None:
    """No trigger or touch for screensaver_after: the screensaver (drawn dark); a status poll
    does not count as activity; a finger or a key wakes the pad to the screen it left and
    rates nothing; the time then starts again."""
    app = idle_app(tmp_path, 'screensaver_after = "2m"')
    try:
        if signed_in:
            app.handle(msg(1, "clerk.sign_in", clerk={"id": "A1", "name": "李娜"}))
        awake = "idle" if signed_in else "signed_out"
        _loop_turn(app)
        app.clock.advance(119.0)
        app.handle(msg(2, "status"))  # the business system polls: not a citizen, not a trigger
        _loop_turn(app)
        assert app.screen.view.screen == awake
        assert 0.9 < app._sleep_for() <= 1.01  # the loop wakes for the screensaver's start
        app.clock.advance(1.0)
        _loop_turn(app)
        assert app.screen.view.screen == "screensaver"
        assert tuple(app.screen.surface.get_at((1, 1)))[:3] == (0, 0, 0)
        for wake in (_finger(), _key1()):
            app.handle_events([wake])
            assert app.screen.view.screen == awake
            assert app.view().screen == awake
            app.clock.advance(119.5)
            _loop_turn(app)
            assert app.screen.view.screen == awake  # the time started again at the touch
            app.clock.advance(0.5)
            _loop_turn(app)
            assert app.screen.view.screen == "screensaver"
        assert app.session.presentation is None and db_count(app.store.path, "ratings") == 0
    finally:
        app.shutdown()


@pytest.mark.parametrize("wake", ["finger", "key"])
def test_the_touch_that_wakes_the_screensaver_rates_nothing(tmp_path: Path, wake: str) -> None:
    """A trigger arrives while the screensaver shows: the rating screen at once.  A touch or
    key 1 that woke the pad just before is not a rating of that presentation."""
    from evaluator.rules.levels import Level

    app = idle_app(tmp_path, 'screensaver_after = "1m"')
    try:
        app.handle(msg(1, "clerk.sign_in", clerk={"id": "A1", "name": "李娜"}))
        _loop_turn(app)
        app.clock.advance(60.0)
        _loop_turn(app)
        assert app.screen.view.screen == "screensaver"
        app.handle_events([_finger(0.1, 0.8) if wake == "finger" else _key1()])
        assert app.screen.view.screen == "idle"
        app.clock.advance(60.0)
        _loop_turn(app)
        assert app.screen.view.screen == "screensaver"
        app.inbox.put(msg(2, "evaluation.start", **START_BODY))  # the counter link's thread
        _loop_turn(app)
        assert app.screen.view.screen == "presenting"  # at once, no touch needed
        assert app.link.sent[-1] == {"id": 2, "ok": True}
        assert db_count(app.store.path, "ratings") == 0
        app.clock.advance(app.press_filter.guard)
        app.handle_events([_event(app, "touch", Level.SATISFIED)])
        assert app.session.state.value == "thanks" and len(_records(app)) == 1
        app.clock.advance(app.config.session.thanks + 0.5)
        _loop_turn(app)
        assert app.screen.view.screen == "idle"  # a rating restarts the time
        app.clock.advance(59.0)
        _loop_turn(app)
        assert app.screen.view.screen == "idle"
    finally:
        app.shutdown()


def test_the_screensaver_drifts_and_the_idle_loop_still_blocks(tmp_path: Path) -> None:
    """In the screensaver the label moves each minute (a new view, drawn), the loop sleeps until
    then (capped at 1 s: never a busy loop); "0s" turns the screensaver off; a GPIO button
    press wakes it like a touch."""
    from evaluator.app import SAVER_STEP_SECONDS
    from evaluator.rules.levels import Level

    app = idle_app(tmp_path, 'screensaver_after = "30s"')
    try:
        _loop_turn(app)
        app.clock.advance(30.0)
        _loop_turn(app)
        first = app.screen.layout.boxes["saver"]
        assert app.screen.view.saver_step == 0
        assert app._sleep_for() > 0.5
        app.clock.advance(SAVER_STEP_SECONDS)
        _loop_turn(app)
        assert app.screen.view.saver_step == 1
        assert app.screen.layout.boxes["saver"].topleft != first.topleft
        app.presses.put(Level.SATISFIED)  # what a gpiozero callback queues
        _loop_turn(app)
        assert app.screen.view.screen == "signed_out" and db_count(app.store.path, "ratings") == 0
    finally:
        app.shutdown()
    (tmp_path / "never").mkdir()
    never = idle_app(tmp_path / "never", 'screensaver_after = "0s"')
    try:
        _loop_turn(never)
        never.clock.advance(7 * 24 * 3600.0)
        _loop_turn(never)
        assert never.screen.view.screen == "signed_out" and never._sleep_for() == 1.0
    finally:
        never.shutdown()


# -- a self-service terminal (自助终端, art. 18/23, art. 9; issue 6) ------------------------------

TERMINAL_START = {
    "id": 41,
    "type": "evaluation.start",
    "stage": "deliver",
    "terminal": "ZZ-0107",
    "agencies": ["汕头市人力资源和社会保障局"],
    "cases": [
        {
            "serial": "4405002026112600041",
            "matter_code": "114405000072194508344011100400Y",
            "matter_name": "社会保险参保缴费记录查询",
            "kind": "instant",
        }
    ],
}


def test_a_self_service_terminal_rates_the_matter_through_the_dummy_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The terminal's software sends ``terminal`` instead of ``clerk`` on the shipped dummy://
    link; the real screen shows 终端机编号 where the clerk was, a 差评 offers matter reasons only,
    and the stored record has channel 5, the terminal, no clerk, and passes the schema."""
    import pygame
    from jsonschema import Draft202012Validator

    from evaluator.cli import main
    from evaluator.rules.levels import Level
    from evaluator.rules.records import verify_chain
    from kiosk.palette import INK
    from kiosk.screen import Screen
    from kiosk.view import PressLevel, Submit, ToggleReason

    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        app.link.feed(TERMINAL_START)
        app.step()
        assert app.link.sent[-1] == {"id": 41, "ok": True}
        app._show()
        view = app.view()
        assert (view.screen, view.terminal, view.clerk_name, view.clerk_id) == (
            "presenting", "ZZ-0107", "", ""
        )  # fmt: skip
        boxes = app.screen.layout.boxes
        assert "terminal" in boxes and "clerk" not in boxes
        box = boxes["terminal"]
        assert box.left > boxes["case"].right and box.top == boxes["case"].top
        inked = pygame.mask.from_threshold(
            app.screen.surface.subsurface(box), INK, (1, 1, 1, 255)
        ).count()
        assert inked > 0, "nothing written in the terminal panel"

        app.clock.advance(1.0)
        _tap(app, "mouse", PressLevel(Level.DISSATISFIED))
        assert app.screen.layout.screen == "reasons"
        offered = [r for r in app.view().reasons if r.code != "other"]
        assert offered and {r.target for r in offered} == {"matter"}
        chosen = offered[0]
        _tap(app, "touch", ToggleReason(chosen.code))
        _tap(app, "touch", Submit())
        assert app.session.state.value == "thanks"
        [record] = _records(app)
        assert (record["channel"], record["terminal"], record["clerk"]) == (5, "ZZ-0107", None)
        assert record["targets"] == ["matter"] and record["level"] == "dissatisfied"
        assert record["reasons"] == [{"code": chosen.code, "text": chosen.text, "target": "matter"}]
        assert record["cases"] == TERMINAL_START["cases"] and record["area_code"] == "440500"
        schema = json.loads((REPO / "docs/schemas/rating.schema.json").read_text("utf-8"))
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(record)]
        assert not errors, errors
        assert verify_chain(app.store.records()) is None
        assert not [f for f in app.link.sent if "event" in f]  # told when the 谢谢 ends (art. 4)
        app.clock.advance(app.config.session.thanks + 0.1)
        app.step()
        events = [f for f in app.link.sent if "event" in f]
        assert without_head(events) == [
            {"event": "evaluation.finished", "serials": ["4405002026112600041"], "outcome": "rated"}
        ]
        assert "dissatisfied" not in json.dumps(app.link.sent)
    finally:
        app.shutdown()

    capsys.readouterr()
    assert main(["stats", "--db", str(tmp_path / "r.db"), "--format", "json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["device"]["mean_score"] == 3
    [matter] = stats["matters"]
    assert matter["matter_code"] == "114405000072194508344011100400Y" and matter["mean_score"] == 3


def test_a_terminal_screen_shows_the_terminal_it_was_sent(tmp_path: Path) -> None:
    """The number drawn is the request's: two terminals give two different panels, and a window
    request on the same pad shows the clerk panel again, with no terminal."""
    import pygame

    from kiosk.screen import Screen

    app = make_app(tmp_path, tmp_path / "r.db")
    app.screen = Screen(driver="dummy")
    try:
        panels = []
        for rid, number in ((1, "ZZ-0107"), (2, "自助终端08")):
            assert app.handle(msg(rid, "evaluation.start", **{
                **{k: v for k, v in TERMINAL_START.items() if k not in ("id", "type")},
                "terminal": number,
                "cases": [dict(TERMINAL_START["cases"][0], serial=f"T-{rid}")],
            }))["ok"]  # fmt: skip
            app._show()
            assert app.view().terminal == number
            box = app.screen.layout.boxes["terminal"]
            panels.append(pygame.image.tobytes(app.screen.surface.subsurface(box), "RGB"))
            assert app.handle(msg(rid + 10, "evaluation.cancel"))["ok"]
        assert panels[0] != panels[1]
        assert app.handle(msg(3, "evaluation.start", **START_BODY))["ok"]
        app._show()
        boxes = app.screen.layout.boxes
        assert "clerk" in boxes and "terminal" not in boxes and app.view().terminal == ""
    finally:
        app.shutdown()


def test_a_store_failing_at_the_press_tells_the_counter_nothing_of_the_level(
    tmp_path: Path,
) -> None:
    """A 好评 is written at the press, a 差评 only at submit: if the store fails then, what the
    counter reads while the screen is open must be the same for every level."""
    from evaluator.rules.levels import Level
    from kiosk.view import PressLevel

    seen = set()
    for n, level in enumerate(Level):
        (tmp_path / str(n)).mkdir()
        app = make_app(tmp_path / str(n), tmp_path / str(n) / "r.db")
        try:
            assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
            app.store.db.execute("PRAGMA query_only = 1")
            app.act(PressLevel(level))
            app.step()
            status = app.handle(msg(2, "status"))
            seen.add(json.dumps([app.link.sent, status], sort_keys=True))
        finally:
            app.shutdown()
    assert len(seen) == 1, seen


@pytest.mark.parametrize("first", ["SATISFIED", "DISSATISFIED"])
def test_status_during_a_theme_rated_item_by_item_tells_nothing_of_the_first_item(
    tmp_path: Path, first: str
) -> None:
    """A theme's item rated 好评 is stored at the press while the screen stays open; a 差评 waits
    for its reasons.  A live outbox count in ``status`` told the counter which (art. 4): the
    status of an open rating screen is the same whatever was pressed on it."""
    from evaluator.rules.levels import Level
    from kiosk.view import ExpandTheme, PressLevel

    app = make_app(tmp_path, tmp_path / "r.db")
    try:
        assert app.handle(msg(1, "evaluation.start", **THEME_BODY))["ok"]
        before = app.handle(msg(2, "status"))
        app.act(ExpandTheme())
        app.clock.advance(1.0)
        app.act(PressLevel(Level[first]))
        after = app.handle(msg(3, "status"))
        assert after == {**before, "id": 3}
        stored = len(_records(app))
        assert stored == (1 if first == "SATISFIED" else 0)  # the difference is real
    finally:
        app.shutdown()
