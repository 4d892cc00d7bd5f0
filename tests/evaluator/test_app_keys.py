"""The pad signs every rating with its device key; a broken key is a fault, never a lost rating."""

from __future__ import annotations

import json
import os
from pathlib import Path

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message
from kiosk.view import PressLevel
from sync.keys import DeviceKey

REPO = Path(__file__).resolve().parents[2]
START = {
    "clerk": {"id": "A1023", "name": "陈晓明"},
    "stage": "deliver",
    "cases": [
        {"serial": "S-1", "matter_code": "M-1", "matter_name": "居民身份证换领", "kind": "instant"}
    ],
}


def make_app(tmp_path: Path) -> App:
    override = tmp_path / "unit.toml"
    override.write_text(
        f'[device]\nid = "unit-1"\n[counter]\nport = ""\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n",
        encoding="utf-8",
    )
    return App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())


def rate(app: App, serial: str) -> None:
    body = dict(START, cases=[dict(START["cases"][0], serial=serial)])
    assert app.handle(Message(1, "evaluation.start", body))["ok"]
    app.act(PressLevel(Level.SATISFIED))


def test_the_pad_signs_with_the_key_next_to_its_store(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        assert app.config.device.key_file == tmp_path / "device.key"
        rate(app, "S-1")
        [record] = app.store.records()
        key = DeviceKey.load(tmp_path / "device.key")
        assert record["key_id"] == key.key_id

        def check(key_id: str, data: bytes, sig: bytes) -> bool:
            return key_id == key.key_id and key.public.check(data, sig)

        assert app.store.verify() is None
        assert app.store.signatures(check).findings() == ((), ())
        assert app.handle(Message(2, "status", {}))["faults"] == []
    finally:
        app.shutdown()


def test_a_broken_key_is_a_status_fault_and_ratings_are_still_stored(tmp_path: Path) -> None:
    (tmp_path / "device.key").write_text("garbage")
    os.chmod(tmp_path / "device.key", 0o600)
    app = make_app(tmp_path)
    try:
        rate(app, "S-1")
        [record] = app.store.records()
        assert record["level"] == "satisfied" and "sig" not in record
        assert "device_key" in app.handle(Message(2, "status", {}))["faults"]
    finally:
        app.shutdown()
    assert (tmp_path / "device.key").read_text() == "garbage"  # never replaced


def test_shutdown_waits_for_the_key_thread(tmp_path: Path) -> None:
    """A daemon thread still inside the crypto library's native code when the interpreter exits
    aborts the process ("FATAL: exception not rethrown"): shutdown lets the load finish first.
    The load is held until shutdown has begun, so a shutdown that did not wait returns first."""
    import threading

    app = make_app(tmp_path)
    key = app.devices.key
    assert key is not None
    gate = threading.Event()
    load = key._load

    def held_load() -> None:
        gate.wait(10)
        load()

    key._load = held_load  # type: ignore[method-assign]
    key.start()  # as run() does after READY
    opener = threading.Timer(0.2, gate.set)  # opens the gate once shutdown is under way
    opener.start()
    app.shutdown()
    assert key._done.is_set()  # shutdown returned only after the load ended
    opener.cancel()
    assert key() is not None
