"""A city receiver's database holding N stored ratings, built fast for the reports bench
(issue 16): ``python -m bench.hub_dataset --ratings 1000000 --url sqlite:////tmp/hub.db``.

The rows are what the receiver stores, field for field: each ``hub_records.record`` is a rating
as a pad seals it (every field of docs/schemas/rating.schema.json, canonical JSON, a ``sig`` and
``key_id``), ``presentation_end`` events (not rated, cancelled) beside them, the report rows of
``hub_report_times`` / ``hub_report_serials`` made by the same function the receiver's ingest
calls, every pad registered with its own key and a retained status.  What is NOT real: the
records are not signed and their ``hash``/``prev_hash`` form no chain (a SHA-256 of the id, the
previous one's).  The reports never verify a record (the receiver did, once, when it stored
it), so reading a day's figures or export costs the same; signing 10 million records would take
an hour of Ed25519.

Shape: ``PADS`` pads, ``PER_PAD_DAY`` ratings per pad per day between 08:30 and 17:30 (+08:00),
days one after another from 2025-01-01 until N ratings are stored: 10,000 ratings a day, 100
days at 1M, 1,000 days (2.7 years of a city) at 10M.  2 % are follow-ups naming a first rating
of the same pad, 3 % made at a self-service terminal (no clerk), 5 % rate two cases; one
presentation in ten ends not rated or cancelled (an event).

Loading: PostgreSQL ``COPY`` from generated text, SQLite ``executemany`` in transactions of
``SQLITE_BATCH`` rows; the tables come from :func:`sync.hub.db.open_db`, so they are the
receiver's own (indexes included, built as the rows go in).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sync.hub.db import HubDB, open_db, report_rows
from sync.keys import DeviceKey

PADS = 200
PER_PAD_DAY = 50
FIRST_DAY = dt.date(2025, 1, 1)
TZ = dt.timezone(dt.timedelta(hours=8))
SQLITE_BATCH = 50_000
LEVELS = (("very_satisfied", 10, 5, 1, 55), ("satisfied", 8, 4, 2, 30),
          ("basically_satisfied", 6, 3, 3, 9), ("dissatisfied", 3, 2, 4, 4),
          ("very_dissatisfied", 0, 1, 5, 2))  # fmt: skip
MATTERS = [(f"44050{n:04d}", f"事项{n:02d} 不动产登记") for n in range(40)]
SIG = "BSL-CZtHm1NEuiMQ3Dby55Ci5H1wpe0Bjo98Law2QRlC5O36Ip0y2OwZpKNHHLv35rzHg2jp7BDSMWprEOqqCQ"
RECORD_COLUMNS = "id, device_id, stream, epoch, seq, hash, prev_hash, record, received_at"


def day_of(ratings: int, which: float = 0.5) -> dt.date:
    """A day of the data set ``which`` of the way through (its ratings all stored)."""
    days = max(1, -(-ratings // (PADS * PER_PAD_DAY)))
    return FIRST_DAY + dt.timedelta(days=min(days - 1, int(days * which)))


class _Maker:
    """Makes the records, pad by pad and day by day, with the ids and chains a pad would."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0
        self.seqs: dict[tuple[str, str], int] = {}
        self.prev: dict[tuple[str, str], str] = {}
        weights = [w for *_, w in LEVELS]
        self.levels = self.rng.choices(LEVELS, weights, k=4096)

    def _id(self, at: dt.datetime) -> str:
        self.count += 1
        ms, n, tail = int(at.timestamp() * 1000), self.count, self.rng.getrandbits(36)
        return (f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7{(n >> 24) & 0xFFF:03x}"
                f"-{8 + (n >> 48) % 4:x}{(n >> 12) & 0xFFF:03x}"
                f"-{n & 0xFFF:03x}{tail:09x}")  # fmt: skip

    def _chain(self, device: str, stream: str, rid: str) -> tuple[int, str, str]:
        seq = self.seqs.get((device, stream), 0) + 1
        prev = self.prev.get((device, stream), "0" * 64)
        digest = hashlib.sha256(rid.encode()).hexdigest()
        self.seqs[(device, stream)], self.prev[(device, stream)] = seq, digest
        return seq, digest, prev

    def day(self, day: dt.date, pad: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(device, stream, record) of one pad's day."""
        rng, device = self.rng, f"pad-{pad:04d}"
        start = dt.datetime.combine(day, dt.time(8, 30), TZ)
        firsts: list[str] = []
        for k in range(PER_PAD_DAY):
            at = start + dt.timedelta(seconds=k * 640 + rng.randrange(600),
                                      milliseconds=rng.randrange(1000))  # fmt: skip
            rec = self._rating(device, pad, at, firsts)
            yield device, "ratings", rec
            if rec["assess_number"] == 1:
                firsts.append(rec["id"])
            if rng.random() < 0.1:
                yield device, "events", self._event(device, pad, at + dt.timedelta(seconds=30))

    def _cases(self) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        for _ in range(2 if rng.random() < 0.05 else 1):
            code, name = MATTERS[rng.randrange(len(MATTERS))]
            kind = "promise" if rng.random() < 0.2 else "instant"
            out.append({"kind": kind, "matter_code": code, "matter_name": name,
                        "serial": f"4405{self.count:012d}{len(out)}"})  # fmt: skip
        return out

    def _rating(self, device: str, pad: int, at: dt.datetime, firsts: list[str]) -> dict:
        rng = self.rng
        level, score, satisfaction, gbt, _ = self.levels[self.count % 4096]
        rid = self._id(at)
        seq, digest, prev = self._chain(device, "ratings", rid)
        terminal = rng.random() < 0.03
        follow = bool(firsts) and rng.random() < 0.02
        stage = "accept" if rng.random() < 0.1 else "deliver"
        presented = at - dt.timedelta(milliseconds=7400)
        return {
            "agencies": [], "agencies_concerned": [], "area_code": "440500",
            "assess_number": 2 if follow else 1, "cases": self._cases(),
            "channel": 5 if terminal else 4,
            "clerk": None if terminal else {"id": f"A{pad:04d}{rng.randrange(3)}",
                                            "name": f"窗口{pad}号{rng.randrange(3)}"},
            "comment": "", "device_id": device, "elapsed_ms": 7400,
            "follows": [rng.choice(firsts)] if follow else [], "gbt_code": gbt, "hash": digest,
            "id": rid, "key_id": f"{pad:08x}", "level": level,
            "presentation_id": self._id(presented), "presented_at": _text(presented),
            "presented_clock_synced": True, "prev_hash": prev, "rated_at": _text(at),
            "rated_clock_synced": True,
            "reasons": [{"code": "slow", "text": "办理时间过长"}] if score < 6 else [],
            "satisfaction": satisfaction, "score": score, "seq": seq, "sig": SIG,
            "stage": stage, "targets": ["clerk"] if stage == "accept" else ["clerk", "matter"],
            "terminal": f"T{pad:04d}" if terminal else None, "theme": None, "visit": 1,
        }  # fmt: skip

    def _event(self, device: str, pad: int, at: dt.datetime) -> dict[str, Any]:
        rid = self._id(at)
        seq, digest, prev = self._chain(device, "events", rid)
        cancelled = self.rng.random() < 0.3
        return {
            "area_code": "440500", "at": _text(at), "by": "clerk" if cancelled else "timeout",
            "cases": self._cases(), "clerk": {"id": f"A{pad:04d}0", "name": f"窗口{pad}号0"},
            "clock_synced": True, "device_id": device, "ended_at": _text(at), "hash": digest,
            "id": rid, "key_id": f"{pad:08x}", "kind": "presentation_end",
            "outcome": "cancelled" if cancelled else "not_rated",
            "presentation_id": self._id(at), "presented_at": _text(at - dt.timedelta(seconds=60)),
            "prev_hash": prev, "seq": seq, "sig": SIG, "terminal": None,
        }  # fmt: skip


def _text(at: dt.datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def _canonical(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _rows(maker: _Maker, ratings: int) -> Iterator[list[list[tuple[Any, ...]]]]:
    """Per pad-day: the rows of (hub_records, hub_report_times, hub_report_serials)."""
    stored, day = 0, FIRST_DAY
    while stored < ratings:
        for pad in range(PADS):
            if stored >= ratings:
                break
            records, times, serials = [], [], []
            for device, stream, rec in maker.day(day, pad):
                if stream == "ratings":
                    if stored >= ratings:
                        break
                    stored += 1
                received = dt.datetime.fromisoformat(rec.get("rated_at") or rec["ended_at"])
                received = _text(received.astimezone(dt.UTC) + dt.timedelta(seconds=2))
                records.append((rec["id"], device, stream, "", rec["seq"], rec["hash"],
                                rec["prev_hash"], _canonical(rec), received))  # fmt: skip
                row, names = report_rows(rec["id"], stream, rec)
                if row is not None:
                    times.append(row)
                serials.extend(names)
            yield [records, times, serials]
        day += dt.timedelta(days=1)


def _register(db: HubDB, work: Path) -> None:
    """Every pad registered with a key of its own, and a retained status saying online."""
    rows = []
    for pad in range(PADS):
        key = DeviceKey.create(work / f"pad-{pad:04d}.key")
        rows.append((f"pad-{pad:04d}", f"pad-{pad:04d}.key", f"pad-{pad:04d}", key.public.text))
    done = db.register_many([(w, d, t) for w, d, _, t in rows])
    assert not done.refused, done.refused
    status = {"online": True, "at": "2025-01-01T08:00:00.000+08:00", "firmware": "0.1.0"}
    db.executemany("INSERT INTO hub_status (device_id, payload, received_at) VALUES (?, ?, ?)",
                   [(d, json.dumps(dict(status, device_id=d)), "2025-01-01T00:00:00.000+00:00")
                    for _, _, d, _ in rows])  # fmt: skip


TABLES = (
    ("hub_records", RECORD_COLUMNS),
    ("hub_report_times", "record_id, stream, local_at, utc_at"),
    ("hub_report_serials", "serial, record_id"),
)


def build(url: str, ratings: int, seed: int = 1) -> float:
    """Fill the (empty) database at ``url`` with ``ratings`` stored ratings; seconds taken."""
    start = time.perf_counter()
    with open_db(url) as db, tempfile.TemporaryDirectory(prefix="hub-dataset-") as tmp:
        _register(db, Path(tmp))
        maker = _Maker(seed)
        if db.kind == "sqlite":
            _load_sqlite(db, _rows(maker, ratings))
        else:
            _load_postgresql(db, _rows(maker, ratings))
        _heads(db, maker)
    return time.perf_counter() - start


def _load_sqlite(db: HubDB, parts: Iterator[list[list[tuple[Any, ...]]]]) -> None:
    pending: list[list[tuple]] = [[], [], []]
    for part in parts:
        for bucket, rows in zip(pending, part, strict=True):
            bucket.extend(rows)
        if len(pending[0]) >= SQLITE_BATCH:
            _flush_sqlite(db, pending)
            pending = [[], [], []]
    _flush_sqlite(db, pending)


def _flush_sqlite(db: HubDB, pending: list[list[tuple]]) -> None:
    with db.transaction():
        for (table, columns), rows in zip(TABLES, pending, strict=True):
            marks = ", ".join("?" * len(columns.split(",")))
            db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)


def _load_postgresql(db: HubDB, parts: Iterator[list[list[tuple[Any, ...]]]]) -> None:
    buffers = [io.StringIO() for _ in TABLES]

    def flush() -> None:
        with db.conn.transaction(), db.conn.cursor() as cur:
            for (table, columns), buf in zip(TABLES, buffers, strict=True):
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write(buf.getvalue().encode())
                buf.seek(0)
                buf.truncate()

    for part in parts:
        for buf, rows in zip(buffers, part, strict=True):
            for row in rows:
                buf.write("\t".join(_copy_cell(v) for v in row))
                buf.write("\n")
        if buffers[0].tell() > 64 << 20:
            flush()
    flush()
    db.execute("ANALYZE")


def _copy_cell(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                .replace("\r", "\\r"))  # fmt: skip
    return text


def _heads(db: HubDB, maker: _Maker) -> None:
    """Each chain's tip, as the receiver keeps it."""
    with db.transaction():
        db.executemany(
            "INSERT INTO hub_heads (device_id, stream, epoch, last_seq, last_hash)"
            " VALUES (?, ?, '', ?, ?)",
            [(d, s, seq, maker.prev[(d, s)]) for (d, s), seq in maker.seqs.items()],
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--url", required=True, help="an empty hub database (sqlite:///… or "
                        "postgresql://…)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    took = build(args.url, args.ratings, args.seed)
    print(f"{args.ratings} ratings stored in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
