"""Real parts for tests and campaigns: a private mosquitto, a socat pty pair, an Xvfb display.

Each waits until the part really answers (a client connects, both pty ends open), never for a
file to appear.  A missing binary is an error (:class:`SupportError`), never a skip:
``scripts/setup`` installs them.  Used by ``tests/conftest.py`` (fixtures) and by the campaigns
in ``tests/campaigns/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class SupportError(RuntimeError):
    """A real part could not be started (a tool missing, a process that never came up)."""


def binary(name: str) -> str:
    sbin = Path("/usr/sbin") / name
    path = shutil.which(name) or (str(sbin) if sbin.exists() else None)
    if path is None:
        raise SupportError(f"{name} is not installed; run scripts/setup")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SupportError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class LogLines(logging.Handler):
    """One logger's records at ``level`` and above as they come, from any thread: for tests that
    wait for a line (never sleep for one)."""

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            self.records.append(record)

    def messages(self) -> list[str]:
        with self.guard:
            return [r.getMessage() for r in self.records]

    def having(self, *words: str) -> list[str]:
        """The lines holding all of ``words``, now."""
        return [m for m in self.messages() if all(w in m for w in words)]

    def wait_for(self, *words: str, timeout: float = 10.0) -> str:
        """The first line holding all of ``words``, waited for."""
        deadline = time.monotonic() + timeout
        while not self.having(*words):
            if time.monotonic() > deadline:
                raise AssertionError(f"no line with {words} in {self.messages()}")
            time.sleep(0.02)
        return self.having(*words)[0]


@contextmanager
def log_lines(name: str, level: int = logging.WARNING) -> Iterator[LogLines]:
    """A ``LogLines`` on the logger ``name``, whose level is ``level`` meanwhile (whatever an
    earlier test left on it or its parents), both put back after."""
    handler = LogLines(level)
    logger = logging.getLogger(name)
    was = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(was)


def stop_threads(threads: list[Any], timeout: float) -> None:
    """``stop()`` every thread first (they wind down together), then join each and fail when
    one has not ended within ``timeout``: a thread that outlives its stop() is a bug to see."""
    for thread in threads:
        thread.stop()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), f"{thread.name} still runs {timeout}s after stop()"


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class Broker:
    """A private mosquitto on a fixed free port, stopped and started at will."""

    host = "127.0.0.1"

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.up:
            return
        self.process = subprocess.Popen(
            [binary("mosquitto"), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), 10, "mosquitto to listen")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None


class Xvfb:
    """A private X display so the pad has a window that receives real key events."""

    def __init__(self) -> None:
        exe = binary("Xvfb")
        binary("xdotool")
        for number in range(200, 300):
            if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
                continue
            proc = subprocess.Popen(
                [exe, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.name, self.process = f":{number}", proc
            # ready when a client can connect, not when the socket file appears
            try:
                wait_for(self._answers, 15, "Xvfb to accept clients")
            except SupportError:
                stop_process(proc)
                continue
            return
        raise SupportError("could not start Xvfb on any display :200-:299")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise SupportError("Xvfb exited")
        done = subprocess.run(
            ["xdotool", "getdisplaygeometry"],
            env={**os.environ, "DISPLAY": self.name},
            capture_output=True,
            timeout=10,
        )
        return done.returncode == 0

    def stop(self) -> None:
        stop_process(self.process)


class PtyPair:
    """Two linked pseudo-terminals (socat): the pad opens ``device``, the counter the other."""

    def __init__(self, work: Path, n: int) -> None:
        self.device = work / f"ttyDevice{n}"
        self.counter = work / f"ttyCounter{n}"
        self.process = subprocess.Popen(
            [
                binary("socat"),
                f"pty,raw,echo=0,link={self.device}",
                f"pty,raw,echo=0,link={self.counter}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ready, 10, "socat to create the pty pair")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise SupportError("socat exited before creating the pty pair")
        try:  # ready when both ends open, not when the links appear
            for link in (self.device, self.counter):
                os.close(os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    def stop(self) -> None:
        stop_process(self.process)


REPO = Path(__file__).resolve().parents[1]


def start_pad(override: Path, log: Any, *, display: str | None) -> subprocess.Popen[bytes]:
    """``python -m evaluator run`` with ``config/demo.toml`` and ``override``, as a child
    process writing its output to the open file ``log``: on ``display`` (an X display name), or
    headless (SDL dummy driver) when it is ``None``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")}
    env["PYTHONUNBUFFERED"] = "1"
    if display:
        env["DISPLAY"] = display
    else:
        env.pop("DISPLAY", None)
        env["SDL_VIDEODRIVER"] = "dummy"
    command = ["-m", "evaluator", "run", "--config", "config/demo.toml"]
    return subprocess.Popen(
        [sys.executable, *command, "--config", str(override)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_pad(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then the exit code (SIGKILL after ``timeout`` seconds)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return int(process.returncode)


def without_head(frames: Any) -> Any:
    """Counter frames (one or a list) with the signed chain head of each ``rated`` taken out,
    after checking it is there and well formed: what is left is what the counter learns besides
    (the head itself tells no level: tests/evaluator/rules/test_witness.py)."""
    from evaluator.rules.witness import head_problem

    if isinstance(frames, list):
        return [without_head(f) for f in frames]
    if not isinstance(frames, dict) or frames.get("outcome") != "rated":
        return frames
    rest = dict(frames)
    head = rest.pop("head", None)
    assert head_problem(head) is None, f"a rated without a valid head: {frames}"
    return rest
