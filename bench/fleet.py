"""A city's fleet against one broker and the reference receivers (issue 8, the proof):

    python -m bench.fleet [--devices 1000] [--per-process 100] [--backlog 100] [--live 5]
                          [--receivers 2] [--db URL] [--resend-after 30]

One private mosquitto (``max_connections -1``, ``$SYS`` every second, the file-descriptor limit
raised to its hard maximum before anything starts); ``--receivers`` hub receivers
(:class:`sync.hub.receiver.Receiver`, each in a process of its own) sharing the load through
one MQTT 5 shared-subscription group, over one database (SQLite in the run's folder, or
``--db postgresql://…``); ``--devices`` simulated pads, ``--per-process`` of them per process:
each pad is a real :class:`sync.mqtt.SyncWorker` thread with the shipped ``[mqtt]`` defaults over
its own store, which holds ``--backlog`` ratings signed with its own device key (the shortcut of
:func:`bench.sync_link.build_store`), that key registered in the hub's database.  At "go" every
worker starts; while the backlog drains, each pad commits ``--live`` more ratings through the
real ``Store.append_rating`` (signed, ``notify()`` after each), at random moments.  The pads
start at random moments of the first ``--ramp`` seconds (default 10, the shipped
``reconnect_spread``: how a city's pads come back after an outage).

Reported: every rating stored exactly once (the count, no id twice, each pad's records in the
hub in its seq order with an intact chain (``verify_chain``) and the same ids as its store, every
outbox empty), the drain time (go → the last rating stored and every outbox empty), the
receivers' throughput (stored/s in all, and per receiver), the peak of broker connections
(from ``$SYS/broker/clients/connected``), and the CPU seconds of each kind of process.
``docs/scaling.md`` holds one full-size run; ``tests/test_fleet.py`` runs a small one so this
cannot rot.

Roles: the same module runs the device processes (``--role devices``) and the receivers
(``--role receiver``); they talk to the parent by lines on stdin/stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from bench.sync_fleet import defaults
from bench.sync_link import PREFIX, REPO, Broker, build_store, content

#: Seconds, after the last pad started, during which live ratings are still committed.
LIVE_SPREAD = 5.0


def raise_fd_limit() -> int:
    """The soft open-files limit raised to the hard one (children inherit it: mosquitto needs a
    descriptor per connection); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class FleetBroker(Broker):
    """The benchmark's mosquitto, configured for a fleet: no connection limit, ``$SYS`` topics
    every second (the peak of connections is read there), nothing dropped from a queue."""

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_connections -1\nsys_interval 1\nmax_inflight_messages 100\n"
            "max_queued_messages 0\nset_tcp_nodelay true\n"
        )


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats_dict(stats: Any) -> dict[str, Any]:
    if is_dataclass(stats) and not isinstance(stats, type):
        return asdict(stats)
    if isinstance(stats, dict):
        return dict(stats)
    return {k: v for k, v in vars(stats).items() if not k.startswith("_")}


# -- the receiver process -----------------------------------------------------------------------


def receiver_role(args: argparse.Namespace) -> int:
    """One hub receiver; prints ``ready`` once connected, then ``stats {json}`` every 0.2 s
    until its standard input closes."""
    from sync.hub.receiver import Receiver

    receiver = Receiver(
        args.db,
        brokers=[f"mqtt://127.0.0.1:{args.port}"],
        topic_prefix=PREFIX,
        group="hub",
        client_id=args.name,
    )
    receiver.start()
    deadline = time.monotonic() + 30
    while not receiver.connected:
        if time.monotonic() > deadline:
            print("error the receiver did not connect", flush=True)
            return 1
        time.sleep(0.02)
    print("ready", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while not done.wait(0.2):
        print(f"stats {json.dumps({**_stats_dict(receiver.stats), 't': time.monotonic()})}")
        sys.stdout.flush()
    receiver.stop()
    receiver.join()
    print(f"stats {json.dumps({**_stats_dict(receiver.stats), 't': time.monotonic()})}")
    sys.stdout.flush()
    return 0


# -- the device process -------------------------------------------------------------------------


def device_name(n: int) -> str:
    return f"fleet{n:05d}"


def devices_role(args: argparse.Namespace) -> int:
    """``--count`` pads from number ``--first``: builds their keys and stores (prints
    ``key <device> <public key>`` each, then ``built``), waits for ``go``, runs their workers,
    commits the live ratings, prints ``drained <s after go>`` once every outbox is empty, and
    stops at ``stop`` (or when stdin closes)."""
    from evaluator.rules.errors import StoreError
    from sync.keys import DeviceKey
    from sync.mqtt import SyncWorker
    from sync.store import Store

    work = Path(args.work)
    names = [device_name(n) for n in range(args.first, args.first + args.count)]
    keys = {}
    for name in names:
        key = DeviceKey.create(work / "keys" / f"{name}.key")
        keys[name] = key
        build_store(work / f"{name}.db", name, args.backlog, outbox=True, signer=key)
        print(f"key {name} {key.public.text}", flush=True)
    print("built", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    go = time.monotonic()
    turns = count_turns()
    rng = random.Random(args.first)
    settings = defaults()
    # A real pad runs its full store check on its own CPU and card 60 s after start; 100 pads
    # per process on one disk would run theirs at the same moment, which no hall ever does.
    settings["store_check_after"] = 3600.0
    if args.resend_after:
        settings["resend_after"] = args.resend_after
    # The live ratings' stores are opened before any worker runs (an open writes to the store).
    stores = {name: Store(work / f"{name}.db", device_id=name, signer=keys[name]) for name in names}
    workers = {
        name: SyncWorker(
            store_path=work / f"{name}.db",
            device_id=name,
            host="127.0.0.1",
            port=args.port,
            topic_prefix=PREFIX,
            **settings,
        )
        for name in names
    }
    # Started over --ramp seconds, at random moments: pads never power up in the same
    # millisecond, and after an outage their reconnect_spread staggers them the same way.
    starts = sorted((rng.uniform(0, args.ramp), name) for name in names)
    threading.Thread(target=_start_workers, args=(go, starts, workers), daemon=True).start()
    # Each pad's live ratings at random moments while the fleet starts and drains (the first
    # --ramp + LIVE_SPREAD seconds), in time order; a pad not started yet keeps them waiting.
    busy = 0  # live appends that found the store locked and were tried again
    span = args.ramp + LIVE_SPREAD
    plan = sorted((rng.uniform(0, span), name, k) for name in names for k in range(args.live))
    for at, name, k in plan:
        delay = go + args.ramp + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        while True:
            try:
                stores[name].append_rating(content(args.backlog + 1 + k))
                break
            except StoreError as exc:  # "database is locked": 100 pads share this process
                busy += 1
                print(f"busy {name} {exc}", file=sys.stderr, flush=True)
                time.sleep(0.05)
        workers[name].notify()
    for store in stores.values():
        store.close()
    print(f"live-done {busy}", flush=True)
    while any(not w.is_alive() or w.status.pending for w in workers.values()):
        time.sleep(0.05)
    drained = time.monotonic() - go
    print(f"drained {drained:.3f}", flush=True)
    busiest = max(turns.values(), default=0)
    print(f"turns {sum(turns.values())} {busiest} {drained:.3f}", flush=True)
    sys.stdin.readline()  # "stop"
    for w in workers.values():
        w.stop()
    for w in workers.values():
        w.join(5)
    return 0


def count_turns() -> dict[int, int]:
    """Counts each worker's loop turns (``SyncWorker._step`` calls), by thread id: an idle
    worker turns about once a second, a spinning one thousands of times."""
    from sync.mqtt import SyncWorker

    turns: dict[int, int] = {}
    original = SyncWorker._step

    def step(self: SyncWorker) -> None:
        key = id(self)
        turns[key] = turns.get(key, 0) + 1
        original(self)

    SyncWorker._step = step  # type: ignore[method-assign]
    return turns


def _start_workers(go: float, starts: list[tuple[float, str]], workers: dict[str, Any]) -> None:
    for at, name in starts:
        delay = go + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        workers[name].start()


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Child:
    """A role process and the lines it printed."""

    kind: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    cpu: float = 0.0

    @classmethod
    def start(cls, kind: str, args: list[str]) -> Child:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", "--role", kind, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            text=True,
            bufsize=1,
        )
        child = cls(kind, proc)
        threading.Thread(target=child._read, daemon=True).start()
        return child

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, word: str) -> list[str]:
        return [line for line in list(self.lines) if line.split(" ", 1)[0] == word]

    def last_stats(self) -> dict[str, Any]:
        got = self.said("stats")
        return json.loads(got[-1].split(" ", 1)[1]) if got else {}

    def samples(self) -> list[tuple[float, int]]:
        """(CLOCK_MONOTONIC, records stored so far) of every stats line (every 0.2 s)."""
        out = []
        for line in self.said("stats"):
            got = json.loads(line.split(" ", 1)[1])
            out.append((float(got["t"]), int(got.get("stored", 0))))
        return out

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def end(self, timeout: float = 30) -> None:
        self.cpu = proc_cpu(self.proc.pid) or self.cpu
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def rates(samples: list[tuple[float, int]]) -> tuple[float, float]:
    """A receiver's storing rate from its samples: the busiest second (records stored in the
    best 1 s window) and the sustained rate (from 10 % to 90 % of what it stored in all)."""
    if len(samples) < 2 or not samples[-1][1]:
        return 0.0, 0.0
    best, j = 0, 0
    for i, (t, n) in enumerate(samples):
        j = max(j, i)
        while j < len(samples) - 1 and samples[j][0] < t + 1.0:
            j += 1
        if samples[j][0] >= t + 0.999:
            best = max(best, samples[j][1] - n)
    final = samples[-1][1]
    t10 = next(t for t, n in samples if n >= 0.1 * final)
    t90 = next(t for t, n in samples if n >= 0.9 * final)
    return float(best), (0.8 * final / (t90 - t10) if t90 > t10 else 0.0)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, children: Sequence[Child] = ()
) -> None:
    """Poll ``check`` until it holds; fail at ``timeout`` or when one of ``children`` ends."""
    deadline = time.monotonic() + timeout
    while not check():
        for c in children:
            if c.proc.poll() is not None:
                raise RuntimeError(f"a {c.kind} process ended ({c.proc.returncode}) during {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class SysWatch:
    """Reads ``$SYS/broker/clients/connected`` (mosquitto publishes it every ``sys_interval``)
    and keeps the highest value."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.peak = 0
        self.last = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-sys")
        self.client.on_connect = lambda c, *a: c.subscribe("$SYS/broker/clients/connected")
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        with contextlib.suppress(ValueError):
            self.last = int(msg.payload)
            self.peak = max(self.peak, self.last)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop_stop()


@dataclass
class Result:
    """What one fleet run measured and found."""

    devices: int
    expected: int
    stored: int = 0
    duplicates: int = 0
    chain_breaks: list[str] = field(default_factory=list)
    missing: int = 0
    outbox_left: int = 0
    dead: int = 0
    drain_s: float = 0.0
    per_receiver: list[dict[str, float]] = field(default_factory=list)
    peak_connections: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    build_s: float = 0.0
    busy_retries: int = 0  # live appends that met a locked store and were tried again
    turns_per_s: float = 0.0  # the workers' loop turns per second, all pads, go → drained
    busiest_turns_per_s: float = 0.0  # the busiest single worker's

    @property
    def ok(self) -> bool:
        return (
            self.stored == self.expected
            and not self.duplicates
            and not self.chain_breaks
            and not self.missing
            and not self.outbox_left
            and not self.dead
        )


def audit(db_url: str, work: Path, names: list[str], result: Result) -> None:
    """Exactly once, in order, intact: the hub's records beside each pad's store."""
    from evaluator.rules.records import verify_chain
    from sync.hub.db import open_db

    with open_db(db_url) as db:
        result.stored = db.count("ratings")
        (distinct,) = db.rows(
            "SELECT count(DISTINCT id) FROM hub_records WHERE stream = ?", ("ratings",)
        )[0]
        result.duplicates = result.stored - int(distinct)
        result.dead = len(db.dead())
        for name in names:
            records = db.records(name)
            brk = verify_chain(records)
            if brk is not None:
                result.chain_breaks.append(f"{name}: {brk}")
            conn = sqlite3.connect(work / f"{name}.db")
            try:
                ids = [r[0] for r in conn.execute("SELECT id FROM ratings ORDER BY seq")]
                result.outbox_left += conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            finally:
                conn.close()
            if [r["id"] for r in records] != ids:
                result.missing += len(set(ids) - {r["id"] for r in records}) or 1


def run(
    work: Path,
    *,
    devices: int,
    per_process: int,
    backlog: int,
    live: int,
    receivers: int,
    db_url: str = "",
    resend_after: float = 0.0,
    timeout: float = 900.0,
    ramp: float = 10.0,
) -> Result:
    """One fleet run in ``work``; raises ``RuntimeError`` when it cannot finish."""
    from sync.hub.db import open_db

    raise_fd_limit()
    db_url = db_url or f"sqlite:///{work / 'hub.db'}"
    names = [device_name(n) for n in range(devices)]
    result = Result(devices, devices * (backlog + live))
    broker = FleetBroker(work)
    broker.start()
    children: list[Child] = []
    watch: SysWatch | None = None
    try:
        hub = open_db(db_url)
        t0 = time.monotonic()
        fleet = [
            Child.start(
                "devices",
                [
                    f"--work={work}",
                    f"--port={broker.port}",
                    f"--first={first}",
                    f"--count={min(per_process, devices - first)}",
                    f"--backlog={backlog}",
                    f"--live={live}",
                    f"--resend-after={resend_after}",
                    f"--ramp={ramp}",
                ],
            )
            for first in range(0, devices, per_process)
        ]
        children += fleet
        wait_until(
            lambda: all(c.said("built") for c in fleet), timeout, "the stores to be built", fleet
        )
        for c in fleet:
            for line in c.said("key"):
                _, name, text = line.split(" ", 2)
                hub.register(name, text)
        hub.close()
        result.build_s = time.monotonic() - t0
        hubs = [
            Child.start(
                "receiver",
                [f"--db={db_url}", f"--port={broker.port}", f"--name=fleet-hub-{r}"],
            )
            for r in range(receivers)
        ]
        children += hubs
        wait_until(lambda: all(c.said("ready") for c in hubs), 60, "the receivers", hubs)
        watch = SysWatch(broker.port)
        cpu0 = {id(c): proc_cpu(c.proc.pid) for c in children}
        assert broker.proc is not None
        cpu0[id(broker)] = proc_cpu(broker.proc.pid)
        go = time.monotonic()
        for c in fleet:
            c.tell("go")
        first_stored: dict[int, float] = {}
        last_stored: dict[int, tuple[float, int]] = {}

        def drained() -> bool:
            now = time.monotonic()
            for i, c in enumerate(hubs):
                stored = int(c.last_stats().get("stored", 0))
                if stored and i not in first_stored:
                    first_stored[i] = now
                if stored != last_stored.get(i, (0.0, 0))[1]:
                    last_stored[i] = (now, stored)
            return (
                all(c.said("drained") for c in fleet)
                and sum(int(c.last_stats().get("stored", 0)) for c in hubs) >= result.expected
            )

        wait_until(drained, timeout, "the fleet to drain", children)
        result.drain_s = time.monotonic() - go
        for c in children:
            c.cpu = proc_cpu(c.proc.pid) - cpu0[id(c)]
        result.cpu["broker"] = proc_cpu(broker.proc.pid) - cpu0[id(broker)]
        result.peak_connections = watch.peak
        for c in hubs:
            stats = c.last_stats()
            busiest, sustained = rates(c.samples())
            result.per_receiver.append(
                {
                    "stored": int(stats.get("stored", 0)),
                    "duplicates": int(stats.get("duplicates", 0)),
                    "received": int(stats.get("received", 0)),
                    "busiest second": busiest,
                    "sustained/s": sustained,
                    "cpu_s": c.cpu,
                }
            )
        result.cpu["receivers"] = sum(c.cpu for c in hubs)
        result.cpu["device processes"] = sum(c.cpu for c in fleet)
        for c in fleet:
            for line in c.said("turns"):
                _, total, busiest, span = line.split()
                result.turns_per_s += int(total) / float(span)
                result.busiest_turns_per_s = max(
                    result.busiest_turns_per_s, int(busiest) / float(span)
                )
        result.busy_retries = sum(
            int(line.split()[1]) for c in fleet for line in c.said("live-done") if " " in line
        )
        for c in fleet:
            c.tell("stop")
        for c in children:
            c.end()
        children.clear()
        audit(db_url, work, names, result)
    finally:
        for c in children:
            with contextlib.suppress(OSError):
                c.proc.kill()
            c.proc.wait(5)
        if watch is not None:
            watch.close()
        broker.stop()
    return result


def report(result: Result, args: argparse.Namespace) -> str:
    """The run as a text table."""
    rows = [
        (
            "devices (real SyncWorker threads)",
            f"{result.devices:,} ({args.per_process} per process)",
        ),
        (
            "ratings expected (backlog + live)",
            f"{result.expected:,} ({args.backlog} + {args.live} each)",
        ),
        ("stored in the hub", f"{result.stored:,}"),
        ("stored twice (same id)", f"{result.duplicates}"),
        (
            "devices whose chain breaks / ids differ",
            f"{len(result.chain_breaks)} / {result.missing}",
        ),
        ("outbox rows left", f"{result.outbox_left}"),
        ("dead letters", f"{result.dead}"),
        ("drain: go → all stored, every outbox empty", f"{result.drain_s:.1f} s"),
        ("throughput, all receivers", f"{result.expected / result.drain_s:,.0f} stored/s"),
    ]
    for i, r in enumerate(result.per_receiver):
        rows.append(
            (
                f"receiver {i}",
                f"{r['stored']:,} stored, {r['sustained/s']:,.0f}/s sustained (10–90 %),"
                f" busiest second {r['busiest second']:,.0f}; {r['received']:,} messages,"
                f" {r['duplicates']:,} duplicates acked again; {r['cpu_s']:.1f} s CPU",
            )
        )
    rows.append(("peak broker connections ($SYS)", f"{result.peak_connections:,}"))
    rows.append(
        ("CPU seconds during the drain", ", ".join(f"{k} {v:.1f}" for k, v in result.cpu.items()))
    )
    rows.append(("setup (keys, signed stores)", f"{result.build_s:.1f} s"))
    rows.append(("live appends retried (store locked)", f"{result.busy_retries}"))
    rows.append(
        (
            "worker loop turns/s (all pads; busiest pad)",
            f"{result.turns_per_s:,.0f}; {result.busiest_turns_per_s:,.0f}",
        )
    )
    rows.append(("exactly once, in order, every outbox empty", "yes" if result.ok else "NO"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["main", "devices", "receiver"], default="main")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--per-process", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=100)
    parser.add_argument("--live", type=int, default=5)
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--db", default="", help="the hub database URL (default: SQLite)")
    parser.add_argument(
        "--resend-after", type=float, default=0.0, help="seconds (default: the shipped value)"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--ramp", type=float, default=10.0, help="seconds over which the pads start (random)"
    )
    # the roles' own options
    parser.add_argument("--work", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--name", default="")
    args = parser.parse_args(argv)
    if args.role == "devices":
        return devices_role(args)
    if args.role == "receiver":
        return receiver_role(args)
    print(
        f"machine: {os.cpu_count()} CPUs; fleet run: {args.devices} devices × "
        f"({args.backlog} + {args.live}), {args.receivers} receivers, "
        f"{'database ' + args.db.split('@')[-1] if args.db else 'SQLite'}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmpdir:
        result = run(
            Path(tmpdir),
            devices=args.devices,
            per_process=args.per_process,
            backlog=args.backlog,
            live=args.live,
            receivers=args.receivers,
            db_url=args.db,
            resend_after=args.resend_after,
            timeout=args.timeout,
            ramp=args.ramp,
        )
    print(report(result, args))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
