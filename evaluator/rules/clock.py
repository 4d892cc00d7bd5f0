"""Clocks: monotonic time for deadlines, wall time (and whether it is trustworthy) for records.

A Pi without RTC boots with a wrong clock until NTP syncs, so deadlines never use wall time and
every recorded time says whether the clock was synchronised.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Stamp:
    """A moment: wall clock (epoch seconds), whether it was synchronised, and monotonic seconds."""

    wall: float
    synced: bool
    mono: float

    @property
    def iso(self) -> str:
        """Local time with offset, millisecond precision, e.g. ``2026-11-26T16:31:50.123+08:00``."""
        return datetime.fromtimestamp(self.wall).astimezone().isoformat(timespec="milliseconds")


class Clock(Protocol):
    """What the session needs to know about time."""

    def now(self) -> Stamp:
        """The current moment."""
        ...


_TIME_ERROR = 5  # ntp_adjtime(2): clock not synchronised


_libc: ctypes.CDLL | None = None


def kernel_clock_synced() -> bool:
    """True when the kernel reports the clock as NTP-synchronised (``ntp_adjtime``)."""
    global _libc
    try:
        # The running program's own symbols (libc is linked into Python): no ``find_library``,
        # which starts an ``ldconfig -p`` child process (ms, in the UI thread) at every call.
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        libc = _libc
        buf = ctypes.create_string_buffer(512)  # struct timex with modes = 0: read-only query
        state = libc.ntp_adjtime(buf)
    except (OSError, AttributeError):
        return False
    return state not in (-1, _TIME_ERROR)


class SystemClock:
    """The real clock; the synchronisation state is re-read at most every ``recheck`` seconds."""

    def __init__(self, *, recheck: float = 30.0) -> None:
        self._recheck = recheck
        self._checked_at = -recheck
        self._synced = False

    def now(self) -> Stamp:
        mono = time.monotonic()
        if mono - self._checked_at >= self._recheck:
            self._synced = kernel_clock_synced()
            self._checked_at = mono
        return Stamp(time.time(), self._synced, mono)


class FakeClock:
    """A clock tests move by hand: ``advance(seconds)``."""

    def __init__(self, *, wall: float = 1_780_000_000.0, synced: bool = True) -> None:
        self.wall = wall
        self.mono = 1000.0
        self.synced = synced

    def now(self) -> Stamp:
        return Stamp(self.wall, self.synced, self.mono)

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds
