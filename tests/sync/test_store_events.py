"""The store's events for the city (issue 8): their own sealed, signed chain and outbox, written
in the same transaction as the presentation fact they tell, acked with the ratings."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from evaluator.rules.errors import StoreError
from evaluator.rules.records import GENESIS_HASH, record_hash, signature_of
from sync.keys import DeviceKey
from sync.store import EVENTS_APPEND_ONLY, PresentationEnd, Store

DEVICE = "pad-440500-01"
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "event.schema.json"
AT = "2026-11-27T10:00:00.000+08:00"
CASE = {"serial": "S-1", "matter_code": "M1", "matter_name": "不动产登记", "kind": "instant"}
FACTS = {"cases": [CASE], "clerk": {"id": "007", "name": "张三"}, "terminal": None,
         "area_code": "440500"}  # fmt: skip
PIDS = [f"0190f000-0000-7000-8000-00000000000{i}" for i in range(1, 6)]


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return DeviceKey.create(tmp_path / "device.key")


@pytest.fixture
def store(tmp_path: Path, key: DeviceKey):
    """A new store whose seq-1 ``epoch`` event is written and acked (test_store_epoch.py)."""
    s = Store(tmp_path / "ratings.db", device_id=DEVICE, signer=key)
    opened = s.open_epoch()
    assert opened is not None and opened["seq"] == 1
    s.ack([opened["id"]])
    yield s
    s.close()


@pytest.fixture(scope="module")
def schema() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def mine(store: Store) -> list[dict[str, Any]]:
    """The store's events but its seq-1 ``epoch`` event."""
    return [e for e in store.event_records() if e["kind"] != "epoch"]


def valid(schema: Draft202012Validator, record: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema.iter_errors(record)]
    assert not errors, errors


def open_p(store: Store, pid: str, serial: str = "S-1", facts: Any = FACTS) -> list[str]:
    return store.open_presentation(
        id=pid, serials=[serial], stage="deliver", assess_number=1, clerk_id="007",
        matter_codes=["M1"], started_at=AT, clock_synced=True, facts=facts,
    )  # fmt: skip


def test_an_event_is_sealed_signed_and_chained_apart_from_the_ratings(
    store: Store, key: DeviceKey, schema: Draft202012Validator
) -> None:
    first = store.append_event(
        "printer_fault", {"fault": "paper_out", "active": True, "message": "", "at": AT}
    )
    second = store.append_event("store_fault", {"fault": "storage", "active": False,
                                                "message": "disk full", "since": AT})  # fmt: skip
    assert (first["seq"], second["seq"]) == (2, 3)  # seq 1: the store's epoch event
    (opened,) = [e for e in store.event_records() if e["seq"] == 1]
    assert opened["prev_hash"] == GENESIS_HASH and opened["kind"] == "epoch"
    assert first["prev_hash"] == opened["hash"] and second["prev_hash"] == first["hash"]
    assert first["epoch"] == second["epoch"] == opened["epoch"] == store.epoch
    assert first["device_id"] == DEVICE and first["kind"] == "printer_fault"
    assert first["hash"] == record_hash(first) and first["key_id"] == key.key_id
    sig = signature_of(first)
    assert sig is not None and key.public.check(first["hash"].encode(), sig)
    for record in (first, second):
        valid(schema, record)
    assert store.verify_events() is None
    assert store.last_seq() == 0 and store.outbox_size() == 0  # the ratings know nothing of it
    assert store.event_outbox_size() == 2
    page = store.event_outbox_page(10)
    assert [i.id for i in page.items] == [first["id"], second["id"]] and not page.more
    assert json.loads(page.items[0].payload) == first


def test_events_are_append_only_and_a_forged_one_breaks_the_chain(store: Store) -> None:
    store.append_event("printer_fault", {"fault": "offline", "active": True, "message": ""})
    store.append_event("printer_fault", {"fault": "offline", "active": False, "message": ""})
    with pytest.raises(sqlite3.IntegrityError, match=EVENTS_APPEND_ONLY):
        store.conn.execute("UPDATE events SET kind = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match=EVENTS_APPEND_ONLY):
        store.conn.execute("DELETE FROM events")
    store.conn.execute("DROP TRIGGER events_no_update")
    record = json.loads(store.conn.execute("SELECT record FROM events WHERE seq = 1").fetchone()[0])
    record["message"] = "forged"
    store.conn.execute("UPDATE events SET record = ? WHERE seq = 1", [json.dumps(record)])
    broken = store.verify_events()
    assert broken is not None and broken.seq == 1


def test_an_unknown_kind_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.append_event("level_pressed", {})
    assert store.event_outbox_size() == 0


def test_an_end_without_rating_writes_exactly_one_event_in_its_transaction(
    store: Store, schema: Draft202012Validator
) -> None:
    open_p(store, PIDS[0])
    store.close_presentation(PIDS[0], outcome="cancelled", ended_at=AT,
                             cause="evaluation.cancel", clock_synced=True)  # fmt: skip
    with pytest.raises(StoreError):  # the outcome is final: no second end, no second event
        store.close_presentation(PIDS[0], outcome="not_rated", ended_at=AT, cause="timeout")
    events = mine(store)
    assert len(events) == 1
    end = events[0]
    valid(schema, end)
    assert end["kind"] == "presentation_end" and end["presentation_id"] == PIDS[0]
    assert (end["outcome"], end["by"], end["clock_synced"]) == ("cancelled", "clerk", True)
    assert end["cases"] == [CASE] and end["clerk"] == FACTS["clerk"]
    assert (end["presented_at"], end["ended_at"], end["area_code"]) == (AT, AT, "440500")
    assert "level" not in end and "score" not in end


def test_a_rated_end_writes_no_event(store: Store) -> None:
    open_p(store, PIDS[0])
    rating = {"presentation_id": PIDS[0], "level": "satisfied", "score": 8, "cases": [CASE],
              "clerk": FACTS["clerk"], "stage": "deliver", "assess_number": 1,
              "rated_at": AT}  # fmt: skip
    stored = store.append_rating(rating, close=PresentationEnd(PIDS[0], "rated", AT, (), "rated"))
    assert store.presentation_row(PIDS[0])["outcome"] == "rated"
    assert mine(store) == []
    assert store.ack([stored["id"]]) == 1


def test_a_failed_close_writes_no_event(store: Store) -> None:
    with pytest.raises(StoreError):
        store.close_presentation(PIDS[4], outcome="not_rated", ended_at=AT, cause="timeout")
    assert store.event_outbox_size() == 0


def test_a_presentation_opened_before_the_update_still_ends_with_its_serials(
    store: Store, schema: Draft202012Validator
) -> None:
    open_p(store, PIDS[0], facts=None)  # a row written before migration m004 keeps no facts
    store.close_presentation(PIDS[0], outcome="not_rated", ended_at=AT, cause="restart")
    (end,) = mine(store)
    valid(schema, end)
    assert end["cases"] == [{"serial": "S-1", "matter_code": "M1", "matter_name": None,
                             "kind": None}]  # fmt: skip
    assert end["clerk"] == {"id": "007", "name": None} and end["by"] == "restart"


def test_a_re_presentation_is_an_event_naming_the_earlier_ones(
    store: Store, schema: Draft202012Validator
) -> None:
    open_p(store, PIDS[0])
    store.close_presentation(PIDS[0], outcome="cancelled", ended_at=AT, cause="window.pause")
    assert open_p(store, PIDS[1]) == [PIDS[0]]
    open_p(store, PIDS[2], serial="S-2")  # another case: nothing re-presented
    kinds = [e["kind"] for e in mine(store)]
    assert kinds == ["presentation_end", "represented"]
    again = mine(store)[1]
    valid(schema, again)
    assert again["presentation_id"] == PIDS[1] and again["represents"] == [PIDS[0]]
    assert again["serials"] == ["S-1"] and again["clerk"] == FACTS["clerk"]


def test_one_ack_message_empties_both_outboxes(store: Store) -> None:
    open_p(store, PIDS[0])
    rating = {"presentation_id": PIDS[0], "level": "satisfied", "score": 8, "cases": [CASE],
              "clerk": FACTS["clerk"], "stage": "deliver", "assess_number": 1,
              "rated_at": AT}  # fmt: skip
    stored = store.append_rating(rating)
    event = store.append_event("printer_fault", {"fault": "offline", "active": True,
                                                 "message": ""})  # fmt: skip
    assert store.outbox_summary() == (2, AT)
    assert store.ack([stored["id"], event["id"], "unknown"], durable=False) == 2
    assert store.outbox_summary() == (0, None)
    assert len(mine(store)) == 1  # acked, still kept


def test_the_oldest_waiting_item_is_named_whichever_outbox_holds_it(store: Store) -> None:
    store.append_event("printer_fault", {"fault": "offline", "active": True, "message": "",
                                         "at": "2026-11-27T09:00:00.000+08:00"})  # fmt: skip
    open_p(store, PIDS[0])
    rating = {"presentation_id": PIDS[0], "level": "satisfied", "score": 8, "cases": [CASE],
              "clerk": FACTS["clerk"], "stage": "deliver", "assess_number": 1,
              "rated_at": "2026-11-27T02:30:00.000+00:00"}  # 10:30 in +08:00: newer  # fmt: skip
    store.append_rating(rating)
    assert store.outbox_summary() == (2, "2026-11-27T09:00:00.000+08:00")
