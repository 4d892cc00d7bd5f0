"""The rating store on real SQLite files: append-only, chained, durable, one rating per case."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.rules.errors import StoreError
from evaluator.rules.records import GENESIS_HASH, verify_chain
from sync.audit import stats as audited_stats
from sync.store import (
    APPEND_ONLY,
    DuplicateRating,
    PresentationEnd,
    Store,
    _pending_migrations,
    migration_set,
)

DEVICE = "pad-440500-01"


def content(
    *serials: str,
    stage: str = "deliver",
    assess_number: int = 1,
    level: str = "satisfied",
    score: int = 8,
    clerk: tuple[str, str] = ("007", "张三"),
    matter: tuple[str, str] = ("M1", "不动产登记"),
    presentation_id: str = "p-1",
) -> dict[str, Any]:
    return {
        "presentation_id": presentation_id,
        "level": level,
        "score": score,
        "cases": [
            {"serial": s, "matter_code": matter[0], "matter_name": matter[1], "kind": "instant"}
            for s in serials or ("S-1",)
        ],
        "clerk": {"id": clerk[0], "name": clerk[1]},
        "stage": stage,
        "assess_number": assess_number,
        "rated_at": "2025-01-02T03:04:05+08:00",
    }


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "ratings.db"


@pytest.fixture
def store(db_path: Path):
    s = Store(db_path, device_id=DEVICE)
    yield s
    s.close()


def raw(path: Path) -> sqlite3.Connection:
    """A connection behind the store's back, with the append-only triggers dropped."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER ratings_no_update")
    conn.execute("DROP TRIGGER ratings_no_delete")
    return conn


def counts(path: Path) -> tuple[int, int, int]:
    with sqlite3.connect(path) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("ratings", "rating_cases", "outbox")
        )


# -- opening ----------------------------------------------------------------------------------


def test_open_creates_the_directory_and_sets_durable_pragmas(store: Store, db_path: Path) -> None:
    assert db_path.exists()
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_migrations_are_named_and_run_once(db_path: Path) -> None:
    Store(db_path, device_id=DEVICE).close()
    with Store(db_path, device_id=DEVICE) as again:
        rows = again.db.execute(
            "SELECT migration_set, name FROM _sqlite_migrations ORDER BY id"
        ).fetchall()
    assert rows == [
        ("evaluator", "m001_initial"),
        ("evaluator", "m002_slots_and_supervision"),
        ("evaluator", "m003_outbox_by_seq"),
        ("evaluator", "m004_events"),
        ("evaluator", "m005_losses"),
        ("evaluator", "m006_epoch"),
    ]


def test_pending_migrations_are_found_with_plain_sqlite(db_path: Path) -> None:
    """The check that lets an up-to-date store open without sqlite-utils (issue 6) agrees
    with sqlite-utils' own ``Migrations.pending``."""
    with Store(db_path, device_id=DEVICE) as store:
        assert not _pending_migrations(store.conn)
        assert migration_set().pending(store.db) == []
    with sqlite3.connect(db_path, isolation_level=None) as conn:
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm002_slots_and_supervision'")
        assert _pending_migrations(conn)
        assert _pending_migrations(conn, check_table=False)
        conn.execute("DROP TABLE _sqlite_migrations")
        assert _pending_migrations(conn)
    conn.close()


def test_an_up_to_date_store_opens_and_takes_a_rating_without_importing_sqlite_utils(
    db_path: Path,
) -> None:
    """sqlite-utils costs ~40 ms of the pad's start: a store with every migration applied is
    opened, written and read with the ``sqlite3`` module alone; ``db`` still gives the
    sqlite-utils ``Database`` on demand (a fresh interpreter, so nothing imported it before)."""
    Store(db_path, device_id=DEVICE).close()  # creates and migrates (sqlite-utils used here)
    script = (
        "import sys\n"
        "from sync.store import Store\n"
        f"s = Store({str(db_path)!r}, device_id={DEVICE!r})\n"
        f"s.append_rating({content('S-9')!r})\n"
        "print(s.outbox_size(), 'sqlite_utils' in sys.modules)\n"
        "print(type(s.db).__module__, 'sqlite_utils' in sys.modules)\n"
        "s.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["1", "False", "sqlite_utils.db", "True"]
    assert counts(db_path) == (1, 1, 1)


def test_the_store_connection_has_the_pragmas_sqlite_utils_would_set(store: Store) -> None:
    """Without sqlite-utils' ``Database`` wrapper at open, the connection still gets its
    ``recursive_triggers`` (so SQL behaves as it did through sqlite-utils)."""
    assert store.conn.execute("PRAGMA recursive_triggers").fetchone()[0] == 1


def test_a_file_that_is_not_a_database_is_kept_aside_not_reused(tmp_path: Path) -> None:
    bad = tmp_path / "ratings.db"
    junk = b"this is not sqlite" * 100
    bad.write_bytes(junk)
    with Store(bad, device_id=DEVICE) as fresh:
        assert fresh.recovered_from is not None
        assert fresh.recovered_from.read_bytes() == junk  # kept, byte for byte
        assert fresh.append_rating(content("S-1"))["seq"] == 1


# -- appending --------------------------------------------------------------------------------


def test_append_assigns_id_seq_device_and_chains(store: Store) -> None:
    records = [store.append_rating(content(f"S-{i}")) for i in range(3)]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert all(r["device_id"] == DEVICE for r in records)
    assert len({r["id"] for r in records}) == 3
    assert records[0]["prev_hash"] == GENESIS_HASH
    assert records[1]["prev_hash"] == records[0]["hash"]
    assert list(store.records()) == records
    assert store.verify() is None
    assert verify_chain(store.records()) is None


def test_records_since_seq(store: Store) -> None:
    for i in range(4):
        store.append_rating(content(f"S-{i}"))
    assert [r["seq"] for r in store.records(since_seq=2)] == [3, 4]


def test_stored_json_is_the_canonical_sealed_record(store: Store, db_path: Path) -> None:
    record = store.append_rating(content("S-1"))
    with sqlite3.connect(db_path) as conn:
        text = conn.execute("SELECT record FROM ratings").fetchone()[0]
    assert json.loads(text) == record
    assert "张三" in text  # UTF-8, not \\u escapes


def test_ratings_cannot_be_updated_or_deleted(store: Store, db_path: Path) -> None:
    store.append_rating(content("S-1"))
    conn = sqlite3.connect(db_path)
    for sql in (
        "UPDATE ratings SET level = 'very_satisfied'",
        "DELETE FROM ratings",
        "UPDATE rating_cases SET serial = 'X'",
        "DELETE FROM rating_cases",
    ):
        with pytest.raises(sqlite3.DatabaseError, match=APPEND_ONLY):
            conn.execute(sql)
    conn.close()
    assert counts(db_path) == (1, 1, 1)


def test_a_case_is_rated_once_per_stage_and_assess_number(store: Store, db_path: Path) -> None:
    store.append_rating(content("S-1", "S-2"))
    with pytest.raises(DuplicateRating) as caught:
        store.append_rating(content("S-3", "S-2", level="very_dissatisfied", score=0))
    assert caught.value.serials == ["S-2"]
    assert isinstance(caught.value, StoreError)
    assert counts(db_path) == (1, 2, 1)  # nothing of the refused rating was written
    slots = [("S-3", "deliver"), ("S-2", "deliver"), ("S-1", "deliver")]
    assert store.already_rated(slots, 1) == ["S-2", "S-1"]


def test_the_database_itself_refuses_a_second_rating_of_a_case(store: Store, db_path: Path) -> None:
    store.append_rating(content("S-1"))
    with sqlite3.connect(db_path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO rating_cases (rating_id, serial, stage, slot, assess_number)"
            " VALUES ('other', 'S-1', 'deliver', 'deliver', 1)"
        )


def test_follow_up_and_other_stage_are_allowed(store: Store) -> None:
    store.append_rating(content("S-1", stage="accept"))
    store.append_rating(content("S-1", stage="deliver"))
    follow_up = store.append_rating(content("S-1", stage="deliver", assess_number=2))
    assert follow_up["seq"] == 3
    assert store.already_rated([("S-1", "deliver")], 2) == ["S-1"]
    assert store.already_rated([("S-1", "deliver")], 3) == []


def test_a_follow_up_without_a_first_rating_is_refused_and_nothing_written(
    store: Store, db_path: Path
) -> None:
    with pytest.raises(StoreError, match="no first rating"):
        store.append_rating(content("S-1", assess_number=2))
    assert counts(db_path) == (0, 0, 0)
    first = store.append_rating(content("S-1"))
    assert store.first_ratings([("S-1", "deliver")])["S-1"]["rating_id"] == first["id"]


def test_slots_promise_visits_and_consult_cases(store: Store) -> None:
    promise = {**content("P-1", stage="accept")}
    promise["cases"] = [{**promise["cases"][0], "kind": "promise"}]
    store.append_rating(promise)
    with pytest.raises(DuplicateRating):
        store.append_rating(promise)
    store.append_rating({**promise, "visit": 2})  # a second window visit: a new slot
    consult = {**content("C-1", stage="accept")}
    consult["cases"] = [{**consult["cases"][0], "kind": "consult"}]
    store.append_rating(consult)
    with pytest.raises(DuplicateRating):
        store.append_rating({**consult, "stage": "deliver"})  # once in total


def test_the_rating_and_the_presentation_outcome_are_one_transaction(
    store: Store, db_path: Path
) -> None:
    store.open_presentation(**presentation("p-1"))
    with pytest.raises(ValueError):  # the close fails inside: the rating is not kept either
        store.append_rating(
            content("S-1"), close=PresentationEnd("p-1", "no-such-outcome", "t", ())
        )
    assert counts(db_path) == (0, 0, 0)
    record = store.append_rating(
        content("S-1"), close=PresentationEnd("p-1", "rated", "t", ("x",), "rated", True)
    )
    row = store.presentation_row("p-1")
    assert row is not None
    assert (row["outcome"], row["end_cause"], row["touched"]) == ("rated", "rated", 1)
    assert record["presentation_id"] == "p-1"


def test_the_same_serial_twice_in_one_rating_is_one_case(store: Store, db_path: Path) -> None:
    store.append_rating(content("S-1", "S-1"))
    assert counts(db_path) == (1, 1, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"cases": []},
        {"cases": [{"matter_code": "M1"}]},
        {"stage": ""},
        {"assess_number": "1"},
    ],
)
def test_malformed_content_is_refused_before_writing(
    store: Store, db_path: Path, change: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        store.append_rating({**content("S-1"), **change})
    assert counts(db_path) == (0, 0, 0)


def test_a_full_disk_raises_store_error_and_writes_nothing(store: Store, db_path: Path) -> None:
    store.append_rating(content("S-1"))
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    big = {**content("S-2"), "comment": "很长的意见" * 20000}
    with pytest.raises(StoreError, match="full"):
        store.append_rating(big)
    store.db.execute("PRAGMA max_page_count = 1073741823")
    assert counts(db_path) == (1, 1, 1)
    assert store.append_rating(content("S-3"))["seq"] == 2  # and it carries on afterwards
    assert store.verify() is None


# -- tamper evidence --------------------------------------------------------------------------


def test_verify_names_a_record_altered_behind_the_store(store: Store, db_path: Path) -> None:
    records = [store.append_rating(content(f"S-{i}", level="dissatisfied")) for i in range(3)]
    forged = dict(records[1], level="very_satisfied", score=10)
    conn = raw(db_path)
    conn.execute(
        "UPDATE ratings SET record = ? WHERE id = ?", [json.dumps(forged), records[1]["id"]]
    )
    conn.close()
    broken = store.verify()
    assert broken is not None
    assert (broken.seq, broken.id) == (2, records[1]["id"])


def test_an_unsent_record_resealed_behind_the_store_fails_its_signature(
    db_path: Path, tmp_path: Path
) -> None:
    """Issue 7's hole: re-sealing the last, unsent record with the same prev_hash kept the hash
    chain whole and ``verify`` passed; signed by the device key, it is caught."""
    from evaluator.rules.records import seal
    from sync.keys import DeviceKey

    key = DeviceKey.create(tmp_path / "device.key")

    def check(key_id: str, data: bytes, sig: bytes) -> bool:
        return key_id == key.key_id and key.public.check(data, sig)

    with Store(db_path, device_id=DEVICE, signer=key) as signed:
        records = [signed.append_rating(content(f"S-{i}", level="dissatisfied")) for i in range(3)]
        assert all(r["key_id"] == key.key_id and r["sig"] for r in records)
        assert signed.verify() is None
        assert signed.signatures(check).findings() == ((), ())
        assert signed.signed_count() == (3, 0)
        forged = seal(
            dict(records[2], level="very_satisfied", score=10), prev_hash=records[1]["hash"]
        )
        conn = raw(db_path)
        conn.execute(
            "UPDATE ratings SET record = ?, level = 'very_satisfied', hash = ? WHERE seq = 3",
            [json.dumps(forged), forged["hash"]],
        )
        conn.close()
        assert signed.verify() is None  # the chain alone cannot tell
        assert signed.signatures(check).findings() == ((3,), ())


def test_a_store_without_a_key_writes_unsigned_records(store: Store) -> None:
    record = store.append_rating(content("S-1"))
    assert "sig" not in record and "key_id" not in record
    assert store.signed_count() == (0, 1)


def test_verify_names_a_row_whose_columns_were_edited(store: Store, db_path: Path) -> None:
    records = [store.append_rating(content(f"S-{i}")) for i in range(2)]
    conn = raw(db_path)
    conn.execute("UPDATE ratings SET level = 'very_satisfied' WHERE seq = 2")
    conn.close()
    broken = store.verify()
    assert broken is not None
    assert broken.id == records[1]["id"]
    assert "level" in broken.reason


def test_verify_reports_a_deleted_record_as_a_gap(store: Store, db_path: Path) -> None:
    records = [store.append_rating(content(f"S-{i}")) for i in range(3)]
    conn = raw(db_path)
    conn.execute("DELETE FROM ratings WHERE id = ?", [records[1]["id"]])
    conn.close()
    broken = store.verify()
    assert broken is not None
    assert broken.seq == 3
    assert "gap" in broken.reason


# -- outbox -----------------------------------------------------------------------------------


def test_outbox_holds_every_rating_until_acked(store: Store) -> None:
    records = [store.append_rating(content(f"S-{i}")) for i in range(4)]
    assert store.outbox_size() == 4
    assert store.pending() == records
    assert store.pending(limit=2) == records[:2]
    assert store.pending(after_seq=2) == records[2:]
    assert store.ack([records[1]["id"], records[3]["id"], "unknown-id", records[1]["id"]]) == 2
    assert store.pending() == [records[0], records[2]]
    assert store.ack([records[1]["id"]]) == 0  # acked twice: nothing more to remove
    assert store.outbox_size() == 2
    assert list(store.records()) == records  # acking never touches the ratings


def test_low_and_high_ratings_wait_in_the_same_order(store: Store) -> None:
    low = store.append_rating(content("S-1", level="very_dissatisfied", score=0))
    high = store.append_rating(content("S-2", level="very_satisfied", score=10))
    assert [r["id"] for r in store.pending()] == [low["id"], high["id"]]


def test_everything_survives_reopening(db_path: Path) -> None:
    with Store(db_path, device_id=DEVICE) as first:
        a = first.append_rating(content("S-1"))
        first.open_presentation(**presentation("p-1"))
    with Store(db_path, device_id=DEVICE) as second:
        b = second.append_rating(content("S-2"))
        assert b["seq"] == 2 and b["prev_hash"] == a["hash"]
        assert [r["id"] for r in second.pending()] == [a["id"], b["id"]]
        assert second.already_rated([("S-1", "deliver")], 1) == ["S-1"]
        assert [p["id"] for p in second.unclosed_presentations()] == ["p-1"]
        assert second.verify() is None


def test_each_thread_its_own_store_append_and_ack_concurrently(db_path: Path) -> None:
    Store(db_path, device_id=DEVICE).close()
    total = 60
    errors: list[BaseException] = []
    done = threading.Event()
    acked: list[str] = []

    def appender() -> None:
        try:
            with Store(db_path, device_id=DEVICE) as s:
                for i in range(total):
                    s.append_rating(content(f"S-{i}"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def acker() -> None:
        try:
            with Store(db_path, device_id=DEVICE) as s:
                while True:
                    finished = done.is_set()
                    ids = [r["id"] for r in s.pending(limit=7)]
                    s.ack(ids)
                    acked.extend(ids)
                    if finished and not ids:
                        return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender), threading.Thread(target=acker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    with Store(db_path, device_id=DEVICE) as s:
        assert [r["seq"] for r in s.records()] == list(range(1, total + 1))
        assert s.verify() is None
        assert s.outbox_size() == 0
    assert len(set(acked)) == total


def test_a_store_belongs_to_the_thread_that_opened_it(store: Store) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            store.outbox_size()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and isinstance(errors[0], sqlite3.ProgrammingError)


# -- presentations and statistics -------------------------------------------------------------


def presentation(
    pid: str,
    *,
    clerk_id: str = "007",
    matters: tuple[str, ...] = ("M1",),
    serials: tuple[str, ...] = (),
):
    return {
        "id": pid,
        "serials": list(serials or (f"{pid}-case",)),
        "stage": "deliver",
        "assess_number": 1,
        "clerk_id": clerk_id,
        "matter_codes": list(matters),
        "started_at": "2025-01-02T03:04:00+08:00",
        "clock_synced": True,
    }


def test_a_presentation_outcome_is_set_once(store: Store, db_path: Path) -> None:
    store.open_presentation(**presentation("p-1"))
    with pytest.raises(StoreError, match="already opened"):
        store.open_presentation(**presentation("p-1"))
    store.close_presentation(
        "p-1", outcome="rated", ended_at="2025-01-02T03:05:00+08:00", rating_ids=["r-1"]
    )
    with pytest.raises(StoreError, match="final"):
        store.close_presentation("p-1", outcome="not_rated", ended_at="later")
    with pytest.raises(StoreError, match="no presentation"):
        store.close_presentation("p-404", outcome="not_rated", ended_at="later")
    with pytest.raises(ValueError):
        store.close_presentation("p-1", outcome="rated_by_clerk", ended_at="later")
    with sqlite3.connect(db_path) as conn:
        row = conn.execute(
            "SELECT outcome, ended_at, rating_ids, seq FROM presentations"
        ).fetchone()
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute("DELETE FROM presentations")
    assert row == ("rated", "2025-01-02T03:05:00+08:00", '["r-1"]', 1)
    assert store.unclosed_presentations() == []


def test_facts_of_an_open_presentation_cannot_change(store: Store, db_path: Path) -> None:
    store.open_presentation(**presentation("p-1"))
    with sqlite3.connect(db_path) as conn, pytest.raises(sqlite3.DatabaseError):
        conn.execute("UPDATE presentations SET clerk_id = 'someone else'")


def test_stats_participation_counts_cases_not_presentations(store: Store) -> None:
    """Art. 33: participation = cases with a first rating ÷ cases that should be rated."""
    # Clerk 007, matter M1: S-0..S-2 rated (10, 8, 0); S-3 shown twice, never rated.
    for i, (level, score) in enumerate(
        [("very_satisfied", 10), ("satisfied", 8), ("very_dissatisfied", 0)]
    ):
        store.open_presentation(**presentation(f"p-{i}", serials=(f"S-{i}",)))
        r = store.append_rating(
            content(f"S-{i}", level=level, score=score, presentation_id=f"p-{i}")
        )
        store.close_presentation(f"p-{i}", outcome="rated", ended_at="t", rating_ids=[r["id"]])
    store.open_presentation(**presentation("p-3", serials=("S-3",)))
    store.close_presentation("p-3", outcome="cancelled", ended_at="t", cause="evaluation.cancel")
    again = store.open_presentation(**presentation("p-3b", serials=("S-3",)))
    assert again == ["p-3"]  # a re-presentation names what it re-presents
    store.close_presentation("p-3b", outcome="not_rated", ended_at="t", cause="timeout")
    # A follow-up of S-0 is reported beside the figures: not in the mean, not a case to rate.
    store.open_presentation(**{**presentation("p-5", serials=("S-0",)), "assess_number": 2})
    store.append_rating(
        content("S-0", assess_number=2, level="satisfied", score=8, presentation_id="p-5")
    )
    # Clerk 008 was shown an M2 case once and it was never rated.
    store.open_presentation(**presentation("p-4", clerk_id="008", matters=("M2",)))
    store.close_presentation("p-4", outcome="not_rated", ended_at="t", cause="timeout")
    # On screen now: nothing signed yet, so listed, not counted (sync.audit).
    store.open_presentation(**presentation("p-6", clerk_id="008", serials=("S-6",)))
    # A theme of two M1 cases and an M3 case rated once by clerk 007.
    theme = [("S-10", "deliver", "M1"), ("S-11", "deliver", "M1"), ("S-12", "deliver", "M3")]
    store.open_presentation(
        **presentation("p-theme", serials=("S-10", "S-11", "S-12"), matters=("M1", "M3")),
        cases=theme,
    )
    t = store.append_rating(
        {
            **content(
                "S-10", "S-11", score=6, level="basically_satisfied", presentation_id="p-theme"
            ),
            "targets": ["clerk", "matter"],
            "cases": [
                {
                    "serial": "S-10",
                    "matter_code": "M1",
                    "matter_name": "不动产登记",
                    "kind": "instant",
                },
                {
                    "serial": "S-11",
                    "matter_code": "M1",
                    "matter_name": "不动产登记",
                    "kind": "instant",
                },
                {"serial": "S-12", "matter_code": "M3", "matter_name": "户籍", "kind": "instant"},
            ],
        }
    )
    store.close_presentation("p-theme", outcome="rated", ended_at="t", rating_ids=[t["id"]])
    stats = audited_stats(store)
    clerks = {r["clerk_id"]: r for r in stats["clerks"]}
    c7 = clerks["007"]
    assert c7["clerk_name"] == "张三"
    assert c7["ratings"] == 4 and c7["mean_score"] == pytest.approx((10 + 8 + 0 + 6) / 4)
    assert c7["follow_ups"] == {"count": 1, "mean_score": 8, "changed_level": 0}
    # S-0, S-1, S-2, S-10, S-11, S-12 rated; S-3 (shown twice) not: 6 of 7 cases.
    assert (c7["should_rate"], c7["rated"]) == (7, 6)
    assert c7["participation"] == 0.857  # 6/7 rounded once (evaluator.rules.figures)
    assert (c7["cancelled"], c7["represented"]) == (1, 1)
    c8 = clerks["008"]
    assert (c8["ratings"], c8["mean_score"], c8["should_rate"], c8["rated"]) == (0, None, 1, 0)
    assert c8["participation"] == 0
    matters = {r["matter_code"]: r for r in stats["matters"]}
    # Only the theme rating names "matter" among its targets: the others rate the clerk.
    assert matters["M1"]["mean_score"] == 6 and matters["M3"]["mean_score"] == 6
    assert matters["M1"]["matter_name"] == "不动产登记"
    device = stats["device"]
    assert (device["should_rate"], device["rated"]) == (8, 6)
    assert device["item_score"] == pytest.approx(6)
    assert device["cancelled"] == 1
    assert stats["open_presentations"] == ["p-5", "p-6"] and stats["left_out"] == []


# -- property: whatever the order of attempts, one rating per (case, stage, assess number) ----

attempts = st.lists(
    st.tuples(
        st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=3),
        st.sampled_from(["accept", "deliver"]),
        st.sampled_from([1, 2]),
        st.sampled_from([("very_dissatisfied", 0), ("satisfied", 8), ("very_satisfied", 10)]),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attempts)
def test_property_duplicates_refused_chain_intact(tries) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "r.db", device_id=DEVICE) as s:
        taken: set[tuple[str, str, int]] = set()
        stored = 0
        for serials, stage, assess, (level, score) in tries:
            keys = {(x, stage, assess) for x in serials}
            attempt = content(*serials, stage=stage, assess_number=assess, level=level, score=score)
            if keys & taken:
                with pytest.raises(DuplicateRating):
                    s.append_rating(attempt)
            elif assess == 2 and not {(x, stage, 1) for x in serials} <= taken:
                with pytest.raises(StoreError, match="no first rating"):
                    s.append_rating(attempt)
            else:
                record = s.append_rating(attempt)
                stored += 1
                taken |= keys
                assert record["seq"] == stored
        assert s.verify() is None
        assert s.outbox_size() == stored
        assert [r["seq"] for r in s.pending(limit=1000)] == list(range(1, stored + 1))


def test_the_store_refuses_a_second_first_rating_under_another_kind(
    store: Store, db_path: Path
) -> None:
    store.append_rating(content("S-1"))  # instant at deliver
    as_consult = content("S-1")
    as_consult["cases"] = [{**as_consult["cases"][0], "kind": "consult"}]
    with pytest.raises(StoreError, match="kind changed"):
        store.append_rating(as_consult)
    assert counts(db_path) == (1, 1, 1)
    assert store.case_kinds(["S-1", "S-2"]) == {"S-1": "instant"}


def test_stats_count_a_terminal_rating_for_its_matter_and_no_clerk(store: Store) -> None:
    rating = content("T-1", stage="accept", level="dissatisfied", score=3)
    rating.update(clerk=None, terminal="ZZ-07", targets=["matter"])
    rating["cases"] = [{**rating["cases"][0], "kind": "promise"}]
    store.append_rating(rating)
    stats = audited_stats(store)
    assert stats["clerks"] == []
    [matter] = stats["matters"]
    assert (matter["ratings"], matter["mean_score"]) == (1, 3)
    assert stats["device"]["ratings"] == 1


def _plans(store: Store, call: Any) -> list[str]:
    """The query plan of each SELECT ``call`` runs on ``store``'s connection."""
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)  # statements with their values bound in
    try:
        call()
    finally:
        store.conn.set_trace_callback(None)
    return [
        row[3]
        for sql in seen
        if sql.lstrip().upper().startswith("SELECT")
        for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
    ]


@pytest.mark.parametrize("query", ["left_unrated", "already_rated", "first_ratings"])
def test_per_request_slot_lookups_use_an_index_for_several_cases(
    store: Store, query: str
) -> None:
    """Session.start asks these for every presentation: a scan of the table would cost more
    with every month of the store's life.  SQLite uses the slot index for ``(serial, slot) IN
    (VALUES ...)`` with one row only, so several cases must be narrowed by serial too."""
    slots = [("S-1", "accept"), ("S-2", "accept"), ("S-3", "deliver")]
    if query in ("left_unrated", "already_rated"):
        plans = _plans(store, lambda: getattr(store, query)(slots, 1))
    else:
        plans = _plans(store, lambda: store.first_ratings(slots))
    scans = [p for p in plans if p.startswith("SCAN ") and "CONSTANT ROW" not in p]
    assert plans and not scans, plans
