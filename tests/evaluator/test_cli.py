"""The ``evaluator`` command line: config check, ratings export, verify, stats."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from evaluator.app import StoreLedger
from evaluator.cli import CSV_COLUMNS, main
from evaluator.clock import FakeClock
from evaluator.levels import Level
from evaluator.reasons import load_reasons
from evaluator.request import parse_request
from evaluator.session import Session
from sync.store import Store

REPO = Path(__file__).resolve().parents[2]


def start(session: Session, serial: str, *, matter: str = "M1") -> None:
    session.start(
        parse_request(
            {
                "clerk": {"id": "A1023", "name": "陈晓明"},
                "stage": "deliver",
                "cases": [
                    {
                        "serial": serial,
                        "matter_code": matter,
                        "matter_name": "居民身份证换领",
                        "kind": "instant",
                    }
                ],
            }
        )
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store with three presentations: 非常满意, a 差评 with a reason, and one not rated."""
    path = tmp_path / "ratings.db"
    store = Store(path, device_id="cli-1")
    clock = FakeClock()
    s = Session(ledger=StoreLedger(store), reasons=load_reasons(), clock=clock)
    start(s, "S1")
    s.press(Level.VERY_SATISFIED)
    clock.advance(5)
    start(s, "S2")
    s.press(Level.DISSATISFIED)
    s.toggle_reason("214")
    s.submit()
    clock.advance(5)
    start(s, "S3")
    clock.advance(61)
    s.tick()
    store.ack([next(store.records())["id"]])
    store.close()
    return path


def test_ratings_table_lists_every_rating_and_delivery(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ratings", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "very_satisfied" in out and "dissatisfied" in out
    assert "2 rating(s), 1 awaiting the city's ack" in out


def test_ratings_jsonl_is_the_sealed_records(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ratings", "--db", str(db), "--format", "jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in records] == [1, 2]
    assert records[1]["prev_hash"] == records[0]["hash"]
    assert records[1]["reasons"] == [{"code": "214", "text": "服务态度生硬", "target": "clerk"}]


def test_ratings_csv_to_a_file(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    assert main(["ratings", "--db", str(db), "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["level"], r["score"], r["reasons"], r["delivered"]) for r in rows] == [
        ("very_satisfied", "10", "", "yes"),
        ("dissatisfied", "3", "214", "no"),
    ]


def test_verify_ok_then_names_the_altered_record(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--db", str(db)]) == 0
    assert "intact over 2 rating(s)" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:  # tamper behind the store's back
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall()
        for (name,) in triggers:
            conn.execute(f"DROP TRIGGER {name}")
        edit = "replace(record, '\"score\":3', '\"score\":8')"
        conn.execute(f"UPDATE ratings SET record = {edit} WHERE seq = 2")
    assert main(["verify", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and "seq=2" in out


def test_stats_counts_mean_and_participation(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--db", str(db), "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["clerk_id"], row["matter_code"], row["ratings"]) == ("A1023", "M1", 2)
    assert row["mean_score"] == pytest.approx(6.5)
    assert (row["presented"], row["rated"]) == (3, 2)
    assert row["participation"] == pytest.approx(2 / 3)
    assert main(["stats", "--db", str(db)]) == 0
    assert "67%" in capsys.readouterr().out


def test_config_check_clean_and_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(REPO / "config" / "demo.toml")]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[device]\nid = "x"\n[mqtt]\nhots = "a"\nport = 70000\n[session]\ntimeout = 60\n'
    )
    assert main(["config", "check", str(bad)]) == 2
    out = capsys.readouterr().out
    assert "did you mean 'host'" in out
    assert "mqtt.port = 70000" in out
    assert "did you mean '60s'" in out


def test_missing_store_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--db", str(tmp_path / "nope.db")]) == 2
    assert "no rating store at" in capsys.readouterr().err


def test_run_with_a_broken_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[device]\nid = 'bad id/with slash'\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "device.id" in capsys.readouterr().err
