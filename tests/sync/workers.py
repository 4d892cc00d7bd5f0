"""Starting real ``SyncWorker`` threads in the worker's tests, each stopped and joined at the end
(tests/sync/test_mqtt.py, test_mqtt_events.py: their own defaults, one way to run them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sync.mqtt import SyncWorker
from tests.support import stop_threads


@contextmanager
def worker_factory(
    broker: Any, store_path: Path, device_id: str, **defaults: Any
) -> Iterator[Callable[..., SyncWorker]]:
    """``make(**options)`` starts a worker of ``device_id`` on ``store_path`` and ``broker``
    (topics under ``hcp/v1``, 50 ratings/s, reconnecting after 0.2 to 0.5 s), with ``defaults``
    then ``options`` on top; every worker made is stopped and joined on leaving (failing if one
    does not end within 5 s)."""
    base: dict[str, Any] = {
        "store_path": store_path,
        "device_id": device_id,
        "host": broker.host,
        "port": broker.port,
        "topic_prefix": "hcp/v1",
        "max_rate": 50.0,
        "reconnect_min": 0.2,
        "reconnect_max": 0.5,
    }
    workers: list[SyncWorker] = []

    def make(**options: Any) -> SyncWorker:
        worker = SyncWorker(**{**base, **defaults, **options})
        workers.append(worker)
        worker.start()
        return worker

    try:
        yield make
    finally:
        stop_threads(workers, 5)
