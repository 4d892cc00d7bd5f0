"""The city link's failures and the client certificate through a real App (issue 14): the last
link error and a certificate that expires within 30 days reach the counter link's ``status``
(fault ``cert_expiring``), the technician's menu in the pad's language, and the city as a
``cert_expiring`` event.  The real worker tries an ``mqtts://`` URL on a free port of loopback
(nothing listens: refused); the certificates are real, made by :mod:`sync.tlscerts`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk import texts
from sync import tlscerts
from tests.support import free_port
from tests.sync.test_mqtt import wait_until
from tests.sync.test_mqtt_events import assert_valid, schema

REPO = Path(__file__).resolve().parents[2]
DEVICE = "unit-link"


def make_app(tmp_path: Path, *, days: int, language: str = "zh") -> Any:
    from evaluator.app import App
    from evaluator.config import load_config
    from evaluator.rules.clock import FakeClock

    ca = tlscerts.make_ca(tmp_path / "ca")
    key = tlscerts.create_tls_key(tmp_path / "device.key")
    cert = tmp_path / "device.crt"
    cert.write_bytes(tlscerts.sign_csr(tlscerts.make_csr(key, DEVICE), ca, days=days))
    override = tmp_path / "link.toml"
    override.write_text(
        f'[device]\nid = "{DEVICE}"\n[counter]\nport = "dummy://"\n'
        f'[screen]\nlanguage = "{language}"\n'
        f'[mqtt]\nurls = ["mqtts://127.0.0.1:{free_port()}"]\n'
        f"tls_ca = {json.dumps(str(ca.cert_path))}\ntls_cert = {json.dumps(str(cert))}\n"
        f"tls_key = {json.dumps(str(tmp_path / 'device.key'))}\n"
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n",
        encoding="utf-8",
    )
    return App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    before = texts.language()
    a = make_app(tmp_path, days=10)
    a.sync.start()
    wait_until(lambda: a.sync.status.cert is not None and a.sync.status.link is not None, 10,
               "the certificate check and a failed attempt")  # fmt: skip
    yield a
    a.shutdown()
    texts.select(before)


def status(app: Any) -> dict[str, Any]:
    before = len(app.link.sent)
    app.link.feed({"id": 1, "type": "status"})
    while len(app.link.sent) == before:
        app.step()
    return app.link.sent[before]


def events(app: Any, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(app.config.storage.path) as conn:
        rows = conn.execute("SELECT record FROM events WHERE kind = ? ORDER BY seq", (kind,))
        return [json.loads(r[0]) for r in rows]


def test_an_expiring_client_certificate_is_a_fault_an_event_and_on_the_menu(app: Any) -> None:
    cert = app.sync.status.cert
    assert cert.expiring and cert.days_left in (9, 10) and not cert.problem
    reply = status(app)
    assert "cert_expiring" in reply["faults"]
    assert_valid(schema("counter-reply"), reply)
    told = events(app, "cert_expiring")
    assert len(told) == 1, told
    event = told[0]
    assert event["active"] is True and event["days_left"] == cert.days_left
    assert event["not_after"] == cert.not_after and "device.crt" in event["message"]
    assert_valid(schema("event"), event)
    app.step()  # the same check again: no second event
    assert len(events(app, "cert_expiring")) == 1
    info = dict(app.tech.info())
    assert info[texts.get("tech_label_cert", "zh")] == texts.get(
        "tech_cert_expiring_fmt", "zh"
    ).format(date=cert.not_after[:10], days=cert.days_left)


def test_the_last_link_error_is_on_the_menu_in_the_pads_language(app: Any) -> None:
    link = app.sync.status.link
    assert link.cause == "refused" and link.broker.startswith("mqtts://127.0.0.1:")
    shown = dict(app.tech.info())[texts.get("tech_label_link", "zh")]
    assert shown.startswith(texts.get("link_cause_refused", "zh"))
    assert "次" in shown
    with texts.using("en"):
        shown = dict(app.tech.info())[texts.get("tech_label_link", "en")]
    assert shown.startswith("connection refused") and "×" in shown


def test_a_certificate_far_from_expiry_is_no_fault_and_no_event(tmp_path: Path) -> None:
    app = make_app(tmp_path, days=400)
    app.sync.start()
    try:
        wait_until(lambda: app.sync.status.cert is not None, 10, "the certificate check")
        assert not app.sync.status.cert.expiring and app.sync.status.cert.days_left >= 398
        assert "cert_expiring" not in status(app)["faults"]
        assert events(app, "cert_expiring") == []
    finally:
        app.shutdown()


def test_every_link_cause_has_a_menu_text_in_both_languages() -> None:
    from sync.linkerror import CAUSES

    assert texts.LINK_CAUSES == CAUSES
    for cause in CAUSES:
        for language in texts.LANGUAGES:
            assert texts.get(f"link_cause_{cause}", language)
