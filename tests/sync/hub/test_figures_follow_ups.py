"""The city's figures count a slot's first rating; follow-ups (追加评价) are reported beside
them, never averaged in (art. 22, issue 15): a clerk's re-ask cannot lift a mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.records import GENESIS_HASH, new_record_id, seal
from sync.hub.db import open_db
from sync.hub.figures import figures
from sync.hub.ingest import Ingest
from tests.sync.hub.helpers import make_key, payload, rating_content, topic

PAD = "pad-f"


def chain(key: Any, contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``contents`` sealed as one chain; each keeps the ``id`` it was given."""
    out, prev = [], GENESIS_HASH
    for seq, body in enumerate(contents, 1):
        record = seal(dict(body, seq=seq, device_id=PAD), prev_hash=prev, signer=key)
        prev = record["hash"]
        out.append(record)
    return out


@pytest.mark.parametrize(
    ("first", "again", "changed"),
    [("very_dissatisfied", "very_satisfied", 1), ("satisfied", "satisfied", 0),
     ("dissatisfied", "basically_satisfied", 1)],
)  # fmt: skip
def test_a_follow_up_is_beside_the_figures_never_in_them(
    db_url: str, tmp_path: Path, first: str, again: str, changed: int
) -> None:
    db = open_db(db_url)
    key = make_key(tmp_path, PAD)
    db.register(PAD, key.public.text)
    s1 = dict(rating_content("S1", level=first, clerk=("007", "张三")), id=new_record_id())
    s2 = dict(rating_content("S2", level="satisfied", clerk=("007", "张三")), id=new_record_id())
    follow = dict(rating_content("S1", level=again, clerk=("007", "张三")), id=new_record_id(),
                  assess_number=2, follows=[s1["id"]])  # fmt: skip
    result = Ingest(db).handle_batch([(topic(PAD), payload(r)) for r in chain(key, [s1, s2,
                                                                                    follow])])
    assert result.stored == 3 and not result.dead, [d.reason for d in result.dead]
    data = figures(db)
    scores = {"very_satisfied": 10, "satisfied": 8, "basically_satisfied": 6,
              "dissatisfied": 3, "very_dissatisfied": 0}  # fmt: skip
    means = (scores[first] + 8) / 2
    [clerk] = data["clerks"]
    [matter] = data["matters"]
    for row in (data["hall"], clerk, matter):
        assert (row["ratings"], row["mean_score"]) == (2, means), row
        assert row["follow_ups"] == {
            "count": 1, "mean_score": float(scores[again]), "changed_level": changed,
        }  # fmt: skip
    assert data["hall"]["good"] == (2 if first == "satisfied" else 1)
    assert data["hall"]["item_score"] == means
    db.close()
