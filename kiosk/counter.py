"""The counter link: newline-delimited JSON over a serial port (or any pyserial URL).

One thread owns the port: it reads frames, hands each decoded request to the app's loop and
writes whatever the app sends back.  An unplugged adapter or a vanished port is reopened with
a backoff; the pad keeps working for the citizen meanwhile.

No input and no fault ends the thread: a frame that cannot be decoded is refused, an exception
from ``on_message`` or from a write is logged and the link reads on, and any exception from the
port (opening or reading it) closes it and reopens it: first after ``reconnect`` seconds, then
after waits that double up to 10 × ``reconnect`` (at most 30 s; see :meth:`CounterLink.run`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from evaluator.rules.backoff import Backoff
from evaluator.rules.protocol import BadFrame, LineFramer, Message, decode, encode, reply_error

if TYPE_CHECKING:
    import serial

log = logging.getLogger(__name__)

#: The reopen wait grows to at most this many times ``reconnect``…
REOPEN_GROWTH = 10.0
#: …and never beyond this many seconds (unless ``reconnect`` itself is longer).
REOPEN_CAP_MAX = 30.0


def reopen_cap(reconnect: float) -> float:
    """The longest wait between reopen attempts for a first wait of ``reconnect`` seconds."""
    return max(reconnect, min(REOPEN_GROWTH * reconnect, REOPEN_CAP_MAX))


def _pyserial() -> ModuleType:
    """pyserial, with this package's ``sim://`` URL handler registered; imported by the link's
    thread when it opens the port, not at the pad's start (issue 6)."""
    import serial

    if "kiosk.urlhandler" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("kiosk.urlhandler")
    return serial


class CounterLink(threading.Thread):
    """Reads requests from ``port`` and passes each to ``on_message`` (called on this thread:
    the callee must only queue it).  ``send()`` may be called from any thread.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        reconnect: float = 2.0,
        on_message: Callable[[Message], None],
    ) -> None:
        super().__init__(name="counter-link", daemon=True)
        self.port = port
        self.baudrate = baudrate
        self.reconnect = reconnect
        self.on_message = on_message
        self._serial: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        # Not ``_stop``: threading.Thread has a method of that name, which join() calls.
        self._stop_event = threading.Event()
        self.connected = threading.Event()
        self.last_error = ""

    def send(self, obj: dict[str, Any]) -> bool:
        """Write one frame; ``False`` (and logged) when the port is not open or the write
        failed.  Never raises: the caller may be the link thread itself."""
        try:
            data = encode(obj)
        except Exception as exc:  # a value JSON cannot write (circular, huge integer)
            self._note_error(f"counter frame not encodable: {type(exc).__name__}: {exc}")
            return False
        with self._write_lock:
            port = self._serial
            if port is None:
                log.warning("counter link down; dropped frame %r", data[:80])
                return False
            try:
                port.write(data)
                port.flush()
                return True
            except Exception as exc:  # any backend, any driver
                self._note_error(f"counter link write failed: {type(exc).__name__}: {exc}")
                return False

    def stop(self) -> None:
        self._stop_event.set()
        port = self._serial
        if port is not None:
            with contextlib.suppress(Exception):  # best effort on every backend
                port.cancel_read()

    def run(self) -> None:
        """Open, serve, and after each loss reopen with a growing wait.

        The first wait is ``reconnect`` (from config: a replug comes back fast); each failed
        turn doubles it (minus up to 25 % jitter), up to :func:`reopen_cap` — 10 × ``reconnect``
        but at most 30 s — so a flapping USB adapter or a vanished port is not spun on.  A turn
        that lasted at least the cap (the port served that long) counts as healthy: the wait
        starts again from ``reconnect``.
        """
        backoff = Backoff(self.reconnect, cap=reopen_cap(self.reconnect))
        delay = 0.0
        while not self._stop_event.wait(delay):
            began = time.monotonic()
            try:
                self._session()
            except Exception as exc:  # never let the thread end; the next turn reopens
                log.exception("counter link error")
                self._note_error(f"counter link error: {type(exc).__name__}: {exc}")
            if time.monotonic() - began >= backoff.cap:
                backoff.reset()
            delay = backoff.next()

    def _session(self) -> None:
        """Open the port, serve it until it fails or stop() is called, close it."""
        try:
            port = _pyserial().serial_for_url(self.port, baudrate=self.baudrate, timeout=0.2)
        except Exception as exc:  # SerialException, OSError, ValueError, or a backend's own
            self._note_error(f"cannot open counter port {self.port}: {exc}")
            return
        log.info("counter link open on %s", self.port)
        with self._write_lock:
            self._serial = port
        self.connected.set()
        try:
            self._read_loop(port)
        except Exception as exc:  # unplugged, I/O error, a backend bug: close and reopen
            self._note_error(f"counter port {self.port} failed: {type(exc).__name__}: {exc}")
        finally:
            self.connected.clear()
            with self._write_lock:
                self._serial = None
            with contextlib.suppress(Exception):
                port.close()

    def _read_loop(self, port: serial.SerialBase) -> None:
        framer = LineFramer()
        while not self._stop_event.is_set():
            data = port.read(max(1, min(port.in_waiting, 4096)))
            if not data:
                continue
            for frame in framer.feed(data):
                self._handle(frame)

    def _handle(self, frame: bytes | BadFrame) -> None:
        """Decode one frame and pass it on, or refuse it; exceptions stop here."""
        try:
            item = frame if isinstance(frame, BadFrame) else decode(frame)
            if isinstance(item, BadFrame):
                log.warning("counter frame refused: %s", item.error.message)
                self.send(reply_error(item.id, item.error))
            else:
                self.on_message(item)
        except Exception as exc:
            log.exception("counter request not handled")
            self._note_error(f"counter request not handled: {type(exc).__name__}: {exc}")

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.error(
                "%s (the link goes on; a lost port is reopened after %.1fs, then longer, up to "
                "%.1fs)",
                message,
                self.reconnect,
                reopen_cap(self.reconnect),
            )
        self.last_error = message
