"""A hall's pads coming back at once after a broker restart (issue 8's backlog policy).

``python -m bench.sync_fleet [--pads 40] [--backlog 600] [--outage 3]``

A private mosquitto, the acking city of :mod:`bench.sync_city` (``--report``: each arrival's
time), and ``--pads`` real :class:`sync.mqtt.SyncWorker` threads in this process, each over its
own store, with the shipped ``[mqtt]`` defaults.  All connect; the broker stops (every pad loses
it at the same instant, as a city's pads do); while it is down each store gets ``--backlog``
ratings (the shortcut of :func:`bench.sync_link.build_store`, chained to the store's last
record); the broker comes back after ``--outage`` seconds.  Printed, once with
``reconnect_spread = 0`` and once with the default: when the pads were back (first to last),
the city's busiest second (messages received), and when every outbox was empty — with every
rating received at least once.  Not part of ``bench.run`` (about a minute).
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.sync_link import PREFIX, Broker, City, build_store, content
from evaluator.rules.records import canonical_json, new_record_id, seal
from evaluator.rules.request import rating_slot
from sync.mqtt import SyncWorker


def defaults() -> dict[str, Any]:
    """The shipped ``[mqtt]`` backlog settings (config/default.toml), durations in seconds."""
    from evaluator.config import _schema, parse_duration

    keys = _schema()["mqtt"]
    names = ("max_rate", "burst", "max_unacked", "reconnect_spread", "resend_after")
    return {
        name: parse_duration(str(keys[name].default))
        if keys[name].kind == "duration"
        else keys[name].default
        for name in names
    }


def append_behind(path: Path, device: str, n: int, first: int) -> list[str]:
    """``n`` more sealed ratings in the store at ``path`` (one transaction), waiting in its
    outbox, chained to its last record; their ids."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        seq, prev = conn.execute(
            "SELECT seq, hash FROM ratings ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        ids = []
        for k in range(1, n + 1):
            body = content(first + k)
            body.update(id=new_record_id(), seq=seq + k, device_id=device)
            record = seal(body, prev_hash=prev)
            prev = record["hash"]
            conn.execute(
                "INSERT INTO ratings VALUES (?, ?, ?, ?, ?, 'deliver', 1, ?, ?, ?, ?)",
                [
                    record["id"],
                    seq + k,
                    device,
                    record["presentation_id"],
                    record["level"],
                    record["rated_at"],
                    record["hash"],
                    record["prev_hash"],
                    canonical_json(record).decode(),
                ],
            )
            conn.execute(
                "INSERT INTO rating_cases (rating_id, serial, stage, slot, assess_number, kind)"
                " VALUES (?, ?, 'deliver', ?, 1, 'instant')",
                [record["id"], body["cases"][0]["serial"], rating_slot("instant", "deliver")],
            )
            conn.execute(
                "INSERT INTO outbox (seq, rating_id) VALUES (?, ?)", [seq + k, record["id"]]
            )
            ids.append(record["id"])
        conn.execute("COMMIT")
        return ids
    finally:
        conn.close()


def run(tmp: Path, pads: int, backlog: int, outage: float, spread: float) -> dict[str, float]:
    settings = defaults()
    settings["reconnect_spread"] = spread
    broker = Broker(tmp, persistent=True)
    broker.start()
    port = broker.port
    try:
        city = City(port, report=True, persistent=True)
        paths = [tmp / f"pad{p}-{spread:g}.db" for p in range(pads)]
        for p, path in enumerate(paths):
            build_store(path, f"pad{p}", 1, outbox=False, first=p * 1_000_000)
        workers = [
            SyncWorker(
                store_path=path,
                device_id=f"pad{p}",
                host="127.0.0.1",
                port=port,
                topic_prefix=PREFIX,
                **settings,
            )
            for p, path in enumerate(paths)
        ]
        for w in workers:
            w.start()
        while not all(w.status.connected for w in workers):
            time.sleep(0.05)
        broker.stop()
        while any(w.status.connected for w in workers):
            time.sleep(0.01)
        wanted: set[str] = set()
        for p, path in enumerate(paths):
            wanted.update(append_behind(path, f"pad{p}", backlog, p * 1_000_000 + 10))
        for w in workers:
            w.notify()
        time.sleep(max(0.0, outage))
        back = time.monotonic()
        broker.start()
        seen: Counter[str] = Counter()
        bins: Counter[int] = Counter()
        connected_at: dict[int, float] = {}
        while set(seen) < wanted or any(w.status.pending for w in workers):
            now = time.monotonic()
            for i, w in enumerate(workers):
                if i not in connected_at and w.status.connected:
                    connected_at[i] = now - back
            while not city.arrivals.empty():
                rid, at = city.arrivals.get_nowait()
                seen[rid] += 1
                bins[int(at - back)] += 1
            if now - back > 300:
                raise RuntimeError(f"the fleet did not drain in 5 minutes: {len(seen)} seen")
            time.sleep(0.02)
        drained = time.monotonic() - back
        for w in workers:
            w.stop()
        for w in workers:
            w.join(5)
        city.close()
    finally:
        broker.stop()
    return {
        "first back (s)": min(connected_at.values()),
        "last back (s)": max(connected_at.values()),
        "busiest second (msgs)": max(bins.values()),
        "all outboxes empty (s)": drained,
        "ratings": len(wanted),
        "received (with resends)": sum(seen.values()),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pads", type=int, default=40)
    parser.add_argument("--backlog", type=int, default=600)
    parser.add_argument("--outage", type=float, default=3.0)
    args = parser.parse_args(argv)
    logging.getLogger("sync").setLevel(logging.ERROR)  # 40 "connection lost" warnings a run
    print(f"{args.pads} pads, {args.backlog} ratings each behind a {args.outage:g} s outage")
    print(f"defaults: {defaults()}")
    for spread in (0.0, defaults()["reconnect_spread"]):
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmpdir:
            got = run(Path(tmpdir), args.pads, args.backlog, args.outage, spread)
        shown = ", ".join(
            f"{k} {v:,.1f}" if "(s)" in k else f"{k} {int(v):,}" for k, v in got.items()
        )
        print(f"reconnect_spread {spread:g} s: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
