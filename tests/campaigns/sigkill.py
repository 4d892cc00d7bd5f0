"""SIGKILL campaign: kill the real pad at random moments around citizen presses, then audit.

    .venv/bin/python -m tests.campaigns.sigkill --kills 200 [--seed N] [--keep DIR]

Each round starts the real process (``python -m evaluator run`` with ``config/demo.toml`` and an
override, like the end-to-end tests) on a private Xvfb display, with the counter on a fresh socat
pty pair and the city on a private mosquitto that is randomly up or down.  The counter signs a
clerk in and opens a rating screen for a new case; the citizen presses a level with a real X key
event (xdotool); the pad is SIGKILLed at one of these moments (in turn, jittered at random):

* ``before``   — the rating screen is open, nothing pressed;
* ``during``   — the key event is on its way: from 4 ms before to 1 ms after the median
  xdotool-start→rating-committed time of the earlier ``after``/``thanks`` rounds (0–60 ms
  until one was measured), so these kills land around the rating's commit and the
  presentation's close (one transaction);
* ``thanks``   — during the 谢谢 that follows the commit (0 to :data:`THANKS` seconds after the
  rating was seen in the store): the outcome is durable and kept as not yet told, the counter
  has heard nothing yet (art. 4: it hears when the 谢谢 ends), the sync publishes or waits for
  an ack; a later start must tell the counter;
* ``after``    — at once after the counter read ``evaluation.finished rated`` (the 谢谢 has
  ended: the outcome told and forgotten in the kept window state).

A rating's commit is seen by polling the store (read-only, as the audit reads it): the counter
hears of a rating only when its 谢谢 ends (art. 4), so its event no longer times the commit.
The pad's 谢谢 is :data:`THANKS` (shorter than shipped, so the rounds stay short).

At the end a pad runs with the broker up and a city that acknowledges every rating, until the
outbox is empty; then the store is audited:

* every case the counter was told was ``rated`` has exactly one stored rating (none lost, none
  twice), and no rating exists for a case the counter never asked about;
* the city received every stored rating (duplicates at the city are allowed and de-duplicated
  by id; an id the store does not have is an error);
* no presentation is left without an outcome, none is ``not_rated``/``cancelled`` while a rating
  for it is stored, none is ``rated`` without one, and the counter was never told a case ended
  ``not_rated``/``cancelled`` that has a rating;
* ``evaluator verify`` passes.

The exit status is 0 only when every check holds.  ``tests/campaigns/test_sigkill_campaign.py``
runs a short campaign in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import queue
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import serial

from tests.support import (
    Broker,
    PtyPair,
    SupportError,
    Xvfb,
    start_pad,
    stop_pad,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
DEVICE = "kill-0001"
PREFIX = "hcp/v1"
MOMENTS = ("before", "during", "after", "thanks")
#: ``[session] thanks`` of the campaign's pad, seconds.
THANKS = 1.0
#: Keys of the good levels (1 非常满意, 2 满意, 3 基本满意): a 好评 is rated by one key event.
GOOD_KEYS = ("1", "2", "3")


class CampaignError(SupportError):
    """The campaign itself could not run (a tool missing, a process that never came up)."""


class CounterSide:
    """The clerk's business system: NDJSON requests out, replies and events in."""

    def __init__(self, path: Path) -> None:
        self.port = serial.Serial(str(path), 9600, timeout=0.05)
        self.frames: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # every evaluation.finished ever read
        self._buf = b""
        self._n = 0

    def send(self, obj: dict[str, Any]) -> None:
        self.port.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")

    def pump(self) -> None:
        """Read what is there (a vanished pad is not an error: its last bytes still count)."""
        try:  # one byte (or the timeout), then whatever else is there: no waiting for 4096
            data = self.port.read(1)
            if data:
                data += self.port.read(self.port.in_waiting)
        except (serial.SerialException, OSError):
            return
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if frame.get("event") == "evaluation.finished":
                self.events.append(frame)
            self.frames.append(frame)

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump()

    def expect(
        self, match: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames:
                if match(frame):
                    self.frames.remove(frame)
                    return frame
            if time.monotonic() > deadline:
                return None
            self.pump()

    def request(self, body: dict[str, Any], timeout: float = 30) -> dict[str, Any] | None:
        self._n += 1
        rid = f"r{self._n}"
        self.send({"id": rid, **body})
        return self.expect(lambda f: f.get("id") == rid, timeout)

    def wait_ready(self, timeout: float = 60) -> bool:
        """Ask ``status`` until the pad answers (it flushes its input when it opens the port)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.request({"type": "status"}, timeout=0.5) is not None:
                return True
        return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.port.close()


class City:
    """The city system: receives ratings (QoS 1), acknowledges every id, keeps all it saw."""

    def __init__(self, port: int) -> None:
        self.received: list[str] = []
        self._lock = threading.Lock()
        self._to_ack: queue.Queue[str] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="city-campaign")
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"{PREFIX}/{DEVICE}/ratings", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            rid = json.loads(msg.payload)["id"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.received.append(str(rid))
        self._to_ack.put(str(rid))

    def ack_all(self) -> None:
        """Acknowledge what arrived (from the caller's thread, never inside a callback)."""
        ids: list[str] = []
        while True:
            try:
                ids.append(self._to_ack.get_nowait())
            except queue.Empty:
                break
        if ids:
            payload = json.dumps({"ids": sorted(set(ids))})
            self.client.publish(f"{PREFIX}/{DEVICE}/acks", payload, qos=1)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -- the pad ---------------------------------------------------------------------------------


def write_override(path: Path, *, counter: str, broker_port: int, db: Path) -> Path:
    path.write_text(
        f"""
[device]
id = "{DEVICE}"
window = "8号窗口"

[counter]
port = "{counter}"
reconnect = "200ms"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
resend_after = "1s"

[storage]
path = "{db}"

# Keys follow each other faster than a citizen's taps (xdotool); the press filter, which
# ignores presses in the first 300 ms of a screen, has its own tests (tests/evaluator/
# test_app.py::test_the_press_filter_*), so it is off here.
[session]
press_guard = "0s"
thanks = "{THANKS:g}s"

[screen]
driver = "auto"
""",
        encoding="utf-8",
    )
    return path


class Pad:
    """``python -m evaluator run`` as a child process; its output appended to one log."""

    def __init__(self, override: Path, log: Path, display: str | None) -> None:
        self.display = display
        self._log = log.open("ab")
        self.process = start_pad(override, self._log, display=display)
        self._window: str | None = None

    def focus(self) -> None:
        """Find and focus the pad's window so the next key event goes to it."""
        env = {**os.environ, "DISPLAY": str(self.display)}
        if self._window is None:
            out = subprocess.run(
                ["xdotool", "search", "--sync", "--pid", str(self.process.pid)],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.split()
            self._window = out[0]
        subprocess.run(
            ["xdotool", "windowfocus", "--sync", self._window], env=env, timeout=10, check=True
        )

    def key(self, key: str) -> subprocess.Popen[bytes]:
        """Start a real X key event (XTEST) into the focused window; returns the xdotool run."""
        env = {**os.environ, "DISPLAY": str(self.display)}
        return subprocess.Popen(["xdotool", "key", key], env=env)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def stop(self) -> int:
        code = stop_pad(self.process, 20)
        self._log.close()
        return code


def start_request(serial_no: str) -> dict[str, Any]:
    return {
        "type": "evaluation.start",
        "clerk": {"id": "A1023", "name": "陈晓明"},
        "stage": "deliver",
        "cases": [
            {
                "serial": serial_no,
                "matter_code": "11440500MB2C9300XR4442111009000",
                "matter_name": "居民身份证换领",
                "kind": "instant",
            }
        ],
    }


# -- the audit -------------------------------------------------------------------------------


@dataclass
class Figures:
    """What a campaign did and found.  ``ok`` when every check holds."""

    kills: int = 0
    survived: int = 0  # restarts after a kill that answered the counter again
    asked: int = 0  # cases the counter opened a rating screen for
    reported: int = 0  # cases the counter was told ended "rated"
    stored: int = 0  # ratings in the store
    unreported: int = 0  # stored, the counter never heard "rated" (a kill before it was kept)
    lost: int = 0  # told "rated", no rating stored
    duplicated: int = 0  # a case with more than one rating, or a presentation with two
    unasked: int = 0  # a rating for a case the counter never asked about
    delivered: int = 0  # stored ratings the city received (distinct ids)
    undelivered: int = 0  # stored ratings the city never received
    unknown_at_city: int = 0  # ids at the city the store does not have
    city_messages: int = 0  # messages at the city, resends included
    inconsistent: int = 0  # presentations whose outcome disagrees with the store / the counter
    verify_ok: bool = False
    press_ms: float | None = None  # median key event → rating committed in the store
    told_later: int = 0  # ratings killed during their 谢谢, told by a later start
    moments: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.verify_ok
            and self.survived == self.kills
            and not (self.lost or self.duplicated or self.unasked or self.undelivered)
            and not (self.unknown_at_city or self.inconsistent)
            and not self.problems
        )

    def table(self) -> str:
        rows = [
            ("kills tried", self.kills),
            ("restarts that came back", self.survived),
            ("cases asked", self.asked),
            ("ratings reported (counter told rated)", self.reported),
            ("ratings stored", self.stored),
            ("  stored, never reported to the counter", self.unreported),
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("stored but never asked for", self.unasked),
            ("delivered to the city (distinct ids)", self.delivered),
            ("  city messages incl. resends", self.city_messages),
            ("undelivered", self.undelivered),
            ("ids at the city unknown to the store", self.unknown_at_city),
            ("inconsistent presentations", self.inconsistent),
            ("evaluator verify", "ok" if self.verify_ok else "FAILED"),
            ("median key → rating committed (ms)", _ms(self.press_ms)),
            ("  killed during 谢谢, told by a later start", self.told_later),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines.append("kill moments: " + ", ".join(f"{k} {v}" for k, v in self.moments.items()))
        return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def wait_committed(db: Path, serial_no: str, timeout: float) -> bool:
    """Poll the store (read-only, every ~0.5 ms) until a rating for ``serial_no`` is committed;
    ``False`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
        while time.monotonic() < deadline:
            try:
                query = "SELECT 1 FROM rating_cases WHERE serial = ?"
                if conn.execute(query, (serial_no,)).fetchone():
                    return True
            except sqlite3.OperationalError:
                pass  # being written, or the tables not made yet: read again
            time.sleep(0.0005)
    return False


def read_store(db: Path) -> dict[str, Any]:
    """Ratings (with their serials) and presentations, read from a stopped pad's store."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        cases = conn.execute("SELECT rating_id, serial FROM rating_cases").fetchall()
        ratings = conn.execute("SELECT id, presentation_id FROM ratings").fetchall()
        presentations = conn.execute(
            "SELECT id, serials, outcome, rating_ids FROM presentations"
        ).fetchall()
    return {"cases": cases, "ratings": ratings, "presentations": presentations}


def audit(
    figures: Figures,
    db: Path,
    *,
    asked: set[str],
    told: dict[str, list[str]],
    city_ids: list[str],
) -> None:
    """Fill ``figures`` from the store, what the counter was told and what the city got."""
    data = read_store(db)
    rating_ids = {rid for rid, _ in data["ratings"]}
    by_serial = Tally(serial for _, serial in data["cases"])
    stored_serials = set(by_serial)
    reported = {s for s, outcomes in told.items() if "rated" in outcomes}
    figures.asked = len(asked)
    figures.reported = len(reported)
    figures.stored = len(rating_ids)
    figures.unreported = len(stored_serials - reported)
    lost = sorted(reported - stored_serials)
    figures.lost = len(lost)
    per_presentation = Tally(pid for _, pid in data["ratings"] if pid)
    dup = [s for s, n in by_serial.items() if n > 1] + [
        p for p, n in per_presentation.items() if n > 1
    ]
    figures.duplicated = len(dup)
    unasked = sorted(stored_serials - asked)
    figures.unasked = len(unasked)
    at_city = set(city_ids)
    figures.city_messages = len(city_ids)
    figures.delivered = len(rating_ids & at_city)
    figures.undelivered = len(rating_ids - at_city)
    figures.unknown_at_city = len(at_city - rating_ids)
    for name, items in (("lost", lost), ("duplicated", dup), ("unasked", unasked)):
        if items:
            figures.problems.append(f"{name}: {', '.join(items[:10])}")

    rated_presentations = set(per_presentation)
    inconsistent: list[str] = []
    for pid, serials_json, outcome, _ in data["presentations"]:
        serials = json.loads(serials_json)
        if outcome is None:
            inconsistent.append(f"{pid} ({','.join(serials)}): no outcome")
        elif outcome != "rated" and pid in rated_presentations:
            inconsistent.append(f"{pid} ({','.join(serials)}): {outcome} but a rating is stored")
        elif outcome == "rated" and pid not in rated_presentations:
            inconsistent.append(f"{pid} ({','.join(serials)}): rated but no rating stored")
    for serial_no, outcomes in told.items():
        wrong = [o for o in outcomes if o != "rated"]
        if wrong and serial_no in stored_serials:
            inconsistent.append(f"counter told {serial_no} {wrong[0]} but a rating is stored")
    figures.inconsistent = len(inconsistent)
    figures.problems.extend(f"inconsistent: {line}" for line in inconsistent[:20])


def verify(db: Path) -> tuple[bool, str]:
    """``evaluator verify`` with the key the pad made next to its store: the chain, and every
    record signed (a kill at any moment, key creation included, leaves no unsigned rating)."""
    command = [sys.executable, "-m", "evaluator", "verify", "--db", str(db)]
    key_file = db.parent / "device.key"
    if key_file.exists():
        from sync.keys import DeviceKey

        command += ["--pubkey", DeviceKey.load(key_file).public.text]
    done = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


# -- the campaign ----------------------------------------------------------------------------


def run_campaign(
    kills: int,
    *,
    seed: int | None = None,
    work: Path | None = None,
    say: Callable[[str], None] = print,
) -> Figures:
    """Kill the pad ``kills`` times around presses, then audit; see the module docstring."""
    rng = random.Random(seed)
    own_dir = work is None
    work = Path(tempfile.mkdtemp(prefix="sigkill-")) if work is None else work
    work.mkdir(parents=True, exist_ok=True)
    db = work / "ratings.db"
    pad_log = work / "pad.log"
    figures = Figures(moments={m: 0 for m in MOMENTS})
    asked: set[str] = set()
    told: dict[str, list[str]] = {}
    run_id = f"{int(time.time()) % 100000:05d}"
    latencies: list[float] = []  # xdotool started → rating committed in the store, seconds
    killed_in_thanks: set[str] = set()
    with contextlib.ExitStack() as es:
        broker = Broker(work)
        es.callback(broker.stop)
        broker.start()
        display = Xvfb()
        es.callback(display.stop)
        city = City(broker.port)
        es.callback(city.close)
        first = True
        for n in range(kills):
            if rng.random() < 0.35:  # the city's broker comes and goes
                broker.stop() if broker.up else broker.start()
            pair = PtyPair(work, n)
            override = write_override(
                work / "pad.toml", counter=str(pair.device), broker_port=broker.port, db=db
            )
            pad = Pad(override, pad_log, display.name)
            counter = CounterSide(pair.counter)
            moment = MOMENTS[n % len(MOMENTS)]
            try:
                if not counter.wait_ready():
                    raise CampaignError(f"round {n}: the pad did not answer; see {pad_log}")
                if not first:
                    figures.survived += 1
                first = False
                city.ack_all()
                clerk = {"id": "A1023", "name": "陈晓明"}
                sign_in = counter.request({"type": "clerk.sign_in", "clerk": clerk})
                serial_no = f"4405{run_id}{n:011d}"
                asked.add(serial_no)
                reply = counter.request(start_request(serial_no))
                if not (sign_in and sign_in.get("ok") and reply and reply.get("ok")):
                    raise CampaignError(f"round {n}: requests refused: {sign_in} {reply}")
                pad.focus()
                if moment == "before":
                    time.sleep(rng.uniform(0, 0.3))
                elif moment == "during":
                    es.callback(pad.key(rng.choice(GOOD_KEYS)).wait, 10)  # reaped at the end
                    if latencies:
                        typical = statistics.median(latencies[-20:])
                        time.sleep(max(0.0, typical + rng.uniform(-0.004, 0.001)))
                    else:
                        time.sleep(rng.uniform(0, 0.06))
                else:
                    pressed = time.monotonic()
                    xdotool = pad.key(rng.choice(GOOD_KEYS))
                    if not wait_committed(db, serial_no, 30):
                        raise CampaignError(f"round {n}: no rating committed; see {pad_log}")
                    latencies.append(time.monotonic() - pressed)
                    xdotool.wait(10)
                    if moment == "thanks":
                        time.sleep(rng.uniform(0, THANKS))  # the 谢谢 is up: nothing told yet
                        killed_in_thanks.add(serial_no)
                    else:
                        event = counter.expect(
                            lambda f: f.get("event") == "evaluation.finished", 30 + THANKS
                        )
                        if event is None:
                            raise CampaignError(f"round {n}: no evaluation.finished; see {pad_log}")
                pad.kill()
                figures.kills += 1
                figures.moments[moment] += 1
                counter.drain(0.2)  # the pad's last bytes before it died still count
            finally:
                if pad.process.poll() is None:
                    pad.kill()
                for event in counter.events:
                    for s in event.get("serials", []):
                        told.setdefault(s, []).append(str(event.get("outcome")))
                counter.close()
                pair.stop()
            if (n + 1) % 10 == 0:
                say(f"  {n + 1}/{kills} kills, broker {'up' if broker.up else 'down'}")

        # the end: broker up, the city acking until the outbox is empty.  The pad is up (it
        # closed what the last kill left open) only once it answers the counter.
        broker.start()
        pair = PtyPair(work, kills)
        es.callback(pair.stop)
        override = write_override(
            work / "final.toml", counter=str(pair.device), broker_port=broker.port, db=db
        )
        pad = Pad(override, pad_log, None)
        counter = CounterSide(pair.counter)
        es.callback(counter.close)
        if not counter.wait_ready():
            pad.stop()
            raise CampaignError(f"the final pad did not answer; see {pad_log}")

        def drained() -> bool:
            city.ack_all()
            counter.pump()  # an outcome the last kill left untold is told to this counter
            if pad.process.poll() is not None:
                raise CampaignError(f"the final pad exited; see {pad_log}")
            try:
                with contextlib.closing(
                    sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                ) as conn:
                    return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0]) == 0
            except (sqlite3.OperationalError, sqlite3.DatabaseError):
                return False  # the store is being written: read again

        try:
            wait_for(drained, 120, "the outbox to empty")
            figures.survived += 1 if kills else 0  # it came back after the last kill
        finally:
            code = pad.stop()
            counter.drain(0.2)
            for event in counter.events:  # what the last kill left untold, told now
                for s in event.get("serials", []):
                    told.setdefault(s, []).append(str(event.get("outcome")))
        if code != 0:
            figures.problems.append(f"the final pad exited {code}")

    if latencies:
        figures.press_ms = statistics.median(latencies) * 1000
    figures.told_later = sum(1 for s in killed_in_thanks if "rated" in told.get(s, []))
    audit(figures, db, asked=asked, told=told, city_ids=city.ids())
    figures.verify_ok, verify_out = verify(db)
    if not figures.verify_ok:
        figures.problems.append(f"evaluator verify: {verify_out}")
    if own_dir and figures.ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        say(f"store and pad log kept in {work}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.campaigns.sigkill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs to try (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    started = time.monotonic()
    print(f"SIGKILL campaign: {args.kills} kills, seed {seed}", flush=True)
    figures = run_campaign(
        args.kills, seed=seed, work=args.keep, say=lambda s: print(s, flush=True)
    )
    print(figures.table())
    for problem in figures.problems:
        print("PROBLEM", problem)
    minutes = (time.monotonic() - started) / 60
    print(f"{dt.date.today().isoformat()}, {minutes:.1f} min: {'OK' if figures.ok else 'FAILED'}")
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
