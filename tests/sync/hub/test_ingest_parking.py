"""Parking at the receiver (issue 16), on SQLite and PostgreSQL: every candidate for one seq is
kept until the chain decides (a forgery parked first no longer hides the genuine record), the
parking of one device is capped (refused as a dead letter, flagged once), and a version-2
database's parked rows are migrated to version 3."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.records import new_record_id, seal
from sync.hub.db import SCHEMA_VERSION, HubDB, open_db
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from tests.sync.hub.helpers import chain, make_key, payload, topic

DEVICE = "440500-hall1-w12"


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return make_key(tmp_path)


@pytest.fixture
def db(db_url: str, key: DeviceKey) -> Iterator[HubDB]:
    hub = open_db(db_url)
    hub.register(DEVICE, key.public.text)
    yield hub
    hub.close()


def forged_at(records: list[dict[str, Any]], seq: int, key: DeviceKey) -> dict[str, Any]:
    """A record for ``seq`` signed with the device's own (stolen) key whose ``prev_hash`` names
    no stored record: what a thief can make without knowing the chain."""
    body = {k: v for k, v in records[seq - 1].items()
            if k not in ("hash", "prev_hash", "sig", "key_id", "id")}  # fmt: skip
    body["id"] = new_record_id()
    body["level"], body["score"], body["satisfaction"], body["gbt_code"] = (
        "very_dissatisfied", 0, 1, 5)  # fmt: skip
    body["reasons"] = [{"code": "214", "text": "服务态度生硬", "target": "clerk"}]
    return seal(body, prev_hash="f" * 64, signer=key)


def send(ingest: Ingest, records: list[dict[str, Any]]) -> Any:
    return ingest.handle_batch([(topic(DEVICE), payload(r)) for r in records])


@pytest.mark.parametrize("order", ["forged_first", "genuine_first", "one_batch"])
def test_the_genuine_record_is_stored_whichever_candidate_parked_first(
    db: HubDB, key: DeviceKey, order: str
) -> None:
    records = chain(key, DEVICE, 7)
    forged = forged_at(records, 6, key)
    ingest = Ingest(db)
    assert not send(ingest, records[:4]).dead
    if order == "forged_first":
        parked = [send(ingest, [forged]), send(ingest, [records[5]])]
    elif order == "genuine_first":
        parked = [send(ingest, [records[5]]), send(ingest, [forged])]
    else:
        parked = [send(ingest, [forged, records[5]])]
    assert sum(p.parked for p in parked) == 2 and db.parked() == 2
    done = send(ingest, [records[4]])  # seq 5: the chain decides seq 6
    assert done.acks == {DEVICE: [records[4]["id"], records[5]["id"]]}
    assert [d.reason for d in done.dead] == [
        "prev_hash does not match the hash of seq 5 (chain broken): another record for seq 6"
        " chains on and was stored"
    ]
    assert done.dead[0].key.split("\0")[1] == forged["id"]
    assert db.records(DEVICE) == records[:6] and db.parked() == 0
    assert db.parking(DEVICE) == (0, 0)
    assert send(ingest, [records[6]]).stored == 1


def test_parking_is_capped_per_device_and_flagged_once(db: HubDB, key: DeviceKey) -> None:
    records = chain(key, DEVICE, 8)
    ingest = Ingest(db, park_records=3)
    first = send(ingest, records[1:5])  # seqs 2-5 ahead of seq 1: three fit
    assert first.parked == 3 and not first.acks
    assert [d.reason.split(":")[0] for d in first.dead] == ["parking full"]
    assert db.parked() == 3 and db.parking(DEVICE)[0] == 3
    assert send(ingest, records[5:6]).dead[0].reason.startswith("parking full")
    assert [f["kind"] for f in db.flags(DEVICE)] == ["parking_full"]
    again = send(ingest, records[1:3])  # parked ones sent again: they wait, nothing refused
    assert again.parked == 2 and not again.dead and db.parked() == 3
    done = send(ingest, records[:1])  # the gap closes: 1-4 stored, room again
    assert done.stored == 4 and db.parking(DEVICE) == (0, 0)
    assert send(ingest, records[4:]).stored == 4
    assert db.records(DEVICE) == records


_V2_PARKED = """CREATE TABLE hub_parked (device_id TEXT NOT NULL, stream TEXT NOT NULL,
    epoch TEXT NOT NULL DEFAULT '', seq BIGINT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL,
    received_at TEXT NOT NULL, PRIMARY KEY (device_id, stream, epoch, seq))"""


def _as_version_2(db_url: str, rows: list[tuple[Any, ...]]) -> None:
    """Turn a fresh database into what a version-2 receiver left: its ``hub_parked`` layout
    holding ``rows``, no ``hub_parking``, schema version 2."""
    with open_db(db_url):
        pass
    if db_url.startswith("sqlite"):
        conn: Any = sqlite3.connect(db_url[len("sqlite://") :], isolation_level=None)
        run = conn.execute
    else:
        import psycopg

        conn = psycopg.connect(db_url, autocommit=True)

        def run(sql: str, params: Any = ()) -> Any:
            return conn.execute(sql.replace("?", "%s"), params)

    run("DROP TABLE hub_parked")
    run("DROP TABLE hub_parking")
    run(_V2_PARKED)
    for row in rows:
        run("INSERT INTO hub_parked VALUES (?, 'ratings', '', ?, ?, ?, 'then')", row)
    run("UPDATE hub_meta SET schema_version = 2")
    conn.close()


def test_a_version_2_database_keeps_its_parked_records(db_url: str, key: DeviceKey) -> None:
    records = chain(key, DEVICE, 6)
    _as_version_2(db_url, [(DEVICE, r["seq"], r["id"], payload(r).decode())
                           for r in records[3:5]])  # fmt: skip
    with open_db(db_url) as db:
        assert db.rows("SELECT schema_version FROM hub_meta") == [(SCHEMA_VERSION,)] == [(3,)]
        assert db.parked() == 2
        assert db.parking(DEVICE) == (2, sum(len(payload(r)) for r in records[3:5]))
        assert sorted(db.rows("SELECT seq, hash FROM hub_parked")) == [
            (r["seq"], r["hash"]) for r in records[3:5]
        ]
        db.register(DEVICE, key.public.text)
        ingest = Ingest(db)
        forged = forged_at(records, 4, key)
        assert send(ingest, [forged]).parked == 1  # a second candidate beside the migrated one
        done = send(ingest, records[:3])
        assert done.stored == 5 and [d.key.split("\0")[1] for d in done.dead] == [forged["id"]]
        assert db.parked() == 0 and db.parking(DEVICE) == (0, 0)
    with open_db(db_url) as again:  # opened again: nothing to migrate
        assert again.count("ratings") == 5
