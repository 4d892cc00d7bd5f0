"""systemd/evaluator-hub.service passes ``systemd-analyze verify`` as installed, and runs what
the CLI offers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from evaluator.cli import build_parser
from tests.conftest import require_binary

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "evaluator-hub.service"


def test_the_unit_verifies_as_installed(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    system = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                  if p.is_dir())  # fmt: skip
    shutil.copytree(system, tmp_path / "usr/lib/systemd/system", symlinks=True)
    exe = tmp_path / "opt/evaluator-hub/venv/bin/evaluator"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / "etc/systemd/system/evaluator-hub.service"
    unit.parent.mkdir(parents=True)
    shutil.copy(UNIT, unit)
    done = subprocess.run(
        [analyze, "verify", f"--root={tmp_path}", "--man=no", f"/{unit.relative_to(tmp_path)}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "evaluator-hub.service" not in done.stderr, done.stderr


def test_the_unit_runs_the_hub_with_its_state_directory() -> None:
    text = UNIT.read_text()
    assert (
        "ExecStart=/opt/evaluator-hub/venv/bin/evaluator hub run --broker ${HUB_BROKER} $HUB_ARGS"
        in text
    )
    assert "StateDirectory=evaluator-hub" in text and "Type=notify" in text
    args = build_parser().parse_args(["hub", "run", "--broker", "mqtt://h:1"])
    assert args.db == "sqlite:////var/lib/evaluator-hub/hub.db" or args.db.startswith(
        ("sqlite", "postgres")
    )
