"""The upload worker against a real mosquitto and a real SQLite file (no mocks)."""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from evaluator.rules.records import RATING_FIELDS
from sync.mqtt import SyncWorker, TokenBucket
from sync.store import Store
from tests.dropper import Dropper
from tests.support import stop_threads
from tests.sync.workers import worker_factory

DEVICE = "pad-440500-07"
PREFIX = "hcp/v1"
RATINGS = f"{PREFIX}/{DEVICE}/ratings"
ACKS = f"{PREFIX}/{DEVICE}/acks"


def full_content(serial: str, *, level: str = "satisfied", score: int = 8) -> dict[str, Any]:
    """Content shaped like evaluator.rules.session builds it."""
    return {
        "presentation_id": f"p-{serial}",
        "level": level,
        "score": score,
        "satisfaction": 4,
        "gbt_code": 2,
        "channel": 4,
        "cases": [
            {"serial": serial, "matter_code": "M1", "matter_name": "不动产登记", "kind": "instant"}
        ],
        "clerk": {"id": "007", "name": "张三"},
        "terminal": None,
        "agencies": ["汕头市自然资源局"],
        "agencies_concerned": [],
        "targets": ["clerk", "matter"],
        "theme": None,
        "reasons": [],
        "comment": "",
        "stage": "deliver",
        "visit": 1,
        "assess_number": 1,
        "follows": [],
        "area_code": "440500",
        "presented_at": "2025-01-02T03:04:00+08:00",
        "presented_clock_synced": True,
        "rated_at": "2025-01-02T03:04:09+08:00",
        "rated_clock_synced": True,
        "elapsed_ms": 9000,
    }


class City:
    """The city side, test-only: records what arrives on the ratings topic, sends acks.

    (A test peer may use paho's own network thread; the product never does.)
    """

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="city-test")
        self.client.reconnect_delay_set(1, 1)  # ints in paho's signature
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=5)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(RATINGS, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(json.loads(msg.payload.decode("utf-8")))
            self.arrivals.append(time.monotonic())

    def wait_subscribed(self, timeout: float = 5.0) -> None:
        assert self._subscribed.wait(timeout), "city could not subscribe"

    def ids(self) -> list[str]:
        with self._lock:
            return [m["id"] for m in self.messages]

    def ack(self, ids: list[str]) -> None:
        self.publish_ack(json.dumps({"ids": ids}).encode())

    def publish_ack(self, payload: bytes) -> None:
        self.client.publish(ACKS, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ratings.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """The app thread's own store (the worker opens another one in its thread)."""
    s = Store(db_path, device_id=DEVICE)
    opened = s.open_epoch()  # the new store's epoch event, acked by the city long ago: the
    s.ack([opened["id"]] if opened else [])  # worker's lanes carry only what a test makes
    yield s
    s.close()


@pytest.fixture
def city(broker) -> Iterator[City]:
    c = City(broker.host, broker.port)
    c.wait_subscribed()
    yield c
    c.close()


@pytest.fixture
def make_worker(broker, db_path: Path) -> Iterator[Callable[..., SyncWorker]]:
    with worker_factory(broker, db_path, DEVICE, topic_prefix=PREFIX, reconnect_spread=0.3) as make:
        yield make


def test_a_committed_rating_reaches_the_city_with_every_field(
    store: Store, city: City, make_worker
) -> None:
    worker = make_worker()
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    record = store.append_rating(full_content("S-1", level="very_dissatisfied", score=0))
    worker.notify()
    wait_until(lambda: city.ids() == [record["id"]], 5, "the rating at the city")
    received = city.messages[0]
    assert received == record
    assert set(RATING_FIELDS) <= set(received)
    assert received["clerk"]["name"] == "张三"


def test_an_ack_empties_the_outbox(store: Store, city: City, make_worker) -> None:
    acked: list[list[str]] = []
    worker = make_worker(on_ack=acked.append)
    records = [store.append_rating(full_content(f"S-{i}")) for i in range(3)]
    worker.notify()
    wait_until(lambda: len(set(city.ids())) == 3, 5, "three ratings at the city")
    wait_until(lambda: worker.status.pending == 3, 5, "status to show 3 pending")
    city.ack([records[0]["id"], records[2]["id"]])
    wait_until(lambda: store.outbox_size() == 1, 5, "two acks applied")
    assert [r["id"] for r in store.pending()] == [records[1]["id"]]
    city.ack([records[1]["id"]])
    wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")
    wait_until(lambda: worker.status.pending == 0, 5, "status to show 0 pending")
    assert acked[0] == [records[0]["id"], records[2]["id"]]
    assert list(store.records()) == records  # the ratings themselves stay


def test_an_unacked_rating_is_resent(store: Store, city: City, make_worker) -> None:
    make_worker(resend_after=0.5)
    record = store.append_rating(full_content("S-1"))
    # no notify(): the worker finds committed ratings by itself too
    wait_until(lambda: city.ids().count(record["id"]) >= 3, 6, "two resends")
    city.ack([record["id"]])
    wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")
    time.sleep(0.8)
    settled = city.ids().count(record["id"])
    time.sleep(0.8)
    assert city.ids().count(record["id"]) == settled  # acked: no more resends


def test_broker_down_at_start_then_delivered(store: Store, broker, make_worker) -> None:
    broker.stop()
    worker = make_worker(resend_after=1.0)
    records = [store.append_rating(full_content(f"S-{i}")) for i in range(3)]
    worker.notify()
    wait_until(lambda: worker.status.pending == 3, 5, "status to show the outbox")
    assert not worker.status.connected
    assert worker.status.last_error
    broker.start()
    city = City(broker.host, broker.port)
    try:
        wait_until(lambda: worker.status.connected, 5, "the worker to connect")
        wanted = {r["id"] for r in records}
        wait_until(lambda: wanted <= set(city.ids()), 6, "the backlog at the city")
        city.ack(sorted(wanted))
        wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")
    finally:
        city.close()


def test_broker_restart_midway_resends_pending(store: Store, broker, make_worker) -> None:
    city = City(broker.host, broker.port)
    try:
        city.wait_subscribed()
        worker = make_worker(resend_after=1.0)
        first = store.append_rating(full_content("S-1"))
        worker.notify()
        wait_until(lambda: first["id"] in city.ids(), 5, "the first rating")
        broker.stop()
        wait_until(lambda: not worker.status.connected, 5, "the worker to notice")
        second = store.append_rating(full_content("S-2"))
        worker.notify()
        broker.start()
        wait_until(lambda: worker.status.connected, 5, "the worker to reconnect")
        before = city.ids().count(first["id"])
        # Both are pending: the unacked first one is sent again on the new connection (or, if
        # the city was not subscribed again yet, as the probe: the lowest seq), and once the
        # city acks it the second comes too (with the window or as the next probe).
        wait_until(lambda: city.ids().count(first["id"]) > before, 6, "the first again")
        city.ack([first["id"]])
        wait_until(lambda: second["id"] in city.ids(), 6, "the second after the restart")
        city.ack([second["id"]])
        wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")
    finally:
        city.close()


def test_every_pending_rating_is_sent_again_on_a_new_connection(
    store: Store, broker, city: City, make_worker
) -> None:
    worker = make_worker(resend_after=30.0, client_id="pad-07")
    record = store.append_rating(full_content("S-1"))
    worker.notify()
    wait_until(lambda: city.ids() == [record["id"]], 5, "the first send")
    # Another client with the same id takes the session over: the broker drops the worker.
    imposter = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pad-07")
    imposter.connect(broker.host, broker.port)
    deadline = time.monotonic() + 5
    while not imposter.is_connected() and time.monotonic() < deadline:
        imposter.loop(0.05)
    imposter.disconnect()
    # Long before resend_after, the new connection sends the unacked rating again.
    wait_until(lambda: city.ids().count(record["id"]) >= 2, 5, "a resend after reconnecting")
    assert worker.status.connected


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"ids": 5}',
        b'{"ids": ["ok", null]}',
        b'{"id": ["x"]}',
        b"",
    ],
)
def test_a_malformed_ack_is_ignored(store: Store, city: City, make_worker, payload: bytes) -> None:
    worker = make_worker()
    record = store.append_rating(full_content("S-1"))
    worker.notify()
    wait_until(lambda: record["id"] in city.ids(), 5, "the rating at the city")
    city.publish_ack(payload)
    wait_until(lambda: "malformed" in worker.status.last_error, 5, "the worker to log it")
    assert worker.is_alive()
    assert store.outbox_size() == 1
    city.ack([record["id"]])  # and a good ack still works afterwards
    wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")


def test_the_backlog_goes_in_seq_order_within_the_burst_and_a_new_rating_goes_before_it(
    store: Store, city: City, make_worker
) -> None:
    records = [store.append_rating(full_content(f"S-{i}")) for i in range(20)]
    # A burst of 5, then a token every 1,000 s: the 6th backlog rating is not due in this test.
    worker = make_worker(burst=5, max_rate=0.001)
    wait_until(lambda: len(city.ids()) == 5, 5, "the burst at the city")
    assert city.ids() == [r["id"] for r in records[:5]]  # in seq order
    live = store.append_rating(full_content("LIVE"))
    worker.notify()
    wait_until(lambda: live["id"] in city.ids(), 5, "the new rating at the city")
    # Published at once, ahead of the 15 that wait for tokens (same connection: FIFO).
    assert city.ids() == [r["id"] for r in records[:5]] + [live["id"]]


def test_the_backlog_waits_for_acks_beyond_max_unacked(
    store: Store, city: City, make_worker
) -> None:
    records = [store.append_rating(full_content(f"S-{i}")) for i in range(10)]
    worker = make_worker(max_unacked=3, max_rate=math.inf)
    wait_until(lambda: len(city.ids()) == 3, 5, "a window of 3 at the city")
    live = store.append_rating(full_content("LIVE"))
    worker.notify()
    wait_until(lambda: live["id"] in city.ids(), 5, "the new rating at the city")
    first = [r["id"] for r in records[:3]]
    assert city.ids() == [*first, live["id"]]  # nothing more of the backlog without an ack
    city.ack([*first, live["id"]])
    for start in (3, 6, 9):  # then one window per ack, in seq order
        window = [r["id"] for r in records[start : start + 3]]
        wait_until(lambda w=window: set(w) <= set(city.ids()), 5, "the next window")
        assert city.ids()[start + 1 :] == window
        city.ack(window)
    wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")
    assert sorted(city.ids()) == sorted([r["id"] for r in records] + [live["id"]])  # once each


def test_notify_wakes_the_worker_at_once_without_a_loop_tick(
    store: Store, city: City, make_worker
) -> None:
    # Nothing but a notify() can make this worker look at the store within the test: it polls
    # once an hour and wakes for keepalive every 5 minutes.
    worker = make_worker(poll_interval=3600.0, keepalive=600.0)
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    for n in range(3):
        rid = store.append_rating(full_content(f"S-{n}"))["id"]
        worker.notify()
        wait_until(lambda r=rid: r in city.ids(), 10, "the notified rating at the city")


def test_acks_of_one_message_are_applied_together_and_reported_once(
    store: Store, city: City, make_worker
) -> None:
    acked: list[list[str]] = []
    make_worker(on_ack=acked.append)
    records = [store.append_rating(full_content(f"S-{i}")) for i in range(5)]
    wait_until(lambda: len(city.ids()) == 5, 5, "five ratings at the city")
    ids = [r["id"] for r in records]
    city.ack(ids)
    wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")
    assert acked == [ids]


@pytest.mark.parametrize(
    ("steps", "tokens"),
    [
        # (time, "take"/"borrow") → whether it succeeded
        ([(0.0, "take")] * 3 + [(0.0, "take")], [True, True, True, False]),
        (
            [(0.0, "take")] * 3 + [(0.5, "take"), (0.5, "take"), (1.0, "take")],
            [True] * 3 + [True, False, True],
        ),
        ([(0.0, "take")] * 3 + [(0.0, "borrow")] * 4, [True] * 3 + [True, True, True, False]),
    ],
)
def test_the_token_bucket_bursts_refills_and_lends_down_to_minus_burst(
    steps: list[tuple[float, str]], tokens: list[bool]
) -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [getattr(bucket, how)(t) for t, how in steps] == tokens


def test_the_token_bucket_says_when_the_next_token_comes() -> None:
    bucket = TokenBucket(rate=4.0, burst=2, now=10.0)
    assert bucket.take(10.0) and bucket.take(10.0) and not bucket.take(10.0)
    assert bucket.ready_at(10.0) == pytest.approx(10.25)
    assert bucket.borrow(10.0) and bucket.ready_at(10.0) == pytest.approx(10.5)
    assert bucket.take(10.5) and not bucket.take(10.5)
    unlimited = TokenBucket(rate=math.inf, burst=1)
    assert all(unlimited.take(0.0) for _ in range(1000)) and unlimited.ready_at(0.0) == 0.0
    with pytest.raises(ValueError):
        TokenBucket(rate=0.0, burst=1)


def test_the_first_reconnect_after_a_lost_connection_is_spread(
    broker, make_worker, caplog: pytest.LogCaptureFixture
) -> None:
    """Pads that lose the same broker at once come back spread over ``reconnect_spread``."""
    worker = make_worker(
        reconnect_min=0.05, reconnect_max=0.05, reconnect_spread=0.4, rand=lambda: 0.5
    )
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")

    def lost() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "reconnecting in" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="sync.mqtt"):
        broker.stop()
        wait_until(lambda: bool(lost()), 5, "the worker to notice")
    [lost_record] = lost()
    wait = lost_record.args[-1]
    assert 0.05 * 0.75 + 0.2 <= wait <= 0.05 + 0.2  # backoff (jitter ≤ 25 %) + 0.5 × spread
    broker.start()
    wait_until(lambda: worker.status.connected, 5, "the worker to come back")


def test_stop_ends_the_worker_promptly_even_offline(broker, make_worker) -> None:
    broker.stop()
    worker = make_worker(reconnect_min=5.0, reconnect_max=5.0)
    time.sleep(0.3)
    started = time.monotonic()
    worker.stop()
    worker.join(3)
    assert not worker.is_alive()
    assert time.monotonic() - started < 2.0
    assert not worker.status.connected


def test_stop_disconnects_cleanly(city: City, make_worker) -> None:
    worker = make_worker()
    wait_until(lambda: worker.status.connected, 5, "the worker to connect")
    started = time.monotonic()
    worker.stop()
    worker.join(3)
    assert not worker.is_alive()
    assert time.monotonic() - started < 2.0
    assert worker.status == worker.status.__class__(False, 0, "")


def test_a_broker_that_drops_every_connection_is_retried_after_growing_waits(make_worker) -> None:
    # A real TCP listener that accepts and drops each connection: every attempt is lost at once.
    with Dropper() as dropper:
        worker = make_worker(
            host="127.0.0.1", port=dropper.port, reconnect_min=0.05, reconnect_max=0.4
        )
        try:
            accepted, closed = dropper.wait_for(7, timeout=15)
        finally:
            worker.stop()
            worker.join(5)
    waits = [nxt - drop for drop, nxt in zip(closed[:6], accepted[1:7], strict=True)]
    bases = [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]  # doubling from reconnect_min, capped at reconnect_max
    for wait, base in zip(waits, bases, strict=True):
        assert wait >= 0.75 * base - 0.005, (waits, bases)  # jitter shortens by at most 25 %
    assert max(waits[3:]) <= 0.4 + 0.4, waits  # the cap holds (uncapped: ≥ 0.6, 1.2 s)
    assert not worker.status.connected
    assert worker.status.last_error


def test_the_worker_runs_the_full_store_check_when_idle_and_reports_it(
    store: Store, make_worker
) -> None:
    worker = make_worker(store_check_after=0.0)
    wait_until(lambda: worker.status.store_check.startswith("ok"), 10, "the store check")
    row = store.conn.execute("SELECT value FROM meta WHERE key = 'integrity_check'").fetchone()
    assert json.loads(row[0])["ok"] is True


def test_a_store_check_that_finds_damage_is_reported(db_path: Path, make_worker) -> None:
    from tests.sync.test_store_outbox import damage_a_middle_page, history_store

    store, _ = history_store(db_path, 60, 0)
    store.close()
    damage_a_middle_page(db_path)
    worker = make_worker(store_check_after=0.0)
    wait_until(lambda: worker.status.store_check.startswith("damaged"), 10, "the store check")
    assert "damaged" in worker.status.last_error and worker.is_alive()


def _arrivals(city: City, rid: str) -> list[float]:
    with city._lock:
        return [t for m, t in zip(city.messages, city.arrivals, strict=True) if m["id"] == rid]


def test_resends_back_off_while_the_city_does_not_ack_and_recover_when_it_does(
    store: Store, city: City, make_worker
) -> None:
    """A city whose receivers are behind (a whole city coming back after an outage) must not get
    every unacked message again on the same clock: each probe lengthens the wait (up to
    RESEND_BACKOFF × resend_after); an ack of a message sent only once sets it from the delay
    measured, so a city that acks in time again gets the shipped resend time again."""
    make_worker(resend_after=0.2)
    first = store.append_rating(full_content("S-1"))
    wait_until(lambda: len(_arrivals(city, first["id"])) >= 5, 20, "four resends")
    times = _arrivals(city, first["id"])[:5]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 0.2, 0.3, 0.45, 0.68 s: PROBE_BACKOFF (a flat clock would give 0.2 s each)
    assert all(later >= 1.3 * earlier for earlier, later in itertools.pairwise(gaps)), gaps
    city.ack([first["id"]])
    wait_until(lambda: store.outbox_size() == 0, 10, "the first to be acked")
    second = store.append_rating(full_content("S-2"))
    wait_until(lambda: bool(_arrivals(city, second["id"])), 10, "the second rating")
    city.ack([second["id"]])  # acked at once, sent once: the wait is measured again
    wait_until(lambda: store.outbox_size() == 0, 10, "the second to be acked")
    third = store.append_rating(full_content("S-3"))
    wait_until(lambda: len(_arrivals(city, third["id"])) >= 2, 10, "the third resent")
    sent, resent = _arrivals(city, third["id"])[:2]
    assert resent - sent < 1.0  # back near resend_after (0.2 s), not the 3.2 s reached above


class _SlowCity(threading.Thread):
    """A city slower than the pad's wait: each message acked ``delay`` seconds after it came
    (in arrival order, one ack message each, as a queue behind busy receivers would)."""

    def __init__(self, city: City, delay: float) -> None:
        super().__init__(daemon=True)
        self.city, self.delay, self.stopping = city, delay, threading.Event()

    def run(self) -> None:
        done = 0
        while not self.stopping.is_set():
            with self.city._lock:
                due = [m["id"] for m, t in zip(self.city.messages[done:],
                                                self.city.arrivals[done:], strict=True)
                       if t + self.delay <= time.monotonic()]  # fmt: skip
            for rid in due:
                self.city.ack([rid])
            done += len(due)
            self.stopping.wait(0.02)


@pytest.mark.parametrize("delay", [3.0, 6.0])
def test_a_city_slower_than_the_wait_gets_a_few_probes_not_the_window_again(
    store: Store, city: City, make_worker, delay: float
) -> None:
    """Why the wait grows (issue 16 kept it): a city whose receivers are behind acks every
    message, late and in order; it must get one copy per wait (a probe), never the window."""
    make_worker(resend_after=1.0, max_rate=math.inf)
    first = store.append_rating(full_content("S-0"))
    wait_until(lambda: first["id"] in city.ids(), 5, "the first rating")
    city.ack([first["id"]])  # on time: the link's ack delay is measured (short)
    wait_until(lambda: store.outbox_size() == 0, 5, "the first acked")
    slow = _SlowCity(city, delay)
    slow.start()
    try:
        ids = [store.append_rating(full_content(f"S-{i}"))["id"] for i in range(1, 101)]
        wait_until(lambda: store.outbox_size() == 0, 10 * delay + 20, "all acked, late")
    finally:
        slow.stopping.set()
        slow.join(5)
    copies = sum(city.ids().count(rid) for rid in ids) - len(ids)
    assert set(ids) <= set(city.ids())
    assert copies <= 5, f"{copies} copies sent to a city {delay} s behind"


def test_a_rating_the_city_never_acks_does_not_stop_the_resends_of_the_others(
    store: Store, city: City, make_worker
) -> None:
    """The probe is the lowest seq (what a city keeping the chain can store next); one the city
    refuses for ever must not keep a lost later one from being resent."""
    make_worker(resend_after=0.3, max_rate=math.inf)
    refused = store.append_rating(full_content("S-1"))
    records = [store.append_rating(full_content(f"S-{i}")) for i in range(2, 5)]
    wait_until(lambda: {r["id"] for r in records} <= set(city.ids()), 5, "all sent once")
    # the first copies of the others were lost; the city acks each one's next copy
    later = [r["id"] for r in records]
    deadline = time.monotonic() + 20
    while later:
        assert time.monotonic() < deadline, f"{len(later)} never resent behind a refused one"
        for rid in [rid for rid in later if city.ids().count(rid) >= 2]:
            city.ack([rid])
            later.remove(rid)
        time.sleep(0.02)
    wait_until(lambda: store.outbox_size() == 1, 5, "only the refused one left")
    assert [r["id"] for r in store.pending()] == [refused["id"]]


class _CountingWorker(SyncWorker):
    """The real worker, counting its turns (each one a select() and a loop of paho's)."""

    turns = 0

    def _step(self) -> None:
        self.turns += 1
        super()._step()


def test_a_resend_that_waits_for_a_token_does_not_spin_the_worker(
    store: Store, city: City, broker, db_path: Path
) -> None:
    """A resend due while the bucket is empty waits for the token in select(), not in a loop of
    select(0): the deadline of a due resend is when its token comes (before: ~thousands of turns
    a second of a Pi core, for as long as the city does not ack and the bucket is dry)."""
    worker = _CountingWorker(store_path=db_path, device_id=DEVICE, host=broker.host,
                             port=broker.port, topic_prefix=PREFIX, max_rate=0.5, burst=1,
                             resend_after=0.2, reconnect_min=0.2, reconnect_max=0.5)  # fmt: skip
    worker.start()
    try:
        record = store.append_rating(full_content("S-1"))
        worker.notify()
        wait_until(lambda: bool(_arrivals(city, record["id"])), 5, "the rating at the city")
        before = worker.turns
        # The resend is due 0.2 s after the send; its token comes 2 s after it.
        wait_until(lambda: len(_arrivals(city, record["id"])) >= 2, 5, "the resend")
        turns = worker.turns - before
    finally:
        stop_threads([worker], 5)
    sent, resent = _arrivals(city, record["id"])[:2]
    assert resent - sent >= 1.5  # it did wait for the token
    assert turns < 50, f"{turns} turns while a resend waited {resent - sent:.1f} s for its token"


@pytest.mark.parametrize("lost", [1, 2, 4])
def test_a_rating_whose_outbox_row_vanished_is_sent_when_the_city_names_it_missing(
    store: Store, city: City, make_worker, lost: int
) -> None:
    """The card lost an outbox row (first, middle, last): the pad never sends that rating on
    its own; the city's ack naming it missing makes the pad read it from its table and send it
    as stored, once."""
    records = [store.append_rating(full_content(f"S-{i}")) for i in range(4)]
    store.conn.execute("DROP TRIGGER IF EXISTS outbox_no_delete")
    store.conn.execute("DELETE FROM outbox WHERE seq = ?", [lost])
    store.conn.commit()
    others = [r["id"] for r in records if r["seq"] != lost]
    make_worker()
    wait_until(lambda: set(others) <= set(city.ids()), 5, "the other ratings at the city")
    city.ack(others)
    wait_until(lambda: store.outbox_size() == 0, 5, "the outbox to empty")
    assert records[lost - 1]["id"] not in city.ids()
    asked = {"stream": "ratings", "epoch": store.epoch, "seq": lost}
    city.publish_ack(json.dumps({"ids": [], "missing": [asked]}).encode())
    wait_until(lambda: records[lost - 1]["id"] in city.ids(), 5, "the missing rating sent")
    assert [m for m in city.messages if m["seq"] == lost] == [records[lost - 1]]
