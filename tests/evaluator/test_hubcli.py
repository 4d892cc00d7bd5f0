"""``evaluator hub register / figures / followups / export`` through ``evaluator.cli.main``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evaluator.cli import main
from sync.hub.db import open_db
from sync.hub.ingest import Ingest
from tests.sync.hub.helpers import end_event, make_key, payload, rating_content, seal_all, topic

DEVICE = "pad-1"


def test_register_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    key = make_key(tmp_path)
    assert main(["hub", "register", "--db", url, DEVICE, key.public.text]) == 0
    assert f"registered {DEVICE} key {key.key_id}" in capsys.readouterr().out
    ratings = seal_all(key, DEVICE, [rating_content("S1"),
                                     rating_content("S2", level="very_dissatisfied")])  # fmt: skip
    events = seal_all(key, DEVICE, [end_event("S3")])
    with open_db(url) as db:
        msgs = [(topic(DEVICE), payload(r)) for r in ratings]
        msgs += [(topic(DEVICE, "events"), payload(e)) for e in events]
        assert Ingest(db).handle_batch(msgs).stored == 3

    assert main(["hub", "figures", "--db", url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hall"]["ratings"] == 2 and data["hall"]["presented_cases"] == 3
    assert main(["hub", "figures", "--db", url]) == 0
    assert "hall: 2 ratings (1 好评, 1 差评)" in capsys.readouterr().out

    assert main(["hub", "followups", "--db", url, "--json"]) == 0
    lists = json.loads(capsys.readouterr().out)
    assert [f["serial"] for f in lists["sms_follow_ups"]] == ["S3"]
    assert [w["serials"] for w in lists["work_orders"]] == [["S2"]]

    out = tmp_path / "r.csv"
    assert main(["hub", "export", "--db", url, "--out", str(out)]) == 0
    with open(out, encoding="utf-8-sig", newline="") as handle:
        assert [r["projectNo"] for r in csv.DictReader(handle)] == ["S1", "S2"]


def test_a_bad_key_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["hub", "register", "--db", str(tmp_path / "hub.db"), DEVICE, "nonsense"])
    assert code == 2
    assert "expected 'ed25519:<base64>'" in capsys.readouterr().err


def test_the_password_file_is_read_as_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hub run --password-file``: one clear line for a missing, shared or odd file, never a
    traceback, never a service hung at start on a FIFO (the rules of the pad's key files)."""
    import os
    import threading

    db = f"sqlite:///{tmp_path / 'hub.db'}"
    shared = tmp_path / "shared"
    shared.write_text("pw\n")
    shared.chmod(0o644)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, words in ((tmp_path / "none", "no MQTT password file"), (shared, "readable by"),
                        (fifo, "not a regular file")):  # fmt: skip
        codes: list[int] = []
        argv = ["hub", "run", "--db", db, "--broker", "mqtt://127.0.0.1:1",
                "--password-file", str(path)]  # fmt: skip
        runner = threading.Thread(target=lambda c=codes, a=argv: c.append(main(a)), daemon=True)
        runner.start()
        runner.join(10)
        assert codes == [2], path
        assert words in capsys.readouterr().err, path
