"""systemd/: the unit verified by systemd itself, the install script run for real into a
temporary tree (``--root``), again (nothing changes), and as a dry run (nothing is written).

``systemd-analyze verify --root=TREE`` reads the unit as installed in a tree that holds the
system's own units and a stand-in executable at ExecStart's path (verify refuses a unit whose
command does not exist); its silence is the pass, since an unknown key is only a warning.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import SupportError, binary

REPO = Path(__file__).resolve().parents[1]
SYSTEMD = REPO / "systemd"
INSTALL = SYSTEMD / "install.sh"
UNIT_PATH = "etc/systemd/system/evaluator.service"
#: Every file install.sh writes, with its mode.
FILES = {
    UNIT_PATH: 0o644,
    "etc/systemd/journald.conf.d/60-evaluator.conf": 0o644,
    "etc/udev/rules.d/70-evaluator-printer.rules": 0o644,
    "etc/modules-load.d/evaluator.conf": 0o644,
    # readable by the pad's group (root:evaluator), not by other users
    "etc/evaluator/evaluator.toml.example": 0o640,
    "usr/share/doc/evaluator/README.systemd.md": 0o644,
}
DIRS = {
    "etc/evaluator": 0o750,
    "etc/evaluator/conf.d": 0o750,
    "etc/evaluator/tls": 0o700,
    "var/lib/evaluator": 0o750,
    "opt/evaluator": 0o755,
    "opt/evaluator/releases": 0o755,
    "usr/share/doc/evaluator": 0o755,
}
#: The owners install.sh gives (printed: --root runs no chown).
OWNERS = {
    "/etc/evaluator": "root:evaluator",
    "/etc/evaluator/conf.d": "root:evaluator",
    "/etc/evaluator/tls": "evaluator:evaluator",
    "/var/lib/evaluator": "evaluator:evaluator",
    "/etc/evaluator/evaluator.toml.example": "root:evaluator",
    "/opt/evaluator": "root:root",
    "/opt/evaluator/releases": "root:root",
}
STEPS = ("system", "Debian packages", "user evaluator", "directories and files",
         "build /opt/evaluator/releases/", "systemd", "the pad")  # fmt: skip
CURRENT = "opt/evaluator/current"


def _tool(name: str) -> str:
    try:
        return binary(name)
    except SupportError as exc:
        pytest.fail(str(exc))


def install(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", str(INSTALL), *map(str, args)], capture_output=True, text=True, timeout=60,
        check=False, env={**os.environ, "LC_ALL": "C.UTF-8"},
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, f"install.sh {args}: exit {done.returncode}\n{done.stderr}"
        assert done.stderr == "", done.stderr
    return done


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every path under ``root``: mode, mtime (ns) and content (or a link's target)."""
    found: dict[str, tuple[int, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            content: bytes | str = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            content = path.read_bytes()
        else:
            content = b""
        found[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, content)
    return found


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value given to it (systemd allows a key several times)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tree install.sh installed into, once for the module (tests that change it copy it)."""
    root = tmp_path_factory.mktemp("tree") / "root"
    first = install("--root", root)
    (root.parent / "first-run.txt").write_text(first.stdout)
    yield root


def first_output(tree: Path) -> str:
    return (tree.parent / "first-run.txt").read_text()


def build_of(root: Path) -> str:
    """The build ``opt/evaluator/current`` points at (its name under releases/)."""
    target = os.readlink(root / CURRENT)
    assert target.startswith("releases/"), target
    return target.removeprefix("releases/")


def steps_in(out: str) -> None:
    for n, name in enumerate(STEPS, 1):
        assert f"\n== {n}/{len(STEPS)} {name}" in out, name


# -- the unit --------------------------------------------------------------------------------------


def _verifiable(tree: Path, dest: Path) -> Path:
    """A copy of ``tree`` that systemd-analyze can verify in: the system's units, and a stand-in
    executable where the venv's ``evaluator`` will be."""
    shutil.copytree(tree, dest, symlinks=True)
    system_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                        if (p / "sysinit.target").exists())  # fmt: skip
    shutil.copytree(system_units, dest / "usr/lib/systemd/system", symlinks=True,
                    dirs_exist_ok=True)  # fmt: skip
    for path in (f"{CURRENT}/venv/bin/evaluator", "bin/kill"):  # ExecStart=, ExecReload=
        command = dest / path
        command.parent.mkdir(parents=True, exist_ok=True)
        command.write_text("#!/bin/sh\nexit 0\n")
        command.chmod(0o755)
    return dest


def _verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("systemd-analyze"), "verify", f"--root={root}", "--man=no", f"/{UNIT_PATH}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_systemd_analyze_verify_passes_the_installed_unit(tree: Path, tmp_path: Path) -> None:
    root = _verifiable(tree, tmp_path / "root")
    done = _verify(root)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")

    # The same check finds a defect: a misspelt key (a warning only: hence "silent" above), and
    # a command that is not there.
    unit = root / UNIT_PATH
    unit.write_text(unit.read_text().replace("RestartSec=5s", "RestartSec=5s\nRestartSecs=5s"))
    assert "Unknown key 'RestartSecs'" in _verify(root).stderr
    (root / CURRENT / "venv/bin/evaluator").unlink()
    assert _verify(root).returncode != 0


def test_the_unit_stays_hardened(tree: Path, tmp_path: Path) -> None:
    root = _verifiable(tree, tmp_path / "root")
    done = subprocess.run(
        [_tool("systemd-analyze"), "security", "--offline=yes", f"--root={root}", "--no-pager",
         f"/{UNIT_PATH}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for evaluator\.service: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout  # 1.6 when written; 10 = unprotected


def test_unit_settings() -> None:
    s = unit_settings((SYSTEMD / "evaluator.service").read_text())
    one = {k: v[-1] for k, v in s.items()}
    assert one["Service.Type"] == "notify"
    assert one["Service.NotifyAccess"] == "main"
    assert one["Service.User"] == "evaluator"
    # Survives a crash loop, then reboots; never the default 5 starts in 10 s.
    assert one["Service.Restart"] == "always"
    assert one["Unit.StartLimitAction"] == "reboot"
    assert int(one["Unit.StartLimitBurst"]) >= 10
    assert one["Unit.StartLimitIntervalSec"] == "10min"
    # Sandbox, with the devices allowed one group at a time.
    assert one["Service.ProtectSystem"] == "strict"
    assert one["Service.StateDirectory"] == "evaluator"
    assert one["Service.NoNewPrivileges"] == "yes"
    assert one["Service.ProtectHome"] == "yes"
    assert one["Service.DevicePolicy"] == "closed"
    assert "Service.PrivateDevices" not in s and "Service.PrivateUsers" not in s
    allowed = {v.split()[0] for v in s["Service.DeviceAllow"]}
    assert {"char-drm", "char-input", "char-gpiochip", "char-ttyUSB", "char-ttyACM", "char-usb",
            "char-usb_device", "char-alsa", "/dev/tty1"} <= allowed  # fmt: skip
    # The screen on tty1, the logs in the journal.
    assert one["Service.TTYPath"] == "/dev/tty1"
    assert one["Service.StandardOutput"] == one["Service.StandardError"] == "journal"
    assert "getty@tty1.service" in one["Unit.Conflicts"]
    assert one["Install.WantedBy"] == "multi-user.target"


def test_the_config_check_reads_what_the_pad_runs_with() -> None:
    """ExecCondition skips a start whose configuration is wrong: it must check the same files,
    in the same order, as ExecStart runs with, and with the same program: both with no file
    argument, so both read the installed files by the same search (evaluator.config)."""
    from evaluator.config import SYSTEM_CONFIG_DIR

    one = {k: v[-1] for k, v in unit_settings((SYSTEMD / "evaluator.service").read_text()).items()}
    start = one["Service.ExecStart"].split()
    check = one["Service.ExecCondition"].split()
    assert start == ["/opt/evaluator/current/venv/bin/evaluator", "run"]
    assert check == [start[0], "config", "check"]
    assert one["Unit.ConditionPathExists"] == str(SYSTEM_CONFIG_DIR / "evaluator.toml")
    assert one["Service.ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_the_state_directory_holds_the_default_store() -> None:
    """ProtectSystem=strict leaves only StateDirectory= writable: the shipped storage.path (and
    the key and spool next to it) must be inside it."""
    default = tomllib.loads((REPO / "config/default.toml").read_text())
    one = {k: v[-1] for k, v in unit_settings((SYSTEMD / "evaluator.service").read_text()).items()}
    store = Path(default["storage"]["path"])
    assert store.parent == Path("/var/lib") / one["Service.StateDirectory"]
    assert one["Service.WorkingDirectory"] == str(store.parent)  # lgpio's pipes land there
    assert default["device"]["key_file"] == "" and default["printer"]["spool_dir"] == ""


def test_the_watchdog_is_on_and_the_app_pings_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WatchdogSec= is on, well above the loop's longest sleep (1 s), and the pad really pings
    at half of it (the app under that WATCHDOG_USEC, into a real notify socket); the pings
    stopping for a dead worker and STOPPING=1 are in tests/evaluator/test_app_watchdog.py."""
    import json
    import socket

    from evaluator.app import App, watchdog_interval
    from evaluator.config import load_config

    settings = unit_settings((SYSTEMD / "evaluator.service").read_text())
    (value,) = settings["Service.WatchdogSec"]
    assert value.endswith("s") and value[:-1].isdigit(), value
    seconds = int(value[:-1])
    assert 10 <= seconds <= 60
    monkeypatch.setenv("WATCHDOG_USEC", str(seconds * 1_000_000))  # as systemd sets it
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == seconds / 2
    site = tmp_path / "site.toml"
    site.write_text(
        '[counter]\nport = ""\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n",
        encoding="utf-8",
    )
    app = App(load_config([REPO / "config" / "demo.toml", site]))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        try:
            app.start_watchdog()
            app.watchdog(0.0)
            assert notify.recv(64) == b"WATCHDOG=1"
        finally:
            app.shutdown()


def test_no_reload_before_the_app_serves_it() -> None:
    """ExecReload= with SIGHUP would end a pad that has no SIGHUP handler."""
    settings = unit_settings((SYSTEMD / "evaluator.service").read_text())
    app = "\n".join(p.read_text() for p in (REPO / "evaluator").rglob("*.py"))
    if "Service.ExecReload" in settings:
        assert "SIGHUP" in app, "ExecReload= is set, but the pad has no SIGHUP handler"
    else:  # the line is there, ready to be uncommented
        assert "#ExecReload=" in (SYSTEMD / "evaluator.service").read_text()


def test_the_journal_is_capped_and_kept() -> None:
    s = unit_settings((SYSTEMD / "journald-evaluator.conf").read_text())
    assert s["Journal.Storage"] == ["persistent"]
    size = s["Journal.SystemMaxUse"][0]
    assert size.endswith("M") and int(size[:-1]) <= 128


def test_printer_udev_rule_is_well_formed(tree: Path) -> None:
    """Every rule line is comma-separated KEY op "value" pairs udev knows; usblp and libusb
    printers get the group lp and a stable name."""
    pair = re.compile(
        r'\s*(?P<key>[A-Z_]+(?:\{[A-Za-z_]+\})?)\s*(?P<op>==|!=|\+=|:=|=)\s*"[^"]*"\s*'
    )
    keys = {"SUBSYSTEM", "KERNEL", "ENV", "ATTR", "GROUP", "MODE", "SYMLINK"}
    text = (tree / "etc/udev/rules.d/70-evaluator-printer.rules").read_text()
    rules = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(rules) == 2
    for line in rules:
        parts = line.split(",")
        for part in parts:
            m = pair.fullmatch(part)
            assert m, f'not KEY op "value": {part!r} in {line!r}'
            assert m["key"].split("{")[0] in keys
        assert 'GROUP="lp"' in line and 'MODE="0660"' in line and "SYMLINK+=" in line


def test_requirements_pin_every_dependency_within_its_range() -> None:
    pins: dict[str, str] = {}
    for line in (SYSTEMD / "requirements.txt").read_text().splitlines():
        # Debian's packages (pygame: python3-pygame), installed by apt, not pip
        line = line.removeprefix("# debian: ")
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"not pinned with ==: {line}"
            assert canonicalize_name(name) not in pins, f"twice: {name}"
            pins[canonicalize_name(name)] = version.strip()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # (requirement, the extras its parent was asked with: psycopg[binary] needs psycopg-binary)
    wanted = [(Requirement(r), frozenset[str]()) for r in project["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    while wanted:  # the project's dependencies, then theirs (as installed here)
        req, extras = wanted.pop()
        name = canonicalize_name(req.name)
        if req.marker is not None and not any(
            req.marker.evaluate({"extra": e}) for e in ("", *extras)
        ):
            continue
        assert name in pins, f"{req} is not pinned in systemd/requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]}: {req}"
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        wanted.extend((Requirement(r), key[1]) for r in metadata.requires(name) or [])
    needed = {name for name, _ in seen}
    assert set(pins) == needed, f"pinned but needed by nothing: {set(pins) - needed}"
    # pip never installs a pygame of its own: it would stand in front of Debian's (and its SDL
    # has no KMSDRM); Debian's version must be in pyproject's range (checked above).
    text = (SYSTEMD / "requirements.txt").read_text()
    assert re.search(r"^# debian: pygame==", text, re.MULTILINE)
    assert not re.search(r"^pygame", text, re.MULTILINE | re.IGNORECASE)


def test_install_script_is_shellcheck_clean() -> None:
    done = subprocess.run([_tool("shellcheck"), str(INSTALL)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout


def test_the_packages_carry_libgl_for_kmsdrm() -> None:
    """Booted under qemu (scripts/pi-vm, docs/pi-os.md), Debian's pygame on SDL 2.26's KMSDRM
    flipped a black screen without libGL.so.1 while the pad ran and answered; a Lite image has
    no libgl1.  The package list install.sh installs (and the VM image follows) must carry it."""
    text = INSTALL.read_text(encoding="utf-8")
    body = re.search(r"^PACKAGES=\((.*?)^\)", text, re.MULTILINE | re.DOTALL)
    assert body, "install.sh has no PACKAGES=( ... ) list"
    names = {
        word for line in body.group(1).splitlines() for word in line.split("#", 1)[0].split()
    }
    assert {"python3-pygame", "libgl1", "libegl1", "libgles2", "libgl1-mesa-dri"} <= names


def test_check_sdl_lists_the_drivers_and_demands_kmsdrm() -> None:
    """check_sdl.py reads the SDL pygame loaded; PyPI's wheel (the test venv's) has no KMSDRM.
    Whatever this pygame is, the exit status must match the list it prints."""
    done = subprocess.run([sys.executable, str(SYSTEMD / "check_sdl.py")], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    found = re.search(r"video drivers (.*)", done.stdout)
    assert found, done.stdout + done.stderr
    drivers = found.group(1).split()
    assert "dummy" in drivers  # always compiled in: the list is real
    assert done.returncode == (0 if "KMSDRM" in drivers else 1)
    found = re.search(r"^pygame (\S+) from (\S+)$", done.stdout, re.MULTILINE)
    assert found, done.stdout
    import pygame

    assert found.groups() == (pygame.version.ver, str(Path(pygame.__file__).parent))
    if done.returncode:
        assert "no KMSDRM driver" in done.stderr and "python3-pygame" in done.stderr


# -- the install script into a tree -------------------------------------------------------------


def test_install_into_a_tree_installs_what_it_claims(tree: Path) -> None:
    for rel, mode in FILES.items():
        path = tree / rel
        assert path.is_file() and not path.is_symlink(), rel
        assert stat.S_IMODE(path.stat().st_mode) == mode, rel
    for rel, mode in DIRS.items():
        assert (tree / rel).is_dir() and stat.S_IMODE((tree / rel).stat().st_mode) == mode, rel
    # exactly the shipped files
    assert (tree / UNIT_PATH).read_bytes() == (SYSTEMD / "evaluator.service").read_bytes()
    assert (tree / "etc/evaluator/evaluator.toml.example").read_bytes() == (
        REPO / "config/default.toml").read_bytes()  # fmt: skip
    assert (tree / "etc/systemd/journald.conf.d/60-evaluator.conf").read_bytes() == (
        SYSTEMD / "journald-evaluator.conf").read_bytes()  # fmt: skip
    assert (tree / "etc/udev/rules.d/70-evaluator-printer.rules").read_bytes() == (
        SYSTEMD / "70-evaluator-printer.rules").read_bytes()  # fmt: skip
    assert (tree / "etc/modules-load.d/evaluator.conf").read_bytes() == (
        SYSTEMD / "modules-evaluator.conf").read_bytes()  # fmt: skip
    assert os.readlink(tree / "usr/local/bin/evaluator") == f"/{CURRENT}/venv/bin/evaluator"
    # the configuration itself is the technician's: never written
    assert not (tree / "etc/evaluator/evaluator.toml").exists()
    # the build: its own directory, named by the version and a hash; current points at it
    build = build_of(tree)
    assert re.fullmatch(r"0\.1\.0-[0-9a-f]{12}", build), build
    release = tree / "opt/evaluator/releases" / build
    assert stat.S_IMODE(release.stat().st_mode) == 0o755
    requirements = release / "requirements.txt"
    assert requirements.read_bytes() == (SYSTEMD / "requirements.txt").read_bytes()
    assert stat.S_IMODE(requirements.stat().st_mode) == 0o644

    out = first_output(tree)
    steps_in(out)
    for rel in FILES:
        assert f"installed: /{rel} (mode {FILES[rel]:o})" in out
    # the machine steps are printed, not run
    machine = [line.strip() for line in out.splitlines() if "would run (--root" in line]
    commands = [line.split("): ", 1)[1] for line in machine]
    apt = next(c for c in commands if c.startswith("apt-get install"))
    # Debian's pygame (with KMSDRM), and nothing to compile one with
    assert "fonts-wqy-microhei" in apt.split() and "python3-pygame" in apt.split()
    assert "libsdl2-dev" not in apt and "build-essential" not in apt
    useradd = next(c for c in commands if c.startswith("useradd"))
    assert "--groups gpio,dialout,lp,video,render,input,audio evaluator" in useradd
    for path, owner in OWNERS.items():
        assert f"chown {owner} {path}" in commands, path
    venv = f"/opt/evaluator/releases/{build}/venv"
    assert f"/usr/bin/python3 -m venv --system-site-packages {venv}" in commands
    assert any(c.endswith(f"{venv}/bin/python -m pip install --ignore-installed -r "
                          f"/opt/evaluator/releases/{build}/requirements.txt")
               for c in commands)  # fmt: skip
    assert not any("--no-binary" in c for c in commands)  # no pygame built from source
    assert f"{venv}/bin/python {SYSTEMD}/check_sdl.py" in commands
    assert "systemctl enable evaluator.service" in commands
    assert "systemctl disable getty@tty1.service" in commands
    assert "systemctl set-default multi-user.target" not in commands  # not a Desktop image
    # no configuration yet: enabled, not started
    assert f"switched: /{CURRENT} -> releases/{build}\n" in out
    assert "the pad is not started" in out
    assert not any("restart evaluator" in c for c in commands)
    # the files, the dirs, the build's dir and requirements, the command link, the switch
    assert out.rstrip().endswith(
        f"install: done into {tree}: {len(FILES) + len(DIRS) + 2 + 2} change(s)"
    )


def test_a_second_run_changes_nothing_and_says_so(tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(tree, root, symlinks=True)
    before = snapshot(root)
    again = install("--root", root)
    assert snapshot(root) == before  # not one byte, mode or mtime
    assert again.stdout.rstrip().endswith(f"install: done into {root}: nothing changed")
    for rel in FILES:
        assert f"ok: /{rel}\n" in again.stdout
    assert f"ok: /{CURRENT} -> releases/{build_of(root)}\n" in again.stdout
    assert "daemon-reload" not in again.stdout  # nothing to reload either


def test_a_run_repairs_what_differs(tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(tree, root, symlinks=True)
    (root / UNIT_PATH).write_text("[Service]\nExecStart=/bin/false\n")
    (root / "etc/evaluator/evaluator.toml.example").chmod(0o644)
    (root / "etc/systemd/journald.conf.d/60-evaluator.conf").unlink()
    done = install("--root", root)
    assert f"updated: /{UNIT_PATH} (mode 644)" in done.stdout
    assert "chmod 640: /etc/evaluator/evaluator.toml.example" in done.stdout
    assert "installed: /etc/systemd/journald.conf.d/60-evaluator.conf" in done.stdout
    assert "systemctl daemon-reload" in done.stdout  # the unit changed
    assert "systemctl restart systemd-journald.service" in done.stdout
    assert done.stdout.rstrip().endswith(f"install: done into {root}: 3 change(s)")
    assert (root / UNIT_PATH).read_bytes() == (SYSTEMD / "evaluator.service").read_bytes()
    assert not list(root.rglob("*.evaluator-new"))  # no temporary file left behind


def test_dry_run_prints_every_step_and_writes_nothing(tree: Path, tmp_path: Path) -> None:
    # into a tree that does not exist: not even the tree is made
    fresh = tmp_path / "fresh"
    done = install("--dry-run", "--root", fresh)
    assert not fresh.exists()
    steps_in(done.stdout)
    for rel, mode in FILES.items():
        assert f"would install: /{rel} (mode {mode:o})" in done.stdout
    for rel, mode in DIRS.items():
        assert f"would create: /{rel}/ (mode {mode:o})" in done.stdout
    assert "would link: /usr/local/bin/evaluator" in done.stdout
    assert "dry run into" in done.stdout and "change(s) would be made" in done.stdout

    # into an installed tree with a difference: reported, left as it is
    root = tmp_path / "root"
    shutil.copytree(tree, root, symlinks=True)
    (root / UNIT_PATH).write_text("[Service]\nExecStart=/bin/false\n")
    before = snapshot(root)
    done = install("--dry-run", "--root", root)
    assert snapshot(root) == before
    assert f"would update: /{UNIT_PATH}" in done.stdout
    assert "would run (--root: not on this machine): systemctl daemon-reload" in done.stdout
    assert done.stdout.rstrip().endswith("1 change(s) would be made")


def test_dry_run_on_this_machine_runs_nothing() -> None:
    """Without --root the dry run looks at the machine (packages, user, units) and prints what
    it would do: every step, and not one command run or file written."""
    watched = [Path("/etc/evaluator"), Path("/opt/evaluator"), Path(f"/{UNIT_PATH}"),
               Path("/usr/local/bin/evaluator")]  # fmt: skip
    before = {p: p.exists() for p in watched}
    done = install("--dry-run")
    assert {p: p.exists() for p in watched} == before
    steps_in(done.stdout)
    did = re.compile(r"\s+(run|installed|updated|created|linked|chmod \d+):")
    acted = [line for line in done.stdout.splitlines() if did.match(line)]
    assert acted == []
    assert "dry run:" in done.stdout and "none made" in done.stdout


def test_printer_ids_add_udev_lines(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install("--root", root, "--printer", "0416:5011", "--printer=0FE6:811E")
    rules = (root / "etc/udev/rules.d/70-evaluator-printer.rules").read_text()
    assert 'ATTR{idVendor}=="0416", ATTR{idProduct}=="5011", GROUP="lp"' in rules
    assert 'ATTR{idVendor}=="0fe6", ATTR{idProduct}=="811e", GROUP="lp"' in rules
    # the same ids again: nothing changes; without them the lines go
    assert "nothing changed" in install("--root", root, "--printer", "0416:5011",
                                        "--printer=0FE6:811E").stdout  # fmt: skip
    assert "updated: /etc/udev/rules.d/70-evaluator-printer.rules" in install("--root", root).stdout


def test_every_file_the_wheel_is_made_of_names_the_build(tmp_path: Path) -> None:
    """The build's name is the hash of what pip installs from the checkout; docs/schemas (the
    package sync.schemas) was left out, so a schema fix alone was "the same build" and never
    installed (found by review).  Checked against pyproject.toml's own package folders."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name.split(".")[0] for name in project["packages"]}
    folders |= set(project["package-dir"].values())
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in {*folders, "systemd"}:
        shutil.copytree(REPO / folder, checkout / folder, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", checkout)

    def build_name() -> str:
        done = subprocess.run(
            ["bash", str(checkout / "systemd/install.sh"), "--root", str(tmp_path / "root"),
             "--dry-run"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        found = re.search(r"== 5/7 build /opt/evaluator/releases/(\S+)", done.stdout)
        assert found, done.stdout
        return found.group(1)

    names = {build_name()}
    for folder in sorted(folders):
        changed = next(p for p in sorted((checkout / folder).rglob("*")) if p.is_file())
        changed.write_bytes(changed.read_bytes() + b"\n")
        names.add(build_name())
        assert len(names) == 2, f"a change in {changed.relative_to(checkout)}: the same build"
        names = {build_name()}


def test_the_callers_umask_never_hides_what_install_sh_makes(tmp_path: Path) -> None:
    """sudo keeps the technician's umask: 077 made every folder install.sh did not chmod (and
    on the machine the whole build, by venv and pip) the owner's alone, so the pad's user could
    not import its code (found by review)."""
    root = tmp_path / "root"
    done = subprocess.run(
        ["bash", "-c", 'umask 077 && exec bash "$0" --root "$1"', str(INSTALL), str(root)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for rel in ("etc/systemd/system", "etc/udev/rules.d", "usr/local/bin", "opt", "var/lib"):
        assert stat.S_IMODE((root / rel).stat().st_mode) == 0o755, rel


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--printer", "lp0"], "--printer lp0: expected VID:PID"),
        (["--wheel", "/nonexistent.whl"], "--wheel /nonexistent.whl: no such file"),
        (["--frobnicate"], "unknown argument: --frobnicate"),
        (["--settle", "soon"], "--settle soon: expected whole seconds"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "root"
    done = install("--root", root, *args, ok=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert not root.exists()


def test_a_wheel_is_the_source_of_the_example_config(tmp_path: Path) -> None:
    """--wheel: the example is the wheel's own default.toml (the package data), and the
    virtualenv step installs that wheel."""
    wheel = tmp_path / "window_evaluator-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("evaluator/shipped_config/default.toml", "# the wheel's default\n")
    root = tmp_path / "root"
    done = install("--root", root, "--wheel", wheel)
    assert (root / "etc/evaluator/evaluator.toml.example").read_text() == "# the wheel's default\n"
    assert f"pip install --no-deps --force-reinstall {wheel}" in done.stdout


def test_the_next_steps_after_a_wheel_install_name_the_wheel_again(tmp_path: Path) -> None:
    """With no configuration yet, install.sh tells the technician to run it again once the
    file is written; after a --wheel install that command must carry the wheel (a wheel's
    unpacked copy is no checkout, and install.sh refuses to run from it without --wheel: found
    by scripts/pi-vm).  On this machine, as a dry run: nothing is written."""
    assert not Path("/etc/evaluator/evaluator.toml").exists()
    wheel = tmp_path / "window_evaluator-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("evaluator/shipped_config/default.toml", "# the wheel's default\n")
    done = install("--dry-run", "--wheel", wheel)
    again = [line for line in done.stdout.splitlines() if "# again" in line]
    assert again == [f"      sudo systemd/install.sh --wheel {wheel}   # again: the file gets "
                     "root:evaluator 0640"]  # fmt: skip
    plain = install("--dry-run")
    assert "      sudo systemd/install.sh   # again" in plain.stdout


def test_a_desktop_image_is_set_to_boot_to_the_console(tmp_path: Path) -> None:
    root = tmp_path / "root"
    dm = root / "etc/systemd/system/display-manager.service"
    dm.parent.mkdir(parents=True)
    dm.symlink_to("/lib/systemd/system/lightdm.service")
    done = install("--root", root)
    assert "a Desktop image" in done.stdout
    assert "systemctl set-default multi-user.target" in done.stdout
    kept = install("--root", tmp_path / "kept", "--keep-desktop")
    assert "set-default" not in kept.stdout


def test_technician_guide_installs_with_the_script() -> None:
    guide = (REPO / "docs/technician.md").read_text()
    section = guide.split("### 1.1 Install", 1)[1].split("### 1.2", 1)[0]
    assert "sudo systemd/install.sh" in section
    assert "systemctl" in section and "journalctl -u evaluator" in section


# -- upgrades: a build per directory, the switch, the restart, the roll back --------------------

#: A stand-in for systemctl (install.sh's EVALUATOR_SYSTEMCTL): logs every call; the builds named
#: in FAKE_BAD (space-separated) fail as FAKE_MODE says: "fail" (restart fails: never READY),
#: "skip" (restart succeeds but the unit is inactive: ExecCondition refused it), "crash" (READY,
#: then a new main PID at every look: Restart=always restarting it), "hangup" (install.sh is sent
#: SIGHUP while it waits for the restart: its ssh session dropped).
FAKE_SYSTEMCTL = """#!/bin/sh
if [ "$*" = "show -p NeedDaemonReload --value evaluator.service" ]; then  # not logged
  echo "${FAKE_RELOAD:-no}"; exit 0
fi
echo "$*" >>"$FAKE_LOG"
build=$(basename "$(readlink "$FAKE_ROOT/opt/evaluator/current")")
bad=no
case " $FAKE_BAD " in *" $build "*) bad=$FAKE_MODE ;; esac
case "$1" in
  reset-failed) exit 0 ;;
  restart)
    echo "restart $build" >>"$FAKE_LOG.restarts"
    if [ "$bad" = fail ]; then echo "Job for evaluator.service failed." >&2; exit 1; fi
    if [ "$bad" = hangup ]; then kill -HUP "$PPID"; fi  # the ssh session install.sh ran in
    exit 0 ;;
  is-active)
    if [ "$bad" = skip ]; then echo inactive; exit 3; fi
    echo active ;;
  show)
    if [ "$bad" != crash ]; then echo 100; exit 0; fi
    echo x >>"$FAKE_LOG.pids"; wc -l <"$FAKE_LOG.pids" ;;
  *) echo "fake systemctl: unexpected $*" >&2; exit 9 ;;
esac
"""


class Machine:
    """A tree installed into with --root, with the fake systemctl as step 7's."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.log = tmp / "systemctl.log"
        self.systemctl = tmp / "systemctl"
        self.systemctl.write_text(FAKE_SYSTEMCTL)
        self.systemctl.chmod(0o755)
        self.bad = ""
        self.mode = ""
        self.reload = "no"  # systemctl show -p NeedDaemonReload

    def wheel(self, version: str) -> Path:
        """A wheel of its own bytes (so a build of its own) carrying a default.toml."""
        path = self.tmp / f"window_evaluator-{version}-py3-none-any.whl"
        if path.exists():  # the same wheel again (zip files carry their time)
            return path
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("evaluator/shipped_config/default.toml", f"# {version}\n")
        return path

    def install(
        self, version: str, *args: str, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", str(INSTALL), "--root", str(self.root), "--wheel", str(self.wheel(version)),
             "--settle", "1", *args],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "LC_ALL": "C.UTF-8", "EVALUATOR_SYSTEMCTL": str(self.systemctl),
                 "FAKE_LOG": str(self.log), "FAKE_ROOT": str(self.root), "FAKE_BAD": self.bad,
                 "FAKE_MODE": self.mode, "FAKE_RELOAD": self.reload},
        )  # fmt: skip
        if ok:
            assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def configure(self) -> None:
        """What the technician makes after the first install: config, store, keys."""
        files = {
            "etc/evaluator/evaluator.toml": '[device]\nid = "t"\n',
            "etc/evaluator/conf.d/10-site.toml": '[device]\nwindow = "1"\n',
            "var/lib/evaluator/ratings.db": "store",
            "var/lib/evaluator/device.key": "key",
            "etc/evaluator/tls/device.key": "tls key",
        }
        for rel, text in files.items():
            (self.root / rel).write_text(text)
            (self.root / rel).chmod(0o600 if rel.endswith(".key") else 0o640)

    def restarts(self) -> list[str]:
        path = Path(f"{self.log}.restarts")
        return path.read_text().splitlines() if path.exists() else []

    def builds(self) -> set[str]:
        return {p.name for p in (self.root / "opt/evaluator/releases").iterdir()}

    def kept(self) -> dict[str, tuple[int, int, bytes | str]]:
        """Configuration, store and keys: what an upgrade must never touch (the example is the
        new build's)."""
        etc = snapshot(self.root / "etc/evaluator")
        del etc["evaluator.toml.example"]
        var = snapshot(self.root / "var/lib/evaluator")
        return {**etc, **{f"var/{k}": v for k, v in var.items()}}


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    m = Machine(tmp_path)
    first = m.install("1.0.0")
    assert "the pad is not started" in first.stdout  # no configuration: enabled only
    assert m.restarts() == [] and not m.log.exists()
    m.configure()
    return m


def test_an_upgrade_switches_restarts_and_keeps_config_store_and_keys(machine: Machine) -> None:
    old = build_of(machine.root)
    kept = machine.kept()
    done = machine.install("1.1.0")
    new = build_of(machine.root)
    assert new.startswith("1.1.0-") and old.startswith("1.0.0-")
    assert f"switched: /{CURRENT} -> releases/{new} (from {old})" in done.stdout
    assert machine.restarts() == [f"restart {new}"]
    calls = ("reset-failed", "restart", "is-active", "show -p MainPID --value")
    assert machine.log.read_text().splitlines()[:4] == [f"{c} evaluator.service" for c in calls]
    assert "watching it for 1 s" in done.stdout and f"upgraded: the pad runs {new}" in done.stdout
    assert machine.builds() == {old, new}  # the one before stays, to go back to
    assert machine.kept() == kept  # not a byte, mode or mtime of config, store or keys
    # the same again: no switch, no restart
    assert "nothing changed" in machine.install("1.1.0").stdout
    assert machine.restarts() == [f"restart {new}"]


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("fail", "did not reach READY"),
        ("skip", "is inactive after the restart"),
        ("crash", "ended 1 s after READY"),
    ],
)
def test_a_build_that_does_not_come_up_is_rolled_back(
    machine: Machine, mode: str, says: str
) -> None:
    old = build_of(machine.root)
    kept = machine.kept()
    machine.bad, machine.mode = f"2.0.0-{_build_hash(machine, '2.0.0')}", mode
    done = machine.install("2.0.0", ok=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert build_of(machine.root) == old  # back on the build before
    assert machine.restarts() == [f"restart {machine.bad}", f"restart {old}"]
    assert says in done.stderr
    assert f"rolled back: /{CURRENT} -> releases/{old}" in done.stdout
    assert (f"install: FAILED: the pad did not come up on {machine.bad}; it runs the build "
            f"before, {old}, again") in done.stderr  # fmt: skip
    assert machine.bad in machine.builds()  # kept to look at
    assert machine.kept() == kept


def _build_hash(machine: Machine, version: str) -> str:
    """The build name install.sh gives ``version``'s wheel (read from a dry run)."""
    done = machine.install(version, "--dry-run")
    found = re.search(rf"== 5/7 build /opt/evaluator/releases/{re.escape(version)}-(\w+)",
                      done.stdout)  # fmt: skip
    assert found, done.stdout
    return found.group(1)


def test_a_run_that_stopped_during_the_check_is_checked_by_the_next(machine: Machine) -> None:
    """The ssh session dropped while install.sh waited for the restart: current named a build
    never checked, and the next run found it "ok" and left a pad that does not come up with no
    roll back (found by review).  Now the next run checks it, and goes back to the build
    before."""
    old = build_of(machine.root)
    new = f"2.0.0-{_build_hash(machine, '2.0.0')}"
    machine.bad, machine.mode = new, "hangup"
    cut = machine.install("2.0.0", ok=False)
    assert cut.returncode != 0 and build_of(machine.root) == new
    machine.mode = "fail"
    done = machine.install("2.0.0", ok=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"stopped while the pad was being checked on {new}: checking it now" in done.stdout
    assert build_of(machine.root) == old
    assert machine.restarts() == [f"restart {new}", f"restart {new}", f"restart {old}"]
    assert f"it runs the build before, {old}, again" in done.stderr
    # checked and rolled back: the next run starts afresh (and tries the new build again)
    machine.bad = ""
    machine.install("2.0.0")
    assert build_of(machine.root) == new
    assert "nothing changed" in machine.install("2.0.0").stdout


def test_when_the_build_before_fails_too_it_says_so(machine: Machine) -> None:
    old = build_of(machine.root)
    new = f"2.0.0-{_build_hash(machine, '2.0.0')}"
    machine.bad, machine.mode = f"{new} {old}", "fail"
    done = machine.install("2.0.0", ok=False)
    assert done.returncode == 1
    assert build_of(machine.root) == old  # the build before is the better bet still
    assert machine.restarts() == [f"restart {new}", f"restart {old}"]
    assert (f"install: FAILED: the pad came up neither on {new} nor, rolled back, on {old}"
            in done.stderr)  # fmt: skip


def test_a_build_before_that_was_removed_by_hand_is_not_gone_back_to(machine: Machine) -> None:
    """Rolling back to a build deleted by hand left current dangling (no evaluator command to
    look with) and blamed the configuration (found by review)."""
    old = build_of(machine.root)
    shutil.rmtree(machine.root / "opt/evaluator/releases" / old)
    new = f"2.0.0-{_build_hash(machine, '2.0.0')}"
    machine.bad, machine.mode = new, "fail"
    done = machine.install("2.0.0", ok=False)
    assert done.returncode == 1
    assert build_of(machine.root) == new  # a build that exists, not a dangling link
    assert machine.restarts() == [f"restart {new}"]
    assert (f"the build before, {old}, is gone or incomplete "
            f"(no /opt/evaluator/releases/{old}/venv/bin/evaluator): not rolled back"
            in done.stderr)  # fmt: skip
    assert "rolled back:" not in done.stdout


def test_no_build_to_go_back_to_fails_loudly(tmp_path: Path) -> None:
    m = Machine(tmp_path)
    m.root.joinpath("etc/evaluator").mkdir(parents=True)
    m.root.joinpath("etc/evaluator/evaluator.toml").write_text("")
    m.bad, m.mode = f"1.0.0-{_build_hash(m, '1.0.0')}", "fail"
    done = m.install("1.0.0", ok=False)
    assert done.returncode == 1
    assert "there is no build before it to go back to" in done.stderr
    assert build_of(m.root) == m.bad


def test_only_the_last_three_builds_are_kept(machine: Machine) -> None:
    names = [build_of(machine.root)]
    for version in ("1.1.0", "1.2.0", "1.3.0", "1.4.0"):
        done = machine.install(version)
        names.append(build_of(machine.root))
    assert machine.builds() == set(names[-3:])
    assert f"removed the old build: /opt/evaluator/releases/{names[-4]}" in done.stdout
    # going back to an older build that is still kept: the switch, no new directory
    machine.install("1.2.0")
    assert build_of(machine.root) == names[2] and machine.builds() == set(names[-3:])


def test_a_changed_unit_restarts_a_configured_pad(machine: Machine) -> None:
    unit = machine.root / UNIT_PATH
    unit.write_text(unit.read_text() + "\n# changed\n")
    done = machine.install("1.0.0")
    assert "systemctl daemon-reload" in done.stdout
    assert machine.restarts() == [f"restart {build_of(machine.root)}"]
    assert "--no-restart" not in done.stdout
    # --no-restart: switched, not restarted, and it says so
    done = machine.install("1.5.0", "--no-restart")
    assert build_of(machine.root).startswith("1.5.0-")
    assert len(machine.restarts()) == 1
    assert "--no-restart: the pad runs the new build from its next start" in done.stdout


def test_a_unit_changed_by_a_run_that_stopped_early_is_reloaded_and_restarted(
    machine: Machine,
) -> None:
    """A run that wrote the new unit and stopped before step 6 (the build failed on a full
    disk): the next run found the file unchanged, never ran daemon-reload, and the pad kept
    the unit systemd read before, not restarted (found by review)."""
    machine.reload = "yes"
    done = machine.install("1.0.0")
    assert "by a run that stopped early" in done.stdout
    assert "systemctl daemon-reload" in done.stdout
    assert machine.restarts() == [f"restart {build_of(machine.root)}"]
    machine.reload = "no"
    assert "nothing changed" in machine.install("1.0.0").stdout


def test_a_changed_unit_that_does_not_come_up_is_reported(machine: Machine) -> None:
    unit = machine.root / UNIT_PATH
    unit.write_text(unit.read_text() + "\n# changed\n")
    build = build_of(machine.root)
    machine.bad, machine.mode = build, "fail"
    done = machine.install("1.0.0", ok=False)
    assert done.returncode == 1
    assert f"since the unit changed (the build, {build}, is the same" in done.stderr
    assert build_of(machine.root) == build and machine.restarts() == [f"restart {build}"]


def test_the_new_build_is_on_the_disk_before_current_names_it(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut just after the switch left current on a build whose files were still in the
    page cache (found by review): install.sh syncs the build's filesystem before the switch."""
    old = build_of(machine.root)
    bin_dir = machine.tmp / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sync"
    fake.write_text('#!/bin/sh\ncurrent=$(readlink "$FAKE_ROOT/opt/evaluator/current")\n'
                    'echo "sync $* current=$current" >>"$FAKE_LOG.sync"\n')  # fmt: skip
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    machine.install("1.1.0")
    new = build_of(machine.root)
    synced = Path(f"{machine.log}.sync").read_text().splitlines()
    release = machine.root / "opt/evaluator/releases" / new
    assert f"sync -f {release} current=releases/{old}" in synced, synced


def test_a_second_install_at_the_same_time_is_refused_and_changes_nothing(
    machine: Machine,
) -> None:
    """Two at once built into one venv and raced on the temporary files and on current (found
    by review): the second is refused at once while the first holds the install lock."""
    before = snapshot(machine.root)
    fd = os.open(machine.root, os.O_RDONLY)  # what a running install.sh --root holds
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = machine.install("1.1.0", ok=False)
    finally:
        os.close(fd)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"another install.sh is running (it holds {machine.root})" in done.stderr
    assert snapshot(machine.root) == before and machine.restarts() == []
    # once it is done, the next one runs
    machine.install("1.1.0")
    assert build_of(machine.root).startswith("1.1.0-")


def test_a_venv_from_before_releases_is_the_build_to_go_back_to(tmp_path: Path) -> None:
    m = Machine(tmp_path)
    legacy = m.root / "opt/evaluator/venv/bin/evaluator"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("#!/bin/sh\n")
    link = m.root / "usr/local/bin/evaluator"
    link.parent.mkdir(parents=True)
    link.symlink_to("/opt/evaluator/venv/bin/evaluator")
    m.root.joinpath("etc/evaluator").mkdir(parents=True)
    m.root.joinpath("etc/evaluator/evaluator.toml").write_text("")
    m.bad, m.mode = f"1.0.0-{_build_hash(m, '1.0.0')}", "fail"
    done = m.install("1.0.0", ok=False)
    assert "is kept as the build /opt/evaluator/releases/before-releases" in done.stdout
    assert build_of(m.root) == "before-releases"
    assert os.readlink(m.root / "opt/evaluator/releases/before-releases/venv") == (
        "/opt/evaluator/venv")  # fmt: skip
    assert legacy.exists()
    assert os.readlink(link) == f"/{CURRENT}/venv/bin/evaluator"
    assert m.restarts() == [f"restart {m.bad}", "restart before-releases"]


def test_configuration_files_get_the_pads_group_and_no_world(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/evaluator/conf.d").mkdir(parents=True)
    (root / "etc/evaluator/evaluator.toml").write_text("")
    (root / "etc/evaluator/evaluator.toml").chmod(0o644)  # sudo's umask
    (root / "etc/evaluator/conf.d/20-x.toml").write_text("")
    (root / "etc/evaluator/conf.d/20-x.toml").chmod(0o600)  # evaluator provision's
    done = install("--root", root)
    for rel, was in (("evaluator.toml", "644"), ("conf.d/20-x.toml", "600")):
        assert stat.S_IMODE((root / "etc/evaluator" / rel).stat().st_mode) == 0o640
        assert f"chmod 640: /etc/evaluator/{rel} (was {was})" in done.stdout
        assert f"chown root:evaluator /etc/evaluator/{rel}" in done.stdout
    assert "configuration files: 2, each root:evaluator 0640" in done.stdout
