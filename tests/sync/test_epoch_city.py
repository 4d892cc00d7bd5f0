"""A store that had to start again, end to end (issue 15 B): the pad's real store and sync worker
(``Store`` as the app opens it, ``SyncWorker``), a real mosquitto and the real ``evaluator hub
run`` process with its database.

Before epochs, a pad whose store was kept aside (damaged) or lost started again at seq 1 and the
city refused every new rating ("seq N is already stored with another record") until a person
registered the pad again.  Now the new store opens a signed epoch: every new rating reaches the
city, the city flags ``chain_restarted`` with the gap, the intact records of the kept-aside store
that the city never acked are delivered, and those that could not be read are listed as lost;
nobody acts in between."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.records import canonical_json, verify_chain
from sync.hub.db import open_db
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store
from tests.conftest import Broker
from tests.support import REPO, stop_process, wait_for
from tests.sync.hub.helpers import rating_content
from tests.sync.workers import worker_factory

DEVICE = "pad-epoch-01"
SETTLE = 60.0  # seconds: generous, the machine is shared


class City:
    """The real ``evaluator hub run`` on the test's broker, and its database."""

    def __init__(self, work: Path, broker: Broker) -> None:
        self.url = f"sqlite:///{work / 'hub.db'}"
        self.db = open_db(self.url)
        self.out = work / "hub.out"
        with self.out.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "evaluator", "hub", "run", "--db", self.url,
                 "--broker", f"mqtt://{broker.host}:{broker.port}", "--client-id", "hub-epoch"],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        wait_for(lambda: b"receiving on" in self.out.read_bytes(), 30, "the hub to subscribe")

    def ratings(self) -> list[dict[str, Any]]:
        return self.db.records(DEVICE)

    def restarts(self) -> list[dict[str, Any]]:
        return [f for f in self.db.flags(DEVICE) if f["kind"] == "chain_restarted"]

    def close(self) -> None:
        stop_process(self.process, 10)
        self.db.close()


class Pad:
    """The pad's store (opened as the app opens it: damage kept aside) and its sync worker."""

    def __init__(self, work: Path, city: City, make: Callable[..., SyncWorker]) -> None:
        self.path = work / "ratings.db"
        self.key = DeviceKey.create(work / "device.key")
        city.db.register(DEVICE, self.key.public.text)
        self.make = make
        self.worker: SyncWorker | None = None
        self.n = 0

    def rate(self, count: int) -> list[dict[str, Any]]:
        """``count`` ratings committed as the app commits them (signed), the worker told."""
        with Store(self.path, device_id=DEVICE, signer=self.key) as store:
            out = []
            for _ in range(count):
                self.n += 1
                out.append(store.append_rating(rating_content(f"EP-{self.n:05d}")))
                if self.worker is not None:
                    self.worker.notify()
        return out

    def online(self) -> None:
        self.worker = self.make(resend_after=1.0, poll_interval=0.3)

    def offline(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker.join(10)
            self.worker = None
        conn = sqlite3.connect(self.path)  # the pad stopped: everything in the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

    def waiting(self) -> int:
        """Ratings, events and carried-over records not acked by the city."""
        with Store.open_read_only(self.path) as store:
            return store.outbox_summary()[0]

    def kept_aside(self) -> list[Path]:
        return sorted(p for p in self.path.parent.iterdir() if p.name.startswith(
            "ratings.db.damaged-") and not p.name.endswith(("-wal", "-shm")))  # fmt: skip


@pytest.fixture
def scene(tmp_path: Path, broker: Broker) -> Iterator[tuple[City, Pad]]:
    city = City(tmp_path, broker)
    with worker_factory(broker, tmp_path / "ratings.db", DEVICE) as make:
        pad = Pad(tmp_path, city, make)
        try:
            yield city, pad
        finally:
            pad.offline() if pad.path.exists() else None
            city.close()


def settle(city: City, pad: Pad, expected: int) -> None:
    """Wait for the city to hold ``expected`` ratings and the pad to wait for nothing."""
    try:
        wait_for(lambda: len(city.ratings()) >= expected and pad.waiting() == 0, SETTLE,
                 f"{expected} ratings at the city and nothing waiting on the pad")  # fmt: skip
    except Exception:
        pytest.fail(
            f"the city holds {len(city.ratings())} of {expected} ratings, the pad waits for "
            f"{pad.waiting()}; dead letters: {[d['reason'] for d in city.db.dead()][:3]}; "
            f"parked {city.db.parked()}"
        )


def _truncate_half(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _delete(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize(
    "lose", [_truncate_half, _delete], ids=["truncated-to-half", "deleted-while-stopped"]
)
def test_a_store_that_had_to_start_again_delivers_every_new_rating(
    scene: tuple[City, Pad], lose: Callable[[Path], None]
) -> None:
    city, pad = scene
    pad.online()
    before = pad.rate(20)
    settle(city, pad, 20)
    pad.offline()
    lose(pad.path)
    new = pad.rate(10)  # the pad opens a new store (the damaged one kept aside) and goes on
    assert {r["seq"] for r in new} == set(range(1, 11)), "a new store starts again at seq 1"
    if lose is _truncate_half:
        assert len(pad.kept_aside()) == 1
    pad.online()
    settle(city, pad, 30)
    held = city.ratings()
    assert [r["id"] for r in held] == [r["id"] for r in before + new]
    epoch = new[0]["epoch"]
    assert epoch and all(r["epoch"] == epoch for r in new) and "epoch" in before[0]
    assert before[0]["epoch"] != epoch
    assert verify_chain(city.db.records(DEVICE, epoch=epoch)) is None
    assert city.db.dead() == []
    (flag,) = city.restarts()
    assert flag["key"] == epoch
    detail = flag["detail"]
    assert detail["hub"][f"ratings:{before[0]['epoch']}"]["seq"] == 20
    if lose is _delete:
        assert detail["previous"] is None  # no earlier store found: the hub's tip says it all
    else:
        assert detail["previous"]["epoch"] == before[0]["epoch"]
        assert detail["previous"]["kept_aside"] == str(pad.kept_aside()[0])
        assert detail["lost"] == {"ratings": [], "events": []}


def test_unacked_records_of_the_kept_aside_store_are_delivered_the_damaged_listed(
    scene: tuple[City, Pad],
) -> None:
    """The pad was offline before its store was damaged: of the 9 ratings the city never
    acked, those whose stored bytes were hit (any byte of the record: first, middle and last
    unacked here, a random byte in each) are listed lost, every other one is delivered with
    its old epoch and seq, and the new ratings follow."""
    city, pad = scene
    pad.online()
    acked = pad.rate(6)
    settle(city, pad, 6)
    pad.offline()
    unacked = pad.rate(9)  # offline: never reaches the city before the damage
    hit = [unacked[0], unacked[4], unacked[8]]
    data = bytearray(pad.path.read_bytes())
    rand = random.Random(15)
    for record in hit:
        text = canonical_json(record)
        at = data.find(text)
        assert at >= 0 and data.find(text, at + 1) < 0
        pos = at + rand.randrange(len(text))
        data[pos] ^= 1 << rand.randrange(8)
    data += b"\0" * 100  # and the file no longer whole: the pad keeps it aside at its start
    pad.path.write_bytes(bytes(data))
    new = pad.rate(10)
    pad.online()
    intact = [r for r in unacked if r not in hit]
    settle(city, pad, 6 + len(intact) + 10)
    old = acked[0]["epoch"]
    assert [r["id"] for r in city.db.records(DEVICE, epoch=old)] == [
        r["id"] for r in acked + intact
    ]
    assert city.db.records(DEVICE, epoch=new[0]["epoch"]) == new
    assert city.db.dead() == [] and city.db.parked() == 0
    (flag,) = city.restarts()
    assert flag["detail"]["lost"]["ratings"] == [r["seq"] for r in hit]
    assert flag["detail"]["missing"]["ratings"] == [[7, 15]]
    named = flag["detail"]["previous"]["ratings"]
    assert (named["acked_seq"], named["unsent"], named["carried"]) == (6, 9, 6)


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.7, 0.85])
def test_unacked_records_in_a_truncated_store_what_is_left_is_delivered(
    scene: tuple[City, Pad], keep: float
) -> None:
    """The pad offline before its store was cut (to half, to 70 %): what the city never acked
    and is still whole in the file is delivered on the old epoch, every other unacked seq is
    named: lost, or after where the old store could be read; nothing waits, nothing refused."""
    city, pad = scene
    pad.online()
    acked = pad.rate(30)
    settle(city, pad, 30)
    pad.offline()
    unacked = pad.rate(30)
    pad.offline()  # checkpointed
    with pad.path.open("r+b") as f:
        f.truncate(int(pad.path.stat().st_size * keep))
    new = pad.rate(10)
    pad.online()
    wait_for(lambda: pad.waiting() == 0 and len(city.db.records(DEVICE, epoch=new[0]["epoch"]))
             == 10, SETTLE, "the new ratings at the city, nothing waiting")  # fmt: skip
    old = acked[0]["epoch"]
    stored = [r["seq"] for r in city.db.records(DEVICE, epoch=old)]
    assert stored[:30] == list(range(1, 31)) and stored == sorted(set(stored))
    assert city.db.dead() == [] and city.db.parked() == 0
    (flag,) = city.restarts()
    lost = flag["detail"]["lost"]["ratings"]
    ((first, last),) = flag["detail"]["missing"]["ratings"]
    assert first == 31
    for record in unacked:
        seq = record["seq"]
        told = seq in lost or (last is None and seq > max(stored + lost))
        assert (seq in stored) != told, (seq, stored, lost, last)
    held = {r["id"]: r for r in city.db.records(DEVICE, epoch=old)}
    assert all(held[r["id"]] == r for r in unacked if r["id"] in held)  # verbatim


def test_restart_after_restart(scene: tuple[City, Pad]) -> None:
    """A card that fails again and again: each new store opens its epoch, each restart is
    flagged once, every rating of every epoch reaches the city."""
    city, pad = scene
    pad.online()
    every = pad.rate(5)
    settle(city, pad, 5)
    for _ in range(3):
        pad.offline()
        _truncate_half(pad.path)
        every += pad.rate(5)
        pad.online()
        settle(city, pad, len(every))
    assert [r["id"] for r in city.ratings()] == [r["id"] for r in every]
    epochs = list(dict.fromkeys(r["epoch"] for r in every))
    assert len(epochs) == 4
    assert [f["key"] for f in city.restarts()] == epochs[1:]
    assert city.db.dead() == []
