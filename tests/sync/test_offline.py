"""The offline stand-in: nothing sent, the store still checked on schedule (issue 8)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sync.offline import DISABLED, OfflineSync
from sync.store import Store
from tests.sync.test_mqtt import full_content, wait_until

DEVICE = "pad-440500-07"


def test_without_a_store_nothing_runs() -> None:
    sync = OfflineSync()
    before = threading.active_count()
    sync.start()
    sync.notify()
    assert threading.active_count() == before
    assert sync.status.last_error == DISABLED and sync.status.store_check == ""
    sync.stop()
    sync.join(1)


def test_the_store_is_checked_on_schedule_and_the_result_reported(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    with Store(path, device_id=DEVICE) as store:
        store.append_rating(full_content("S-1"))
    sync = OfflineSync(path, DEVICE, store_check_after=0.0)
    sync.start()
    try:
        wait_until(lambda: sync.status.store_check.startswith("ok"), 10, "the store check")
        assert not sync.status.connected and sync.status.last_error == DISABLED
    finally:
        sync.stop()
        sync.join(5)
    assert not any(t.name == OfflineSync.name for t in threading.enumerate())
    with Store(path, device_id=DEVICE) as store:
        assert store.outbox_size() == 1  # nothing sent, nothing lost


def test_stop_ends_the_waiting_check_thread_at_once(tmp_path: Path) -> None:
    sync = OfflineSync(tmp_path / "ratings.db", DEVICE)  # first check in 60 s
    sync.start()
    sync.stop()
    sync.join(5)
    assert not any(t.name == OfflineSync.name for t in threading.enumerate())


def test_a_store_path_needs_the_device_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="device_id"):
        OfflineSync(tmp_path / "ratings.db")
