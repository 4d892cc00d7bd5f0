"""The ``evaluator`` command line: config check, ratings export, verify, stats."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from evaluator.app import StoreLedger
from evaluator.cli import CSV_COLUMNS, main
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.reasons import load_reasons
from evaluator.rules.records import GENESIS_HASH, canonical_json, new_record_id, seal
from evaluator.rules.request import parse_request
from evaluator.rules.session import Session
from sync.store import BUSY_TIMEOUT_MS, Store, m001_initial
from tests.sync.test_mqtt import full_content
from tests.sync.test_store_faults import damage_record, run_without_write_rights, snapshot

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
    s = Session(ledger=StoreLedger(lambda: store), reasons=load_reasons(), clock=clock)
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
    stats = json.loads(capsys.readouterr().out)
    [clerk] = stats["clerks"]
    assert (clerk["clerk_id"], clerk["ratings"]) == ("A1023", 2)
    assert clerk["mean_score"] == pytest.approx(6.5)
    assert (clerk["should_rate"], clerk["rated"]) == (3, 2)
    assert clerk["participation"] == 0.667  # 2/3 rounded once (evaluator.rules.figures)
    [matter] = stats["matters"]
    assert (matter["matter_code"], matter["mean_score"]) == ("M1", pytest.approx(6.5))
    assert stats["device"]["item_score"] == pytest.approx(6.5)
    assert main(["stats", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "66.7%" in out and "item score 6.50" in out


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


# -- the tools open the store read-only; faults are reported, not raised ----------------------


def values_of(key: str, tree: Any) -> list[Any]:
    """Every value under ``key`` anywhere in a JSON tree (whatever the stats layout)."""
    if isinstance(tree, dict):
        found = [tree[key]] if key in tree else []
        return found + [v for child in tree.values() for v in values_of(key, child)]
    if isinstance(tree, list):
        return [v for child in tree for v in values_of(key, child)]
    return []


def pad_store(path: Path, n: int) -> list[dict[str, Any]]:
    """What the pad leaves: ``n`` ratings appended through the store, all still unsent."""
    with Store(path, device_id="cli-1") as store:
        return [store.append_rating(full_content(f"S-{i}")) for i in range(1, n + 1)]


TOOLS = (["ratings", "--format", "jsonl"], ["verify"], ["stats", "--format", "json"])


def test_the_tools_run_beside_a_pad_mid_transaction_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ratings.db"
    pad_store(path, 3)
    pad = sqlite3.connect(path, isolation_level=None)
    try:
        pad.execute("BEGIN IMMEDIATE")  # the pad holds the write lock
        pad.execute("INSERT INTO meta (key, value) VALUES ('in-flight', 'x')")
        before = snapshot(path)
        for tool in TOOLS:
            started = time.monotonic()
            assert main([*tool, "--db", str(path)]) == 0, capsys.readouterr().err
            # Never waited for the writer's lock (that wait is the busy timeout, 5 s).
            assert time.monotonic() - started < BUSY_TIMEOUT_MS / 1000 * 0.8
        assert snapshot(path) == before
        pad.execute("COMMIT")
    finally:
        pad.close()
    out = capsys.readouterr().out
    assert "OK: hash chain intact over 3 rating(s)" in out


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t[0])
def test_the_tools_read_a_store_they_may_not_write(tmp_path: Path, tool: list[str]) -> None:
    path = tmp_path / "store" / "ratings.db"
    pad_store(path, 2)
    before = snapshot(path)
    path.chmod(0o444)
    path.parent.chmod(0o555)
    try:
        argv = [*tool, "--db", str(path)]
        result = run_without_write_rights(f"from evaluator.cli import main; exit(main({argv!r}))")
    finally:
        path.parent.chmod(0o755)
        path.chmod(0o644)
    assert result.returncode == 0, result.stdout + result.stderr
    marker = {"ratings": '"serial": "S-2"', "verify": "intact over 2", "stats": '"ratings": 2'}
    assert marker[tool[0]] in result.stdout
    assert snapshot(path) == before


def test_damaged_records_are_named_and_the_rest_flows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ratings.db"
    records = pad_store(path, 4)
    damage_record(path, 2, '{"seq": 2, "id": "cut off')
    damage_record(path, 4, "[]")

    assert main(["ratings", "--db", str(path), "--format", "jsonl"]) == 1
    captured = capsys.readouterr()
    exported = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["id"] for r in exported] == [records[0]["id"], records[2]["id"]]
    assert "2 damaged record(s) skipped" in captured.err
    assert f"seq=2 id={records[1]['id']}" in captured.err and "seq=4" in captured.err

    assert main(["ratings", "--db", str(path)]) == 1  # the table too
    assert "2 rating(s), 2 awaiting" in capsys.readouterr().out

    assert main(["verify", "--db", str(path)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN: first broken record seq=2" in out
    assert "BROKEN: first broken record seq=2" in out and "DAMAGED: record seq=4" in out
    assert "DAMAGED: record seq=2" not in out  # named once, not twice

    assert main(["stats", "--db", str(path), "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert max(values_of("ratings", json.loads(captured.out))) == 2  # the rest is counted
    assert "stats: WARNING: 2 record(s)/row(s) do not verify and are left out" in captured.err
    assert f"ratings seq=2 id={records[1]['id']}: damaged" in captured.err


def test_verify_says_the_store_follows_a_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ratings.db"
    pad_store(path, 3)
    path.write_bytes(b"")  # the card lost the file's content
    with Store(path, device_id="cli-1") as store:  # the pad starts again
        kept = store.recovered_from
        store.append_rating(full_content("NEW-1"))
    assert main(["verify", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"NOTE: this store follows a gap after {kept}" in out
    assert "OK: hash chain intact over 1 rating(s)" in out
    assert main(["ratings", "--db", str(path)]) == 0
    assert f"follows a gap after {kept}" in capsys.readouterr().err


def test_a_damaged_store_file_is_a_clear_error_and_stays_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ratings.db"
    path.write_bytes(b"not a database" * 50)
    for tool in TOOLS:
        assert main([*tool, "--db", str(path)]) == 2
        assert "is damaged" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["ratings.db"]
    assert path.read_bytes() == b"not a database" * 50


def older_store(path: Path) -> dict[str, Any]:
    """A store as the first release left it: only migration m001, one unsent rating."""
    conn = sqlite3.connect(path)
    db = Database(conn)
    db.execute("PRAGMA journal_mode = WAL")
    first = Migrations("evaluator")
    first(name="m001_initial")(m001_initial)
    first.apply(db)
    body = {**full_content("S-1"), "id": new_record_id(), "seq": 1, "device_id": "old-1"}
    record = seal(body, prev_hash=GENESIS_HASH)
    conn.execute(
        "INSERT INTO ratings VALUES (?, 1, 'old-1', ?, ?, 'deliver', 1, ?, ?, ?, ?)",
        [
            record["id"],
            record["presentation_id"],
            record["level"],
            record["rated_at"],
            record["hash"],
            record["prev_hash"],
            canonical_json(record).decode(),
        ],
    )
    conn.execute("INSERT INTO rating_cases VALUES (?, 'S-1', 'deliver', 1)", [record["id"]])
    conn.execute("INSERT INTO outbox VALUES (?)", [record["id"]])
    conn.execute("INSERT INTO meta VALUES ('device_id', 'old-1')")
    conn.commit()
    conn.close()
    return record


def test_the_tools_read_a_store_an_older_version_wrote_without_migrating_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ratings.db"
    record = older_store(path)
    before = snapshot(path)
    assert main(["stats", "--db", str(path), "--format", "json"]) == 0
    assert max(values_of("ratings", json.loads(capsys.readouterr().out))) == 1
    assert main(["verify", "--db", str(path)]) == 0
    assert "intact over 1 rating(s)" in capsys.readouterr().out
    assert main(["ratings", "--db", str(path), "--format", "jsonl"]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [
        record["id"]
    ]
    assert snapshot(path) == before
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")]
    assert names == ["m001_initial"]  # the file itself was not migrated


def test_the_csv_export_names_a_self_service_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.sync.test_mqtt import full_content

    path = tmp_path / "r.db"
    with Store(path, device_id="cli-1") as store:
        record = full_content("T-1")
        record.update(clerk=None, terminal="ZZ-07", targets=["matter"], channel=5)
        store.append_rating(record)
        store.append_rating(full_content("W-1"))
    assert main(["ratings", "--db", str(path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["terminal"], r["clerk_id"]) for r in rows] == [("ZZ-07", ""), ("", "007")]


def test_the_pad_s_csv_quotes_what_a_spreadsheet_would_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same rule as the city's export (issue 16): a matter name from the business system
    that starts a formula, after spaces or as a full-width sign, is shown as typed."""
    from tests.sync.test_mqtt import full_content

    path = tmp_path / "r.db"
    names = ["=1+1", " =HYPERLINK(1)", "＝SUM(A1)", "@x", "-3", "办理营业执照"]
    with Store(path, device_id="cli-1") as store:
        for i, name in enumerate(names):
            record = full_content(f"S-{i}")
            for case in record["cases"]:
                case["matter_name"] = name
            store.append_rating(record)
    assert main(["ratings", "--db", str(path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["matter_names"] for r in rows] == [f"'{n}" for n in names[:-1]] + [names[-1]]
    assert [r["seq"] for r in rows] == [str(i) for i in range(1, 7)]  # numbers stay numbers
