"""``scripts/pi-vm``: the pad on Debian bookworm arm64 under systemd, in qemu-system-aarch64.

Builds (or takes from the cache) the guest, installs the pad with ``systemd/install.sh`` as a
technician would, and runs the checks of docs/pi-os.md, printing one PASS/FAIL line each with
its time and a table at the end; exit 1 on any FAIL, 2 when the host lacks a tool.
``--check-only`` checks the host and the harness's own pieces without booting anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
import tomllib
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.pios import rootfs, screens, wheels
from tests.pios.vm import Vm, env_ok
from tests.support import REPO, SupportError

DEVICE_ID = "440500-vm-w1"
CLERK = {"id": "A1023", "name": "陈晓明"}
CASE = {"serial": "4405002026112600123", "matter_code": "11440500MB2C9300XR4442111009000",
        "matter_name": "居民身份证换领", "kind": "instant"}
CONF = "/etc/evaluator/evaluator.toml"
DB = "/var/lib/evaluator/ratings.db"
GUEST_DIR = "/root/pad"
PIP_OFFLINE = f"PIP_NO_INDEX=1 PIP_FIND_LINKS={GUEST_DIR}/wheels"
#: The pad's current build in the guest (the command link install.sh makes points into it).
GUEST_PYTHON = "$(dirname \"$(readlink -f /usr/local/bin/evaluator)\")/python"
VERSION_CMD = (f"{GUEST_PYTHON} -c \"import importlib.metadata as m; "
               "print(m.version('window-evaluator'))\"")


def default_cache() -> Path:
    """$PI_VM_CACHE, else .cache/pi-vm in the checkout (git-ignored)."""
    return Path(os.environ.get("PI_VM_CACHE") or REPO / ".cache" / "pi-vm")


class Checks:
    """Runs named checks in order; a failed check fails the ones that need it."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float, str]] = []
        self.failed: set[str] = set()
        self.figures: dict[str, float] = {}

    def run(self, name: str, body: Callable[[], str], needs: tuple[str, ...] = ()) -> bool:
        missing = [n for n in needs if n in self.failed]
        if missing:
            self._row(name, "FAIL", 0.0, f"not run: {', '.join(missing)} failed")
            return False
        started = time.monotonic()
        try:
            detail = body()
        except Exception as exc:
            elapsed = time.monotonic() - started
            text = str(exc).strip().splitlines()
            self._row(name, "FAIL", elapsed, " / ".join(text[-6:]) if text else repr(exc))
            if not isinstance(exc, SupportError | AssertionError):
                traceback.print_exc()
            return False
        self._row(name, "PASS", time.monotonic() - started, detail)
        return True

    def _row(self, name: str, verdict: str, seconds: float, detail: str) -> None:
        if verdict == "FAIL":
            self.failed.add(name)
        self.rows.append((name, verdict, seconds, detail))
        print(f"{verdict}  {name:<18} {seconds:7.1f} s  {detail}", flush=True)

    def table(self) -> str:
        lines = ["", f"{'check':<18} {'result':<6} {'time':>9}  detail", "-" * 78]
        for name, verdict, seconds, detail in self.rows:
            lines.append(f"{name:<18} {verdict:<6} {seconds:8.1f}s  {detail}")
        if self.figures:
            lines.append("")
            lines.append("figures: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.figures.items()))
        return "\n".join(lines)


class LoopbackPlug:
    """The counter line's host end wired RX to TX: every byte from the pad goes back to it."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.sock.settimeout(0.2)
        self.echoed = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._echo, name="loopback", daemon=True)
        self.thread.start()

    def _echo(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.sock.sendall(data)
            self.echoed += len(data)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


def guest_config(port: int) -> str:
    return f"""\
# Written by scripts/pi-vm: the pad in the VM (docs/pi-os.md).
[device]
schema_version = 2
id = "{DEVICE_ID}"
window = "1号窗口"

[counter]
# The VM's PCI UART (8250_pci), wired to a unix socket on the host.
port = "/dev/ttyS0"

[mqtt]
urls = ["mqtts://10.0.2.2:{port}"]
tls_ca = "tls/ca.crt"
tls_cert = "tls/device.crt"
tls_key = "tls/device.key"
resend_after = "5s"

[screen]
fullscreen = true
driver = "kmsdrm"
"""


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cache: Path = args.cache
        self.work = Path(tempfile.mkdtemp(prefix="pi-vm-", dir=args.work_dir))
        self.checks = Checks()
        self.vm: Vm | None = None
        self.city = None
        self.ntp = None
        self.image: Path | None = None
        self.builds: dict[str, Path] = {}
        self.rating_id = ""

    # --- helpers -------------------------------------------------------------------------------
    @property
    def guest(self) -> Vm:
        assert self.vm is not None
        return self.vm

    def sh(self, command: str, timeout: float = 600) -> str:
        return self.guest.ssh(command, timeout=timeout).stdout

    def show(self, *props: str) -> dict[str, str]:
        out = self.sh("systemctl show evaluator " + " ".join(f"-p {p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def sql(self, query: str) -> str:
        return self.sh(f"sqlite3 -readonly {DB} {shlex.quote(query)}").strip()

    def screen(self, name: str, expect: str) -> str:
        dump = self.guest.screendump(self.work / f"{name}.ppm")
        expected = screens.render_expected(self.cache / "expected") / f"{expect}.png"
        match = screens.compare(dump, expected)
        shutil.copy(dump, self.work / f"{name}.ppm.keep")
        if match.share < screens.PASS_SHARE:
            raise SupportError(f"{name}: the screen is not {expect}.png: {match} "
                               f"(dump kept: {self.work / (name + '.ppm.keep')})")
        return f"{expect}: {match}"

    def wait_screen(self, name: str, expect: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.screen(name, expect)
            except SupportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def request(self, rtype: str, rid: int, **body: object) -> dict:
        self.guest.counter_send({"id": rid, "type": rtype, **body})
        reply = self.guest.counter_read(60, lambda f: f.get("id") == rid)
        if reply.get("ok") is not True:
            raise SupportError(f"{rtype} refused: {reply}")
        return reply

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the pad is active (READY=1) with a MainPID."""
        return self.guest.wait_guest(
            "test \"$(systemctl show evaluator -p ActiveState --value)\" = active", timeout,
            "evaluator.service to be active (READY=1)")

    def boot_to_ready(self) -> float:
        """Seconds from the guest kernel's start to the pad's READY (its monotonic clock)."""
        props = self.show("ActiveEnterTimestampMonotonic")
        return int(props["ActiveEnterTimestampMonotonic"]) / 1e6

    # --- the checks ----------------------------------------------------------------------------
    def host(self) -> str:
        missing = env_ok()
        if missing:
            raise SupportError(f"missing on the host: {', '.join(missing)} "
                               "(apt-get install qemu-user-static binfmt-support debootstrap "
                               "qemu-system-arm qemu-utils e2fsprogs openssh-client)")
        return f"cache {self.cache}, work {self.work}"

    def build(self) -> str:
        cached = (self.cache / f"rootfs-{rootfs.key()}" / "done").exists()
        self.image = rootfs.build(self.cache)
        built = rootfs.build_seconds(self.image)
        self.checks.figures["rootfs build (first)"] = built
        req = wheels.requirement_wheels(self.cache)
        for local, edit in (("vm1", None), ("vm2", None), ("vm3", wheels.never_ready)):
            self.builds[local] = wheels.build_variant(self.work / "builds", local, edit)
        self.req_wheels = req
        state = "cached" if cached else f"built in {built:.0f} s"
        trying = f"; NOT install.sh's list: + {' '.join(rootfs.TRYING)}" if rootfs.TRYING else ""
        return (f"rootfs {rootfs.key()} {state}; {len(list(req.glob('*.whl')))} wheels; "
                f"3 builds{trying}")

    def boot(self) -> str:
        from tests.pios.city import City
        from tests.pios.ntp import SntpServer

        assert self.image is not None
        self.ntp = SntpServer()
        self.city = City(self.work / "city")
        self.vm = Vm(self.image, self.work, self.image / "id_ed25519")
        self.vm.create_disk()
        self.vm.start()
        took = self.vm.wait_ssh(600)
        self.checks.figures["boot to ssh"] = took
        kernel = self.sh("uname -rm").strip()
        distro = self.sh(". /etc/os-release; echo $PRETTY_NAME").strip()
        return f"ssh after {took:.0f} s; {kernel}; {distro}"

    def install(self) -> str:
        g = self.guest
        # What a technician copies onto the Pi: the checkout's systemd/ and the wheels.
        self.sh(f"rm -rf {GUEST_DIR} && mkdir -p {GUEST_DIR}")
        g.put(REPO / "systemd", f"{GUEST_DIR}/systemd")
        g.put(self.req_wheels, f"{GUEST_DIR}/wheels")
        for build in self.builds.values():
            g.put(build, f"{GUEST_DIR}/")
        started = time.monotonic()
        out = g.ssh(f"cd {GUEST_DIR} && {PIP_OFFLINE} systemd/install.sh "
                    f"--wheel {GUEST_DIR}/{self.builds['vm1'].name}", timeout=3600, check=False)
        took = time.monotonic() - started
        (self.work / "install-1.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise SupportError(f"install.sh exited {out.returncode} after {took:.0f} s "
                               f"(log {self.work / 'install-1.log'}): {out.stderr[-800:]}")
        self.checks.figures["install"] = took
        return f"install.sh --wheel in {took:.0f} s"

    def configure(self) -> str:
        assert self.city is not None
        g = self.guest
        config = self.work / "evaluator.toml"
        config.write_text(guest_config(self.city.broker.port), encoding="utf-8")
        g.put(config, CONF)
        # install.sh's "next:" says: run it again, so the file gets root:evaluator 0640.
        out = self.sh(f"cd {GUEST_DIR} && {PIP_OFFLINE} systemd/install.sh "
                      f"--wheel {GUEST_DIR}/{self.builds['vm1'].name}")
        (self.work / "install-1b.log").write_text(out)
        mode = self.sh(f"stat -c '%U:%G %a' {CONF} /etc/evaluator/tls").split("\n")
        assert mode[:2] == ["root:evaluator 640", "evaluator:evaluator 700"], mode
        self.sh(f"sudo -u evaluator /usr/local/bin/evaluator tls csr --config {CONF}")
        g.get("/etc/evaluator/tls/device.csr", self.work / "device.csr")
        cert = self.city.pki.sign_pad((self.work / "device.csr").read_bytes())
        (self.work / "device.crt").write_bytes(cert)
        g.put(self.work / "device.crt", "/etc/evaluator/tls/device.crt")
        g.put(self.city.pki.ca.cert_path, "/etc/evaluator/tls/ca.crt")
        self.sh("chmod 644 /etc/evaluator/tls/device.crt /etc/evaluator/tls/ca.crt")
        keys = self.sh(f"sudo -u evaluator /usr/local/bin/evaluator keys init --config {CONF}")
        check = self.sh(f"/usr/local/bin/evaluator config check {CONF}")
        # Files copied in are in the guest's page cache for up to 30 s (ext4 writeback): a hard
        # reset sooner leaves them full of zeros (seen: ca.crt, device.crt; config check then
        # skips the pad at boot). The check is about the rating's durability, not scp's.
        self.sh("sync")
        return f"{check.strip().splitlines()[-1]}; {keys.strip().splitlines()[0][:60]}"

    def ready(self) -> str:
        started = time.monotonic()
        self.sh("systemctl start evaluator", timeout=300)
        took = time.monotonic() - started
        props = self.show("Type", "ActiveState", "SubState", "MainPID", "WatchdogUSec",
                          "NotifyAccess", "FragmentPath", "DropInPaths")
        assert props["Type"] == "notify", props
        assert props["ActiveState"] == "active" and props["SubState"] == "running", props
        shipped = (REPO / "systemd" / "evaluator.service").read_text(encoding="utf-8")
        installed = self.sh(f"cat {props['FragmentPath']}")
        assert installed == shipped, f"{props['FragmentPath']} is not systemd/evaluator.service"
        assert not props["DropInPaths"].strip(), f"drop-ins: {props['DropInPaths']}"
        self.checks.figures["systemctl start to READY"] = took
        exposure = self.sh("systemd-analyze security evaluator.service --no-pager | tail -1",
                           timeout=300).strip()
        return (f"READY {took:.0f} s after systemctl start; Type=notify, watchdog "
                f"{props['WatchdogUSec']}, shipped unit, no drop-in; {exposure}")

    def counter_idle(self) -> str:
        self.guest.open_counter()
        self.request("clerk.sign_in", 1, clerk=CLERK)
        state = self.request("status", 2).get("state")
        assert state == "idle", f"state {state} after clerk.sign_in"
        return "clerk.sign_in on /dev/ttyS0 answered ok; status: idle"

    def screen_idle(self) -> str:
        drm = " ".join(self.sh("ls /dev/dri").split())
        return f"{self.wait_screen('idle', 'idle', 20)}; /dev/dri: {drm}"

    def counter_rating(self) -> str:
        self.request("evaluation.start", 3, stage="deliver", clerk=CLERK, cases=[CASE])
        state = self.request("status", 4).get("state")
        assert state in ("rating", "presenting"), f"state {state} after evaluation.start"
        return f"evaluation.start answered ok; status: {state}"

    def screen_rating(self) -> str:
        return self.wait_screen("presenting", "presenting", 20)

    def press_reset(self) -> str:
        assert self.city is not None
        before = int(self.sql("SELECT count(*) FROM ratings") or 0)
        self.city.broker.stop()  # the city is away: the rating must wait in the store
        self.guest.send_key("1")
        finished = self.guest.counter_read(60, lambda f: f.get("event") == "evaluation.finished")
        self.guest.wait_guest(f"test $(sqlite3 -readonly {DB} 'SELECT count(*) FROM ratings') "
                              f"-gt {before}", 60, "the rating in the store", every=0.5)
        self.rating_id, level = self.sql(
            "SELECT id, level FROM ratings ORDER BY seq DESC LIMIT 1").split("|")
        reset_at = time.monotonic()
        self.guest.system_reset()
        ssh = self.guest.wait_ssh(600)
        self.wait_ready(300)
        boot_ready = self.boot_to_ready()
        self.checks.figures["reset to READY (wall)"] = time.monotonic() - reset_at
        self.checks.figures["boot to READY (guest clock)"] = boot_ready
        kept = self.sql(f"SELECT level FROM ratings WHERE id = '{self.rating_id}'")
        pending = self.sql(f"SELECT count(*) FROM outbox WHERE rating_id = '{self.rating_id}'")
        assert kept == level, f"rating {self.rating_id} lost in the reset"
        assert pending == "1", f"rating {self.rating_id} not in the outbox after the reset"
        verify = self.sh(f"sudo -u evaluator /usr/local/bin/evaluator verify --config {CONF}")
        return (f"{level} {self.rating_id} (event {finished.get('outcome', finished)}); "
                f"hard reset: ssh {ssh:.0f} s, READY {boot_ready:.0f} s after boot, still in "
                f"store and outbox; verify: {verify.strip().splitlines()[-1][:60]}")

    def delivery(self) -> str:
        assert self.city is not None
        started = time.monotonic()
        self.city.broker.start()
        record = self.city.receiver.wait_rating(self.rating_id, 180)
        arrived = time.monotonic() - started
        self.guest.wait_guest(f"test $(sqlite3 -readonly {DB} \"SELECT count(*) FROM outbox "
                              f"WHERE rating_id = '{self.rating_id}'\") = 0", 120,
                              "the ack to empty the outbox")
        acked = time.monotonic() - started
        assert record["device_id"] == DEVICE_ID, record
        return (f"over TLS at the host's broker {arrived:.0f} s after it came up "
                f"(topic {record['_topic']}), acked: outbox empty at {acked:.0f} s")

    def watchdog(self) -> str:
        pid = self.show("MainPID")["MainPID"]
        restarts = int(self.show("NRestarts")["NRestarts"])
        self.sh(f"kill -STOP {pid}")
        started = time.monotonic()
        self.guest.wait_guest(
            f"test \"$(systemctl show evaluator -p MainPID --value)\" != {pid} -a "
            f"\"$(systemctl show evaluator -p ActiveState --value)\" = active", 240,
            "a new MainPID after the watchdog", every=2)
        took = time.monotonic() - started
        journal = self.sh("journalctl -u evaluator -b --no-pager | grep -i 'watchdog timeout' "
                          "| tail -1").strip()
        assert journal, "no 'Watchdog timeout' line in the journal"
        now = int(self.show("NRestarts")["NRestarts"])
        assert now == restarts + 1, f"NRestarts {restarts} -> {now}"
        self.checks.figures["SIGSTOP to new READY"] = took
        return f"pid {pid} stopped; new pad READY after {took:.0f} s; journal: {journal[-70:]}"

    def selftest(self) -> str:
        # The clock part needs the kernel's synchronised flag: timesyncd syncs with the host.
        synced = self.guest.wait_guest(
            "test \"$(timedatectl show -p NTPSynchronized --value)\" = yes", 180,
            "the guest's clock to be NTP-synchronised (timesyncd from 10.0.2.2)", every=2)
        self.sh("systemctl stop evaluator", timeout=120)
        # A loopback plug on the counter line (RX to TX): the host end echoes what comes in.
        self.guest.close_counter()
        plug = LoopbackPlug(self.guest.counter_path)
        try:
            out = self.guest.ssh(f"sudo -u evaluator /usr/local/bin/evaluator selftest "
                                 f"--config {CONF} --no-buttons --json", timeout=600,
                                 check=False)
        finally:
            plug.stop()
            self.sh("systemctl start evaluator", timeout=300)
        (self.work / "selftest.json").write_text(out.stdout + out.stderr)
        try:
            results = json.loads(out.stdout)
        except ValueError:
            raise SupportError(f"selftest exited {out.returncode}: {out.stdout[-500:]} "
                               f"{out.stderr[-500:]}") from None
        parts = results["checks"]
        verdicts = {p["name"]: p["status"] for p in parts}
        details = {p["name"]: p["detail"] for p in parts}
        failed = {k: details[k] for k, v in verdicts.items() if v == "FAIL"}
        assert out.returncode == 0 and not failed, f"selftest exit {out.returncode}: {failed}"
        assert "probe came back" in details.get("counter", ""), f"counter: {details.get('counter')}"
        return (f"clock synced after {synced:.0f} s; "
                + ", ".join(f"{k} {v}" for k, v in verdicts.items()))

    def upgrade(self) -> str:
        before = {
            "config": self.sh(f"sha256sum {CONF} /etc/evaluator/tls/*").strip(),
            "key": self.sh("sha256sum /var/lib/evaluator/device.key").strip(),
        }
        ratings = self.sql("SELECT count(*) FROM ratings")
        started = time.monotonic()
        out = self.guest.ssh(f"cd {GUEST_DIR} && {PIP_OFFLINE} systemd/install.sh "
                             f"--wheel {GUEST_DIR}/{self.builds['vm2'].name}", timeout=3600,
                             check=False)
        (self.work / "install-2.log").write_text(out.stdout + out.stderr)
        assert out.returncode == 0, f"install.sh (upgrade) exited {out.returncode}: " + (
            out.stderr[-600:])
        assert "upgraded: the pad runs" in out.stdout, "install.sh did not restart the pad"
        self.wait_ready(120)
        took = time.monotonic() - started
        version = self.sh(VERSION_CMD).strip()
        assert version.endswith("+vm2"), f"running {version} after the upgrade"
        assert self.sh(f"sha256sum {CONF} /etc/evaluator/tls/*").strip() == before["config"]
        assert self.sh("sha256sum /var/lib/evaluator/device.key").strip() == before["key"]
        assert self.sql("SELECT count(*) FROM ratings") == ratings
        self.checks.figures["upgrade"] = took
        return (f"{version} READY {took:.0f} s after install.sh; config, TLS files, key, "
                f"{ratings} rating(s) kept")

    def rollback(self) -> str:
        started = time.monotonic()
        out = self.guest.ssh(f"cd {GUEST_DIR} && {PIP_OFFLINE} systemd/install.sh "
                             f"--wheel {GUEST_DIR}/{self.builds['vm3'].name}", timeout=3600,
                             check=False)
        (self.work / "install-3.log").write_text(out.stdout + out.stderr)
        took = time.monotonic() - started
        assert out.returncode == 1, f"install.sh exited {out.returncode}, not 1 (FAILED)"
        assert "rolled back" in out.stdout, "install.sh did not say it rolled back"
        version = self.sh(VERSION_CMD).strip()
        assert version.endswith("+vm2"), f"running {version} after the roll back"
        props = self.show("ActiveState", "MainPID")
        assert props["ActiveState"] == "active", props
        self.checks.figures["rollback"] = took
        last = [line for line in out.stderr.splitlines() if line.startswith("install: FAILED")]
        return (f"never-READY +vm3: install.sh exit 1 after {took:.0f} s, {version} running "
                f"again (pid {props['MainPID']}); {last[-1][:90] if last else ''}")

    # --- all of it -----------------------------------------------------------------------------
    def main(self) -> int:
        c = self.checks
        c.run("host", self.host)
        c.run("build", self.build, ("host",))
        c.run("boot", self.boot, ("build",))
        c.run("install", self.install, ("boot",))
        c.run("configure", self.configure, ("install",))
        c.run("ready", self.ready, ("configure",))
        c.run("counter idle", self.counter_idle, ("ready",))
        c.run("screen idle", self.screen_idle, ("counter idle",))
        c.run("counter rating", self.counter_rating, ("counter idle",))
        c.run("screen rating", self.screen_rating, ("counter rating",))
        c.run("press+reset", self.press_reset, ("counter rating",))
        c.run("tls delivery", self.delivery, ("press+reset",))
        c.run("watchdog", self.watchdog, ("ready",))
        c.run("selftest", self.selftest, ("ready",))
        c.run("upgrade", self.upgrade, ("ready",))
        c.run("rollback", self.rollback, ("upgrade",))
        return 1 if c.failed else 0

    def close(self) -> None:
        if self.vm is not None:
            self.vm.stop()
        if self.city is not None:
            self.city.stop()
        if self.ntp is not None:
            self.ntp.stop()
        if not self.args.keep and not self.checks.failed:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print(f"kept: {self.work} (console.log, install-*.log, screen dumps)")


def check_only(cache: Path) -> int:
    """The host and the harness, without a VM: tools, the rootfs key, the expected screens."""
    problems = env_ok()
    print(f"rootfs key {rootfs.key()}: "
          + ("cached" if (cache / f"rootfs-{rootfs.key()}" / "done").exists() else "not built"))
    folder = screens.render_expected(Path(tempfile.mkdtemp(prefix="pi-vm-expected-")))
    for name in ("signed_out", "idle", "presenting"):
        match = screens.compare(folder / f"{name}.png", folder / f"{name}.png")
        if match.share != 1.0:
            problems.append(f"{name}.png does not match itself")
    parsed = tomllib.loads(guest_config(8883))
    print(f"guest config parses: [{'] ['.join(parsed)}]")
    for problem in problems:
        print(f"missing: {problem}")
    return 2 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/pi-vm", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=default_cache(),
                        help="cache folder (rootfs image, wheels, expected screens); default "
                             "$PI_VM_CACHE, else .cache/pi-vm in the checkout")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the run's folder goes (default: the system's tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder")
    parser.add_argument("--check-only", action="store_true",
                        help="check the host and the harness, boot nothing")
    args = parser.parse_args(argv)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.check_only:
        return check_only(args.cache)
    harness = Harness(args)
    started = time.monotonic()
    try:
        code = harness.main()
    finally:
        harness.close()
    harness.checks.figures["whole run"] = time.monotonic() - started
    print(harness.checks.table())
    return code


if __name__ == "__main__":
    sys.exit(main())
