"""``evaluator hub conflicts`` and ``evaluator hub roster`` through ``evaluator.cli.main``
(issue 16): held records listed with both sides and a failing exit; a roster replaced whole,
or, when a row is wrong, not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.cli import main
from sync.hub.db import open_db
from sync.hub.ingest import Ingest
from tests.sync.hub.helpers import make_key, payload, rating_content, seal_all, topic


def test_conflicts_say_none_or_list_both_sides_with_a_failing_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    assert main(["hub", "conflicts", "--db", url]) == 0
    assert "no conflicts" in capsys.readouterr().out
    keys = {d: make_key(tmp_path, d) for d in ("pad-1", "pad-2")}
    genuine = seal_all(keys["pad-1"], "pad-1", [rating_content("S1", level="very_satisfied")])
    forged = seal_all(keys["pad-2"], "pad-2", [rating_content("S1", level="very_dissatisfied")])
    with open_db(url) as db:
        for device, key in keys.items():
            db.register(device, key.public.text)
        ingest = Ingest(db)
        assert ingest.handle(topic("pad-1"), payload(genuine[0])).stored == 1
        done = ingest.handle(topic("pad-2"), payload(forged[0]))
        assert (done.stored, done.held, done.acks) == (1, 1, {"pad-2": [forged[0]["id"]]})
    assert main(["hub", "conflicts", "--db", url]) == 1
    text = capsys.readouterr().out
    assert "1 record(s) held out of the figures (1 conflict(s))" in text
    assert "pad-2  second_first_rating  this: pad-2 seq 1" in text
    assert "other: pad-1 seq 1 rating very_satisfied" in text
    assert main(["hub", "conflicts", "--db", url, "--json", "--device", "pad-1"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["hub", "figures", "--db", url]) == 0
    assert "held out of these figures: 1 record(s) of pad-2 (1)" in capsys.readouterr().out


def test_a_roster_is_replaced_whole_or_not_at_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    good = tmp_path / "roster.csv"
    good.write_text("\ufeffhall,device_id,clerk_id,name\nH1,pad-1,A1,李明\nH1,,C3,王芳\n\n",
                    encoding="utf-8")  # fmt: skip
    assert main(["hub", "roster", "--db", url, "--csv", str(good)]) == 0
    assert "roster: 2 row(s), 2 clerk(s), 1 pad(s) named" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("hall,device_id,clerk_id\nH2,pad-2,B1\n,pad-3,B2\nH2,pad/4,B3\n",
                   encoding="utf-8")  # fmt: skip
    assert main(["hub", "roster", "--db", url, "--csv", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "nothing taken, 2 wrong row(s): row 3: no hall; row 4: 'pad/4'" in err
    assert main(["hub", "roster", "--db", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"hall": "H1", "device_id": "", "clerk_id": "C3"},
        {"hall": "H1", "device_id": "pad-1", "clerk_id": "A1"},
    ]
    none = tmp_path / "none.csv"
    none.write_text("hall,clerk\nH1,A1\n", encoding="utf-8")
    assert main(["hub", "roster", "--db", url, "--csv", str(none)]) == 2
    assert "missing device_id, clerk_id" in capsys.readouterr().err
