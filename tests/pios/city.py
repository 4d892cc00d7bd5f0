"""The city on the host: the shipped mosquitto config (TLS, client certificates, the ACL) on a
free port of the host's 127.0.0.1 (the guest dials it as 10.0.2.2), and a receiver with a
``hub-…`` certificate that stores what arrives and acks it as the city does (store, then ack).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from sync import tlscerts
from tests.support import SupportError
from tests.tlsbroker import CityPki, TlsBroker

GUEST_HOST = "10.0.2.2"  # the host's loopback as the guest's user network shows it


class VmPki(CityPki):
    """The test CA, with a broker certificate for the name the guest dials (10.0.2.2)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.broker = self._issue("broker-vm", server_names=(GUEST_HOST, "127.0.0.1"))

    def sign_pad(self, csr: bytes) -> bytes:
        return tlscerts.sign_csr(csr, self.ca)


class Receiver:
    """Acks every rating and event it reads, after keeping it (``records``: id -> record)."""

    def __init__(self, broker: TlsBroker, pki: VmPki) -> None:
        ident = pki.client("hub-1")
        self.records: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hub-1",
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(ident.ca), certfile=str(ident.cert),
                            keyfile=str(ident.key))
        self.client.on_message = self._message
        self.client.on_connect = self._connect
        self.connected = threading.Event()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self.connected.wait(20):
            raise SupportError("the city receiver could not connect to the TLS broker")

    def _connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe([("hcp/v1/+/ratings", 1), ("hcp/v1/+/events", 1)])
        self.connected.set()

    def _message(self, client, userdata, message) -> None:
        try:
            record = json.loads(message.payload)
        except ValueError:
            return
        rid = record.get("id")
        if not isinstance(rid, str):
            return
        device = message.topic.split("/")[2]
        with self.lock:
            self.records[rid] = dict(record, _topic=message.topic)
        client.publish(f"hcp/v1/{device}/acks", json.dumps({"ids": [rid]}), qos=1)

    def ratings(self) -> dict[str, dict]:
        with self.lock:
            return {k: v for k, v in self.records.items() if v["_topic"].endswith("/ratings")}

    def wait_rating(self, rid: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.ratings().get(rid)
            if found is not None:
                return found
            time.sleep(0.2)
        raise SupportError(f"rating {rid} never reached the city in {timeout:.0f} s")

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class City:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.pki = VmPki(folder)
        self.broker = TlsBroker(self.pki)
        self.broker.start()
        self.receiver = Receiver(self.broker, self.pki)

    def stop(self) -> None:
        self.receiver.stop()
        self.broker.remove()
