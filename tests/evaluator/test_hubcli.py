"""``evaluator hub register / figures / followups / export`` through ``evaluator.cli.main``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evaluator.cli import main
from sync.hub.db import open_db
from sync.hub.ingest import Ingest
from tests.sync.hub.helpers import (
    end_event,
    make_key,
    payload,
    public_keys,
    rating_content,
    seal_all,
    topic,
)

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


# --------------------------------------------------------------------------- issue 14: many pads


def _devices_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["device_id", "public_key"])
        writer.writerows(rows)
    return path


def test_register_takes_the_devices_csv_provision_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "fleet.csv"
    sheet.write_text("device_id,area_code\npad-1,440500\npad-2,440500\n", encoding="utf-8")
    assert main(["provision", str(sheet), "--out", str(tmp_path / "out")]) == 0
    devices = tmp_path / "out" / "devices.csv"
    db = str(tmp_path / "hub.db")
    capsys.readouterr()
    assert main(["hub", "register", "--db", db, "--csv", str(devices)]) == 0
    out = capsys.readouterr().out
    assert "registered pad-1 key" in out and "registered pad-2 key" in out
    assert "2 new, 0 changed, 0 unchanged, 0 refused" in out
    assert main(["hub", "register", "--db", db, "--csv", str(devices)]) == 0
    assert "0 new, 0 changed, 2 unchanged, 0 refused" in capsys.readouterr().out


def test_a_thousand_pads_then_a_rerun_then_changed_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = public_keys(1002)
    rows = [(f"pad-{i:04}", k) for i, k in enumerate(keys[:1000])]
    devices = _devices_csv(tmp_path / "devices.csv", rows)
    db = str(tmp_path / "hub.db")
    assert main(["hub", "register", "--db", db, "--csv", str(devices)]) == 0
    assert "1000 new, 0 changed, 0 unchanged, 0 refused" in capsys.readouterr().out
    assert main(["hub", "register", "--db", db, "--csv", str(devices)]) == 0
    assert "0 new, 0 changed, 1000 unchanged, 0 refused" in capsys.readouterr().out

    rows[10], rows[500] = ("pad-0010", keys[1000]), ("pad-0500", keys[1001])
    changed = _devices_csv(tmp_path / "changed.csv", rows)
    assert main(["hub", "register", "--db", db, "--csv", str(changed)]) == 1
    out, err = capsys.readouterr()
    assert "changed.csv row 12: refused: pad-0010 is registered with key" in err
    assert "changed.csv row 502: refused: pad-0500 is registered with key" in err
    assert "0 new, 0 changed, 998 unchanged, 2 refused" in out
    assert main(["hub", "register", "--db", db, "--csv", str(changed), "--force"]) == 0
    out = capsys.readouterr().out
    assert "registered pad-0010 key" in out
    assert "(a changed key, --force; the old one is kept)" in out
    assert "0 new, 2 changed, 998 unchanged, 0 refused" in out
    with open_db(db) as hub:
        assert len(hub.keys("pad-0010")[0]) == 2


def test_a_changed_key_on_the_command_line_needs_force_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = public_keys(2)
    db = str(tmp_path / "hub.db")
    assert main(["hub", "register", "--db", db, DEVICE, old]) == 0
    assert main(["hub", "register", "--db", db, DEVICE, new]) == 2
    assert "a changed key is refused unless --force" in capsys.readouterr().err
    assert main(["hub", "register", "--db", db, DEVICE, new, "--force"]) == 0


def test_a_devices_csv_without_its_columns_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "devices.csv"
    bad.write_text("id,key\npad-1,ed25519:x\n", encoding="utf-8")
    assert main(["hub", "register", "--db", str(tmp_path / "h.db"), "--csv", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "row 1 must name the columns device_id, public_key (missing device_id, public_key" in err


def test_a_file_that_is_no_devices_csv_is_one_line_and_registers_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cell over the csv module's 128 KiB limit (the wrong file picked, a pasted blob) ended
    in a _csv.Error traceback."""
    keys = public_keys(1)
    bad = tmp_path / "devices.csv"
    bad.write_text(f'device_id,public_key\npad-1,{keys[0]}\npad-2,"{"A" * 200_000}"\n',
                   encoding="utf-8")  # fmt: skip
    db = str(tmp_path / "h.db")
    assert main(["hub", "register", "--db", db, "--csv", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: after line 2: not a devices.csv (field larger than field limit" in err
    assert "nothing registered" in err
    with open_db(db) as hub:
        assert hub.devices() == []


def test_flags_say_none_or_list_each_with_a_failing_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    with open_db(url):
        pass
    assert main(["hub", "flags", "--db", url]) == 0
    assert "no findings" in capsys.readouterr().out
    with open_db(url) as db, db.transaction():
        db.flag(DEVICE, "records_lost", "7", {"seq": 7})
        db.flag("pad-2", "chain_restarted", "e2", {"epoch": "e2"})
    assert main(["hub", "flags", "--db", url]) == 1
    text = capsys.readouterr().out
    assert "2 finding(s)" in text and "records_lost [7]" in text and "seq=7" in text
    assert main(["hub", "flags", "--db", url, "--device", "pad-2", "--json"]) == 1
    assert [f["kind"] for f in json.loads(capsys.readouterr().out)] == ["chain_restarted"]


def test_dead_counts_refusals_per_pad_and_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    key = make_key(tmp_path)
    assert main(["hub", "register", "--db", url, DEVICE, key.public.text]) == 0
    assert main(["hub", "dead", "--db", url]) == 0
    assert "no dead letters" in capsys.readouterr().out
    with open_db(url) as db:
        ingest = Ingest(db)
        junk = [(topic(DEVICE), b"junk %d" % n) for n in range(150)]
        ingest.handle_batch([*junk, (topic(DEVICE), b"\xff")])
        assert len(db.dead()) == 101  # 100 kept of the 150 alike, and the other cause
    assert main(["hub", "dead", "--db", url]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("151 message(s) refused")
    assert "150  [100]  pad-1  not JSON" in lines[1] and "pad-1  not UTF-8" in lines[2]
    assert main(["hub", "dead", "--db", url, "--json"]) == 1
    counted = json.loads(capsys.readouterr().out)
    assert [(c["cause"], c["count"], c["stored"]) for c in counted] == [
        ("not JSON", 150, 100), ("not UTF-8", 1, 1)]  # fmt: skip


def test_witness_keeps_genuine_heads_refuses_the_rest_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hub witness FILE``: each refused line on stderr with its number, the counts, exit 1
    when something was refused or found; a missing file is one clear line (exit 2)."""
    from evaluator.rules.witness import make_head

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    key = make_key(tmp_path)
    assert main(["hub", "register", "--db", url, DEVICE, key.public.text]) == 0
    ratings = seal_all(key, DEVICE, [rating_content("S1"), rating_content("S2")])
    heads = [make_head(key, device_id=DEVICE, epoch="", seq=r["seq"], hash_=r["hash"])
             for r in ratings]  # fmt: skip
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(h) + "\n" for h in heads))
    capsys.readouterr()
    assert main(["hub", "witness", "--db", url, str(good)]) == 0
    assert "2 head(s) kept, 0 already kept, 0 refused, 0 finding(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    forged = dict(heads[1], seq=3)
    bad.write_text(json.dumps(heads[0]) + "\nnot json\n" + json.dumps(forged) + "\n")
    assert main(["hub", "witness", "--db", url, str(bad)]) == 1
    captured = capsys.readouterr()
    assert "0 head(s) kept, 1 already kept, 2 refused" in captured.out
    assert "bad.jsonl line 2: refused: not JSON" in captured.err
    assert "bad.jsonl line 3: refused: the signature does not verify" in captured.err
    assert main(["hub", "witness", "--db", url, str(tmp_path / "none.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    # a record at a witnessed seq with another hash: a finding, and figures say so
    other = seal_all(key, DEVICE, [rating_content("S1"), rating_content("S9")])
    with open_db(url) as db:
        Ingest(db).handle_batch([(topic(DEVICE), payload(r)) for r in other])
    assert main(["hub", "flags", "--db", url]) == 1
    assert "head_contradicted" in capsys.readouterr().out
    assert main(["hub", "figures", "--db", url]) == 0
    captured = capsys.readouterr()
    assert "WARNING: 1 device(s)" in captured.out and "head_contradicted" in captured.out


@pytest.mark.parametrize(
    ("chosen", "part", "used"),
    [("auto", (0, 1), "5"), ("auto", (1, 2), "3.1.1"), ("auto", (0, 4), "3.1.1"),
     ("5", (0, 2), "5"), ("3.1.1", (0, 1), "3.1.1")],
)  # fmt: skip
def test_hub_run_speaks_3_1_1_under_part_unless_told(
    chosen: str, part: tuple[int, int], used: str
) -> None:
    """Issue 16 "Speed": a partitioned receiver needs no shared subscription, and MQTT 3.1.1
    spares paho's per-message properties; a shared group needs 5; a chosen version is kept."""
    from evaluator.hubcli import run_protocol

    assert run_protocol(chosen, part) == used
