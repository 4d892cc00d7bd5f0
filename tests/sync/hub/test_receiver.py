"""The receiver on a real mosquitto (MQTT 5 shared subscriptions) against the pads' real sync
code: a real ``Store`` signed by a real device key, published by the real ``SyncWorker``."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from evaluator.rules.records import canonical_json, record_hash
from sync.hub.db import open_db
from sync.hub.receiver import Receiver, ReceiverError, parse_broker
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.mqttclient import Broker as BrokerAt
from sync.store import Store
from tests.support import Broker, LogLines, free_port, log_lines, stop_threads, wait_for
from tests.sync.hub.helpers import PREFIX, chain, make_key, payload, rating_content, topic

DEVICE = "440500-hall1-w12"


class Watcher:
    """A test peer on the broker: keeps every message of the topics it subscribes to."""

    def __init__(self, broker: Broker, *topics: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def on(self, topic_: str) -> list[Any]:
        with self._lock:
            return [json.loads(p) for t, p in self.messages if t == topic_]

    def publish(self, topic_: str, body: bytes) -> None:
        self.client.publish(topic_, body, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return make_key(tmp_path)


def start_receiver(url: str, broker: Broker, **kwargs: Any) -> Receiver:
    receiver = Receiver(url, [f"mqtt://{broker.host}:{broker.port}"], **kwargs)
    receiver.start()
    assert receiver.wait_ready(15), receiver.last_error
    return receiver


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    stop_threads(started, 10)


@pytest.fixture
def pad(tmp_path: Path, key: DeviceKey) -> Iterator[Store]:
    """The pad's store, its records signed by ``key``."""
    store = Store(tmp_path / "pad.db", device_id=DEVICE, signer=key)
    yield store
    store.close()


def registered(url: str, key: DeviceKey) -> str:
    """``url``, a hub database where the pad's key is registered (as the city does first)."""
    with open_db(url) as db:
        db.register(DEVICE, key.public.text)
    return url


def drain(pad: Store, url: str, broker: Broker, count: int, timeout: float, live: int = 0) -> None:
    """Run the pad's real worker until the hub holds ``count`` records and the outbox is empty,
    ``live`` ratings appended (and notified, ahead of the backlog) once the worker runs; the hub
    must then hold exactly the pad's records in order, none parked or dead."""
    sync = SyncWorker(
        store_path=pad.path,
        device_id=DEVICE,
        host=broker.host,
        port=broker.port,
        max_rate=math.inf,
        resend_after=2.0,
        reconnect_min=0.2,
        reconnect_spread=0.0,
    )
    sync.start()
    try:
        for i in range(count - live, count):
            pad.append_rating(rating_content(f"S{i:04d}"))
            sync.notify()
        with open_db(url) as db:
            wait_for(
                lambda: db.count("ratings") == count and pad.outbox_size() == 0,
                timeout,
                f"all {count} stored",
            )
            assert db.records(DEVICE) == list(pad.records())
            assert db.parked() == 0 and db.dead() == []
    finally:
        sync.stop()
        sync.join(10)


def test_a_pads_ratings_are_stored_once_in_order_and_its_outbox_empties(
    db_url: str, broker: Broker, key: DeviceKey, pad: Store, receivers: list[Receiver]
) -> None:
    url = registered(db_url, key)
    for i in range(30):  # a backlog waiting before the pad reaches the broker
        pad.append_rating(rating_content(f"S{i:04d}"))
    receivers.append(start_receiver(url, broker))
    drain(pad, url, broker, 40, 60, live=10)  # 10 live ratings, ahead of the backlog
    stats = receivers[0].stats
    # the 40 ratings and the store's epoch event (its events seq 1)
    assert stats["stored"] == 41 and stats["dead"] == 0 and stats["acked_ids"] >= 41


def test_forgeries_are_dead_lettered_and_never_acked(
    broker: Broker, key: DeviceKey, tmp_path: Path, receivers: list[Receiver]
) -> None:
    url = registered(f"sqlite:///{tmp_path / 'hub.db'}", key)
    records = chain(key, DEVICE, 2)
    other = make_key(tmp_path, "other")
    altered = dict(records[0], elapsed_ms=1)
    bad_schema = dict(records[0], score=9)
    bad_schema["hash"] = record_hash(bad_schema)
    forgeries = [
        (topic(DEVICE), canonical_json(chain(other, DEVICE, 1)[0])),  # wrong key
        (topic(DEVICE), canonical_json(altered)),  # altered field
        (topic("pad-9"), payload(records[0])),  # wrong device in the topic
        (topic("pad-9"), payload(chain(key, "pad-9", 1)[0])),  # unregistered device
        (topic(DEVICE), b'{"id":'),  # malformed JSON
        (topic(DEVICE), canonical_json(bad_schema)),  # schema violation
    ]
    receivers.append(start_receiver(url, broker))
    watcher = Watcher(broker, f"{PREFIX}/_hub/deadletter", f"{PREFIX}/+/acks")
    try:
        for where, body in forgeries:
            watcher.publish(where, body)
        dead_topic = f"{PREFIX}/_hub/deadletter"
        wait_for(lambda: len(watcher.on(dead_topic)) == len(forgeries), 20, "dead letters")
        dead = watcher.on(dead_topic)
        assert {d["topic"] for d in dead} == {t for t, _ in forgeries}
        assert all(d["reason"] and d["at"] for d in dead)
        reasons = " | ".join(d["reason"] for d in dead)
        for part in ("not registered", "hash", "topic's device", "not JSON", "schema rating"):
            assert part in reasons
        # the genuine records after the forgeries are stored and acked: only they
        watcher.publish(topic(DEVICE), payload(records[0]))
        watcher.publish(topic(DEVICE), payload(records[1]))
        acks = f"{PREFIX}/{DEVICE}/acks"
        wait_for(lambda: sum(len(a["ids"]) for a in watcher.on(acks)) == 2, 20, "two acks")
        acked = [i for a in watcher.on(acks) for i in a["ids"]]
        assert acked == [r["id"] for r in records]
        assert watcher.on(f"{PREFIX}/pad-9/acks") == []
        with open_db(url) as db:
            assert db.records(DEVICE) == records and len(db.dead()) == len(forgeries)
        # a duplicate is acked again, and stored once
        before = len(watcher.on(acks))  # one ack message or two, as the batches fell
        watcher.publish(topic(DEVICE), payload(records[0]))
        wait_for(lambda: len(watcher.on(acks)) > before, 20, "the duplicate's ack")
        assert watcher.on(acks)[-1] == {"ids": [records[0]["id"]]}
        with open_db(url) as db:
            assert db.count() == 2
        assert receivers[0].stats["duplicates"] == 1
    finally:
        watcher.close()


def test_two_receivers_split_one_pads_traffic_and_store_it_in_order(
    broker: Broker, key: DeviceKey, tmp_path: Path, pad: Store, receivers: list[Receiver]
) -> None:
    url = registered(f"sqlite:///{tmp_path / 'hub.db'}", key)
    for i in range(300):
        pad.append_rating(rating_content(f"S{i:04d}"))
    receivers.append(start_receiver(url, broker, client_id="hub-a"))
    receivers.append(start_receiver(url, broker, client_id="hub-b"))
    drain(pad, url, broker, 300, 90)
    a, b = (r.stats for r in receivers)
    assert a["received"] > 0 and b["received"] > 0  # the broker split the traffic
    assert a["stored"] + b["stored"] == 301  # and the store's epoch event


def test_brokers_are_tried_in_turn(
    broker: Broker, tmp_path: Path, receivers: list[Receiver]
) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    receiver = Receiver(
        f"sqlite:///{tmp_path / 'hub.db'}",
        [dead, f"mqtt://{broker.host}:{broker.port}"],
        reconnect_min=0.1,
    )
    receivers.append(receiver)
    receiver.start()
    assert receiver.wait_ready(15) and receiver.connected
    assert receiver.stats["connects"] == 1


def test_protocol_311_works_too(
    broker: Broker, key: DeviceKey, tmp_path: Path, receivers: list[Receiver]
) -> None:
    url = registered(f"sqlite:///{tmp_path / 'hub.db'}", key)
    receivers.append(start_receiver(url, broker, protocol="3.1.1"))
    watcher = Watcher(broker, f"{PREFIX}/{DEVICE}/acks")
    try:
        (record,) = chain(key, DEVICE, 1)
        watcher.publish(topic(DEVICE), payload(record))
        wait_for(
            lambda: watcher.on(f"{PREFIX}/{DEVICE}/acks") == [{"ids": [record["id"]]}],
            20,
            "the ack",
        )
    finally:
        watcher.close()


def test_options_are_checked() -> None:
    assert parse_broker("mqtts://city.example:8884") == BrokerAt("city.example", 8884, True)
    assert parse_broker("10.0.0.5") == BrokerAt("10.0.0.5", 1883, False)
    assert parse_broker("ssl://city.example") == BrokerAt("city.example", 8883, True)
    assert parse_broker("tcp://[::1]:1884") == BrokerAt("::1", 1884, False)
    for bad in ("http://x", "mqtt://user:pw@x", "mqtt://x/topic", "mqtt://x:0", "mqtt://x:99999"):
        with pytest.raises(ReceiverError):
            parse_broker(bad)
    with pytest.raises(ReceiverError):
        Receiver("x.db", ["mqtt://h"], protocol="4")
    with pytest.raises(ReceiverError):
        Receiver("x.db", ["mqtt://h"], group="a/b")


def test_a_postgresql_that_vanishes_mid_run_is_reconnected_at_once(
    broker: Broker,
    key: DeviceKey,
    pad: Store,
    receivers: list[Receiver],
    postgres_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server drops the receiver's connection (a restart, a failover) between batches:
    the failed batch is not acked and the very next batches must reach a new connection, not
    fail silently until something else happens to raise (the key cache held for ever here,
    so only the broken connection itself can trigger the reconnect)."""
    import psycopg

    import sync.hub.ingest

    monkeypatch.setattr(sync.hub.ingest, "KEYS_TTL", 1e9)
    url = registered(postgres_server.fresh_database("hub_vanish"), key)
    receivers.append(start_receiver(url, broker, reconnect_min=0.1))
    drain(pad, url, broker, 5, 60, live=5)  # the receiver's connection is open, the key cached
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = 'hub_vanish' AND pid <> pg_backend_pid()"
        )
    drain(pad, url, broker, 10, 60, live=5)
    assert receivers[0].stats["failed"] >= 1  # the batch in flight when it vanished


# --- no silent failure on the link (issue 14; found by review) -----------------------------------


@pytest.fixture
def warnings_() -> Iterator[LogLines]:
    with log_lines("sync.hub.receiver") as handler:
        yield handler


def test_a_refused_connection_is_a_warning_in_words_rate_limited_then_the_recovery(
    tmp_path: Path, receivers: list[Receiver], warnings_: LogLines
) -> None:
    """The receiver logged each failure at INFO with the raw exception ('cannot reach ...:
    [Errno 111] Connection refused'): nothing at the default WARNING level of a service."""
    later = Broker(tmp_path)  # its port is free until it starts
    url = f"mqtt://127.0.0.1:{later.port}"
    receiver = Receiver(f"sqlite:///{tmp_path / 'hub.db'}", [url], reconnect_min=0.05,
                        reconnect_max=0.05)  # fmt: skip
    receivers.append(receiver)
    started = time.monotonic()
    receiver.start()
    wait_for(lambda: bool(warnings_.having(f"cannot connect to {url}", "connection refused")),
             10, "the warning")  # fmt: skip
    assert time.monotonic() - started < 10
    wait_for(lambda: receiver.link is not None and receiver.link.count >= 20, 20, "20 attempts")
    assert len(warnings_.having("cannot connect")) <= 2, warnings_.messages()
    assert receiver.link is not None and receiver.link.cause == "refused"
    assert receiver.last_error.startswith(f"cannot connect to {url}: connection refused")
    later.start()
    try:
        assert receiver.wait_ready(15)
        wait_for(lambda: bool(warnings_.having(f"connected to {url} after")), 10, "the recovery")
        assert receiver.link is not None and receiver.link.until
    finally:
        stop_threads(receivers, 10)
        receivers.clear()
        later.stop()


def test_an_mqtts_url_to_a_plain_listener_is_named(
    broker: Broker, tmp_path: Path, receivers: list[Receiver], warnings_: LogLines
) -> None:
    url = f"mqtts://127.0.0.1:{broker.port}"
    receiver = Receiver(f"sqlite:///{tmp_path / 'hub.db'}", [url], reconnect_min=0.05,
                        reconnect_max=0.05)  # fmt: skip
    receivers.append(receiver)
    receiver.start()
    wait_for(lambda: bool(warnings_.having(f"cannot connect to {url}", "not a TLS server")),
             10, "the warning")  # fmt: skip
    assert receiver.link is not None and receiver.link.cause == "not_tls"


def test_a_broker_that_never_answers_is_a_timeout_within_ten_seconds(
    tmp_path: Path, receivers: list[Receiver], warnings_: LogLines
) -> None:
    """The receiver waited 2 x connect_timeout + 5 s (15 s) for a CONNACK and then said only
    'connection lost (no CONNACK)'."""
    server = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never speaks
    try:
        url = f"mqtt://127.0.0.1:{server.getsockname()[1]}"
        receiver = Receiver(f"sqlite:///{tmp_path / 'hub.db'}", [url], reconnect_min=0.05,
                            reconnect_max=0.05)  # fmt: skip
        receivers.append(receiver)
        started = time.monotonic()
        receiver.start()
        wait_for(lambda: bool(warnings_.having(f"cannot connect to {url}", "no CONNACK")),
                 12, "the warning")  # fmt: skip
        assert time.monotonic() - started < 10
        assert receiver.link is not None and receiver.link.cause == "timeout"
    finally:
        stop_threads(receivers, 10)
        receivers.clear()
        server.close()


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"\x20\x03\x00\x86\x00", "cannot connect to {url}: the broker refused the connection: "
                                  "CONNACK 0x86 Bad user name or password"),
        (b"\x20\x03\x00\x00\x00\xe0\x02\x8e\x00",
         "connection to {url} lost: the broker ended the connection: "
         "DISCONNECT 0x8E Session taken over"),
    ],
)  # fmt: skip
def test_a_refusal_or_a_disconnect_names_the_brokers_reason_code(
    tmp_path: Path, receivers: list[Receiver], warnings_: LogLines, answer: bytes, words: str
) -> None:
    """The CONNACK's refusal was an ERROR per attempt ('broker refused the connection: Bad
    user name or password', no number, no rate limit); a DISCONNECT's reason was not told."""
    from tests.sync.test_mqtt_linkerror import Refusing

    server = Refusing(answer)
    try:
        url = f"mqtt://127.0.0.1:{server.port}"
        receiver = Receiver(f"sqlite:///{tmp_path / 'hub.db'}", [url], reconnect_min=0.05,
                            reconnect_max=0.05)  # fmt: skip
        receivers.append(receiver)
        receiver.start()
        line = words.format(url=url)
        wait_for(lambda: bool(warnings_.having(line)), 10, "the warning")
        wait_for(lambda: receiver.link is not None and receiver.link.count >= 5, 10, "5 more")
        assert len(warnings_.having(f"{url}")) == 1, warnings_.messages()
    finally:
        stop_threads(receivers, 10)
        receivers.clear()
        server.close()
