"""Hostile MQTT campaign: junk on the ack topic never stops the uploads or the acks.

    .venv/bin/python -m tests.campaigns.mqtt_hostile --messages 10000 [--seed N] [--ratings R]

A private mosquitto on a free port (``tests.support.Broker``), a real ``SyncWorker``
on a real SQLite store, a *city* that receives ratings and acknowledges each one it receives
(again for a resend), and an *attacker* that publishes ``--messages`` hostile messages on the
pad's ack topic: deep nesting (up to ``[`` × 100,000, also inside ``{"ids": …}``), binary junk,
invalid UTF-8, payloads over the size limit, acks with ids of the wrong types, lone surrogates,
too many ids, truncated acks, acks of unknown ids — some of them retained, so they come back at
every subscribe.  Meanwhile ratings are committed to the store at a steady pace, and half-way the
worker is stopped and a new one started (the retained junk greets it).

At the end the city must have every rating (*lost* = committed but never received), and every
rating must have left the outbox through a genuine ack (*acks applied*).  *Duplicated* counts
copies the city received more than once (resends: normal, the city deduplicates by id).  Exit
status 0 only when nothing was lost, every ack was applied and the worker is alive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sync.mqtt import MAX_ACK_BYTES, MAX_ACK_IDS, SyncWorker
from sync.store import Store
from tests.support import Broker
from tests.sync.test_mqtt import full_content

DEVICE = "hostile-0001"
PREFIX = "hcp/v1"
RATINGS = f"{PREFIX}/{DEVICE}/ratings"
ACKS = f"{PREFIX}/{DEVICE}/acks"
UUID = "01a218ba-8127-7b24-9c1f-be803d583727"


def content(serial: str) -> dict[str, Any]:
    """A rating's content shaped like evaluator.rules.session builds it (the tests' one sample)."""
    return full_content(serial)


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([33, 100, 1000, 10_000, 100_000])
    shape = rng.randrange(4)
    if shape == 0:
        return b"[" * depth  # issue 5
    if shape == 1:
        return b'{"ids":' + b"[" * depth + b"]" * depth + b"}"
    if shape == 2:
        return b'{"ids":' * min(depth, 30_000)
    return b'{"ids":["' + UUID.encode() + b'",' + b"{" * depth + b"]}"


def hostile(rng: random.Random, known: list[str]) -> tuple[str, bytes]:
    """One hostile payload and its class; ``known`` are real rating ids (never acked here)."""
    roll = rng.random()
    if roll < 0.30:
        return "deep_nesting", _deep(rng)
    if roll < 0.42:
        return "binary_junk", rng.randbytes(rng.choice([1, 16, 512, 8192]))
    if roll < 0.47:
        return "invalid_utf8", b'{"ids":["' + rng.choice(
            [b"\xff", b"\xed\xa0\x80", b"\xc3("]
        ) + b'"]}'
    if roll < 0.49:
        return "over_size", b'{"ids":["' + b"a" * (MAX_ACK_BYTES + rng.randrange(1, 2**20)) + b'"]}'
    if roll < 0.64:
        wrong = rng.choice(
            [5, "x", None, {"a": 1}, [1, 2], [None], [True], [1.5], [[UUID]], [{"id": UUID}]]
        )
        key = rng.choice(["ids", "ids", "id", "IDS", ""])
        return "wrong_types", json.dumps({key: wrong}).encode()
    if roll < 0.70:
        return "lone_surrogate", b'{"ids":["\\ud800","' + UUID.encode() + b'\\udfff"]}'
    if roll < 0.74:
        many = [f"junk-{i}" for i in range(rng.choice([MAX_ACK_IDS + 1, 3 * MAX_ACK_IDS]))]
        return "too_many_ids", json.dumps({"ids": many}).encode()
    if roll < 0.82:
        text = json.dumps({"ids": [UUID, *rng.sample(known, min(2, len(known)))]}).encode()
        return "truncated", text[: rng.randrange(len(text))]  # cut before the end: never valid
    if roll < 0.90:
        unknown = [f"01a218ba-{rng.randrange(10**4):04d}-7b24-9c1f-be803d583727" for _ in range(3)]
        return "unknown_ids", json.dumps({"ids": unknown}).encode()
    if roll < 0.95:
        return "numbers_and_nulls", rng.choice([b"null", b"0", b"1e999", b"-", b"9" * 5000, b""])
    return "control_chars", b'{"ids":["\x00\x1b[2J",' + b'"\\u0000"]}'


@dataclass
class Figures:
    tried: int = 0
    retained: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    ratings: int = 0
    received: int = 0  # messages at the city, copies included
    unique: int = 0
    lost: int = 0
    duplicated: int = 0
    acks_applied: int = 0
    outbox_left: int = 0
    restarts: int = 0
    max_latency: float = 0.0  # commit → first arrival at the city, seconds
    worker_alive: bool = False
    connected: bool = False
    last_error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.outbox_left == 0
            and self.acks_applied == self.ratings
            and self.worker_alive
            and self.connected
        )

    def table(self) -> str:
        rows = [
            ("hostile messages tried", self.tried),
            ("  of them retained", self.retained),
            ("ratings committed meanwhile", self.ratings),
            ("uploads still flowing (unique at the city)", self.unique),
            ("lost", self.lost),
            ("duplicated (resent copies, deduplicated by id)", self.duplicated),
            ("acks still applied (left the outbox)", self.acks_applied),
            ("outbox left at the end", self.outbox_left),
            ("worker restarts (retained junk at subscribe)", self.restarts),
            ("slowest commit → city (s)", f"{self.max_latency:.2f}"),
            ("worker alive / connected", f"{self.worker_alive} / {self.connected}"),
            ("seconds", f"{self.seconds:.1f}"),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"{label:<{width}}  {value}" for label, value in rows]
        lines.append("classes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.classes.items())))
        lines.append(f"last error noted: {self.last_error[:160]}")
        return "\n".join(lines)


class City:
    """Receives ratings; acknowledges every copy it receives (a test peer: paho's own thread)."""

    def __init__(self, port: int) -> None:
        self.arrivals: dict[str, float] = {}
        self.copies = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="city")
        self.client.on_connect = lambda c, *a: c.subscribe(RATINGS, qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("the city could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        rid = json.loads(msg.payload)["id"]
        with self._lock:
            self.copies += 1
            self.arrivals.setdefault(rid, time.monotonic())
        client.publish(ACKS, json.dumps({"ids": [rid]}), qos=1)

    def seen(self) -> dict[str, float]:
        with self._lock:
            return dict(self.arrivals)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def run_campaign(
    messages: int, *, seed: int, work: Path, ratings: int | None = None, settle: float = 60.0
) -> Figures:
    started = time.monotonic()
    rng = random.Random(seed)
    figures = Figures()
    total_ratings = ratings if ratings is not None else max(10, messages // 100)
    quiet = logging.getLogger("sync")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # every junk message logs a warning
    broker = Broker(work)
    broker.start()
    store = Store(work / "ratings.db", device_id=DEVICE)
    attacker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
    attacker.max_queued_messages_set(200)
    attacker.connect("127.0.0.1", broker.port, keepalive=30)
    attacker.loop_start()
    city = City(broker.port)

    def new_worker() -> SyncWorker:
        w = SyncWorker(
            store_path=work / "ratings.db",
            device_id=DEVICE,
            host="127.0.0.1",
            port=broker.port,
            topic_prefix=PREFIX,
            resend_after=2.0,
            max_rate=50.0,
            reconnect_min=0.2,
            reconnect_max=1.0,
        )
        w.start()
        return w

    worker = new_worker()
    committed: dict[str, float] = {}
    every = max(1, messages // total_ratings)
    try:
        for n in range(messages):
            if n % every == 0 and len(committed) < total_ratings:
                record = store.append_rating(content(f"H-{len(committed)}"))
                committed[record["id"]] = time.monotonic()
                worker.notify()
            if n == messages // 2:
                worker.stop()
                worker.join(10)
                worker = new_worker()
                figures.restarts += 1
            name, payload = hostile(rng, list(committed))
            retain = rng.random() < 0.03
            info = attacker.publish(ACKS, payload, qos=1, retain=retain)
            if n % 50 == 0 or len(payload) > 100_000:
                info.wait_for_publish(10)  # keep the attacker's queue bounded
            figures.tried += 1
            figures.retained += retain
            figures.classes[name] = figures.classes.get(name, 0) + 1
        while len(committed) < total_ratings:
            record = store.append_rating(content(f"H-{len(committed)}"))
            committed[record["id"]] = time.monotonic()
            worker.notify()
        _wait(lambda: set(committed) <= set(city.seen()) and store.outbox_size() == 0, settle)
        seen = city.seen()
        figures.ratings = len(committed)
        figures.unique = len(set(committed) & set(seen))
        figures.lost = figures.ratings - figures.unique
        figures.received = city.copies
        figures.duplicated = city.copies - len(seen)
        figures.outbox_left = store.outbox_size()
        figures.acks_applied = figures.ratings - figures.outbox_left
        latencies = [seen[r] - t for r, t in committed.items() if r in seen]
        figures.max_latency = max(latencies, default=0.0)
        figures.worker_alive = worker.is_alive()
        figures.connected = worker.status.connected
        figures.last_error = worker.status.last_error
    finally:
        worker.stop()
        worker.join(10)
        city.close()
        attacker.disconnect()
        attacker.loop_stop()
        store.close()
        broker.stop()
        # back as it was: a campaign run inside pytest must not silence the sync's warnings
        # for every test after it (tests/sync/test_mqtt_linkerror.py waits for them)
        quiet.setLevel(level)
    figures.seconds = time.monotonic() - started
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--ratings", type=int, default=None, help="default: messages / 100")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = run_campaign(args.messages, seed=args.seed, work=Path(tmp), ratings=args.ratings)
    print(f"hostile MQTT, {dt.date.today().isoformat()}, seed {args.seed}")
    print(figures.table())
    print("OK" if figures.ok else "FAILED")
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
