"""A real ``App`` on the shipped demo configuration, for tests that drive the app loop itself:
no serial port (the counter link's stand-in), no MQTT, no display, a fresh SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluator.app import App
from evaluator.config import load_config

REPO = Path(__file__).resolve().parents[2]
START_BODY: dict[str, Any] = {
    "clerk": {"id": "A1023", "name": "陈晓明"},
    "stage": "deliver",
    "cases": [
        {
            "serial": "44050020261126000123",
            "matter_code": "11440500MB2C9300XR4442111009000",
            "matter_name": "居民身份证换领",
            "kind": "instant",
        }
    ],
}
"""An ``evaluation.start`` body the app tests share: the clerk A1023 and one case of the
shipped examples (居民身份证换领).  Read only: a test that needs another builds a new dict."""


def demo_app(tmp_path: Path, device_id: str, *, extra: str = "") -> App:
    """``config/demo.toml`` with the device ``device_id`` (area 440500), the ``dummy://`` counter
    link, MQTT off, the dummy screen and the store ``tmp_path/r.db``; ``extra``: more TOML
    (whole tables).  The caller shuts it down."""
    override = tmp_path / "o.toml"
    override.write_text(
        f'[device]\nid = "{device_id}"\narea_code = "440500"\n[counter]\nport = "dummy://"\n'
        f"[mqtt]\nenabled = false\n[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f'[screen]\ndriver = "dummy"\n{extra}',
        encoding="utf-8",
    )
    return App(load_config([REPO / "config" / "demo.toml", override]))
