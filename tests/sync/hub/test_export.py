"""Issue 16: a cell that a spreadsheet would run as a formula reached ``hub export`` as text
(``\\n=``, `` =``, ``＝``).  Every such cell of a real export, read back with the csv module,
starts with the neutralising apostrophe followed by the stored text; numbers stay numbers.
SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sync.hub import ingest as ingest_module
from sync.hub.db import open_db
from sync.hub.export import write_csv
from tests.sync.hub.helpers import make_key, payload, rating_content, seal_all, topic

DEVICE = "pad-x"
#: Texts a spreadsheet runs as a formula: the ASCII starts, a tab or return first, after
#: spaces, newlines, an ideographic or zero-width space, and the full-width look-alikes.
HOSTILE = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "\n=1", " =1", " \n =1",
           "\u3000=1", "\u200b=1", "＝1+1", "＋1", "－1", "＠SUM(A1)", "﹦1", " ＝1"]  # fmt: skip
#: Texts that are no formula: they must reach the sheet exactly as stored.
PLAIN = ["不动产登记", "A-1", "1+1", "陈 晓明", "'=already"]
#: The columns that hold a text a person or the business system gave.
TEXT_COLUMNS = ("taskName", "taskCode", "proManager", "proManagerNo", "writingEvaluation")


def _rating(n: int, text: str) -> dict:
    body = rating_content(f"S{n}", level="very_dissatisfied", clerk=(text[:32], text[:32]),
                          matter=(text, text))  # fmt: skip
    body.update(reasons=[{"code": "other", "text": "其他", "target": "other"}], comment=text)
    return body


@pytest.fixture
def exported(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Each text in every text column of one rating each, stored as the receiver before issue
    16 stored them (its text check off: a database filled before the fix), then exported."""
    monkeypatch.setattr(ingest_module, "_shown_text_problem", lambda _stream, _obj: None,
                        raising=False)  # fmt: skip
    key = make_key(tmp_path)
    records = seal_all(key, DEVICE, [_rating(n, t) for n, t in enumerate(HOSTILE + PLAIN)])
    with open_db(db_url) as db:
        db.register(DEVICE, key.public.text)
        result = ingest_module.Ingest(db).handle_batch([(topic(DEVICE), payload(r))
                                                        for r in records])  # fmt: skip
        assert result.stored == len(records), [d.reason for d in result.dead]
        out = tmp_path / "ratings.csv"
        assert write_csv(db, out) == len(records)
    with open(out, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_formula_like_cell_starts_with_the_apostrophe(exported: list[dict]) -> None:
    by = {int(r["projectNo"][1:]): r for r in exported}
    for n, text in enumerate(HOSTILE):
        for column in TEXT_COLUMNS:
            stored = text[:32] if column.startswith("proManager") else text
            assert by[n][column] == "'" + stored, (column, text)
    for n, text in enumerate(PLAIN, len(HOSTILE)):
        assert [by[n][c] for c in TEXT_COLUMNS] == [text] * len(TEXT_COLUMNS)


def test_numbers_stay_numbers(exported: list[dict]) -> None:
    """The export has no negative number; its numeric columns are never quoted."""
    for row in exported:
        assert (row["satisfaction"], row["score"], row["gbt_code"], row["pf"]) == ("1", "0", "5",
                                                                                  "4")  # fmt: skip
        assert row["seq"].isdigit() and row["assessNumber"] == "1"
