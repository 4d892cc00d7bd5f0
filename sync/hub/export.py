"""CSV export of the stored ratings with the national field names (docs/hub.md has the mapping).

One row per case of a rating (a batch rating of three cases is three rows with the same ``id``:
the national interfaces rate per 办件, ``projectNo``).  The level is mapped from its name, never
from a number (``satisfaction`` 5 非常满意 … 1 非常不满意, the provincial direction).  The file is
UTF-8 with a byte-order mark, which spreadsheet programs need to read Chinese text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from evaluator.rules.cells import safe_cell
from sync.hub.db import HubDB
from sync.hub.figures import parse_bound

#: (CSV column, what it holds) — national names first, then the pad's own fields.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("projectNo", "办件编号 / 业务流水号: the case's serial"),
    ("taskCode", "事项编码: the case's matter_code"),
    ("taskName", "事项名称: the case's matter_name"),
    ("proManager", "clerk name (clerk.name; empty at a self-service terminal)"),
    ("proManagerNo", "clerk 工号 (clerk.id)"),
    ("satisfaction", "provincial code 5 非常满意 … 1 非常不满意"),
    ("evalDetail", "the national reason codes, comma-separated (其他 has none)"),
    ("writingEvaluation", "the 其他 free text (comment)"),
    ("assessNumber", "1 first rating, 2 follow-up (assess_number)"),
    ("assessTime", "when it was rated (rated_at, local time with offset)"),
    ("areaCode", "行政区划代码 (area_code)"),
    ("pf", "评价渠道: 4 the pad at a window, 5 a self-service terminal (channel)"),
    ("id", "the rating id (deduplication key)"),
    ("device_id", "the pad"),
    ("seq", "the pad's sequence number (within its epoch)"),
    ("epoch", "the epoch of the pad's store (a new one after a store had to start again)"),
    ("level", "the named level (authoritative)"),
    ("score", "points, art. 10: 10 8 6 3 0"),
    ("gbt_code", "GB/T 39046 annex A.8: 1 非常满意 … 5 非常不满意"),
    ("stage", "accept or deliver"),
    ("terminal", "终端机编号 of a self-service terminal"),
    ("rated_clock_synced", "1 when the pad's clock was synchronised at assessTime"),
    ("hash", "the record's SHA-256 (the chain)"),
)

FIELDS = tuple(name for name, _ in COLUMNS)


def rows(db: HubDB, *, since: str | None = None, until: str | None = None) -> Iterator[dict]:
    """One CSV row (a dict by :data:`FIELDS`) per case of each stored rating in the period."""
    lo, hi = parse_bound(since), parse_bound(until)
    for r in db.reported("ratings", lo, hi):  # the period's rows only, through the index
        yield from _rows_of(r)


def _rows_of(r: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    clerk = r.get("clerk") or {}
    codes = [str(x.get("code")) for x in r.get("reasons") or [] if x.get("code") != "other"]
    common = {
        "proManager": clerk.get("name") or "",
        "proManagerNo": clerk.get("id") or "",
        "satisfaction": r.get("satisfaction"),
        "evalDetail": ",".join(codes),
        "writingEvaluation": r.get("comment") or "",
        "assessNumber": r.get("assess_number"),
        "assessTime": r.get("rated_at"),
        "areaCode": r.get("area_code"),
        "pf": r.get("channel"),
        "id": r.get("id"),
        "device_id": r.get("device_id"),
        "seq": r.get("seq"),
        "epoch": r.get("epoch", ""),
        "level": r.get("level"),
        "score": r.get("score"),
        "gbt_code": r.get("gbt_code"),
        "stage": r.get("stage"),
        "terminal": r.get("terminal") or "",
        "rated_clock_synced": int(bool(r.get("rated_clock_synced"))),
        "hash": r.get("hash"),
    }
    for case in r.get("cases") or []:
        yield {
            "projectNo": case.get("serial"),
            "taskCode": case.get("matter_code"),
            "taskName": case.get("matter_name"),
            **common,
        }


def write_csv(
    db: HubDB, out: Path | str, *, since: str | None = None, until: str | None = None
) -> int:
    """Write the export to ``out`` (UTF-8 with BOM); returns the number of rows."""
    count = 0
    with open(out, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows(db, since=since, until=until):
            writer.writerow({k: safe_cell(v) for k, v in row.items()})
            count += 1
    return count

