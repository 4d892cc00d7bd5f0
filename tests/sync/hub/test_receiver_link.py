"""The link between a real pad and the real receiver when the receiver goes away (issue 16): a
restart of the receiver costs a pad seconds, not minutes.  A real mosquitto, the pad's real
``SyncWorker`` with its shipped link settings, the receiver in-process on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sync.hub.db import open_db
from sync.hub.receiver import Receiver
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store
from tests.faultproxy import FaultProxy
from tests.support import Broker, stop_threads, wait_for
from tests.sync.hub.helpers import PREFIX, rating_content
from tests.sync.hub.test_receiver import (  # noqa: F401 (fixtures)
    DEVICE,
    Watcher,
    key,
    pad,
    receivers,
    registered,
    start_receiver,
)

#: Ratings the pad commits while the receiver is away (all published into the void: a shared
#: subscription without members drops them).
LOST = 300
#: Seconds after the receiver is back by which the pad's backlog must be stored (before: 315 s).
RECOVERY = 15.0


@pytest.mark.parametrize("outage", [2.0, 5.0])
def test_a_receiver_restart_costs_the_pad_seconds(
    db_url: str,
    broker: Broker,
    key: DeviceKey,  # noqa: F811
    pad: Store,  # noqa: F811
    receivers: list[Receiver],  # noqa: F811
    outage: float,
) -> None:
    url = registered(db_url, key)
    receivers.append(start_receiver(url, broker))
    ratings = f"{PREFIX}/{DEVICE}/ratings"
    watcher = Watcher(broker, ratings)  # sees what the pad publishes
    # the shipped link settings (resend_after 30 s, a window of 200, 20/s after a burst of 300)
    sync = SyncWorker(store_path=pad.path, device_id=DEVICE, host=broker.host, port=broker.port,
                      reconnect_spread=0.0)  # fmt: skip
    sync.start()
    try:
        with open_db(url) as db:
            pad.append_rating(rating_content("S-first"))
            sync.notify()
            wait_for(lambda: pad.outbox_size() == 0, 20, "the first rating acked")
            stop_threads([receivers.pop()], 10)
            gone = time.monotonic()
            for i in range(LOST):
                pad.append_rating(rating_content(f"S{i:04d}"))
                sync.notify()
            wait_for(lambda: len(watcher.on(ratings)) >= 1 + LOST, 20, "the pad to publish")
            assert db.count("ratings") == 1
            # The outage itself (the length of a deploy), not a wait for another process.
            time.sleep(max(0.0, outage - (time.monotonic() - gone)))
            receivers.append(start_receiver(url, broker))
            back = time.monotonic()
            wait_for(lambda: db.count("ratings") == 1 + LOST and pad.outbox_size() == 0, RECOVERY,
                     f"the pad's {LOST} ratings stored after the receiver came back")  # fmt: skip
            took = time.monotonic() - back
            assert db.records(DEVICE) == list(pad.records())
            assert db.parked() == 0 and db.dead() == []
        stats = receivers[-1].stats
        print(f"outage {outage:.0f} s: {LOST} stored {took:.1f} s after the receiver was back, "
              f"{stats['received']} received, {stats['duplicates']} duplicates")  # fmt: skip
        # the lost window went again once, not rating by rating: a few copies at most
        assert stats["received"] <= LOST + 10 and stats["duplicates"] <= 10
    finally:
        watcher.close()
        stop_threads([sync], 10)


def test_acks_a_lost_connection_did_not_get_out_go_on_the_next_one(
    tmp_path: Path,
    broker: Broker,
    key: DeviceKey,  # noqa: F811
    pad: Store,  # noqa: F811
    receivers: list[Receiver],  # noqa: F811
) -> None:
    """The receiver's connection cut in the middle of its ack: the rating is stored, and the ack
    goes out on the next connection (before: lost; the pad resent the rating after its wait and
    the city stored a duplicate's ack instead)."""
    url = registered(f"sqlite:///{tmp_path / 'hub.db'}", key)
    with FaultProxy(broker.host, broker.port) as proxy:
        receiver = Receiver(url, [f"mqtt://127.0.0.1:{proxy.port}"], reconnect_min=0.1)
        receiver.start()
        receivers.append(receiver)
        assert receiver.wait_ready(15), receiver.last_error
        sync = SyncWorker(store_path=pad.path, device_id=DEVICE, host=broker.host,
                          port=broker.port, reconnect_spread=0.0)  # fmt: skip
        sync.start()
        try:
            with open_db(url) as db:
                for n in range(1, 4):  # a cut at each ack, each in another connection
                    proxy.cut_mid_publish(f"{PREFIX}/+/acks")
                    pad.append_rating(rating_content(f"S{n:04d}"))
                    sync.notify()
                    wait_for(lambda c=n: proxy.stats.cuts >= c, 10, f"ack {n} cut")
                    wait_for(lambda: pad.outbox_size() == 0, 10, f"rating {n} acked after all")
                    assert db.count("ratings") == n
        finally:
            stop_threads([sync], 10)
        stats = receiver.stats
        assert stats["carried"] >= 3 and stats["connects"] >= 4
        # the 3 ratings and the store's epoch event (its events seq 1, issue 15 B)
        assert stats["duplicates"] == 0 and stats["stored"] == 3 + 1
