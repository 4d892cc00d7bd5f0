"""Epochs at the receiver (issue 15 B): a pad that had to start a new store opens a new signed
epoch; the hub keys its chains by (device, stream, epoch), accepts the new epoch's seq 1, flags
``chain_restarted`` with the gap, and keeps chaining the older epoch (carried-over records),
across the seqs the pad's epoch event names as lost.  On SQLite and PostgreSQL (``db_url``);
a version-1 database is migrated."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.records import verify_chain
from sync.hub.db import SCHEMA_VERSION, HubDB, open_db
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from tests.sync.hub.helpers import (
    chain,
    epoch_event,
    make_key,
    payload,
    previous,
    topic,
)

DEVICE = "440500-hall1-w12"


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return make_key(tmp_path)


@pytest.fixture
def db(db_url: str, key: DeviceKey) -> HubDB:
    hub = open_db(db_url)
    yield hub
    hub.close()


_made = itertools.count(1)


def epochs(n: int) -> list[str]:
    """``n`` epoch ids in the order stores made one after another have them (UUIDv7 layout,
    time-ordered).  Made here, not by ``new_record_id`` with a time ahead of the clock: that
    would hold every later id of the test process in one millisecond."""
    return [f"01a20000-0000-7000-8000-{next(_made):012x}" for _ in range(n)]


def send(ingest: Ingest, device: str, records: list[dict[str, Any]], stream: str = "ratings"):
    return ingest.handle_batch([(topic(device, stream), payload(r)) for r in records])


def restarts(db: HubDB, device: str) -> list[dict[str, Any]]:
    return [f for f in db.flags(device) if f["kind"] == "chain_restarted"]


def test_a_new_epoch_is_accepted_and_the_gap_flagged_wherever_the_city_stopped(
    db: HubDB, key: DeviceKey
) -> None:
    """For every point the city had acked up to (none, some, all of 6), with one, several or
    no records lost among the rest: the new epoch's seq 1 is stored, the restart is flagged
    with what the hub holds and what is missing, and every intact carried-over record is
    delivered on the old epoch's chain (across the lost ones); nothing is refused."""
    n = 6
    cases = [(acked, lost) for acked in range(n + 1)
             for lost in ([], *([q] for q in range(acked + 1, n + 1)),
                          list(range(acked + 1, n + 1, 2)))]  # fmt: skip
    for i, (acked, lost) in enumerate(cases):
        device = f"pad-{i:03d}"
        db.register(device, key.public.text)
        ingest = Ingest(db)
        old, new = epochs(2)
        before = chain(key, device, n, epoch=old)
        send(ingest, device, before[:acked])
        event = epoch_event(key, device, new, previous(old, before, acked, lost))
        fresh = chain(key, device, 3, epoch=new)
        result = (
            send(ingest, device, fresh[:1]) if i % 2 else send(ingest, device, [event], "events")
        )
        assert not result.dead
        send(ingest, device, [event], "events")
        send(ingest, device, fresh)
        carried = [r for r in before[acked:] if r["seq"] not in lost]
        for record in reversed(carried):  # the worst order: the last one first
            assert not send(ingest, device, [record]).dead
        assert db.dead() == [], (acked, lost)
        assert db.records(device, epoch=new) == fresh
        stored_old = db.records(device, epoch=old)
        assert [r["seq"] for r in stored_old] == [q for q in range(1, n + 1) if q not in lost]
        assert db.rows("SELECT count(*) FROM hub_parked WHERE device_id = ?", (device,)) == [(0,)]
        (flag,) = restarts(db, device)  # the epoch event names the store it follows
        detail = flag["detail"]
        assert flag["key"] == new and detail["previous"]["epoch"] == old
        assert detail["lost"]["ratings"] == lost
        # what the old store had after what the hub held of its epoch when the new one opened
        assert detail["missing"].get("ratings") == ([[acked + 1, n]] if acked < n else None)


def test_restart_after_restart_each_epoch_its_own_chain(db: HubDB, key: DeviceKey) -> None:
    """Epoch after epoch (a pad whose card fails again and again): every epoch's records are
    kept, seq 1 … in each, each restart flagged once, the lists ordered by epoch."""
    db.register(DEVICE, key.public.text)
    ingest = Ingest(db)
    opened, prev_epoch, prev_records = [], "", []
    for round_, epoch in enumerate(epochs(4)):
        records = chain(key, DEVICE, 3 + round_, epoch=epoch)
        if round_:
            event = epoch_event(
                key, DEVICE, epoch, previous(prev_epoch, prev_records, len(prev_records))
            )
        else:
            event = epoch_event(key, DEVICE, epoch, None)
        assert not send(ingest, DEVICE, records).dead
        assert not send(ingest, DEVICE, [event], "events").dead
        opened.append(epoch)
        prev_epoch, prev_records = epoch, records
    assert db.dead() == []
    assert [f["key"] for f in restarts(db, DEVICE)] == opened[1:]
    for epoch in opened:
        records = db.records(DEVICE, epoch=epoch)
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        assert verify_chain(records) is None
    assert [r["epoch"] for r in db.records(DEVICE)] == [
        e for i, e in enumerate(opened) for _ in range(3 + i)
    ]


def test_a_restart_seen_first_on_a_rating_is_completed_by_its_epoch_event(
    db: HubDB, key: DeviceKey
) -> None:
    db.register(DEVICE, key.public.text)
    ingest = Ingest(db)
    old, new = epochs(2)
    before = chain(key, DEVICE, 4, epoch=old)
    send(ingest, DEVICE, before)
    send(ingest, DEVICE, chain(key, DEVICE, 1, epoch=new))
    (flag,) = restarts(db, DEVICE)
    assert flag["detail"]["previous"] == "not received yet"
    assert flag["detail"]["hub"][f"ratings:{old}"]["seq"] == 4
    send(ingest, DEVICE, [epoch_event(key, DEVICE, new, previous(old, before, 4))], "events")
    (flag,) = restarts(db, DEVICE)
    assert flag["detail"]["previous"]["epoch"] == old and flag["detail"]["missing"] == {}


def test_a_deleted_store_names_no_previous_and_is_flagged(db: HubDB, key: DeviceKey) -> None:
    """The file deleted while the pad was stopped: the new epoch says it found none."""
    db.register(DEVICE, key.public.text)
    ingest = Ingest(db)
    send(ingest, DEVICE, chain(key, DEVICE, 5))  # a store made before epochs: epoch ''
    (new,) = epochs(1)
    send(ingest, DEVICE, [epoch_event(key, DEVICE, new, None)], "events")
    assert not send(ingest, DEVICE, chain(key, DEVICE, 2, epoch=new)).dead
    (flag,) = restarts(db, DEVICE)
    assert flag["detail"]["previous"] is None and flag["detail"]["hub"]["ratings:"]["seq"] == 5
    assert db.count("ratings") == 7 and db.dead() == []


def test_a_record_of_one_epoch_never_takes_the_seq_of_another(db: HubDB, key: DeviceKey) -> None:
    """The chain is (device, stream, epoch): a record claiming another epoch's seq with a
    wrong prev_hash is still refused, within its own epoch."""
    db.register(DEVICE, key.public.text)
    ingest = Ingest(db)
    (epoch,) = epochs(1)
    send(ingest, DEVICE, chain(key, DEVICE, 3, epoch=epoch))
    forged = chain(key, DEVICE, 1, epoch=epoch, first_seq=4, prev="f" * 64)  # not on seq 3
    result = send(ingest, DEVICE, forged)
    assert result.dead and "chain broken" in result.dead[0].reason


def test_lists_and_export_tell_two_records_of_one_seq_apart(
    db: HubDB, key: DeviceKey, tmp_path: Path
) -> None:
    """Two epochs of one pad both have a seq 1: every 差评 of both is listed and exported,
    each with its epoch, none taken for the other."""
    from sync.hub.export import rows
    from sync.hub.figures import bad_ratings, figures
    from tests.sync.hub.helpers import rating_content, seal_all

    db.register(DEVICE, key.public.text)
    ingest = Ingest(db)
    old, new = epochs(2)
    for epoch in (old, new):
        bodies = [dict(rating_content(f"S-{epoch[-4:]}-{i}", level="very_dissatisfied"),
                       epoch=epoch) for i in range(3)]  # fmt: skip
        assert not send(ingest, DEVICE, seal_all(key, DEVICE, bodies)).dead
    listed = bad_ratings(db)
    assert len(listed) == 6
    assert sorted((w["epoch"], w["seq"]) for w in listed) == sorted(
        (e, q) for e in (old, new) for q in (1, 2, 3)
    )
    exported = list(rows(db))
    assert sorted((r["epoch"], r["seq"]) for r in exported) == sorted(
        (e, q) for e in (old, new) for q in (1, 2, 3)
    )
    hall = figures(db)["hall"]
    assert (hall["ratings"], hall["bad"]) == (6, 6)


# -- schema version 1 → 2 ------------------------------------------------------------------

_V1 = [
    "CREATE TABLE hub_meta (schema_version INTEGER NOT NULL)",
    """CREATE TABLE hub_records (id TEXT PRIMARY KEY, device_id TEXT NOT NULL,
        stream TEXT NOT NULL CHECK (stream IN ('ratings', 'events')), seq BIGINT NOT NULL,
        hash TEXT NOT NULL, prev_hash TEXT NOT NULL, record TEXT NOT NULL,
        received_at TEXT NOT NULL, UNIQUE (device_id, stream, seq))""",
    """CREATE TABLE hub_heads (device_id TEXT NOT NULL, stream TEXT NOT NULL,
        last_seq BIGINT NOT NULL, last_hash TEXT NOT NULL, PRIMARY KEY (device_id, stream))""",
    """CREATE TABLE hub_parked (device_id TEXT NOT NULL, stream TEXT NOT NULL,
        seq BIGINT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL, received_at TEXT NOT NULL,
        PRIMARY KEY (device_id, stream, seq))""",
    "INSERT INTO hub_meta (schema_version) VALUES (1)",
]


def _v1_database(db_url: str, rows: list[tuple[str, list[Any]]]) -> None:
    """A database as a version-1 receiver left it (its tables and ``rows``)."""
    if db_url.startswith("sqlite"):
        conn: Any = sqlite3.connect(db_url[len("sqlite://") :], isolation_level=None)
        run = conn.execute
    else:
        import psycopg

        conn = psycopg.connect(db_url, autocommit=True)

        def run(sql: str, params: Any = ()) -> Any:
            return conn.execute(sql.replace("?", "%s"), params)

    for sql in _V1:
        run(sql)
    for sql, params in rows:
        run(sql, params)
    conn.close()


def test_a_version_1_database_is_migrated_and_keeps_every_chain(
    db_url: str, key: DeviceKey
) -> None:
    records = chain(key, DEVICE, 5)
    rows = [
        ("INSERT INTO hub_records VALUES (?, ?, 'ratings', ?, ?, ?, ?, 'then')",
         [r["id"], DEVICE, r["seq"], r["hash"], r["prev_hash"], payload(r).decode()])
        for r in records[:3]
    ]  # fmt: skip
    rows.append(("INSERT INTO hub_heads VALUES (?, 'ratings', 3, ?)", [DEVICE, records[2]["hash"]]))
    rows.append(("INSERT INTO hub_parked VALUES (?, 'ratings', 5, ?, ?, 'then')",
                 [DEVICE, records[4]["id"], payload(records[4]).decode()]))  # fmt: skip
    _v1_database(db_url, rows)
    with open_db(db_url) as db:
        assert db.rows("SELECT schema_version FROM hub_meta") == [(SCHEMA_VERSION,)] == [(3,)]
        assert db.rows("SELECT DISTINCT epoch FROM hub_records") == [("",)]
        assert db.heads(DEVICE) == {("ratings", ""): (3, records[2]["hash"])}
        db.register(DEVICE, key.public.text)
        ingest = Ingest(db)
        result = send(ingest, DEVICE, [records[3]])  # seq 4 arrives: 5 is promoted from v1
        assert result.stored == 2 and db.records(DEVICE) == records and db.parked() == 0
        (new,) = epochs(1)
        send(ingest, DEVICE, [epoch_event(key, DEVICE, new, previous("", records, 5))], "events")
        assert not send(ingest, DEVICE, chain(key, DEVICE, 2, epoch=new)).dead
        assert [f["key"] for f in restarts(db, DEVICE)] == [new]
    with open_db(db_url) as again:  # opened again: migrated once, nothing lost
        assert again.count("ratings") == 7 and again.dead() == []
