"""The scripts a newcomer runs first: ``scripts/demo`` and ``scripts/setup``.

``scripts/setup`` is run for real in a fresh copy of the sources with a new ``.venv``, offline:
the venv sees this test environment's packages (``tests/test_install.py``'s way), so pip builds
and installs the project editable, as on a fresh machine, and finds every dependency installed.
Its output must be the set-up's own lines, not pages of packaging notices; a failure must
still show pip's error and stop it.

``scripts/demo`` is run for real (headless, SDL dummy driver) from two copies of the checkout at
once, as two developers or two worktrees on one machine would: each must bring its own broker,
get its pad online there, and stop pad and broker on Ctrl-C (SIGINT to its process group, what a
terminal sends) leaving no process behind.  The copies share this checkout's virtualenv through
a ``.venv`` of symlinks with the set-up stamp, so ``scripts/setup`` has nothing to install.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from evaluator.config import SCHEMA_VERSION, load_config
from tests.support import port_open, wait_for
from tests.sync.test_mqtt_events import Peer
from tests.test_install import SOURCES, _copy_sources, _fresh_venv

REPO = Path(__file__).resolve().parents[1]
BROKER_LINE = re.compile(r"demo: MQTT broker: mosquitto \(pid (\d+)\) on 127\.0\.0\.1:(\d+),")


def _stamp(pyproject: Path) -> str:
    """The name of ``scripts/setup``'s "installed" stamp for this ``pyproject.toml``."""
    return ".installed-" + hashlib.sha256(pyproject.read_bytes()).hexdigest()[:16]


def _checkout(dest: Path) -> Path:
    """A copy of what ``scripts/demo`` needs, with a ``.venv`` that is this test environment."""
    for name in ("scripts/demo", "scripts/setup", "config/demo.toml", "pyproject.toml"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    venv_bin = dest / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    evaluator = Path(sys.executable).parent / "evaluator"
    assert evaluator.is_file(), f"{evaluator} is missing: run scripts/setup"
    (venv_bin / "python").symlink_to(sys.executable)
    (venv_bin / "evaluator").symlink_to(evaluator)
    (dest / ".venv" / _stamp(dest / "pyproject.toml")).touch()
    return dest


@dataclass
class Demo:
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    tmp: Path
    broker_pid: int = 0
    port: int = 0
    peers: list[Peer] = field(default_factory=list)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def broker_line(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the demo ended ({self.process.returncode}):\n{self.text()}")
        found = BROKER_LINE.search(self.text())
        if found:
            self.broker_pid, self.port = int(found[1]), int(found[2])
        return found is not None


def _start(root: Path) -> Demo:
    tmp = root / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDL_", "PIP_", "VIRTUAL"))}
    env.pop("DISPLAY", None)
    env.update(SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", PYTHONUNBUFFERED="1",
               TMPDIR=str(tmp))  # fmt: skip
    log = root / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [root / "scripts" / "demo"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    return Demo(root, process, log, tmp)


def _session(sid: int) -> list[str]:
    """The processes still in session ``sid``: ``pid command`` each."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:
            found.append(f"{stat.parent.name} {text[text.index('(') : text.rindex(')') + 1]}")
    return found


def _alive(pid: int) -> bool:
    """``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture
def two_demos(tmp_path: Path) -> Iterator[list[Demo]]:
    demos = [_start(_checkout(tmp_path / f"checkout{n}")) for n in (1, 2)]
    yield demos
    for demo in demos:
        for peer in demo.peers:
            peer.close()
        if demo.process.poll() is None:
            os.killpg(demo.process.pid, signal.SIGKILL)
            demo.process.wait(10)
        if demo.broker_pid and _alive(demo.broker_pid):
            os.kill(demo.broker_pid, signal.SIGKILL)


def test_two_demos_each_bring_a_broker_and_ctrl_c_stops_everything(
    two_demos: list[Demo],
) -> None:
    for demo in two_demos:
        wait_for(demo.broker_line, 60, f"{demo.root}: the demo's broker line")
        assert port_open(demo.port)
    assert two_demos[0].port != two_demos[1].port
    for demo in two_demos:
        peer = Peer("127.0.0.1", demo.port, name="test-scripts", base="hcp/v1/demo-0001")
        demo.peers.append(peer)
        wait_for(lambda p=peer: any(s["online"] for s in p.on("status")), 60,
                 f"{demo.root}: the pad's status online on its own broker")  # fmt: skip
    # Both are still online now that both run: neither took the other's session.
    for demo in two_demos:
        assert f"connected to mqtt://127.0.0.1:{demo.port}" in demo.text()
        assert demo.process.poll() is None, demo.text()

    for demo in two_demos:
        started = time.monotonic()
        os.killpg(demo.process.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
        code = demo.process.wait(30)
        text = demo.text()
        assert code == 0, text
        # The pad stopped cleanly: on the terminal's SIGINT or the script's SIGTERM, whichever
        # its handler saw last.
        assert re.search(r"signal (2|15): stopped", text), text
        assert time.monotonic() - started < 30
        assert _session(demo.process.pid) == [], text  # the pad and the script are gone
        wait_for(lambda d=demo: not _alive(d.broker_pid), 10, "the demo's broker to end")
        assert list(demo.tmp.iterdir()) == []  # its broker config and log removed
        # The broker went after the pad: the pad never lost its connection on the way out.
        assert "reconnecting" not in text and "unreachable" not in text, text
        assert "configuration version 1" not in text, text


@pytest.mark.parametrize("after", [0.0, 0.3])
def test_ctrl_c_as_the_pad_starts_stops_the_demo(tmp_path: Path, after: float) -> None:
    """Ctrl-C right after the broker is up, while the pad is still starting (before it has
    its own signal handlers), stops everything too; nothing is lost waiting for a second one."""
    demo = _start(_checkout(tmp_path / "checkout"))
    try:
        wait_for(demo.broker_line, 60, "the demo's broker line")
        time.sleep(after)  # a moment into the pad's start-up; no state is waited for here
        os.killpg(demo.process.pid, signal.SIGINT)
        demo.process.wait(30)
        assert _session(demo.process.pid) == [], demo.text()
        wait_for(lambda: not _alive(demo.broker_pid), 10, "the demo's broker to end")
        assert list(demo.tmp.iterdir()) == []
    finally:
        if demo.process.poll() is None:
            os.killpg(demo.process.pid, signal.SIGKILL)
            demo.process.wait(10)
        if demo.broker_pid and _alive(demo.broker_pid):
            os.kill(demo.broker_pid, signal.SIGKILL)


def test_demo_config_carries_the_current_schema_version(caplog: pytest.LogCaptureFixture) -> None:
    demo = REPO / "config" / "demo.toml"
    with demo.open("rb") as f:
        assert tomllib.load(f)["device"]["schema_version"] == SCHEMA_VERSION
    with caplog.at_level("INFO"):
        config = load_config([demo])
    assert config.device.schema_version == SCHEMA_VERSION
    assert not [r for r in caplog.records if "configuration version" in r.getMessage()]


def _fresh_setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the sources with ``scripts/setup`` and a new ``.venv`` (no pip of its own:
    this environment's pip, setuptools and dependencies through a ``.pth``); the environment to
    run it offline in."""
    src = _copy_sources(tmp_path / "src")
    assert "pyproject.toml" in SOURCES
    (src / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "setup", src / "scripts" / "setup")
    _fresh_venv(src / ".venv")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "VIRTUAL", "PYTHON"))}  # fmt: skip
    # No index and no pip.conf (offline, this machine's settings out of it);
    # PIP_NO_BUILD_ISOLATION=0 is pip's spelling of --no-build-isolation: the build uses this
    # environment's setuptools, which the test extra pins.
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")
    return src, env


def test_setup_of_a_fresh_checkout_prints_its_own_lines_only(tmp_path: Path) -> None:
    src, env = _fresh_setup(tmp_path)
    done = subprocess.run([src / "scripts" / "setup"], cwd=src, env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Before: 98 lines, setuptools' "Package would be ignored" pages for config/voice/zh and
    # en (include-package-data) and its "Editable installation" notice.
    assert output.splitlines() == ["setup: installing Python packages into .venv"], output
    assert (src / ".venv" / _stamp(src / "pyproject.toml")).is_file()
    probe = "import evaluator, sys; print(evaluator.__file__)"
    where = subprocess.run([src / ".venv" / "bin" / "python", "-c", probe], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert Path(where.strip()).is_relative_to(src)  # installed editable, from the copy


def test_setup_that_fails_says_why_and_stops(tmp_path: Path) -> None:
    src, env = _fresh_setup(tmp_path)
    pyproject = src / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    broken = text.replace("dependencies = [\n", 'dependencies = [\n    "no-such-dist-14",\n', 1)
    assert broken != text
    pyproject.write_text(broken, encoding="utf-8")
    done = subprocess.run([src / "scripts" / "setup"], cwd=src, env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode != 0
    assert "ERROR" in done.stderr and "no-such-dist-14" in done.stderr, done.stderr
    assert not list((src / ".venv").glob(".installed-*"))  # the next run tries again
