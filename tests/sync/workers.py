"""Starting real ``SyncWorker`` threads in the worker's tests, each stopped and joined at the end
(tests/sync/test_mqtt.py, test_mqtt_events.py: their own defaults, one way to run them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sync.mqtt import SyncWorker
from tests.support import stop_threads


@contextmanager
def worker_factory(**defaults: Any) -> Iterator[Callable[..., SyncWorker]]:
    """``make(**options)`` starts a worker with ``defaults`` updated by ``options``; every worker
    made is stopped and joined on leaving (failing if one does not end within 5 s)."""
    workers: list[SyncWorker] = []

    def make(**options: Any) -> SyncWorker:
        worker = SyncWorker(**{**defaults, **options})
        workers.append(worker)
        worker.start()
        return worker

    try:
        yield make
    finally:
        stop_threads(workers, 5)
