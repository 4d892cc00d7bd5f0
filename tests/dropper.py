"""A real TCP listener that accepts each connection and drops it: a flapping device or broker.

Each accepted connection is held for ``hold(n)`` seconds (n counts from 0; default: dropped at
once) and then closed.  The times of every accept and close are kept, so a test can measure
the waits a client leaves between attempts without looking inside it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType


class Dropper:
    """Listens on 127.0.0.1 (a free port); use as a context manager."""

    def __init__(self, hold: Callable[[int], float] = lambda n: 0.0) -> None:
        self.hold = hold
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._accepted: list[float] = []
        self._closed: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dropper", daemon=True)

    def __enter__(self) -> Dropper:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with self._lock:
                n = len(self._accepted)
                self._accepted.append(time.monotonic())
            self._stop.wait(self.hold(n))
            conn.close()
            with self._lock:
                self._closed.append(time.monotonic())

    def times(self) -> tuple[list[float], list[float]]:
        """Accept and close times (monotonic), consistent with each other."""
        with self._lock:
            return list(self._accepted), list(self._closed)

    def wait_for(self, accepts: int, timeout: float) -> tuple[list[float], list[float]]:
        """The times once at least ``accepts`` connections were accepted and closed."""
        deadline = time.monotonic() + timeout
        while True:
            accepted, closed = self.times()
            if len(closed) >= accepts:
                return accepted, closed
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(accepted)} of {accepts} attempts in {timeout}s")
            time.sleep(0.01)
