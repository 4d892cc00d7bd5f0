"""An honest pad's ack latency at the city receiver while a stolen pad attacks (issue 16).

One run, one private mosquitto with the shipped limits (``max_packet_size``,
``max_inflight_messages``, ``max_queued_messages`` of ``config/mosquitto/mosquitto.conf``; and
``set_tcp_nodelay``, which the shipped config lacks: without it every ack waits ~40 ms for
Nagle's algorithm, a floor that would hide the receiver's own latency), the
real ``evaluator hub run`` as a process of its own (SQLite, a fresh database per scenario), and
two pads on it: the honest one publishes ``HONEST`` signed ratings one every ``HONEST_EVERY``
seconds (QoS 1) and times each from its publish to its ack; the stolen one (a registered key,
its own topic, all the ACL allows) attacks meanwhile:

* **none** — the reference, run first and after each junk-park pair (``ROUNDS`` pairs; the
  runs of each scenario pooled);
* **junk flood** — unique junk of ``JUNK_BYTES`` at ``JUNK_PACE`` a second (5x a pad's budget,
  ``FLOOD_RATE``): every message different, so no repeat filter helps;
* **far-ahead parking** — ``PARK_FILL`` signed records far ahead of its chain, sent again at
  ``PARK_PACE`` a second; measured once the cap (``PARK_RECORDS``) is reached, while they keep
  coming (parked ones again, the rest refused ``parking full``).

Printed: the honest latency (median, p99) of each attack beside the no-attack run, their ratio
(goal: p99 within ``GOAL`` x), and after each scenario the receiver's RSS and the database's
growth beside the no-attack run.  ``python -m bench.hub_attack`` or
``python -m bench.run --hub-attack``.
"""

from __future__ import annotations

import json
import multiprocessing
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
HONEST_N = 300
HONEST_EVERY = 0.025
JUNK_BYTES = 8 * 1024
JUNK_PACE = 2500
PARK_FILL = PARK_RECORDS + 1000
PARK_PACE = 2500
GOAL = 2.0
ROUNDS = 2  # each attack twice, a no-attack run before and after each pair
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

    def __init__(self, port: int, device: str, client_id: str = "") -> None:
        self.device = device
        self.acked: dict[str, float] = {}
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or device)  # fmt: skip
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

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def _attacker(port: int, bodies: list[bytes], pace: int, stop: Any, count: Any) -> None:
    """In a process of its own (the honest pad's timing must not share a GIL with the
    attack): publish at ``pace`` a second (QoS 0) until ``stop``, ``bodies`` in turn, or unique
    junk when there are none; ``count`` says how many were sent."""
    thief = Client(port, THIEF, client_id=f"{THIEF}-attack")
    start, n = time.monotonic(), 0
    while not stop.is_set():
        for _ in range(50):
            body = (bodies[n % len(bodies)] if bodies else
                    b"junk %09d " % n + os.urandom(JUNK_BYTES // 2).hex().encode())  # fmt: skip
            thief.send(body, qos=0)
            n += 1
        count.value = n
        time.sleep(max(0.0, start + n / pace - time.monotonic()))
    thief.close()


def _scenario(work: Path, port: int, keys: dict[str, DeviceKey], attack: str) -> dict[str, Any]:
    work.mkdir()
    hub = Hub(work, port, keys)
    pad, thief = Client(port, HONEST), Client(port, THIEF)
    ctx = multiprocessing.get_context("spawn")
    stop, sent = ctx.Event(), ctx.Value("q", 0)
    attacker = None
    try:
        bodies: list[bytes] = []
        if attack == "park":
            far = [_rating(THIEF, 1_000_000 + i, "a" * 64, keys[THIEF]) for i in range(PARK_FILL)]
            bodies = [canonical_json(r) for r in far]
            for body in bodies:
                thief.send(body, qos=1)
                time.sleep(1 / PARK_PACE)
        if attack != "none":
            pace = PARK_PACE if attack == "park" else JUNK_PACE
            attacker = ctx.Process(target=_attacker, args=(port, bodies, pace, stop, sent))
            attacker.start()
            time.sleep(2.0)  # the attack under way before the honest pad rates
        if attack == "park":  # measured once the cap is reached: what every batch meets then
            _wait_parked(hub.url, PARK_RECORDS)
        cpu, attack_cpu, began = hub.cpu(), _cpu_seconds(attacker.pid) if attacker else 0.0, \
            time.monotonic()
        latencies = _honest(pad, keys[HONEST])
        took = time.monotonic() - began
        cpu = (hub.cpu() - cpu) / took
        attack_cpu = (_cpu_seconds(attacker.pid) - attack_cpu) / took if attacker else 0.0
        stop.set()
        if attacker is not None:
            attacker.join(20)
        with open_db(hub.url) as db:
            parked, flags = db.parked(), [f["kind"] for f in db.flags(THIEF)]
        return {"latencies": latencies, "rss": hub.rss_mb(), "grown": (hub.size() - hub.base)
                / 1e6, "sent": sent.value, "parked": parked, "flags": flags, "cpu": cpu,
                "attack_cpu": attack_cpu}  # fmt: skip
    finally:
        stop.set()
        pad.close()
        thief.close()
        hub.close()


def _wait_parked(url: str, count: int) -> None:
    deadline = time.monotonic() + 120
    with open_db(url) as db:
        while db.parked() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {db.parked()} of {count} parked")
            time.sleep(0.2)


def _all(runs: list[dict[str, Any]], key: str) -> list[float]:
    return [v for r in runs for v in r[key]]


def main() -> int:
    from bench.sync_link import Broker

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-hub-attack-") as tmp:
        work = Path(tmp)
        keys = {d: DeviceKey.create(work / f"{d}.key") for d in (HONEST, THIEF)}
        broker = Broker(work)
        broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\n"
                               f"persistence false\nset_tcp_nodelay true\n"
                               f"{_shipped_limits()}")  # fmt: skip
        broker.start()
        try:
            runs: dict[str, list[dict[str, Any]]] = {"none": [], "junk": [], "park": []}
            order = ["none"] + ["junk", "park", "none"] * ROUNDS
            for n, name in enumerate(order):
                runs[name].append(_scenario(work / f"{n}-{name}", broker.port, keys, name))
        finally:
            broker.stop()
    base = runs["none"]
    rows = []
    for name, label in (("junk", f"junk flood {JUNK_PACE}/s of {JUNK_BYTES // 1024} KiB"),
                        ("park", f"far-ahead parking ({PARK_FILL:,} then {PARK_PACE}/s)")):
        runs_of = runs[name]
        row = Row(f"honest ack latency, {label}", "ms", _all(runs_of, "latencies"),
                  "no attack (same run)", _all(base, "latencies"), goal=f"p99 ≤ {GOAL:g}x ref")
        row.met = row.ratios is not None and row.ratios[1] <= GOAL
        rows.append(row)
        for key, what, unit in (("rss", f"receiver RSS after {name}", "MB"),
                                ("grown", f"database growth during {name}", "MB"),
                                ("cpu", f"receiver CPU during {name}", "cores")):
            rows.append(Row(what, unit, [max(r[key], 1e-6) for r in runs_of], "no attack",
                            [max(r[key], 1e-6) for r in base]))
    print(table(rows))
    for name in ("junk", "park"):
        r = runs[name][-1]
        print(f"{name}: {r['sent']:,} attack messages sent; parked {r['parked']:,}; flags of "
              f"the stolen pad: {', '.join(r['flags']) or 'none'}; the attacker's own process "
              f"used {r['attack_cpu']:.2f} cores (on this machine's {os.cpu_count()})")
    missed = [r.name for r in rows if r.met is False]
    print(f"goals missed: {', '.join(missed) if missed else 'none'}")
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
