"""``faulty://<device path>``: a real serial port (e.g. a socat pty) that raises planned faults.

Test-only pyserial URL handler (register with
``serial.protocol_handler_packages.append("tests.kiosk")``).  Every byte goes through the real
port; the test only decides that the next ``open``, ``read`` or ``write`` raises a given exception
first, as a broken adapter, driver or backend would.
"""

from __future__ import annotations

import threading
import urllib.parse
from typing import Any

import serial

#: Exceptions to raise, in order, at the next call of each operation.
FAULTS: dict[str, list[BaseException]] = {"open": [], "read": [], "write": []}
#: How many times each operation raised a planned fault.
RAISED: dict[str, int] = {"open": 0, "read": 0, "write": 0}
_lock = threading.Lock()


def plan(op: str, *errors: BaseException) -> None:
    with _lock:
        FAULTS[op].extend(errors)


def reset() -> None:
    with _lock:
        for op in FAULTS:
            FAULTS[op].clear()
            RAISED[op] = 0


def _maybe_raise(op: str) -> None:
    with _lock:
        if not FAULTS[op]:
            return
        error = FAULTS[op].pop(0)
        RAISED[op] += 1
    raise error


class Serial(serial.Serial):  # type: ignore[misc,valid-type]
    """The platform's serial port, opened by path, with planned faults."""

    @serial.Serial.port.setter  # type: ignore[misc,attr-defined,untyped-decorator]
    def port(self, value: str | None) -> None:
        if value is not None:
            serial.Serial.port.__set__(self, self.from_url(value))

    def from_url(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "faulty":
            raise serial.SerialException(f"expected faulty://<path>, got {url!r}")
        return parts.netloc + parts.path

    def open(self) -> None:
        _maybe_raise("open")
        super().open()

    def read(self, size: int = 1) -> bytes:
        _maybe_raise("read")
        return bytes(super().read(size))

    def write(self, data: Any) -> int | None:
        _maybe_raise("write")
        return super().write(data)
