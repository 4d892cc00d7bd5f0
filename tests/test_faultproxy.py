"""The fault-injection proxy of the city link tests (tests/faultproxy.py), on a real mosquitto:
each fault happens, and only when asked for."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import Broker
from tests.faultproxy import FaultProxy, publish_topic, split_packet, topic_matches
from tests.support import wait_for


class Client:
    """A paho client (its own network thread) that records what it receives."""

    def __init__(self, port: int, name: str, *, protocol: int = mqtt.MQTTv311) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.topics: list[str] = []  # subscribed again at each connect: set before connecting
        self.connects = 0
        self.disconnects = 0
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=protocol)
        self.c.on_message = self._message
        self.c.on_connect = self._connect
        self.c.on_disconnect = self._disconnect
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.reconnect_delay_set(0.05, 0.2)
        self.c.connect_async("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self.connects += 1
            for t in self.topics:
                client.subscribe(t, qos=1)

    def _disconnect(self, *args: Any) -> None:
        self.disconnects += 1

    def _message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def subscribe(self, topic: str) -> None:
        self.topics.append(topic)
        self.subscribed.clear()
        self.c.subscribe(topic, qos=1)
        wait_for(self.subscribed.is_set, 10, f"subscription to {topic}")

    def received(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.got if t == topic]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def proxy(broker: Broker) -> Iterator[FaultProxy]:
    p = FaultProxy(broker.host, broker.port)
    yield p
    p.close()


def connected(client: Client, count: int = 1) -> None:
    wait_for(lambda: client.connects >= count, 10, "the client to connect")


def test_packets_are_split_by_their_fixed_header() -> None:
    assert split_packet(b"\x30") == 0
    assert split_packet(b"\x30\x03ab") == 0  # 3 bytes announced, 2 there
    assert split_packet(b"\x30\x03abcXYZ") == 5
    long = bytes([0x30, 0xC8, 0x01]) + b"x" * 200  # 200 = 0x48 + 1×128
    assert split_packet(long) == 203
    assert split_packet(long[:100]) == 0
    with pytest.raises(ValueError):
        split_packet(b"\x30\xff\xff\xff\xff\x01")
    packet = b"\x32" + bytes([2 + 5 + 2 + 1]) + b"\x00\x05a/b/c" + b"\x12\x34" + b"x"
    assert publish_topic(packet) == ("a/b/c", 0x1234)
    assert publish_topic(b"\x30\x08\x00\x03a/bxyz") == ("a/b", None)


def test_topic_patterns_follow_mqtt_wildcards() -> None:
    assert topic_matches("hcp/v1/+/acks", "hcp/v1/pad1/acks")
    assert not topic_matches("hcp/v1/+/acks", "hcp/v1/pad1/ratings")
    assert topic_matches("hcp/#", "hcp/v1/pad1/acks")
    assert not topic_matches("hcp/v1/pad1", "hcp/v1/pad1/acks")
    assert topic_matches("*/acks", "hcp/v1/pad1/acks")


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_it_forwards_both_ways_and_counts(broker: Broker, proxy: FaultProxy, protocol: int) -> None:
    through = Client(proxy.port, "through", protocol=protocol)
    direct = Client(broker.port, "direct")
    try:
        connected(through)
        through.subscribe("t/down")
        direct.subscribe("t/up")
        through.c.publish("t/up", b"hello", qos=1)
        direct.c.publish("t/down", b"world", qos=1)
        wait_for(lambda: direct.received("t/up") == [b"hello"], 10, "the upward message")
        wait_for(lambda: through.received("t/down") == [b"world"], 10, "the downward message")
        s = proxy.stats
        assert (s.accepted, s.open, s.peak_open, s.cuts, s.dropped) == (1, 1, 1, 0, 0)
        assert s.publishes_up == 1 and s.publishes_down == 1
        assert s.bytes_up > 0 and s.bytes_down > 0 and s.packets_up >= 3
    finally:
        through.close()
        direct.close()


def test_dropped_acks_never_arrive_and_the_broker_is_answered_for_them(
    broker: Broker, proxy: FaultProxy
) -> None:
    """60 QoS 1 messages dropped (mosquitto keeps only 20 in flight per client): had the proxy
    not acknowledged them for the client, the broker would hold everything after them."""
    through = Client(proxy.port, "through")
    direct = Client(broker.port, "direct")
    try:
        connected(through)
        through.subscribe("d/#")
        proxy.drop_publishes("d/+/acks")
        for i in range(60):
            direct.c.publish("d/pad/acks", f"lost {i}".encode(), qos=1)
        direct.c.publish("d/pad/other", b"kept", qos=1)
        wait_for(lambda: through.received("d/pad/other") == [b"kept"], 10, "the other topic")
        wait_for(lambda: proxy.stats.dropped == 60, 10, "60 drops")
        assert through.received("d/pad/acks") == []
        proxy.stop_dropping()
        direct.c.publish("d/pad/acks", b"after", qos=1)
        wait_for(lambda: through.received("d/pad/acks") == [b"after"], 10, "acks flow again")
        assert proxy.stats.dropped_topics == {"d/pad/acks": 60}
        assert through.disconnects == 0  # the connection itself was never touched
    finally:
        through.close()
        direct.close()


def test_cut_all_closes_every_connection_and_clients_come_back(proxy: FaultProxy) -> None:
    a, b = Client(proxy.port, "a"), Client(proxy.port, "b")
    try:
        connected(a)
        connected(b)
        proxy.cut_all()
        wait_for(lambda: a.disconnects and b.disconnects, 10, "both to see the cut")
        connected(a, 2)
        connected(b, 2)
        s = proxy.stats
        assert s.cuts == 2 and s.accepted == 4 and s.open == 2 and s.peak_open == 2
    finally:
        a.close()
        b.close()


def test_a_publish_cut_in_the_middle_never_reaches_the_broker(
    broker: Broker, proxy: FaultProxy
) -> None:
    through = Client(proxy.port, "through")
    direct = Client(broker.port, "direct")
    try:
        connected(through)
        direct.subscribe("m/#")
        proxy.cut_mid_publish("m/+/ratings")
        through.c.publish("m/pad/other", b"whole", qos=1)  # not matching: forwarded whole
        wait_for(lambda: direct.received("m/pad/other") == [b"whole"], 10, "the other message")
        through.c.publish("m/pad/ratings", b"r" * 1000, qos=1)
        wait_for(lambda: through.disconnects >= 1, 10, "the cut")
        assert proxy.stats.cuts == 1
        connected(through, 2)  # paho resends the unacked QoS 1 message after reconnecting
        wait_for(lambda: direct.received("m/pad/ratings") == [b"r" * 1000], 10, "the resend")
    finally:
        through.close()
        direct.close()


def test_cut_after_n_bytes(broker: Broker, proxy: FaultProxy) -> None:
    through = Client(proxy.port, "through")
    try:
        connected(through)
        before = proxy.stats.bytes_up
        proxy.cut_after(3)
        through.c.publish("n/x", b"y" * 50, qos=0)
        wait_for(lambda: through.disconnects >= 1, 10, "the cut")
        assert proxy.stats.cuts == 1 and proxy.stats.bytes_up > before
    finally:
        through.close()


def test_paused_connections_are_closed_until_resumed(proxy: FaultProxy) -> None:
    proxy.pause()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.settimeout(5)
        assert s.recv(10) == b""  # closed at once, nothing forwarded
    assert proxy.stats.refused == 1 and proxy.stats.accepted == 0
    proxy.resume()
    c = Client(proxy.port, "c")
    try:
        connected(c)
        assert proxy.stats.accepted == 1
    finally:
        c.close()
