"""Art. 40 (issue 15): ``verify`` covers every table a figure is made from, and ``stats``
counts only what verifies, saying loudly what it left out.

A real pad (App, the shipped dummy counter link, a device key next to its store, a fake clock)
writes a real store; then, with the store's SQLite triggers dropped as someone holding the SD
card would, every row of every table a figure comes from is deleted, rewritten column by
column (and the sealed JSON byte by byte at spread positions), or a row is inserted.  For each:
``evaluator verify --pubkey`` exits 1 naming the table and the row, and ``evaluator stats``
exits 1, names it in a WARNING on stderr and in the JSON's ``left_out``.  ``rating_cases`` is
read by no figure: verify reports it, the figures stay as they were.  The three findings of the
issue are named examples.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evaluator.app import App
from evaluator.cli import main
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.records import canonical_json, new_record_id, seal
from kiosk.view import ExpandTheme, PressLevel
from sync.keys import DeviceKey
from tests.evaluator.test_app_reask import CLERK, HOUR, ask, rate, start, wait

REPO = Path(__file__).resolve().parents[2]
THEME = {"code": "YJS-0007", "name": "开办餐饮店"}


def theme_case(serial: str) -> dict[str, str]:
    """A case of the theme: each of its own matter."""
    return {"serial": serial, "matter_code": f"M-{serial}", "matter_name": f"事项{serial}",
            "kind": "instant"}  # fmt: skip


#: Columns a rewrite of which verify cannot see, and why no figure changes (asserted).
UNBOUND = {
    # Read by no figure and bound to no signed field: the art. 22/25 supervision's own.
    ("presentations", "clock_synced"),
    ("presentations", "follows"),
    ("presentations", "touched"),
    ("presentations", "facts"),
}
#: Columns of a presentation that ended unrated that no signed record carries (the
#: presentation_end event is API v1): checked against the row's cases only.
UNSIGNED_WHEN_UNRATED = {"stage", "visit", "assess_number"}


@dataclass(frozen=True)
class Pad:
    db: Path
    pubkey: str


@pytest.fixture(scope="module")
def pad(tmp_path_factory: pytest.TempPathFactory) -> Pad:
    """Four ratings (8, 0, 10, 6), a timeout, a clerk's cancel, a re-presentation, a timeout,
    a follow-up, then two themes rated item by item (8 each), the first left after one item:
    every kind of row a figure comes from."""
    tmp = tmp_path_factory.mktemp("pad")
    override = tmp / "o.toml"
    override.write_text(
        f'[device]\nid = "audit-1"\narea_code = "440500"\n[counter]\nport = "dummy://"\n'
        f'[mqtt]\nenabled = false\n[storage]\npath = "{tmp / "r.db"}"\n'
        f'[screen]\ndriver = "dummy"\n[session]\ntimeout = "15s"\n',
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())
    try:
        assert ask(app, "clerk.sign_in", clerk=CLERK)["ok"]
        assert start(app, "S1")["ok"]
        rate(app, Level.SATISFIED)
        assert start(app, "S2")["ok"]
        rate(app, Level.VERY_DISSATISFIED)
        assert start(app, "S3")["ok"]
        wait(app, 16)  # untouched: not rated, may be shown again
        assert start(app, "S4")["ok"]
        wait(app, 2)
        assert ask(app, "evaluation.cancel")["ok"]
        wait(app, 1)
        assert start(app, "S3")["ok"]  # re-presents the timed-out one
        rate(app, Level.VERY_SATISFIED)
        assert start(app, "S5")["ok"]
        rate(app, Level.BASICALLY_SATISFIED)
        assert start(app, "S6")["ok"]
        wait(app, 16)
        wait(app, 4 * HOUR)
        assert start(app, "S1", assess_number=2)["ok"]
        rate(app, Level.VERY_SATISFIED)
        # 一件事 themes rated item by item: T ends after its first item (a timeout), U whole.
        for serials, items in ((("T1", "T2", "T3"), 1), (("U1", "U2"), 2)):
            cases = [theme_case(serial) for serial in serials]
            assert ask(app, "evaluation.start", clerk=CLERK, stage="deliver", theme=THEME,
                       cases=cases)["ok"]  # fmt: skip
            wait(app, 1)
            app.act(ExpandTheme())
            for _ in range(items):
                wait(app, 1)
                app.act(PressLevel(Level.SATISFIED))
            wait(app, 16)
            assert app.view().screen == "idle"
        key = DeviceKey.load(app.config.device.key_file)
    finally:
        app.shutdown()
    db = tmp / "clean.db"
    with sqlite3.connect(tmp / "r.db") as conn:
        conn.execute(f"VACUUM INTO '{db}'")
    return Pad(db, key.public.text)


def run(pad: Pad, db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, int, Any, str]:
    """``verify`` (exit, stdout) and ``stats --format json`` (exit, JSON, stderr) of ``db``."""
    capsys.readouterr()
    verified = main(["verify", "--db", str(db), "--pubkey", pad.pubkey])
    out = capsys.readouterr().out
    counted = main(["stats", "--db", str(db), "--pubkey", pad.pubkey, "--format", "json"])
    captured = capsys.readouterr()
    return verified, out, counted, json.loads(captured.out), captured.err


def figures(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: stats[k] for k in ("device", "clerks", "matters")}


def tampered(pad: Pad, tmp: Path, sql: str, args: tuple[Any, ...] = ()) -> Path:
    """A copy of the pad's store with its triggers dropped and ``sql`` applied (one row)."""
    db = tmp / "t.db"
    db.unlink(missing_ok=True)
    shutil.copy(pad.db, db)
    with sqlite3.connect(db) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f"DROP TRIGGER {name}")
        assert conn.execute(sql, args).rowcount == 1, (sql, args)
    conn.close()
    return db


#: The tables a figure comes from, each with what tells its rows apart.
TABLES = {
    "ratings": "seq",
    "events": "seq",
    "rating_cases": "rowid",
    "presentations": "seq",
    "presentation_cases": "rowid",
}


def rows(db: Path, table: str) -> Iterator[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        cur = conn.execute(f"SELECT rowid AS _rowid, * FROM {table} ORDER BY rowid")
        names = [d[0] for d in cur.description]
        found = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    conn.close()
    yield from found


def other(value: Any, column: str) -> Any:
    """Another value of the same column: what a rewrite puts there."""
    if column == "outcome":  # another outcome the CHECK constraint allows
        return {"rated": "not_rated", "not_rated": "cancelled"}.get(value, "rated")
    if value is None:
        return 1 if column in ("touched",) else "x"
    if isinstance(value, int):
        return value + 1000  # clear of every unique key
    if column in ("record", "facts"):
        return value  # byte by byte, below
    if value.startswith("["):
        return "[]" if value != "[]" else '["x"]'
    return value + "x"


def positions(text: str, count: int = 6) -> list[int]:
    """Spread positions over a sealed JSON text (its first and last bytes included)."""
    return sorted({round(i * (len(text) - 1) / (count - 1)) for i in range(count)})


def flip(text: str, at: int) -> str:
    ch = text[at]
    swap = {"0": "1", "1": "2", '"': "'", "{": "[", "}": "]", ":": ";", ",": ";"}
    return text[:at] + swap.get(ch, "0" if ch != "0" else "1") + text[at + 1 :]


def mutations(pad: Pad) -> Iterator[tuple[str, str, str, tuple[Any, ...], Any]]:
    """``(table, what, sql, args, row key)`` for every row: delete, each column rewritten,
    the sealed JSON changed at spread positions."""
    for table, key in TABLES.items():
        for row in rows(pad.db, table):
            where = f"{key} = ?"
            ident = row["_rowid"] if key == "rowid" else row[key]
            yield table, "delete", f"DELETE FROM {table} WHERE {where}", (ident,), row
            for column, value in row.items():
                if column == "_rowid":
                    continue
                if column in ("record",):
                    for at in positions(value):
                        new = flip(value, at)
                        sql = f"UPDATE {table} SET record = ? WHERE {where}"
                        yield table, f"record[{at}]", sql, (new, ident), row
                    continue
                sql = f"UPDATE {table} SET {column} = ? WHERE {where}"
                yield table, f"rewrite {column}", sql, (other(value, column), ident), row


def test_every_row_of_every_table_a_figure_comes_from(
    pad: Pad, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Delete any row, rewrite any column of it, change its sealed JSON anywhere: verify names
    it; stats leaves it out and says so (rating_cases: no figure changes)."""
    verified, out, counted, clean, err = run(pad, pad.db, capsys)
    assert (verified, counted) == (0, 0), out + err
    assert "FINDINGS" not in out and clean["left_out"] == [] and "WARNING" not in err
    device = clean["device"]
    assert (device["ratings"], device["should_rate"], device["rated"]) == (7, 11, 7)
    assert clean["open_presentations"] == []
    assert len(clean["unsigned_counted"]) == 1  # T2, T3 of the theme left unfinished
    assert (device["cancelled"], device["represented"]) == (1, 1)
    assert device["follow_ups"]["count"] == 1
    missed = []
    tried: dict[str, int] = {}
    for table, what, sql, args, row in mutations(pad):
        tried[table] = tried.get(table, 0) + 1
        db = tampered(pad, tmp_path, sql, args)
        verified, out, counted, stats, err = run(pad, db, capsys)
        column = what.removeprefix("rewrite ")
        unrated = table == "presentations" and row.get("outcome") != "rated"
        # a theme rated item by item that ended early: when and why it ended is unsigned
        early = table == "presentations" and row.get("end_cause") not in ("rated", None)
        if (
            (table, column) in UNBOUND
            or (unrated and column in UNSIGNED_WHEN_UNRATED)
            or (early and not unrated and column == "ended_at")
        ):
            if verified == 0:  # unseen: then no figure may have changed
                assert figures(stats) == figures(clean), (table, what, row)
            continue
        seen = verified == 1 and ("FINDINGS" in out or "BROKEN" in out)
        if table == "rating_cases":
            told = counted == 0 and figures(stats) == figures(clean)
        else:
            told = (
                counted == 1 and bool(stats["left_out"]) and "WARNING" in err and "left out" in err
            )
        if not (seen and told):
            missed.append((table, what, row.get("seq", row["_rowid"]), verified, counted))
    assert not missed, "\n".join(map(str, missed))
    assert set(tried) == set(TABLES), tried
    with capsys.disabled():  # the size of the class, in the test log
        print(f"tampered stores: {tried}")


def test_an_inserted_row_of_any_table_is_named(
    pad: Pad, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of any row under a new key, and a rating and an event sealed onto the chains'
    heads with no device signature: verify names each, stats leaves each out."""
    inserts: list[tuple[str, str, tuple[Any, ...]]] = []
    for table in TABLES:
        for row in rows(pad.db, table):
            row.pop("_rowid")
            new = dict(row)
            for k in ("id", "rating_id", "presentation_id", "serial", "event_id"):
                if isinstance(new.get(k), str):
                    new[k] += "x"
            if "seq" in new:
                new["seq"] = 1000 + row["seq"]
            names = ", ".join(new)
            marks = ", ".join("?" * len(new))
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"
            inserts.append((table, sql, tuple(new.values())))
    for table in ("ratings", "events"):
        [last] = list(rows(pad.db, table))[-1:]
        record = json.loads(last["record"])
        body = {k: v for k, v in record.items() if k not in ("sig", "prev_hash", "hash")}
        body.update(id=new_record_id(), seq=last["seq"] + 1)
        forged = seal(body, prev_hash=last["hash"])
        forged.update(key_id=record["key_id"], sig="A" * 86)
        columns = {k: v for k, v in last.items() if k != "_rowid"}
        columns.update(
            {k: forged[k] for k in columns if k in forged and k != "record"},
            record=canonical_json(forged).decode(),
        )
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        inserts.append(
            (table, f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(columns.values()))
        )
    verified, _, counted, clean, _ = run(pad, pad.db, capsys)
    assert {table for table, _, _ in inserts} == set(TABLES)
    with capsys.disabled():
        print(f"inserted rows: {len(inserts)}")
    missed = []
    for table, sql, args in inserts:
        db = tampered(pad, tmp_path, sql, args)
        verified, out, counted, stats, err = run(pad, db, capsys)
        seen = verified == 1 and ("FINDINGS" in out or "BROKEN" in out)
        if table == "rating_cases":
            told = counted == 0 and figures(stats) == figures(clean)
        else:
            told = counted == 1 and bool(stats["left_out"]) and "left out" in err
        if not (seen and told):
            missed.append((table, args[:2], verified, counted))
    assert not missed, "\n".join(map(str, missed))


def edit(pad: Pad, tmp: Path, change: Callable[[sqlite3.Connection], None]) -> Path:
    db = tmp / "e.db"
    shutil.copy(pad.db, db)
    with sqlite3.connect(db) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f"DROP TRIGGER {name}")
        change(conn)
    conn.close()
    return db


def test_a_clerks_cancel_rewritten_as_a_timeout_is_named_not_counted(
    pad: Pad, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: ``stats`` showed cancelled 0 instead of 1, and verify said OK."""

    def rewrite(conn: sqlite3.Connection) -> None:
        seq, text = conn.execute(
            'SELECT seq, record FROM events WHERE record LIKE \'%"outcome":"cancelled"%\''
        ).fetchone()
        text = text.replace('"by":"clerk"', '"by":"timeout"')
        text = text.replace('"outcome":"cancelled"', '"outcome":"not_rated"')
        conn.execute("UPDATE events SET record = ? WHERE seq = ?", [text, seq])
        conn.execute(
            "UPDATE presentations SET outcome = 'not_rated', end_cause = 'timeout'"
            " WHERE outcome = 'cancelled'"
        )

    db = edit(pad, tmp_path, rewrite)
    verified, out, counted, stats, err = run(pad, db, capsys)
    assert verified == 1 and "events seq=" in out and "does not match its hash" in out
    assert counted == 1 and stats["device"]["cancelled"] == 0
    assert [f["table"] for f in stats["left_out"]] == ["events", "presentations"]
    assert "WARNING" in err and "events seq=" in err


def test_a_deleted_presentation_is_named_not_silently_uncounted(
    pad: Pad, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: deleting a presentations row raised participation, and verify said OK."""
    _, _, _, clean, _ = run(pad, pad.db, capsys)

    def delete(conn: sqlite3.Connection) -> None:
        conn.execute(
            "DELETE FROM presentations WHERE seq ="
            " (SELECT max(seq) FROM presentations WHERE outcome = 'not_rated')"
        )

    db = edit(pad, tmp_path, delete)
    verified, out, counted, stats, err = run(pad, db, capsys)
    assert verified == 1 and "presentation_end event seq" in out and "has no row" in out
    assert counted == 1 and "has no row" in err
    assert stats["device"]["participation"] > clean["device"]["participation"]  # and said so
    assert any("has no row" in f["problem"] for f in stats["left_out"])


def test_a_rating_verify_flags_as_altered_is_not_counted(
    pad: Pad, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: ``stats`` counted a record ``verify`` flags as altered (mean 6.00 → 6.59)."""
    _, _, _, clean, _ = run(pad, pad.db, capsys)

    def alter(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE ratings SET record = replace(record, '\"score\":0', '\"score\":10')"
            " WHERE level = 'very_dissatisfied'"
        )

    db = edit(pad, tmp_path, alter)
    verified, out, counted, stats, err = run(pad, db, capsys)
    assert verified == 1 and "ratings seq=2" in out
    assert counted == 1 and stats["device"]["ratings"] == clean["device"]["ratings"] - 1
    # (8 + 10 + 6 + 3 × 8) / 6: the altered one left out, not counted as a 10
    assert stats["device"]["mean_score"] == 8.0
    assert "ratings seq=2" in err and "altered" in err
