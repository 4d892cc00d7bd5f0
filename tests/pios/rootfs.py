"""The guest's root filesystem: Debian bookworm arm64 built with debootstrap (second stage under
qemu-user through binfmt_misc), the packages a Raspberry Pi OS Lite pad has after
``systemd/install.sh`` (so the install finds them and never needs the archive), a generated ssh
key, networking by systemd-networkd, and the ext4 disk image made from the tree without loop
mounts (``mkfs.ext4 -d``).

Cached under ``CACHE/rootfs-<key>/``: the key is a hash of everything that goes into the tree
(the package lists, the mirror, ``RECIPE`` for the build steps); a rerun with the same key only
copies the finished image.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"

# debootstrap's own set: enough to boot under systemd and run apt in the chroot.
BASE = ["systemd-sysv", "udev", "dbus", "kmod", "iproute2", "ca-certificates", "openssh-server",
        "sqlite3", "procps", "less", "netbase", "systemd-timesyncd"]
# Installed with apt in the chroot after the kernel's initramfs knows the virtio modules.
KERNEL = ["linux-image-arm64", "initramfs-tools"]
# What systemd/install.sh installs on a Pi (its PACKAGES, read from the script, so the image
# follows it), preinstalled so the install finds them and needs no archive; plus sudo, the
# technician's way to run commands as the pad's user.  python3-lgpio (PI_PACKAGES) is Raspberry
# Pi archive only: install.sh warns and goes on without it.
INSTALL_SH = Path(__file__).resolve().parents[2] / "systemd" / "install.sh"
EXTRA = ["sudo"]


def install_packages(script: Path = INSTALL_SH) -> list[str]:
    """The names in install.sh's ``PACKAGES=( ... )`` (comments dropped)."""
    text = script.read_text(encoding="utf-8")
    found = re.search(r"^PACKAGES=\((.*?)^\)", text, re.M | re.S)
    if found is None:
        raise RuntimeError(f"{script}: no PACKAGES=( ... ) list")
    names = []
    for line in found.group(1).splitlines():
        names += line.split("#", 1)[0].split()
    if not names or not all(re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", n) for n in names):
        raise RuntimeError(f"{script}: PACKAGES is not a plain list of package names: {names}")
    return names


# PI_VM_EXTRA_PACKAGES="a b": more packages in the image, to try one before it is in
# install.sh (the build check names them: a run with extras proves the image, not install.sh).
TRYING = os.environ.get("PI_VM_EXTRA_PACKAGES", "").replace(",", " ").split()
PAD = install_packages() + EXTRA + TRYING
# Bump when the build steps below change what the tree holds (the lists are hashed already).
RECIPE = 2
# Into the initramfs: the disk, the PCI bus it hangs on, and the screen (KMS early).
INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_gpu", "virtio_console",
                     "virtio_input", "ext4"]
DISK_SIZE = "6G"


def key() -> str:
    text = "\n".join([MIRROR, SUITE, *BASE, "|", *KERNEL, "|", *PAD, "|", *INITRAMFS_MODULES,
                      DISK_SIZE, str(RECIPE)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run(cmd: list[str], log: Path, **kw: object) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}); see {log}")


def _chroot(root: Path, script: str, log: Path) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
           "LANG": "C.UTF-8", "HOME": "/root"}
    _run(["chroot", str(root), "/bin/sh", "-euxc", script], log, env=env)


def ensure_binfmt() -> None:
    if not Path("/proc/sys/fs/binfmt_misc/status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"],
                       check=True)
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)


def build(cache: Path, say=print) -> Path:
    """The cached build's folder (``disk.img``, ``vmlinuz``, ``initrd.img``, ``id_ed25519``),
    built first when missing."""
    out = cache / f"rootfs-{key()}"
    if (out / "done").exists():
        say(f"rootfs: cached {out}")
        return out
    started = time.monotonic()
    work = cache / f"rootfs-{key()}.work"
    if work.exists():  # an interrupted build: its mounts first, then the tree
        for where in ["dev/pts", "dev", "sys", "proc"]:
            if os.path.ismount(work / "root" / where):
                subprocess.run(["umount", "-l", str(work / "root" / where)], check=True)
        _run(["rm", "-rf", "--one-file-system", str(work)], cache / "rm.log")
    root = work / "root"
    root.mkdir(parents=True)
    log = work / "build.log"
    say(f"rootfs: building {out} (log {log})")
    ensure_binfmt()
    _run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(BASE)}",
          SUITE, str(root), MIRROR], log)
    (root / "etc/initramfs-tools").mkdir(parents=True, exist_ok=True)
    (root / "etc/initramfs-tools/modules").write_text("\n".join(INITRAMFS_MODULES) + "\n")
    # Only the listed modules: mkinitramfs under qemu-user is the slowest step of the build
    # (MODULES=most copies every storage driver, ~15 min); the guest's hardware is known.
    (root / "etc/initramfs-tools/conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/initramfs-tools/conf.d/pad-vm.conf").write_text("MODULES=list\nCOMPRESS=gzip\n")
    (root / "etc/hostname").write_text("pad-vm\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 pad-vm\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (root / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
    net = root / "etc/systemd/network/20-wired.network"
    net.write_text("[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n")
    # The hall's time server: the harness's SNTP server on the host's loopback (10.0.2.2:123).
    (root / "etc/systemd/timesyncd.conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/timesyncd.conf.d/pad-vm.conf").write_text(
        "[Time]\nNTP=10.0.2.2\nFallbackNTP=\nPollIntervalMinSec=32\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    shutil.copy("/etc/resolv.conf", resolv)
    mounts = [("proc", "proc"), ("sysfs", "sys")]
    for fstype, where in mounts:
        subprocess.run(["mount", "-t", fstype, fstype, str(root / where)], check=True)
    subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
    subprocess.run(["mount", "--bind", "/dev/pts", str(root / "dev/pts")], check=True)
    try:
        _chroot(root, "apt-get update -qq && apt-get install -y -q --no-install-recommends "
                + " ".join(KERNEL + PAD) + " && apt-get clean", log)
        _chroot(root, "systemctl enable systemd-networkd ssh && "
                "passwd -d root && rm -f /etc/ssh/ssh_host_* && ssh-keygen -A", log)
    finally:
        for where in ["dev/pts", "dev", "sys", "proc"]:
            subprocess.run(["umount", "-l", str(root / where)], check=False)
    (root / "etc/resolv.conf").write_text("nameserver 10.0.2.3\n")
    # The harness's key: root logs in with it (only reachable through the host's loopback).
    keyfile = work / "id_ed25519"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keyfile)], log)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(f"{keyfile}.pub", ssh_dir / "authorized_keys")
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    # Boot files for qemu -kernel/-initrd.
    boot = sorted((root / "boot").glob("vmlinuz-*"))[-1]
    version = boot.name.removeprefix("vmlinuz-")
    shutil.copy(boot, work / "vmlinuz")
    shutil.copy(root / "boot" / f"initrd.img-{version}", work / "initrd.img")
    _run(["mkfs.ext4", "-q", "-F", "-L", "pad-root", "-d", str(root), str(work / "disk.img"),
          DISK_SIZE], log)
    _run(["rm", "-rf", "--one-file-system", str(root)], log)
    (work / "done").write_text(f"{time.monotonic() - started:.0f}\n")
    work.rename(out)
    say(f"rootfs: built in {time.monotonic() - started:.0f} s")
    return out


def build_seconds(folder: Path) -> float:
    return float((folder / "done").read_text())
