"""The hub takes a pad's loss statements (issue 15) on SQLite and PostgreSQL: stored at the lost
seq with lost_hash as its place in the chain, the next record chaining on, parked and promoted
like any record, flagged records_lost, left out of figures and exports; forged, unsigned or
mis-chained ones are dead letters."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator.rules.loss import make_statement
from evaluator.rules.records import GENESIS_HASH, canonical_json, record_hash
from sync.hub.db import HubDB, open_db
from sync.hub.export import write_csv
from sync.hub.figures import figures
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from tests.sync.hub.helpers import chain, make_key, payload, topic

DEVICE = "440500-hall1-w12"
STAMP = "2026-05-29T04:26:47.400+08:00"


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return make_key(tmp_path)


@pytest.fixture
def db(db_url: str, key: DeviceKey) -> Iterator[HubDB]:
    db = open_db(db_url)
    db.register(DEVICE, key.public.text)
    yield db
    db.close()


def lose(records: list[dict], seq: int, key: DeviceKey, **change: object) -> dict:
    """The pad's statement in place of ``records``' ``seq`` (1-based)."""
    lost = records[seq - 1]
    statement = make_statement(
        id=lost["id"], seq=seq, device_id=DEVICE, prev_hash=lost["prev_hash"],
        lost_hash=lost["hash"], problem="content does not match its hash", stated_at=STAMP,
        clock_synced=True, damaged='{"garbled', signer=key,
    )  # fmt: skip
    if change:
        statement.update(change)
    return statement


@pytest.mark.parametrize("lost_seq", [1, 2, 5, 6])
def test_a_statement_takes_the_lost_seq_and_the_chain_goes_on(
    db: HubDB, key: DeviceKey, lost_seq: int, tmp_path: Path
) -> None:
    records = chain(key, DEVICE, 6)
    sent = [lose(records, q, key) if q == lost_seq else r for q, r in enumerate(records, 1)]
    result = Ingest(db).handle_batch([(topic(DEVICE), payload(r)) for r in sent])
    assert result.stored == 6 and not result.dead and result.parked == 0
    assert result.acks == {DEVICE: [r["id"] for r in records]}
    hashes = db.rows("SELECT seq, hash FROM hub_records ORDER BY seq")
    assert [h for _, h in hashes] == [r["hash"] for r in records]  # lost_hash at its place
    assert db.rows("SELECT last_seq, last_hash FROM hub_heads")[0] == (6, records[-1]["hash"])
    (flag,) = db.flags(DEVICE)
    assert flag["kind"] == "records_lost" and flag["key"] == f"ratings::{lost_seq}"
    assert flag["detail"] == {"stream": "ratings", "seq": lost_seq, "epoch": "",
                              "lost_hash": records[lost_seq - 1]["hash"],
                              "problem": "content does not match its hash"}  # fmt: skip
    # figures, export and lists count the five ratings that arrived, never the statement
    assert [r["seq"] for r in db.all_records()] == [q for q in range(1, 7) if q != lost_seq]
    hall = figures(db)["hall"]
    assert hall["ratings"] == 5 and hall["rated_cases"] == 5
    out = tmp_path / "x.csv"
    assert write_csv(db, out) == 5
    with out.open(encoding="utf-8-sig") as f:
        assert len(list(csv.reader(f))) == 6  # the header and five rows


def test_a_statement_ahead_is_parked_then_promoted_and_flagged_once(
    db: HubDB, key: DeviceKey
) -> None:
    records = chain(key, DEVICE, 4)
    statement = lose(records, 3, key)
    ingest = Ingest(db)
    first = ingest.handle_batch([(topic(DEVICE), payload(r)) for r in (records[3], statement)])
    assert first.parked == 2 and not first.acks and db.flags() == []
    then = ingest.handle_batch([(topic(DEVICE), payload(r)) for r in records[:2]])
    assert then.stored == 4 and then.acks[DEVICE] == [r["id"] for r in records]
    again = ingest.handle(topic(DEVICE), payload(statement))  # a resend: byte-identical
    assert again.duplicates == 1 and again.acks == {DEVICE: [statement["id"]]}
    assert len(db.flags(DEVICE)) == 1


def test_a_statement_on_the_events_topic_chains_the_events(db: HubDB, key: DeviceKey) -> None:
    events = []
    prev = GENESIS_HASH
    from evaluator.rules.records import new_record_id, seal

    for seq in (1, 2, 3):
        body = {"id": new_record_id(), "seq": seq, "device_id": DEVICE, "kind": "tech_menu",
                "event": "opened", "at": STAMP, "clock_synced": True}  # fmt: skip
        event = seal(body, prev_hash=prev, signer=key)
        prev = event["hash"]
        events.append(event)
    sent = [events[0], lose(events, 2, key), events[2]]
    result = Ingest(db).handle_batch([(topic(DEVICE, "events"), payload(e)) for e in sent])
    assert result.stored == 3 and not result.dead
    assert db.flags(DEVICE)[0]["key"] == "events::2"
    assert [e["seq"] for e in db.all_records("events")] == [1, 3]


def test_forged_unsigned_or_mischained_statements_are_dead_letters(
    db: HubDB, key: DeviceKey, tmp_path: Path
) -> None:
    records = chain(key, DEVICE, 3)
    other = make_key(tmp_path, "other")
    ingest = Ingest(db)
    ingest.handle(topic(DEVICE), payload(records[0]))
    unsigned = {k: v for k, v in lose(records, 2, key).items() if k not in ("sig", "key_id")}
    unsigned["hash"] = record_hash(unsigned)
    tampered = lose(records, 2, key)
    tampered["lost_hash"] = "f" * 64  # the signed content changed: its hash no longer holds
    wrong_prev = lose(records, 2, key, prev_hash="e" * 64)
    wrong_prev["hash"] = record_hash(wrong_prev)
    wrong_prev["sig"] = lose(records, 2, key)["sig"]  # the old signature: not over this hash
    bad = {
        "unsigned": unsigned,
        "another key": lose(records, 2, other),
        "tampered": tampered,
        "resigned with the wrong prev": lose(records, 2, key, prev_hash="e" * 64),
        "wrong prev, old signature": wrong_prev,
        "no lost_hash": {k: v for k, v in lose(records, 2, key).items() if k != "lost_hash"},
    }
    for why, statement in bad.items():
        if why == "resigned with the wrong prev":
            statement = make_statement(
                id=records[1]["id"], seq=2, device_id=DEVICE, prev_hash="e" * 64,
                lost_hash=records[1]["hash"], problem="x", stated_at=STAMP, clock_synced=False,
                damaged="", signer=key,
            )  # fmt: skip
        result = ingest.handle(topic(DEVICE), canonical_json(statement))
        assert result.stored == 0 and not result.acks, why
        assert result.dead or result.repeats, why
    assert db.count() == 1 and db.flags() == []
