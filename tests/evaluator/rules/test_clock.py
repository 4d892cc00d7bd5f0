"""The clock's synchronisation check: cheap enough for the UI thread."""

from __future__ import annotations

import ctypes.util
import subprocess

import pytest

from evaluator.rules import clock


def test_the_sync_check_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """It used ``ctypes.util.find_library``, which runs ``ldconfig -p`` (a child process, some
    milliseconds) every 30 s in the UI thread."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(ctypes.util, "find_library", refuse)
    first = clock.kernel_clock_synced()
    assert isinstance(first, bool)
    assert clock.kernel_clock_synced() == first


def test_the_system_clock_reports_its_sync_state() -> None:
    stamp = clock.SystemClock().now()
    assert stamp.synced in (True, False)
