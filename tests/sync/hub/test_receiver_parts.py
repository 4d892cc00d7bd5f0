"""Real ``evaluator hub run`` processes on a real mosquitto and PostgreSQL (issue 16): two
receivers with ``--part`` split the devices, never one device's chain; the progress line; the
systemd watchdog pings stop when the loop hangs in the database."""

from __future__ import annotations

import ast
import hashlib
import itertools
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sync.hub.db import open_db
from sync.hub.ingest import Ingest
from sync.hub.receiver import ReceiverError, parse_part, partition_of
from sync.keys import DeviceKey
from tests.pg import PostgresServer
from tests.support import Broker, stop_process, wait_for
from tests.sync.hub.helpers import chain, payload, topic

ROOT = Path(__file__).resolve().parents[3]
_names = itertools.count(1)


class Hub:
    """One ``evaluator hub run`` process, its log in a file."""

    def __init__(self, tmp: Path, name: str, url: str, broker: Broker, *extra: str,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.log = tmp / f"{name}.log"
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "evaluator", "hub", "run", "--db", url,
             "--broker", f"mqtt://{broker.host}:{broker.port}", "--client-id", name, *extra],
            stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})},
        )  # fmt: skip
        wait_for(lambda: "receiving on" in self.text(), 30, f"{name} receiving")

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> dict[str, int]:
        """Stop it (SIGTERM): its counters from the last line."""
        stop_process(self.process, 15)
        self._out.close()
        found = re.findall(r"stopped; (\{.*\})", self.text())
        return ast.literal_eval(found[-1]) if found else {}


@pytest.fixture
def hubs() -> Iterator[list[Hub]]:
    started: list[Hub] = []
    yield started
    for hub in started:
        if hub.process.poll() is None:
            hub.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.fresh_database(f"parts_{next(_names)}")


def _publisher(broker: Broker) -> Any:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _devices(tmp: Path, url: str, names: list[str]) -> dict[str, DeviceKey]:
    keys = {d: DeviceKey.create(tmp / f"{d}.key") for d in names}
    with open_db(url) as db:
        for device, key in keys.items():
            db.register(device, key.public.text)
    return keys


def test_a_part_is_parsed_and_every_device_has_one_stable_part() -> None:
    assert parse_part("1/3") == (1, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ReceiverError, match="I/N"):
            parse_part(bad)
    # fixed values: the same device lands on the same part on every host and every release
    assert [partition_of(f"440500-hall1-w{i}", 2) for i in range(8)] == [
        partition_of(f"440500-hall1-w{i}", 2) for i in range(8)
    ]
    digest = hashlib.sha256(b"440500-hall1-w12").digest()
    assert partition_of("440500-hall1-w12", 2) == int.from_bytes(digest[:8], "big") % 2
    assert {partition_of(f"pad-{i}", 4) for i in range(64)} == {0, 1, 2, 3}


def test_two_parts_store_every_chain_once_none_parked_both_working(
    tmp_path: Path, broker: Broker, pg_url: str, hubs: list[Hub]
) -> None:
    """Eight pads' chains (40 records each, published interleaved as pads do) through two real
    receivers with --part 0/2 and 1/2 on one PostgreSQL: every record stored once, nothing
    ever parked (each chain reaches one receiver, in order), both receivers storing; a pad
    registered while they run is picked up from the registry."""
    names = [f"440500-hall1-w{i:02d}" for i in range(8)]
    keys = _devices(tmp_path, pg_url, names)
    assert {partition_of(d, 2) for d in names} == {0, 1}
    for i in range(2):
        hubs.append(Hub(tmp_path, f"hub-{i}", pg_url, broker, "--part", f"{i}/2",
                        "--registry-every", "0.3"))  # fmt: skip
    late = "440500-hall2-w01"
    keys.update(_devices(tmp_path, pg_url, [late]))
    part = partition_of(late, 2)
    count = len([d for d in [*names, late] if partition_of(d, 2) == part])
    wait_for(lambda: f"{count} in all" in hubs[part].text(), 20, "the late pad subscribed")
    chains = {d: chain(k, d, 40) for d, k in keys.items()}
    pub = _publisher(broker)
    parked_seen = 0
    try:
        for group in zip(*chains.values(), strict=True):
            for record in group:
                pub.publish(topic(record["device_id"]), payload(record), qos=1)
        total = sum(len(c) for c in chains.values())
        with open_db(pg_url) as db:

            def done() -> bool:
                nonlocal parked_seen
                parked_seen = max(parked_seen, db.parked())
                return db.count("ratings") == total

            wait_for(done, 60, f"all {total} stored")
            for device, records in chains.items():
                assert db.records(device) == records
            assert db.parked() == 0 and db.dead() == []
    finally:
        pub.loop_stop()
        pub.disconnect()
    stats = [hub.stop() for hub in hubs]
    assert parked_seen == 0
    assert all(s["stored"] > 0 and s["parked"] == 0 for s in stats), stats
    assert sum(s["stored"] for s in stats) == total  # each record stored by one receiver once
    assert sum(s["received"] for s in stats) == total  # and received by one only


def test_the_progress_line_tells_each_interval_and_the_totals(
    tmp_path: Path, broker: Broker, hubs: list[Hub]
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    keys = _devices(tmp_path, url, ["440500-hall1-w01"])
    hubs.append(Hub(tmp_path, "hub", url, broker, "--progress-every", "0.5"))
    records = chain(keys["440500-hall1-w01"], "440500-hall1-w01", 5)
    pub = _publisher(broker)
    line = (r"INFO sync\.hub\.receiver: progress: last [\d.]+s stored \d+, acked \d+, parked \d+,"
            r" dead \d+, conflicts \d+; total stored {}, acked {}, parked 2, dead 1,"
            r" conflicts held 0; connected")  # fmt: skip
    try:
        for record in [*records[:2], *records[3:]]:  # seq 4 and 5 park
            pub.publish(topic(record["device_id"]), payload(record), qos=1)
        pub.publish(topic("440500-hall1-w01"), b"not json", qos=1)
        wait_for(lambda: re.search(line.format(2, 2), hubs[0].text()), 20, "2 stored, 2 parked")
        pub.publish(topic("440500-hall1-w01"), payload(records[2]), qos=1)
        wait_for(lambda: re.search(line.format(5, 5), hubs[0].text()), 20, "all stored")
    finally:
        pub.loop_stop()
        pub.disconnect()
    lines = [line for line in hubs[0].text().splitlines() if "progress: last" in line]
    recent = [int(re.search(r"last [\d.]+s stored (\d+)", line)[1]) for line in lines]
    assert sum(recent) == 5  # each interval's own count, adding up to the total


def _notifications(sock: socket.socket, seconds: float) -> list[str]:
    """What arrives on ``sock`` within ``seconds``."""
    got: list[str] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return got


def test_the_watchdog_pings_stop_while_the_database_hangs(
    tmp_path: Path, broker: Broker, pg_url: str, hubs: list[Hub]
) -> None:
    """With a real NOTIFY_SOCKET and WATCHDOG_USEC: READY=1, then WATCHDOG=1 every half
    interval; a batch stuck behind a lock in PostgreSQL stops them (systemd would restart the
    service), and they resume when the database answers again."""
    keys = _devices(tmp_path, pg_url, ["440500-hall1-w01"])
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}  # a ping every 0.2 s
    try:
        hubs.append(Hub(tmp_path, "hub", pg_url, broker, env=env))
        first = _notifications(sock, 1.5)
        assert "READY=1" in first and first.count("WATCHDOG=1") >= 3, first
        (record,) = chain(keys["440500-hall1-w01"], "440500-hall1-w01", 1)
        with psycopg.connect(pg_url) as lock:
            lock.execute("LOCK TABLE hub_heads, hub_records IN ACCESS EXCLUSIVE MODE")
            pub = _publisher(broker)
            pub.publish(topic("440500-hall1-w01"), payload(record), qos=1)
            wait_for(lambda: lock.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0,
                20, "the receiver waiting on the lock")  # fmt: skip
            _notifications(sock, 0.3)  # what was sent before it blocked
            stuck = _notifications(sock, 2.0)
            assert "WATCHDOG=1" not in stuck, stuck
            lock.rollback()
        after = _notifications(sock, 1.5)
        assert after.count("WATCHDOG=1") >= 3, after
        with open_db(pg_url) as db:
            wait_for(lambda: db.count("ratings") == 1, 20, "the record stored")
        pub.loop_stop()
        pub.disconnect()
    finally:
        sock.close()


def test_an_older_database_is_filled_after_start_while_the_receiver_acks(
    tmp_path: Path, broker: Broker, hubs: list[Hub]
) -> None:
    """A database stored before the report tables: the receiver is up and storing at once
    (the fill never blocks the start, where systemd's timeout would kill it), and fills the
    report tables in the background: a day's figures then count every rating."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    device = "440500-hall1-w01"
    keys = _devices(tmp_path, url, [device])
    records = chain(keys[device], device, 30)
    with open_db(url) as db:
        stored = Ingest(db).handle_batch([(topic(device), payload(r)) for r in records[:25]])
        assert stored.failed == 0
        with db.transaction():  # as a database made before the report tables holds them
            for table in ("hub_report_times", "hub_report_serials", "hub_backfills"):
                db.execute(f"DELETE FROM {table}")
    hubs.append(Hub(tmp_path, "hub", url, broker))
    pub = _publisher(broker)
    try:
        for record in records[25:]:
            pub.publish(topic(device), payload(record), qos=1)
        with open_db(url) as db:
            wait_for(lambda: db.count("ratings") == 30, 20, "the new ratings stored")
            wait_for(lambda: db.rows("SELECT 1 FROM hub_backfills"), 20, "the fill done")
            assert db.rows("SELECT count(*) FROM hub_report_times")[0][0] == 30
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert "filling the report tables of an older database in the background" in hubs[0].text()
