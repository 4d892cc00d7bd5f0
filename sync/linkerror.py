"""Why a connection to a broker failed, in words, and how often to say so (issue 14).

A provisioned pad whose TLS handshake the broker refused logged nothing about it: the socket
came up, the broker closed it, and the worker tried again in silence.  This module names the
cause of every failed connection from what the attempt raised or what paho logged
(:func:`classify`, :func:`classify_connack`, :func:`closed_before_connack`), and keeps the
repeats of one cause from flooding the journal (:class:`FailureLog`): the first line at once,
then one a minute with a count, a new cause at once, the recovery once.

Standard library only (``ssl``, ``socket``, ``errno``): the sync worker, the city's receiver and
``evaluator selftest`` use the same words.  ``ssl`` is imported by :func:`classify` only: this
module is imported at the pad's start (the worker is built before ``READY=1``), ``ssl`` is not.

The causes (:data:`CAUSES`, the ``cause`` of the status and the technician menu's texts
``link_cause_<cause>``):

========================  =====================================================================
``refused``               nothing listens on that port (ECONNREFUSED)
``dns``                   the host name does not resolve
``unreachable``           no route to the host / network (EHOSTUNREACH, ENETUNREACH)
``timeout``               TCP connect, TLS handshake or CONNACK not in time
``not_tls``               an ``mqtts://`` URL to a server that does not speak TLS
``unknown_ca``            the broker's certificate is not signed by our ``tls_ca``
``cert_expired``          the broker's certificate has expired
``cert_not_yet_valid``    the broker's certificate is not valid yet (the pad's clock?)
``name_mismatch``         the broker's certificate is not made out to the host we dialled
``cert_refused``          the broker refused our client certificate (or wants one)
``tls``                   any other TLS failure
``tls_files``             our own TLS files cannot be used (missing, not PEM, key mismatch)
``connack``               the broker answered the CONNECT with a refusal (reason code)
``closed``                the broker closed the connection before its CONNACK
``other``                 anything else (its own words)
========================  =====================================================================
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass, replace
from datetime import datetime

__all__ = [
    "CAUSES",
    "FailureLog",
    "LinkError",
    "LinkFailure",
    "classify",
    "classify_connack",
    "closed_before_connack",
    "connack_timeout",
    "tls_files",
]

CAUSES: tuple[str, ...] = (
    "refused", "dns", "unreachable", "timeout", "not_tls", "unknown_ca", "cert_expired",
    "cert_not_yet_valid", "name_mismatch", "cert_refused", "tls", "tls_files", "connack",
    "closed", "other",
)  # fmt: skip


@dataclass(frozen=True)
class LinkError:
    """One failed attempt: ``cause`` (one of :data:`CAUSES`) and the words of the log line and
    the status (English; the menu shows the cause in the pad's language, then ``detail``)."""

    cause: str
    words: str
    detail: str = ""
    """What the cause's name does not say: the reason code, the OpenSSL message, the alert."""

    @property
    def text(self) -> str:
        """The words, then the detail in brackets when the words do not hold it already."""
        if not self.detail or self.detail in self.words:
            return self.words
        return f"{self.words} ({self.detail})"


@dataclass(frozen=True)
class LinkFailure:
    """The last link error as the status tells it: the cause of the latest failed attempt,
    since when that cause repeats (wall time, ISO), how many attempts in a row failed with it,
    the latest one, and when the link came back (``""`` while it has not)."""

    cause: str
    words: str
    detail: str
    broker: str
    since: str
    count: int
    last: str
    until: str = ""

    def as_json(self) -> dict[str, object]:
        """The status message's ``link_error`` object."""
        return {
            "cause": self.cause,
            "words": self.words,
            "broker": self.broker,
            "since": self.since,
            "count": self.count,
            "last": self.last,
            "until": self.until or None,
        }


# -- the classifier -------------------------------------------------------------------------

#: OpenSSL verify codes (X509_V_ERR_*) of a broker certificate we refused.
_VERIFY = {
    2: "unknown_ca",  # unable to get issuer certificate
    18: "unknown_ca",  # self-signed certificate
    19: "unknown_ca",  # self-signed certificate in the chain
    20: "unknown_ca",  # unable to get local issuer certificate
    21: "unknown_ca",  # unable to verify the first certificate
    9: "cert_not_yet_valid",
    10: "cert_expired",
    62: "name_mismatch",  # hostname mismatch
    63: "name_mismatch",  # email address mismatch
    64: "name_mismatch",  # IP address mismatch
}
#: The same, by OpenSSL's verify message (when only the text is known: paho's log lines).
_VERIFY_WORDS = (
    ("unable to get local issuer certificate", "unknown_ca"),
    ("unable to get issuer certificate", "unknown_ca"),
    ("self-signed certificate", "unknown_ca"),
    ("self signed certificate", "unknown_ca"),
    ("unable to verify the first certificate", "unknown_ca"),
    ("certificate has expired", "cert_expired"),
    ("certificate is not yet valid", "cert_not_yet_valid"),
    ("hostname mismatch", "name_mismatch"),
    ("ip address mismatch", "name_mismatch"),
)
#: TLS alerts the broker sends when it refuses our certificate (or wants one we did not show).
_OUR_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE", "ACCESS_DENIED",
    "DECRYPT_ERROR",
)  # fmt: skip
#: OpenSSL reasons of bytes that are not TLS at all (a plain listener answered).
_NOT_TLS = (
    "WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST",
    "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "UNEXPECTED_RECORD", "RECORD_TOO_LARGE",
    "UNEXPECTED_EOF_WHILE_READING",
)  # fmt: skip
_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")

_WORDS = {
    "refused": "connection refused (nothing listens on that port, or a firewall rejects it)",
    "dns": "the host name does not resolve (DNS)",
    "unreachable": "no route to the broker (network or host unreachable)",
    "not_tls": "not a TLS server (an mqtts:// URL to a plain MQTT port?)",
    "unknown_ca": "the broker's certificate is not signed by our CA (tls_ca)",
    "cert_expired": "the broker's certificate has expired",
    "cert_not_yet_valid": "the broker's certificate is not valid yet (is the pad's clock right?)",
    "name_mismatch": "the broker's certificate is not made out to the host name in the URL",
    "cert_refused": "the broker refused our client certificate (tls_cert), or requires one",
    "tls": "the TLS handshake failed",
    "tls_files": "our TLS files cannot be used (tls_ca, tls_cert, tls_key)",
    "closed": "the broker closed the connection before its CONNACK",
}


def _error(cause: str, detail: str = "", words: str = "") -> LinkError:
    detail = " ".join(detail.split())[:300]
    return LinkError(cause, words or _WORDS[cause], detail)


def _tls_text_cause(text: str) -> str:
    """The cause in an OpenSSL error text ("" when it names none we know)."""
    low = text.lower()
    for words, cause in _VERIFY_WORDS:
        if words in low:
            return cause
    match = _REASON.search(text)
    reason = match.group(1) if match else text.upper().replace(" ", "_")
    if "ALERT" in reason and any(name in reason for name in _OUR_CERT_ALERTS):
        return "cert_refused"
    if any(name in reason for name in _NOT_TLS):
        return "not_tls"
    return ""


def classify(error: BaseException | str, *, tls: bool, handshake_done: bool = False) -> LinkError:
    """The cause of a failed attempt from what it raised (or, a string: what paho logged).

    ``tls``: the URL is ``mqtts://``.  ``handshake_done``: the error came after the TLS
    handshake (reading the CONNACK), where an alert or a closed connection means the broker
    refused our certificate."""
    import ssl

    text = error if isinstance(error, str) else str(error) or type(error).__name__
    if isinstance(error, socket.gaierror):
        return _error("dns", text)
    if isinstance(error, ssl.SSLCertVerificationError):
        cause = _VERIFY.get(getattr(error, "verify_code", -1) or -1, "")
        message = getattr(error, "verify_message", "") or text
        return _error(cause or _tls_text_cause(message) or "tls", message)
    if isinstance(error, ssl.CertificateError):  # paho's own hostname check (older Pythons)
        return _error("name_mismatch", text)
    if isinstance(error, ssl.SSLError):
        reason = getattr(error, "reason", "") or ""
        cause = _tls_text_cause(f"[SSL: {reason}] {text}" if reason else text)
        if not cause and isinstance(error, ssl.SSLEOFError):
            cause = "cert_refused" if handshake_done else "not_tls"
        if cause == "not_tls" and handshake_done:  # the handshake had worked: not that
            cause = "cert_refused" if "EOF" in text.upper() else "tls"
        return _error(cause or "tls", text)
    if isinstance(error, TimeoutError) or "timed out" in text.lower():
        stage = "the TLS handshake" if "handshake" in text.lower() else "the TCP connection"
        return _error("timeout", text, f"timed out: {stage} did not complete in time")
    if isinstance(error, ConnectionRefusedError):
        return _error("refused", text)
    if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
        return _error("tls_files", text)
    if isinstance(error, OSError) and error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return _error("unreachable", text)
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        if tls:  # the peer hung up: during the handshake a plain listener, after it a refusal
            return _error("cert_refused" if handshake_done else "not_tls", text)
        return _error("closed", text)
    if isinstance(error, str):  # paho's log text: the OpenSSL words, or the errno's
        cause = _tls_text_cause(text) if tls else ""
        if cause == "not_tls" and handshake_done:
            cause = "cert_refused" if "EOF" in text.upper() else "tls"
        if cause:
            return _error(cause, text)
        low = text.lower()
        if "connection refused" in low:
            return _error("refused", text)
        if any(w in low for w in ("connection reset", "broken pipe", "eof occurred")):
            return _error("cert_refused" if tls and handshake_done else "closed", text)
    if isinstance(error, ValueError) and tls:  # tls_set / load_cert_chain refused a file
        return _error("tls_files", text)
    words = text if isinstance(error, str) else f"{type(error).__name__}: {text}"
    return _error("other", "", words[:300])


def tls_files(error: BaseException, files: dict[str, str]) -> LinkError:
    """Our TLS files (``files``: ``{"tls_ca": path, …}``) refused by ``ssl`` before any
    connection: missing, unreadable, not PEM, a key that is not the certificate's.  The detail
    names the file that cannot be read (``ssl`` does not), else all of them: paths, never
    their content."""
    import os

    why = getattr(error, "strerror", None) or str(error) or type(error).__name__
    for name, path in files.items():
        if path and not os.access(path, os.R_OK):
            return _error("tls_files", f"{name} {path}: {why}")
    named = ", ".join(f"{name} {path}" for name, path in files.items() if path)
    return _error("tls_files", f"{why} ({named})")


def closed_before_connack(*, tls: bool) -> LinkError:
    """The broker hung up after the connection was made and before its CONNACK: over TLS that
    is how a broker refuses a client certificate it does not like (TLS 1.3 sends its verdict
    after the client finished the handshake), in plain MQTT a refusal without a reason."""
    if tls:
        return _error(
            "cert_refused",
            "the connection closed right after the TLS handshake",
        )
    return _error("closed")


def connack_timeout(seconds: float) -> LinkError:
    """The broker took the connection but sent no CONNACK within ``seconds``."""
    return _error("timeout", "", f"timed out: no CONNACK within {seconds:g} s")


#: MQTT 3.1.1 CONNACK return codes, by the MQTT 5 reason code paho turns them into.
_V311 = {0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4, 0x87: 5}
_V311_WORDS = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def classify_connack(reason: object, *, v5: bool) -> LinkError:
    """A CONNACK that refused the connection: its MQTT 5 reason name and number (``0x86 Bad
    user name or password``), or the MQTT 3.1.1 return code (``return code 4: bad user name or
    password``).  ``reason`` is paho's ``ReasonCode`` (3.1.1 codes arrive converted)."""
    value = getattr(reason, "value", reason)
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        number = -1
    name = str(getattr(reason, "getName", lambda: reason)())
    if v5:
        code = f"0x{number:02X} {name}" if number >= 0 else name
        return _error("connack", code, f"the broker refused the connection: CONNACK {code}")
    rc = _V311.get(number)
    code = f"return code {rc}: {_V311_WORDS[rc]}" if rc else f"{name}"
    return _error("connack", code, f"the broker refused the connection: CONNACK {code}")


# -- how often to say it --------------------------------------------------------------------


def _clock(wall: float) -> str:
    return datetime.fromtimestamp(wall).astimezone().isoformat(timespec="milliseconds")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class _Repeat:
    count: int = 0  # failures not told since the last line
    told_at: float = 0.0  # monotonic time of the last line
    told_wall: float = 0.0


class FailureLog:
    """What to log of the failed attempts, and the :class:`LinkFailure` the status shows.

    Per broker and cause: the first failure is told at once, a repeat at most once every
    ``every`` seconds with the count of the repeats since the last line ("12 more times since
    …"); so a new cause is told at once, and one that comes back within ``every`` of its last
    line is counted (two brokers failing by turns do not make a line each).  After failures,
    the connection that works is told once, with how many failed and for how long.  Times are
    the caller's (monotonic and wall), so it is tested without sleeping.
    """

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.current: LinkFailure | None = None
        self._repeats: dict[tuple[str, str], _Repeat] = {}
        self._failures = 0  # since the last working connection
        self._first_mono = 0.0

    def failed(self, error: LinkError, broker: str, mono: float, wall: float) -> str | None:
        """One failed attempt: the line to log (``None``: counted, not told now)."""
        key = (broker, error.cause)
        if self._failures == 0:
            self._first_mono = mono
        self._failures += 1
        now = _clock(wall)
        current = self.current
        if current is not None and not current.until and current.cause == error.cause:
            self.current = replace(current, words=error.words, detail=error.detail,
                                   broker=broker, count=current.count + 1, last=now)  # fmt: skip
        else:
            self.current = LinkFailure(error.cause, error.words, error.detail, broker, now, 1, now)
        repeat = self._repeats.setdefault(key, _Repeat(told_at=-float("inf")))
        if mono - repeat.told_at < self.every:
            repeat.count += 1
            return None
        told = ""
        if repeat.count:
            told = f" ({repeat.count} more times since {_clock(repeat.told_wall)[11:19]})"
        repeat.count, repeat.told_at, repeat.told_wall = 0, mono, wall
        return f"cannot connect to {broker}: {error.text}{told}"

    def connected(self, broker: str, mono: float, wall: float) -> str | None:
        """The connection works: the line that says so after failures (``None`` if none)."""
        failures, self._failures = self._failures, 0
        self._repeats.clear()
        if self.current is not None and not self.current.until:
            self.current = replace(self.current, until=_clock(wall))
        if not failures:
            return None
        return (
            f"connected to {broker} after {failures} failed attempt"
            f"{'s' if failures != 1 else ''} over {_duration(mono - self._first_mono)}"
        )
