"""Real parts for the tests: a mosquitto broker, a socat pseudo-terminal pair, an Xvfb display.

Each fixture starts its own process on a free port / display and stops it afterwards; each waits
until the part really answers (see ``tests/support.py``).  A missing binary is an error, never a
skip: ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from tests.pg import PostgresServer
from tests.support import Broker, SupportError, Xvfb, binary
from tests.support import PtyPair as _Pty

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

# Property tests assert what the code does, never how fast: hypothesis's default 200 ms deadline
# per example turned a slow example on a loaded 2-core machine into a failure
# (test_request's unshowable-character test, once in a full run).  Speed is for bench/.
settings.register_profile("evaluator", deadline=None)
settings.load_profile("evaluator")

__all__ = ["Broker", "Display", "PtyPair", "require_binary"]


def require_binary(name: str) -> str:
    """Path of a binary the tests need; a clear failure (not a skip) when it is missing."""
    try:
        return binary(name)
    except SupportError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private mosquitto on a free localhost port (anonymous, no persistence); ``stop()`` and
    ``start()`` simulate an outage on the same port."""
    require_binary("mosquitto")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server (``tests/pg.py``) for the whole session: ``initdb`` takes
    seconds, so tests share the server and each takes a fresh database."""
    server = PostgresServer()
    yield server
    server.stop()


@dataclass
class PtyPair:
    """Two linked pseudo-terminals: the device opens ``device``, the test plays the counter."""

    device: str
    counter: str


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    require_binary("socat")
    pair = _Pty(tmp_path, 0)
    yield PtyPair(str(pair.device), str(pair.counter))
    pair.stop()


@dataclass
class Display:
    name: str


@pytest.fixture
def xvfb() -> Iterator[Display]:
    """A private X server (Xvfb) so a real window can receive real key events via xdotool;
    ready once a client can connect to it."""
    require_binary("Xvfb")
    require_binary("xdotool")
    display = Xvfb()
    yield Display(display.name)
    display.stop()
