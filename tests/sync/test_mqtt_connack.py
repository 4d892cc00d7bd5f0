"""A broker that accepts the connection but is slow to answer it (a loaded broker, a city coming
back after an outage): the pad's worker waits for the CONNACK without burning its CPU.

Found by the issue 8 fleet run: while the socket was open and the CONNACK not yet there, the
poll and status deadlines (which only move once connected) were already past, so every turn's
``select`` had a zero timeout and the worker spun thousands of times a second — a thousand pads
reconnecting at once starved the broker of the CPU it needed to answer them.
"""

from __future__ import annotations

import select as real_select
import socket
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sync.mqtt as mqtt_module
from sync.mqtt import SyncWorker
from sync.store import Store
from tests.sync.test_mqtt import full_content, wait_until


class SilentBroker:
    """A TCP server that accepts connections, reads what comes and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = threading.Event()
        self._conns: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.server.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self._conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self.server.close()


@pytest.fixture
def silent() -> Iterator[SilentBroker]:
    broker = SilentBroker()
    yield broker
    broker.close()


def test_the_worker_waits_for_a_slow_connack_without_spinning(
    tmp_path: Path, silent: SilentBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = 0

    def counting_select(*args: Any) -> Any:
        nonlocal turns
        if threading.current_thread().name == "mqtt-sync":
            turns += 1
        return real_select.select(*args)

    monkeypatch.setattr(mqtt_module, "select", types.SimpleNamespace(select=counting_select))
    path = tmp_path / "ratings.db"
    with Store(path, device_id="pad-1") as store:
        store.append_rating(full_content("S-1"))  # something waits: the lanes have work
    worker = SyncWorker(store_path=path, device_id="pad-1", host="127.0.0.1", port=silent.port,
                        poll_interval=0.05, connect_timeout=5.0)  # fmt: skip
    worker.start()
    try:
        assert silent.accepted.wait(20), "the worker never connected"
        wait_until(lambda: turns > 0, 10, "the worker's first turn")
        before = turns
        time.sleep(1.0)  # the CONNACK deadline is 10 s away: nothing to do but wait
        during = turns - before
    finally:
        worker.stop()
        worker.join(10)
    assert not worker.is_alive()
    # Waiting: a handful of turns (a notify, the poll); spinning: thousands.
    assert during < 50, f"{during} loop turns in 1 s while awaiting the CONNACK"
