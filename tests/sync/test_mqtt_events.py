"""The worker's event lane, protocols and broker URLs against a real mosquitto (issue 8)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion

from evaluator.rules.records import GENESIS_HASH, signature_of, verify_chain
from sync.keys import DeviceKey
from sync.mqtt import Broker, SyncWorker, parse_broker_url
from sync.store import Store
from tests.support import free_port
from tests.sync.test_mqtt import full_content, wait_until
from tests.sync.workers import worker_factory

DEVICE = "pad-440500-09"
PREFIX = "hcp/v1"
BASE = f"{PREFIX}/{DEVICE}"
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def schema(name: str) -> Draft202012Validator:
    """The validator of docs/schemas/NAME.schema.json, its references to the other schemas
    resolved from the folder (command.schema.json refers to counter-request.schema.json)."""
    from referencing import Registry, Resource

    loaded = {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in SCHEMAS.glob("*.schema.json")
    }
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in loaded.values()
    )
    return Draft202012Validator(loaded[f"{name}.schema.json"], registry=registry)


def assert_valid(validator: Draft202012Validator, obj: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
    assert not errors, f"{obj}\n" + "\n".join(errors)


class Peer:
    """The city's side, test-only: every message under the device's topics (with its retain
    flag, as a subscriber connecting now sees it), and publishing (acks, commands)."""

    def __init__(self, host: str, port: int, *, name: str = "city-peer", base: str = BASE) -> None:
        self.base = base
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe(f"{base}/#", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=5)
        self.client.loop_start()
        assert self._subscribed.wait(5), "the peer could not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, leaf: str) -> list[dict[str, Any]]:
        """The JSON messages received on ``{BASE}/{leaf}``, in order."""
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t == f"{self.base}/{leaf}"]

    def raw(self, leaf: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.messages if t == f"{self.base}/{leaf}"]

    def publish(self, leaf: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(f"{self.base}/{leaf}", payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    def ack(self, ids: list[str]) -> None:
        self.publish("acks", json.dumps({"ids": ids}).encode())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return DeviceKey.create(tmp_path / "device.key")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ratings.db"


@pytest.fixture
def store(db_path: Path, key: DeviceKey) -> Iterator[Store]:
    s = Store(db_path, device_id=DEVICE, signer=key)
    opened = s.open_epoch()  # the new store's epoch event, acked by the city long ago: the
    s.ack([opened["id"]] if opened else [])  # worker's lanes carry only what a test makes
    yield s
    s.close()


@pytest.fixture
def peer(broker: Any) -> Iterator[Peer]:
    p = Peer(broker.host, broker.port)
    yield p
    p.close()


@pytest.fixture
def make_worker(broker: Any, db_path: Path) -> Iterator[Callable[..., SyncWorker]]:
    with worker_factory(broker, db_path, DEVICE, topic_prefix=PREFIX, reconnect_spread=0.0) as make:
        yield make


def fault(active: bool) -> dict[str, Any]:
    return {"fault": "paper_out", "active": active, "message": "",
            "at": "2026-11-27T10:00:00.000+08:00"}  # fmt: skip


def test_events_arrive_signed_chained_and_leave_the_outbox_when_acked(
    store: Store, key: DeviceKey, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    first = store.append_event("printer_fault", fault(True))  # waited before the connection
    worker = make_worker()
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    second = store.append_event("printer_fault", fault(False))
    rating = store.append_rating(full_content("S-1"))
    worker.notify()
    wait_until(lambda: len(peer.on("events")) == 2, 5, "both events at the city")
    events = peer.on("events")
    assert events == [first, second] and peer.on("ratings") == [rating]
    opened = next(store.event_records())  # seq 1: the store's epoch event (acked before)
    assert opened["prev_hash"] == GENESIS_HASH and verify_chain([opened, *events]) is None
    validator = schema("event")
    for event in events:
        assert_valid(validator, event)
        sig = signature_of(event)
        assert sig is not None and key.public.check(event["hash"].encode("ascii"), sig)
    assert all(not retained for _, retained in peer.raw("events"))
    peer.ack([first["id"], second["id"]])
    wait_until(lambda: store.event_outbox_size() == 0, 5, "the event outbox to empty")
    assert store.outbox_size() == 1  # the rating waits for its own ack
    peer.ack([rating["id"]])
    wait_until(lambda: store.outbox_size() == 0, 5, "the rating outbox to empty")


def test_an_unacked_event_is_resent_on_its_own_topic(
    store: Store, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    event = store.append_event("printer_fault", fault(True))
    make_worker(resend_after=0.3)
    wait_until(lambda: len(peer.on("events")) >= 3, 5, "the event sent again")
    assert {e["id"] for e in peer.on("events")} == {event["id"]}
    assert peer.on("ratings") == []
    peer.ack([event["id"]])
    wait_until(lambda: store.event_outbox_size() == 0, 5, "the ack applied")
    count = len(peer.on("events"))
    time.sleep(0.8)  # longer than resend_after: an acked event is not sent again
    assert len(peer.on("events")) == count


def test_an_event_never_waits_behind_a_rating_backlog(
    store: Store, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    for i in range(300):
        store.append_rating(full_content(f"B-{i}"))
    worker = make_worker(max_rate=10.0, burst=5, max_unacked=20)
    wait_until(lambda: len(peer.on("ratings")) >= 5, 5, "the backlog to start")
    event = store.append_event("printer_fault", fault(True))
    started = time.monotonic()
    worker.notify()
    wait_until(lambda: peer.on("events") == [event], 5, "the event at the city")
    assert time.monotonic() - started < 1.0
    assert len(peer.on("ratings")) < 100  # the backlog is far from drained


def test_mqtt_3_1_1_still_carries_ratings_events_and_acks(
    store: Store, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    worker = make_worker(protocol="3.1.1")
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    rating = store.append_rating(full_content("S-1"))
    event = store.append_event("printer_fault", fault(True))
    worker.notify()
    wait_until(lambda: peer.on("ratings") == [rating] and peer.on("events") == [event], 5,
               "both at the city")  # fmt: skip
    peer.ack([rating["id"], event["id"]])
    wait_until(lambda: store.outbox_summary() == (0, None), 5, "both outboxes empty")
    assert peer.on("status")[-1]["online"] is True


def test_a_dead_first_url_falls_to_the_second_without_backoff(
    broker: Any, store: Store, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    dead = free_port()  # nothing listens: refused at once
    worker = make_worker(
        brokers=[f"mqtt://127.0.0.1:{dead}", f"mqtt://{broker.host}:{broker.port}"],
        host="unused.invalid",
        reconnect_min=30.0,  # a backoff between the two URLs would fail this test
        reconnect_max=30.0,
    )
    wait_until(lambda: worker.status.connected, 5, "the second URL")
    rating = store.append_rating(full_content("S-1"))
    worker.notify()
    wait_until(lambda: peer.on("ratings") == [rating], 5, "the rating through the second URL")


def test_broker_urls_are_parsed_with_default_ports_and_tls() -> None:
    assert parse_broker_url("mqtt://mqtt.hall.local") == Broker("mqtt.hall.local", 1883, False)
    assert parse_broker_url("mqtts://city.example:8884") == Broker("city.example", 8884, True)
    assert parse_broker_url("MQTTS://[::1]") == Broker("::1", 8883, True)
    assert str(parse_broker_url("mqtt://h:1")) == "mqtt://h:1"
    for bad in ("tcp://h:1883", "h:1883", "mqtt://", "mqtt://h:99999", "mqtt://u:p@h",
                "mqtt://h:1883/x", "mqtt://h:0"):  # fmt: skip
        with pytest.raises(ValueError):
            parse_broker_url(bad)


def test_a_bad_protocol_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="protocol"):
        SyncWorker(store_path=db_path, device_id=DEVICE, host="h", protocol="4")
