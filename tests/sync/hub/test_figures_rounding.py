"""The pad and the city print the same figure for the same ratings: both round the exact
fraction once by :mod:`evaluator.rules.figures` (issue 15: the hub turned 6.4848 into 6.485
and printed "6.49" where the pad printed 6.48).  A real pad store (SQLite, signed chain) and
the hub's real ingest and database, fed the very records the pad sealed."""

from __future__ import annotations

import json
import re
import tempfile
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.cli import main
from sync.audit import stats as audited_stats
from sync.hub.db import open_db
from sync.hub.figures import figures
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from sync.store import Store
from tests.sync.hub.helpers import payload, rating_content, topic

DEVICE = "440500-hall1-w12"
LEVELS = ("very_satisfied", "satisfied", "basically_satisfied", "dissatisfied",
          "very_dissatisfied")  # fmt: skip
SCORE = dict(zip(LEVELS, (10, 8, 6, 3, 0), strict=True))
CLERKS = (("007", "张三"), ("008", "李四"))
MATTERS = (("M1", "不动产登记"), ("M2", "食品经营许可证核发"), ("M3", "户籍"))

#: One rating: its level, clerk and matter.
RATINGS = st.lists(
    st.tuples(st.sampled_from(LEVELS), st.sampled_from(CLERKS), st.sampled_from(MATTERS)),
    min_size=1,
    max_size=60,
)


def once(value: Fraction, places: int) -> str:
    """The exact fraction rounded once, half up, written independently of the rule."""
    with localcontext() as ctx:
        ctx.prec = 60
        quotient = Decimal(value.numerator) / Decimal(value.denominator)
        return f"{quotient.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):f}"


def pad_and_hub(
    where: Path, ratings: list[tuple[str, tuple[str, str], tuple[str, str]]]
) -> tuple[Path, str]:
    """The ratings appended to a real pad store, then what it sealed ingested by the hub."""
    key = DeviceKey.create(where / "device.key")
    db_path = where / "ratings.db"
    with Store(db_path, device_id=DEVICE, signer=key) as store:
        for n, (level, clerk, matter) in enumerate(ratings):
            store.append_rating(rating_content(f"S{n:05d}", level=level, clerk=clerk,
                                               matter=matter))  # fmt: skip
        sealed = list(store.records())
    url = f"sqlite:///{where / 'hub.db'}"
    with open_db(url) as db:
        db.register(DEVICE, key.public.text)
        result = Ingest(db).handle_batch([(topic(DEVICE), payload(r)) for r in sealed])
        assert result.stored == len(ratings) and not result.dead
    return db_path, url


def expected(ratings: list[tuple[str, tuple[str, str], tuple[str, str]]]) -> dict[str, Any]:
    """Each figure as the exact fraction rounded once."""

    def mean(scores: list[int]) -> Fraction:
        return Fraction(sum(scores), len(scores))

    clerks: dict[str, list[int]] = {}
    matters: dict[str, list[int]] = {}
    for level, (cid, _), (code, _) in ratings:
        clerks.setdefault(cid, []).append(SCORE[level])
        matters.setdefault(code, []).append(SCORE[level])
    item = sum(mean(s) for s in matters.values()) / len(matters)
    return {
        "mean": once(mean([SCORE[lv] for lv, _, _ in ratings]), 2),
        "item": once(item, 2),
        "clerks": {c: once(mean(s), 2) for c, s in clerks.items()},
        "matters": {m: once(mean(s), 2) for m, s in matters.items()},
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RATINGS)
def test_pad_figure_equals_hub_figure_equals_the_fraction_rounded_once(
    ratings: list[tuple[str, tuple[str, str], tuple[str, str]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db_path, url = pad_and_hub(Path(tmp), ratings)
        with Store(db_path, device_id=DEVICE) as store:
            pad = audited_stats(store)
        with open_db(url) as db:
            hub = figures(db)
    want = expected(ratings)
    text = "{:.2f}".format  # safe here: each JSON figure is already the 2-place decimal
    assert text(pad["device"]["mean_score"]) == text(hub["hall"]["mean_score"]) == want["mean"]
    assert text(pad["device"]["item_score"]) == text(hub["hall"]["item_score"]) == want["item"]
    assert {c["clerk_id"]: text(c["mean_score"]) for c in pad["clerks"]} == want["clerks"]
    assert {c["clerk_id"]: text(c["mean_score"]) for c in hub["clerks"]} == want["clerks"]
    assert {m["matter_code"]: text(m["mean_score"]) for m in pad["matters"]} == want["matters"]
    assert {m["matter_code"]: text(m["mean_score"]) for m in hub["matters"]} == want["matters"]
    assert pad["device"]["participation"] == hub["hall"]["participation"] == 1.0


def test_the_issue_example_prints_648_on_the_pad_and_at_the_city(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """29 基本满意 (6) and 4 非常满意 (10) by one clerk on one matter: 214/33 = 6.4848…"""
    clerk, matter = CLERKS[0], MATTERS[0]
    ratings = [("basically_satisfied", clerk, matter)] * 29
    ratings += [("very_satisfied", clerk, matter)] * 4
    db_path, url = pad_and_hub(tmp_path, ratings)

    assert main(["stats", "--db", str(db_path)]) == 0
    pad_text = capsys.readouterr().out
    assert main(["hub", "figures", "--db", url]) == 0
    hub_text = capsys.readouterr().out
    assert "item score 6.48" in pad_text
    assert re.search(r"^007\s+张三\s+33\s+6\.48\s", pad_text, re.M), pad_text
    assert "mean score 6.48, item score 6.48" in hub_text
    assert "007 张三: 33 ratings, mean 6.48" in hub_text
    assert "M1 不动产登记: 33 ratings, mean 6.48" in hub_text
    assert "6.49" not in pad_text + hub_text

    assert main(["stats", "--db", str(db_path), "--format", "json"]) == 0
    pad_json = json.loads(capsys.readouterr().out)
    assert main(["hub", "figures", "--db", url, "--json"]) == 0
    hub_json = json.loads(capsys.readouterr().out)
    assert pad_json["device"]["mean_score"] == hub_json["hall"]["mean_score"] == 6.48
    assert pad_json["device"]["item_score"] == hub_json["hall"]["item_score"] == 6.48
