"""Art. 33 figures, the follow-up lists and the CSV export from stored ratings and events."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sync.hub.db import HubDB, open_db
from sync.hub.export import FIELDS, write_csv
from sync.hub.figures import bad_ratings, figures, follow_ups
from sync.hub.ingest import Ingest
from tests.sync.hub.helpers import (
    end_event,
    make_key,
    payload,
    rating_content,
    seal_all,
    status,
    topic,
)

A, B = "pad-a", "pad-b"


@pytest.fixture
def hall(db_url: str, tmp_path: Path) -> HubDB:
    """Two pads: A rated S1 满意 (clerk 007, matter M1), S2 不满意 (007, M1), S3 非常满意 at
    accept (clerk only); S4 and S5 shown and not rated, S6 cancelled; S5 rated later on B.
    B is online, A's last status says offline, C is registered and never heard from."""
    db = open_db(db_url)
    keys = {d: make_key(tmp_path, d) for d in (A, B, "pad-c")}
    for device, key in keys.items():
        db.register(device, key.public.text)
    ratings_a = seal_all(keys[A], A, [
        rating_content("S1", clerk=("007", "张三")),
        rating_content("S2", level="dissatisfied", clerk=("007", "张三")),
        rating_content("S3", level="very_satisfied", clerk=("008", "李四"), stage="accept"),
    ])  # fmt: skip
    events_a = seal_all(keys[A], A, [
        end_event("S4", clerk=("007", "张三"), ended_at="2026-05-29T09:00:00.000+08:00"),
        end_event("S5", clerk=("008", "李四")),
        end_event("S6", outcome="cancelled", by="clerk", clerk=("007", "张三")),
    ])  # fmt: skip
    ratings_b = seal_all(keys[B], B, [
        rating_content("S5", level="basically_satisfied", clerk=("009", "王五"),
                       matter=("M2", "食品经营许可证核发")),
    ])  # fmt: skip
    ingest = Ingest(db)
    messages = [(topic(A), payload(r)) for r in ratings_a]
    messages += [(topic(A, "events"), payload(e)) for e in events_a]
    messages += [(topic(B), payload(r)) for r in ratings_b]
    messages += [
        (topic(A, "status"), status(A, False)),
        (topic(B, "status"), status(B, True)),
    ]
    result = ingest.handle_batch(messages)
    assert result.stored == 7 and not result.dead, [d.reason for d in result.dead]
    yield db
    db.close()


def test_figures(hall: HubDB) -> None:
    data = figures(hall)
    h = data["hall"]
    assert (h["ratings"], h["good"], h["bad"]) == (4, 3, 1)
    assert h["mean_score"] == pytest.approx((8 + 3 + 10 + 6) / 4)
    # M1: S1 8 and S2 3 (S3 at accept rates the clerk only); M2: 6 → item score (5.5 + 6) / 2
    assert {m["matter_code"]: m["mean_score"] for m in data["matters"]} == {"M1": 5.5, "M2": 6.0}
    assert h["item_score"] == pytest.approx(5.75)
    # presented S1..S6, rated S1 S2 S3 S5
    assert (h["rated_cases"], h["presented_cases"]) == (4, 6)
    assert h["participation"] == 0.667  # 4/6 rounded once to 3 places (rules.figures)
    assert h["cancelled"] == 1
    clerks = {c["clerk_id"]: c for c in data["clerks"]}
    assert clerks["007"]["clerk_name"] == "张三" and clerks["007"]["bad"] == 1
    assert (clerks["007"]["rated_cases"], clerks["007"]["presented_cases"]) == (2, 4)
    assert clerks["007"]["cancelled"] == 1
    assert data["coverage"]["registered"] == 3 and data["coverage"]["online"] == 1
    assert data["coverage"]["coverage"] == 0.333  # rounded once to 3 places


def test_figures_of_a_period_use_the_pads_own_times(hall: HubDB) -> None:
    data = figures(hall, since="2026-05-29T08:00:00+08:00")
    assert data["hall"]["ratings"] == 0
    assert data["hall"]["presented_cases"] == 1  # S4 ended at 09:00


def test_follow_ups_and_work_orders(hall: HubDB) -> None:
    sms = follow_ups(hall)
    # S5 was not rated on A but rated later on B; S6 was cancelled by the clerk's side
    assert [f["serial"] for f in sms] == ["S4"]
    assert sms[0]["sms_due"] == "2026-05-30T09:00:00.000+08:00"
    assert sms[0]["matter_name"] == "不动产登记" and sms[0]["device_id"] == A
    orders = bad_ratings(hall)
    assert [(o["serials"], o["level"]) for o in orders] == [(["S2"], "dissatisfied")]
    assert orders[0]["reasons"] == ["214 服务态度生硬"] and orders[0]["clerk_id"] == "007"


def test_csv_export_has_the_national_field_names(hall: HubDB, tmp_path: Path) -> None:
    out = tmp_path / "ratings.csv"
    assert write_csv(hall, out) == 4
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheet programs read the Chinese
    with open(out, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == FIELDS
    by = {r["projectNo"]: r for r in rows}
    assert by["S2"]["satisfaction"] == "2" and by["S2"]["evalDetail"] == "214"
    assert by["S2"]["proManager"] == "张三" and by["S2"]["proManagerNo"] == "007"
    assert by["S2"]["taskCode"] == "M1" and by["S2"]["taskName"] == "不动产登记"
    assert by["S1"]["pf"] == "4" and by["S1"]["areaCode"] == "440500"
    assert by["S3"]["satisfaction"] == "5" and by["S3"]["gbt_code"] == "1"
