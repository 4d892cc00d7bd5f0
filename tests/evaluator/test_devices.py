"""Every device is chosen from the config in one place, and the app runs on what it is given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.devices import Devices, from_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from kiosk.counter import CounterLink
from kiosk.dummylink import DummyLink
from kiosk.view import PressLevel
from sync.mqtt import SyncWorker
from sync.offline import DISABLED, OfflineSync
from sync.store import Store

REPO = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, *, port: str, mqtt: bool) -> Any:
    site = tmp_path / "site.toml"
    site.write_text(
        f'[device]\nid = "dev-1"\n[counter]\nport = "{port}"\n'
        f"[mqtt]\nenabled = {'true' if mqtt else 'false'}\n"
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n",
        encoding="utf-8",
    )
    return load_config([REPO / "config" / "demo.toml", site])


@pytest.mark.parametrize(
    ("port", "kind"),
    [
        ("", type(None)),
        ("dummy://", DummyLink),
        ("sim://demo", CounterLink),
        ("loop://", CounterLink),
    ],
)
def test_the_counter_link_is_picked_from_the_port(tmp_path: Path, port: str, kind: type) -> None:
    assert isinstance(from_config(config(tmp_path, port=port, mqtt=False)).link, kind)


@pytest.mark.parametrize(("enabled", "kind"), [(False, OfflineSync), (True, SyncWorker)])
def test_the_sync_is_picked_from_mqtt_enabled(tmp_path: Path, enabled: bool, kind: type) -> None:
    assert isinstance(from_config(config(tmp_path, port="", mqtt=enabled)).sync, kind)


def test_the_offline_sync_says_why_nothing_is_sent() -> None:
    sync = OfflineSync()
    sync.start()
    sync.notify()
    assert not sync.status.connected and sync.status.last_error == DISABLED
    sync.stop()
    sync.join(1)


def test_the_app_runs_on_the_devices_it_is_given(tmp_path: Path) -> None:
    """No device is built by the app: the store, link, sync and clock handed in are used."""
    cfg = config(tmp_path, port="", mqtt=True)  # the config names a broker and no link...
    opened: list[Path] = []
    path = tmp_path / "given.db"

    def open_store() -> Store:
        opened.append(path)
        return Store(path, device_id="dev-1")

    link, clock = DummyLink(), FakeClock()
    devices = Devices(
        clock=clock, open_store=open_store, sync=OfflineSync(), link=link, open_screen=lambda: None
    )
    app = App(cfg, devices=devices)
    try:
        assert app.clock is clock and app.link is link and opened == [path]
        link.feed({"id": 1, "type": "clerk.sign_in", "clerk": {"id": "A1", "name": "李娜"}})
        body = {
            "stage": "deliver",
            "clerk": {"id": "A1", "name": "李娜"},
            "cases": [
                {"serial": "S-1", "matter_code": "M1", "matter_name": "户籍", "kind": "instant"}
            ],
        }
        link.feed({"id": 2, "type": "evaluation.start", **body})
        app.step()
        app.act(PressLevel(Level.SATISFIED))
        assert [f.get("id") for f in link.sent if "id" in f] == [1, 2]
        clock.advance(cfg.session.thanks + 0.1)  # the rating is told when its 谢谢 ends
        app.step()
        finished = {"event": "evaluation.finished", "serials": ["S-1"], "outcome": "rated"}
        assert link.sent[-1] == finished
        assert app.store.path == path and not (tmp_path / "r.db").exists()
    finally:
        app.shutdown()


def test_a_frame_the_protocol_refuses_is_answered_by_the_dummy_link() -> None:
    link = DummyLink(on_message=lambda m: pytest.fail("refused frames never reach the app"))
    link.feed({"id": 7, "type": "evaluation.begin"})
    assert link.sent[-1]["error"]["code"] == "unknown_type"
    assert bytes(link.output).endswith(b"\n")
