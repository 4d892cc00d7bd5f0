"""``evaluator.sdnotify``: the one sd_notify the pad and the city receiver use, against a real
datagram socket as systemd holds it."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest

from evaluator.sdnotify import sd_notify


def test_the_state_reaches_the_socket_named_in_notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(tmp_path / "notify"))
        systemd.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        sd_notify("READY=1")
        sd_notify("RELOADING=1\nMONOTONIC_USEC=1")
        assert systemd.recv(64) == b"READY=1"
        assert systemd.recv(64) == b"RELOADING=1\nMONOTONIC_USEC=1"


def test_an_abstract_socket_is_named_with_an_at_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"evaluator-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind("\0" + name)
        systemd.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        sd_notify("STOPPING=1")
        assert systemd.recv(64) == b"STOPPING=1"


def test_outside_systemd_or_with_systemd_gone_it_neither_raises_nor_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    sd_notify("READY=1")  # a no-op
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING, logger="evaluator.sdnotify"):
        sd_notify("WATCHDOG=1")
    assert "sd_notify failed" in caplog.text
