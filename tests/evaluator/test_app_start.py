"""The pad's start (issue 6): what ``READY=1`` promises, and what the start leaves for later.

``evaluator run`` is started as systemd would (a ``NOTIFY_SOCKET``), with ``-X importtime`` so
the order of its imports can be read beside its log.  How long the start takes is measured by
``bench/process.py``, not here.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.cli import main
from sync.store import MIGRATIONS, Store

REPO = Path(__file__).resolve().parents[2]
#: Libraries the pad uses only after its start: the store's migrations (a new or older store),
#: the idle QR code (qrcode imports Pillow), the MQTT client (the sync worker's thread), the
#: receipt printer's library (the spooler's thread) and the device key's crypto library.
#: Printing receipts on the shipped stand-in (dummy) printer.
PRINTING = (
    '[receipt]\nprint = "always"\nhall = "大厅"\n'
    'url_template = "https://hcp.example.org/r?{query}"\n'
)
LATER = ("sqlite_utils", "qrcode", "PIL", "paho", "escpos", "cryptography")
#: The log line ``App.run`` writes just before it sends READY=1.
RUNNING = " running (storage "


def imported_before(output: str, marker: str) -> list[str]:
    """Top-level package names ``-X importtime`` reported before the first line with
    ``marker``."""
    names = []
    for line in output.splitlines():
        if marker in line:
            return names
        if line.startswith("import time:") and "|" in line:
            names.append(line.rsplit("|", 1)[1].strip().split(".")[0])
    raise AssertionError(f"no line with {marker!r} in:\n{output[-3000:]}")


@pytest.mark.parametrize("receipts", ["", PRINTING], ids=["no_receipts", "printing"])
def test_ready_is_sent_once_the_store_is_open_and_written_and_not_before_libraries_for_later(
    tmp_path: Path, receipts: str
) -> None:
    """At READY=1 the store exists, is migrated and has taken this start's write (a rating can
    be committed); the libraries for later (migrations of an older store, the QR, MQTT, the
    printer's) were not imported before it, although MQTT and printing are on."""
    store = tmp_path / "var" / "ratings.db"
    with socket.socket() as probe:  # a port where no broker listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = tmp_path / "site.toml"
    site.write_text(
        '[device]\nid = "start-test"\nwindow = "12号窗口"\n'
        '[counter]\nport = "dummy://"\n'
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        f"[storage]\npath = {json.dumps(str(store))}\n"
        '[screen]\ndriver = "dummy"\n' + receipts,
        encoding="utf-8",
    )
    # Created and migrated by an earlier start (this one needs no migration); its mark of
    # that start is replaced by one the pad cannot write.
    Store(store, device_id="start-test").close()
    with sqlite3.connect(store, isolation_level=None) as conn:
        conn.execute("UPDATE meta SET value = 'before this start' WHERE key = 'opened_at'")
    conn.close()

    notify_path = tmp_path / "notify.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(NOTIFY_SOCKET=str(notify_path), SDL_VIDEODRIVER="dummy")
    log = tmp_path / "pad.log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, log.open("wb") as out:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        pad = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "evaluator", "run", "--config", str(site)],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            states: list[str] = []
            while "READY=1" not in states:
                states += notify.recv(4096).decode().split("\n")
            # The pad is running: read its store beside it, read-only.
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
                opened = conn.execute("SELECT value FROM meta WHERE key = 'opened_at'").fetchone()
                applied = {r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")}
            conn.close()
            pad.send_signal(signal.SIGTERM)
            code = pad.wait(20)
        finally:
            if pad.poll() is None:
                pad.kill()
                pad.wait(5)
    output = log.read_text(errors="replace")
    assert code == 0, output
    assert opened is not None and opened[0] != "before this start", output  # written
    assert applied == {name for name, _ in MIGRATIONS}
    before = imported_before(output, RUNNING)
    assert "evaluator" in before and "pygame" in before  # the reading works
    assert [name for name in LATER if name in before] == []
    # Printing no receipts, the pad never imports the printer adapter at all.
    assert ("printer" in before) == bool(receipts)


def test_a_run_that_fails_to_start_leaves_the_garbage_collector_on(tmp_path: Path) -> None:
    """``evaluator run`` pauses the collector for its start; a start that fails resumes it
    (``main`` is called in-process by tests and tools)."""
    assert gc.isenabled()
    bad = tmp_path / "bad.toml"
    bad.write_text('[mqtt]\nhots = "x"\n', encoding="utf-8")
    assert main(["run", "--config", str(bad)]) == 2
    assert gc.isenabled()
