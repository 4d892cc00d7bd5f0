"""The indexed reports (issue 16: a period's rows only, through ``hub_report_times``) give
exactly what the reports gave when they loaded every stored record: the old code is kept in
``reports_reference.py`` and both run on randomized histories, on SQLite and PostgreSQL, with
follow-ups, loss statements, multi-case ratings, terminals, records held in a conflict, times
in several offsets, unreadable times, and periods whose bounds fall on records."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest

from evaluator.rules.records import new_record_id
from sync.hub import db as db_module
from sync.hub import export
from sync.hub import figures as fg
from sync.hub.db import REPORT_BACKFILL, HubDB, open_db
from tests.sync.hub import reports_reference as ref

LEVELS = {"very_satisfied": (10, 5, 1), "satisfied": (8, 4, 2), "basically_satisfied": (6, 3, 3),
          "dissatisfied": (3, 2, 4), "very_dissatisfied": (0, 1, 5)}  # fmt: skip
DAYS = ("2026-04-30", "2026-05-01", "2026-05-02")
CLOCKS = ("00:00:00.000", "07:59:59.999", "08:00:00.000", "16:00:00.000", "23:59:59.999")
OFFSETS = ("+08:00", "+00:00", "Z", "", "-05:00")
PERIODS = [
    (None, None),
    ("2026-05-01", "2026-05-02"),
    ("2026-05-01", None),
    (None, "2026-05-01"),
    ("2026-05-01T00:00:00+08:00", "2026-05-02T00:00:00+08:00"),
    ("2026-05-01T08:00", "2026-05-01T16:00:00.000+00:00"),
    ("2026-04-30T16:00:00Z", "2026-05-01T23:59:59.999"),
]


def _when(rng: random.Random) -> Any:
    """A record's own time: mostly ISO in one of several offsets (some exactly on a bound),
    sometimes none a period can hold."""
    if rng.random() < 0.04:
        return rng.choice([None, "garbage", "", 20260501])
    return f"{rng.choice(DAYS)}T{rng.choice(CLOCKS)}{rng.choice(OFFSETS)}"


def _cases(rng: random.Random) -> list[dict[str, Any]]:
    return [{"serial": f"S{rng.randrange(30)}", "matter_code": f"M{rng.randrange(4)}",
             "matter_name": rng.choice(["", "不动产登记", f"事项{rng.randrange(3)}"]),
             "kind": rng.choice(["instant", "promise", "consult"])}
            for _ in range(rng.choice((1, 1, 1, 2, 3)))]  # fmt: skip


def _rating(rng: random.Random, ids: list[str]) -> dict[str, Any]:
    level = rng.choice(list(LEVELS))
    score, satisfaction, gbt = LEVELS[level]
    terminal = rng.random() < 0.2
    follow = bool(ids) and rng.random() < 0.3
    named = [rng.choice(ids) if ids and rng.random() < 0.8 else new_record_id()
             for _ in range(rng.choice((1, 1, 2)))]  # fmt: skip
    return {
        "level": level, "score": score, "satisfaction": satisfaction, "gbt_code": gbt,
        "channel": 5 if terminal else 4, "cases": _cases(rng),
        "clerk": None if terminal else {"id": f"C{rng.randrange(5)}",
                                        "name": rng.choice(["", "张三", "李四"])},
        "terminal": f"T{rng.randrange(2)}" if terminal else None,
        "targets": rng.choice([["clerk"], ["clerk", "matter"], ["matter"]]),
        "stage": rng.choice(["accept", "deliver"]), "assess_number": 2 if follow else 1,
        "follows": named if follow else [], "rated_at": _when(rng), "area_code": "440500",
        "reasons": [{"code": "slow", "text": "慢"}] if score < 6 else [], "comment": "",
        "rated_clock_synced": rng.random() < 0.9, "agencies_concerned": [],
    }  # fmt: skip


def _event(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["presentation_end"] * 5 + ["epoch"])
    return {
        "kind": kind, "outcome": rng.choice(["not_rated", "not_rated", "cancelled", "rated"]),
        "by": "timeout", "cases": _cases(rng), "terminal": None,
        "clerk": rng.choice([None, {"id": f"C{rng.randrange(5)}", "name": "王五"}]),
        "presented_at": "2026-05-01T08:00:00.000+08:00", "ended_at": _when(rng),
    }  # fmt: skip


def _history(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    """(device, stream, record) of a few pads, each chain numbered from seq 1, some in an
    epoch; about one record in twelve a loss statement."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    ids: list[str] = []
    for device in ("pad-a", "pad-B", "pad-c"):
        for stream in ("ratings", "events"):
            epoch = rng.choice(["", new_record_id()])
            for seq in range(1, rng.randrange(20, 60)):
                if rng.random() < 0.08:
                    body: dict[str, Any] = {"kind": "loss", "lost_hash": "x", "problem": "p",
                                            "rated_at": _when(rng), "ended_at": _when(rng)}
                else:
                    body = _rating(rng, ids) if stream == "ratings" else _event(rng)
                record = dict(body, id=new_record_id(), seq=seq, device_id=device, hash="h")
                if epoch:
                    record["epoch"] = epoch
                ids.append(record["id"])
                out.append((device, stream, record))
    rng.shuffle(out)
    return out


def _store(db: HubDB, records: list[tuple[str, str, dict[str, Any]]], index: bool) -> None:
    with db.transaction():
        db.executemany(
            "INSERT INTO hub_records (id, device_id, stream, epoch, seq, hash, prev_hash, record,"
            " received_at) VALUES (?, ?, ?, ?, ?, 'h', 'p', ?, 'then')",
            [(r["id"], d, s, r.get("epoch", ""), r["seq"], json.dumps(r, ensure_ascii=False))
             for d, s, r in records],
        )  # fmt: skip
        if index:  # what the receiver's ingest does in the transaction that stores them
            db.index_reports([(r["id"], s, r) for _, s, r in records])


def _reports(module: Any, db: HubDB, since: str | None, until: str | None) -> dict[str, Any]:
    rows = export.rows if module is fg else ref.export_rows
    return {
        "figures": module.figures(db, since=since, until=until),
        "bad": module.bad_ratings(db, since=since, until=until),
        "sms": module.follow_ups(db, since=since, until=until),
        "export": list(rows(db, since=since, until=until)),
    }


@pytest.mark.parametrize("seed", range(4))
def test_indexed_reports_equal_the_reference_on_random_histories(db_url: str, seed: int) -> None:
    rng = random.Random(seed)
    records = _history(rng)
    half = len(records) // 2
    with open_db(db_url) as db:
        _store(db, records[:half], index=True)
        _store(db, records[half:], index=False)  # stored before the report tables existed
        for device, _stream, record in rng.sample(records, len(records) // 10):
            db.hold(record["id"], device, "clerk_elsewhere", {"why": "test"})
        db.execute("DELETE FROM hub_backfills")
    with open_db(db_url) as db:  # the first report's one-time fill indexes the other half
        assert not db.reports_filled()  # never at open: a receiver must start at once
        seen = 0
        for since, until in PERIODS:
            got, want = _reports(fg, db, since, until), _reports(ref, db, since, until)
            assert got == want, (seed, since, until)
            seen += len(want["export"]) + len(want["sms"])
        assert seen > 100  # the histories give the reports something to count
        assert db.rows("SELECT name FROM hub_backfills") == [(REPORT_BACKFILL,)]


def test_a_one_day_report_reads_no_other_day(db_url: str) -> None:
    """Before issue 16 every report parsed every stored record: one unreadable record of
    another day broke every day's figures (and each cost the whole history)."""
    rng = random.Random(7)
    records = [(d, s, dict(r, rated_at="2026-05-01T10:00:00.000+08:00"))
               for d, s, r in _history(rng) if s == "ratings"]  # fmt: skip
    with open_db(db_url) as db:
        _store(db, records, index=True)
        with db.transaction():
            db.execute(
                "INSERT INTO hub_records (id, device_id, stream, epoch, seq, hash, prev_hash,"
                " record, received_at) VALUES ('old', 'pad-z', 'ratings', '', 1, 'h', 'p',"
                " 'not json', 'then')"
            )
            db.execute(
                "INSERT INTO hub_report_times (record_id, stream, local_at, utc_at) VALUES"
                " ('old', 'ratings', '2026-04-01T10:00:00.000000', '2026-04-01T02:00:00.000000')"
            )
        day = {"since": "2026-05-01", "until": "2026-05-02"}
        data = fg.figures(db, **day)
        firsts = [r for _, _, r in records if r.get("kind") != "loss" and r["assess_number"] == 1]
        assert data["hall"]["ratings"] == len(firsts) > 0
        assert len(list(export.rows(db, **day))) == sum(len(r["cases"]) for _, _, r in records
                                                        if r.get("kind") != "loss")  # fmt: skip


def test_two_receivers_filling_an_old_database_fill_it_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two receivers fill an older database at once, chunk by chunk (small chunks here, so
    they take turns many times): every countable record indexed once, the fill marked done."""
    monkeypatch.setattr(db_module, "FILL_CHUNK", 7)
    records = _history(random.Random(3))
    with open_db(db_url) as db:
        _store(db, records, index=False)
        db.execute("DELETE FROM hub_backfills")
    opened: list[HubDB] = []
    errors: list[BaseException] = []

    def receiver() -> None:
        try:
            db = open_db(db_url)
            opened.append(db)
            while not db.fill_reports(chunks=1):
                pass
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=receiver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(opened) == 2
    countable = [r for _, s, r in records if r.get("kind") != "loss"
                 and (s == "ratings" or r["kind"] == "presentation_end")]  # fmt: skip
    db = opened[0]
    assert db.rows("SELECT count(*) FROM hub_report_times")[0][0] == len(countable)
    assert db.rows("SELECT name FROM hub_backfills") == [(REPORT_BACKFILL,)]
    assert _reports(fg, db, "2026-05-01", "2026-05-02") == _reports(ref, db, "2026-05-01",
                                                                     "2026-05-02")
    for each in opened:
        each.close()


def test_an_interrupted_fill_resumes_where_it_ended(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver stopped midway (a deploy, systemd's start timeout) keeps the chunks it
    filled; the next one goes on from there, and a report run before the end finishes it."""
    monkeypatch.setattr(db_module, "FILL_CHUNK", 10)
    records = _history(random.Random(5))
    with open_db(db_url) as db:
        _store(db, records, index=False)
        db.execute("DELETE FROM hub_backfills")
    with open_db(db_url) as db:
        assert not db.fill_reports(chunks=2)
        after = db.rows("SELECT after FROM hub_backfill_progress")[0][0]
        assert db.rows("SELECT count(*) FROM hub_records WHERE id <= ?", (after,))[0][0] == 20
    with open_db(db_url) as db:
        assert not db.reports_filled()
        got = _reports(fg, db, "2026-05-01", "2026-05-02")  # the report completes the fill
        assert db.reports_filled()
        assert got == _reports(ref, db, "2026-05-01", "2026-05-02")
