"""The city link at full speed (issue 8), in ``python -m bench.run`` or alone:
``python -m bench.sync_link`` (or ``python -m bench.run --sync``).

A private mosquitto, and one city subscriber process (:mod:`bench.sync_city`) that acks every
id it receives, serving both sides of each comparison:

1. **Drain of a 10,000-rating backlog**, end to end: a real :class:`sync.mqtt.SyncWorker` (the
   rate limit off: ``max_rate=inf``; the other settings the shipped defaults) from its start to
   the last outbox row gone (its ack applied), beside raw paho QoS 1 with 100 in flight
   publishing the same 10,000 payloads until the city acked them all.  Rounds alternate; the
   figure is ratings per second per round, and the worker's CPU time per rating.
2. **commit → at city** of one new rating (``Store.append_rating`` returned → the city has it),
   for a store holding 100,000 past (acked) ratings beside an empty one, a rating at a time, in
   turn, each worker connected and idle; and beside both, raw paho publish → at city of a
   payload of the same size.  Also the worker's CPU per rating (publish and ack, thread CPU
   clock) and the ``append_rating`` time itself, both at 100k beside empty.
3. **Opening the store** (the pad opens it twice at start): 100,000 ratings beside empty;
   beside it, for information, the full ``quick_check`` the open used to run.

The stores are built fast by :func:`build_store`, the documented shortcut: rows exactly as
``Store.append_rating`` writes them (the same columns, sealed and chained by ``seal``, the
backlog signed with a device key), in one transaction instead of one fsync'd transaction each;
the 10,000 backlog is checked with ``Store.verify`` (and every record signed) before use, and every
store takes a real ``append_rating`` afterwards, chained to the last shortcut row.

The broker allows 100 messages in flight per client and queues without limit (mosquitto's
defaults, 20 and 1,000, would drop the reference's surplus: the pad's window of
``max_unacked`` never reaches them).
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.stats import Row, table
from bench.sync_city import no_delay
from evaluator.rules.records import GENESIS_HASH, canonical_json, new_record_id, seal
from evaluator.rules.request import rating_slot
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store, _quick_check

PREFIX = "hcp/v1"
BACKLOG = 10_000
HISTORY = 100_000
DRAIN_ROUNDS = 5
LATENCY_SAMPLES = 150  # per kind, in turn
OPEN_SAMPLES = 15
#: The goals of issue 8.
DRAIN_RATIO = 0.5
LATENCY_P99_MS = 20.0
HISTORY_RATIO = 1.2

REPO = Path(__file__).resolve().parents[1]


def content(n: int) -> dict[str, Any]:
    """A rating as the session builds it: one case, a clerk, no reasons (valid against the
    published rating schema: the hub refuses anything else)."""
    return {
        "presentation_id": f"00000000-0000-7000-8000-{n % 16**12:012x}",
        "level": "satisfied",
        "score": 8,
        "satisfaction": 4,
        "gbt_code": 2,
        "channel": 4,
        "cases": [
            {
                "serial": f"44050020261127{n:07d}",
                "matter_code": "11440500MB2C93562W4440111707000",
                "matter_name": "居民身份证换领",
                "kind": "instant",
            }
        ],
        "clerk": {"id": "A1023", "name": "陈晓明"},
        "terminal": None,
        "agencies": ["汕头市公安局"],
        "agencies_concerned": [],
        "targets": ["clerk", "matter"],
        "theme": None,
        "reasons": [],
        "comment": "",
        "stage": "deliver",
        "visit": 1,
        "assess_number": 1,
        "follows": [],
        "area_code": "440500",
        "presented_at": "2026-11-26T10:00:00.000+08:00",
        "presented_clock_synced": True,
        "rated_at": "2026-11-26T10:00:03.000+08:00",
        "rated_clock_synced": True,
        "elapsed_ms": 3000,
    }


def build_store(
    path: Path, device_id: str, n: int, *, outbox: bool, signer: Any = None, first: int = 0
) -> None:
    """``n`` sealed ratings written as ``append_rating`` writes them, in one transaction.

    ``outbox``: each also waits in the outbox (a backlog), else it is history (acked long ago).
    """
    with Store(path, device_id=device_id) as store:
        conn = store.conn
        conn.execute("BEGIN IMMEDIATE")
        prev, ratings, cases, waiting = GENESIS_HASH, [], [], []
        for seq in range(1, n + 1):
            body = content(first + seq)
            body.update(id=new_record_id(), seq=seq, device_id=device_id)
            if store.epoch:  # as append_rating seals it (issue 15 B)
                body["epoch"] = store.epoch
            record = seal(body, prev_hash=prev, signer=signer)
            prev = record["hash"]
            serial = body["cases"][0]["serial"]
            ratings.append(
                (
                    record["id"],
                    seq,
                    device_id,
                    record["presentation_id"],
                    record["level"],
                    "deliver",
                    1,
                    record["rated_at"],
                    record["hash"],
                    record["prev_hash"],
                    canonical_json(record).decode(),
                )
            )
            cases.append((record["id"], serial, "deliver", rating_slot("instant", "deliver"), 1))
            if outbox:
                waiting.append((seq, record["id"]))
        conn.executemany("INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ratings)
        conn.executemany(
            "INSERT INTO rating_cases (rating_id, serial, stage, slot, assess_number, kind)"
            " VALUES (?, ?, ?, ?, ?, 'instant')",
            cases,
        )
        conn.executemany("INSERT INTO outbox (seq, rating_id) VALUES (?, ?)", waiting)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A private mosquitto on a free port (its config in ``work``), stopped and started again
    on the same port at will; ``persistent`` keeps its sessions (the city's subscription and
    what was queued for it) across a restart, as a city's broker does."""

    def __init__(self, work: Path, *, persistent: bool = False) -> None:
        self.port = free_port()
        self.conf = work / "mosquitto.conf"
        keep = f"persistence true\npersistence_location {work}/\n" if persistent else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"{keep or 'persistence false' + chr(10)}"
            "max_inflight_messages 100\nmax_queued_messages 0\nset_tcp_nodelay true\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@contextmanager
def mosquitto(work: Path) -> Iterator[int]:
    """A private broker on a free port; yields the port."""
    broker = Broker(work)
    broker.start()
    try:
        yield broker.port
    finally:
        broker.stop()


class City:
    """The subscriber process; with ``report``, arrival times by id (a reader thread)."""

    def __init__(self, port: int, *, report: bool, persistent: bool = False) -> None:
        args = [sys.executable, "-m", "bench.sync_city", "127.0.0.1", str(port), PREFIX]
        args += ["--report"] if report else []
        self.proc = subprocess.Popen(
            [*args, *(["--persistent"] if persistent else [])],
            stdout=subprocess.PIPE,
            cwd=REPO,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the city subscriber did not start")
        self.arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
        if report:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            rid, _, at = line.strip().partition(" ")
            self.arrivals.put((rid, float(at)))

    def arrival(self, rid: str, timeout: float = 10.0) -> float:
        """When ``rid`` reached the city (earlier arrivals of other ids are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            got, at = self.arrivals.get(timeout=max(0.0, deadline - time.monotonic()))
            if got == rid:
                return at

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def thread_cpu(thread: threading.Thread) -> float:
    """CPU seconds ``thread`` has used (its own POSIX CPU clock)."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


# -- 1. the drain --------------------------------------------------------------------------


def raw_paho_drain(port: int, device: str, payloads: list[tuple[str, bytes]]) -> float:
    """Seconds for raw paho (QoS 1, 100 in flight) to have every payload acked by the city."""
    waiting = {rid for rid, _ in payloads}
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        waiting.difference_update(json.loads(msg.payload)["ids"])
        if not waiting:
            done.set()

    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ref-{device}")
    client.max_inflight_messages_set(100)
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    started = time.perf_counter()
    client.connect("127.0.0.1", port, keepalive=60)
    no_delay(client)
    client.subscribe(f"{PREFIX}/{device}/acks", qos=1)
    while not subscribed.is_set():
        client.loop(0.1)
    topic = f"{PREFIX}/{device}/ratings"
    for _, payload in payloads:
        client.publish(topic, payload, qos=1)
    while not done.is_set():
        client.loop(0.1)
    took = time.perf_counter() - started
    client.disconnect()
    return took


def worker_drain(port: int, device: str, path: Path, n: int) -> tuple[float, float]:
    """Seconds from the worker's start until its whole backlog of ``n`` left the outbox, and
    its CPU seconds per rating."""
    acked: set[str] = set()
    done = threading.Event()

    def on_ack(ids: list[str]) -> None:
        acked.update(ids)
        if len(acked) >= n:
            done.set()

    worker = SyncWorker(
        store_path=path,
        device_id=device,
        host="127.0.0.1",
        port=port,
        topic_prefix=PREFIX,
        max_rate=math.inf,
        on_ack=on_ack,
    )
    started = time.perf_counter()
    worker.start()
    if not done.wait(120):
        raise RuntimeError(f"the backlog did not drain: {len(acked)} of {n} acked")
    took = time.perf_counter() - started
    cpu = thread_cpu(worker)
    worker.stop()
    worker.join(5)
    with sqlite3.connect(path) as conn:
        left = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    if left:
        raise RuntimeError(f"{left} rows left in the outbox after every ack")
    return took, cpu / n


def bench_drain(tmp: Path, port: int) -> list[Row]:
    key = DeviceKey.create(tmp / "device.key")
    master = tmp / "backlog.db"
    build_store(master, "bench-drain", BACKLOG, outbox=True, signer=key)
    with Store(master, device_id="bench-drain") as store:
        if store.verify() is not None or store.signed_count() != (BACKLOG, 0):
            raise RuntimeError("the backlog built by the shortcut does not verify")
        payloads = [(r["id"], canonical_json(r)) for r in store.pending(BACKLOG)]
    rates_worker: list[float] = []
    rates_ref: list[float] = []
    cpu: list[float] = []
    city = City(port, report=False)
    try:
        for r in range(DRAIN_ROUNDS):
            copy = tmp / f"drain-{r}.db"
            shutil.copyfile(master, copy)
            order = ["ref", "worker"] if r % 2 == 0 else ["worker", "ref"]
            for kind in order:
                if kind == "ref":
                    rates_ref.append(BACKLOG / raw_paho_drain(port, f"ref{r}", payloads))
                else:
                    took, per = worker_drain(port, "bench-drain", copy, BACKLOG)
                    rates_worker.append(BACKLOG / took)
                    cpu.append(per * 1e6)
            copy.unlink()
    finally:
        city.close()
    drain = Row(
        f"{BACKLOG:,}-rating backlog drained, end to end",
        "ratings/s",
        rates_worker,
        "raw paho QoS 1, 100 in flight, same city",
        rates_ref,
        f"≥ {DRAIN_RATIO:g}x ref",
    )
    drain.met = drain.ratios is not None and drain.ratios[0] >= DRAIN_RATIO
    return [drain, Row("worker CPU per rating while draining", "µs", cpu)]


# -- 2. commit → at city at 0 and 100k history ----------------------------------------------


class Device:
    """A store and its connected worker, for one rating at a time."""

    def __init__(self, path: Path, device: str, port: int) -> None:
        self.store = Store(path, device_id=device)
        self.acked = threading.Event()
        self.worker = SyncWorker(
            store_path=path,
            device_id=device,
            host="127.0.0.1",
            port=port,
            topic_prefix=PREFIX,
            on_ack=lambda ids: self.acked.set(),
        )
        self.worker.start()
        deadline = time.monotonic() + 10
        while not self.worker.status.connected:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not connect")
            time.sleep(0.01)
        self.n = 1_000_000 * (1 + len(device))

    def one(self, city: City) -> tuple[float, float, float]:
        """(append_rating ms, commit → at city ms, worker CPU µs for its publish and ack)."""
        self.n += 1
        self.acked.clear()
        cpu = thread_cpu(self.worker)
        t0 = time.monotonic()
        record = self.store.append_rating(content(self.n))
        committed = time.monotonic()
        self.worker.notify()
        at = city.arrival(record["id"])
        if not self.acked.wait(10):
            raise RuntimeError("no ack applied")
        used = thread_cpu(self.worker) - cpu
        return (committed - t0) * 1000, (at - committed) * 1000, used * 1e6

    def close(self) -> None:
        self.worker.stop()
        self.worker.join(5)
        self.store.close()


def bench_latency(tmp: Path, port: int) -> list[Row]:
    build_store(tmp / "history.db", "bench-hist", HISTORY, outbox=False, first=10_000_000)
    empty = Device(tmp / "empty.db", "bench-empty", port)
    full = Device(tmp / "history.db", "bench-hist", port)
    city = City(port, report=True)
    ref = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ref-latency")
    ref.connect("127.0.0.1", port, keepalive=60)
    no_delay(ref)
    ref.loop_start()
    sample = canonical_json(seal({**content(0), "id": "x", "seq": 1}, prev_hash=GENESIS_HASH))
    got: dict[str, list[float]] = {k: [] for k in ("ref", "e_lat", "h_lat", "e_cpu", "h_cpu")}
    got.update(e_app=[], h_app=[])
    try:
        for device in (empty, full):  # warm-up: first publish, first ack, caches
            for _ in range(5):
                device.one(city)
        for i in range(LATENCY_SAMPLES):
            kinds = ["ref", "empty", "full"]
            for kind in kinds[i % 3 :] + kinds[: i % 3]:
                if kind == "ref":
                    rid = f"ref-{i}"
                    payload = sample.replace(b'"id":"x"', f'"id":"{rid}"'.encode())
                    t0 = time.monotonic()
                    ref.publish(f"{PREFIX}/ref-latency/ratings", payload, qos=1)
                    got["ref"].append((city.arrival(rid) - t0) * 1000)
                    continue
                app, lat, cpu = (empty if kind == "empty" else full).one(city)
                k = "e" if kind == "empty" else "h"
                got[f"{k}_app"].append(app)
                got[f"{k}_lat"].append(lat)
                got[f"{k}_cpu"].append(cpu)
    finally:
        ref.loop_stop()
        ref.disconnect()
        city.close()
        empty.close()
        full.close()
    rows = []
    for name, key in (("empty store", "e"), (f"{HISTORY // 1000}k past ratings", "h")):
        lat = Row(f"commit → at city, {name}", "ms", got[f"{key}_lat"])
        lat.ref_name, lat.ref_values = "raw paho publish → at city", got["ref"]
        lat.goal = f"p99 ≤ {LATENCY_P99_MS:g} ms"
        lat.met = lat.summary[1] <= LATENCY_P99_MS
        rows.append(lat)
    for what, key, unit in (
        ("commit → at city", "lat", "ms"),
        ("worker CPU per rating (publish + ack)", "cpu", "µs"),
        ("append_rating (commit, fsync)", "app", "ms"),
    ):
        row = Row(
            f"{what}, {HISTORY // 1000}k history",
            unit,
            got[f"h_{key}"],
            "the same, empty store",
            got[f"e_{key}"],
        )
        if key != "app":
            row.goal = f"median ≤ {HISTORY_RATIO:g}x ref"
            row.met = row.ratios is not None and row.ratios[0] <= HISTORY_RATIO
        rows.append(row)
    return rows


# -- 3. opening the store --------------------------------------------------------------------


def bench_open(tmp: Path) -> list[Row]:
    """Store() at 100k ratings beside an empty store; the full quick_check for information."""
    big, small = tmp / "history.db", tmp / "open-empty.db"
    Store(small, device_id="bench-hist").close()
    t_big: list[float] = []
    t_small: list[float] = []
    t_check: list[float] = []
    for i in range(OPEN_SAMPLES):
        for path, times in ((big, t_big), (small, t_small))[:: 1 if i % 2 else -1]:
            t0 = time.perf_counter()
            Store(path, device_id="bench-hist").close()
            times.append((time.perf_counter() - t0) * 1000)
    for _ in range(5):
        conn = sqlite3.connect(big)
        t0 = time.perf_counter()
        _quick_check(conn)
        t_check.append((time.perf_counter() - t0) * 1000)
        conn.close()
    opened = Row(
        f"Store() open, {HISTORY // 1000}k ratings", "ms", t_big, "Store() open, empty", t_small
    )
    opened.goal = f"median ≤ {HISTORY_RATIO:g}x ref"
    opened.met = opened.ratios is not None and opened.ratios[0] <= HISTORY_RATIO
    full = Row(f"full quick_check, {HISTORY // 1000}k (scheduled, not at open)", "ms", t_check)
    return [opened, full]


def rows() -> list[Row]:
    """Every row of this benchmark (a broker and temporary stores of its own)."""
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmpdir:
        tmp = Path(tmpdir)
        with mosquitto(tmp) as port:
            out = bench_drain(tmp, port)
            out += bench_latency(tmp, port)
        out += bench_open(tmp)
    return out


def main() -> int:
    started = time.monotonic()
    print(f"machine: {os.cpu_count()} CPUs; sync benchmark (issue 8)")
    print(table(rows()))
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
