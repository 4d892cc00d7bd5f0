"""The retained status and its offline last will, against a real mosquitto (issue 8)."""

# The fixtures are test_mqtt_events' (imported by name, so the test parameters shadow them).
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sync.mqtt import SyncWorker, offline_status
from sync.store import Store
from tests.sync.test_mqtt import full_content, wait_until
from tests.sync.test_mqtt_events import (  # noqa: F401  (fixtures)
    DEVICE,
    PREFIX,
    Peer,
    assert_valid,
    db_path,
    key,
    make_worker,
    peer,
    schema,
    store,
)

REPO = Path(__file__).resolve().parents[2]


def latest_retained(broker: Any, name: str) -> dict[str, Any]:
    """What a subscriber connecting now gets: the retained status."""
    fresh = Peer(broker.host, broker.port, name=name)
    try:
        wait_until(lambda: bool(fresh.raw("status")), 5, "the retained status")
        payload, retained = fresh.raw("status")[0]
        assert retained
        return json.loads(payload)
    finally:
        fresh.close()


def test_the_status_is_retained_at_connect_and_valid(
    broker: Any, store: Store, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    store.append_rating(full_content("S-1"))
    worker = make_worker()
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    worker.set_device_state(printer="ok", counter_link="up", clock_synced=True)
    wait_until(lambda: bool(peer.on("status")) and peer.on("status")[-1]["printer"] == "ok", 5,
               "the status with the device state")  # fmt: skip
    status = latest_retained(broker, "late-1")
    assert status == peer.on("status")[-1]
    assert_valid(schema("status"), status)
    assert status["device_id"] == DEVICE and status["online"] is True
    assert (status["printer"], status["counter_link"], status["clock_synced"]) == ("ok", "up", True)
    assert status["outbox"] == 1 and status["oldest_age_s"] is not None
    assert status["firmware"] and status["at"]


def test_a_state_change_goes_at_once_but_the_outbox_only_on_its_schedule(
    store: Store, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    worker = make_worker(status_every=3600.0)
    wait_until(lambda: len(peer.on("status")) == 1, 5, "the status at connect")
    assert peer.on("status")[0]["outbox"] == 0 and peer.on("status")[0]["oldest_age_s"] is None
    store.append_rating(full_content("S-1"))
    worker.notify()
    wait_until(lambda: len(peer.on("ratings")) == 1, 5, "the rating at the city")
    worker.set_device_state(printer="paper_out")
    wait_until(lambda: len(peer.on("status")) == 2, 5, "the changed status")
    changed = peer.on("status")[1]
    assert changed["printer"] == "paper_out"
    assert changed["outbox"] == 0  # not the moment the rating was stored (art. 4)
    worker.set_device_state(printer="paper_out")  # no change: nothing sent
    worker.set_device_state(counter_link="down")
    wait_until(lambda: len(peer.on("status")) == 3, 5, "the next change")
    assert peer.on("status")[2]["counter_link"] == "down"


def test_the_status_reports_the_ratings_head_but_a_rating_never_sends_one(
    store: Store, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    """``ratings_head`` (art. 40): the store's newest rating at each publish, ``null`` before
    any; a stored rating is no reason to publish (art. 4), the next status carries it."""
    worker = make_worker(status_every=3600.0)
    wait_until(lambda: len(peer.on("status")) == 1, 5, "the status at connect")
    assert peer.on("status")[0]["ratings_head"] is None
    for n in range(3):
        store.append_rating(full_content(f"S-{n}"))
    worker.notify()
    wait_until(lambda: len(peer.on("ratings")) == 3, 5, "the ratings at the city")
    assert len(peer.on("status")) == 1  # no status at the moment of a rating
    worker.set_device_state(printer="ok")
    wait_until(lambda: len(peer.on("status")) == 2, 5, "the changed status")
    newest = list(store.records())[-1]
    assert peer.on("status")[1]["ratings_head"] == {"seq": 3, "hash": newest["hash"],
                                                    "epoch": store.read_meta("epoch") or ""}
    assert_valid(schema("status"), peer.on("status")[1])


def test_the_schedule_refreshes_the_outbox_figures(
    store: Store, peer: Peer, make_worker: Callable[..., SyncWorker]
) -> None:
    worker = make_worker(status_every=0.3)
    wait_until(lambda: bool(peer.on("status")), 5, "the first status")
    store.append_rating(full_content("S-1"))
    store.append_event("printer_fault", {"fault": "offline", "active": True, "message": ""})
    worker.notify()
    wait_until(lambda: peer.on("status")[-1]["outbox"] == 2, 5, "the scheduled status")
    assert peer.on("status")[-1]["oldest_age_s"] >= 0


def test_a_clean_stop_says_offline_with_its_time(
    broker: Any, store: Store, make_worker: Callable[..., SyncWorker]
) -> None:
    worker = make_worker()
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    worker.stop()
    worker.join(5)
    status = latest_retained(broker, "late-2")
    assert_valid(schema("status"), status)
    assert status["online"] is False and status["at"] is not None
    assert status == {**offline_status(DEVICE, status["firmware"], status["at"])}


CHILD = textwrap.dedent(
    """
    import sys, time
    from sync.mqtt import SyncWorker
    w = SyncWorker(store_path=sys.argv[1], device_id=sys.argv[2], host="127.0.0.1",
                   port=int(sys.argv[3]), topic_prefix=sys.argv[4], keepalive=60)
    w.start()
    while not w.status.connected:
        time.sleep(0.01)
    print("connected", flush=True)
    time.sleep(600)
    """
)


def test_the_last_will_says_offline_when_the_pad_vanishes(
    broker: Any, db_path: Path, peer: Peer
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path), DEVICE, str(broker.port), PREFIX],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"connected"
        wait_until(lambda: bool(peer.on("status")), 5, "the online status")
        assert peer.on("status")[-1]["online"] is True
        os.kill(child.pid, signal.SIGKILL)  # no DISCONNECT: the broker sends the will
        child.wait(5)
        wait_until(lambda: peer.on("status")[-1]["online"] is False, 10, "the last will")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    will = peer.on("status")[-1]
    assert_valid(schema("status"), will)
    assert will["at"] is None and will["device_id"] == DEVICE
    assert latest_retained(broker, "late-3") == will  # retained for whoever comes later
