"""Faults the clerk's side hears in ``status``: a failed scheduled store check."""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.app import App
from evaluator.config import load_config
from evaluator.devices import from_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.protocol import Message
from sync.offline import OfflineSync
from tests.sync.test_mqtt import wait_until
from tests.sync.test_store_outbox import DEVICE, damage_a_middle_page, history_store

REPO = Path(__file__).resolve().parents[2]


def test_a_damaged_store_found_by_the_scheduled_check_is_a_status_fault(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    store, _ = history_store(path, 60, 0)
    store.close()
    damage_a_middle_page(path)  # the open's own check cannot see it; the full check does
    override = tmp_path / "unit.toml"
    override.write_text(
        f'[device]\nid = "{DEVICE}"\n[counter]\nport = ""\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(path))}\n",
        encoding="utf-8",
    )
    config = load_config([REPO / "config" / "demo.toml", override])
    devices = from_config(config, clock=FakeClock())
    devices.sync = OfflineSync(path, DEVICE, store_check_after=0.0)  # the shipped stand-in, now
    app = App(config, devices=devices)
    try:
        assert "store_check" not in app.handle(Message(1, "status", {}))["faults"]
        app.sync.start()  # as run() does after READY
        wait_until(lambda: app.sync.status.store_check.startswith("damaged"), 20, "the check")
        assert "store_check" in app.handle(Message(2, "status", {}))["faults"]
    finally:
        app.shutdown()
