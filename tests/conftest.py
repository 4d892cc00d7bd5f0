"""Real parts for the tests: a mosquitto broker, a socat pseudo-terminal pair, an Xvfb display.

Each fixture starts its own process on a free port / display and stops it afterwards.  A missing
binary is an error, never a skip: ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def require_binary(name: str) -> str:
    """Path of a binary the tests need; a clear failure (not a skip) when it is missing."""
    sbin = Path("/usr/sbin") / name
    path = shutil.which(name) or (str(sbin) if sbin.exists() else None)
    if path is None:
        pytest.fail(f"{name} is not installed; run .ci/run or install it (see README)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    conf: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def start(self) -> None:
        """(Re)start on the same port, e.g. after ``stop()`` to simulate an outage."""
        self.process = _spawn_mosquitto(self.conf)
        wait_for_port(self.port)


def _spawn_mosquitto(conf: Path) -> subprocess.Popen[bytes]:
    binary = require_binary("mosquitto")
    return subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private mosquitto on a free localhost port (anonymous, no persistence)."""
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    b = Broker("127.0.0.1", port, _spawn_mosquitto(conf), conf)
    wait_for_port(port)
    yield b
    b.stop()


@dataclass
class PtyPair:
    """Two linked pseudo-terminals: the device opens ``device``, the test plays the counter."""

    device: str
    counter: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    socat = require_binary("socat")
    dev = tmp_path / "ttyDevice"
    ctr = tmp_path / "ttyCounter"
    proc = subprocess.Popen(
        [socat, "-d", f"pty,raw,echo=0,link={dev}", f"pty,raw,echo=0,link={ctr}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (dev.exists() and ctr.exists()):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("socat did not create the pseudo-terminal pair")
        time.sleep(0.02)
    yield PtyPair(str(dev), str(ctr), proc)
    proc.terminate()
    proc.wait(5)


@dataclass
class Display:
    name: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def xvfb() -> Iterator[Display]:
    """A private X server (Xvfb) so a real window can receive real key events via xdotool."""
    binary = require_binary("Xvfb")
    require_binary("xdotool")
    for number in range(90, 190):
        if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        proc = subprocess.Popen(
            [binary, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                yield Display(f":{number}", proc)
                proc.terminate()
                proc.wait(5)
                return
            time.sleep(0.05)
        proc.kill()
        proc.wait(5)
    raise RuntimeError("could not start Xvfb on any display :90-:189")
