"""The store's check before publishing (issue 15) on its own: a damaged record is held back while
no key can sign its statement and stated once the key is there, a statement is made once and
resent byte for byte, the table of statements is append-only, and the checked outbox reads cost
the same SQLite steps whatever the history (work counted, not timed)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from evaluator.rules.loss import is_loss, statement_problem
from sync.keys import DeviceKey
from sync.store import Store
from tests.sync.test_losses import _flip
from tests.sync.test_mqtt import full_content
from tests.sync.test_store_outbox import steps

DEVICE = "pad-440500-07"
HISTORY = 600


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return DeviceKey.create(tmp_path / "device.key")


def damaged_store(path: Path, key: DeviceKey, acked: int, waiting: int, bad: int) -> Store:
    """``acked`` ratings and events acked long ago, ``waiting`` of each in the outboxes, the
    ``bad``-th waiting rating and event damaged; the store opened WITHOUT a key."""
    with Store(path, device_id=DEVICE, signer=key) as store:
        for i in range(acked + waiting):
            store.append_rating(full_content(f"S-{i}"))
            store.append_event("tech_menu", {"event": "opened"})
        ids = [r[0] for r in store.conn.execute("SELECT id FROM ratings WHERE seq <= ?", [acked])]
        ids += [r[0] for r in store.conn.execute("SELECT id FROM events WHERE seq <= ?", [acked])]
        store.ack(ids)
        store.conn.execute("DROP TRIGGER ratings_no_update")
        store.conn.execute("DROP TRIGGER events_no_update")
        _flip(store, "ratings", acked + bad, "hash")
        _flip(store, "events", acked + bad, "text")
    return Store(path, device_id=DEVICE)


def test_held_without_a_key_stated_once_with_it_and_resent_byte_for_byte(
    tmp_path: Path, key: DeviceKey
) -> None:
    store = damaged_store(tmp_path / "r.db", key, 0, 5, 3)
    try:
        page = store.outbox_page(10)
        assert [i.seq for i in page.items] == [1, 2, 4, 5] and page.stated == ()
        assert [q for q, _ in page.held] == [3] and "hash" in page.held[0][1]
        assert store.event_outbox_page(10).held[0][0] == 3
        assert store.losses() == {"ratings": [], "events": []}
        store.signer = key  # the key loaded
        first = store.outbox_page(10)
        assert first.stated == (3,) and first.held == ()
        statement = json.loads(first.items[2].payload)
        assert is_loss(statement) and statement["seq"] == 3 and first.items[2].id == statement["id"]
        again = store.outbox_page(10)
        assert again.stated == () and again.items == first.items  # the same bytes
        events = store.event_outbox_page(10)
        assert events.stated == (3,) and is_loss(json.loads(events.items[2].payload))
        assert store.losses() == {"ratings": [3], "events": [3]}
        for sql in ("UPDATE losses SET problem = 'x'", "DELETE FROM losses"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                store.conn.execute(sql)
            store.conn.rollback()
        # the kept statement damaged on the card in turn: a new, intact one goes instead
        store.conn.execute("DROP TRIGGER losses_no_update")
        kept = store.conn.execute("SELECT record FROM losses WHERE stream = 'ratings'").fetchone()
        store.conn.execute("UPDATE losses SET record = ? WHERE stream = 'ratings'",
                           [kept[0].replace('"kind":"loss"', '"kind":"lost"')])  # fmt: skip
        store.conn.commit()
        fresh = json.loads(store.outbox_page(10).items[2].payload)
        assert statement_problem(fresh) is None and fresh["id"] == statement["id"]
        assert fresh["lost_hash"] == statement["lost_hash"]
        assert fresh["prev_hash"] == statement["prev_hash"]
        assert store.ack([statement["id"]]) == 1 and store.outbox_size() == 4
    finally:
        store.close()


def test_the_checked_reads_cost_the_same_steps_whatever_the_history(
    tmp_path: Path, key: DeviceKey
) -> None:
    short = damaged_store(tmp_path / "short.db", key, 0, 6, 1)
    long = damaged_store(tmp_path / "long.db", key, HISTORY, 6, 1)
    try:
        for store in (short, long):
            store.signer = key
            assert store.outbox_page(10).stated and store.event_outbox_page(10).stated
        s0, l0 = 0, HISTORY
        for work in (
            lambda s, base: s.outbox_page(5, after_seq=base),
            lambda s, base: s.outbox_page(3, after_seq=base + 1),
            lambda s, base: s.outbox_page(2, after_seq=base + 3),  # reads the row before too
            lambda s, base: s.event_outbox_page(5, after_seq=base),
            lambda s, base: s.event_outbox_page(3, after_seq=base + 2),
        ):
            small = steps(short.conn, lambda w=work: w(short, s0))
            big = steps(long.conn, lambda w=work: w(long, l0))
            assert big == small, (small, big)
        for sql in (Store._OUTBOX_CHECK_SQL, Store._EVENT_OUTBOX_SQL):
            args = [0, 10, 5] if sql.count("?") == 3 else [0, 5]
            plan = [row[3] for row in long.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
            assert plan[0].startswith("SEARCH o USING INTEGER PRIMARY KEY"), plan
            assert not any("SCAN" in p or "TEMP B-TREE" in p for p in plan), plan
    finally:
        short.close()
        long.close()
