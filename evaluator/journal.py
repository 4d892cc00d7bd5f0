"""Logging to journald with structured fields, over the native protocol (no new dependency).

Under systemd (``JOURNAL_STREAM`` set, or ``/run/systemd/journal/socket`` present) the pad logs
through :class:`JournalHandler`: one datagram per record to the journal's socket, in the native
format (``KEY=value`` lines; a value holding a newline as ``KEY``, a 64-bit little-endian length,
the bytes), so ``journalctl -u evaluator PRESENTATION_ID=…`` or ``FAULT=storage`` finds lines
without parsing text.  Every entry carries ``MESSAGE``, ``PRIORITY``,
``SYSLOG_IDENTIFIER=evaluator``, ``CODE_FILE``/``CODE_LINE``/``CODE_FUNC``, ``LOGGER``,
``THREAD`` and ``DEVICE_ID``; a call adds its own with ``extra={"fields": {...}}``::

    log.info("cases %s: %s", serials, outcome, extra={"fields": {"OUTCOME": outcome}})

What never goes into a field: a rating level (or its score, satisfaction, button) and a citizen's
identity (:data:`FORBIDDEN`, and any value that looks like an ID card or mobile number) — the
journal is readable at the window (art. 4).  Such a field is dropped and the drop logged once.

A record too large for one datagram goes in a sealed memfd passed with ``SCM_RIGHTS``, as
``sd_journal_send`` does.  When the socket is absent the handler writes to stderr instead; a
failed send falls back to stderr for that record.  :func:`last_error` keeps the last error
logged anywhere, for the technician's menu.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping

#: The journal's native socket.
SOCKET = "/run/systemd/journal/socket"
#: ``SYSLOG_IDENTIFIER`` of every entry.
IDENTIFIER = "evaluator"
#: Field names no entry may carry: a level, its score or button, a citizen's identity.
FORBIDDEN: frozenset[str] = frozenset({
    "LEVEL", "RATING_LEVEL", "SCORE", "SATISFACTION", "GBT_CODE", "BUTTON", "COMMENT",
    "ID_NUMBER", "ID_CARD", "IDENTITY", "PHONE", "MOBILE", "CITIZEN", "CITIZEN_NAME",
})  # fmt: skip
#: A journal field name: upper-case letters, digits and '_', not starting with '_' or a digit.
_FIELD = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
#: Fields the handler sets itself (a caller's are refused).
_OWN = frozenset({"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE",
                  "CODE_FUNC", "LOGGER", "THREAD", "DEVICE_ID", "SYSLOG_PID"})  # fmt: skip


def priority(levelno: int) -> int:
    """syslog priority of a logging level: CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG 7."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def encode_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    """The native protocol's bytes for ``(name, value)`` pairs."""
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def decode_fields(data: bytes) -> list[tuple[str, str]]:
    """The inverse of :func:`encode_fields` (for the tests and a reader of the socket)."""
    fields = []
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            fields.append((name.decode(), value.decode("utf-8", "replace")))
            i = end + 1
        else:
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            value = data[end + 9 : end + 9 + size]
            fields.append((line.decode(), value.decode("utf-8", "replace")))
            i = end + 9 + size + 1
    return fields


def _allowed(name: str, value: object) -> str:
    """Why field ``name`` = ``value`` may not be sent ("" = it may)."""
    if not _FIELD.fullmatch(name) or name in _OWN:
        return "not a field name a caller may set"
    if name in FORBIDDEN or any(part in FORBIDDEN for part in name.split("_") if len(part) > 4):
        return "a rating level or a citizen's identity never goes into the journal"
    from evaluator.rules.request import identity_in

    found = identity_in(str(value))
    if found is not None:
        return f"the value looks like a {found}"
    return ""


class JournalHandler(logging.Handler):
    """Sends each record to journald's native socket (``path``) with structured fields."""

    def __init__(self, *, path: str = SOCKET, device_id: str = "", level: int = logging.NOTSET):
        super().__init__(level)
        self.path = path
        self.device_id = device_id
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._refused: set[str] = set()
        self._lock_send = threading.Lock()
        self.fallback: logging.Handler = logging.StreamHandler(sys.stderr)
        self.fallback.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )

    def fields(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        """The entry's fields: the handler's, then the record's ``extra={"fields": …}``."""
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            message += "\n" + record.exc_text
        fields = [
            ("MESSAGE", message),
            ("PRIORITY", str(priority(record.levelno))),
            ("SYSLOG_IDENTIFIER", IDENTIFIER),
            ("SYSLOG_PID", str(os.getpid())),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName or ""),
            ("LOGGER", record.name),
            ("THREAD", record.threadName or ""),
        ]
        if self.device_id:
            fields.append(("DEVICE_ID", self.device_id))
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            for key, value in extra.items():
                name = str(key).upper()
                why = _allowed(name, value)
                if why:
                    if name not in self._refused:
                        self._refused.add(name)
                        self.fallback.handle(logging.makeLogRecord({
                            "name": __name__, "levelno": logging.ERROR, "levelname": "ERROR",
                            "msg": f"journal field {name} dropped: {why}",
                        }))  # fmt: skip
                    continue
                fields.append((name, "" if value is None else str(value)))
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = encode_fields(self.fields(record))
            with self._lock_send:
                self._send(data)
        except Exception:  # the journal went away: this record to stderr, never lost silently
            try:
                self.fallback.handle(record)
            except Exception:
                self.handleError(record)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendto(data, self.path)
        except OSError as exc:
            if exc.errno not in (90, 105):  # EMSGSIZE, ENOBUFS: too big for one datagram
                raise
            # As sd_journal_send: the entry in a sealed memfd, its descriptor passed alone.
            fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            try:
                os.write(fd, data)
                import fcntl

                seals = 0x0001 | 0x0002 | 0x0004 | 0x0008  # SEAL_SEAL, SHRINK, GROW, WRITE
                fcntl.fcntl(fd, 1033, seals)  # F_ADD_SEALS
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
                self._sock.sendmsg([], rights, 0, self.path)  # (send_fds takes no address)
            finally:
                os.close(fd)

    def close(self) -> None:
        self._sock.close()
        super().close()


def under_systemd(environ: Mapping[str, str] | None = None, socket_path: str = SOCKET) -> bool:
    """Running as a systemd service whose journal takes native entries: ``JOURNAL_STREAM``
    set, or the journal's socket present."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM")) or os.path.exists(socket_path)


def make_handler(
    device_id: str = "",
    *,
    environ: Mapping[str, str] | None = None,
    socket_path: str = SOCKET,
) -> logging.Handler:
    """The pad's log handler: :class:`JournalHandler` under systemd when the socket is there,
    else stderr with a time stamp."""
    if under_systemd(environ, socket_path) and os.path.exists(socket_path):
        return JournalHandler(path=socket_path, device_id=device_id)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


class _LastError(logging.Handler):
    """Keeps the last ERROR (or worse) logged, for the technician's menu."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.text = f"{record.name}: {record.getMessage()}"[:300]
        except Exception:
            self.text = f"{record.name}: {record.msg}"[:300]


_LAST = _LastError()


def watch_errors() -> None:
    """Keep the last error logged anywhere from now on (once per process)."""
    root = logging.getLogger()
    if _LAST not in root.handlers:
        root.addHandler(_LAST)


def last_error() -> str:
    """The last error logged since :func:`watch_errors` ("" none)."""
    return _LAST.text
