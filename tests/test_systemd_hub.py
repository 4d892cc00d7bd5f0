"""``systemd/install.sh --hub``: the city receiver installed into a temporary tree (``--root``),
as tests/test_systemd.py installs the pad; the unit it installs runs the venv it builds, as the
user it makes, with the environment file it writes, and verifies in that tree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_systemd import _tool, snapshot, unit_settings

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "systemd" / "install.sh"
UNIT = "etc/systemd/system/evaluator-hub.service"
FILES = {UNIT: 0o644, "etc/evaluator/hub.env": 0o600, "usr/share/doc/evaluator/hub.md": 0o644}
STEPS = ("system (the city receiver)", "Debian packages", "user evaluator-hub",
         "directories and files", "build /opt/evaluator-hub/venv", "systemd")  # fmt: skip


def install(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", str(INSTALL), "--hub", *map(str, args)], capture_output=True, text=True,
        timeout=60, check=False, env={**os.environ, "LC_ALL": "C.UTF-8"},
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, f"install.sh --hub {args}: {done.returncode}\n{done.stderr}"
        assert done.stderr == "", done.stderr
    return done


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("hub") / "root"
    yield root, install("--root", root).stdout


def test_the_receiver_installs_what_it_claims(tree: tuple[Path, str]) -> None:
    root, out = tree
    assert [line[3:].split(" ", 1)[1] for line in out.splitlines() if line.startswith("== ")] == [
        *STEPS
    ]
    for path, mode in FILES.items():
        assert (root / path).is_file() and (root / path).stat().st_mode & 0o777 == mode, path
    assert not (root / "etc/systemd/system/evaluator.service").exists()  # not the pad
    machine = [line.strip() for line in out.splitlines() if "would run (--root" in line]
    useradd = next(m for m in machine if "useradd" in m)
    venv = next(m for m in machine if " -m venv " in m)
    # the unit and the installer agree: its user, its venv, its environment file
    unit = unit_settings((root / UNIT).read_text())
    user = unit["Service.User"][0]
    assert useradd.endswith(f" {user}") and unit["Service.Group"] == [user]
    exec_start = unit["Service.ExecStart"][0]
    assert venv.endswith(exec_start.split("/bin/evaluator")[0])
    assert "/" + "etc/evaluator/hub.env" in unit["Service.EnvironmentFile"][0]
    assert "$HUB_ARGS" in exec_start and "--broker ${HUB_BROKER}" in exec_start
    assert unit["Service.Type"] == ["notify"] and unit["Service.WatchdogSec"] == ["60s"]
    assert "DynamicUser" not in " ".join(unit)
    assert any("pip install -r" in m and "requirements.txt" in m for m in machine)
    assert any("systemctl enable evaluator-hub.service" in m for m in machine)
    assert "chown root:root /etc/evaluator/hub.env" in out
    env = (root / "etc/evaluator/hub.env").read_text()
    for key in ("EVALUATOR_HUB_DB=", "HUB_BROKER=", "HUB_ARGS="):
        assert re.search(f"^{key}", env, re.MULTILINE), key


def test_a_second_run_changes_nothing_and_keeps_the_operators_env(
    tree: tuple[Path, str], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    shutil.copytree(tree[0], root, symlinks=True)
    env = root / "etc/evaluator/hub.env"
    env.write_text("EVALUATOR_HUB_DB=postgresql://hub:secret@db/hub\nHUB_ARGS=--part 1/2\n")
    env.chmod(0o644)  # an operator's editor: the password readable by all
    fixed = install("--root", root).stdout
    assert "chmod 600: /etc/evaluator/hub.env" in fixed and env.stat().st_mode & 0o777 == 0o600
    assert env.read_text().startswith("EVALUATOR_HUB_DB=postgresql://hub:secret@db/hub")
    before = snapshot(root)
    again = install("--root", root)
    assert "install: done into" in again.stdout and "nothing changed" in again.stdout
    assert snapshot(root) == before


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    done = install("--dry-run", "--root", fresh)
    assert "would install: /etc/systemd/system/evaluator-hub.service" in done.stdout
    assert "dry run into" in done.stdout and not fresh.exists()


def test_the_installed_unit_verifies_in_the_tree(tree: tuple[Path, str], tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(tree[0], root, symlinks=True)
    system = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                  if (p / "sysinit.target").exists())  # fmt: skip
    shutil.copytree(system, root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    exe = root / "opt/evaluator-hub/venv/bin/evaluator"  # the venv the installer builds
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_tool("systemd-analyze"), "verify", f"--root={root}", "--man=no", f"/{UNIT}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    done = verify()
    assert done.returncode == 0 and "evaluator-hub.service" not in done.stderr, done.stderr
    exe.unlink()  # the same check fails when the unit runs what the installer does not build
    assert verify().returncode != 0


def test_the_hub_install_script_is_shellcheck_clean() -> None:
    for script in (INSTALL, INSTALL.with_name("install-hub.sh")):
        done = subprocess.run([_tool("shellcheck"), "-x", str(script)], capture_output=True,
                              text=True, timeout=60, check=False, cwd=REPO)  # fmt: skip
        assert done.returncode == 0, done.stdout
