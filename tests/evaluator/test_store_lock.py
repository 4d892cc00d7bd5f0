"""One pad, one store (issue 14), with real ``evaluator run`` processes.

Issue 14 saw two pads on one store both accepted: the second closed the first one's open case as
``restart`` and the city sent a false SMS follow-up.  Here a first pad (``config/demo.toml`` with
an override: the counter on a socat pty, MQTT off, the SDL ``dummy`` driver, ready at
``READY=1`` on a ``NOTIFY_SOCKET`` as under systemd) shows a case; a second pad on the same
store, spelled in every way a path can be, must stop at once (exit 2) naming the store and the
first pad's pid, and leave the case open.  The read-only tools and ``selftest`` run beside the
pad; a SIGKILLed pad leaves no lock behind (systemd's ``Restart=always`` start succeeds).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator import selftest
from sync.store import Store
from sync.storelock import StoreLocked, held_here
from tests.campaigns.sigkill import CounterSide
from tests.evaluator.apps import START_BODY, demo_app
from tests.evaluator.test_selftest import run_without_write_rights
from tests.support import PtyPair
from tests.sync.test_store_lock import holder

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo.toml"
DEVICE = "lock-0001"
#: Seconds a pad may take to send READY=1, and a refused pad to exit, on a loaded machine.
PATIENCE = 60


def override(path: Path, store: str, *, port: str = "dummy://") -> Path:
    """``path``: the override of ``config/demo.toml`` with ``[storage] path = store`` (a relative
    path is taken relative to ``path``'s folder) and the counter on ``port``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[device]\nid = "{DEVICE}"\n[counter]\nport = {json.dumps(port)}\n'
        f"[mqtt]\nenabled = false\n[storage]\npath = {json.dumps(store)}\n"
        '[screen]\ndriver = "dummy"\n[session]\ntimeout = "600s"\n',
        encoding="utf-8",
    )
    return path


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out.pop("NOTIFY_SOCKET", None)
    out.update(SDL_VIDEODRIVER="dummy", PYTHONUNBUFFERED="1")
    return out


def evaluator(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "evaluator", *map(str, args)]


class Pad:
    """``evaluator run`` as systemd starts it: ready when it sent ``READY=1``."""

    def __init__(self, config: Path, log: Path) -> None:
        self._dir = tempfile.mkdtemp(prefix="notify-")  # short: a socket path has 108 bytes
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(f"{self._dir}/n")
        self._sock.settimeout(0.5)
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            evaluator("run", "--config", DEMO, "--config", config),
            cwd=REPO, env={**env(), "NOTIFY_SOCKET": f"{self._dir}/n"},
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.pid = self.process.pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + PATIENCE
        while True:
            with contextlib.suppress(TimeoutError):
                if b"READY=1" in self._sock.recv(4096).split(b"\n"):
                    return
            assert self.process.poll() is None, f"the pad ended:\n{self.output()}"
            assert time.monotonic() < deadline, f"no READY=1:\n{self.output()}"

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._out.close()
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(f"{self._dir}/n")
            os.rmdir(self._dir)
        return int(self.process.returncode)


def open_cases(store: Path) -> list[tuple[str, str | None, str | None]]:
    """(serials, outcome, end cause) of every presentation, read as the audit reads: read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as conn:
        return conn.execute(
            "SELECT serials, outcome, end_cause FROM presentations ORDER BY seq"
        ).fetchall()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pad, Path, Path]]:
    """A pad on ``<tmp>/var/ratings.db`` (its config says ``var/ratings.db``) showing a case
    to a citizen; yields the pad, the store and the tmp folder."""
    tmp = tmp_path_factory.mktemp("lock")
    pty = PtyPair(tmp, 1)
    store = tmp / "var" / "ratings.db"
    pad = Pad(override(tmp / "a.toml", "var/ratings.db", port=str(pty.device)), tmp / "a.log")
    counter: CounterSide | None = None
    try:
        pad.wait_ready()
        counter = CounterSide(pty.counter)
        assert counter.wait_ready(PATIENCE), pad.output()
        signed = counter.request({"type": "clerk.sign_in", "clerk": START_BODY["clerk"]})
        started = counter.request({"type": "evaluation.start", **START_BODY})
        assert signed and signed["ok"] and started and started["ok"], (signed, started)
        assert open_cases(store) == [('["44050020261126000123"]', None, None)]
        yield pad, store, tmp
    finally:
        if counter is not None:
            counter.close()
        pad.stop()
        pty.stop()


def spelled(tmp: Path, spelling: str) -> Path:
    """A config for a second pad naming the first pad's store ``tmp/var/ratings.db`` so."""
    real = tmp / "var" / "ratings.db"
    with contextlib.suppress(FileExistsError):
        (tmp / "linkdir").symlink_to(tmp / "var", target_is_directory=True)
    with contextlib.suppress(FileExistsError):
        (tmp / "link.db").symlink_to(real)
    where = {
        "same": (tmp / "same.toml", str(real)),
        "relative_from_elsewhere": (tmp / "etc" / "conf.d" / "b.toml", "../../var/ratings.db"),
        "dot_relative": (tmp / "dot.toml", "./var/ratings.db"),
        "dot_dot": (tmp / "dotdot.toml", f"{tmp}/var/../var/ratings.db"),
        "double_slash": (tmp / "slash.toml", f"{tmp}//var//ratings.db"),
        "symlinked_dir": (tmp / "dir.toml", str(tmp / "linkdir" / "ratings.db")),
        "symlinked_file": (tmp / "file.toml", str(tmp / "link.db")),
    }
    config, store = where[spelling]
    return override(config, store)


SPELLINGS = ["same", "relative_from_elsewhere", "dot_relative", "dot_dot", "double_slash",
             "symlinked_dir", "symlinked_file"]  # fmt: skip


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_second_pad_on_the_same_store_stops_at_once_and_closes_nothing(
    running: tuple[Pad, Path, Path], spelling: str
) -> None:
    pad, store, tmp = running
    second = subprocess.run(
        evaluator("run", "--config", DEMO, "--config", spelled(tmp, spelling)),
        cwd=REPO, env=env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=PATIENCE,
    )  # fmt: skip
    out = second.stdout + second.stderr
    assert second.returncode == 2, out
    assert "CRITICAL" in out and f"pid {pad.pid}" in out and str(store) in out, out
    assert "systemctl stop evaluator" in out
    assert " running (storage " not in out  # it never got as far as running
    # The first pad's case is still open (issue 14: the second closed it as ``restart``) and
    # the first pad runs on.
    assert open_cases(store) == [('["44050020261126000123"]', None, None)]
    assert pad.process.poll() is None


def test_the_read_only_tools_and_selftest_run_beside_the_pad(
    running: tuple[Pad, Path, Path],
) -> None:
    pad, store, tmp = running
    config = spelled(tmp, "same")
    for command in ("ratings", "stats"):
        done = subprocess.run(evaluator(command, "--config", DEMO, "--config", config),
                              cwd=REPO, env=env(), capture_output=True, text=True,
                              timeout=PATIENCE)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    # with the pad's config: its key checks the signed events (a clerk's sign-in is one)
    verify = subprocess.run(evaluator("verify", "--config", DEMO, "--config", config),
                            cwd=REPO, env=env(), capture_output=True, text=True,
                            timeout=PATIENCE)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK: hash chain intact over 0 rating(s)" in verify.stdout
    selftest = subprocess.run(
        evaluator("selftest", "--config", DEMO, "--config", config, "--only", "storage"),
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr
    line = next(x for x in selftest.stdout.splitlines() if x.startswith("PASS  storage"))
    assert f"the pad is running (pid {pad.pid}): storage probe done read-only" in line
    assert f"{store} read back intact (0 ratings, 0 awaiting the city)" in line
    assert open_cases(store) == [('["44050020261126000123"]', None, None)]


def test_a_hard_link_to_the_store_is_refused_as_a_storage_fault(
    running: tuple[Pad, Path, Path],
) -> None:
    """Another name of the same file is another lock file: the second pad gets its lock, and
    is then refused by the store (SQLite would keep another -wal by that name): it runs with a
    storage fault, closes and writes nothing."""
    pad, store, tmp = running
    other = tmp / "elsewhere" / "copy.db"
    other.parent.mkdir(exist_ok=True)
    os.link(store, other)
    second = Pad(override(tmp / "hard.toml", str(other)), tmp / "hard.log")
    try:
        second.wait_ready()  # running, refusing ratings: the screen and the counter say why
        out = second.output()
        assert f"storage fault: the rating store {other} has 2 names (hard links)" in out, out
    finally:
        second.stop()
        other.unlink()
    assert open_cases(store) == [('["44050020261126000123"]', None, None)]
    assert pad.process.poll() is None


def test_a_killed_pad_leaves_no_lock_and_the_next_start_is_ready(tmp_path: Path) -> None:
    """What systemd does after a crash (``Restart=always``): the next start.  The lock died
    with the killed pad: refused while it ran, the next pad is ready at once after SIGKILL and
    closes the killed pad's open case as it should (``restart``)."""
    pty = PtyPair(tmp_path, 2)
    config = override(tmp_path / "a.toml", "var/ratings.db", port=str(pty.device))
    store = tmp_path / "var" / "ratings.db"
    first = Pad(config, tmp_path / "first.log")
    counter: CounterSide | None = None
    try:
        first.wait_ready()
        counter = CounterSide(pty.counter)
        assert counter.wait_ready(PATIENCE), first.output()
        assert counter.request({"type": "clerk.sign_in", "clerk": START_BODY["clerk"]})
        assert counter.request({"type": "evaluation.start", **START_BODY})
        refused = subprocess.run(
            evaluator("run", "--config", DEMO, "--config", config), cwd=REPO, env=env(),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PATIENCE,
        )  # fmt: skip
        assert refused.returncode == 2 and f"pid {first.pid}" in refused.stderr
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(20) == -signal.SIGKILL
        counter.close()
        counter = None
        second = Pad(config, tmp_path / "second.log")
        try:
            second.wait_ready()
            assert open_cases(store) == [('["44050020261126000123"]', "not_rated", "restart")]
        finally:
            assert second.stop() == 0, second.output()
    finally:
        if counter is not None:
            counter.close()
        first.stop()
        pty.stop()


# -- in process: the App, selftest's storage check ---------------------------------------------


def test_an_app_on_a_store_another_process_writes_is_refused_not_started_faulted(
    tmp_path: Path,
) -> None:
    """The App's first open lets the refusal through (a later reopen would be a storage fault):
    an App built beside another writer raises, and the writer's open case stays open."""
    store = tmp_path / "r.db"
    with holder(store) as proc:
        with pytest.raises(StoreLocked) as refused:
            demo_app(tmp_path, DEVICE)
        assert refused.value.pid == proc.pid
        assert not held_here(store)
        reader = Store.open_read_only(store)
        try:
            assert [p["id"] for p in reader.unclosed_presentations()] == ["p-open"]
        finally:
            reader.close()


def test_selftest_with_the_pad_stopped_commits_a_probe_under_the_pad_s_lock(
    tmp_path: Path,
) -> None:
    store = tmp_path / "var" / "ratings.db"
    Store(store, device_id=DEVICE).close()
    config = override(tmp_path / "a.toml", "var/ratings.db")
    results, code = selftest.run([DEMO, config], only=["storage"])
    line = {r.name: r for r in results}["storage"]
    assert (code, line.status) == (0, "PASS"), line
    assert line.detail.startswith(
        f"{store}: opened for writing (the pad is not running) and committed a probe "
        "(0 ratings, 0 awaiting the city); "
    ), line.detail
    reader = Store.open_read_only(store)
    try:
        assert reader.read_meta("last_probe") is not None  # written: the store takes writes
    finally:
        reader.close()
    assert not held_here(store)  # given back: the pad can start


def test_selftest_fails_a_store_file_the_pad_s_user_cannot_write(tmp_path: Path) -> None:
    """A folder that takes a probe file but a store file that refuses writes (left read-only,
    or owned by root after a pad was run with sudo): the probe file alone passed it."""
    store = tmp_path / "var" / "ratings.db"
    Store(store, device_id=DEVICE).close()
    config = override(tmp_path / "a.toml", "var/ratings.db")
    store.chmod(0o444)
    try:
        result = run_without_write_rights(
            ["selftest", "--config", str(DEMO), "--config", str(config), "--only", "storage"]
        )
    finally:
        store.chmod(0o644)
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "storage" in x)
    assert line.startswith("FAIL  storage")
    assert f"the rating store {store} cannot be written" in line
    assert "— fix: " in line and "belong to the pad's user" in line
