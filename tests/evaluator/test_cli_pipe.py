"""Every command's output to a closed pipe ends quietly (issue 14: ``evaluator hub figures --json |
head`` ended in a BrokenPipeError traceback).  Caught once in ``evaluator.cli.main``; here on a
real pipe whose reading end is closed before the command writes, with the installed
``evaluator`` in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.cli import EXIT_PIPE_CLOSED
from tests.support import REPO

EVALUATOR = Path(sys.executable).with_name("evaluator")


def closed_pipe_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte (`| head` that has had enough)
    try:
        return subprocess.run([str(EVALUATOR), *args], stdout=write, stderr=subprocess.PIPE,
                              cwd=cwd, timeout=60, check=False,
                              env={**os.environ, "EVALUATOR_CONFIG_DIR": ""})  # fmt: skip
    finally:
        os.close(write)


COMMANDS = {
    "hub-figures-json": ["hub", "figures", "--json", "--db", "{tmp}/hub.db"],
    "hub-figures": ["hub", "figures", "--db", "{tmp}/hub.db"],
    "hub-followups": ["hub", "followups", "--json", "--db", "{tmp}/hub.db"],
    "config-reference": ["config", "reference"],
    "config-show": ["config", "show", "--config", str(REPO / "config" / "demo.toml")],
    "config-check": ["config", "check", str(REPO / "config" / "demo.toml")],
    "tls-ca": ["tls", "ca", "--out", "{tmp}/ca"],
    "provision": ["provision", str(REPO / "config" / "fleet.example.csv"), "--out", "{tmp}/out"],
}


@pytest.mark.parametrize("args", COMMANDS.values(), ids=COMMANDS.keys())
def test_output_to_a_closed_pipe_ends_quietly(tmp_path: Path, args: list[str]) -> None:
    done = closed_pipe_run([a.replace("{tmp}", str(tmp_path)) for a in args], tmp_path)
    err = done.stderr.decode(errors="replace")
    for noise in ("Traceback", "BrokenPipe", "Exception ignored", "Broken pipe"):
        assert noise not in err, err  # (a log line of the command itself may stand)
    assert done.returncode == EXIT_PIPE_CLOSED


def test_the_work_before_the_output_is_done(tmp_path: Path) -> None:
    """Only the printing is cut: what the command did before it stands (the CA is whole)."""
    done = closed_pipe_run(["tls", "ca", "--out", str(tmp_path / "ca")], tmp_path)
    assert done.returncode == EXIT_PIPE_CLOSED
    assert {p.name for p in (tmp_path / "ca").iterdir()} >= {"ca.crt", "ca.key", "crl.pem"}


def test_a_command_started_with_stdout_closed_keeps_its_exit_and_message(tmp_path: Path) -> None:
    """`evaluator … >&-` (a daemon's child, a cron line): Python has no sys.stdout; main's final
    flush crashed with an AttributeError traceback over the command's own error, exit 1 for 2."""
    done = subprocess.run([str(EVALUATOR), "tls", "revoke", "pad-9", "--ca", str(tmp_path)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
                          timeout=60, check=False, preexec_fn=lambda: os.close(1),
                          env={**os.environ, "EVALUATOR_CONFIG_DIR": ""})  # fmt: skip
    err = done.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert err.startswith("evaluator tls revoke: ") and done.returncode == 2
