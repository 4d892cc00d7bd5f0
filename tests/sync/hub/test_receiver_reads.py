"""The receiver's reads (issue 16 "Speed"): paho's packets cut from one ``recv`` of the socket
(:class:`sync.hub.receiver.ReadBuffer`) and a burst's PUBACKs written as one packet.  Over a
real socket pair: the same bytes in the same order whatever sizes paho asks, the end of the
stream and an empty socket told as paho expects; on a real mosquitto that lets few messages
in flight: every message of a long burst acked to the broker (else it stops sending)."""

from __future__ import annotations

import socket
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sync.hub.db import open_db
from sync.hub.receiver import READ_BYTES, ReadBuffer, Receiver, cork, pubacks
from tests.support import Broker, stop_threads, wait_for
from tests.sync.hub.helpers import chain, make_key, payload, topic


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def test_the_buffer_hands_out_the_socket_bytes_in_order_whatever_the_sizes() -> None:
    ours, peer = _pair()
    with ours, peer:
        data = bytes(range(256)) * 40  # 10,240 bytes, several packets' worth
        peer.sendall(data)
        buffer = ReadBuffer(ours.recv)
        got = b""
        for size in [1, 1, 3, 500, 1, 2, 7000, 9999]:
            got += buffer.recv(size)
        assert got == data
        assert not buffer.pending
        with pytest.raises(BlockingIOError):  # empty: paho takes it for "try again later"
            buffer.recv(1)


def test_the_buffer_reads_the_socket_once_for_many_small_reads() -> None:
    ours, peer = _pair()
    calls: list[int] = []

    def recv(size: int) -> bytes:
        calls.append(size)
        return ours.recv(size)

    with ours, peer:
        peer.sendall(b"\x30\x05abcde" * 100)  # 100 tiny PUBLISH-like packets
        buffer = ReadBuffer(recv)
        for _ in range(100):
            assert buffer.recv(1) == b"\x30" and buffer.recv(1) == b"\x05"
            assert buffer.recv(5) == b"abcde"
        assert calls == [READ_BYTES]
        assert buffer.pending is False


def test_pending_bytes_are_told_and_the_end_of_the_stream_is_empty() -> None:
    ours, peer = _pair()
    with ours:
        peer.sendall(b"xyz")
        peer.close()
        buffer = ReadBuffer(ours.recv)
        assert buffer.recv(1) == b"x"
        assert buffer.pending  # select on the socket would not see these two bytes
        assert buffer.recv(10) == b"yz"
        assert buffer.recv(1) == b""  # the peer closed: paho takes it for a lost connection


def test_install_replaces_the_clients_socket_reads() -> None:
    class Client:
        def _sock_recv(self, size: int) -> bytes:
            return b"ab"

    client = Client()
    buffer = ReadBuffer.install(client)
    assert buffer is not None and client._sock_recv == buffer.recv
    assert client._sock_recv(1) == b"a" and buffer.pending
    assert ReadBuffer.install(object()) is None  # a paho without it reads as it did


def test_corked_writes_leave_together_when_released() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        out = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        with out, conn:
            out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cork(out, True)
            for _ in range(50):
                out.send(b"\x40\x02\x00\x01")  # PUBACKs, one send each, as paho writes them
            assert out.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 1
            cork(out, False)
            assert out.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0
            got = b""
            conn.settimeout(5)
            while len(got) < 200:
                got += conn.recv(4096)
            assert got == b"\x40\x02\x00\x01" * 50


def test_pubacks_are_the_packets_paho_writes() -> None:
    expected = b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02" + b"\x40\x02\xff\xff"
    assert pubacks([1, 258, 65535]) == expected


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_long_burst_is_all_acked_to_a_broker_that_lets_ten_in_flight(
    tmp_path: Path, protocol: str
) -> None:
    """The broker sends at most 10 unacked messages: 600 records arrive only if the receiver
    PUBACKs every one (its PUBACKs now leave together at the end of each burst read)."""
    broker = Broker(tmp_path)
    broker.conf.write_text(broker.conf.read_text() + "max_inflight_messages 10\n"
                           "max_queued_messages 10000\n")  # fmt: skip
    broker.start()
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    devices = {f"pad-{i}": make_key(tmp_path, f"pad-{i}") for i in range(3)}
    with open_db(url) as db:
        for device, key in devices.items():
            db.register(device, key.public.text)
    receiver = Receiver(url, [f"mqtt://{broker.host}:{broker.port}"], client_id="hub-burst",
                        protocol=protocol)  # fmt: skip
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="burst-pub", protocol=mqtt.MQTTv5)
    try:
        receiver.start()
        assert receiver.wait_ready(15), receiver.last_error
        pub.max_inflight_messages_set(0)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        chains = {d: chain(k, d, 200) for d, k in devices.items()}
        for records in zip(*chains.values(), strict=True):
            for record in records:
                pub.publish(topic(record["device_id"]), payload(record), qos=1)
        with open_db(url) as db:
            wait_for(lambda: db.count("ratings") == 600, 60, "all 600 stored")
        assert receiver.stats["parked"] == 0 and receiver.stats["dead"] == 0
        assert receiver.stats["connects"] == 1
    finally:
        pub.loop_stop()
        pub.disconnect()
        stop_threads([receiver], 10)
        broker.stop()
