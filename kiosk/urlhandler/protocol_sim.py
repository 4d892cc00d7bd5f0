"""``sim://`` — a simulated clerk's business system, selected like any pyserial URL.

``[counter] port = "sim://demo"`` makes the pad run with no counter hardware: a case is
"completed" a moment after start and again a few seconds after each presentation ends, so a
visitor can rate with mouse, touch or keys 1–5.  Options: ``sim://demo?every=5&first=1``
(seconds).  Registered through ``serial.protocol_handler_packages`` by :mod:`kiosk.counter`.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from typing import Any

from serial.serialutil import SerialException
from serial.urlhandler import protocol_loop

_MATTERS = (
    ("11440500MB2C9300XR4442111009000", "居民身份证换领", "instant"),
    ("11440500007219440X3440112001000", "不动产登记资料查询", "consult"),
    ("114405000072194508344011100400Y", "食品经营许可证核发", "promise"),
)
_CLERK = {"id": "A1023", "name": "陈晓明"}


class Serial(protocol_loop.Serial):
    """Answers nothing, asks for an evaluation on a schedule, listens for the outcome."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.every = 5.0
        self.first = 1.0
        self._due: float | None = None
        self._ids = itertools.count(1)
        self._cases = itertools.count(1)
        self._pending = b""
        super().__init__(*args, **kwargs)

    def from_url(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "sim":
            raise SerialException(f"expected sim://NAME[?every=S&first=S], got {url!r}")
        try:
            for option, values in urllib.parse.parse_qs(parts.query, True).items():
                if option not in ("every", "first"):
                    raise ValueError(f"unknown option {option!r}")
                setattr(self, option, float(values[0]))
        except ValueError as exc:
            raise SerialException(f"sim:// URL {url!r}: {exc}") from exc
        self._due = time.monotonic() + self.first

    def read(self, size: int = 1) -> bytes:
        if self._due is not None and time.monotonic() >= self._due:
            self._due = None
            for byte in self._next_request():
                self.queue.put(bytes([byte]))
        return bytes(super().read(size))

    def write(self, data: bytes) -> int:
        self._pending += bytes(data)
        while b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            finished = msg.get("event") == "evaluation.finished"
            refused = msg.get("ok") is False
            if finished or refused:
                self._due = time.monotonic() + self.every
        return len(data)

    def _next_request(self) -> bytes:
        n = next(self._cases)
        code, name, kind = _MATTERS[n % len(_MATTERS)]
        serial = f"{time.strftime('%Y%m%d')}{n:06d}"
        request = {
            "id": next(self._ids),
            "type": "evaluation.start",
            "clerk": _CLERK,
            "stage": "deliver",
            "cases": [{"serial": serial, "matter_code": code, "matter_name": name, "kind": kind}],
        }
        return json.dumps(request, ensure_ascii=False).encode() + b"\n"
