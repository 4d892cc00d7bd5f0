"""Attacks on the hub's figures and export periods: a date is the hall's day, not UTC's, and a
period that is no date is a usage error — real SQLite, records sealed by a real device key."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator.cli import main
from sync.hub.db import HubDB, open_db
from sync.hub.export import write_csv
from sync.hub.figures import bad_ratings, figures, follow_ups
from sync.hub.ingest import Ingest
from tests.sync.hub.helpers import end_event, make_key, payload, rating_content, seal_all, topic

DEVICE = "pad-1"


def _at(record: dict, when: str) -> dict:
    return {**record, "presented_at": when, "rated_at": when}


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A hall whose pad (UTC+8) rated S1 at 00:30 and S2 (差评) at 07:59 on May 29, S3 at 08:00,
    S4 on May 30 at 00:10; and left S5 unrated at 06:00 on May 29."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    key = make_key(tmp_path)
    ratings = seal_all(key, DEVICE, [
        _at(rating_content("S1"), "2026-05-29T00:30:00.000+08:00"),
        _at(rating_content("S2", level="dissatisfied"), "2026-05-29T07:59:00.000+08:00"),
        _at(rating_content("S3"), "2026-05-29T08:00:00.000+08:00"),
        _at(rating_content("S4"), "2026-05-30T00:10:00.000+08:00"),
    ])  # fmt: skip
    events = seal_all(key, DEVICE, [end_event("S5", ended_at="2026-05-29T06:00:00.000+08:00")])
    with open_db(url) as db:
        db.register(DEVICE, key.public.text)
        msgs = [(topic(DEVICE), payload(r)) for r in ratings]
        msgs += [(topic(DEVICE, "events"), payload(e)) for e in events]
        assert Ingest(db).handle_batch(msgs).stored == 5
    yield url


@pytest.fixture
def db(url: str) -> Iterator[HubDB]:
    with open_db(url) as hub:
        yield hub


def test_a_date_is_the_halls_day_in_every_figure_and_list(db: HubDB, tmp_path: Path) -> None:
    """'--since 2026-05-29 --until 2026-05-30' read as UTC put a hall's 00:00-08:00 (a
    24-hour self-service area, an early opening) into the day before: art. 33 figures,
    work orders, SMS follow-ups and the export of the wrong day."""
    day = {"since": "2026-05-29", "until": "2026-05-30"}
    assert figures(db, **day)["hall"]["ratings"] == 3
    assert figures(db, **day)["hall"]["presented_cases"] == 4  # S1-S3 rated, S5 shown
    assert [o["serials"] for o in bad_ratings(db, **day)] == [["S2"]]
    assert [f["serial"] for f in follow_ups(db, **day)] == ["S5"]
    out = tmp_path / "day.csv"
    assert write_csv(db, out, **day) == 3
    with open(out, encoding="utf-8-sig", newline="") as handle:
        assert [r["projectNo"] for r in csv.DictReader(handle)] == ["S1", "S2", "S3"]
    # a time without an offset is the hall's wall clock too; with one it is that instant
    assert figures(db, since="2026-05-29T08:00")["hall"]["ratings"] == 2
    assert figures(db, since="2026-05-29T00:00:00+00:00")["hall"]["ratings"] == 2


@pytest.mark.parametrize("action", ["figures", "followups", "export"])
@pytest.mark.parametrize("bound", ["yesterday", "2026-13-01", "29/05/2026"])
def test_a_period_that_is_no_date_is_a_usage_error(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str, bound: str
) -> None:
    """It was a ValueError traceback from deep inside the figures."""
    extra = ["--out", str(tmp_path / "x.csv")] if action == "export" else []
    with pytest.raises(SystemExit) as exited:
        main(["hub", action, "--db", url, "--since", bound, *extra])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --since: {bound!r}: expected an ISO date or time" in err
    assert "Traceback" not in err
