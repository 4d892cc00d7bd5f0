"""Epochs in the pad's store (issue 15 B): every new store has one, its records carry it, its
event seq 1 is the signed ``epoch`` event; a store that had to start again carries over the
intact records the city never acked, verbatim, and names the others lost."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from evaluator.rules.records import GENESIS_HASH, canonical_json, record_hash, signature_of
from sync.keys import DeviceKey
from sync.store import Store
from tests.sync.hub.helpers import rating_content

DEVICE = "pad-440500-01"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return DeviceKey.create(tmp_path / "device.key")


@pytest.fixture(scope="module")
def event_schema() -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / "event.schema.json").read_text()))


def fault(n: int) -> dict[str, object]:
    return {"fault": "offline", "active": n % 2 == 1, "message": ""}


def checkpoint(path: Path) -> None:
    """Everything in the main file, as after the pad stopped."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_a_new_store_opens_an_epoch_that_its_records_carry(
    tmp_path: Path, key: DeviceKey, event_schema: Draft202012Validator
) -> None:
    with Store(tmp_path / "ratings.db", device_id=DEVICE, signer=key) as store:
        epoch = store.epoch
        assert UUID7.match(epoch) and store.read_meta("epoch") == epoch
        rating = store.append_rating(rating_content("S-1"))
        event = store.append_event("printer_fault", fault(1))
        opened, second = list(store.event_records())
        assert rating["epoch"] == event["epoch"] == opened["epoch"] == epoch
        assert second == event and event["prev_hash"] == opened["hash"]
        assert (opened["seq"], opened["kind"], opened["previous"]) == (1, "epoch", None)
        assert opened["prev_hash"] == GENESIS_HASH and record_hash(opened) == opened["hash"]
        sig = signature_of(opened)
        assert sig is not None and key.public.check(opened["hash"].encode(), sig)
        assert list(event_schema.iter_errors(opened)) == []
        assert store.verify() is None and store.verify_events() is None
        assert store.open_epoch() is None  # once
        with pytest.raises(ValueError):
            store.append_event("epoch", {"epoch": epoch, "previous": None})


def test_a_store_made_before_epochs_keeps_none_and_its_records_unchanged(
    tmp_path: Path, key: DeviceKey
) -> None:
    path = tmp_path / "ratings.db"
    Store(path, device_id=DEVICE).close()
    conn = sqlite3.connect(path)  # as a store from before this change: no epoch, no m006
    conn.execute("DELETE FROM meta WHERE key = 'epoch'")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm006_epoch'")
    for table in ("carried_outbox", "carried"):
        conn.execute(f"DROP TABLE {table}")
    conn.commit()
    conn.close()
    with Store(path, device_id=DEVICE, signer=key) as store:
        assert store.epoch == ""
        rating = store.append_rating(rating_content("S-1"))
        event = store.append_event("printer_fault", fault(1))
        assert "epoch" not in rating and "epoch" not in event and event["seq"] == 1
        assert store.carried_size() == 0  # the migration made its tables


@pytest.mark.parametrize("trial", range(6))
def test_unacked_intact_records_are_carried_verbatim_the_hit_ones_named_lost(
    tmp_path: Path, key: DeviceKey, trial: int
) -> None:
    """Any byte of any unacked record (ratings and events, a random set of them, a random byte
    and bit in each): the hit ones are named lost in the new store's epoch event, every other
    unacked one is carried over byte for byte with its old epoch and seq; what the city
    acked is neither."""
    rand = random.Random(trial)
    path = tmp_path / "ratings.db"
    with Store(path, device_id=DEVICE, signer=key) as store:
        ratings = [store.append_rating(rating_content(f"S-{i}")) for i in range(12)]
        events = [store.append_event("printer_fault", fault(i)) for i in range(5)]
        old = store.epoch
        acked_r, acked_e = rand.randrange(0, 12), rand.randrange(0, 5)
        store.ack([r["id"] for r in ratings[:acked_r]])
        every_event = [next(store.event_records()), *events]  # the epoch event first
        store.ack([e["id"] for e in every_event[:acked_e]])
    checkpoint(path)
    streams = {"ratings": ratings[acked_r:], "events": every_event[acked_e:]}
    data = bytearray(path.read_bytes())
    # a record whose text is also left in a free page is not hit: which copy is live is
    # SQLite's business (the carried one must be the live one, byte for byte, all the same)
    unacked = [r for records in streams.values() for r in records
               if data.count(canonical_json(r)) == 1]  # fmt: skip
    hit = rand.sample(unacked, rand.randrange(0, len(unacked) + 1))
    for record in hit:
        text = canonical_json(record)
        at = data.find(text)
        data[at + rand.randrange(len(text))] ^= 1 << rand.randrange(8)
    path.write_bytes(bytes(data) + b"\0" * 7)  # not whole: kept aside at the next open
    with Store(path, device_id=DEVICE, signer=key) as store:
        assert store.recovered_from is not None and store.epoch != old
        epoch_event = store.open_epoch()
        assert epoch_event is not None
        previous = epoch_event["previous"]
        assert previous["epoch"] == old
        assert previous["ratings"]["acked_seq"] == acked_r
        assert previous["ratings"]["acked_hash"] == (
            ratings[acked_r - 1]["hash"] if acked_r else GENESIS_HASH
        )
        items = store.carried_page(100).items
        for stream, records in streams.items():
            lost = [r["seq"] for r in records if r in hit]
            assert previous[stream]["lost"] == lost, stream
            assert previous[stream]["unsent"] == len(records)
            carried = [i for i in items if i.stream == stream]
            intact = [r for r in records if r not in hit]
            assert [(i.seq, i.payload) for i in carried] == [
                (r["seq"], canonical_json(r)) for r in intact
            ]
        assert all(json.loads(i.payload)["epoch"] == old for i in items)
        assert store.outbox_summary()[0] == len(items) + 1  # and the new epoch event
        store.ack([i.id for i in items])
        assert store.carried_size() == 0 and store.carried_page(100).items == []


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.8])
def test_a_truncated_store_still_names_its_epoch_and_what_it_held(
    tmp_path: Path, key: DeviceKey, keep: float
) -> None:
    path = tmp_path / "ratings.db"
    with Store(path, device_id=DEVICE, signer=key) as store:
        for i in range(60):
            store.append_rating(rating_content(f"S-{i}"))
        old = store.epoch
    checkpoint(path)
    with path.open("r+b") as f:
        f.truncate(int(path.stat().st_size * keep))
    with Store(path, device_id=DEVICE, signer=key) as store:
        previous = store.open_epoch()["previous"]
        assert previous["epoch"] == old and "truncated" in previous["problem"]
        assert previous["kept_aside"] == str(store.recovered_from)
        last = previous["ratings"]["last_seq"]
        assert last is None or 1 <= last <= 60
