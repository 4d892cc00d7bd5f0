"""No message on the ack topic stops the uploads: a real mosquitto, a real SQLite file.

Issue 5: ``[`` × 100,000 on the acks topic raised RecursionError inside the message callback;
paho then handled the same packet again at every loop (no uploads, no acks, status "online"),
and, retained, it did so again at every start.  Each test publishes hostile payloads, then proves
that a new rating is still published and that a genuine ack still removes it from the outbox.
"""

# ruff: noqa: F811  (the fixtures of test_mqtt.py are imported, and so shadowed by test arguments)

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest

from sync.mqtt import MAX_ACK_BYTES, MAX_ACK_IDS, SyncWorker, parse_ack
from sync.store import Store
from tests.sync.test_mqtt import (  # noqa: F401  (fixtures: reused, not copied)
    ACKS,
    City,
    city,
    db_path,
    full_content,
    make_worker,
    store,
    wait_until,
)

UUID = "01a218ba-8127-7b24-9c1f-be803d583727"

_junk = random.Random(5)

HOSTILE: dict[str, bytes] = {
    "deep_brackets_100k": b"[" * 100_000,  # issue 5
    "deep_inside_ids": b'{"ids":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "deep_objects": b'{"ids":' * 20_000,
    "deep_in_a_string_item": b'{"ids":["' + b"[" * 10_000 + b'",' + b"{" * 10_000 + b"]}",
    "binary_junk": bytes(_junk.randrange(256) for _ in range(4096)),
    "invalid_utf8": b'{"ids":["\xff\xfe"]}',
    "huge_payload": b'{"ids":["' + b"a" * (3 * 1024 * 1024) + b'"]}',
    "huge_integer": b'{"ids":[' + b"9" * 5000 + b"]}",
    "ids_not_a_list": b'{"ids":{"a":"b"}}',
    "ids_a_string": b'{"ids":"' + UUID.encode() + b'"}',
    "ids_of_wrong_types": b'{"ids":[1,null,true,1.5,{"x":1},[["y"]]]}',
    "lone_surrogate_id": b'{"ids":["\\ud800","\\udfff"]}',
    "too_many_ids": json.dumps({"ids": [f"x{i}" for i in range(MAX_ACK_IDS * 3)]}).encode(),
    "not_an_object": b'["ids"]',
    "empty": b"",
    "nul_bytes": b"\x00" * 1000,
}


def _publish(city: City, payload: bytes, *, retain: bool = False) -> None:
    city.client.publish(ACKS, payload, qos=1, retain=retain).wait_for_publish(10)


def _still_uploads_and_applies_acks(store: Store, city: City, worker: SyncWorker, tag: str) -> None:
    """A rating committed now reaches the city, and the city's genuine ack empties the outbox."""
    record = store.append_rating(full_content(f"AFTER-{tag}"))
    worker.notify()
    wait_until(lambda: record["id"] in city.ids(), 10, f"the rating committed after {tag}")
    city.ack([record["id"]])
    wait_until(lambda: store.outbox_size() == 0, 10, f"the ack applied after {tag}")
    assert worker.is_alive() and worker.status.connected
    wait_until(lambda: worker.status.pending == 0, 5, "the status to show an empty outbox")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_ack_message_does_not_stop_the_uploads(
    name: str, store: Store, city: City, make_worker: Callable[..., SyncWorker]
) -> None:
    worker = make_worker()
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    before = store.append_rating(full_content("BEFORE"))
    worker.notify()
    wait_until(lambda: before["id"] in city.ids(), 5, "the first rating at the city")
    _publish(city, HOSTILE[name])
    wait_until(lambda: "malformed" in worker.status.last_error, 10, "the worker to note it")
    assert store.outbox_size() == 1  # nothing genuine was acked by the junk
    city.ack([before["id"]])
    wait_until(lambda: store.outbox_size() == 0, 10, "a genuine ack after the junk")
    _still_uploads_and_applies_acks(store, city, worker, name)


def test_every_hostile_message_in_a_row(
    store: Store, city: City, make_worker: Callable[..., SyncWorker]
) -> None:
    worker = make_worker()
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    for payload in HOSTILE.values():
        _publish(city, payload)
    _still_uploads_and_applies_acks(store, city, worker, "all of them")


@pytest.mark.parametrize("name", ["deep_brackets_100k", "deep_inside_ids", "binary_junk"])
def test_a_retained_hostile_ack_does_not_stop_the_uploads_at_any_start(
    name: str, store: Store, city: City, make_worker: Callable[..., SyncWorker]
) -> None:
    _publish(city, HOSTILE[name], retain=True)  # delivered again at every subscribe
    for start in range(2):
        worker = make_worker()
        wait_until(lambda w=worker: w.status.connected, 5, "the worker to connect")
        wait_until(lambda w=worker: "malformed" in w.status.last_error, 10, "the retained junk")
        _still_uploads_and_applies_acks(store, city, worker, f"{name} start {start}")
        worker.stop()
        worker.join(5)
        assert not worker.is_alive()


def test_string_ids_of_an_ack_are_applied_and_the_rest_ignored(
    store: Store, city: City, make_worker: Callable[..., SyncWorker]
) -> None:
    acked: list[list[str]] = []
    worker = make_worker(on_ack=acked.append)
    records = [store.append_rating(full_content(f"S-{i}")) for i in range(2)]
    worker.notify()
    wait_until(lambda: len(set(city.ids())) == 2, 5, "both ratings at the city")
    payload = {"ids": [1, None, records[0]["id"], {"x": 1}, ["y"], True, "\ud800"]}
    _publish(city, json.dumps(payload).encode())
    wait_until(lambda: store.outbox_size() == 1, 5, "the string id applied")
    assert [r["id"] for r in store.pending()] == [records[1]["id"]]
    assert acked == [[records[0]["id"]]]
    assert "not" in worker.status.last_error  # the ignored ids are reported
    _still_uploads_and_applies_acks_after(store, city, worker, records[1]["id"])


def _still_uploads_and_applies_acks_after(
    store: Store, city: City, worker: SyncWorker, pending_id: str
) -> None:
    city.ack([pending_id])
    wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")
    _still_uploads_and_applies_acks(store, city, worker, "the mixed ack")


def test_an_ack_applies_at_most_max_ack_ids(
    store: Store, city: City, make_worker: Callable[..., SyncWorker]
) -> None:
    worker = make_worker()
    first, second = (store.append_rating(full_content(f"S-{i}")) for i in range(2))
    worker.notify()
    wait_until(lambda: len(set(city.ids())) == 2, 5, "both ratings at the city")
    filler = [f"unknown-{i}" for i in range(MAX_ACK_IDS)]
    _publish(city, json.dumps({"ids": [first["id"], *filler, second["id"]]}).encode())
    wait_until(lambda: store.outbox_size() == 1, 5, "the first id applied")
    wait_until(lambda: str(MAX_ACK_IDS) in worker.status.last_error, 5, "the cap reported")
    assert [r["id"] for r in store.pending()] == [second["id"]]  # beyond the cap: not applied
    _still_uploads_and_applies_acks_after(store, city, worker, second["id"])


# -- the parser alone ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(HOSTILE))
def test_parse_ack_never_raises_and_reports_the_problem(name: str) -> None:
    ids, problem = parse_ack(HOSTILE[name])
    assert problem
    assert all(isinstance(i, str) for i in ids) and len(ids) <= MAX_ACK_IDS
    for i in ids:
        i.encode("utf-8")  # every id applied is valid text (sqlite can bind it)


def test_parse_ack_accepts_the_documented_ack() -> None:
    payload = {"ids": [UUID, "01a218ba-8128-7b5c-8443-fd3228ad850e"]}
    assert parse_ack(json.dumps(payload, indent=2).encode()) == (payload["ids"], "")


def test_parse_ack_refuses_oversized_payloads_before_reading_them() -> None:
    ids, problem = parse_ack(b'{"ids":["' + UUID.encode() + b'"]}' + b" " * MAX_ACK_BYTES)
    assert ids == [] and str(MAX_ACK_BYTES) in problem
