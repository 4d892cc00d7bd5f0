"""Receiver throughput (issue 8): records stored per second by the city receiver, on SQLite and on
PostgreSQL, each beside a reference measured in the same run.

* **ingest** — :class:`sync.hub.ingest.Ingest` on batches of ``BATCH`` messages from ``DEVICES``
  pads (what a receiver's batch holds under load): topic, JSON, schema, hash, Ed25519 signature,
  the head locks, inserts, one transaction per batch.  Reference: the same rows inserted by raw
  ``sqlite3`` / raw ``psycopg`` ``executemany`` into the same table, same pragmas, same
  transactions (one per batch), nothing checked.
* **receiver end to end** (SQLite) — a paho client publishes every record (QoS 1) to a private
  mosquitto; the clock runs until the receiver has stored the last one.  Reference: a raw paho
  subscriber of the same topics receiving the same messages from the same broker.
* **a pad's drain through the receiver** — a real ``SyncWorker`` drains a ``DRAIN_BACKLOG``
  backlog through mosquitto and the receiver until its outbox is empty; reference: raw paho QoS 1
  (100 in flight) to the simple acking city of :mod:`bench.sync_link`.
* **checks alone** — the receiver's per-message checks without any database, beside the Ed25519
  verification alone: the floor under any ingest figure (issue 16: goal ``CHECK_GOAL``).
* **receiver CPU per record** (issue 16) — a real ``evaluator hub run`` process (PostgreSQL,
  mosquitto) takes ``PARTS_RECORDS`` records published by ``DEVICES`` pads (after a warm-up of
  ``PARTS_WARM`` records a pad, not counted: imports and prepared statements); its CPU seconds
  (``/proc``: user + system, after it was ready) per record stored, as records per CPU-second,
  beside the Ed25519 verify-only loop's records per CPU-second on the same records: how close
  one receiver gets to the verification alone, on one core, whatever else the machine runs.
* **the same, ``--protocol 3.1.1``** — what a receiver under ``--part`` speaks by default (no
  MQTT 5 properties for paho to parse per message).
* **two receivers, --part 0/2 and 1/2** (issue 16) — the same records through two such
  processes, each a partition of the devices: records/s until all are stored, beside one
  receiver's records/s in the same run (rounds alternating).  On a machine of ``C`` free cores
  the model is ``min(N, C') × one receiver`` where ``C'`` is what the broker, PostgreSQL and the
  publisher leave (docs/reliability.md).

``python -m bench.hub [checks] [parts] [ingest] [e2e] [drain]``: only those rows (default all).

``python -m bench.hub`` or ``python -m bench.run --hub``.  Figures are records/s (higher is better);
the ratio is figure ÷ reference; the goal (issue 8) is a ratio of at least ``GOAL_RATIO``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.stats import Row, median_p99, table
from evaluator.rules.records import (
    GENESIS_HASH,
    canonical_json,
    new_record_id,
    seal,
    signature_of,
)
from sync.hub.db import HubDB, open_db
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey

DEVICES = 20
PER_DEVICE = 100  # records per device per repetition
BATCH = 200
REPEATS = 5
E2E_REPEATS = 3
DRAIN_BACKLOG = 10_000
DRAIN_ROUNDS = 3
GOAL_RATIO = 0.5
#: Issue 16: a receiver's checks (and its CPU per record) at least this × a verify-only loop.
CHECK_GOAL = 0.8
CHECK_REPEATS = 15
#: Records of each pad per round stored before the measurement starts (a warm-up).
PARTS_WARM = 10
PARTS_RECORDS = DEVICES * (PER_DEVICE - PARTS_WARM)
PARTS_ROUNDS = 3
PREFIX = "hcp/v1"
_ROOT = Path(__file__).resolve().parents[1]


def _goal(row: Row) -> Row:
    """Issue 8's goal on ``row``: a median at least half its reference's."""
    row.goal = f"≥ {GOAL_RATIO:g}x ref"
    row.met = row.ratios is not None and row.ratios[0] >= GOAL_RATIO
    return row


def _content(serial: str) -> dict[str, Any]:
    return {
        "presentation_id": new_record_id(), "level": "satisfied", "score": 8, "satisfaction": 4,
        "gbt_code": 2, "channel": 4,
        "cases": [{"serial": serial, "matter_code": "M1", "matter_name": "不动产登记",
                   "kind": "instant"}],
        "clerk": {"id": "A1023", "name": "陈晓明"}, "terminal": None, "agencies": [],
        "agencies_concerned": [], "targets": ["clerk", "matter"], "theme": None, "reasons": [],
        "comment": "", "stage": "deliver", "visit": 1, "assess_number": 1, "follows": [],
        "area_code": "440500", "presented_at": "2026-05-29T04:26:40.000+08:00",
        "presented_clock_synced": True, "rated_at": "2026-05-29T04:26:47.400+08:00",
        "rated_clock_synced": True, "elapsed_ms": 7400,
    }  # fmt: skip


class Fleet:
    """``DEVICES`` keys and, per repetition, the next ``PER_DEVICE`` records of each chain."""

    def __init__(self, work: Path, tag: str) -> None:
        self.keys = {f"{tag}-{i:03d}": DeviceKey.create(work / f"{tag}-{i}.key")
                     for i in range(DEVICES)}  # fmt: skip
        self.tips = dict.fromkeys(self.keys, (0, GENESIS_HASH))

    def register(self, db: HubDB) -> None:
        for device, key in self.keys.items():
            db.register(device, key.public.text)

    def next_round(self) -> list[tuple[str, bytes, dict[str, Any]]]:
        """Messages interleaved across devices (seq order within each), as pads send them."""
        per: dict[str, list[tuple[str, bytes, dict[str, Any]]]] = {}
        for device, key in self.keys.items():
            seq, prev = self.tips[device]
            out = []
            for _ in range(PER_DEVICE):
                seq += 1
                body = dict(_content(f"{device}-{seq}"), id=new_record_id(), seq=seq,
                            device_id=device)  # fmt: skip
                rec = seal(body, prev_hash=prev, signer=key)
                prev = rec["hash"]
                out.append((f"{PREFIX}/{device}/ratings", canonical_json(rec), rec))
            self.tips[device] = (seq, prev)
            per[device] = out
        return [m for group in zip(*per.values(), strict=True) for m in group]


def _raw_insert(db: HubDB, msgs: list[tuple[str, bytes, dict[str, Any]]]) -> float:
    """The reference: the same rows in the same transactions as the receiver (one per batch,
    one ``executemany``), nothing checked, nothing read."""
    sql = (
        "INSERT INTO hub_records (id, device_id, stream, seq, hash, prev_hash, record,"
        " received_at) VALUES (?, ?, 'ratings', ?, ?, ?, ?, ?)"
    )
    start = time.perf_counter()
    for i in range(0, len(msgs), BATCH):
        rows = [
            (rec["id"], rec["device_id"], rec["seq"], rec["hash"], rec["prev_hash"],
             payload.decode(), "2026-01-01T00:00:00.000+00:00")
            for _, payload, rec in msgs[i : i + BATCH]
        ]  # fmt: skip
        with db.transaction():
            db.executemany(sql, rows)
    return len(msgs) / (time.perf_counter() - start)


def _ingest(ingest: Ingest, msgs: list[tuple[str, bytes, dict[str, Any]]]) -> float:
    start = time.perf_counter()
    stored = 0
    for i in range(0, len(msgs), BATCH):
        stored += ingest.handle_batch([(t, p) for t, p, _ in msgs[i : i + BATCH]]).stored
    took = time.perf_counter() - start
    assert stored == len(msgs), f"stored {stored} of {len(msgs)}"
    return len(msgs) / took


def bench_checks(work: Path) -> Row:
    """The receiver's checks alone, no database (topic, size, nesting, JSON, schema, hash,
    Ed25519): the floor of any ingest figure, beside the Ed25519 verification alone, the two
    loops alternating on the same records (``CHECK_REPEATS`` rounds)."""
    fleet = Fleet(work, "chk")
    with open_db(f"sqlite:///{work / 'checks.db'}") as db:
        fleet.register(db)
        ingest = Ingest(db, PREFIX)
        keys = {d: k.public for d, k in fleet.keys.items()}
        values, ref_values = [], []
        for _ in range(CHECK_REPEATS):
            msgs = fleet.next_round()
            start = time.thread_time()  # CPU, as the reference: the machine is shared
            for t, p, _rec in msgs:
                ingest._check(t, p)  # the per-message half of handle_batch
            values.append(len(msgs) / (time.thread_time() - start))
            ref_values.append(len(msgs) / _verify_only(keys, msgs))
    return Row("receiver checks alone, no database", "records/s", values,
               "Ed25519 verify alone (sync.keys)", ref_values, f"≥ {CHECK_GOAL:g}x ref",
               median_p99(values)[0] >= CHECK_GOAL * median_p99(ref_values)[0])  # fmt: skip


def _verify_only(keys: dict[str, Any], msgs: list[tuple[str, bytes, dict[str, Any]]]) -> float:
    """Seconds (CPU of this thread) the Ed25519 verification of ``msgs`` takes, nothing else."""
    start = time.thread_time()
    for _t, _p, rec in msgs:
        keys[rec["device_id"]].check(rec["hash"].encode("ascii"), signature_of(rec) or b"")
    return time.thread_time() - start


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Hubs:
    """``n`` real ``evaluator hub run`` processes, ``--part i/n`` each (no option when one)."""

    def __init__(self, work: Path, url: str, port: int, n: int, tag: str,
                 extra: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.logs = [work / f"{tag}-{i}.log" for i in range(n)]
        self.procs = []
        for i, log_path in enumerate(self.logs):
            part = ["--part", f"{i}/{n}", *extra] if n > 1 else [*extra]
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "evaluator", "hub", "run", "--db", url, "--broker",
                 f"mqtt://127.0.0.1:{port}", "--client-id", f"{tag}-{i}", *part],
                stdout=log_path.open("w"), stderr=subprocess.STDOUT, cwd=_ROOT,
            ))  # fmt: skip
        from tests.support import wait_for

        for log_path in self.logs:
            wait_for(lambda p=log_path: "receiving on" in p.read_text(), 60, f"{log_path.name}")
        if n > 1:  # every partition's devices subscribed
            wait_for(lambda: all("in all" in p.read_text() for p in self.logs), 60, "parts")
        self.cpu0 = [_cpu_seconds(p.pid) for p in self.procs]

    def cpu(self) -> list[float]:
        return [_cpu_seconds(p.pid) - c for p, c in zip(self.procs, self.cpu0, strict=True)]

    def stop(self) -> None:
        from tests.support import stop_process

        for proc in self.procs:
            stop_process(proc, 15)


def _warm_and_measured(msgs: list[Any]) -> tuple[list[Any], list[Any]]:
    """A round's first ``PARTS_WARM`` messages of each pad (stored before the clocks start),
    and the rest: the figures are the receiver's steady state, not its first batch."""
    cut = PARTS_WARM * DEVICES  # the round interleaves the pads, seq order within each
    return msgs[:cut], msgs[cut:]


def bench_parts(work: Path, url: str) -> list[Row]:
    """One receiver, then two with ``--part``, alternating, ``PARTS_ROUNDS`` rounds of
    ``PARTS_RECORDS`` records each: the CPU of one receiver per record beside the verify-only
    loop, and two receivers' combined records/s beside one's."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from tests.support import Broker, wait_for

    broker = Broker(work)
    broker.conf.write_text(broker.conf.read_text() + "max_queued_messages 100000\n")
    broker.start()
    fleet = Fleet(work, "parts")
    with open_db(url) as db:
        fleet.register(db)
    keys = {d: k.public for d, k in fleet.keys.items()}
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-parts-pub",
                      protocol=mqtt.MQTTv5)  # fmt: skip
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    one, two, cpu_rate, verify_rate, cpu311, verify311 = [], [], [], [], [], []
    kinds = [(1, ()), (1, ("--protocol", "3.1.1")), (2, ())]  # two: auto, i.e. 3.1.1
    try:
        with open_db(url) as db:
            for r in range(PARTS_ROUNDS * len(kinds)):
                n, extra = kinds[(r + r // len(kinds)) % len(kinds)]  # each first in turn
                warm, msgs = _warm_and_measured(fleet.next_round())
                hubs = _Hubs(work, url, broker.port, n, f"r{r}", extra)
                try:
                    warmed = db.count() + len(warm)
                    for t, p, _rec in warm:  # one-time costs (imports, prepared statements)
                        pub.publish(t, p, qos=1)
                    wait_for(lambda t=warmed: db.count() == t, 600, "warm-up")
                    hubs.cpu0 = [_cpu_seconds(p.pid) for p in hubs.procs]
                    target = db.count() + len(msgs)
                    start = time.perf_counter()
                    for t, p, _rec in msgs:
                        pub.publish(t, p, qos=1)
                    wait_for(lambda t=target: db.count() == t, 600, "all stored")
                    took = time.perf_counter() - start
                    cpu = hubs.cpu()
                finally:
                    hubs.stop()
                assert db.parked() == 0, "a receiver parked a record"
                if n == 1 and extra:
                    cpu311.append(len(msgs) / cpu[0])
                    verify311.append(len(msgs) / _verify_only(keys, msgs))
                    continue
                (one if n == 1 else two).append(len(msgs) / took)
                if n == 1:
                    cpu_rate.append(len(msgs) / cpu[0])
                    verify_rate.append(len(msgs) / _verify_only(keys, msgs))
    finally:
        pub.loop_stop()
        pub.disconnect()
        broker.stop()
    per = Row("one receiver: records per CPU-second (evaluator hub run, PostgreSQL)",
              "records/CPU-s", cpu_rate, "Ed25519 verify-only loop, same records",
              verify_rate)  # fmt: skip
    per.goal = f"≥ {CHECK_GOAL:g}x ref"
    per.met = median_p99(cpu_rate)[0] >= CHECK_GOAL * median_p99(verify_rate)[0]
    per311 = Row("one receiver --protocol 3.1.1 (what --part runs): records per CPU-second",
                 "records/CPU-s", cpu311, "Ed25519 verify-only loop, same records",
                 verify311, f"≥ {CHECK_GOAL:g}x ref",
                 median_p99(cpu311)[0] >= CHECK_GOAL * median_p99(verify311)[0])  # fmt: skip
    both = Row(f"two receivers --part 0/2, 1/2 ({os.cpu_count()} cores)", "records/s", two,
               "one receiver, same run", one)  # fmt: skip
    return [per, per311, both]


def bench_drain_hub(work: Path) -> Row:
    """The pads' drain through the real receiver: a :class:`sync.mqtt.SyncWorker` with a
    ``DRAIN_BACKLOG`` backlog (rate limit off) → mosquitto → :class:`Receiver` → SQLite →
    ack → outbox row gone (bench.sync_link's worker_drain), a fresh hub database each round;
    beside raw paho QoS 1, 100 in flight, to bench.sync_city's simple acking city (the reference
    of bench.sync_link), rounds alternating."""
    import shutil

    from bench import sync_link
    from sync.hub.receiver import Receiver
    from sync.store import Store

    device = "bench-drain"
    key = DeviceKey.create(work / "drain.key")
    master = work / "drain-backlog.db"
    sync_link.build_store(master, device, DRAIN_BACKLOG, outbox=True, signer=key)
    with Store(master, device_id=device) as store:
        payloads = [(r["id"], canonical_json(r)) for r in store.pending(DRAIN_BACKLOG)]
    broker = sync_link.Broker(work)
    broker.start()
    values, ref_values = [], []
    try:
        for r in range(DRAIN_ROUNDS):
            order = ["ref", "hub"] if r % 2 == 0 else ["hub", "ref"]
            for kind in order:
                if kind == "ref":
                    city = sync_link.City(broker.port, report=False)
                    try:
                        took = sync_link.raw_paho_drain(broker.port, f"ref{r}", payloads)
                    finally:
                        city.close()
                    ref_values.append(DRAIN_BACKLOG / took)
                    continue
                url = f"sqlite:///{work / f'drain-hub-{r}.db'}"
                with open_db(url) as db:
                    db.register(device, key.public.text)
                copy = work / f"drain-{r}.db"
                shutil.copyfile(master, copy)
                receiver = Receiver(url, [f"mqtt://127.0.0.1:{broker.port}"],
                                    client_id=f"bench-hub-{r}")  # fmt: skip
                receiver.start()
                try:
                    assert receiver.wait_ready(15)
                    took, _cpu = sync_link.worker_drain(broker.port, device, copy, DRAIN_BACKLOG)
                finally:
                    receiver.stop()
                    receiver.join(10)
                with open_db(url) as db:
                    assert db.count() == DRAIN_BACKLOG, db.count()
                values.append(DRAIN_BACKLOG / took)
                copy.unlink()
    finally:
        broker.stop()
    return _goal(Row(f"pad's {DRAIN_BACKLOG:,}-rating drain through the receiver (SQLite)",
                     "ratings/s", values, "raw paho QoS 1, 100 in flight, simple acking city",
                     ref_values))  # fmt: skip


def bench_db(kind: str, url: str, ref_url: str, work: Path) -> Row:
    fleet, ref_fleet = Fleet(work, f"{kind}-h"), Fleet(work, f"{kind}-r")
    hub, ref = open_db(url), open_db(ref_url)
    fleet.register(hub)
    ingest = Ingest(hub, PREFIX)
    values, ref_values = [], []
    for _ in range(REPEATS):
        values.append(_ingest(ingest, fleet.next_round()))
        ref_values.append(_raw_insert(ref, ref_fleet.next_round()))
    hub.close()
    ref.close()
    driver = "sqlite3" if kind == "sqlite" else "psycopg"
    return _goal(Row(f"receiver ingest, {kind}", "records/s", values, f"raw {driver} inserts",
                     ref_values))  # fmt: skip


def bench_e2e(work: Path) -> Row:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from sync.hub.receiver import Receiver
    from tests.support import Broker, wait_for

    broker = Broker(work)
    broker.conf.write_text(broker.conf.read_text() + "max_queued_messages 100000\n")
    broker.start()
    url = f"sqlite:///{work / 'e2e.db'}"
    fleet = Fleet(work, "e2e")
    with open_db(url) as db:
        fleet.register(db)
    receiver = Receiver(url, [f"mqtt://{broker.host}:{broker.port}"], client_id="bench-hub")
    receiver.start()
    assert receiver.wait_ready(15)
    got = [0]
    lock = threading.Lock()

    def on_message(*_: Any) -> None:
        with lock:
            got[0] += 1

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = on_message
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(100)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    values, ref_values = [], []
    try:
        with open_db(url) as db:
            for _ in range(E2E_REPEATS):
                msgs = fleet.next_round()
                before = db.count()
                start = time.perf_counter()
                for t, p, _rec in msgs:
                    pub.publish(t, p, qos=1)
                target = before + len(msgs)
                wait_for(lambda t=target: db.count() == t, 300, "all stored")
                values.append(len(msgs) / (time.perf_counter() - start))
            receiver.stop()
            receiver.join(10)
            sub.connect(broker.host, broker.port)
            sub.subscribe(f"{PREFIX}/+/ratings", qos=1)
            sub.loop_start()
            assert subscribed.wait(10)
            for _ in range(E2E_REPEATS):
                msgs = fleet.next_round()
                with lock:
                    got[0] = 0
                start = time.perf_counter()
                for t, p, _rec in msgs:
                    pub.publish(t, p, qos=1)
                wait_for(lambda: got[0] >= DEVICES * PER_DEVICE, 300, "all received")
                ref_values.append(len(msgs) / (time.perf_counter() - start))
    finally:
        receiver.stop()
        for c in (pub, sub):
            c.loop_stop()
            c.disconnect()
        broker.stop()
    return _goal(Row("receiver end to end, sqlite", "records/s", values, "raw paho subscriber",
                     ref_values))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from tests.pg import PostgresServer

    names = sys.argv[1:] if argv is None else argv
    wanted = {a for a in names if not a.startswith("-")} or {
        "ingest", "e2e", "drain", "checks", "parts"}  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        work = Path(tmp)
        if "ingest" in wanted:
            rows.append(bench_db("sqlite", f"sqlite:///{work / 'hub.db'}",
                                 f"sqlite:///{work / 'ref.db'}", work))  # fmt: skip
        if wanted & {"ingest", "parts"}:
            server = PostgresServer()
            try:
                if "ingest" in wanted:
                    rows.append(bench_db("postgresql", server.fresh_database("hub"),
                                         server.fresh_database("ref"), work))  # fmt: skip
                if "parts" in wanted:
                    rows.extend(bench_parts(work, server.fresh_database("parts")))
            finally:
                server.stop()
        if "e2e" in wanted:
            rows.append(bench_e2e(work))
        if "drain" in wanted:
            rows.append(bench_drain_hub(work))
        if "checks" in wanted:
            rows.append(bench_checks(work))
    print(f"receiver: {DEVICES} pads, batches of {BATCH} messages, {PER_DEVICE} records per pad "
          f"per repetition; SQLite {sqlite3.sqlite_version} WAL synchronous=FULL")  # fmt: skip
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
