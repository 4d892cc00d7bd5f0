"""The SIGKILL campaign, short: the real pad killed around presses loses and doubles nothing.

The suite runs the fast variant (10 kills, every kill moment at least twice).  The long one is
``python -m tests.campaigns.sigkill --kills 200``; ``SIGKILL_CAMPAIGN_KILLS`` changes the count
here too.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tests.campaigns.sigkill import MOMENTS, Figures, audit, run_campaign

FAST_KILLS = int(os.environ.get("SIGKILL_CAMPAIGN_KILLS", "10"))


def test_sigkill_campaign_loses_doubles_and_contradicts_nothing(tmp_path: Path) -> None:
    lines: list[str] = []
    figures = run_campaign(FAST_KILLS, seed=20261127, work=tmp_path / "campaign", say=lines.append)
    report = figures.table() + "\n" + "\n".join(figures.problems)
    assert figures.kills == FAST_KILLS, report
    assert all(figures.moments[m] >= FAST_KILLS // len(MOMENTS) for m in MOMENTS), report
    assert figures.survived == FAST_KILLS, report
    assert figures.reported >= 1, report  # presses did happen and were reported
    # A kill during the 谢谢 (the rating durable, not yet told: art. 4) is told by a later start.
    assert figures.told_later >= 1, report
    assert (figures.lost, figures.duplicated, figures.unasked) == (0, 0, 0), report
    assert figures.stored == figures.delivered and figures.undelivered == 0, report
    assert figures.unknown_at_city == 0, report
    assert figures.inconsistent == 0, report
    assert figures.verify_ok, report
    assert figures.ok


def test_a_campaign_whose_last_kill_left_a_screen_open_audits_a_pad_that_is_up(
    tmp_path: Path,
) -> None:
    """The final pad closes what the last kill left open before the audit reads the store."""
    figures = run_campaign(1, seed=1, work=tmp_path / "one", say=lambda _: None)
    assert figures.moments["before"] == 1 and figures.stored == 0
    assert figures.inconsistent == 0 and figures.problems == []
    assert figures.ok


# -- the audit itself must be able to fail: a store made by hand with each fault ----------------


def _store(
    path: Path,
    *,
    ratings: list[tuple[str, str, str]],
    presentations: list[tuple[str, str, str | None, str | None]],
) -> Path:
    """A minimal store with the tables the audit reads: ratings (id, presentation, serial)."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE ratings (id TEXT, presentation_id TEXT)")
        conn.execute("CREATE TABLE rating_cases (rating_id TEXT, serial TEXT)")
        conn.execute(
            "CREATE TABLE presentations (id TEXT, serials TEXT, outcome TEXT, rating_ids TEXT)"
        )
        for rid, pid, serial in ratings:
            conn.execute("INSERT INTO ratings VALUES (?, ?)", [rid, pid])
            conn.execute("INSERT INTO rating_cases VALUES (?, ?)", [rid, serial])
        conn.executemany("INSERT INTO presentations VALUES (?, ?, ?, ?)", presentations)
    conn.close()
    return path


def test_audit_counts_each_kind_of_fault(tmp_path: Path) -> None:
    db = _store(
        tmp_path / "faulty.db",
        ratings=[("r1", "p1", "S1"), ("r2", "p2", "S2"), ("r3", "p2", "S2"), ("r4", "p4", "SX")],
        presentations=[
            ("p1", '["S1"]', "rated", '["r1"]'),
            ("p2", '["S2"]', "not_rated", "[]"),  # a rating stored, outcome says not rated
            ("p3", '["S3"]', None, None),  # left open
            ("p4", '["SX"]', "rated", '["r4"]'),
            ("p5", '["S5"]', "rated", "[]"),  # rated without a rating
        ],
    )
    figures = Figures(verify_ok=True)
    audit(
        figures,
        db,
        asked={"S1", "S2", "S3", "S5", "S6", "S7"},
        # S7 told cancelled and indeed never rated: consistent
        told={"S1": ["rated"], "S2": ["rated"], "S6": ["rated"], "S7": ["cancelled"]},
        city_ids=["r1", "r1", "r2", "rZ"],
    )
    assert figures.reported == 3 and figures.stored == 4
    assert figures.lost == 1  # S6: told rated, never stored
    assert figures.duplicated == 2  # S2 twice, p2 twice
    assert figures.unasked == 1  # SX
    assert (figures.delivered, figures.undelivered, figures.unknown_at_city) == (2, 2, 1)
    assert figures.city_messages == 4
    assert figures.inconsistent == 3  # p2, p3, p5
    assert not figures.ok


def test_audit_of_a_clean_store_finds_nothing(tmp_path: Path) -> None:
    db = _store(
        tmp_path / "clean.db",
        ratings=[("r1", "p1", "S1")],
        presentations=[("p1", '["S1"]', "rated", '["r1"]'), ("p2", '["S2"]', "not_rated", "[]")],
    )
    figures = Figures(kills=0, verify_ok=True)
    audit(figures, db, asked={"S1", "S2"}, told={"S1": ["rated"]}, city_ids=["r1", "r1"])
    assert (figures.lost, figures.duplicated, figures.unasked, figures.inconsistent) == (0, 0, 0, 0)
    assert figures.ok, figures.problems


@pytest.mark.parametrize("outcome", ["not_rated", "cancelled"])
def test_audit_flags_a_counter_told_not_rated_for_a_stored_rating(
    tmp_path: Path, outcome: str
) -> None:
    db = _store(
        tmp_path / "told.db",
        ratings=[("r1", "p1", "S1")],
        presentations=[("p1", '["S1"]', "rated", '["r1"]')],
    )
    figures = Figures(verify_ok=True)
    audit(figures, db, asked={"S1"}, told={"S1": [outcome]}, city_ids=["r1"])
    assert figures.inconsistent == 1 and not figures.ok
