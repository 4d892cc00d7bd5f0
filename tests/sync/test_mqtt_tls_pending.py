"""Acks that arrive in one TLS record are all applied at once.

TLS decrypts a whole record at a time: when the broker puts two ack messages in one record, the
second sits decrypted inside the ``ssl`` socket, where ``select`` on the TCP socket cannot see
it.  The worker must read what the TLS layer already holds before it waits again, or that ack
waits for the next event on the socket (a keepalive, the next rating: seconds or minutes), and
its rating meanwhile for a resend.  A minimal MQTT 3.1.1 broker over TLS, written here, sends the
two acks in one ``sendall`` (one record); mosquitto writes a record per packet, other brokers
(EMQX) coalesce.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.store import Store
from tests.sync.test_mqtt import full_content, wait_until
from tests.sync.workers import worker_factory
from tests.tlsbroker import CityPki

DEVICE = "pad-1"


def _read_packet(conn: ssl.SSLSocket) -> tuple[int, bytes]:
    """One MQTT packet: (type nibble and flags byte, body)."""
    head = conn.recv(1)
    if not head:
        raise EOFError
    length, shift = 0, 0
    while True:
        byte = conn.recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return head[0], body


def _publish(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH (remaining length < 128 here)."""
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload
    assert len(body) < 128
    return bytes([0x30, len(body)]) + body


class CoalescingBroker(threading.Thread):
    """Answers CONNECT, SUBSCRIBE and QoS 1 PUBLISH; once two ratings came, sends both acks in
    ONE write (one TLS record)."""

    def __init__(self, pki: CityPki) -> None:
        super().__init__(daemon=True)
        self.host = "localhost"
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki.broker.cert, pki.broker.key)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.ratings: list[str] = []
        self.sent_acks = threading.Event()
        self.stopping = False

    def run(self) -> None:
        self.server.settimeout(0.2)
        while not self.stopping:
            try:
                raw, _ = self.server.accept()
            except OSError:
                continue
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    self._serve(conn)
            except (OSError, EOFError, ssl.SSLError):
                continue

    def _serve(self, conn: ssl.SSLSocket) -> None:
        conn.settimeout(0.5)
        while not self.stopping:
            try:
                kind, body = _read_packet(conn)
            except TimeoutError:
                continue
            if kind >> 4 == 1:  # CONNECT
                conn.sendall(b"\x20\x02\x00\x00")
            elif kind >> 4 == 8:  # SUBSCRIBE: grant QoS 1 to each topic
                pid, topics, at = body[:2], 0, 2
                while at < len(body):
                    at += 2 + int.from_bytes(body[at : at + 2], "big") + 1
                    topics += 1
                conn.sendall(bytes([0x90, 2 + topics]) + pid + b"\x01" * topics)
            elif kind >> 4 == 12:  # PINGREQ
                conn.sendall(b"\xd0\x00")
            elif kind >> 4 == 3:  # PUBLISH
                size = int.from_bytes(body[:2], "big")
                topic = body[2 : 2 + size].decode()
                rest = body[2 + size :]
                if (kind >> 1) & 3:  # QoS 1: a packet id, then PUBACK
                    conn.sendall(b"\x40\x02" + rest[:2])
                    rest = rest[2:]
                if topic.endswith("/ratings"):
                    rid = json.loads(rest)["id"]
                    if rid not in self.ratings:
                        self.ratings.append(rid)
                    if len(self.ratings) == 2 and not self.sent_acks.is_set():
                        acks = f"hcp/v1/{DEVICE}/acks"
                        conn.sendall(b"".join(_publish(acks, json.dumps({"ids": [r]}).encode())
                                              for r in self.ratings))  # fmt: skip
                        self.sent_acks.set()
            elif kind >> 4 == 14:  # DISCONNECT
                return

    def stop(self) -> None:
        self.stopping = True
        self.join(5)
        self.server.close()


@pytest.fixture
def coalescing(tmp_path: Path) -> Iterator[tuple[CityPki, CoalescingBroker]]:
    pki = CityPki(tmp_path / "pki")
    broker = CoalescingBroker(pki)
    broker.start()
    yield pki, broker
    broker.stop()


def test_two_acks_in_one_tls_record_are_both_applied_at_once(
    tmp_path: Path, coalescing: tuple[CityPki, CoalescingBroker]
) -> None:
    pki, broker = coalescing
    path = tmp_path / "ratings.db"
    with Store(path, device_id=DEVICE) as store:
        store.append_rating(full_content("S-1"))
        store.append_rating(full_content("S-2"))
    client = pki.client(DEVICE)
    with worker_factory(broker, path, DEVICE) as make, Store(path, device_id=DEVICE) as store:
        make(brokers=[f"mqtts://localhost:{broker.port}"], protocol="3.1.1",
             tls_ca=str(client.ca), tls_cert=str(client.cert), tls_key=str(client.key),
             poll_interval=60.0, keepalive=120.0, resend_after=60.0)  # fmt: skip
        assert broker.sent_acks.wait(20), f"the ratings did not both come: {broker.ratings}"
        # Nothing else happens on the socket now: both acks must be applied from that record.
        wait_until(lambda: store.outbox_size() == 0, 3, "both acks applied")
