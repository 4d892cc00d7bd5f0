"""What the guest installs offline, made on the host: the pinned requirements as aarch64 wheels
for CPython 3.11 (cached by the requirements file's hash) and the evaluator's own wheels built
from this checkout: the build under test, a newer build (the upgrade), and a newer build that
never reaches READY (the rollback).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

REQUIREMENTS = REPO / "systemd" / "requirements.txt"
PLATFORMS = ["manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64",
             "manylinux_2_36_aarch64"]


def requirement_wheels(cache: Path) -> Path:
    """A folder of aarch64 wheels for every pin of systemd/requirements.txt."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    out = cache / f"wheels-{digest}"
    if (out / "done").exists():
        return out
    tmp = cache / f"wheels-{digest}.work"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
           "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
           "--abi", "abi3", "--abi", "none", "-d", str(tmp), "-r", str(REQUIREMENTS)]
    for platform in PLATFORMS:
        cmd[6:6] = ["--platform", platform]
    subprocess.run(cmd, check=True)
    (tmp / "done").write_text("\n".join(sorted(p.name for p in tmp.glob("*.whl"))) + "\n")
    tmp.rename(out)
    return out


def _version() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if found is None:
        raise RuntimeError("pyproject.toml has no version")
    return found.group(1)


def _copy_checkout(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in files:
        if not name:
            continue
        src = REPO / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def _wheel(source: Path, out: Path) -> Path:
    before = set(out.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(source)], check=True, capture_output=True)
    made = set(out.glob("*.whl")) - before
    if len(made) != 1:
        raise RuntimeError(f"pip wheel {source} made {sorted(made)}")
    return made.pop()


def build_variant(folder: Path, local: str, edit=None) -> Path:
    """The checkout as a wheel with version ``<version>+<local>``; ``edit(tree)`` changes the
    copy first (a broken build)."""
    tree = folder / f"src-{local}"
    shutil.rmtree(tree, ignore_errors=True)
    _copy_checkout(tree)
    pyproject = tree / "pyproject.toml"
    version = _version()
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace(f'version = "{version}"', f'version = "{version}+{local}"',
                                      1), encoding="utf-8")
    if edit is not None:
        edit(tree)
    out = folder / f"wheel-{local}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wheel = _wheel(tree, out)
    shutil.rmtree(tree, ignore_errors=True)
    return wheel


def never_ready(tree: Path) -> None:
    """A build that starts and never tells systemd READY=1 (as a build whose screen or store
    hangs at start would): the app's READY notification is taken out."""
    app = tree / "evaluator" / "app.py"
    text = app.read_text(encoding="utf-8")
    if text.count('_sd_notify("READY=1")') < 1:
        raise RuntimeError("evaluator/app.py no longer sends READY=1 where the harness expects")
    app.write_text(text.replace('_sd_notify("READY=1")', 'None  # pi-vm: never READY'),
                   encoding="utf-8")
