"""One-day reports at a long history (issue 16): ``hub figures`` and ``hub export`` of one day
at N stored ratings, on SQLite and PostgreSQL, each beside a reference measured in the same run
on the same database: a bare ``SELECT count(*)`` of the same day's ratings through the same index
(``hub_report_times_local``), the least any report of that day must do.

``python -m bench.hub_reports --ratings 1000000`` builds the data set (:mod:`bench.hub_dataset`)
in a temporary SQLite file and in a private PostgreSQL (``initdb``/``pg_ctl`` on a free port, as
the tests start theirs; ``--pg-url postgresql://127.0.0.1:5432/test`` uses a running server
instead, in a database of its own that is dropped afterwards), then times each report in a
child process of its own, so its peak RSS (``VmHWM``) is the report's alone: figures
(:func:`sync.hub.figures.figures`) and the CSV export (:func:`sync.hub.export.write_csv`) of
``--repeats`` different days spread over the history, after one warm-up day.  Goal (issue 16):
≤ 1 s and ≤ 100 MB at 10 million ratings in PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.hub_dataset import build, day_of
from bench.stats import Row, median_p99, table

GOAL_SECONDS = 1.0
GOAL_MB = 100.0
OPS = ("count", "figures", "export", "backfill", "scan")


def _child(op: str, url: str, days: list[str], out: str) -> None:
    """In the child: ``op`` on each day, then the times and the peak RSS as one JSON line."""
    from sync.hub.db import bound_text, open_db
    from sync.hub.export import write_csv
    from sync.hub.figures import figures

    if op in ("backfill", "scan"):
        _child_whole(op, url)
        return
    db = open_db(url)
    times, sizes = [], []
    for day in days:
        since = dt.date.fromisoformat(day)
        until = (since + dt.timedelta(days=1)).isoformat()
        start = time.perf_counter()
        if op == "figures":
            data = figures(db, since=day, until=until)
            sizes.append(data["hall"]["ratings"] + data["hall"]["follow_ups"]["count"])
        elif op == "export":
            sizes.append(write_csv(db, out, since=day, until=until))
        else:
            lo, hi = (bound_text(dt.datetime.fromisoformat(t))[1] for t in (day, until))
            sizes.append(db.rows(
                "SELECT count(*) FROM hub_report_times WHERE stream = 'ratings'"
                " AND local_at >= ? AND local_at < ?", (lo, hi))[0][0])  # fmt: skip
        times.append(time.perf_counter() - start)
    db.close()
    print(json.dumps({"times": times, "rss_mb": _peak_rss_mb(), "sizes": sizes}))


def _child_whole(op: str, url: str) -> None:
    """In the child: the one-time fill of an older database (``fill_reports``: chunk by chunk,
    as a receiver does it in the background), or its reference, one read of every stored
    record."""
    from sync.hub.db import open_db

    start = time.perf_counter()
    db = open_db(url)
    if op == "scan":
        start = time.perf_counter()
        db.rows("SELECT sum(length(record)) FROM hub_records")
    else:
        db.fill_reports()
    took = time.perf_counter() - start
    db.close()
    print(json.dumps({"times": [0.0, took], "rss_mb": _peak_rss_mb(), "sizes": [0, 0]}))


def _peak_rss_mb() -> float:
    """This process's peak RSS since its exec (``VmHWM``; ``ru_maxrss`` would include the
    parent's at fork, which holds the data set builder's buffers)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(op: str, url: str, days: list[str], work: Path) -> dict:
    """``op`` in a fresh child process (warm-up day first, dropped from the times)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.hub_reports", "--child", op, "--url", url,
         "--days", ",".join(days), "--out", str(work / f"{op}.csv")],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    got = json.loads(done.stdout.strip().splitlines()[-1])
    got["times"], got["sizes"] = got["times"][1:], got["sizes"][1:]
    return got


def _days(ratings: int, repeats: int) -> list[str]:
    """A warm-up day, then ``repeats`` different days spread over the history."""
    picks = [day_of(ratings, 0.97)]
    picks += [day_of(ratings, (n + 0.5) / repeats * 0.95) for n in range(repeats)]
    return [d.isoformat() for d in picks]


def _backfill(url: str, label: str, work: Path) -> list[Row]:
    """The one-time fill of a database made before the report tables, beside one read of
    every stored record (``SELECT sum(length(record))``) on the same database."""
    from sync.hub.db import open_db

    with open_db(url) as db:
        before = db.rows("SELECT count(*) FROM hub_report_times")[0][0]
        with db.transaction():
            for table in ("hub_report_times", "hub_report_serials", "hub_backfills"):
                db.execute(f"DELETE FROM {table}")
    fill = _measure("backfill", url, [""], work)
    scan = _measure("scan", url, [""], work)
    with open_db(url) as db:
        assert db.rows("SELECT count(*) FROM hub_report_times")[0][0] == before
    return [
        Row(f"one-time fill of an older database, {label}", "s", fill["times"],
            "read every stored record once", scan["times"]),
        Row(f"peak RSS, one-time fill, {label}", "MB", [fill["rss_mb"]],
            "same, read every record", [scan["rss_mb"]], goal=f"≤ {GOAL_MB:g} MB",
            met=fill["rss_mb"] <= GOAL_MB),
    ]  # fmt: skip


def bench_db(
    kind: str, url: str, ratings: int, repeats: int, work: Path, backfill: bool = False
) -> list[Row]:
    took = build(url, ratings)
    print(f"{kind}: {ratings:,} ratings built in {took:.0f} s", flush=True)
    days = _days(ratings, repeats)
    got = {op: _measure(op, url, days, work) for op in OPS}
    ref = got["count"]
    print(f"{kind}: a day holds {min(ref['sizes']):,}–{max(ref['sizes']):,} ratings; figures "
          f"counted {min(got['figures']['sizes']):,}–{max(got['figures']['sizes']):,}, export "
          f"wrote {min(got['export']['sizes']):,}–{max(got['export']['sizes']):,} rows",
          flush=True)  # fmt: skip
    label = f"{kind}, {_short(ratings)} stored"
    rows = []
    for op, name in (("figures", "one-day figures"), ("export", "one-day export")):
        row = Row(f"{name}, {label}", "s", got[op]["times"], "SELECT count(*) of the day",
                  ref["times"], goal=f"≤ {GOAL_SECONDS:g} s")  # fmt: skip
        row.met = median_p99(row.values)[1] <= GOAL_SECONDS
        rows.append(row)
        mem = Row(f"peak RSS, {name}, {label}", "MB", [got[op]["rss_mb"]],
                  "same child, count only", [ref["rss_mb"]], goal=f"≤ {GOAL_MB:g} MB")  # fmt: skip
        mem.met = got[op]["rss_mb"] <= GOAL_MB
        rows.append(mem)
    print(table(rows), flush=True)  # kept if the fill below is interrupted
    if backfill:
        rows += _backfill(url, label, work)
    return rows


def _short(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def _postgres(args: argparse.Namespace, work: Path) -> list[Row]:
    import psycopg

    if args.pg_url:
        name = f"hub_reports_{os.getpid()}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.pg_url.rsplit("/", 1)[0]
            return bench_db("postgresql", f"{base}/{name}", args.ratings, args.repeats, work,
                            args.backfill)
        finally:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    from tests.pg import PostgresServer

    server = PostgresServer()
    try:
        url = server.fresh_database("hub")
        return bench_db("postgresql", url, args.ratings, args.repeats, work, args.backfill)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--backfill", action="store_true", help="also time the one-time fill "
                        "of the report tables on a database made before them")  # fmt: skip
    parser.add_argument("--pg-url", help="a running PostgreSQL to use (e.g. "
                        "postgresql://127.0.0.1:5432/test) instead of a private one")  # fmt: skip
    parser.add_argument("--child", choices=OPS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--days", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.url, args.days.split(","), args.out)
        return 0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-hub-reports-") as tmp:
        work = Path(tmp)
        if args.only in (None, "sqlite"):
            url = f"sqlite:///{work / 'hub.db'}"
            rows += bench_db("sqlite", url, args.ratings, args.repeats, work, args.backfill)
            (work / "hub.db").unlink()
        if args.only in (None, "postgresql"):
            rows += _postgres(args, work)
    print(f"one-day reports at {args.ratings:,} stored ratings ({args.repeats} days each, "
          "each report in a child process of its own)")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
