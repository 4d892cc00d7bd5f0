"""A stolen pad's words reach the auditor's terminal (issue 15): a loss statement's ``problem``
and ``epoch`` are the pad's text, kept in the finding's detail and key and printed by the real
``evaluator hub flags``.  A control character there (an ANSI escape that erases the line, a
carriage return, a bidi override) must not hide or rewrite a finding on the auditor's screen:
each is printed escaped, and the finding stays readable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.rules.loss import make_statement
from sync.hub.db import open_db
from sync.hub.ingest import Ingest
from tests.sync.hub.helpers import chain, make_key, payload, topic

REPO = Path(__file__).resolve().parents[3]
DEVICE = "440500-hall1-w16"
#: What a hostile pad may write: erase the line, return to its start, clear the screen, a
#: right-to-left override, a NUL-free C1 control, a line separator.
HOSTILE = ["\x1b[2K\r", "\r", "\x1b[2J\x1b[H", "\u202e", "\x9b2K", "\u2028", "\x08" * 20]


@pytest.mark.parametrize("field", ["problem", "epoch"])
def test_a_pads_words_in_a_finding_cannot_rewrite_the_auditors_screen(
    tmp_path: Path, field: str
) -> None:
    key = make_key(tmp_path)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = open_db(url)
    db.register(DEVICE, key.public.text)
    records = chain(key, DEVICE, len(HOSTILE))
    sent = []
    for n, (rec, bad) in enumerate(zip(records, HOSTILE, strict=True), start=1):
        words = {"problem": "p", "epoch": ""}
        words[field] = f"{bad}all is well {n}"
        sent.append(make_statement(
            id=rec["id"], seq=n, device_id=DEVICE, prev_hash=rec["prev_hash"],
            lost_hash=rec["hash"], problem=words["problem"], epoch=words["epoch"],
            stated_at="2026-05-29T04:26:47.400+08:00", clock_synced=True, damaged="",
            signer=key,
        ))  # fmt: skip
    result = Ingest(db).handle_batch([(topic(DEVICE), payload(s)) for s in sent])
    db.close()
    if field == "epoch":  # an epoch is an id, never words: refused by the schema, never a key
        assert result.stored == 0 and len(result.dead) == len(HOSTILE)
        assert all("epoch" in d.reason for d in result.dead), [d.reason for d in result.dead]
        return
    assert result.stored == len(HOSTILE), [d.reason for d in result.dead]
    listed = subprocess.run(
        [sys.executable, "-m", "evaluator", "hub", "flags", "--db", url],
        cwd=REPO, capture_output=True, timeout=60,
    )  # fmt: skip
    text = listed.stdout.decode("utf-8")  # bytes: a carriage return is not taken for a newline
    assert f"{len(HOSTILE)} finding(s)" in text
    controls = sorted({f"U+{ord(c):04X}" for c in text if c != "\n" and (
        ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029\u202a\u202b\u202c\u202d"
        "\u202e\u2066\u2067\u2068\u2069")})  # fmt: skip
    assert controls == [], f"printed raw: {controls}"
    assert len(text.splitlines()) == len(HOSTILE) + 1
    for n in range(1, len(HOSTILE) + 1):
        assert f"all is well {n}" in text
