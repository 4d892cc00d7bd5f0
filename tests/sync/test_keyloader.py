"""``sync.keyloader``: the device key loaded beside the pad; a broken key never stops a rating."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from sync.keyloader import KeyLoader
from sync.keys import DeviceKey


def test_the_first_start_creates_the_key_and_later_starts_load_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / "device.key"
    first = KeyLoader(path)
    first.start()
    key = first()
    assert key is not None and first.created and first.problem == ""
    second = KeyLoader(path)
    second.start()
    again = second()
    assert again is not None and not second.created
    assert again.public.raw == key.public.raw


def test_called_before_start_it_loads_there_and_then(tmp_path: Path) -> None:
    loader = KeyLoader(tmp_path / "device.key")
    key = loader()
    assert key is not None and loader() is key
    loader.start()  # idempotent after a load
    assert loader() is key


def test_a_broken_key_gives_none_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "device.key"
    DeviceKey.create(path)
    os.chmod(path, 0o644)
    loader = KeyLoader(path)
    with caplog.at_level(logging.CRITICAL, logger="sync.keyloader"):
        loader.start()
        assert loader() is None
    assert "chmod 600" in loader.problem
    assert any("UNSIGNED" in r.getMessage() for r in caplog.records)
    assert os.stat(path).st_mode & 0o777 == 0o644  # nothing replaced or changed


def test_a_store_with_a_broken_key_still_stores_unsigned(tmp_path: Path) -> None:
    from sync.store import Store
    from tests.sync.test_store import DEVICE, content

    (tmp_path / "device.key").write_text("garbage")
    os.chmod(tmp_path / "device.key", 0o600)
    loader = KeyLoader(tmp_path / "device.key")
    with Store(tmp_path / "r.db", device_id=DEVICE, signer=loader) as store:
        record = store.append_rating(content("S-1"))
    assert "sig" not in record and "not a device key" in loader.problem


def test_a_key_that_hangs_holds_up_one_rating_at_most(tmp_path: Path) -> None:
    """A key on a hung file system: the first seal waits ``wait_s``, every later one not at
    all, and the fault is reported; when the load ends late the key is used and the fault
    clears."""
    import threading

    gate = threading.Event()
    loader = KeyLoader(tmp_path / "device.key", wait_s=0.05)
    real_load = loader._load

    def hung_load() -> None:
        gate.wait(10)  # the file system answers only when the test says so
        real_load()

    loader._load = hung_load  # type: ignore[method-assign]
    loader.start()
    assert loader() is None and "did not load within" in loader.problem
    loader.wait_s = 30  # a second wait would now outlast the check below
    waited = threading.Event()

    def second() -> None:
        loader()
        waited.set()

    threading.Thread(target=second).start()
    assert waited.wait(5)  # returned while the load still hangs: no second wait
    gate.set()
    loader.join()
    assert loader() is not None and loader.problem == ""


def test_a_fifo_at_the_key_path_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    os.mkfifo(path, 0o600)
    loader = KeyLoader(path)
    loader.start()
    assert loader() is None and "not a regular file" in loader.problem
