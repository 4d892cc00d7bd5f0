"""A real, non-editable install: build the wheel, install it into a fresh virtualenv outside the
checkout, and run ``evaluator`` from an empty folder.  The shipped ``config/default.toml`` and
``config/reasons.toml`` must come from the installed package, not from this checkout.

No network: the wheel is built with the setuptools of the test environment (the ``test`` extra
pins one that builds wheels by itself), installed with ``--no-deps --no-index``, and the new venv
sees the already-installed dependencies through a ``.pth`` file.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
#: What a wheel is built from (``pyproject.toml`` lists the packages; config/ is package data).
#: What the wheel is built from (docs/schemas is the package sync.schemas: the published JSON
#: Schemas the city receiver validates with).
SOURCES = ("pyproject.toml", "evaluator", "kiosk", "printer", "sync", "config", "docs/schemas")
SITE = """\
[device]
id = "install-test"

[counter]
port = ""

[mqtt]
enabled = false

[storage]
path = "var/ratings.db"

[screen]
driver = "dummy"
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL"))}
    env.update(
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        SDL_VIDEODRIVER="dummy",
        SDL_AUDIODRIVER="dummy",
        PYGAME_HIDE_SUPPORT_PROMPT="1",
        PYTHONFAULTHANDLER="1",
    )
    return env


def _run(*args: str | Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _copy_sources(dest: Path) -> Path:
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def _fresh_venv(path: Path) -> Path:
    """A venv without pip whose interpreter also sees this test environment's packages (the
    pad's dependencies) after its own site-packages.  Returns its ``bin`` folder."""
    _run(sys.executable, "-m", "venv", "--without-pip", path, cwd=path.parent)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, env=_env(),
    ).stdout.strip()  # fmt: skip
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")
    return path / "bin"


def _pip(venv_bin: Path, *args: str | Path, cwd: Path) -> None:
    _run(sys.executable, "-m", "pip", "--python", venv_bin / "python", "install", "-q",
         "--no-deps", "--no-index", *args, cwd=cwd)  # fmt: skip


@dataclass
class Installed:
    bin: Path
    venv: Path
    workdir: Path
    seconds: float


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    with tempfile.TemporaryDirectory(prefix="evaluator-install-") as name:
        yield _install(Path(name))


def _install(tmp: Path) -> Installed:
    started = time.monotonic()
    src = _copy_sources(tmp / "src")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", tmp / "wheels", src, cwd=tmp)  # fmt: skip
    (wheel,) = (tmp / "wheels").glob("window_evaluator-*.whl")
    venv = tmp / "venv"
    venv_bin = _fresh_venv(venv)
    _pip(venv_bin, wheel, cwd=tmp)
    shutil.rmtree(src)  # nothing of a source tree is left to fall back on
    workdir = tmp / "empty"
    workdir.mkdir()
    return Installed(venv_bin, venv, workdir, time.monotonic() - started)


def test_installed_package_uses_its_own_shipped_files(installed: Installed) -> None:
    probe = (
        "import evaluator.config as c, evaluator.rules.reasons as r\n"
        "print(c.__file__); print(c.default_config_path()); print(c.default_reasons_path())\n"
        "print(len(r.load_reasons(c.default_reasons_path()).reasons))\n"
    )
    out = _run(installed.bin / "python", "-c", probe, cwd=installed.workdir).stdout.split("\n")
    module, default_toml, reasons_toml, count = out[:4]
    for path in (module, default_toml, reasons_toml):
        assert Path(path).is_relative_to(installed.venv), path
        assert not Path(path).is_relative_to(REPO), path
    assert Path(default_toml).name == "default.toml" and Path(default_toml).is_file()
    assert int(count) > 0


def test_installed_config_check(installed: Installed) -> None:
    site = installed.workdir / "site.toml"
    site.write_text(SITE, encoding="utf-8")
    done = _run(installed.bin / "evaluator", "config", "check", "site.toml", cwd=installed.workdir)
    assert done.stdout.startswith("OK: site.toml"), done.stdout
    bad = installed.workdir / "bad.toml"
    bad.write_text('[mqtt]\nhots = "x"\n', encoding="utf-8")
    failed = subprocess.run(
        [installed.bin / "evaluator", "config", "check", "site.toml", "bad.toml"],
        cwd=installed.workdir, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert failed.returncode == 2
    assert "bad.toml:2: mqtt.hots = \"x\": unknown key in [mqtt]; did you mean 'host'?" in (
        failed.stdout
    )


def test_installed_run_starts_and_stops_on_sigterm(installed: Installed) -> None:
    """``run`` starts from an empty folder, tells systemd READY=1, and SIGTERM stops it (0).

    The signal is sent after READY=1 (the pad is in its loop, its start-up log written), the
    state a service manager stops it in."""
    site = installed.workdir / "run.toml"
    site.write_text(SITE, encoding="utf-8")
    notify_path = installed.workdir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        env = {**_env(), "NOTIFY_SOCKET": str(notify_path)}
        with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
            pad = subprocess.Popen(
                [installed.bin / "evaluator", "run", "--config", "run.toml"],
                cwd=installed.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                states = ""
                while "READY=1" not in states.split("\n"):
                    try:
                        states += notify.recv(4096).decode() + "\n"
                    except TimeoutError:
                        break
                if "READY=1" in states.split("\n"):
                    pad.send_signal(signal.SIGTERM)
                try:
                    code = pad.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pad.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
                    code = pad.wait(5)
            finally:
                if pad.poll() is None:
                    pad.kill()
                    pad.wait(5)
            log.seek(0)
            output = log.read()
    assert "READY=1" in states.split("\n"), output
    assert code == 0, output
    assert " running (storage " in output
    assert (installed.workdir / "var" / "ratings.db").is_file()


def test_editable_install_of_a_checkout_reads_its_config_folder(
    tmp_path: Path,
) -> None:
    """``pip install -e .`` (what scripts/setup does) still finds config/ in the checkout."""
    src = _copy_sources(tmp_path / "checkout")
    venv_bin = _fresh_venv(tmp_path / "venv")
    _pip(venv_bin, "--no-build-isolation", "-e", src, cwd=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "site.toml").write_text(SITE, encoding="utf-8")
    _run(venv_bin / "evaluator", "config", "check", "site.toml", cwd=empty)
    probe = "import evaluator.config as c; print(c.default_config_path())"
    shown = _run(venv_bin / "python", "-c", probe, cwd=empty).stdout.strip()
    assert Path(shown) == src / "config" / "default.toml"


def test_checkout_venv_entry_point_works() -> None:
    """The checkout's own ``.venv/bin/evaluator`` (editable) checks the demo config."""
    entry = Path(sys.executable).parent / "evaluator"
    assert entry.is_file(), entry
    done = _run(entry, "config", "check", REPO / "config" / "demo.toml", cwd=REPO)
    assert done.stdout.startswith("OK")


#: Debian's own Python and pygame: what systemd/install.sh runs the pad with on the Pi
#: (python3-pygame: on Bookworm 2.1.2, built against Debian's SDL2, which has KMSDRM).
DEBIAN_PYTHON = Path("/usr/bin/python3")
DEBIAN_PYGAME = Path("/usr/lib/python3/dist-packages/pygame")


def test_the_screen_code_runs_on_debians_pygame(tmp_path: Path) -> None:
    """tests/kiosk, run on Debian's Python with Debian's pygame (not PyPI's, which this test
    environment has): the pad's screen code works with the pygame the Pi gets from apt.

    The venv is made as install.sh makes the pad's (``--system-site-packages`` on
    /usr/bin/python3); the test tools come from this environment through a ``.pth`` file, after
    a folder that holds only Debian's pygame, so its pygame is the one imported."""
    assert DEBIAN_PYGAME.is_dir(), "python3-pygame is not installed (scripts/setup installs it)"
    debian = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert debian == str(sys.version_info[:2]), (
        f"{DEBIAN_PYTHON} is Python {debian}, this test environment {sys.version_info[:2]}: "
        "make .venv with the same minor version (its packages are lent to Debian's Python)"
    )
    _run(DEBIAN_PYTHON, "-m", "venv", "--without-pip", "--system-site-packages", tmp_path / "venv",
         cwd=tmp_path)  # fmt: skip
    python = tmp_path / "venv/bin/python"
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                        cwd=tmp_path).stdout.strip())  # fmt: skip
    only_pygame = tmp_path / "debian-pygame"
    only_pygame.mkdir()
    (only_pygame / "pygame").symlink_to(DEBIAN_PYGAME)
    (purelib / "00-debian-pygame.pth").write_text(f"{only_pygame}\n", encoding="utf-8")
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "10-test-deps.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")

    probe = "import pygame; print(pygame.version.ver); print(pygame.__file__)"
    version, where = _run(python, "-c", probe, cwd=REPO).stdout.split()[:2]
    assert Path(where).resolve().is_relative_to(DEBIAN_PYGAME.resolve()), where
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pin = next(Requirement(r) for r in project["dependencies"] if r.startswith("pygame"))
    assert pin.specifier.contains(version), f"Debian's pygame {version} is outside {pin}"

    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
         tmp_path / "basetemp", "tests/kiosk"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed in [\d.]+s( \(.*\))?", summary), summary
    assert "skipped" not in summary
