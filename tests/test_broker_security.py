"""Only the device that made it (issue 8): the shipped broker config and ACL, on a real mosquitto
with real certificates, refuse every cross-device attempt that used to work on the open broker.

The broker is ``config/mosquitto/mosquitto.conf`` + ``acl`` as shipped (:mod:`tests.tlsbroker`
changes only paths, port and log file).  Pads ``pad-a`` and ``pad-b`` and receiver ``hub-1`` hold
certificates of the city's CA.

Non-delivery is never waited out: after the forbidden message, a marker goes to the same
subscriber on a topic it may read, from a publisher whose earlier message the broker has
certainly handled (its PUBACK came back).  mosquitto handles one client's packets in order
and sends each subscriber its messages in order, so a forbidden message that was delivered
would have arrived before the marker.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from evaluator.config import check_config, load_config
from evaluator.devices import from_config
from sync.store import Store
from tests.conftest import require_binary
from tests.support import free_port, wait_for
from tests.sync.test_mqtt import full_content
from tests.tlsbroker import CityPki, Identity, TlsBroker

PREFIX = "hcp/v1"
TIMEOUT = 10.0
NOT_AUTHORIZED = 0x87
#: An MQTT 3.1.1 CONNECT, clean session, keepalive 60, client id "x".
CONNECT = bytes.fromhex("100d00044d5154540402003c000178")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CityPki:
    return CityPki(tmp_path_factory.mktemp("city-pki"))


@pytest.fixture
def city(pki: CityPki) -> Iterator[TlsBroker]:
    require_binary("mosquitto")
    broker = TlsBroker(pki)
    broker.start()
    yield broker
    broker.remove()


class Peer:
    """A paho MQTT client with a certificate, recording what the broker says and sends it."""

    def __init__(
        self,
        city: TlsBroker,
        who: Identity | None,
        *,
        client_id: str = "",
        protocol: int = paho.MQTTv5,
        ca: Path | None = None,
    ) -> None:
        self.city = city
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol)  # fmt: skip
        self.client.tls_set(
            ca_certs=str(ca or city.pki.ca.cert_path),
            certfile=str(who.cert) if who else None,
            keyfile=str(who.key) if who else None,
        )
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.pubacks: dict[int, ReasonCode] = {}
        self.connects = 0
        self.disconnects = 0
        self.lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if not reason.is_failure:
            with self.lock:
                self.connects += 1

    def _on_disconnect(self, *_args: Any) -> None:
        with self.lock:
            self.disconnects += 1

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        with self.lock:
            self.subacks[mid] = list(codes)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self.lock:
            self.pubacks[mid] = reason

    def connect(self) -> Peer:
        self.client.connect(self.city.host, self.city.port, keepalive=60)
        self.client.loop_start()
        wait_for(lambda: self.connects > 0, TIMEOUT, "the broker to accept the connection")
        return self

    def subscribe(self, topic: str) -> int:
        """The SUBACK's reason code (0x01 granted QoS 1, 0x80/0x87 refused)."""
        _rc, mid = self.client.subscribe(topic, qos=1)
        wait_for(lambda: mid in self.subacks, TIMEOUT, f"the SUBACK for {topic}")
        return int(self.subacks[mid][0].value)

    def publish(self, topic: str, payload: bytes) -> int:
        """The PUBACK's reason code (MQTT 5: 0 delivered, 0x87 not authorized)."""
        info = self.client.publish(topic, payload, qos=1)
        wait_for(lambda: info.mid in self.pubacks, TIMEOUT, f"the PUBACK for {topic}")
        return int(self.pubacks[info.mid].value)

    def received(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including (topic, payload), waiting for it."""
        wait_for(lambda: (topic, payload) in self.messages, TIMEOUT, f"{payload!r} on {topic}")
        with self.lock:
            return self.messages[: self.messages.index((topic, payload)) + 1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers(city: TlsBroker) -> Iterator[dict[str, Peer]]:
    """pad-a, pad-b and hub-1 connected (pads with the client ids the pad uses), hub-1 reading
    every pad's ratings through a shared subscription, each pad its own acks."""
    pads = {
        name: Peer(city, city.pki.client(name), client_id=f"evaluator-{name}").connect()
        for name in ("pad-a", "pad-b")
    }
    hub = Peer(city, city.pki.client("hub-1"), client_id="hub-1").connect()
    assert hub.subscribe(f"$share/hub/{PREFIX}/+/ratings") == 1
    for name, pad in pads.items():
        assert pad.subscribe(f"{PREFIX}/{name}/acks") == 1
    made = {**pads, "hub-1": hub}
    yield made
    for peer in made.values():
        peer.close()


def test_a_pad_publishes_and_the_receiver_acks_it_through_a_shared_subscription(
    peers: dict[str, Peer],
) -> None:
    pad, hub = peers["pad-a"], peers["hub-1"]
    assert pad.publish(f"{PREFIX}/pad-a/ratings", b"rating 1") == 0
    assert hub.received(f"{PREFIX}/pad-a/ratings", b"rating 1")
    assert hub.publish(f"{PREFIX}/pad-a/acks", b'{"ids":["1"]}') == 0
    assert pad.received(f"{PREFIX}/pad-a/acks", b'{"ids":["1"]}')


def test_a_pad_cannot_publish_as_another_pad(peers: dict[str, Peer]) -> None:
    intruder, hub = peers["pad-b"], peers["hub-1"]
    assert intruder.publish(f"{PREFIX}/pad-a/ratings", b"forged") == NOT_AUTHORIZED
    assert peers["pad-a"].publish(f"{PREFIX}/pad-a/ratings", b"marker") == 0
    assert hub.received(f"{PREFIX}/pad-a/ratings", b"marker") == [
        (f"{PREFIX}/pad-a/ratings", b"marker")
    ]


def test_a_pad_cannot_ack_another_pads_ratings(peers: dict[str, Peer]) -> None:
    intruder, pad, hub = peers["pad-b"], peers["pad-a"], peers["hub-1"]
    assert intruder.publish(f"{PREFIX}/pad-a/acks", b'{"ids":["x"]}') == NOT_AUTHORIZED
    assert hub.publish(f"{PREFIX}/pad-a/acks", b"marker") == 0
    assert pad.received(f"{PREFIX}/pad-a/acks", b"marker") == [(f"{PREFIX}/pad-a/acks", b"marker")]


def test_a_pad_reads_nothing_of_another_pad(peers: dict[str, Peer]) -> None:
    intruder, pad, hub = peers["pad-b"], peers["pad-a"], peers["hub-1"]
    # mosquitto 2.0 grants a subscription and then checks every message against the ACL at
    # delivery (newer versions refuse the SUBACK): either way nothing may arrive.
    for topic in (f"{PREFIX}/+/ratings", f"{PREFIX}/pad-a/ratings", f"{PREFIX}/pad-a/acks",
                  f"{PREFIX}/pad-a/commands", f"{PREFIX}/#", "#",
                  f"$share/x/{PREFIX}/+/ratings"):  # fmt: skip
        assert intruder.subscribe(topic) in (1, 0x80, NOT_AUTHORIZED), topic
    assert pad.publish(f"{PREFIX}/pad-a/ratings", b"rating") == 0
    assert hub.received(f"{PREFIX}/pad-a/ratings", b"rating")
    assert hub.publish(f"{PREFIX}/pad-a/acks", b"ack") == 0
    assert hub.publish(f"{PREFIX}/pad-a/commands", b"command") == 0
    assert pad.received(f"{PREFIX}/pad-a/acks", b"ack")
    assert hub.publish(f"{PREFIX}/pad-b/acks", b"marker") == 0
    assert intruder.received(f"{PREFIX}/pad-b/acks", b"marker") == [
        (f"{PREFIX}/pad-b/acks", b"marker")
    ]


def test_a_pad_writes_only_its_own_topics_and_reads_only_its_acks_and_commands(
    peers: dict[str, Peer],
) -> None:
    pad, hub = peers["pad-a"], peers["hub-1"]
    for topic in ("events", "status", "commands/replies"):
        assert hub.subscribe(f"$share/hub/{PREFIX}/+/{topic}") == 1
        assert pad.publish(f"{PREFIX}/pad-a/{topic}", topic.encode()) == 0
        assert hub.received(f"{PREFIX}/pad-a/{topic}", topic.encode())
    for topic in ("acks", "commands", "ratings/x", "selftest/x", "anything"):
        assert pad.publish(f"{PREFIX}/pad-a/{topic}", b"no") == NOT_AUTHORIZED, topic
    for topic in ("_hub/deadletter", "other", "$SYS/broker/uptime"):
        assert pad.publish(f"{PREFIX}/{topic}", b"no") == NOT_AUTHORIZED, topic
    assert pad.subscribe(f"{PREFIX}/pad-a/commands") == 1
    assert hub.publish(f"{PREFIX}/pad-a/commands", b"cmd") == 0
    assert pad.received(f"{PREFIX}/pad-a/commands", b"cmd")
    # the receiver writes acks, commands and dead letters, and may not pose as a pad
    assert hub.subscribe(f"{PREFIX}/_hub/deadletter") == 1
    assert hub.publish(f"{PREFIX}/_hub/deadletter", b"dead") == 0
    assert hub.received(f"{PREFIX}/_hub/deadletter", b"dead")
    assert hub.publish(f"{PREFIX}/pad-a/ratings", b"forged by a receiver") == NOT_AUTHORIZED


def test_no_one_takes_a_pads_client_id(city: TlsBroker, peers: dict[str, Peer]) -> None:
    pad, hub = peers["pad-a"], peers["hub-1"]
    # The intruders hold pad-b's certificate, so the broker names each of them pad-b
    # (use_username_as_clientid): the fixture's own pad-b would be replaced by each and, its
    # paho loop reconnecting, replace the intruder in turn while it waits for a SUBACK.
    peers["pad-b"].close()
    for round_ in range(3):
        for client_id in ("evaluator-pad-a", "pad-a"):
            intruder = Peer(city, city.pki.client("pad-b"), client_id=client_id).connect()
            try:
                # pad-a still answers on its first connection (and the broker has handled the
                # intruder's CONNECT, which came before this)
                marker = f"still here {round_} {client_id}".encode()
                assert hub.publish(f"{PREFIX}/pad-a/acks", marker) == 0
                assert pad.received(f"{PREFIX}/pad-a/acks", marker)
                # the intruder is pad-b whatever id it asked for: it reads pad-b's acks
                assert intruder.subscribe(f"{PREFIX}/pad-b/acks") == 1
            finally:
                # closed before the next one, which would replace it (the same pad-b)
                intruder.close()
    assert (pad.connects, pad.disconnects) == (1, 0)
    # The check can fail: pad-a's own certificate does take pad-a's place (one pad, one link).
    twin = Peer(city, city.pki.client("pad-a"), client_id="anything").connect()
    wait_for(lambda: pad.disconnects == 1, TIMEOUT, "the second pad-a to replace the first")
    twin.close()


def _tls_exchange(city: TlsBroker, context: ssl.SSLContext) -> bytes:
    """What the broker answers a CONNECT with over TLS ("" when it hangs up), or the TLS error."""
    with socket.create_connection((city.host, city.port), timeout=TIMEOUT) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(CONNECT)
                return tls.recv(4)
        except (ssl.SSLError, ConnectionError) as exc:
            return f"TLS refused: {exc}".encode()


def test_a_client_without_a_city_certificate_is_refused_at_tls(
    city: TlsBroker, tmp_path: Path
) -> None:
    def context(cert: Identity | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(city.pki.ca.cert_path))
        if cert is not None:
            ctx.load_cert_chain(cert.cert, cert.key)
        return ctx

    # the check can fail: a city certificate gets a CONNACK (0x20) and a clean accept (0)
    assert _tls_exchange(city, context(city.pki.client("pad-a"))) == bytes([0x20, 2, 0, 0])
    assert _tls_exchange(city, context(None)).startswith(b"TLS refused")
    other = CityPki(tmp_path)  # another CA's certificate for the same name
    assert _tls_exchange(city, context(other.client("pad-a"))).startswith(b"TLS refused")
    # the broker's own certificate is checked by the pad too: another CA's broker is refused
    impostor_check = ssl.create_default_context(cafile=str(other.ca.cert_path))
    assert b"CERTIFICATE_VERIFY_FAILED" in _tls_exchange(city, impostor_check)


def test_no_anonymous_plain_tcp(city: TlsBroker) -> None:
    assert city.listening_ports() == {city.port}  # no 1883, no second listener
    with socket.create_connection((city.host, city.port), timeout=TIMEOUT) as raw:
        raw.sendall(CONNECT)  # plain MQTT on the TLS port: never a CONNACK
        try:
            answer = raw.recv(4)
        except ConnectionError:
            answer = b""
    assert not answer.startswith(b"\x20"), answer


def test_a_pad_configured_for_the_city_drains_its_store_over_mqtts(
    city: TlsBroker, tmp_path: Path
) -> None:
    """The whole chain: ``[mqtt] urls``/``tls_*`` → config check → the SyncWorker the pad
    runs (evaluator.devices) → TLS with pad-a's certificate → ACL → a receiver's shared
    subscription → its acks → the pad's outbox empty."""
    ident = city.pki.client("pad-a")
    tls = tmp_path / "tls"
    tls.mkdir(mode=0o700)
    for source, name in ((ident.ca, "ca.crt"), (ident.cert, "device.crt"),
                         (ident.key, "device.key")):  # fmt: skip
        shutil.copy2(source, tls / name)
    site = tmp_path / "evaluator.toml"
    site.write_text(
        f'[device]\nid = "pad-a"\n[storage]\npath = "ratings.db"\n[mqtt]\n'
        # a first broker that refuses the connection: the next URL is tried
        f'urls = ["mqtts://127.0.0.1:{free_port()}", '
        f'"mqtts://127.0.0.1:{city.port}"]\n'
        'tls_ca = "tls/ca.crt"\ntls_cert = "tls/device.crt"\ntls_key = "tls/device.key"\n',
        encoding="utf-8",
    )
    assert check_config([site]) == []
    config = load_config([site])
    store = Store(config.storage.path, device_id="pad-a")
    ids = [store.append_rating(full_content(f"S-{i}"))["id"] for i in range(20)]
    hub = Peer(city, city.pki.client("hub-1"), client_id="hub-1").connect()
    received: list[str] = []

    def ack(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        record = json.loads(message.payload)
        received.append(record["id"])
        acks = f"{PREFIX}/{record['device_id']}/acks"
        hub.client.publish(acks, json.dumps({"ids": [record["id"]]}), qos=1)

    hub.client.on_message = ack
    assert hub.subscribe(f"$share/hub/{PREFIX}/+/ratings") == 1
    worker = from_config(config).sync
    worker.start()
    try:
        wait_for(lambda: store.outbox_size() == 0, 30, "the outbox to empty over mqtts")
    finally:
        worker.stop()
        worker.join(10)
        hub.close()
        store.close()
    assert sorted(set(received)) == sorted(ids)


def test_a_revoked_pad_is_refused_while_the_others_keep_delivering(tmp_path: Path) -> None:
    """Issue 14: `evaluator tls revoke` writes the CA's crl.pem, the shipped conf reads it
    (``crlfile``); copied to the broker and taken in with SIGHUP (``systemctl reload``), the
    revoked pads' new connections fail the handshake, the other pads go on delivering.  (A
    handshake probe uses a name no live peer has: the broker would end that peer's link.)"""
    import os
    import signal

    from evaluator.cli import main

    require_binary("mosquitto")
    pki = CityPki(tmp_path / "pki")
    broker = TlsBroker(pki)  # the shipped conf with `tls ca`'s empty CRL: everyone gets in
    broker.start()
    made: list[Peer] = []

    def peer(name: str) -> Peer:
        made.append(Peer(broker, pki.client(name), client_id=f"evaluator-{name}").connect())
        return made[-1]

    def handshake(name: str) -> bytes:
        ctx = ssl.create_default_context(cafile=str(pki.ca.cert_path))
        ident = pki.client(name)
        ctx.load_cert_chain(ident.cert, ident.key)
        return _tls_exchange(broker, ctx)

    accepted = bytes([0x20, 2, 0, 0])
    try:
        hub = Peer(broker, pki.client("hub-1"), client_id="hub-1").connect()
        made.append(hub)
        assert hub.subscribe(f"$share/hub/{PREFIX}/+/ratings") == 1
        kept = peer("pad-b")
        assert handshake("pad-gone") == accepted  # the check can fail
        pki.client("pad-lost")
        for name in ("pad-gone", "pad-lost"):
            assert main(["tls", "revoke", name, "--ca", str(pki.ca.folder)]) == 0
        # the CRL is read when mosquitto starts or reloads: until then a revoked pad gets in
        assert handshake("pad-gone") == accepted
        lost = peer("pad-lost")
        assert lost.publish(f"{PREFIX}/pad-lost/ratings", b"before") == 0
        hub.received(f"{PREFIX}/pad-lost/ratings", b"before")

        broker.install_crl()
        assert broker.process is not None
        os.kill(broker.process.pid, signal.SIGHUP)
        wait_for(lambda: handshake("pad-gone").startswith(b"TLS refused"), TIMEOUT,
                 "the reloaded broker to refuse the revoked certificate")  # fmt: skip
        wait_for(lambda: "certificate verify failed" in broker.logs(), TIMEOUT,
                 "the broker to log why it refused")  # its log line may come after the refusal
        # every other pad, the one connected and a new one, keeps delivering
        assert handshake("pad-d") == accepted
        assert kept.publish(f"{PREFIX}/pad-b/ratings", b"after") == 0
        hub.received(f"{PREFIX}/pad-b/ratings", b"after")
        fresh = peer("pad-c")
        assert fresh.publish(f"{PREFIX}/pad-c/ratings", b"new pad") == 0
        hub.received(f"{PREFIX}/pad-c/ratings", b"new pad")
        # measured: a reload does not end a link made before it; a restart does, and the
        # revoked pad cannot come back (docs/hub.md: reload, then restart if it is connected)
        assert (lost.connects, lost.disconnects) == (1, 0)
        assert lost.publish(f"{PREFIX}/pad-lost/ratings", b"still in") == 0
        broker.stop()
        broker.start()
        assert handshake("pad-lost").startswith(b"TLS refused")
        assert handshake("pad-d") == accepted
        assert lost.connects == 1  # its reconnects all fail
    finally:
        for p in made:
            p.close()
        broker.remove()
