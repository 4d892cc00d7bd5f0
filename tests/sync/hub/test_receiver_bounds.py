"""The real ``evaluator hub run`` on a real mosquitto against a stolen pad with a valid key
(issue 16): unique junk cannot grow the database or the receiver without bound, a forged seq
parked beside the genuine one never hides it (in either order), a pad's parking is capped, and a
pad that floods is throttled and flagged while an honest pad's ratings still get through."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from evaluator.rules.records import new_record_id, seal
from sync.hub.db import HubDB, open_db
from sync.hub.receiver import FLOOD_LANE, Throttle
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store
from tests.conftest import Broker
from tests.support import REPO, stop_process, wait_for
from tests.sync.hub.helpers import PREFIX, chain, make_key, payload, rating_content, topic

HONEST, THIEF = "440500-hall1-w14", "440500-hall1-w13"
#: What the receiver may grow by under a junk flood (database file with its WAL, and RSS).
DB_GROWTH_MAX = 3 * 1024 * 1024
RSS_MAX_KB = 200 * 1024
#: Messages a second the flooding pad sends: 5x the receiver's budget for one pad, below what
#: the receiver can read (beyond that only the broker can limit a client: docs/hub.md).
FLOOD_PACE = 2500


class Hub:
    """``evaluator hub run`` as a process of its own (its RSS is its own), and its database."""

    def __init__(self, work: Path, broker: Broker, *options: str) -> None:
        self.path = work / "hub.db"
        self.url = f"sqlite:///{self.path}"
        self.db = open_db(self.url)
        self.out = work / "hub.out"
        with self.out.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "evaluator", "hub", "run", "--db", self.url,
                 "--broker", f"mqtt://{broker.host}:{broker.port}", *options],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        wait_for(lambda: b"receiving on" in self.out.read_bytes()
                 or self.process.poll() is not None, 30, "the hub to subscribe")  # fmt: skip
        assert self.process.poll() is None, self.out.read_text()

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob("hub.db*"))

    def close(self) -> None:
        stop_process(self.process, 10)
        self.db.close()


class Peer:
    """A pad's MQTT client (the test broker has no ACL: it publishes on its own topic), with
    the acks it is sent."""

    def __init__(self, broker: Broker, device: str) -> None:
        self.acked: set[str] = set()
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe(f"{PREFIX}/{device}/acks", 1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(10)
        self.device = device

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        import json

        with self._lock:
            self.acked.update(json.loads(message.payload).get("ids", []))

    def send(self, body: bytes, qos: int = 1) -> None:
        self.client.publish(topic(self.device), body, qos=qos)

    def has(self, *ids: str) -> bool:
        with self._lock:
            return set(ids) <= self.acked

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, DeviceKey]:
    return {HONEST: make_key(tmp_path, "honest"), THIEF: make_key(tmp_path, "thief")}


@pytest.fixture
def hub_of(tmp_path: Path, broker: Broker, keys: dict[str, DeviceKey]) -> Iterator[Any]:
    started: list[Hub] = []

    def start(*options: str) -> Hub:
        hub = Hub(tmp_path, broker, *options)
        for device, key in keys.items():
            hub.db.register(device, key.public.text)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.close()


@pytest.fixture
def thief(broker: Broker) -> Iterator[Peer]:
    peer = Peer(broker, THIEF)
    yield peer
    peer.close()


def settle(peer: Peer, key: DeviceKey) -> None:
    """Publish the pad's genuine seq 1 after what it sent and wait for its ack: the receiver
    has then handled everything before it (one publisher's order is kept)."""
    (mark,) = chain(key, peer.device, 1)
    peer.send(payload(mark))
    wait_for(lambda: peer.has(mark["id"]), 60, "the receiver to reach the mark")


def test_unique_junk_from_one_pad_stays_within_the_stated_bounds(
    hub_of: Any, thief: Peer, keys: dict[str, DeviceKey]
) -> None:
    """18,900 unique junk messages made 1.29 GB of database and 442 MB of RSS: every one was
    filed whole.  Now they are counted per pad and cause, DEAD_ROWS rows kept of each."""
    hub: Hub = hub_of()
    before = hub.size()
    for n in range(1500):  # below the flood budget: every one is read and refused
        thief.send(f"junk {n:06d} ".encode() + os.urandom(8 * 1024).hex().encode())
    settle(thief, keys[THIEF])
    grown, rss = hub.size() - before, hub.rss_kb()
    print(f"1500 junk: database +{grown / 1e6:.2f} MB, receiver RSS {rss / 1024:.0f} MB")
    assert grown < DB_GROWTH_MAX, f"the database grew {grown} bytes"
    assert rss < RSS_MAX_KB, f"the receiver holds {rss} kB"
    assert len(hub.db.dead()) == 100  # sync.hub.ingest.DEAD_ROWS of (pad, "not JSON")
    counted = hub.db.dead_counts(THIEF)
    assert [(c["cause"], c["count"]) for c in counted] == [("not JSON", 1500)]


def forged_at(records: list[dict[str, Any]], seq: int, key: DeviceKey) -> dict[str, Any]:
    """A record for ``seq`` signed with the pad's stolen key, chained on nothing stored."""
    body = {k: v for k, v in records[seq - 1].items()
            if k not in ("hash", "prev_hash", "sig", "key_id", "id")}  # fmt: skip
    body["id"] = new_record_id()
    return seal(body, prev_hash="f" * 64, signer=key)


@pytest.mark.parametrize("first", ["forged", "genuine"])
def test_a_forged_seq_parked_beside_the_genuine_one_never_hides_it(
    hub_of: Any, thief: Peer, keys: dict[str, DeviceKey], first: str
) -> None:
    hub: Hub = hub_of()
    records = chain(keys[THIEF], THIEF, 7)
    forged = forged_at(records, 6, keys[THIEF])
    for record in records[:4]:
        thief.send(payload(record))
    wait_for(lambda: thief.has(records[3]["id"]), 30, "seqs 1-4 acked")
    order = [forged, records[5]] if first == "forged" else [records[5], forged]
    for n, record in enumerate(order, start=1):
        thief.send(payload(record))
        wait_for(lambda n=n: hub.db.parked() == n, 30, f"{n} candidate(s) for seq 6 parked")
    thief.send(payload(records[4]))
    wait_for(lambda: thief.has(records[4]["id"], records[5]["id"]), 30, "seqs 5 and 6 acked")
    assert hub.db.records(THIEF) == records[:6] and hub.db.parked() == 0
    dead = hub.db.dead()
    assert [d["payload"] for d in dead] == [payload(forged).decode()]
    assert "chain broken" in dead[0]["reason"]
    assert not thief.has(forged["id"])


def test_a_pads_parking_is_capped_and_flagged(
    hub_of: Any, thief: Peer, keys: dict[str, DeviceKey]
) -> None:
    hub: Hub = hub_of("--park-records", "20")
    for record in chain(keys[THIEF], THIEF, 30, first_seq=100, prev="a" * 64):
        thief.send(payload(record))
    settle(thief, keys[THIEF])
    assert hub.db.parked() == 20 and hub.db.parking(THIEF)[0] == 20
    assert [(c["cause"], c["count"]) for c in hub.db.dead_counts(THIEF)] == [("parking full", 10)]
    assert [f["kind"] for f in hub.db.flags(THIEF)] == ["parking_full"]


def test_a_flooding_pad_is_throttled_and_the_honest_pad_keeps_its_pace(
    hub_of: Any, thief: Peer, keys: dict[str, DeviceKey], broker: Broker, tmp_path: Path
) -> None:
    hub: Hub = hub_of()
    stop = threading.Event()
    sent = [0]

    def flood() -> None:  # unique junk that fails late, far beyond the budget (FLOOD_RATE)
        start = time.monotonic()
        while not stop.is_set():
            for _ in range(50):
                thief.send(b'{"junk": "%d", "pad": "%s"}' % (sent[0], b"x" * 2000), qos=0)
                sent[0] += 1
            time.sleep(max(0.0, start + sent[0] / FLOOD_PACE - time.monotonic()))

    store = Store(tmp_path / "pad.db", device_id=HONEST, signer=keys[HONEST])
    pad = SyncWorker(store_path=store.path, device_id=HONEST, host=broker.host,
                     port=broker.port, resend_after=2.0, reconnect_min=0.2,
                     reconnect_spread=0.0)  # fmt: skip
    flooder = threading.Thread(target=flood, daemon=True)
    latencies: list[float] = []
    try:
        pad.start()
        flooder.start()
        wait_for(lambda: sent[0] >= 2 * FLOOD_PACE, 30, "the flood under way")
        for i in range(10):
            store.append_rating(rating_content(f"S{i:04d}"))
            pad.notify()
            rated = time.monotonic()
            wait_for(lambda n=i + 1: hub.db.count("ratings") == n, 30, f"rating {i + 1} stored")
            latencies.append(time.monotonic() - rated)
        wait_for(lambda: store.outbox_size() == 0, 30, "the honest pad's outbox empty")
    finally:
        stop.set()
        flooder.join(10)
        pad.stop()
        pad.join(10)
        store.close()
    print(f"flood of {sent[0]} messages: honest ratings stored within {max(latencies):.2f} s "
          f"(median {sorted(latencies)[5]:.2f} s)")  # fmt: skip
    assert max(latencies) < 5.0, latencies
    wait_for(lambda: _flagged(hub.db, THIEF, "flooding"), 30, "the flooding pad flagged")
    assert not _flagged(hub.db, HONEST, "flooding")
    assert b"flagged flooding" in hub.out.read_bytes()


def _flagged(db: HubDB, device: str, kind: str) -> bool:
    return any(f["kind"] == kind for f in db.flags(device))


def test_the_throttle_drops_beyond_the_budget_refills_and_forgets() -> None:
    now = [0.0]
    throttle = Throttle(burst=3, rate=1.0, clock=lambda: now[0])
    assert [throttle.allow("pad-a") for _ in range(4)] == [True, True, True, False]
    assert throttle.allow("pad-b")  # a budget of its own
    assert throttle.fresh == ["pad-a"] and throttle.dropped == {"pad-a": 1}
    assert throttle.flooding() == {"pad-a"}
    now[0] = 1.0  # one token back a second
    assert [throttle.allow("pad-a") for _ in range(2)] == [True, False]
    now[0] = 1.0 + FLOOD_LANE
    assert throttle.flooding() == set() and throttle.dropped == {"pad-a": 2}


def test_what_is_stored_gives_its_token_back() -> None:
    """An honest pad draining its backlog faster than the rate is never throttled: each
    message acked gives its token back; only what is refused or parked spends the budget."""
    throttle = Throttle(burst=3, rate=1.0, clock=lambda: 0.0)
    for _ in range(100):
        assert throttle.allow("pad-a")
        throttle.refund("pad-a", 1)
    throttle.refund("pad-a", 50)  # never above the burst
    assert [throttle.allow("pad-a") for _ in range(4)] == [True, True, True, False]
