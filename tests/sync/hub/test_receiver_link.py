"""The link between a real pad and the real receiver when the receiver goes away (issue 16): a
restart of the receiver costs a pad seconds, not minutes.  A real mosquitto, the pad's real
``SyncWorker`` with its shipped link settings, the receiver in-process on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from sync.hub.db import open_db
from sync.hub.receiver import Receiver
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store
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
            assert db.count() == 1
            # The outage itself (the length of a deploy), not a wait for another process.
            time.sleep(max(0.0, outage - (time.monotonic() - gone)))
            receivers.append(start_receiver(url, broker))
            back = time.monotonic()
            wait_for(lambda: db.count() == 1 + LOST and pad.outbox_size() == 0, RECOVERY,
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
