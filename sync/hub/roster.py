"""The city's roster: which clerks serve in which hall, and at which pads (``evaluator hub
roster --csv FILE``), for :mod:`sync.hub.truth`.

A CSV with a header row naming the columns ``hall``, ``device_id`` and ``clerk_id`` (UTF-8,
a BOM allowed; other columns ignored, e.g. a name).  A row with a ``device_id`` lets the clerk
rate at that pad; a row without one, at every pad the roster puts in that hall (a pad is in the
halls of the rows naming it).  A pad no row names has no roster: its clerks are checked against
its sign-ins only.  The file replaces the whole roster, or, when any row is wrong, nothing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sync.hub.db import HubError, _device_id_problem

COLUMNS = ("hall", "device_id", "clerk_id")
#: A clerk's 工号 is at most this long (the rating schema's clerk.id).
CLERK_MAX = 32


def read_csv(path: Path) -> list[tuple[str, str, str]]:
    """The rows ``(hall, device_id, clerk_id)`` of ``path``; a :class:`HubError` naming every
    wrong row (nothing is taken then)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise HubError(f"{path}: cannot read: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise HubError(f"{path}: row 1 must name the columns {', '.join(COLUMNS)} "
                           f"(missing {', '.join(missing)})")  # fmt: skip
        rows, wrong = [], []
        for n, r in enumerate(reader, start=2):
            hall, device, clerk = ((r.get(c) or "").strip() for c in COLUMNS)
            if not (hall or device or clerk):
                continue
            why = _problem(hall, device, clerk)
            if why:
                wrong.append(f"row {n}: {why}")
            else:
                rows.append((hall, device, clerk))
    except csv.Error as exc:
        raise HubError(f"{path}: after line {reader.line_num}: not a roster ({exc})") from exc
    if wrong:
        raise HubError(f"{path}: nothing taken, {len(wrong)} wrong row(s): " + "; ".join(wrong))
    return sorted(set(rows))


def _problem(hall: str, device: str, clerk: str) -> str | None:
    if not hall:
        return "no hall"
    if not clerk or len(clerk) > CLERK_MAX or not clerk.isprintable():
        return f"clerk_id {clerk!r}: expected 1 to {CLERK_MAX} printable characters (工号)"
    if not hall.isprintable():
        return f"hall {hall!r}: not printable"
    if device:
        return _device_id_problem(device)
    return None
