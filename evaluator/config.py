"""Layered TOML configuration: load, check, and explain every mistake at once.

``config/default.toml`` is the annotated template *and* the schema: its sections and keys are the
only ones that exist, and the type of each default value (string, integer, number, boolean, or a
duration string such as ``"30s"``) is the type the key accepts. The range and format rules that a
type cannot express live in :data:`RULES` below.

Files are layered: ``default.toml`` first, then each given file in order, later files overriding
earlier ones key by key. :func:`check_config` returns every problem in every file, each printable
as one line::

    config/bad.toml:7: mqtt.port = 70000: expected an integer from 1 to 65535
    config/bad.toml:3: mqtt.hots = "x": unknown key in [mqtt]; did you mean 'host'?

A secret is never printed: the value of any key whose name looks secret (``password``, ``passwd``,
``secret``, ``token``, ``key``, ``pin``, …, or a misspelling of one) is shown as ``***``.  A key
holding a path (``tls_key``, ``key_file``, ``password_file``: :func:`is_path_name`) is no secret:
its path is always shown (a fix must name the file).

:func:`check_config` also checks what ``evaluator run`` needs beyond the values: the reason list
file exists and parses, the font file exists and is a font (or, when ``font = ""``, that the
search finds one).  A file that cannot be read or parsed reports only that, nothing derived from
its absence.  A UTF-8 byte-order mark (Notepad) is accepted.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.rules.deviceid import DEVICE_ID_EXPECTED, device_id_problem
from evaluator.rules.errors import ConfigError, DataFileError
from evaluator.rules.phrases import default_phrases_path, load_phrases
from evaluator.rules.reasons import default_reasons_path, load_reasons
from evaluator.rules.request import identity_in, unshowable
from evaluator.rules.shipped import FONT_SEARCH_PATHS, shipped_file
from kiosk.texts import LANGUAGES

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""The configuration format this code reads (``[device] schema_version``).  Version 1 is every
file written before the key existed (every file shipped until then); version 2 added the key
and renamed or removed nothing, so a version-1 file means the same and is read as version 2
with one log line.  The key lives in ``[device]``, not at the top of the file: every key of
the schema is ``section.key`` (the check, the reference, ``config show``), and a top-level key
must come before the first ``[section]`` in TOML, so one appended at the end of a file would
land in its last section."""

__all__ = [
    "CONFIG_DIR_ENV",
    "MASKED",
    "NO_VALUE",
    "SCHEMA_CHANGES",
    "SCHEMA_VERSION",
    "SYSTEM_CONFIG_DIR",
    "Config",
    "CounterConfig",
    "DeviceConfig",
    "IdleConfig",
    "MqttConfig",
    "PrinterConfig",
    "Problem",
    "ReceiptConfig",
    "SchemaChange",
    "ScreenConfig",
    "SessionConfig",
    "StorageConfig",
    "TechConfig",
    "VoiceConfig",
    "check_config",
    "config_files",
    "default_config_path",
    "default_voice_dir",
    "documented_keys",
    "is_path_name",
    "is_secret_name",
    "load_config",
    "parse_duration",
    "show_config",
    "system_config_files",
]


# --------------------------------------------------------------------------- public dataclasses


@dataclass(frozen=True)
class DeviceConfig:
    """``[device]``: who this pad is."""

    id: str
    """Unique pad id (required): :mod:`evaluator.rules.deviceid`; used in MQTT topics."""
    window: str
    """Window label shown on screen, e.g. ``"12号窗口"``; default ``""``."""
    area_code: str
    """6-digit administrative division code; default ``"440500"``."""
    key_file: Path
    """The device's signing key, absolute; ``device.key`` next to the store when no file sets
    one."""
    schema_version: int = SCHEMA_VERSION
    """Always :data:`SCHEMA_VERSION`: every file read was migrated to it (or refused)."""


@dataclass(frozen=True)
class CounterConfig:
    """``[counter]``: the link to the clerk's business system."""

    port: str
    """Device path or pyserial URL (``loop://``, ``spy://…``, ``socket://…``, ``sim://…``);
    ``""`` (default) disables the link."""
    baudrate: int
    """Serial speed in bit/s, a standard rate 1200…921600; default 9600."""
    reconnect: float
    """Seconds between reopen attempts; default 2.0."""


@dataclass(frozen=True)
class MqttConfig:
    """``[mqtt]``: upstream delivery of ratings."""

    enabled: bool
    """Send upstream at all; default True."""
    host: str
    """Broker host; default ``"127.0.0.1"``."""
    port: int
    """Broker TCP port 1…65535; default 1883."""
    topic_prefix: str
    """First topic levels, no wildcards, no leading/trailing ``/``; default ``"hcp/v1"``."""
    client_id: str
    """MQTT client id; ``"evaluator-<device id>"`` when the file leaves it empty."""
    username: str
    """Broker user; ``""`` (default) for anonymous."""
    password: str
    """Broker password; default ``""``."""
    keepalive: float
    """Keepalive in seconds (1…65535); default 30.0."""
    resend_after: float
    """Seconds without acknowledgement before a rating is resent; default 30.0."""
    max_rate: float
    """Messages per second a backlog drains at once its burst is spent, > 0; default 20.0."""
    burst: int
    """Messages a backlog may send at once (the token bucket's size), 1…100000; default 300."""
    max_unacked: int
    """Most sent ratings awaiting the city's ack before a backlog waits, 1…10000; default 200."""
    reconnect_spread: float
    """Seconds of random extra wait before the first reconnect after a lost connection,
    0…3600; default 10.0."""
    status_every: float = 60.0
    """Seconds between refreshes of the retained status (5…3600); default 60.0."""
    urls: tuple[str, ...] = ()
    """Broker URLs tried in turn (``mqtt://host:port``, ``mqtts://host:port``); ``()``
    (default) means ``mqtt://{host}:{port}``."""
    protocol: str = "5"
    """MQTT version, ``"5"`` (default) or ``"3.1.1"``."""
    tls_ca: Path | None = None
    """The city's CA certificate, absolute; required for ``mqtts://``; None (default) = no TLS."""
    tls_cert: Path | None = None
    """The pad's client certificate (CN = device id), absolute; None (default) = none."""
    tls_key: Path | None = None
    """The pad's TLS private key, absolute; set together with ``tls_cert``."""


@dataclass(frozen=True)
class StorageConfig:
    """``[storage]``: the local rating store."""

    path: Path
    """SQLite file, absolute; default ``/var/lib/evaluator/ratings.db``."""


@dataclass(frozen=True)
class SessionConfig:
    """``[session]``: timing of one rating presentation."""

    timeout: float
    """Seconds a rating screen waits before the presentation ends NOT RATED; default 60.0."""
    thanks: float
    """Seconds the thank-you screen stays (0 skips it); default 3.0."""
    followup_window: float
    """Seconds after a first rating within which one follow-up is taken; default 7 days."""
    followup_gap: float
    """Least seconds since a case's previous rating before a follow-up; default 4 h."""
    visit_gap: float
    """Least seconds since a case's previous rating before a 承诺件 visit after the first;
    default 2 h."""
    press_guard: float
    """Seconds after a screen change during which presses are ignored; default 0.3."""
    reasons_file: Path
    """Reason list file, absolute; the shipped ``config/reasons.toml`` when no file sets one."""
    phrases_file: Path
    """常用意见 list, absolute; the shipped ``config/phrases.toml`` when no file sets one."""


@dataclass(frozen=True)
class ButtonsConfig:
    """``[buttons]``: hardware level buttons on GPIO pins (BCM numbers; -1 = not fitted)."""

    very_satisfied: int
    satisfied: int
    basically_satisfied: int
    dissatisfied: int
    very_dissatisfied: int
    pull_up: bool
    """Internal pull-up, button to ground; default True."""
    bounce_time: float
    """Seconds an edge is ignored after one; default 0.05."""
    pin_factory: str
    """gpiozero pin factory name, "" for gpiozero's own choice, "mock" for MockFactory."""

    @property
    def pins(self) -> dict[str, int]:
        """Level value → BCM pin, for the buttons that are fitted."""
        return {name: getattr(self, name) for name in BUTTON_KEYS if getattr(self, name) >= 0}


@dataclass(frozen=True)
class ScreenConfig:
    """``[screen]``: the display."""

    width: int
    """Pixels of the display's native mode (before ``rotate``); default 800."""
    height: int
    """Pixels of the display's native mode (before ``rotate``); default 480."""
    dpi: int
    """The panel's pixels per inch (touch targets are sized in millimetres); default 133, the
    official 7" 800×480 Raspberry Pi display."""
    rotate: int
    """Degrees the panel is turned clockwise from its native position: 0 (default), 90, 180
    or 270; ``width`` × ``height`` stay the native mode, the screens are laid out turned."""
    fullscreen: bool
    """Kiosk mode; default False."""
    font: Path | None
    """CJK font file, absolute; None (default) means search the usual locations."""
    font_bold: Path | None
    """Bold CJK font file, absolute; None (default) means search the known bold faces (none
    found: bold text is drawn in the regular face)."""
    driver: str
    """SDL video driver: ``auto`` (default), ``x11``, ``wayland``, ``kmsdrm`` or ``dummy``."""
    language: str
    """Language of the screen's texts: ``zh`` (default) or ``en``."""


@dataclass(frozen=True)
class IdleConfig:
    """``[idle]``: the screen between presentations."""

    static_qr: str
    """URL of the window's static QR (art. 17(3)) shown on the idle screen; ``""`` shows none."""
    screensaver_after: float
    """Seconds without a trigger or touch on the idle (or signed-out) screen before the
    screensaver; 0 never; default 600.0."""


@dataclass(frozen=True)
class VoiceConfig:
    """``[voice]``: spoken prompts (the rating screen shown, 谢谢 shown)."""

    enabled: bool
    """Play the prompts; default False (:class:`kiosk.voice.SilentVoice` then)."""
    dir: Path
    """Folder holding ``zh/`` and ``en/`` WAVs, absolute; the shipped ``config/voice/`` when no
    file sets one."""
    volume: float
    """0.0 (mute) … 1.0 (as recorded); default 1.0."""


#: ``[receipt] print`` values: when a receipt is printed.
PRINT_POLICIES: tuple[str, ...] = ("never", "always", "unrated", "request")


@dataclass(frozen=True)
class ReceiptConfig:
    """``[receipt]``: when the window prints a receipt (办件回执, art. 17(2)) and what it says."""

    print: str
    """``never`` (default), ``always``, ``unrated`` or ``request`` (:data:`PRINT_POLICIES`)."""
    url_template: str
    """The city's rating page with ``{query}`` after ``?`` or ``&``; required unless never."""
    expiry: float
    """Seconds a printed code stays valid; default 7 days."""
    hall: str
    """The hall's name printed on the receipt and the sticker; required unless never."""
    qr_on_screen: float
    """Seconds the QR stays on screen when its receipt cannot be printed; default 30.0."""


#: ``[printer]`` keys that say where the printer is (:class:`printer.ConnectionSpec` fields).
PRINTER_CONNECTION_KEYS: tuple[str, ...] = (
    "kind", "vendor_id", "product_id", "in_ep", "out_ep", "path", "baudrate", "rtscts", "host",
    "port", "timeout", "status_timeout",
)  # fmt: skip
#: ``[printer]`` keys that say what the model can do (:class:`printer.PrinterProfile` fields).
PRINTER_PROFILE_KEYS: tuple[str, ...] = (
    "paper", "text", "qr", "four_byte", "cut", "status", "font", "qr_ecc",
)  # fmt: skip


@dataclass(frozen=True)
class PrinterConfig:
    """``[printer]``: the receipt printer, checked by the printer adapter's own rules
    (``ConnectionSpec`` and ``PrinterProfile``; see docs/technician.md §5)."""

    kind: str
    vendor_id: int
    product_id: int
    in_ep: int
    out_ep: int
    path: str
    baudrate: int
    rtscts: bool
    host: str
    port: int
    timeout: float
    status_timeout: float
    paper: str
    text: str
    qr: str
    four_byte: bool
    cut: bool
    status: bool
    font: Path | None
    """Absolute; None (default) means the same search as the screen's font."""
    qr_ecc: str
    spool_dir: Path
    """Absolute; ``receipts/`` next to the rating store when no file sets one."""

    @property
    def connection(self) -> dict[str, Any]:
        """The ``ConnectionSpec.from_config`` table."""
        return {name: getattr(self, name) for name in PRINTER_CONNECTION_KEYS}

    @property
    def profile(self) -> dict[str, Any]:
        """The ``PrinterProfile.from_config`` table (``font`` as a string, "" for the search)."""
        table = {name: getattr(self, name) for name in PRINTER_PROFILE_KEYS}
        table["font"] = str(self.font) if self.font is not None else ""
        return table


@dataclass(frozen=True)
class TechConfig:
    """``[tech]``: the technician's menu on the pad (:mod:`evaluator.techmenu`)."""

    pin: str
    """The menu's PIN, 4 to 12 digits; ``""`` (default) = no menu.  A secret (masked)."""
    lockout: float
    """Seconds the menu stays locked after 3 wrong PINs; default 300.0."""


@dataclass(frozen=True)
class Config:
    """The whole, checked configuration."""

    device: DeviceConfig
    counter: CounterConfig
    mqtt: MqttConfig
    storage: StorageConfig
    session: SessionConfig
    buttons: ButtonsConfig
    screen: ScreenConfig
    idle: IdleConfig
    """``[idle]``: the static QR and the screensaver."""
    voice: VoiceConfig
    """``[voice]``: the spoken prompts."""
    receipt: ReceiptConfig
    """``[receipt]``: when receipts print and what they say."""
    printer: PrinterConfig
    """``[printer]``: the receipt printer."""
    sources: tuple[Path, ...]
    """Absolute paths of the files read, in layering order (``default.toml`` first)."""
    tech: TechConfig = TechConfig(pin="", lockout=300.0)
    """``[tech]``: the technician's menu."""


class _NoValue:
    """Marker for a problem that has no value to show (missing file, missing key, …)."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: object = _NoValue()


class _Masked:
    """Stands in for the value of a secret key: printed as ``***``."""

    def __repr__(self) -> str:
        return "***"


MASKED: object = _Masked()


@dataclass(frozen=True)
class Problem:
    """One mistake in one file; ``str()`` gives the one-line message.

    Format: ``FILE[:LINE]: section.key = VALUE: EXPECTED[; SUGGESTION]``; the ``section.key``
    and ``= VALUE`` parts are left out when they do not apply (syntax error, missing file).
    """

    file: str
    key: str
    value: object
    expected: str
    suggestion: str = ""
    line: int | None = None

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}" if self.line else self.file
        if self.key:
            head += f": {self.key}"
            if self.value is not NO_VALUE:
                head += f" = {_show(self.value)}"
        text = f"{head}: {self.expected}"
        return f"{text}; {self.suggestion}" if self.suggestion else text


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(-?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]*)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNIT_ALIASES = {
    "msec": "ms", "msecs": "ms", "millisecond": "ms", "milliseconds": "ms",
    "sec": "s", "secs": "s", "second": "s", "seconds": "s", "S": "s",
    "min": "m", "mins": "m", "minute": "m", "minutes": "m", "M": "m",
    "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "H": "h",
}  # fmt: skip
DURATION_UNIT_HINT = "durations need a unit"


def parse_duration(text: str) -> float:
    """Seconds in a duration string: ``"500ms"`` → 0.5, ``"60s"``, ``"1.5s"``, ``"5m"``, ``"1h"``.

    Units: ``ms``, ``s``, ``m`` (minutes), ``h``. Raises ``ValueError`` whose message says what
    to write instead (a bare ``"60"`` → "durations need a unit, did you mean '60s'?").
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit, e.g. '30s'")
    number, unit = match.groups()
    if number.startswith("-"):
        raise ValueError(f"{text!r}: a duration cannot be negative")
    if not unit:
        raise ValueError(f"{DURATION_UNIT_HINT}, did you mean '{number}s'?")
    if unit not in _UNITS:
        known = _UNIT_ALIASES.get(unit) or _UNIT_ALIASES.get(unit.lower())
        hint = f", did you mean '{number}{known}'?" if known else ""
        raise ValueError(f"unknown unit {unit!r}, use ms, s, m or h{hint}")
    return float(number) * _UNITS[unit]


# --------------------------------------------------------------------------- schema

_Bad = tuple[str, str]  # (expected, suggestion)
_Rule = Callable[[Any], _Bad | None]  # takes the converted value


@dataclass(frozen=True)
class _Key:
    section: str
    name: str
    kind: str  # "str" | "int" | "float" | "bool" | "duration"
    default: object


def default_voice_dir() -> Path:
    """The shipped voice prompts, ``config/voice/`` (``scripts/make-voice`` makes them), from the
    checkout or the installed package data."""
    return shipped_file("voice/zh/presenting.wav").parents[1]


def default_config_path() -> Path:
    """The annotated default file ``config/default.toml`` (base layer and schema), from the
    checkout or, in an installed wheel, from the package data (:mod:`evaluator.rules.shipped`)."""
    return shipped_file("default.toml")


# --------------------------------------------------------------------------- secrets

#: Names (or name parts) of keys whose values are secrets.  Short ones must be a whole part of the
#: key name that ends it or is followed only by a word like ``code`` (``api_key``, ``pin``,
#: ``pin_code``; not ``pin_factory``); long ones may be anywhere (``mqttpassword``) or misspelt.
_SECRET_PARTS = frozenset({"key", "pin", "pwd", "pass", "psk", "auth", "otp", "cred", "creds"})
#: Words that may follow a short secret part and keep it secret (``pin_code``, ``key_value``).
_SECRET_SUFFIXES = frozenset({"code", "value", "hash", "data", "text", "string", "str"})
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credential",
                 "credentials", "private", "signature", "cookie", "session_key")  # fmt: skip


#: Endings of names whose value is a path (``password_file``, ``key_path``, ``spool_dir``).
_PATH_SUFFIXES = ("_file", "_path", "_dir", "_folder")


def is_path_name(name: str) -> bool:
    """True when a key named ``name`` holds a file's path, not the secret in it (``tls_key``,
    ``key_file``, ``password_file``): its value is always shown, since a technician who is told
    to ``chmod 600`` a file must be told which one (what the file holds is never read here)."""
    lowered = name.lower()
    return lowered in _PATH_NAMES or lowered.endswith(_PATH_SUFFIXES)


def is_secret_name(name: str) -> bool:
    """True when a key named ``name`` may hold a secret, so its value is shown as ``***``.

    Matches the usual names and close misspellings of them (``pasword``, ``passwrd``, ``tokne``),
    but not a name of a path (:func:`is_path_name`: ``tls_key``, ``password_file``).
    """
    if is_path_name(name):
        return False
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", spaced) if p]
    joined = "".join(parts)
    if any(word.replace("_", "") in joined for word in _SECRET_WORDS):
        return True
    for i, part in enumerate(parts):
        rest = parts[i + 1 :]
        if part in _SECRET_PARTS and all(r in _SECRET_SUFFIXES for r in rest):
            return True
        if part.startswith(("pass", "pwd", "secr", "tok")):
            return True
        if difflib.get_close_matches(part, _SECRET_WORDS, n=1, cutoff=0.75):
            return True
    return bool(difflib.get_close_matches(joined, _SECRET_WORDS, n=1, cutoff=0.75))


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        try:
            parse_duration(value)
        except ValueError:
            return "str"
        return "duration"
    if isinstance(value, list):  # a list of strings ([mqtt] urls)
        return "list"
    raise TypeError(f"default.toml: unsupported default {value!r}")


def _schema() -> dict[str, dict[str, _Key]]:
    with default_config_path().open("rb") as f:
        data = tomllib.load(f)
    return {
        section: {name: _Key(section, name, _kind_of(v), v) for name, v in table.items()}
        for section, table in data.items()
    }


def documented_keys() -> dict[str, list[str]]:
    """Section → key names, in the order ``default.toml`` documents them."""
    return {section: list(keys) for section, keys in _schema().items()}


# --------------------------------------------------------------------------- rules (data)


def _int_range(lo: int, hi: int) -> _Rule:
    def rule(v: int) -> _Bad | None:
        return None if lo <= v <= hi else (f"expected an integer from {lo} to {hi}", "")

    return rule


def _seconds(lo: float, hi: float = math.inf, *, lo_open: bool = False) -> _Rule:
    def rule(v: float) -> _Bad | None:
        ok = (v > lo if lo_open else v >= lo) and v <= hi
        if ok:
            return None
        if hi != math.inf:
            return f"expected a duration from {lo:g}s to {hi:g}s", ""
        return ("expected a duration of more than 0s" if lo_open else
                f"expected a duration of {lo:g}s or more"), ""  # fmt: skip

    return rule


def _one_of(options: Sequence[str]) -> _Rule:
    def rule(v: object) -> _Bad | None:
        if v in options:
            return None
        close = difflib.get_close_matches(str(v).lower(), options, n=1)
        return f"expected one of {', '.join(options)}", _did_you_mean(close)

    return rule


def _not_empty(what: str) -> _Rule:
    def rule(v: object) -> _Bad | None:
        return None if v else (f"expected {what}, not empty", "")

    return rule


STANDARD_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
SCREEN_DRIVERS = ("auto", "x11", "wayland", "kmsdrm", "dummy")
#: ``[screen] rotate``: degrees the panel is turned clockwise (``kiosk.sizes.ROTATIONS``).
SCREEN_ROTATIONS = (0, 90, 180, 270)


def _rotation(v: int) -> _Bad | None:
    if v in SCREEN_ROTATIONS:
        return None
    expected = "expected one of 0, 90, 180, 270 (degrees the panel is turned clockwise)"
    turn = v % 360
    if turn in SCREEN_ROTATIONS:  # -90 is 270 clockwise, 450 is 90
        return expected, f"did you mean {turn}?"
    return expected, ""
#: ``[buttons]`` keys holding a level button's BCM pin, in button order.
BUTTON_KEYS = (
    "very_satisfied", "satisfied", "basically_satisfied", "dissatisfied", "very_dissatisfied"
)  # fmt: skip
#: ``[buttons] pin_factory`` values ("" = gpiozero's own choice).
PIN_FACTORIES = ("", "lgpio", "rpigpio", "pigpio", "native", "mock")

KNOWN_PORT_SCHEMES = (
    "loop", "spy", "socket", "rfc2217", "hwgrep", "alt", "cp2110", "sim", "dummy"
)  # fmt: skip


def _device_id(v: object) -> _Bad | None:
    # "" means "not set here"; whether some layer set it is checked after layering.
    # The rule of every step that takes an id (provision, signing, registration): one place.
    if v == "" or (why := device_id_problem(v)) is None:
        return None
    return why, ""


def _area_code(v: object) -> _Bad | None:
    ok = re.fullmatch(r"[0-9]{6}", str(v))
    return None if ok else ('expected 6 digits (行政区划代码), e.g. "440500"', "")


def _baudrate(v: int) -> _Bad | None:
    if v in STANDARD_BAUDRATES:
        return None
    closest = min(STANDARD_BAUDRATES, key=lambda rate: abs(rate - v))
    rates = " ".join(map(str, STANDARD_BAUDRATES))
    return f"expected a standard rate, one of {rates}", f"did you mean {closest}?"


def _counter_port(v: object) -> _Bad | None:
    text = str(v)
    if "://" not in text:
        return None
    scheme = text.split("://", 1)[0]
    if scheme in KNOWN_PORT_SCHEMES:
        return None
    close = difflib.get_close_matches(scheme.lower(), KNOWN_PORT_SCHEMES, n=1)
    schemes = ", ".join(f"{s}://" for s in KNOWN_PORT_SCHEMES)
    hint = f"did you mean '{close[0]}://'?" if close else ""
    return f'expected a device path, "" or a URL starting with one of {schemes}', hint


def _topic_prefix(v: object) -> _Bad | None:
    text = str(v)
    bad = (not text or "+" in text or "#" in text or "\0" in text or text.startswith("/")
           or text.endswith("/") or "//" in text)  # fmt: skip
    if not bad:
        return None
    fixed = "/".join(level for level in text.replace("+", "").replace("#", "").split("/") if level)
    hint = f"did you mean '{fixed}'?" if fixed and fixed != text else ""
    return ("expected topic levels like \"hcp/v1\": not empty, no '+' or '#', "
            "no leading or trailing '/', no empty level"), hint  # fmt: skip


#: Longest ``[idle] static_qr`` URL: a short link keeps the QR coarse enough to scan at a counter.
STATIC_QR_MAX = 200
_STATIC_QR = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)


def _static_qr(v: object) -> _Bad | None:
    text = str(v)
    if text == "":
        return None
    if len(text) > STATIC_QR_MAX:
        return f"expected a URL of at most {STATIC_QR_MAX} characters (it has {len(text)})", ""
    if _STATIC_QR.fullmatch(text) and text.isprintable():
        return None
    hint = ""
    if "://" not in text and text.strip() and " " not in text.strip():
        hint = f"did you mean 'https://{text.strip()}'?"
    return 'expected "" or an http:// or https:// URL without spaces', hint


def _volume(v: float) -> _Bad | None:
    if 0.0 <= v <= 1.0:
        return None
    hint = f"did you mean {v / 100:g}?" if 1 < v <= 100 else ""  # a percentage
    return "expected a number from 0.0 (mute) to 1.0 (as recorded)", hint


def _positive_number(v: float) -> _Bad | None:
    return None if math.isfinite(v) and v > 0 else ("expected a number more than 0", "")


#: Longest ``[receipt] url_template``: the signed query adds some 230 characters, and the whole
#: URL must stay short enough for a QR with modules of at least 4 dots on 58 mm paper.
URL_TEMPLATE_MAX = 120
#: Longest ``[receipt] hall`` and ``[device] window`` a receipt prints (printer.receipt).
HALL_MAX = 64
WINDOW_MAX = 32


def _url_template(v: object) -> _Bad | None:
    text = str(v)
    if text == "":
        return None  # whether it is needed is checked after layering ([receipt] print)
    if len(text) > URL_TEMPLATE_MAX:
        return (f"expected a URL template of at most {URL_TEMPLATE_MAX} characters (it has "
                f"{len(text)}): the signed query makes the QR denser still"), ""  # fmt: skip
    from evaluator.rules.ratelink import check_template  # here: hmac/secrets cost the start ~6 ms

    problem = check_template(text)
    if problem is None and text.isascii() and text.isprintable():
        return None
    hint = ""
    if "{query}" not in text and "?" not in text and "://" in text:
        hint = f"did you mean '{text}?{{query}}'?"
    return (
        "expected an http(s) URL with {query} once, right after ? or & "
        f"({problem or 'printable ASCII only'})",
        hint,
    )


def _printed_text(limit: int) -> _Rule:
    """A text printed on a receipt: showable, at most ``limit`` characters, no citizen identity."""

    def rule(v: object) -> _Bad | None:
        text = str(v).strip()
        if len(text) > limit:
            return f"expected at most {limit} characters (it has {len(text)})", ""
        bad = unshowable(text)
        if bad is not None:
            return f"expected text that can be printed; it holds {bad}", ""
        found = identity_in(text)
        if found is not None:
            return f"holds what looks like a {found}: never printed (art. 4)", ""
        return None

    return rule


def _tech_pin(v: object) -> _Bad | None:
    text = str(v)
    if text == "" or re.fullmatch(r"[0-9]{4,12}", text):
        return None
    return 'expected "" (no technician menu) or 4 to 12 digits (the keypad has only digits)', ""


#: ``[mqtt] protocol`` values.
MQTT_PROTOCOLS = ("5", "3.1.1")


def _broker_url_problem(url: str) -> str | None:
    """Why ``url`` is no broker URL the pad can dial, or None: the sync worker's own parser
    (:func:`sync.mqtt.parse_broker_url`), so the check and the pad never disagree."""
    from sync.mqtt import parse_broker_url  # here: paho costs the start of every command

    try:
        parse_broker_url(url)
    except ValueError as exc:
        return str(exc)
    return None


def _broker_urls(v: list[str]) -> _Bad | None:
    for url in v:
        why = _broker_url_problem(url)
        if why is not None:
            hint = ""
            if "://" not in url and url.strip():
                hint = f"did you mean 'mqtts://{url.strip()}'?"
            return f"expected mqtt://host:port or mqtts://host:port: {why}", hint
    return None


RULES: dict[tuple[str, str], _Rule] = {
    ("device", "id"): _device_id,
    ("device", "area_code"): _area_code,
    ("device", "schema_version"): lambda v: _int_range(1, SCHEMA_VERSION)(v),
    ("counter", "port"): _counter_port,
    ("counter", "baudrate"): _baudrate,
    ("counter", "reconnect"): _seconds(0, lo_open=True),
    ("mqtt", "host"): _not_empty("a host name or IP address"),
    ("mqtt", "port"): _int_range(1, 65535),
    ("mqtt", "topic_prefix"): _topic_prefix,
    ("mqtt", "keepalive"): _seconds(1, 65535),
    ("mqtt", "resend_after"): _seconds(0, lo_open=True),
    ("mqtt", "max_rate"): _positive_number,
    ("mqtt", "burst"): _int_range(1, 100_000),
    ("mqtt", "max_unacked"): _int_range(1, 10_000),
    ("mqtt", "reconnect_spread"): _seconds(0, 3600),
    ("mqtt", "status_every"): _seconds(5, 3600),
    ("mqtt", "urls"): _broker_urls,
    ("mqtt", "protocol"): _one_of(MQTT_PROTOCOLS),
    ("storage", "path"): _not_empty("a file path"),
    ("session", "timeout"): _seconds(0, lo_open=True),
    ("session", "thanks"): _seconds(0),
    ("session", "followup_window"): _seconds(0, lo_open=True),
    ("session", "followup_gap"): _seconds(0),
    ("session", "visit_gap"): _seconds(0),
    ("session", "press_guard"): _seconds(0, 2),
    **{("buttons", name): _int_range(-1, 27) for name in BUTTON_KEYS},
    ("buttons", "bounce_time"): _seconds(0.001, 1.0),
    ("buttons", "pin_factory"): _one_of(PIN_FACTORIES),
    ("screen", "width"): _int_range(1, 16384),
    ("screen", "height"): _int_range(1, 16384),
    ("screen", "dpi"): _int_range(50, 1000),
    ("screen", "driver"): _one_of(SCREEN_DRIVERS),
    ("screen", "rotate"): _rotation,
    ("screen", "language"): _one_of(LANGUAGES),
    ("idle", "static_qr"): _static_qr,
    ("idle", "screensaver_after"): _seconds(0),
    ("voice", "volume"): _volume,
    ("receipt", "print"): _one_of(PRINT_POLICIES),
    ("receipt", "url_template"): _url_template,
    ("receipt", "expiry"): _seconds(60, 8784 * 3600),
    ("receipt", "hall"): _printed_text(HALL_MAX),
    ("receipt", "qr_on_screen"): _seconds(5, 600),
    ("tech", "pin"): _tech_pin,
    ("tech", "lockout"): _seconds(10, 86400),
}
"""Checks beyond the type, per ``(section, key)``: ``(expected, suggestion)`` or None if fine."""

REQUIRED: frozenset[tuple[str, str]] = frozenset({("device", "id")})
"""Keys some layer must set to a non-empty value (their default is ``""``)."""

PATH_KEYS: frozenset[tuple[str, str]] = frozenset(
    {
        ("storage", "path"),
        ("device", "key_file"),
        ("session", "reasons_file"),
        ("session", "phrases_file"),
        ("screen", "font"),
        ("screen", "font_bold"),
        ("voice", "dir"),
        ("printer", "font"),
        ("printer", "spool_dir"),
        ("mqtt", "tls_ca"),
        ("mqtt", "tls_cert"),
        ("mqtt", "tls_key"),
    }
)
"""Keys holding file paths, resolved against the directory of the file that set them."""
_PATH_NAMES = frozenset(name for _section, name in PATH_KEYS)


# --------------------------------------------------------------------------- schema_version


@dataclass(frozen=True)
class SchemaChange:
    """A key renamed (``new``) or removed (``new == ""``) by schema ``version``: a file written
    for an older version that sets it is refused with the change to make, since a silent
    rename could change what the pad does."""

    version: int
    section: str
    old: str
    new: str = ""
    why: str = ""

    def fix(self) -> str:
        """The change to make to the file, word for word."""
        bump = f"and set [device] schema_version = {SCHEMA_VERSION}"
        if self.new:
            return f"rename [{self.section}] {self.old} to {self.new} {bump}"
        return f"delete [{self.section}] {self.old} ({self.why}) {bump}"


SCHEMA_CHANGES: tuple[SchemaChange, ...] = ()
_MIGRATED: set[str] = set()
"""Files whose migration was logged."""
"""Every key renamed or removed since version 1, oldest first.  Version 2 changed none."""


def _file_version(
    data: dict[str, Any], label: str, where: _Locator, problems: list[Problem]
) -> int | None:
    """The schema version a file is written for (1 when it says none), or None when it is
    written for a newer evaluator: refused whole, its keys may mean what this code does not
    know.  A value of the wrong type or below 1 is left to the key's own check."""
    device = data.get("device")
    version = device.get("schema_version") if isinstance(device, dict) else None
    if version is None:
        return 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        problems.append(Problem(
            label, "device.schema_version", version,
            f"this file is written for configuration version {version}, but this evaluator "
            f"knows versions 1 to {SCHEMA_VERSION}",
            f"install a newer evaluator, or write the file for version {SCHEMA_VERSION} "
            "(docs/technician.md, \"Config versions\")",
            where.line("device", "schema_version"),
        ))  # fmt: skip
        return None
    return version


# --------------------------------------------------------------------------- where files are

SYSTEM_CONFIG_DIR = Path("/etc/evaluator")
"""An installed pad's configuration: ``evaluator.toml``, then ``conf.d/*.toml`` in name order."""
CONFIG_DIR_ENV = "EVALUATOR_CONFIG_DIR"
"""Environment variable naming another folder instead of :data:`SYSTEM_CONFIG_DIR` (tests, a
``--root`` install); set but empty, no folder is read."""


def system_config_files(directory: Path | None = None) -> list[Path]:
    """The installed configuration files, in layering order: ``evaluator.toml`` (when it
    exists) and ``conf.d/*.toml`` sorted by name (hidden files left out).  ``directory``
    defaults to ``$EVALUATOR_CONFIG_DIR`` or ``/etc/evaluator``.  A file or folder that cannot
    be looked at is listed all the same, so the check names it instead of skipping it."""
    if directory is None:
        env = os.environ.get(CONFIG_DIR_ENV)
        if env == "":
            return []
        directory = Path(env) if env else SYSTEM_CONFIG_DIR
    files: list[Path] = []
    main = directory / "evaluator.toml"
    try:
        if main.exists():
            files.append(main)
    except OSError:  # a folder the user may not look into (root:evaluator 0750)
        return [main]
    dropins = directory / "conf.d"
    try:
        names = sorted(p.name for p in dropins.iterdir() if p.suffix == ".toml")
    except FileNotFoundError:
        names = []
    except OSError:
        return [*files, dropins / "*.toml"]
    return files + [dropins / name for name in names if not name.startswith(".")]


def config_files(given: Sequence[Path | str] = ()) -> list[Path]:
    """What a command reads, in order: the installed files (:func:`system_config_files`), then
    each ``--config`` file given.  A given file that is one of the installed ones is not read
    twice (``--config /etc/evaluator/evaluator.toml`` after conf.d would undo the drop-ins)."""
    files = system_config_files()
    seen = {_same_file_key(f) for f in files}
    return files + [Path(g) for g in given if _same_file_key(Path(g)) not in seen]


def _same_file_key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path)


# --------------------------------------------------------------------------- checking

_TYPE_NAMES = {
    "str": "a string (in quotes)",
    "int": "an integer (no quotes)",
    "float": "a number (no quotes)",
    "bool": "true or false (no quotes)",
    "duration": "a duration string with a unit, e.g. '30s'",
    "list": 'a list of strings, e.g. ["mqtts://mqtt.city.example:8883"]',
}


def _show(value: object) -> str:
    """A value as it would be written in TOML."""
    if value is MASKED:
        return "***"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _did_you_mean(close: Sequence[str]) -> str:
    return f"did you mean '{close[0]}'?" if close else ""


def _convert(key: _Key, value: object) -> tuple[object, _Bad | None]:
    """The value in its Python form (durations in seconds), or why its type is wrong."""
    kind = key.kind
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "duration":
        if is_number:
            return None, (DURATION_UNIT_HINT, f"did you mean '{value}s'?")
        if not isinstance(value, str):
            return None, (f"expected {_TYPE_NAMES[kind]}", "")
        try:
            return parse_duration(value), None
        except ValueError as exc:
            message, _, hint = str(exc).partition(", did you mean")
            return None, (
                f"expected a duration like '500ms', '30s', '5m' or '1h' ({message})",
                f"did you mean{hint}" if hint else "",
            )
    if kind in ("str", "list") and (bad := _control_character(value)) is not None:
        return None, (f"expected one line of text; it holds the control character {bad}", "")
    if kind == "str" and isinstance(value, str):
        return value, None
    if kind == "bool" and isinstance(value, bool):
        return value, None
    if kind == "list" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value), None
    if kind == "int" and is_number and isinstance(value, int):
        return value, None
    if kind == "float" and is_number:
        return float(value), None  # type: ignore[arg-type]
    return None, (f"expected {_TYPE_NAMES[kind]}", _type_hint(kind, value))


def _control_character(value: object) -> str | None:
    """``"U+XXXX"`` of the first control character in a string (or list of strings), or None.

    Every string key is one line of text: a path (``open()`` raises on U+0000), an MQTT string
    (none may hold U+0000), a label drawn on the screen.  TOML lets a file spell any of them as
    an escape, so they are refused here, on the key, for every string at once."""
    texts = value if isinstance(value, list) else [value]
    for text in texts:
        if isinstance(text, str):
            for char in text:
                if char < " " or "\x7f" <= char <= "\x9f":
                    return f"U+{ord(char):04X}"
    return None


def _type_hint(kind: str, value: object) -> str:
    """A concrete rewrite for the common quoting mistakes."""
    if kind == "str" and not isinstance(value, dict | list):
        return f'did you mean "{_show(value)}"?'
    if kind == "list" and isinstance(value, str):
        return f"did you mean [{_show(value)}]?"
    if isinstance(value, str):
        text = value.strip()
        if kind == "int" and re.fullmatch(r"[+-]?\d+", text):
            return f"did you mean {int(text)}?"
        if kind == "float" and re.fullmatch(r"[+-]?\d+(\.\d*)?", text):
            return f"did you mean {float(text)}?"
        if kind == "bool" and text.lower() in {"true", "false", "yes", "no", "on", "off", "1", "0"}:
            truth = text.lower() in {"true", "yes", "on", "1"}
            return f"did you mean {_show(truth)}?"
    return ""


class _Locator:
    """Finds the line where a section or key is written (tomllib gives no positions)."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.positions: dict[tuple[str, str], int] = {}
        section = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                section = header.group(1).replace('"', "").replace("'", "")
                self.positions.setdefault((section, ""), number)
                parent, _, leaf = section.rpartition(".")
                self.positions.setdefault((parent, leaf), number)  # [mqtt.tls] is key mqtt.tls
                continue
            key = self._KEY.match(line)
            if key:
                dotted = ".".join(filter(None, [section, key.group(1).strip("\"'")]))
                where, _, name = dotted.rpartition(".")
                self.positions.setdefault((where, name), number)
                self.positions.setdefault((dotted.split(".")[0], ""), number)

    def line(self, section: str, key: str = "") -> int | None:
        return self.positions.get((section, key))


def _suggest_key(schema: dict[str, dict[str, _Key]], section: str, name: str) -> str:
    own = difflib.get_close_matches(name.lower(), list(schema[section]), n=1)
    if own:
        return _did_you_mean(own)
    elsewhere = [(s, k) for s, keys in schema.items() for k in keys if s != section]
    exact = [(s, k) for s, k in elsewhere if k == name.lower()]
    if exact:
        return f"did you mean '{exact[0][1]}' in [{exact[0][0]}]?"
    close = difflib.get_close_matches(name.lower(), [k for _, k in elsewhere], n=1)
    if close:
        s = next(s for s, k in elsewhere if k == close[0])
        return f"did you mean '{close[0]}' in [{s}]?"
    return ""


# One setting after layering: its Python value and the file that set it.
_Setting = tuple[object, Path, str, int | None]  # value, absolute source, label, line


def _masked_text(text: str, value: object) -> str:
    for part in (value, *(value if isinstance(value, list) else ())):
        if str(part):
            text = text.replace(str(part), "***")
    return text


def _shown(name: str, value: object) -> object:
    """What a problem line may show of ``value``: nothing for a table, ``***`` for a secret."""
    if isinstance(value, dict):
        return NO_VALUE
    return MASKED if is_secret_name(name) else value


def _read_layer(
    path: Path, label: str, schema: dict[str, dict[str, _Key]], problems: list[Problem]
) -> dict[tuple[str, str], _Setting] | None:
    """Valid settings of one file, or None when it cannot be read or parsed; its problems are
    appended to ``problems``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problems.append(Problem(label, "", NO_VALUE, f"file not found (looked for {path})"))
        return None
    except OSError as exc:
        problems.append(Problem(label, "", NO_VALUE, f"cannot read: {exc.strerror or exc}"))
        return None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # Notepad's byte-order mark
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        expected = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        problems.append(Problem(label, "", NO_VALUE, expected))
        return None
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(label, "", NO_VALUE, f"TOML syntax error: {exc}"))
        return None

    where = _Locator(text)
    version = _file_version(data, label, where, problems)
    if version is None:
        return None
    changed = {(c.section, c.old): c for c in SCHEMA_CHANGES}
    refused = len(problems)
    source = path.resolve()
    settings: dict[tuple[str, str], _Setting] = {}
    for section, table in data.items():
        if section not in schema:
            if isinstance(table, dict):
                close = difflib.get_close_matches(section.lower(), list(schema), n=1)
                hint = f"did you mean [{close[0]}]?" if close else ""
                expected = f"unknown section; the sections are {', '.join(schema)}"
                problems.append(Problem(label, f"[{section}]", NO_VALUE, expected, hint,
                                        where.line(section)))  # fmt: skip
            else:
                owners = [s for s, keys in schema.items() if section in keys]
                hint = f"did you mean '{section}' in [{owners[0]}]?" if owners else ""
                problems.append(Problem(label, section, _shown(section, table),
                                        "a key outside any [section]", hint,
                                        where.line("", section)))  # fmt: skip
            continue
        if not isinstance(table, dict):
            problems.append(Problem(label, section, _shown(section, table),
                                    f"expected a table [{section}]", "",
                                    where.line("", section) or where.line(section)))  # fmt: skip
            continue
        for name, value in table.items():
            line = where.line(section, name)
            dotted = f"{section}.{name}"
            key = schema[section].get(name)
            if key is None and (change := changed.get((section, name))) is not None:
                done = "renamed" if change.new else "removed"
                problems.append(Problem(label, dotted, _shown(name, value),
                                        f"{done} in schema_version {change.version} (this file "
                                        f"is version {version})", change.fix(), line))  # fmt: skip
                continue
            if key is None:
                problems.append(Problem(label, dotted, _shown(name, value),
                                        f"unknown key in [{section}]",
                                        _suggest_key(schema, section, name), line))  # fmt: skip
                continue
            converted, bad = _convert(key, value)
            if bad is None and (rule := RULES.get((section, name))) is not None:
                bad = rule(converted)
            if bad is not None:
                # Only a problem line shows the value (the secret check is some ms on every key).
                shown = _shown(name, value)
                expected, hint = bad
                if shown is MASKED:  # the hint and a parse message may quote the value
                    expected, hint = _masked_text(expected, value), ""
                problems.append(Problem(label, dotted, shown, expected, hint, line))
                continue
            settings[(section, name)] = (converted, source, label, line)
    if version < SCHEMA_VERSION and len(problems) == refused and label not in _MIGRATED:
        _MIGRATED.add(label)  # once per file and process (a reload reads it again)
        log.info("%s: configuration version %d (%s), read as version %d: nothing it sets changed "
                 "meaning; add [device] schema_version = %d to it", label, version,
                 "no [device] schema_version" if version == 1 else "older", SCHEMA_VERSION,
                 SCHEMA_VERSION)  # fmt: skip
    return settings


def _resolve_path(value: str, source: Path) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = source.parent / path
    return Path(os.path.normpath(path))


# Settings, problems, files read, and whether every file could be read and parsed.
_Layered = tuple[dict[tuple[str, str], _Setting], list[Problem], tuple[Path, ...], bool]


def _layer(paths: Sequence[Path | str]) -> _Layered:
    """Settings after layering, every problem found, and the files read (absolute)."""
    problems: list[Problem] = []
    default = default_config_path()
    try:
        schema = _schema()
    except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:  # a broken install
        broken = Problem(str(default), "", NO_VALUE, f"cannot load the schema: {exc}")
        return {}, [broken], (), False
    layers: list[tuple[Path, str]] = [(default, str(default))]
    for given in paths:
        path = Path(given)
        if path.exists() and path.resolve() == default:
            continue  # already the base layer
        layers.append((path, str(given)))

    merged: dict[tuple[str, str], _Setting] = {}
    complete = True
    for path, label in layers:
        settings = _read_layer(path, label, schema, problems)
        if settings is None:
            complete = False
        else:
            merged.update(settings)
    sources = tuple(path.resolve() for path, _ in layers)
    if not complete:  # what a broken file would have set is unknown: report only the file
        return merged, problems, sources, False

    read = ", ".join(Path(label).name for _, label in layers)
    for section, name in sorted(REQUIRED):
        value, _source, label, _line = merged.get((section, name), ("", default, str(default), 0))
        if value:
            continue
        if label != str(default):  # a user file set it explicitly to ""
            expected = f"required, must not be empty: {DEVICE_ID_EXPECTED}"
            problems.append(Problem(label, f"{section}.{name}", value, expected))
        else:
            problems.append(Problem(layers[-1][1], f"{section}.{name}", NO_VALUE,
                                    f"required, but no file sets it (read: {read})",
                                    f'add it, e.g. [{section}] {name} = "hall1-w12"'))  # fmt: skip
    problems.extend(_receipt_problems(merged, default))
    problems.extend(_panel_problems(merged, default))
    problems.extend(_tls_problems(merged, default))
    return merged, problems, sources, True


#: The smallest panel side (mm) the layouts fit with every target 15 mm (checked down to 58 mm:
#: 800×480 up to 210 dpi, every screen, no target overlapping another).
PANEL_SHORT_SIDE_MIN_MM = 58.0


def _panel_problems(merged: dict[tuple[str, str], _Setting], default: Path) -> list[Problem]:
    """``[screen] dpi`` against the panel's pixels: a panel too small for 15 mm buttons (or a
    wrong dpi) would lay targets over each other."""
    dpi, _source, label, line = merged.get(("screen", "dpi"), (133, default, str(default), None))
    width = merged.get(("screen", "width"), (800,))[0]
    height = merged.get(("screen", "height"), (480,))[0]
    if not all(isinstance(v, int) and v > 0 for v in (dpi, width, height)):
        return []
    short_mm = min(width, height) / dpi * 25.4  # type: ignore[operator]
    if short_mm >= PANEL_SHORT_SIDE_MIN_MM:
        return []
    most = int(min(width, height) / PANEL_SHORT_SIDE_MIN_MM * 25.4)  # type: ignore[operator]
    expected = (
        f"a panel of {width}×{height} px at {dpi} dpi is {short_mm:.0f} mm on its short side; "
        f"15 mm buttons need at least {PANEL_SHORT_SIDE_MIN_MM:.0f} mm"
    )
    return [Problem(label, "screen.dpi", dpi, expected, f"at most {most} dpi at this size", line)]


TLS_KEYS = ("tls_ca", "tls_cert", "tls_key")


def _tls_problems(merged: dict[tuple[str, str], _Setting], default: Path) -> list[Problem]:
    """``[mqtt] tls_*`` against ``urls``: an ``mqtts://`` URL needs ``tls_ca`` (else the pad
    cannot tell the city's broker from another), ``tls_cert`` and ``tls_key`` go together, and
    a TLS file set with no ``mqtts://`` URL means the technician believes in a TLS the pad
    would not use."""
    base = str(default)

    def setting(name: str) -> _Setting:
        return merged.get(("mqtt", name), ("", default, base, None))

    urls, _source, urls_label, urls_line = setting("urls")
    tls = any(str(u).startswith("mqtts://") for u in urls or ())  # type: ignore[attr-defined]
    problems: list[Problem] = []
    ca, _source, ca_label, ca_line = setting("tls_ca")
    if tls and not ca:
        label, line = (ca_label, ca_line) if ca_label != base else (urls_label, urls_line)
        problems.append(Problem(label, "mqtt.tls_ca", NO_VALUE if ca_label == base else ca,
                                "required when a URL is mqtts://: the city's CA certificate, "
                                "which tells the city's broker from any other",
                                'add tls_ca = "tls/ca.crt" (from the city)', line))  # fmt: skip
    cert, key = setting("tls_cert"), setting("tls_key")
    for have, lack, name, other in ((cert, key, "tls_cert", "tls_key"),
                                    (key, cert, "tls_key", "tls_cert")):  # fmt: skip
        if have[0] and not lack[0]:
            problems.append(Problem(have[2], f"mqtt.{name}", _shown(name, have[0]),
                                    f"set without {other}: a client certificate needs both",
                                    f"set {other} too (`evaluator tls csr` makes the key and "
                                    "the request)", have[3]))  # fmt: skip
    if not tls:
        for name in TLS_KEYS:
            value, _source, label, line = setting(name)
            if value:
                problems.append(Problem(label, f"mqtt.{name}", _shown(name, value),
                                        "set, but no [mqtt] urls entry is mqtts://: the pad "
                                        "would connect without TLS",
                                        'set urls = ["mqtts://<broker>:8883"]', line))  # fmt: skip
                break
    return problems


#: What makes each ``[mqtt] tls_*`` file when it is missing (``{csr}``: the request's name).
TLS_FILE_ORIGIN = {
    "tls_ca": "the city's CA certificate: copy ca.crt from the city (`evaluator tls sign-batch` "
              "puts it into each pad's bundle) to this path",
    "tls_cert": "the city signs {csr} with `evaluator tls sign-batch PROVISION_DIR --ca CA_DIR` "
                "(or `evaluator tls sign {csr} --ca CA_DIR --out {crt}`), then copy the "
                "certificate to this path",
    "tls_key": "make it here with `evaluator tls csr --config …` (with the request for the city); "
               "a provisioned pad's key comes in its bundle's tls/ folder",
}  # fmt: skip


def _tls_file_problems(merged: dict[tuple[str, str], _Setting], default: Path) -> list[Problem]:
    """The ``[mqtt] tls_*`` files: present (else which file and the command that makes it),
    readable PEM, the key owner-only and the certificate's own, the certificate not expired and
    made out to ``[device] id`` (the broker takes its CN as the pad's name, so another name
    sends every rating to a topic the ACL refuses).  Paths are shown (:func:`is_path_name`)."""
    from sync import tlscerts

    found: dict[str, tuple[Any, str, int | None, str]] = {}
    problems: list[Problem] = []
    loaders: dict[str, Callable[[Path], Any]] = {
        "tls_ca": tlscerts.load_certificate,
        "tls_cert": tlscerts.load_certificate,
        "tls_key": tlscerts.load_tls_key,
    }
    for name in TLS_KEYS:
        value, source, label, line = merged.get(("mqtt", name), ("", default, "", None))
        path = _resolve_path(str(value), source)
        if path is None:
            continue
        if not os.path.lexists(path):
            csr = path.with_suffix(".csr").name
            origin = TLS_FILE_ORIGIN[name].format(csr=csr, crt=path.name)
            problems.append(Problem(label, f"mqtt.{name}", value,
                                    f"{name} {path} does not exist: {origin}", "",
                                    line))  # fmt: skip
            continue
        try:
            found[name] = (loaders[name](path), label, line, str(value))
        except tlscerts.TlsCertError as exc:
            problems.append(Problem(label, f"mqtt.{name}", value, str(exc), "", line))
    if "tls_cert" in found:
        cert, label, line, value = found["tls_cert"]
        device = str(merged.get(("device", "id"), ("",))[0])
        why = tlscerts.certificate_problem(cert, device_id=device)
        if why is None and "tls_key" in found:
            why = tlscerts.pair_problem(cert, found["tls_key"][0])
        if why is not None:
            problems.append(Problem(label, "mqtt.tls_cert", value, why, "", line))
    return problems


# --------------------------------------------------------------------------- the service user

#: The user ``evaluator run`` runs as (systemd/evaluator.service ``User=``): ``config check`` run
#: as root checks that this user can read every file the pad needs.
SERVICE_USER = "evaluator"
#: Files the service user must read, per ``(section, key)``: what the file is.
SERVICE_FILES: dict[tuple[str, str], str] = {
    ("device", "key_file"): "the device key",
    ("session", "reasons_file"): "the reason list",
    ("session", "phrases_file"): "the phrase list",
    ("screen", "font"): "the font",
    ("screen", "font_bold"): "the bold font",
    ("printer", "font"): "the receipt font",
    ("mqtt", "tls_ca"): "the city's CA certificate",
    ("mqtt", "tls_cert"): "the pad's certificate",
    ("mqtt", "tls_key"): "the pad's TLS key",
}
_USERS_TOLD: set[str] = set()


@dataclass(frozen=True)
class _Account:
    name: str
    uid: int
    gids: frozenset[int]
    gid: int = -1
    """The primary group (-1: unknown; the kernel is then not asked)."""


def _account(user: str) -> _Account | None:
    """``user``'s uid and groups (primary and supplementary, as systemd's ``User=`` gets them),
    or None (said once per process in the log) when there is no such user here."""
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        if user not in _USERS_TOLD:
            _USERS_TOLD.add(user)
            log.warning("config check: there is no user %r on this machine (the service's User=): "
                        "whether it can read the pad's files is not checked", user)  # fmt: skip
        return None
    gids = frozenset(os.getgrouplist(user, entry.pw_gid))
    return _Account(user, entry.pw_uid, gids, entry.pw_gid)


def _may(st: os.stat_result, account: _Account, bit: int) -> bool:
    """Whether ``account`` has permission ``bit`` (4 read, 1 search) by ``st``'s owner, group
    and mode (the class that applies, as the kernel takes it; root reads anything)."""
    if account.uid == 0:
        return True
    if st.st_uid == account.uid:
        return bool(st.st_mode >> 6 & bit)
    if st.st_gid in account.gids:
        return bool(st.st_mode >> 3 & bit)
    return bool(st.st_mode & bit)


def unreadable_by(path: Path, account: _Account) -> str | None:
    """Why ``account`` cannot read ``path`` (a folder on the way it cannot enter, or the file
    itself), or None (also when ``path`` does not exist: other checks say that).

    The kernel decides when this process may switch to the user (root): ``test -r`` run as
    it, so an ACL (``setfacl``) that grants or denies, and a symlink leading into a folder the
    user cannot enter, count as they will for the service.  The owner, group and mode bits of
    every folder on the way (the symlink's and its target's) say why, or which ACL to look at."""
    import stat

    try:
        st = path.stat()
    except OSError:
        return None
    target = path.resolve()
    why = None
    folders = list(reversed(path.parents))
    folders += [f for f in reversed(target.parents) if f not in folders]
    for folder in folders:
        try:
            fst = folder.stat()
        except OSError:
            break
        if not _may(fst, account, 1):
            via = f" (on the way to {target}, where {path} leads)" if target != path else ""
            why = (f"user {account.name!r} cannot enter the folder {folder}{via} (mode "
                   f"{stat.filemode(fst.st_mode)}, owner {_owner(fst)}); e.g. chmod o+x {folder}"
                   " or give it to that user's group")  # fmt: skip
            break
    if why is None and not _may(st, account, 4):
        why = (f"user {account.name!r} cannot read {path} (mode {stat.filemode(st.st_mode)}, "
               f"owner {_owner(st)}); e.g. chown {account.name} {target}")
    kernel = _kernel_reads(path, account)
    if kernel is None:  # the kernel cannot be asked (not root): the mode bits say
        return why
    if kernel:
        return None  # e.g. an ACL grants what the mode bits do not
    return why or (f"user {account.name!r} cannot read {path}, though its mode and owner would "
                   f"let it: an ACL or a security module refuses it (getfacl {target})")


def _kernel_reads(path: Path, account: _Account) -> bool | None:
    """Whether the kernel lets ``account`` read ``path`` (``test -r`` run as that user, its
    groups too), or None when it cannot be asked (not root, no ``test``)."""
    import shutil
    import subprocess

    tester = shutil.which("test", path="/usr/bin:/bin")
    if os.geteuid() != 0 or account.gid < 0 or tester is None:
        return None
    try:
        done = subprocess.run(
            [tester, "-r", str(path)], user=account.uid, group=account.gid,
            extra_groups=sorted(account.gids), env={}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return {0: True, 1: False}.get(done.returncode)


def _owner(st: os.stat_result) -> str:
    import grp
    import pwd

    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def _service_user_problems(
    merged: dict[tuple[str, str], _Setting],
    default: Path,
    files: Sequence[Path],
    user: str,
) -> list[Problem]:
    """What the service user ``user`` could not read of what the pad needs: the config files
    themselves, and every file a key names (:data:`SERVICE_FILES`; the device key where the
    pad looks for it when no key names it).  Checked by owner, group and mode bits against the
    user's uid and groups, and every folder on the way for its search (x) bit."""
    account = _account(user)
    if account is None:
        return []
    problems: list[Problem] = []
    for path in files:
        why = unreadable_by(Path(path).absolute(), account)
        if why is not None:
            problems.append(Problem(str(path), "", NO_VALUE,
                                    f"the configuration file: {why}"))  # fmt: skip
    for (section, name), what in SERVICE_FILES.items():
        value, source, label, line = merged.get((section, name), ("", default, str(default), None))
        path = _resolve_path(str(value), source)
        if path is None and (section, name) == ("device", "key_file"):
            storage, storage_source, *_ = merged.get(("storage", "path"), ("", default))
            db = _resolve_path(str(storage), storage_source)
            path = db.parent / "device.key" if db is not None else None
        if path is None:
            continue
        why = unreadable_by(path, account)
        if why is not None:
            problems.append(Problem(label, f"{section}.{name}", value, f"{what}: {why}", "",
                                    line))  # fmt: skip
    return problems


def _receipt_problems(merged: dict[tuple[str, str], _Setting], default: Path) -> list[Problem]:
    """What printing receipts needs beyond each value: ``url_template``, ``hall`` and the
    window's label when ``[receipt] print`` is not never, and a ``[printer]`` the printer
    adapter accepts (its own checks, each problem named by key, file and line)."""
    base = str(default)

    def setting(section: str, name: str) -> _Setting:
        return merged.get((section, name), ("", default, base, None))

    problems: list[Problem] = []
    policy, _source, policy_label, policy_line = setting("receipt", "print")
    if policy != "never":
        needs = (
            ("receipt", "url_template", 'the city\'s rating page, e.g. "https://hcp.example.org/r?{query}"'),
            ("receipt", "hall", "the hall's name, printed at the top of every receipt"),
            ("device", "window", "the window's label, printed on every receipt"),
        )  # fmt: skip
        for section, name, what in needs:
            value, _source, label, line = setting(section, name)
            if value:
                continue
            if label == base:  # no file sets it: say so where printing was turned on
                label, line, shown = policy_label, policy_line, NO_VALUE
            else:
                shown = value
            problems.append(Problem(label, f"{section}.{name}", shown,
                                    f"required when receipt.print = {_show(policy)}: {what}",
                                    "", line))  # fmt: skip
        window, _source, label, line = setting("device", "window")
        if len(str(window)) > WINDOW_MAX:
            problems.append(Problem(label, "device.window", window,
                                    f"at most {WINDOW_MAX} characters when receipts are printed "
                                    f"(it has {len(str(window))})", "", line))  # fmt: skip
    user_printer = any(s == "printer" and v[2] != base for (s, _name), v in merged.items())
    if policy != "never" or user_printer:
        problems.extend(_printer_problems(merged, default))
    return problems


def _printer_problems(merged: dict[tuple[str, str], _Setting], default: Path) -> list[Problem]:
    """``[printer]`` through the printer adapter's own checks (``ConnectionSpec``,
    ``PrinterProfile``): one :class:`Problem` per problem it lists, on the key it names (a key
    the chosen ``kind`` needs but no file sets: where ``kind`` was set)."""
    from printer.connection import ConnectionSpec
    from printer.errors import PrinterConfigError
    from printer.profile import PrinterProfile

    def value(name: str) -> object:
        return merged[("printer", name)][0]

    found: list[str] = []
    connection = {name: value(name) for name in PRINTER_CONNECTION_KEYS}
    profile = {name: value(name) for name in PRINTER_PROFILE_KEYS}
    for make, table in ((ConnectionSpec.from_config, connection),
                        (PrinterProfile.from_config, profile)):  # fmt: skip
        try:
            make(table)
        except PrinterConfigError as exc:
            found += exc.problems
    problems = []
    _kind, _source, kind_label, kind_line = merged[("printer", "kind")]
    for text in found:
        name = text.split(" ", 1)[0]
        if ("printer", name) not in merged:
            name = "kind"
        shown, _source, label, line = merged[("printer", name)]
        if label == str(default):
            label, line = kind_label, kind_line
        problems.append(Problem(label, f"printer.{name}", _shown(name, shown), text, "", line))
    return problems


#: First bytes of the font files SDL_ttf (FreeType) loads: TrueType, OpenType/CFF, collections,
#: Apple TrueType, WOFF and WOFF2.
FONT_MAGIC: tuple[bytes, ...] = (b"\x00\x01\x00\x00", b"OTTO", b"ttcf", b"true", b"wOFF", b"wOF2")


def _font_problem(path: Path) -> str | None:
    """Why ``path`` is no font file ``run`` can load, or None.  (Whether it has hanzi needs
    pygame: ``run`` checks that when it opens the screen.)"""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except IsADirectoryError:
        return f"is a directory, not a font file: {path}"
    except FileNotFoundError:
        return f"file not found: {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if head not in FONT_MAGIC:
        return f"not a TrueType/OpenType font file: {path}"
    return None


def _run_needs(merged: dict[tuple[str, str], _Setting], default: Path) -> list[Problem]:
    """What ``evaluator run`` needs beyond the values: the reason and phrase lists, the font."""
    problems: list[Problem] = []

    def where(section: str, name: str) -> tuple[str, Path | None, str, int | None]:
        value, source, label, line = merged.get((section, name), ("", default, str(default), None))
        return str(value), _resolve_path(str(value), source), label, line

    data_files: tuple[tuple[str, str, Callable[[Path | None], object]], ...] = (
        ("reasons_file", "reason list", load_reasons),  # None = the shipped list
        ("phrases_file", "phrase list", load_phrases),
    )
    language = str(merged.get(("screen", "language"), ("zh",))[0] or "zh")
    for key, what, load in data_files:
        value, path, label, line = where("session", key)
        if path is None and key == "phrases_file":
            path = default_phrases_path(language)  # the shipped list of the display language
        try:
            load(path)
        except DataFileError as exc:
            first, *rest = str(exc).splitlines()
            more = f" (and {len(rest)} more)" if rest else ""
            problems.append(Problem(label, f"session.{key}", value,
                                    f"cannot use this {what}: {first}{more}",
                                    "" if value else "the shipped list is missing: reinstall",
                                    line))  # fmt: skip

    value, path, label, line = where("screen", "font_bold")
    if path is not None and (why := _font_problem(path)) is not None:
        problems.append(Problem(label, "screen.font_bold", value, why, "", line))
    value, path, label, line = where("screen", "font")
    if path is not None:
        why = _font_problem(path)
        if why is not None:
            problems.append(Problem(label, "screen.font", value, why, "", line))
    else:
        found = next((p for p in FONT_SEARCH_PATHS if p.is_file()), None)
        if found is None:
            searched = ", ".join(map(str, FONT_SEARCH_PATHS))
            hint = "install fonts-wqy-microhei or set [screen] font"
            expected = f"no CJK font found (searched {searched})"
            problems.append(Problem(label, "screen.font", value, expected, hint, line))
        elif (why := _font_problem(found)) is not None:
            problems.append(Problem(label, "screen.font", value, f"the font found {why}", "",
                                    line))  # fmt: skip
    problems.extend(_voice_needs(merged, default))
    problems.extend(_tls_file_problems(merged, default))
    return problems


def _voice_needs(merged: dict[tuple[str, str], _Setting], default: Path) -> list[Problem]:
    """``[voice] dir``, when set or when the voice is on: a folder with the language's folder.
    (A missing WAV is no problem: it silences its event, and ``run`` logs it.)"""
    enabled = merged.get(("voice", "enabled"), (False,))[0]
    value, source, label, line = merged.get(("voice", "dir"), ("", default, str(default), None))
    if not value and not enabled:
        return []
    folder = _resolve_path(str(value), source) or default_voice_dir()
    language = str(merged.get(("screen", "language"), ("zh",))[0] or "zh")
    hint = "" if value else "the shipped prompts are missing: reinstall"
    if not folder.is_dir():
        return [Problem(label, "voice.dir", value, f"not a folder: {folder}", hint, line)]
    if enabled and not (folder / language).is_dir():
        expected = f"no {language}/ folder in {folder} (the prompts for [screen] language)"
        return [Problem(label, "voice.dir", value, expected, hint, line)]
    return []


def service_user_to_check() -> str | None:
    """Whose access ``evaluator config check`` also checks: :data:`SERVICE_USER` when run as
    root (a technician's ``sudo evaluator config check``), else nobody: a user can only speak
    for itself."""
    return SERVICE_USER if os.geteuid() == 0 else None


def check_config(
    paths: Sequence[Path | str], *, service_user: str | None = None
) -> list[Problem]:
    """Every problem in ``default.toml`` + ``paths`` (in layering order); empty when all is well.

    Unreadable files, TOML syntax errors, unknown sections/keys (with the closest name suggested),
    wrong types, out-of-range values, and required keys no file sets are all collected; nothing
    stops at the first error.  When every file parses, what ``evaluator run`` needs is checked
    too: the reason list file loads, and the font file exists and is a font (or the search for
    one succeeds).  A file that cannot be read or parsed reports only that.

    ``service_user``: also report each of those files (and the config files) that this user
    could not read (:func:`_service_user_problems`); None (the default: a reload, provision)
    checks nobody's; the ``config check`` command passes :func:`service_user_to_check`.
    """
    merged, problems, _sources, complete = _layer(paths)
    if complete:
        problems.extend(_run_needs(merged, default_config_path()))
        if service_user:
            problems.extend(_service_user_problems(merged, default_config_path(),
                                                   [Path(p) for p in paths],
                                                   str(service_user)))  # fmt: skip
    return problems


def show_config(paths: Sequence[Path | str]) -> tuple[str, list[Problem]]:
    """The layered configuration of ``paths`` as TOML, each key with the file and line that set
    it (``default`` for the packaged default), and every problem (as :func:`check_config`).

    What a pad runs with is then readable in one place: which drop-in won, which path a
    relative one became (path keys are shown resolved).  A secret's value is ``"***"``."""
    merged, problems, sources, complete = _layer(paths)
    default = default_config_path()
    if complete:
        problems.extend(_run_needs(merged, default))
    schema = _schema() if merged else {}
    order = {key: i for i, key in enumerate((s, n) for s, keys in schema.items() for n in keys)}
    lines = ["# evaluator config show: the files read, later ones win key by key:"]
    lines += [f"#   {source}" for source in sources]
    section = ""
    for (s, name), (value, source, label, line) in sorted(
        merged.items(), key=lambda item: order.get(item[0], len(order))
    ):
        if s != section:
            section = s
            lines += ["", f"[{s}]"]
        if (s, name) in PATH_KEYS and value:
            value = str(_resolve_path(str(value), source))
        elif schema[s][name].kind == "duration" and isinstance(value, float):
            value = _duration_text(value)
        shown = _shown(name, value) if value != "" else value
        text = '"***"' if shown is MASKED else _show(shown)
        where = "default" if source == default else f"{label}:{line}" if line else label
        lines.append(f"{name} = {text}  # {where}")
    return "\n".join(lines) + "\n", problems


def _duration_text(seconds: float) -> str:
    """A duration as a technician writes it: 604800.0 → ``"168h"``, 0.3 → ``"300ms"``."""
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    if seconds and round(seconds * 1000, 6).is_integer():
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def load_config(paths: Sequence[Path | str]) -> Config:
    """The checked configuration from ``default.toml`` overlaid by ``paths`` in order.

    Raises :class:`~evaluator.rules.errors.ConfigError` (a ``ValueError``) whose message has one
    line per problem and whose ``problems`` attribute is the list of :class:`Problem`.
    """
    merged, problems, sources, _complete = _layer(paths)
    if problems:
        error = ConfigError("\n".join(map(str, problems)))
        error.problems = problems  # type: ignore[attr-defined]
        raise error

    def get(section: str, name: str) -> object:
        value, source, _label, _line = merged[(section, name)]
        if (section, name) in PATH_KEYS:
            return _resolve_path(str(value), source)
        return value

    def table(section: str) -> dict[str, object]:
        return {name: get(s, name) for s, name in merged if s == section}

    device_table = table("device")
    storage_path = Path(str(get("storage", "path")))
    device_table["key_file"] = device_table["key_file"] or storage_path.parent / "device.key"
    device_table["schema_version"] = SCHEMA_VERSION  # every file was migrated to it
    device = DeviceConfig(**device_table)  # type: ignore[arg-type]
    session = table("session")
    session["reasons_file"] = session["reasons_file"] or default_reasons_path()
    language = str(get("screen", "language"))
    session["phrases_file"] = session["phrases_file"] or default_phrases_path(language)
    mqtt = table("mqtt")
    mqtt["client_id"] = mqtt["client_id"] or f"evaluator-{device.id}"
    mqtt["urls"] = tuple(mqtt["urls"])  # type: ignore[arg-type]
    voice = table("voice")
    voice["dir"] = voice["dir"] or default_voice_dir()
    printer = table("printer")
    printer["spool_dir"] = printer["spool_dir"] or storage_path.parent / "receipts"
    return Config(
        device=device,
        counter=CounterConfig(**table("counter")),  # type: ignore[arg-type]
        mqtt=MqttConfig(**mqtt),  # type: ignore[arg-type]
        storage=StorageConfig(**table("storage")),  # type: ignore[arg-type]
        session=SessionConfig(**session),  # type: ignore[arg-type]
        buttons=ButtonsConfig(**table("buttons")),  # type: ignore[arg-type]
        screen=ScreenConfig(**table("screen")),  # type: ignore[arg-type]
        sources=sources,
        idle=IdleConfig(**table("idle")),  # type: ignore[arg-type]
        voice=VoiceConfig(**voice),  # type: ignore[arg-type]
        receipt=ReceiptConfig(**table("receipt")),  # type: ignore[arg-type]
        printer=PrinterConfig(**printer),  # type: ignore[arg-type]
        tech=TechConfig(**table("tech")),  # type: ignore[arg-type]
    )
