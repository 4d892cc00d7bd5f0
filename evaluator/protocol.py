"""The counter link's wire format: newline-delimited JSON, one object per line (≤ 4096 bytes).

Requests carry an ``id`` and a ``type``; each is answered ``{"id": …, "ok": true}`` or
``{"id": …, "ok": false, "error": {"code": …, "message": …}}``.  The pad also sends events,
``{"event": "evaluation.finished", "serials": […], "outcome": …}`` — never the level: the clerk's
side must not learn what the citizen pressed (art. 4).

Pure Python: no serial port here, so the framing is testable byte by byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evaluator.errors import RequestError

#: Longest frame accepted, newline excluded, in bytes.
MAX_FRAME = 4096

#: Request types the pad understands.
REQUEST_TYPES: tuple[str, ...] = (
    "evaluation.start",
    "evaluation.cancel",
    "clerk.sign_in",
    "clerk.sign_out",
    "window.pause",
    "window.resume",
    "status",
)


@dataclass(frozen=True)
class Message:
    """A decoded request: its ``id``, ``type`` and the remaining fields."""

    id: int | str
    type: str
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BadFrame:
    """A frame that could not be accepted, with the id when one could be read."""

    id: int | str | None
    error: RequestError


def decode(line: bytes) -> Message | BadFrame:
    """Decode one frame (without its newline)."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return BadFrame(None, RequestError("malformed", "frame is not valid UTF-8"))
    except json.JSONDecodeError as exc:
        return BadFrame(None, RequestError("malformed", f"frame is not JSON: {exc.msg}"))
    if not isinstance(obj, dict):
        return BadFrame(None, RequestError("malformed", "frame must be a JSON object"))
    rid = obj.pop("id", None)
    if isinstance(rid, bool) or not isinstance(rid, int | str):
        return BadFrame(None, RequestError("malformed", "request needs an id (number or string)"))
    rtype = obj.pop("type", None)
    if rtype not in REQUEST_TYPES:
        return BadFrame(
            rid,
            RequestError(
                "unknown_type",
                f"type {rtype!r} unknown; expected one of {', '.join(REQUEST_TYPES)}",
            ),
        )
    return Message(rid, str(rtype), obj)


def encode(obj: dict[str, Any]) -> bytes:
    """One frame: compact JSON, UTF-8, newline-terminated."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def reply_ok(rid: int | str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, **extra}


def reply_error(rid: int | str | None, error: RequestError) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": error.code, "message": error.message}}


def finished_event(serials: tuple[str, ...], outcome: str) -> dict[str, Any]:
    """The only thing the counter learns of a rating: that it happened, not what it was."""
    return {"event": "evaluation.finished", "serials": list(serials), "outcome": outcome}


class LineFramer:
    """Splits a byte stream into frames; an over-long line is reported once and skipped."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> Iterator[bytes | BadFrame]:
        """Yield each complete frame in ``data`` (blank lines and CR are ignored)."""
        self._buf.extend(data)
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.max_frame and not self._discarding:
                    self._discarding = True
                    self._buf.clear()
                    yield _too_long(self.max_frame)
                elif self._discarding:
                    self._buf.clear()
                return
            line = bytes(self._buf[:nl]).rstrip(b"\r")
            del self._buf[: nl + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > self.max_frame:
                yield _too_long(self.max_frame)
            elif line.strip():
                yield line


def _too_long(limit: int) -> BadFrame:
    return BadFrame(None, RequestError("frame_too_long", f"frame longer than {limit} bytes"))
