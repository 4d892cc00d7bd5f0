"""What the sync reads and writes costs the same whatever the rating history (issue 8).

Work is counted, not timed: SQLite's progress handler counts the virtual-machine steps of a
statement, which grow with every row it touches.  The outbox read, the ack and the check at
open must take the same number of steps over a long history as over a short one.  Also: the
outbox migration keeps every waiting rating, an ack is one transaction, and the full store check
(no longer run at open) is recorded and makes the next open check in full.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.store import Store, _btree_ends, _quick_check
from tests.sync.test_mqtt import full_content

DEVICE = "pad-440500-07"
HISTORY = 600  # acked ratings in the "long" store; the short one has none


def steps(conn: sqlite3.Connection, work: Callable[[], Any]) -> int:
    """Virtual-machine steps SQLite runs for ``work`` on ``conn``."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        work()
    finally:
        conn.set_progress_handler(None, 1)
    return count


def history_store(path: Path, acked: int, waiting: int) -> tuple[Store, list[dict[str, Any]]]:
    """A store with ``acked`` ratings acked long ago and ``waiting`` ratings in the outbox."""
    store = Store(path, device_id=DEVICE)
    old = [store.append_rating(full_content(f"OLD-{i}")) for i in range(acked)]
    store.ack([r["id"] for r in old])
    new = [store.append_rating(full_content(f"NEW-{i}")) for i in range(waiting)]
    return store, new


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store, list[Any], list[Any]]]:
    short, short_new = history_store(tmp_path / "short.db", 0, 5)
    long, long_new = history_store(tmp_path / "long.db", HISTORY, 5)
    yield short, long, short_new, long_new
    short.close()
    long.close()


def test_reading_the_outbox_takes_the_same_steps_whatever_the_history(stores: Any) -> None:
    short, long, short_new, long_new = stores
    assert [r["id"] for r in long.pending(3)] == [r["id"] for r in long_new[:3]]
    after = long_new[1]["seq"]
    assert [r["id"] for r in long.pending(3, after_seq=after)] == [r["id"] for r in long_new[2:]]
    page = long.outbox_page(10, after_seq=after)
    assert [i.id for i in page.items] == [r["id"] for r in long_new[2:]]
    assert page.last_seq == long_new[-1]["seq"] and not page.more
    for work in (
        lambda s, n: s.pending(5),
        lambda s, n: s.pending(2, after_seq=n[2]["seq"]),
        lambda s, n: s.outbox_page(5, after_seq=n[0]["seq"]),
        lambda s, n: s.last_outbox_seq(),
    ):
        small = steps(short.conn, lambda w=work: w(short, short_new))
        big = steps(long.conn, lambda w=work: w(long, long_new))
        assert big == small, (small, big)  # was: a walk of all 600 acked ratings


def test_the_outbox_read_searches_the_outbox_by_seq_and_each_rating_by_its_seq(
    stores: Any,
) -> None:
    _, long, _, _ = stores
    plan = [
        row[3] for row in long.conn.execute(f"EXPLAIN QUERY PLAN {Store._OUTBOX_SQL}", [0, 10, 5])
    ]
    assert plan[0].startswith("SEARCH o USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"), plan
    assert plan[1].startswith("SEARCH r USING INDEX") and "(seq=?)" in plan[1], plan
    assert not any("TEMP B-TREE" in p for p in plan), plan


def test_an_ack_is_one_transaction_and_costs_the_same_whatever_the_history(
    stores: Any,
) -> None:
    short, long, short_new, long_new = stores
    commits: list[str] = []
    long.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    try:
        assert long.ack([r["id"] for r in long_new[:3]] + ["unknown"], durable=False) == 3
    finally:
        long.conn.set_trace_callback(None)
    assert commits == ["COMMIT"]  # one transaction for every id of the message
    assert long.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again after
    small = steps(short.conn, lambda: short.ack([short_new[3]["id"]]))
    big = steps(long.conn, lambda: long.ack([long_new[3]["id"]]))
    assert big == small, (small, big)
    assert long.outbox_size() == 1 and long.ack([]) == 0


def test_the_check_at_open_reads_each_btree_ends_only(stores: Any) -> None:
    short, long, _, _ = stores
    small = steps(short.conn, lambda: _btree_ends(short.conn))
    big = steps(long.conn, lambda: _btree_ends(long.conn))
    assert _btree_ends(long.conn) == []
    assert big <= small * 1.1, (small, big)  # one more tree level at most, never the rows
    full = steps(long.conn, lambda: long.conn.execute("PRAGMA quick_check").fetchall())
    # What the open no longer does (the ends of every b-tree, the events' too since m004).
    assert full > 12 * big


def test_every_end_read_follows_its_index_order(stores: Any) -> None:
    """No read of the open check sorts (which would read the whole tree)."""
    from sync.store import _end_reads

    _, long, _, _ = stores
    objects = long.conn.execute(
        "SELECT type, name, tbl_name FROM sqlite_master"
        " WHERE type IN ('table', 'index') AND rootpage > 0"
    ).fetchall()
    assert {"sqlite_autoindex_ratings_1", "outbox", "rating_cases_serial"} <= {
        name for _, name, _ in objects
    }
    for kind, name, table in objects:
        reads = _end_reads(long.conn, kind, name, table)
        assert reads, name
        for sql in reads:
            plan = [r[3] for r in long.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert not any("TEMP B-TREE" in p for p in plan), (sql, plan)
            if kind == "index":
                assert any(name in p for p in plan), (sql, plan)


def test_the_outbox_migration_keeps_every_waiting_rating_with_its_seq(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    store, waiting = history_store(path, 3, 4)
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)  # back to the outbox of m001/m002
    try:
        conn.execute("CREATE TABLE outbox_old (rating_id TEXT PRIMARY KEY REFERENCES ratings(id))")
        conn.execute("INSERT INTO outbox_old SELECT rating_id FROM outbox")
        conn.execute("DROP TABLE outbox")
        conn.execute("ALTER TABLE outbox_old RENAME TO outbox")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm003_outbox_by_seq'")
    finally:
        conn.close()
    with Store(path, device_id=DEVICE) as again:
        columns = [r[1] for r in again.conn.execute("PRAGMA table_info(outbox)")]
        assert columns == ["seq", "rating_id"]
        assert [r["id"] for r in again.pending()] == [r["id"] for r in waiting]
        assert again.last_outbox_seq() == waiting[-1]["seq"]
        later = again.append_rating(full_content("LATER"))
        assert again.outbox_page(10, after_seq=waiting[-1]["seq"]).items[0].id == later["id"]


# -- the full check: scheduled, recorded, and the next open's business when it failed ---------


def damage_a_middle_page(path: Path) -> None:
    """Overwrite one page inside the ratings table that no root, first or last leaf is on:
    the check at open cannot see it, ``quick_check`` does."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    for page in range(pages // 2, pages):
        trial = bytearray(data)
        trial[page * 4096 : (page + 1) * 4096] = b"\xa5" * 4096
        path.write_bytes(trial)
        conn = sqlite3.connect(path)
        try:
            if not _btree_ends(conn) and _quick_check(conn):
                return
        finally:
            conn.close()
    raise AssertionError("no page to damage behind the open check")


def test_the_full_check_is_recorded_and_a_failed_one_makes_the_next_open_check_in_full(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ratings.db"
    store, _ = history_store(path, 60, 0)
    assert store.integrity_check() == []
    ok = json.loads(store.conn.execute("SELECT value FROM meta WHERE key = 'integrity_check'")
                    .fetchone()[0])  # fmt: skip
    assert ok["ok"] is True and ok["problems"] == [] and ok["at"].endswith("+00:00")
    store.close()

    damage_a_middle_page(path)
    with Store(path, device_id=DEVICE) as opened:  # the open's own check cannot see it
        assert opened.recovered_from is None
        problems = opened.integrity_check()  # the schedule does
        assert problems
        failed = json.loads(
            opened.conn.execute("SELECT value FROM meta WHERE key = 'integrity_check'")
            .fetchone()[0]
        )  # fmt: skip
        assert failed["ok"] is False and failed["problems"]
    with Store(path, device_id=DEVICE) as again:  # so the next open checks in full
        assert again.recovered_from is not None and again.recovered_from.exists()
        gap = again.follows_gap()
        assert gap is not None and "integrity check" in gap["problem"]


def test_a_check_that_cannot_run_claims_nothing_about_the_file(tmp_path: Path) -> None:
    """A review found it: any error while checking (busy, I/O, out of memory) was reported as
    damage, so the clerk saw a store fault and the next open ran the full check again.  An
    interrupted check (SQLITE_INTERRUPT, through a progress handler) is "not checked"."""
    from sync.store import scheduled_check

    path = tmp_path / "ratings.db"
    store, _ = history_store(path, 20, 0)
    store.conn.set_progress_handler(lambda: 1, 1)  # every statement is interrupted
    try:
        result = scheduled_check(store)
    finally:
        store.conn.set_progress_handler(None, 1)
    assert result.startswith("not checked:") and "interrupted" in result
    assert (
        store.conn.execute("SELECT value FROM meta WHERE key = 'integrity_check'").fetchone()
        is None
    )
    store.close()
    with Store(path, device_id=DEVICE) as again:  # a sound store stays where it is
        assert again.recovered_from is None
        assert scheduled_check(again).startswith("ok")
