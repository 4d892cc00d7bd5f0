"""``evaluator provision FLEET.csv --template site.toml --out DIR``: a hall's pads from one sheet.

A technician with a box of Pis and a spreadsheet of windows makes, for every row, what a pad
needs before its first start:

- ``DIR/<device id>/evaluator.toml``: the template merged with the row, only the keys that differ
  from the packaged defaults (plus ``[device] schema_version``), under a header naming the sheet,
  the row and the template.  Copied to ``/etc/evaluator/evaluator.toml`` on the pad.
- ``DIR/<device id>/device.key`` (Ed25519, 0600, :mod:`sync.keys`) and ``device.pub`` (its public
  key), and ``DIR/devices.csv`` (device id → public key) for the city's ``evaluator hub
  register``.  A key is made once and never replaced: the city knows the pad by it.
- for a row whose brokers include ``mqtts://``: ``DIR/<device id>/tls/device.key`` (ECDSA P-256,
  0600) and ``tls/device.csr`` (CN = the device id, :mod:`sync.tlscerts`) to send to the city,
  which signs it.  Made once, like the device key.  The row's file then names every TLS file
  (:data:`TLS_BUNDLE`: ``tls_key``, ``tls_cert`` and, unless the template names it, ``tls_ca``),
  relative to the file, so the folder copied to ``/etc/evaluator/`` is the pad's whole TLS set
  once the city's ``evaluator tls sign-batch DIR`` has put the certificate and ``ca.crt`` in it
  (before that, ``config check`` on the pad fails naming the missing file and that command).

Every row is checked with the check of ``evaluator config check`` (:func:`check_config` on the
file it would write), after its own cells are checked (a pin that is no number, a broker URL
that is no URL, an id used twice).  A row with problems is refused with its row number as the
spreadsheet shows it (the header is row 1) and every problem, and nothing of it is written; the
other rows are.  Re-running is safe: a file whose content would not change is not written (its
mtime stays), keys are never made again, and the summary says per device: created, changed,
unchanged or refused.

Columns (:data:`COLUMNS`; any other column named ``section.key`` sets that key, e.g.
``screen.dpi``): see docs/technician.md §1.6 and ``config/fleet.example.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import json
import math
import os
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from evaluator.config import (
    BUTTON_KEYS,
    NO_VALUE,
    SCHEMA_VERSION,
    Problem,
    check_config,
    default_config_path,
)
from evaluator.rules.deviceid import device_id_problem
from evaluator.rules.errors import ConfigError

#: The sheet's columns: name → what it sets and how to write it (docs/technician.md §1.6).
COLUMNS: dict[str, str] = {
    "device_id": "[device] id; required; the folder's name too",
    "mode": 'clerk (a clerk\'s window, default) or self-service (a 自助终端: its software sends '
            '"terminal" in each evaluation.start; the configuration is the same)',
    "hall": "[receipt] hall: the hall's name printed on receipts",
    "window": "[device] window: the label on the screen and the receipts",
    "area_code": "[device] area_code, 6 digits; required unless the template sets it",
    "brokers": "[mqtt] urls: broker URLs separated by ';', mqtt://host:port or mqtts://host:port",
    "counter_port": "[counter] port: the serial port to the business system",
    "printer": "[printer] kind and where: usb:VID:PID, serial:/dev/ttyUSB1[@BAUD], "
               "network:HOST[:PORT], file:/dev/usb/lp0, dummy",
    "paper": "[printer] paper: 58mm or 80mm",
    "receipts": "[receipt] print: never, always, unrated or request",
    "buttons": "[buttons] BCM pins of 非常满意,满意,基本满意,不满意,非常不满意 (5 numbers, ',')",
}  # fmt: skip
#: The ``(section, key)`` each named column may set (``device.id`` from a ``section.key``
#: column would name another pad than the folder, the device key and the TLS request).
NAMED_KEYS: dict[str, frozenset[tuple[str, str]]] = {
    "device_id": frozenset({("device", "id")}),
    "hall": frozenset({("receipt", "hall")}),
    "window": frozenset({("device", "window")}),
    "area_code": frozenset({("device", "area_code")}),
    "brokers": frozenset({("mqtt", "urls")}),
    "counter_port": frozenset({("counter", "port")}),
    "printer": frozenset(("printer", k) for k in
                         ("kind", "vendor_id", "product_id", "path", "baudrate", "host", "port")),
    "paper": frozenset({("printer", "paper")}),
    "receipts": frozenset({("receipt", "print")}),
    "buttons": frozenset(("buttons", k) for k in BUTTON_KEYS),
}  # fmt: skip
MODES = ("clerk", "self-service")
#: What an ``mqtts://`` row's file sets: where the bundle puts each TLS file, relative to the
#: file (``/etc/evaluator/tls/…`` on the pad).  ``tls_ca`` only when the template does not.
TLS_BUNDLE: dict[str, str] = {
    "tls_ca": "tls/ca.crt",
    "tls_cert": "tls/device.crt",
    "tls_key": "tls/device.key",
}
_TLS_CHECKED = frozenset(f"mqtt.{name}" for name in TLS_BUNDLE)
#: Columns a row must fill unless the template sets their key.
REQUIRED_COLUMNS: dict[str, tuple[str, str]] = {
    "device_id": ("device", "id"),
    "area_code": ("device", "area_code"),
}


@dataclass
class Row:
    """One sheet row: its number (the header is row 1), cells, and what it becomes."""

    number: int
    cells: dict[str, str]
    device_id: str = ""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    source: dict[str, str] = field(default_factory=dict)
    """``section.key`` → the column that set it (to name the column in a problem)."""


@dataclass
class Outcome:
    """What provisioning did for one row."""

    row: int
    device_id: str
    status: str  # "created" | "changed" | "unchanged" | "refused"
    problems: list[str] = field(default_factory=list)
    public_key: str = ""
    files: list[str] = field(default_factory=list)
    """Files written this run (relative to the output folder)."""


class ProvisionError(ConfigError):
    """The sheet or the template as a whole cannot be used (nothing is written)."""


# --------------------------------------------------------------------------- reading


def read_sheet(path: Path) -> tuple[list[str], list[Row]]:
    """The sheet's columns and its non-empty rows.  UTF-8 (with or without a BOM, as Excel
    saves "CSV UTF-8"), or GB18030 (what Excel saves as plain "CSV" on a Chinese Windows)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise ProvisionError(f"{path}: neither UTF-8 nor GB18030 text") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not header or not any(header):
        raise ProvisionError(f"{path}: empty; row 1 must name the columns ({', '.join(COLUMNS)})")
    problems = []
    for name in header:
        if name in COLUMNS or _key_column(name):
            continue
        close = difflib.get_close_matches(name.lower(), list(COLUMNS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{path}: row 1: unknown column {name!r}{hint}")
    if "device_id" not in header:
        problems.append(f"{path}: row 1: no device_id column")
    for name in header:  # a key two columns set: one would silently win over the other
        key = _key_column(name)
        owner = next((c for c, keys in NAMED_KEYS.items() if key and key in keys), None)
        if owner is not None and (owner in header or owner == "device_id"):
            problems.append(f"{path}: row 1: column {name!r} sets what column {owner!r} sets; "
                            f"use {owner!r}")  # fmt: skip
    dupes = sorted({h for h in header if header.count(h) > 1})
    problems += [f"{path}: row 1: column {h!r} appears twice" for h in dupes]
    if problems:
        known = ", ".join(COLUMNS)
        raise ProvisionError("\n".join([*problems, f"the columns: {known}, or section.key"]))
    rows = []
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue  # an empty line between blocks of windows
        cells = {name: (values[i].strip() if i < len(values) else "") for i, name in
                 enumerate(header)}  # fmt: skip
        row = Row(number, cells, device_id=cells.get("device_id", ""))
        if len(values) > len(header) and any(v.strip() for v in values[len(header) :]):
            row.problems.append(Problem(f"row {number}", "", NO_VALUE,
                                        f"{len(values)} cells, but row 1 names {len(header)} "
                                        "columns (a ',' inside a cell needs quotes)"))  # fmt: skip
        rows.append(row)
    return header, rows


def _key_column(name: str) -> tuple[str, str] | None:
    """``("screen", "dpi")`` for a column named ``screen.dpi`` of the schema."""
    section, _, key = name.partition(".")
    schema = _defaults()
    if key and section in schema and key in schema[section]:
        return section, key
    return None


def _defaults() -> dict[str, dict[str, Any]]:
    with default_config_path().open("rb") as f:
        return tomllib.load(f)


# --------------------------------------------------------------------------- cells → keys


def _cell_problem(row: Row, column: str, expected: str, hint: str = "") -> None:
    row.problems.append(Problem(f"row {row.number}", column, row.cells[column], expected, hint))


def _set(row: Row, column: str, section: str, key: str, value: Any) -> None:
    row.settings.setdefault(section, {})[key] = value
    row.source[f"{section}.{key}"] = column


def _brokers(row: Row, text: str) -> None:
    from sync.mqtt import parse_broker_url

    urls = [u.strip() for u in text.split(";") if u.strip()]
    bad = []
    for url in urls:
        try:
            parse_broker_url(url)
        except ValueError as exc:
            bad.append(str(exc))
    if bad or not urls:
        example = "e.g. mqtts://mqtt1.city.example:8883;mqtts://mqtt2.city.example:8883"
        _cell_problem(row, "brokers", "; ".join(bad) or "expected URLs separated by ';'", example)
        return
    _set(row, "brokers", "mqtt", "urls", urls)


def _printer(row: Row, text: str) -> None:
    kind, _, where = text.partition(":")
    kind = kind.strip().lower()
    example = ("usb:0416:5011, serial:/dev/ttyUSB1@9600, network:192.168.1.50:9100, "
               "file:/dev/usb/lp0 or dummy")  # fmt: skip
    table: dict[str, Any] = {"kind": kind}
    try:
        if kind == "usb":
            vendor, _, product = where.partition(":")
            table |= {"vendor_id": int(vendor, 16), "product_id": int(product, 16)}
        elif kind == "serial":
            path, _, baud = where.partition("@")
            table |= {"path": path} | ({"baudrate": int(baud)} if baud else {})
        elif kind == "network":
            host, _, port = where.rpartition(":") if where.count(":") == 1 else (where, "", "")
            table |= {"host": host} | ({"port": int(port)} if port else {})
        elif kind == "file":
            table["path"] = where
        elif kind != "dummy" or where:
            raise ValueError
    except ValueError:
        _cell_problem(row, "printer", f"expected one of {example}")
        return
    for key, value in table.items():
        _set(row, "printer", "printer", key, value)


def _buttons(row: Row, text: str) -> None:
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    try:
        pins = [int(p) for p in parts]
    except ValueError:
        pins = []
    if len(pins) != len(BUTTON_KEYS):
        _cell_problem(row, "buttons", f"expected {len(BUTTON_KEYS)} BCM pin numbers separated by "
                      "',' (非常满意,满意,基本满意,不满意,非常不满意; -1 = not fitted)",
                      "e.g. 17,27,22,23,24")  # fmt: skip
        return
    fitted = [p for p in pins if p >= 0]
    twice = sorted({p for p in fitted if fitted.count(p) > 1})
    if twice:
        _cell_problem(row, "buttons", f"pin {', '.join(map(str, twice))} is given to two buttons")
    for key, pin in zip(BUTTON_KEYS, pins, strict=True):
        _set(row, "buttons", "buttons", key, pin)


def _value(text: str) -> Any:
    """A ``section.key`` cell: a TOML value when it parses as one (``170``, ``true``,
    ``"x"``), else the text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _row_settings(row: Row, template: dict[str, dict[str, Any]]) -> None:
    """The row's cells as config keys (empty cells set nothing); cell problems on the row."""
    simple: dict[str, tuple[str, str]] = {
        "device_id": ("device", "id"), "hall": ("receipt", "hall"),
        "window": ("device", "window"), "area_code": ("device", "area_code"),
        "counter_port": ("counter", "port"), "paper": ("printer", "paper"),
        "receipts": ("receipt", "print"),
    }  # fmt: skip
    handlers: dict[str, Callable[[Row, str], None]] = {
        "brokers": _brokers, "printer": _printer, "buttons": _buttons,
    }  # fmt: skip
    for column, text in row.cells.items():
        if column == "mode":
            if text and text not in MODES:
                close = difflib.get_close_matches(text.lower(), MODES, n=1)
                _cell_problem(row, column, f"expected {' or '.join(MODES)}",
                              f"did you mean {close[0]}?" if close else "")  # fmt: skip
        elif column in REQUIRED_COLUMNS and not text:
            section, key = REQUIRED_COLUMNS[column]
            if column == "device_id" or key not in template.get(section, {}):
                _cell_problem(row, column, "required: the cell is empty"
                              + (" (it goes into every rating record)"
                                 if column == "area_code" else ""))  # fmt: skip
        elif not text:
            continue
        elif column in simple:
            _set(row, column, *simple[column], text)
        elif column in handlers:
            handlers[column](row, text)
        elif (key := _key_column(column)) is not None:
            _set(row, column, *key, _value(text))


# --------------------------------------------------------------------------- the file


def merged_file(template: dict[str, Any], row: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Template overlaid by the row, keeping only what differs from the packaged defaults
    (``[device] schema_version`` always: the file says what it is written for)."""
    defaults = _defaults()
    merged: dict[str, dict[str, Any]] = {}
    for layer in (template, row):
        for section, table in layer.items():
            if isinstance(table, dict):
                merged.setdefault(section, {}).update(table)
            else:  # a key outside any section: kept, so the check names it
                merged.setdefault("", {})[section] = table
    out: dict[str, dict[str, Any]] = {}
    for section, table in merged.items():
        base = defaults.get(section, {})
        kept = {k: v for k, v in table.items() if k not in base or base[k] != v}
        if kept:
            out[section] = kept
    out.setdefault("device", {})["schema_version"] = SCHEMA_VERSION
    order = list(defaults)
    sections = sorted(out, key=lambda s: order.index(s) if s in order else len(order))
    result = {}
    for section in sections:
        keys = list(defaults.get(section, {}))
        result[section] = dict(sorted(out[section].items(), key=lambda kv: (
            keys.index(kv[0]) if kv[0] in keys else len(keys))))  # fmt: skip
    return result


def toml_value(value: Any) -> str:
    """One TOML value (the types a config holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def render(config: dict[str, Any], header: Sequence[str]) -> str:
    """The file's text: the header as comments, then each section."""
    # every line of a header line a comment: a sheet's name with a line break is no TOML
    lines = [f"# {part}" if part else "#" for line in header
             for part in (line.splitlines() or [""])]  # fmt: skip
    for key, value in config.get("", {}).items():
        lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    for section, table in config.items():
        if section == "":
            continue
        lines += ["", f"[{section}]"]
        lines += [f"{_bare(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _bare(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) and key.isascii() else \
        json.dumps(key)  # fmt: skip


# --------------------------------------------------------------------------- writing


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> str:
    """``created``, ``changed`` or ``unchanged`` (then the file is not touched: mtime kept);
    written whole under a temporary name, then renamed, with ``mode``."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return "unchanged"
        status = "changed"
    except FileNotFoundError:
        status = "created"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written file left for the next run to find
        tmp.unlink(missing_ok=True)
        raise
    return status


def _device_key(folder: Path) -> tuple[str, str]:
    """``(public key text, status)`` of ``folder/device.key``, made when there is none."""
    from sync.keys import DeviceKey

    key, created = DeviceKey.load_or_create(folder / "device.key")
    return key.public.text, "created" if created else "unchanged"


def _tls_request(folder: Path, device_id: str) -> list[tuple[str, str]]:
    """``tls/device.key`` and ``tls/device.csr`` (CN = ``device_id``), each made once."""
    from sync.tlscerts import load_or_create_tls_key, make_csr, write_public

    key, created = load_or_create_tls_key(folder / "tls" / "device.key")
    csr = folder / "tls" / "device.csr"
    done = [("tls/device.key", "created" if created else "unchanged")]
    if created or not csr.exists():  # a request is signed anew each time: make it once
        write_public(csr, make_csr(key, device_id))
        done.append(("tls/device.csr", "created"))
    else:
        done.append(("tls/device.csr", "unchanged"))
    return done


def _check(
    text: str, folder: Path, row: Row, template: dict[str, Any], template_name: str
) -> list[Problem]:
    """:func:`check_config` on the file as it would be written, read from the template's
    folder (its relative paths resolve as they do for the template); each problem named by
    row (and column) instead of the temporary file."""
    fd, name = tempfile.mkstemp(prefix=".provision-", suffix=".toml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # the pad's service user is the pad's, not this machine's
        problems = check_config([name])
    finally:
        os.unlink(name)
    # The TLS files reach the pad in its bundle (key and request made here, the certificate and
    # ca.crt by the city's sign-batch): that they are not here yet is no problem of the row.
    problems = [p for p in problems
                if not (p.key in _TLS_CHECKED and " does not exist: " in p.expected)]  # fmt: skip
    if any(p.key == "device.id" and p.value is not NO_VALUE for p in problems):
        problems = [p for p in problems if not (p.key == "device.id" and p.value is NO_VALUE)]
    named = []
    for p in problems:
        label = f"row {row.number}"
        p = dataclasses.replace(p, expected=p.expected.replace(Path(name).name, label))
        column = row.source.get(p.key)
        if column:
            label += f", column {column}"
        elif p.key.partition(".")[2] in template.get(p.key.partition(".")[0], {}):
            label += f", from the template {template_name}"
        elif p.file != name:
            label += f" ({p.file})"
        named.append(dataclasses.replace(p, file=label, line=None))
    return named


def _provision_row(
    row: Row,
    template_data: dict[str, Any],
    template: Path | None,
    sheet: Path,
    out: Path,
    header: list[str],
) -> Outcome:
    """One checked row's files under ``out/<device id>``, or its refusal."""
    urls = row.settings.get("mqtt", {}).get("urls") or template_data.get("mqtt", {}).get("urls", [])
    tls = any(str(u).lower().startswith("mqtts://") for u in urls)
    if tls:  # the file names every TLS file the bundle brings (issue 14: it named none)
        for name, path in TLS_BUNDLE.items():
            if not (name == "tls_ca" and template_data.get("mqtt", {}).get(name)):
                _set(row, "brokers", "mqtt", name, path)
    text = render(merged_file(template_data, row.settings), header)
    told = {p.key for p in row.problems}  # a cell's own problem is not told twice
    checked = _check(text, (template or sheet).parent, row, template_data,
                     template.name if template else "")  # fmt: skip
    row.problems += [p for p in checked
                     if not (p.key == "device.id" and "device_id" in told)]  # fmt: skip
    if row.problems:
        return Outcome(row.number, row.device_id, "refused", [str(p) for p in row.problems])
    folder = out / row.device_id
    statuses = [("evaluator.toml", write_if_changed(folder / "evaluator.toml", text, 0o600))]
    public, key_status = _device_key(folder)
    statuses.append(("device.key", key_status))
    statuses.append(("device.pub", write_if_changed(folder / "device.pub", public + "\n")))
    if tls:
        statuses += _tls_request(folder, row.device_id)
    done = [name for name, status in statuses if status != "unchanged"]
    status = ("created" if statuses[0][1] == "created" else "changed" if done else
              "unchanged")  # fmt: skip
    return Outcome(row.number, row.device_id, status, [], public, done)


def provision(sheet: Path, template: Path | None, out: Path) -> list[Outcome]:
    """Make every row's files under ``out`` (module docstring); one :class:`Outcome` per row,
    in sheet order.  :class:`ProvisionError` when the sheet or the template is unusable."""
    template_data: dict[str, Any] = {}
    if template is not None:
        # Its values are checked in every row's file (a key may need what the row brings,
        # e.g. tls_ca needs an mqtts:// broker): here only whether it can be read at all.
        try:
            template_data = tomllib.loads(template.read_text(encoding="utf-8-sig"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProvisionError(f"{template}: cannot use the template: {exc}") from exc
    _header, rows = read_sheet(sheet)
    seen: dict[str, list[int]] = {}
    for row in rows:
        if row.device_id:
            seen.setdefault(row.device_id, []).append(row.number)
    outcomes = []
    for row in rows:
        _row_settings(row, template_data)
        others = [n for n in seen.get(row.device_id, []) if n != row.number]
        if others:
            _cell_problem(row, "device_id", "the same device id is on row "
                          + ", ".join(map(str, others)), "every pad needs its own id")  # fmt: skip
        mode = row.cells.get("mode") or "clerk"
        header = [
            f"evaluator.toml of device {row.device_id}, made by `evaluator provision` from",
            f"{sheet.name} row {row.number}"
            + (f" and the template {template.name}" if template else "")
            + ".",
            "Only the keys that differ from the packaged defaults (config/default.toml) are set.",
            "Mode: "
            + (
                'self-service terminal (自助终端): its software sends "terminal" (its '
                "终端机编号) in each evaluation.start"
                if mode == "self-service"
                else "a clerk's window"
            ),
            "On the pad: /etc/evaluator/evaluator.toml; check it there: `evaluator config check`.",
        ]
        # at once, in the words of every later step (config check, signing, registration)
        if row.device_id and (why := device_id_problem(row.device_id)) is not None:
            _cell_problem(row, "device_id", why)
        try:
            outcome = _provision_row(row, template_data, template, sheet, out, header)
        except OSError as exc:  # a full disk, a read-only card: stop, say so, no traceback
            raise ProvisionError(
                f"{exc.filename or out}: cannot write: {exc.strerror or exc}; rows before row "
                f"{row.number} are written, run again once it can be (a re-run is safe)"
            ) from exc
        outcomes.append(outcome)
    registered = [o for o in outcomes if o.status != "refused"]
    if registered:
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["device_id", "public_key"])
        writer.writerows([o.device_id, o.public_key] for o in registered)
        write_if_changed(out / "devices.csv", table.getvalue())
    return outcomes


def report(outcomes: Sequence[Outcome], out: TextIO) -> int:
    """The summary: a line per device, each refused row's problems, the counts; exit code 1
    when a row was refused, else 0."""
    for o in outcomes:
        name = o.device_id or "(no device id)"
        detail = f" ({', '.join(o.files)})" if o.files and o.status == "changed" else ""
        out.write(f"row {o.row}: {name}: {o.status}{detail}\n")
        for problem in o.problems:
            out.write(f"  {problem}\n")
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("created", "changed", "unchanged", "refused")}  # fmt: skip
    out.write(", ".join(f"{n} {s}" for s, n in counts.items()) + "\n")
    return 1 if counts["refused"] else 0
