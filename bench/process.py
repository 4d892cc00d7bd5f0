"""The pad as a process (issue 6): ``python -m evaluator run`` with a headless config (SDL
``dummy`` driver at 1280×800, ``[counter] port = "dummy://"``, ``[mqtt]`` disabled, the store in
the run's temporary directory), each figure beside a reference process measured in the same run:

- start → ready: from spawning the pad until it sends ``READY=1`` on a ``NOTIFY_SOCKET`` given
  here (as systemd would), against spawning ``python -c "import pygame"`` until it exits;
  interleaved, one of each per round.  Also, for information, the pad as fitted at a window
  (:func:`write_fitted_config`: the counter on pyserial, five level buttons on gpiozero's
  ``MockFactory``, MQTT on) in the same rounds.  Before the rounds the project's modules are
  byte-compiled (:func:`compile_project`), as installing a wheel does: pygame's modules were
  compiled when pip installed it, and an editable checkout run with ``PYTHONDONTWRITEBYTECODE``
  (or by a user who cannot write ``__pycache__``) would otherwise compile the pad's ~50 ms of
  source at every start, which the reference never pays;
- idle CPU: user + system time (``/proc/<pid>/stat``) of the idle pad per window of seconds,
  against a bare pygame loop (``bench/bare_loop.py``) blocking the same way, both measured over
  the same windows;
- RSS: ``VmRSS`` of the idle pad at the end of each window, beside the bare loop's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

WIDTH, HEIGHT = 1280, 800
#: Bounds: rounds of start → ready, and seconds for them all.
N_START, START_SECONDS = 12, 40.0
#: Idle windows: how many, how long each, and the settling time before the first.
N_IDLE, IDLE_WINDOW, IDLE_SETTLE = 5, 8.0, 2.0
READY_TIMEOUT = 20.0

TICKS = os.sysconf("SC_CLK_TCK")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("NOTIFY_SOCKET", None)
    env["SDL_VIDEODRIVER"] = "dummy"
    env["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
    env.update(extra or {})
    return env


def compile_project(repo: Path) -> None:
    """Byte-compile the project's packages into their ``__pycache__`` (as ``pip install`` of
    the wheel does), so the pad loads bytecode as the reference's pygame does."""
    packages = [str(repo / name) for name in ("evaluator", "kiosk", "sync", "printer")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *packages],
        cwd=repo,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        check=True,
    )


def write_config(tmp: Path) -> Path:
    site = tmp / "process.toml"
    site.write_text(
        '[device]\nid = "bench-process"\n'
        '[counter]\nport = "dummy://"\n'
        "[mqtt]\nenabled = false\n"
        f"[storage]\npath = {json.dumps(str(tmp / 'process.db'))}\n"
        f'[screen]\nwidth = {WIDTH}\nheight = {HEIGHT}\ndriver = "dummy"\n',
        encoding="utf-8",
    )
    return site


#: The level buttons' BCM pins in the fitted config (as ``bench.frames``).
BUTTON_PINS = {"very_satisfied": 17, "satisfied": 27, "basically_satisfied": 22,
               "dissatisfied": 23, "very_dissatisfied": 24}  # fmt: skip


def write_fitted_config(tmp: Path) -> Path:
    """The pad as fitted at a window, still headless: the counter link on pyserial (its
    ``loop://`` URL instead of a device), five level buttons (gpiozero, ``MockFactory`` pins
    instead of a Pi's), MQTT on (a local port where no broker listens: the worker starts after
    READY and keeps retrying)."""
    with socket.socket() as probe:  # a free port, so no broker answers
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pins = "\n".join(f"{level} = {pin}" for level, pin in BUTTON_PINS.items())
    site = tmp / "process-fitted.toml"
    site.write_text(
        '[device]\nid = "bench-fitted"\n'
        '[counter]\nport = "loop://"\n'
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        f"[storage]\npath = {json.dumps(str(tmp / 'fitted.db'))}\n"
        f'[buttons]\n{pins}\npin_factory = "mock"\n'
        f'[screen]\nwidth = {WIDTH}\nheight = {HEIGHT}\ndriver = "dummy"\n',
        encoding="utf-8",
    )
    return site


class Pad:
    """``python -m evaluator run`` spawned with a NOTIFY_SOCKET; :attr:`ready_after` is the
    seconds from spawn to ``READY=1``."""

    def __init__(self, tmp: Path, repo: Path, site: Path, name: str) -> None:
        self.sock_path = tmp / f"notify-{name}.sock"
        self.sock_path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.sock_path))
        self.log_path = tmp / f"pad-{name}.log"
        self.log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "evaluator", "run"]
        cmd += ["--config", str(repo / "config" / "demo.toml"), "--config", str(site)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            cwd=repo,
            env=child_env({"NOTIFY_SOCKET": str(self.sock_path)}),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = t0 + READY_TIMEOUT
        while True:
            left = deadline - time.perf_counter()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"the pad sent no READY=1 (exit {self.proc.returncode}):\n{tail}"
                )
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            if b"READY=1" in data.split(b"\n"):
                self.ready_after = time.perf_counter() - t0
                return

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        self.sock_path.unlink(missing_ok=True)
        self.log.close()


def import_pygame(repo: Path) -> float:
    """Seconds from spawning ``python -c "import pygame"`` until it exits."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pygame"], cwd=repo, env=child_env(), check=True)
    return time.perf_counter() - t0


def bench_start(
    tmp: Path, repo: Path, site: Path, fitted: Path
) -> tuple[list[float], list[float], list[float]]:
    """Seconds to READY=1 of the pad (``site``) and of the fitted pad (``fitted``), and of the
    reference, in rounds of one each (the order turning from round to round)."""
    compile_project(repo)
    times: dict[str, list[float]] = {"pad": [], "fitted": [], "ref": []}
    for name, config in (("warm", site), ("warm-fitted", fitted)):
        Pad(tmp, repo, config, name).stop()  # creates the store, warms the page cache; not kept
    import_pygame(repo)
    kinds = ("pad", "ref", "fitted")
    deadline = time.monotonic() + START_SECONDS
    for r in range(N_START):
        if time.monotonic() > deadline:
            break
        for which in kinds[r % 3 :] + kinds[: r % 3]:
            if which == "ref":
                times["ref"].append(import_pygame(repo))
            else:
                config = site if which == "pad" else fitted
                pad = Pad(tmp, repo, config, f"{which}{r}")
                times[which].append(pad.ready_after)
                pad.stop()
    return times["pad"], times["ref"], times["fitted"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of proc(5)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def bench_idle(tmp: Path, repo: Path, site: Path) -> dict[str, tuple[list[float], list[float]]]:
    """CPU % of one core per window, and RSS MiB at each window's end: (pad, bare loop)."""
    bare = subprocess.Popen(
        [sys.executable, str(repo / "bench" / "bare_loop.py"), str(WIDTH), str(HEIGHT)],
        cwd=repo,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    pad = None
    try:
        assert bare.stdout is not None
        if bare.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare pygame loop did not start")
        pad = Pad(tmp, repo, site, "idle")
        time.sleep(IDLE_SETTLE)
        cpu: tuple[list[float], list[float]] = ([], [])
        rss: tuple[list[float], list[float]] = ([], [])
        pids = (pad.proc.pid, bare.pid)
        for _ in range(N_IDLE):
            w0 = time.monotonic()
            c0 = [cpu_seconds(p) for p in pids]
            time.sleep(IDLE_WINDOW)
            c1 = [cpu_seconds(p) for p in pids]
            wall = time.monotonic() - w0
            for k, pid in enumerate(pids):
                cpu[k].append(100 * (c1[k] - c0[k]) / wall)
                rss[k].append(rss_mib(pid))
            if pad.proc.poll() is not None or bare.poll() is not None:
                raise RuntimeError("a process of the idle benchmark stopped")
    finally:
        if pad is not None:
            pad.stop()
        bare.send_signal(signal.SIGTERM)
        try:
            bare.wait(10)
        except subprocess.TimeoutExpired:
            bare.kill()
            bare.wait()
    return {"cpu": cpu, "rss": rss}


def run(tmp: Path, repo: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Seconds (start), % of a core (cpu) and MiB (rss): each ``(pad, reference)``;
    ``start_fitted`` is the fitted pad's start beside the same reference."""
    site = write_config(tmp)
    pad, ref, fitted = bench_start(tmp, repo, site, write_fitted_config(tmp))
    result = {"start": (pad, ref), "start_fitted": (fitted, ref)}
    result.update(bench_idle(tmp, repo, site))
    return result
