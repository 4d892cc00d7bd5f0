"""The scripts a newcomer runs first: ``scripts/demo`` and ``scripts/setup``.

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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


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
        assert "signal 2: stopped" in text
        assert time.monotonic() - started < 30
        assert _session(demo.process.pid) == [], text  # the pad and the script are gone
        wait_for(lambda d=demo: not _alive(d.broker_pid), 10, "the demo's broker to end")
        assert list(demo.tmp.iterdir()) == []  # its broker config and log removed
        # The broker went after the pad: the pad never lost its connection on the way out.
        assert "reconnecting" not in text and "unreachable" not in text, text
        assert "configuration version 1" not in text, text


def test_demo_config_carries_the_current_schema_version(caplog: pytest.LogCaptureFixture) -> None:
    demo = REPO / "config" / "demo.toml"
    with demo.open("rb") as f:
        assert tomllib.load(f)["device"]["schema_version"] == SCHEMA_VERSION
    with caplog.at_level("INFO"):
        config = load_config([demo])
    assert config.device.schema_version == SCHEMA_VERSION
    assert not [r for r in caplog.records if "configuration version" in r.getMessage()]
