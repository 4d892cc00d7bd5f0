"""A witness file that is huge or hostile (art. 40, issue 15): the real ``evaluator hub witness``
reads it in bounded memory and bounded output, whatever its shape — one endless line, a million
bad lines, one genuine head repeated — and still keeps the genuine head it holds, with every
refused line counted.  Memory is the child's peak RSS (ru_maxrss), measured against the same
command on a one-line file: work counted, not timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.rules.witness import make_head
from sync.hub.db import open_db
from tests.sync.hub.helpers import chain, make_key

REPO = Path(__file__).resolve().parents[3]
DEVICE = "440500-hall1-w15"
#: The most the peak RSS may grow over the one-line run, in KiB (the files are 50–70 MB).
SLACK_KIB = 24 * 1024
#: What the wrapper prints: the peak RSS of its child, in KiB.
_WRAP = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)\n"
)


def _run(db: str, file: Path) -> tuple[int, int, str, str]:
    """``(peak KiB, exit code, stdout, stderr)`` of ``evaluator hub witness FILE``."""
    cmd = [sys.executable, "-m", "evaluator", "hub", "witness", str(file), "--db", db]
    done = subprocess.run([sys.executable, "-c", _WRAP, *cmd], cwd=REPO, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    *out, last = done.stdout.strip().splitlines()
    _, peak, rc = last.split()
    return int(peak), int(rc), "\n".join(out), done.stderr


def _hostile(kind: str, head: bytes) -> bytes:
    if kind == "endless line":  # 64 MB without a newline, then the genuine head
        return b"[" * 8 + b"a" * (64 << 20) + b"\n" + head + b"\n"
    if kind == "a million bad lines":
        return b"x\n" * 1_000_000 + head + b"\n"
    return (head + b"\n") * 200_000  # one genuine head, 200 000 times (~70 MB)


@pytest.mark.parametrize("kind", ["endless line", "a million bad lines", "one head repeated"])
def test_a_huge_or_hostile_witness_file_is_read_in_bounded_memory(
    tmp_path: Path, kind: str
) -> None:
    key = make_key(tmp_path)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = open_db(url)
    db.register(DEVICE, key.public.text)
    db.close()
    (record,) = chain(key, DEVICE, 1)
    head = json.dumps(make_head(key, device_id=DEVICE, epoch="", seq=1, hash_=record["hash"]))
    small = tmp_path / "small.jsonl"
    small.write_bytes(head.encode() + b"\n")
    base, rc, out, _ = _run(url, small)
    assert rc == 0 and "1 head(s) kept" in out
    big = tmp_path / "big.jsonl"
    big.write_bytes(_hostile(kind, head.encode()))
    peak, rc, out, err = _run(url, big)
    big.unlink()
    refused = {"endless line": 1, "a million bad lines": 1_000_000}.get(kind, 0)
    assert f"0 head(s) kept, 1 already kept, {refused} refused" in out, out
    assert rc == (1 if refused else 0)
    assert len(err.splitlines()) <= 101, f"{len(err.splitlines())} lines on stderr"
    assert peak - base <= SLACK_KIB, f"peak RSS {peak} KiB against {base} KiB for one line"
