"""An honest pad's ack latency at the city receiver while a stolen pad attacks (issue 16).

One run, one private mosquitto with the shipped limits (``max_packet_size``,
``max_inflight_messages``, ``max_queued_messages`` of ``config/mosquitto/mosquitto.conf``), the
real ``evaluator hub run`` as a process of its own (SQLite, a fresh database per scenario), and
two pads on it: the honest one publishes ``HONEST`` signed ratings one every ``HONEST_EVERY``
seconds (QoS 1) and times each from its publish to its ack; the stolen one (a registered key,
its own topic, all the ACL allows) attacks meanwhile:

* **none** — the reference, run first and last (pooled);
* **junk flood** — unique junk of ``JUNK_BYTES`` at ``JUNK_PACE`` a second (5x a pad's budget,
  ``FLOOD_RATE``): every message different, so no repeat filter helps;
* **far-ahead parking** — ``PARK_FILL`` signed records far ahead of its chain before the
  measurement (the cap, ``PARK_RECORDS``, is reached), then more at ``PARK_PACE`` a second.

Printed: the honest latency (median, p99) of each attack beside the no-attack run, their ratio
(goal: p99 within ``GOAL`` x), and after each scenario the receiver's RSS and the database's
growth beside the no-attack run.  ``python -m bench.hub_attack`` or
``python -m bench.run --hub-attack``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.stats import Row, table
from evaluator.rules.records import GENESIS_HASH, canonical_json, new_record_id, seal
from sync.hub.db import open_db
from sync.hub.ingest import PARK_RECORDS
from sync.keys import DeviceKey

PREFIX = "hcp/v1"
HONEST, THIEF = "bench-honest", "bench-thief"
HONEST_N = 150
HONEST_EVERY = 0.05
JUNK_BYTES = 8 * 1024
JUNK_PACE = 2500
PARK_FILL = PARK_RECORDS + 1000
PARK_PACE = 2500
GOAL = 2.0
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config" / "mosquitto" / "mosquitto.conf"


def _shipped_limits() -> str:
    """The shipped broker's limits, as lines of a mosquitto.conf."""
    keep = ("max_packet_size", "max_inflight_messages", "max_queued_messages")
    return "".join(line + "\n" for line in SHIPPED.read_text().splitlines()
                   if line.split(" ", 1)[0] in keep)  # fmt: skip


def _rating(device: str, seq: int, prev: str, key: DeviceKey) -> dict[str, Any]:
    from bench.hub import _content

    body = _content(f"{device}-{seq:07d}")
    body.update(id=new_record_id(), seq=seq, device_id=device)
    return seal(body, prev_hash=prev, signer=key)


class Client:
    """A pad's MQTT client: publishes on its topic, times the acks it is sent."""

    def __init__(self, port: int, device: str) -> None:
        self.device = device
        self.acked: dict[str, float] = {}
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=device)  # fmt: skip
        self.client.on_connect = lambda c, *a: c.subscribe(f"{PREFIX}/{device}/acks", 1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._ready.wait(10)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        now = time.monotonic()
        for rid in json.loads(message.payload).get("ids", []):
            self.acked.setdefault(rid, now)

    def send(self, body: bytes, qos: int = 1) -> None:
        self.client.publish(f"{PREFIX}/{self.device}/ratings", body, qos=qos)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Hub:
    """``evaluator hub run`` on ``port`` with a fresh database in ``work``."""

    def __init__(self, work: Path, port: int, keys: dict[str, DeviceKey]) -> None:
        self.path = work / "hub.db"
        self.url = f"sqlite:///{self.path}"
        with open_db(self.url) as db:
            for device, key in keys.items():
                db.register(device, key.public.text)
        self.base = self.size()
        self.out = work / "hub.out"
        with self.out.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "evaluator", "hub", "run", "--db", self.url,
                 "--broker", f"mqtt://127.0.0.1:{port}"],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while b"receiving on" not in self.out.read_bytes():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the hub did not start: {self.out.read_text()}")
            time.sleep(0.05)

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob("hub.db*"))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _honest(pad: Client, key: DeviceKey) -> list[float]:
    """``HONEST_N`` ratings, one every ``HONEST_EVERY`` s: each one's publish → ack, in ms."""
    sent: dict[str, float] = {}
    prev = GENESIS_HASH
    for seq in range(1, HONEST_N + 1):
        record = _rating(HONEST, seq, prev, key)
        prev = record["hash"]
        sent[record["id"]] = time.monotonic()
        pad.send(canonical_json(record))
        time.sleep(HONEST_EVERY)
    deadline = time.monotonic() + 60
    while len(set(sent) & set(pad.acked)) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(pad.acked.get(rid, deadline) - at) * 1000 for rid, at in sent.items()]


def _paced(stop: threading.Event, pace: int, make: Any, thief: Client) -> int:
    """Publish ``make(n)`` at ``pace`` a second (QoS 0) until ``stop``; how many were sent."""
    start, n = time.monotonic(), 0
    while not stop.is_set():
        for _ in range(50):
            thief.send(make(n), qos=0)
            n += 1
        time.sleep(max(0.0, start + n / pace - time.monotonic()))
    return n


def _scenario(work: Path, port: int, keys: dict[str, DeviceKey], attack: str) -> dict[str, Any]:
    work.mkdir()
    hub = Hub(work, port, keys)
    pad, thief = Client(port, HONEST), Client(port, THIEF)
    stop = threading.Event()
    sent = [0]
    attacker = None
    try:
        if attack == "park":
            far = [_rating(THIEF, 1_000_000 + i, "a" * 64, keys[THIEF]) for i in range(PARK_FILL)]
            bodies = [canonical_json(r) for r in far]
            for body in bodies:
                thief.send(body, qos=1)
                time.sleep(1 / PARK_PACE)
            make = lambda n: bodies[n % len(bodies)]  # noqa: E731
            pace = PARK_PACE
        else:
            make = lambda n: b"junk %09d " % n + os.urandom(JUNK_BYTES // 2).hex().encode()  # noqa: E731
            pace = JUNK_PACE
        if attack != "none":
            attacker = threading.Thread(
                target=lambda: sent.__setitem__(0, _paced(stop, pace, make, thief)), daemon=True
            )
            attacker.start()
            time.sleep(2.0)  # the attack under way before the honest pad rates
        latencies = _honest(pad, keys[HONEST])
        stop.set()
        if attacker is not None:
            attacker.join(10)
        with open_db(hub.url) as db:
            parked, flags = db.parked(), [f["kind"] for f in db.flags(THIEF)]
        return {"latencies": latencies, "rss": hub.rss_mb(), "grown": (hub.size() - hub.base)
                / 1e6, "sent": sent[0], "parked": parked, "flags": flags}  # fmt: skip
    finally:
        stop.set()
        pad.close()
        thief.close()
        hub.close()


def main() -> int:
    from bench.sync_link import Broker

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-hub-attack-") as tmp:
        work = Path(tmp)
        keys = {d: DeviceKey.create(work / f"{d}.key") for d in (HONEST, THIEF)}
        broker = Broker(work)
        broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\n"
                               f"persistence false\n{_shipped_limits()}")  # fmt: skip
        broker.start()
        try:
            runs = {name: _scenario(work / f"{n}-{name}", broker.port, keys, attack)
                    for n, (name, attack) in enumerate([("none", "none"), ("junk", "junk"),
                                                        ("park", "park"), ("none2", "none")])}
        finally:  # fmt: skip
            broker.stop()
    ref = runs["none"]["latencies"] + runs["none2"]["latencies"]
    rows = []
    for name, label in (("junk", f"junk flood {JUNK_PACE}/s of {JUNK_BYTES // 1024} KiB"),
                        ("park", f"far-ahead parking ({PARK_FILL:,} then {PARK_PACE}/s)")):
        row = Row(f"honest ack latency, {label}", "ms", runs[name]["latencies"],
                  "no attack (same run)", ref, goal=f"p99 ≤ {GOAL:g}x ref")  # fmt: skip
        row.met = row.ratios is not None and row.ratios[1] <= GOAL
        rows.append(row)
        base = runs["none"]
        rows.append(Row(f"receiver RSS after {name}", "MB", [runs[name]["rss"]],
                        "after no attack", [base["rss"]]))  # fmt: skip
        rows.append(Row(f"database growth during {name}", "MB", [max(runs[name]["grown"], 1e-6)],
                        "during no attack", [max(base["grown"], 1e-6)]))  # fmt: skip
    print(table(rows))
    for name in ("junk", "park"):
        r = runs[name]
        print(f"{name}: {r['sent']:,} attack messages during the measurement; parked "
              f"{r['parked']:,}; flags of the stolen pad: {', '.join(r['flags']) or 'none'}")
    missed = [r.name for r in rows if r.met is False]
    print(f"goals missed: {', '.join(missed) if missed else 'none'}")
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
