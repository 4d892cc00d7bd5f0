"""systemd's watchdog (issue 9): ``WATCHDOG=1`` at half of ``WATCHDOG_USEC`` while every worker
is alive, none once one has died, ``STOPPING=1`` at SIGTERM.  systemd is played by a real unix
datagram socket named in ``NOTIFY_SOCKET``; the real process is ``python -m evaluator run``."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator.app import App, watchdog_interval
from evaluator.config import load_config

REPO = Path(__file__).resolve().parents[2]
#: How long a test waits for something the pad is expected to do (a bound on failure only).
PATIENCE = 30.0


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """systemd's side: a datagram socket in ``NOTIFY_SOCKET``, non-blocking."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


def received(sock: socket.socket) -> list[str]:
    """Every message waiting on ``sock`` (the pad's sends are done when its call returns)."""
    messages: list[str] = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_the_interval_is_half_of_watchdog_usec_and_only_for_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # inherited from a parent
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "-5", "30s"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert watchdog_interval() is None


@pytest.fixture
def linked_app(tmp_path: Path) -> Iterator[App]:
    """An App whose counter link is a real thread on pyserial's ``loop://`` port."""
    site = tmp_path / "site.toml"
    site.write_text(
        '[device]\nid = "unit-1"\n[counter]\nport = "loop://"\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n",
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", site]))
    app.link.start()
    yield app
    app.shutdown()


def test_pings_go_while_the_counter_link_lives_and_stop_when_it_dies(
    linked_app: App,
    notify: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="evaluator.app")  # whatever an earlier test set
    app = linked_app
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    app.start_watchdog()
    app.watchdog(100.0)
    assert received(notify) == ["WATCHDOG=1"]
    app.watchdog(100.5)  # not due: every 1 s (half of 2 s)
    assert received(notify) == []
    app.watchdog(101.0)
    assert received(notify) == ["WATCHDOG=1"]
    assert app.dead_worker() == ""

    app.link.stop()
    app.link.join(PATIENCE)
    assert not app.link.is_alive()
    for now in (102.0, 103.0, 104.0):
        app.watchdog(now)
    assert received(notify) == []
    assert app.dead_worker() == "the counter link thread"
    assert caplog.text.count("watchdog: the counter link thread has died") == 1


def test_no_pings_without_watchdog_usec(
    linked_app: App, notify: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    linked_app.start_watchdog()
    linked_app.watchdog(100.0)
    assert received(notify) == []
    assert linked_app._sleep_for() == 1.0  # the loop wakes as it did: no ping to wait for


def wait_for_line(log: Path, text: str, pad: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + PATIENCE
    while text not in log.read_text(errors="replace"):
        if pad.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the pad's log:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """The processes ``pid`` (any of its threads) started."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_the_real_process_pings_outlives_a_dead_voice_and_says_stopping(
    tmp_path: Path,
) -> None:
    """``evaluator run`` under a fake systemd: READY=1, pings at half of WATCHDOG_USEC while
    the counter link and the sync live; the voice process killed (it had opened its device)
    does not stop them (the prompts are optional: a speaker that hangs must not restart the
    pad every minute); SIGTERM sends STOPPING=1 and the pad exits 0."""
    from tests.kiosk.test_voice import prompts

    prompts(tmp_path / "voice")
    with socket.socket() as probe:  # a port where no broker listens: the sync thread retries
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = tmp_path / "site.toml"
    site.write_text(
        '[device]\nid = "wd-1"\nwindow = "1号窗口"\n[counter]\nport = "dummy://"\n'
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        '[screen]\ndriver = "dummy"\n'
        f"[voice]\nenabled = true\ndir = {json.dumps(str(tmp_path / 'voice'))}\n",
        encoding="utf-8",
    )
    notify_path = tmp_path / "notify.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("WATCHDOG_PID", None)
    env.update(
        NOTIFY_SOCKET=str(notify_path),
        WATCHDOG_USEC="400000",  # a ping every 0.2 s
        SDL_VIDEODRIVER="dummy",
        SDL_AUDIODRIVER="disk",
        SDL_DISKAUDIOFILE=str(tmp_path / "speaker.raw"),
    )
    log = tmp_path / "pad.log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, log.open("wb") as out:
        sock.bind(str(notify_path))
        sock.settimeout(PATIENCE)
        pad = subprocess.Popen(
            [sys.executable, "-m", "evaluator", "run", "--config", str(site)],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            states = [sock.recv(4096).decode()]
            assert states == ["READY=1"], log.read_text()
            while states.count("WATCHDOG=1") < 3:
                states.append(sock.recv(4096).decode())
            assert set(states) == {"READY=1", "WATCHDOG=1"}

            wait_for_line(log, "voice: prompts from", pad)  # the voice opened its device
            voice = children(pad.pid)
            assert len(voice) == 1
            os.kill(voice[0], signal.SIGKILL)
            assert pad.poll() is None
            sock.setblocking(False)
            received(sock)  # pings sent before the kill
            sock.settimeout(PATIENCE)
            after = [sock.recv(4096).decode() for _ in range(5)]  # still pinging
            assert after == ["WATCHDOG=1"] * 5
            assert "has died" not in log.read_text()

            sock.settimeout(PATIENCE)
            pad.send_signal(signal.SIGTERM)
            assert sock.recv(4096).decode() == "STOPPING=1"
            code = pad.wait(PATIENCE)
        finally:
            if pad.poll() is None:
                pad.kill()
                pad.wait(5)
    assert code == 0, log.read_text()


def test_a_dead_sync_thread_stops_the_pings(
    tmp_path: Path, notify: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port where no broker listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = tmp_path / "site.toml"
    site.write_text(
        f'[counter]\nport = ""\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n",
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", site]))
    try:
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")
        app.sync.start()
        app.start_watchdog()
        app.watchdog(10.0)
        assert received(notify) == ["WATCHDOG=1"]
        app.sync.stop()
        app.sync.join(PATIENCE)
        app.watchdog(11.0)
        assert received(notify) == []
        assert app.dead_worker() == "the sync thread"
    finally:
        app.shutdown()
