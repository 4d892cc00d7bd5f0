"""One Debian arm64 guest under qemu-system-aarch64 (TCG: no KVM for arm on an x86 host).

What the guest has, as a Pi pad would:
- the disk (a copy-on-write overlay on the cached image, so the cache stays clean) on virtio-blk,
  Debian's arm64 kernel and initrd given with ``-kernel``/``-initrd``;
- a virtio GPU with one 800 × 480 output: a real DRM/KMS device (``/dev/dri/card0``) for SDL's
  KMSDRM driver;
- a virtio keyboard and tablet (``/dev/input/event*``);
- the counter port: a PCI 16550 UART (``/dev/ttyS0`` through 8250_pci, the ``ttyS`` group that
  the shipped unit's ``DeviceAllow=char-ttyS`` already allows) wired to a unix socket on the host;
- user networking: the host's loopback is 10.0.2.2, the guest's ssh port is forwarded to a free
  port of the host's 127.0.0.1 (nothing else is reachable from outside);
- the kernel console on the first UART (``ttyAMA0``), to a log file;
- QMP on a unix socket: ``screendump``, ``send-key``, ``system_reset``, ``quit``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

from tests.support import SupportError, binary, free_port

WIDTH, HEIGHT = 800, 480


def _die_with_parent() -> None:
    """qemu gets SIGTERM when the harness dies (a killed run leaves no VM behind)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Qmp:
    """A QMP connection: one command at a time, events skipped."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise SupportError(f"QMP socket {path} never answered") from None
                time.sleep(0.1)
        self.sock.settimeout(120)
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while True:
            line = self.file.readline()
            if not line:
                raise SupportError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command: str, **arguments: object) -> object:
        msg: dict[str, object] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        if "error" in reply:
            raise SupportError(f"QMP {command}: {reply['error']}")
        return reply.get("return")

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


class Vm:
    def __init__(self, image: Path, folder: Path, key: Path) -> None:
        self.image = image
        self.folder = folder
        self.key = key
        self.ssh_port = free_port()
        self.disk = folder / "overlay.qcow2"
        self.qmp_path = folder / "qmp.sock"
        self.counter_path = folder / "counter.sock"
        self.console_log = folder / "console.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.qmp: Qmp | None = None
        self.counter: socket.socket | None = None
        self._counter_buf = b""

    def create_disk(self) -> None:
        subprocess.run([binary("qemu-img"), "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        str(self.image / "disk.img"), str(self.disk)], check=True)

    def start(self) -> None:
        for path in (self.qmp_path, self.counter_path):
            path.unlink(missing_ok=True)
        cmd = [
            binary("qemu-system-aarch64"),
            "-M", "virt", "-cpu", "max,pauth-impdef=on", "-smp", "2", "-m", "2G",
            "-accel", "tcg,thread=multi",
            "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyAMA0 quiet systemd.show_status=0 "
                       "net.ifnames=0",
            "-drive", f"file={self.disk},if=none,id=disk,format=qcow2,cache=unsafe",
            "-device", "virtio-blk-pci,drive=disk",
            "-device", f"virtio-gpu-pci,xres={WIDTH},yres={HEIGHT}",
            "-device", "virtio-keyboard-pci", "-device", "virtio-tablet-pci",
            "-chardev", f"socket,id=counter,path={self.counter_path},server=on,wait=off",
            "-device", "pci-serial,chardev=counter",
            "-netdev", f"user,id=net,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            # romfile= : no PXE option ROM (efi-virtio.rom is in ipxe-qemu, which
            # --no-install-recommends leaves out on a fresh host; the guest never net-boots)
            "-device", "virtio-net-pci,netdev=net,romfile=",
            "-chardev", f"file,id=console,path={self.console_log}",
            "-serial", "chardev:console",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-display", "none", "-vga", "none", "-nodefaults",
        ]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                                        stdout=(self.folder / "qemu.out").open("ab"),
                                        stderr=subprocess.STDOUT)
        try:
            self.qmp = Qmp(self.qmp_path)
        except OSError as exc:
            out = (self.folder / "qemu.out").read_text(errors="replace").strip()[-600:]
            if self.process.poll() is not None and out:
                raise RuntimeError(f"qemu-system-aarch64 exited: {out}") from exc
            raise

    # --- ssh -----------------------------------------------------------------------------------
    def _ssh_cmd(self, command: str) -> list[str]:
        return [binary("ssh"), "-q", "-i", str(self.key), "-p", str(self.ssh_port),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=10",
                "-o", "BatchMode=yes", "root@127.0.0.1", command]

    def ssh(self, command: str, timeout: float = 600, check: bool = True,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._ssh_cmd(command), capture_output=True, timeout=timeout,
                              input=input.decode() if input is not None else None, text=True)
        if check and proc.returncode != 0:
            raise SupportError(f"guest: {command!r} exited {proc.returncode}:\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def put(self, local: Path, remote: str) -> None:
        subprocess.run([binary("scp"), "-q", "-i", str(self.key), "-P", str(self.ssh_port),
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "BatchMode=yes", "-r", str(local), f"root@127.0.0.1:{remote}"],
                       check=True, timeout=600)

    def get(self, remote: str, local: Path) -> None:
        subprocess.run([binary("scp"), "-q", "-i", str(self.key), "-P", str(self.ssh_port),
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "BatchMode=yes", f"root@127.0.0.1:{remote}", str(local)],
                       check=True, timeout=600)

    def wait_ssh(self, timeout: float) -> float:
        """Seconds until ssh answers (the guest has booted far enough for sshd)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise SupportError(f"qemu exited {self.process.returncode}: see {self.folder}")
            try:
                if self.ssh("true", timeout=30, check=False).returncode == 0:
                    return time.monotonic() - started
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        raise SupportError(f"no ssh after {timeout:.0f} s; console: {self.console_log}")

    def wait_guest(self, check: str, timeout: float, what: str, every: float = 1.0) -> float:
        """Seconds until the shell command ``check`` succeeds in the guest."""
        started = time.monotonic()
        while True:
            if self.ssh(check, timeout=60, check=False).returncode == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise SupportError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    # --- QMP -----------------------------------------------------------------------------------
    def screendump(self, path: Path) -> Path:
        assert self.qmp is not None
        path.unlink(missing_ok=True)
        self.qmp.execute("screendump", filename=str(path))
        return path

    def send_key(self, qcode: str) -> None:
        assert self.qmp is not None
        self.qmp.execute("send-key", keys=[{"type": "qcode", "data": qcode}], **{"hold-time": 150})

    def system_reset(self) -> None:
        """A hard reset: the guest's caches and unwritten pages are lost, as at a power cut."""
        assert self.qmp is not None
        self.close_counter()
        self.qmp.execute("system_reset")

    # --- the counter line ------------------------------------------------------------------------
    def open_counter(self) -> None:
        self.close_counter()
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(self.counter_path))
        sock.settimeout(1)
        self.counter = sock
        self._counter_buf = b""

    def close_counter(self) -> None:
        if self.counter is not None:
            self.counter.close()
            self.counter = None

    def counter_send(self, frame: dict) -> None:
        assert self.counter is not None
        self.counter.sendall(json.dumps(frame, ensure_ascii=False).encode() + b"\n")

    def counter_read(self, timeout: float, match) -> dict:
        """The next frame from the pad that ``match`` accepts (others are skipped)."""
        assert self.counter is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n" in self._counter_buf:
                line, self._counter_buf = self._counter_buf.split(b"\n", 1)
                try:
                    frame = json.loads(line)
                except ValueError:
                    continue
                if match(frame):
                    return frame
            try:
                chunk = self.counter.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                raise SupportError("the counter line closed")
            self._counter_buf += chunk
        raise SupportError(f"no matching frame from the pad's counter port in {timeout:.0f} s")

    def stop(self) -> None:
        self.close_counter()
        if self.process is None:
            return
        if self.process.poll() is None and self.qmp is not None:
            with contextlib.suppress(SupportError, OSError):
                self.qmp.execute("quit")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.qmp is not None:
            self.qmp.close()
        self.qmp = None
        self.process = None


def env_ok() -> list[str]:
    """What is missing on the host to run the VM (empty: nothing)."""
    missing = []
    for tool in ("qemu-system-aarch64", "qemu-img", "debootstrap", "mkfs.ext4", "ssh", "scp",
                 "mosquitto"):
        try:
            binary(tool)
        except SupportError:
            missing.append(tool)
    if not Path("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists() and not any(
        Path(p).exists() for p in ("/usr/bin/qemu-aarch64-static",)
    ):
        missing.append("qemu-user-static")
    if os.geteuid() != 0:
        missing.append("root (debootstrap, chroot)")
    return missing
