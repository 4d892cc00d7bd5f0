"""The counter link's wire format: newline-delimited JSON, one object per line (≤ 4096 bytes).

Requests carry an ``id`` and a ``type``; each is answered ``{"id": …, "ok": true}`` or
``{"id": …, "ok": false, "error": {"code": …, "message": …}}``.  The pad also sends events,
``{"event": "evaluation.finished", "serials": […], "outcome": …}`` — never the level: the clerk's
side must not learn what the citizen pressed (art. 4).

Pure Python: no serial port here, so the framing is testable byte by byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from evaluator.rules.errors import RequestError

#: Longest frame accepted, newline excluded, in bytes.
MAX_FRAME = 4096

#: Deepest nesting of arrays/objects accepted in a frame (the request object itself is 1).
#: Checked on the bytes *before* ``json.loads``, which recurses and would raise RecursionError.
MAX_DEPTH = 32

#: Longest string id echoed back, in characters; integer ids must fit in a signed 64-bit int.
ID_MAX = 128
_INT_ID_RANGE = range(-(2**63), 2**63)

#: Request types the pad understands.
REQUEST_TYPES: tuple[str, ...] = (
    "evaluation.start",
    "evaluation.cancel",
    "clerk.sign_in",
    "clerk.sign_out",
    "window.pause",
    "window.resume",
    "status",
    "receipt.print",
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


_STRUCTURE = frozenset(b'"[]{}')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_STRING = re.compile(rb'"[^"]*"')
_STEP = [0] * 256
for _b in b"[{":
    _STEP[_b] = 1
for _b in b"]}":
    _STEP[_b] = -1


def nesting_depth(data: bytes) -> int:
    """How deep arrays and objects nest in the JSON text ``data`` (UTF-8), without parsing it.

    Brackets inside strings do not count (escapes such as ``\\"`` and ``\\\\`` are honoured).
    For text that is not valid JSON the answer is an upper bound of the depth a parser reaches
    before it fails, so ``nesting_depth(data) <= limit`` makes ``json.loads(data)`` safe.
    Linear time, and the work is done by C loops (bytes methods, re, itertools).
    """
    # Escapes first: a pair of backslashes, then an escaped quote (JSON pairs them left to right).
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = _STRING.sub(b"", text.translate(None, _NOT_STRUCTURE))
    text = text.split(b'"', 1)[0]  # an unterminated string runs to the end
    return max(accumulate(map(_STEP.__getitem__, text)), default=0) if text else 0


def decode(line: bytes) -> Message | BadFrame:
    """Decode one frame (without its newline); never raises, whatever the bytes."""
    try:
        return _decode(line)
    except Exception as exc:  # a frame must never take the link down
        return BadFrame(
            None, RequestError("malformed", f"frame not decodable ({type(exc).__name__})")
        )


def _decode(line: bytes) -> Message | BadFrame:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return BadFrame(None, RequestError("malformed", "frame is not valid UTF-8"))
    if nesting_depth(line) > MAX_DEPTH:
        return BadFrame(
            None, RequestError("malformed", f"frame nests arrays/objects deeper than {MAX_DEPTH}")
        )
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadFrame(None, RequestError("malformed", f"frame is not JSON: {exc.msg}"))
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        return BadFrame(None, RequestError("malformed", f"frame is not usable JSON: {exc}"))
    if not isinstance(obj, dict):
        return BadFrame(None, RequestError("malformed", "frame must be a JSON object"))
    rid = obj.pop("id", None)
    if isinstance(rid, bool) or not isinstance(rid, int | str):
        return BadFrame(None, RequestError("malformed", "request needs an id (number or string)"))
    problem = _id_problem(rid)
    if problem:
        return BadFrame(None, RequestError("malformed", problem))
    rtype = obj.pop("type", None)
    if rtype not in REQUEST_TYPES:
        return BadFrame(
            rid,
            RequestError(
                "unknown_type",
                f"type {_shorten(rtype)} unknown; expected one of {', '.join(REQUEST_TYPES)}",
            ),
        )
    return Message(rid, str(rtype), obj)


def _id_problem(rid: int | str) -> str:
    """Why ``rid`` cannot be echoed in a reply ("" when it can)."""
    if isinstance(rid, int):
        return "" if rid in _INT_ID_RANGE else "request id out of range (signed 64-bit integer)"
    if len(rid) > ID_MAX:
        return f"request id longer than {ID_MAX} characters"
    try:
        rid.encode("utf-8")
    except UnicodeEncodeError:
        return "request id is not valid Unicode text (lone surrogate)"
    return ""


def _shorten(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a message: ASCII-safe for surrogates, cut when long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def encode(obj: dict[str, Any]) -> bytes:
    """One frame: compact JSON, UTF-8, newline-terminated.

    Text that is not valid Unicode (a lone surrogate echoed from a request) is written as
    ``\\uXXXX`` escapes, so the frame stays valid UTF-8 JSON and a reply always goes out; a value
    JSON cannot represent is written as its ``str``.
    """
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_as_text)
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), default=_as_text)
        return text.encode("ascii") + b"\n"


def _as_text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def reply_ok(rid: int | str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, **extra}


def reply_error(rid: int | str | None, error: RequestError) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": error.code, "message": error.message}}


def finished_event(
    serials: tuple[str, ...], outcome: str, head: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The only thing the counter learns of a rating: that it happened, not what it was; a
    ``rated`` carries the signed head of the ratings chain after it (``head``, when the pad has
    a key: :mod:`evaluator.rules.witness`), which tells no level either."""
    event = {"event": "evaluation.finished", "serials": list(serials), "outcome": outcome}
    if head is not None:
        event["head"] = head
    return event


def fault_event(fault: str, active: bool, message: str = "") -> dict[str, Any]:
    """A device fault began (``active``) or ended, e.g. ``storage`` while the disk refuses
    writes: the counter learns the pad cannot take ratings right now."""
    return {"event": "device.fault", "fault": fault, "active": active, "message": message}


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
