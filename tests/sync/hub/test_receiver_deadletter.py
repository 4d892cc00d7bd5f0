"""Dead letters that cannot knock the receiver off the broker (issue 16).

A refused payload was republished whole as a dead letter: 64 KiB of ``\\x01`` became 393,406
bytes of JSON, over the shipped broker's ``max_packet_size``, and the broker dropped the
receiver at each one.  Here: the shipped mosquitto config (TLS, client certificates, the ACL,
``max_packet_size``) on a real mosquitto, a real pad's ``SyncWorker`` with its certificate, the
receiver in-process with a ``hub-…`` certificate, and a stolen pad's certificate publishing the
largest junk the broker takes, of every kind, on its own topic, while the honest pad rates.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.hub.db import open_db
from sync.hub.ingest import MAX_PAYLOAD, Dead
from sync.hub.receiver import DEAD_LETTER_MAX, DeadLetters, Receiver, summary
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store
from tests.conftest import require_binary
from tests.support import stop_threads, wait_for
from tests.sync.hub.helpers import PREFIX, make_key, rating_content
from tests.test_broker_security import Peer
from tests.tlsbroker import CityPki, TlsBroker

HONEST = "pad-a"
THIEF = "pad-b"
#: What the broker takes (the shipped max_packet_size) and the receiver refuses: every kind of
#: content a JSON or base64 excerpt could blow up, at the receiver's largest payload and over it.
SHIPPED_MAX_PACKET = int(
    re.search(r"^max_packet_size (\d+)$", (Path(__file__).parents[3] / "config" / "mosquitto"
                                           / "mosquitto.conf").read_text(), re.M).group(1)  # type: ignore[union-attr]
)  # fmt: skip
JUNK = [
    b"\x01" * MAX_PAYLOAD,  # \u0001: 6 bytes of JSON each
    b'"' * MAX_PAYLOAD,  # \": 2 each
    b"\xff" * MAX_PAYLOAD,  # not UTF-8: base64
    b"\x00" * MAX_PAYLOAD,  # a NUL: base64
    "\u2028".encode() * (MAX_PAYLOAD // 3),
    b"{" * MAX_PAYLOAD,  # nested
    b"\x01" * (SHIPPED_MAX_PACKET - 1024),  # over the receiver's limit, within the broker's
]


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


def _tls(city: TlsBroker, name: str) -> dict[str, str]:
    ident = city.pki.client(name)
    return {"tls_ca": str(ident.ca), "tls_cert": str(ident.cert), "tls_key": str(ident.key)}


def test_junk_on_a_stolen_pads_topic_never_knocks_the_receiver_off(
    city: TlsBroker, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    key: DeviceKey = make_key(tmp_path, HONEST)
    with open_db(url) as db:
        db.register(HONEST, key.public.text)
        db.register(THIEF, make_key(tmp_path, THIEF).public.text)
    broker = f"mqtts://127.0.0.1:{city.port}"
    receiver = Receiver(url, [broker], client_id="hub-1", **_tls(city, "hub-1"))
    receiver.start()
    store = Store(tmp_path / "pad.db", device_id=HONEST, signer=key)
    pad = SyncWorker(store_path=store.path, device_id=HONEST, host="127.0.0.1", brokers=[broker],
                     reconnect_spread=0.0, **_tls(city, HONEST))  # fmt: skip
    watcher = Peer(city, city.pki.client("hub-2"), client_id="hub-2").connect()
    thief = Peer(city, city.pki.client(THIEF), client_id=THIEF).connect()
    dead_topic = f"{PREFIX}/_hub/deadletter"
    stop = threading.Event()
    sent: list[bytes] = []
    latencies: list[float] = []

    def attack() -> None:  # one junk message every 2 s (each one different: no repeat filter)
        n = 0
        while not stop.wait(2.0 if n else 0.0):
            body = JUNK[n % len(JUNK)][:-8] + f"{n:08d}".encode()
            thief.client.publish(f"{PREFIX}/{THIEF}/ratings", body, qos=1)
            sent.append(body)
            n += 1

    attacker = threading.Thread(target=attack, daemon=True)
    try:
        assert receiver.wait_ready(20), receiver.last_error
        assert watcher.subscribe(dead_topic) == 1
        pad.start()
        attacker.start()
        with open_db(url) as db:
            for i in range(2 * len(JUNK)):  # each kind twice; a rating right after each one
                wait_for(lambda n=i: len(sent) > n, 10, f"junk {i + 1} sent")
                store.append_rating(rating_content(f"S{i:04d}"))
                pad.notify()
                rated = time.monotonic()
                wait_for(
                    lambda n=i + 1: db.count("ratings") == n, 10, f"rating {i + 1} at the city"
                )
                latencies.append(time.monotonic() - rated)
            wait_for(lambda: store.outbox_size() == 0, 10, "the pad's outbox empty")
            assert db.records(HONEST) == list(store.records())
        stop.set()
        attacker.join(5)
        wait_for(lambda: receiver.stats["dead"] >= len(sent), 20, "every junk refused")
        stats = receiver.stats
        print(f"{len(latencies)} ratings under attack, stored within {max(latencies):.2f} s "
              f"(median {sorted(latencies)[len(latencies) // 2]:.2f} s); {len(sent)} junk, "
              f"{stats['connects']} connection(s), {stats['dead_published']} dead letters "
              f"published, {stats['dead_suppressed']} suppressed")  # fmt: skip
        assert stats["connects"] == 1, f"the receiver was knocked off {stats['connects'] - 1}x"
        assert len(sent) >= len(JUNK)
        wait_for(lambda: len(watcher.messages) >= stats["dead_published"], 10, "dead letters")
        letters = [json.loads(p) for t, p in watcher.messages if t == dead_topic]
        assert len(letters) == stats["dead_published"] >= 1
        assert stats["dead_published"] + stats["dead_suppressed"] == stats["dead"]
        assert max(len(p) for _, p in watcher.messages) <= DEAD_LETTER_MAX
        by_hash = {hashlib.sha256(b).hexdigest(): b for b in sent}
        for letter in letters:
            junk = by_hash[letter["payload_sha256"]]
            assert letter["payload_bytes"] == len(junk) and letter["truncated"]
            assert letter["device_id"] == THIEF and letter["count"] >= 1 and letter["cause"]
    finally:
        stop.set()
        stop_threads([pad, receiver], 10)
        for peer in (watcher, thief):
            peer.close()
        store.close()


@settings(max_examples=60, deadline=None)
@given(
    device=st.text(max_size=300),
    topic=st.text(max_size=3000),
    reason=st.text(max_size=3000),
    byte=st.binary(min_size=1, max_size=4),
    size=st.integers(0, 300_000),
    limit=st.integers(1024, DEAD_LETTER_MAX),
)
def test_a_dead_letter_is_never_over_its_limit_and_says_what_was_refused(
    device: str, topic: str, reason: str, byte: bytes, size: int, limit: int
) -> None:
    payload = (byte * (size // len(byte) + 1))[:size]
    dead = Dead(device, topic, reason, payload, "k", "2026-05-29T04:27:00.000+00:00")
    letter = summary(dead, cause="c", count=3, suppressed=2, limit=limit)
    assert len(letter) <= limit
    body = json.loads(letter)
    assert body["payload_bytes"] == size
    assert body["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert body["truncated"] == (size > 256) or body["payload"] == ""
    assert (body["count"], body["suppressed"], body["cause"]) == (3, 2, "c")


def test_dead_letters_are_counted_per_device_and_cause_and_rate_limited() -> None:
    now = [0.0]
    letters = DeadLetters(burst=3, every=10.0, clock=lambda: now[0])
    junk = Dead(THIEF, f"{PREFIX}/{THIEF}/ratings", "not JSON: Expecting value: line 1", b"x", "")
    forged = Dead(THIEF, f"{PREFIX}/{THIEF}/ratings", "device_id 'pad-a' is not the topic's "
                  "device", b"{}", "")  # fmt: skip
    honest = Dead(HONEST, f"{PREFIX}/{HONEST}/ratings", "not JSON: x", b"y", "")
    out = [letters.offer(d) for d in (junk, forged, junk, junk, junk, honest)]
    assert [o is not None for o in out] == [True, True, True, False, False, True]
    assert letters.counts == {(THIEF, "not JSON"): 4,
                              (THIEF, "device_id '…' is not the topic's device"): 1,
                              (HONEST, "not JSON"): 1}  # fmt: skip
    now[0] = 10.0  # a token back: the next one says how many were not published
    body = json.loads(letters.offer(junk) or b"")
    assert (body["count"], body["suppressed"]) == (5, 2) and letters.suppressed == 2
