"""The VM harness's pieces, without a VM (a few seconds, in the normal suite): what
``scripts/pi-vm`` would give the guest still fits the pad and install.sh as they are now, and
its host-side parts (SNTP, loopback plug, screen comparison, QMP client) work.  The full run
(about 15 minutes from the cache, 22 the first time) is ``scripts/pi-vm``: docs/pi-os.md."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from evaluator.config import check_config
from sync import tlscerts
from tests.pios import rootfs, run, screens, wheels
from tests.pios.ntp import NTP_EPOCH, SntpServer
from tests.pios.vm import Qmp
from tests.support import REPO


def test_image_packages_are_what_install_sh_installs() -> None:
    names = rootfs.install_packages()
    assert "python3-pygame" in names and "fonts-noto-cjk" in names
    assert set(names) <= set(rootfs.PAD)
    assert not {"build-essential", "libsdl2-dev"} & set(rootfs.PAD)


def test_install_packages_refuses_a_list_it_cannot_read(tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    script.write_text('PACKAGES=(\n  python3 "$(evil)"\n)\n')
    with pytest.raises(RuntimeError, match="not a plain list"):
        rootfs.install_packages(script)
    script.write_text("PKGS=(python3)\n")
    with pytest.raises(RuntimeError, match="no PACKAGES"):
        rootfs.install_packages(script)


def test_rootfs_key_follows_the_package_list(monkeypatch: pytest.MonkeyPatch) -> None:
    key = rootfs.key()
    monkeypatch.setattr(rootfs, "PAD", [*rootfs.PAD, "extra-package"])
    assert rootfs.key() != key


def test_guest_config_passes_config_check(tmp_path: Path) -> None:
    """The config the harness writes in the guest, with real TLS files as it makes them."""
    tls = tmp_path / "tls"
    ca = tlscerts.make_ca(tmp_path / "ca")
    key = tlscerts.create_tls_key(tls / "device.key")
    (tls / "device.crt").write_bytes(tlscerts.sign_csr(tlscerts.make_csr(key, run.DEVICE_ID), ca))
    (tls / "ca.crt").write_bytes(ca.cert_path.read_bytes())
    config = tmp_path / "evaluator.toml"
    text = run.guest_config(8883).replace('port = "/dev/ttyS0"', 'port = "loop://"')
    config.write_text(text, encoding="utf-8")
    assert [str(p) for p in check_config([config])] == []


def test_never_ready_build_takes_out_every_ready(tmp_path: Path) -> None:
    app = tmp_path / "evaluator" / "app.py"
    app.parent.mkdir()
    app.write_text((REPO / "evaluator" / "app.py").read_text(encoding="utf-8"), encoding="utf-8")
    wheels.never_ready(tmp_path)
    text = app.read_text(encoding="utf-8")
    assert "READY=1\")" not in text and "pi-vm: never READY" in text
    compile(text, str(app), "exec")


def test_screens_tell_the_pad_screens_apart(tmp_path: Path) -> None:
    folder = screens.render_expected(tmp_path)
    for name in ("signed_out", "idle", "presenting"):
        assert screens.compare(folder / f"{name}.png", folder / f"{name}.png").share == 1.0
    assert screens.compare(folder / "idle.png", folder / "signed_out.png").share < (
        screens.PASS_SHARE)
    assert screens.compare(folder / "idle.png", folder / "presenting.png").share < 0.6
    black = tmp_path / "black.ppm"
    black.write_bytes(b"P6 800 480 255\n" + bytes(800 * 480 * 3))
    match = screens.compare(black, folder / "idle.png")
    assert match.share < 0.2 and match.mean_level == 0


def test_sntp_server_answers_with_the_host_clock() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = SntpServer(port=port)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            request = bytes([0x23]) + bytes(39) + struct.pack("!II", 1234, 5678)
            client.sendto(request, ("127.0.0.1", port))
            reply, _ = client.recvfrom(100)
    finally:
        server.stop()
    assert len(reply) == 48 and reply[0] & 0x07 == 4 and reply[1] == 1  # server, stratum 1
    assert reply[0] >> 6 == 0  # leap: synchronised
    assert struct.unpack("!II", reply[24:32]) == (1234, 5678)  # origin = the request's transmit
    transmit = struct.unpack("!I", reply[40:44])[0] - NTP_EPOCH
    assert abs(transmit - time.time()) < 5


def test_loopback_plug_echoes(tmp_path: Path) -> None:
    path = tmp_path / "counter.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)
        plug = run.LoopbackPlug(path)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            conn.sendall(b'{"event": "selftest.loopback"}\n')
            got = b""
            while not got.endswith(b"\n"):
                got += conn.recv(100)
        plug.stop()
    assert got == b'{"event": "selftest.loopback"}\n'


def test_qmp_client_speaks_the_protocol(tmp_path: Path) -> None:
    path = tmp_path / "qmp.sock"
    seen: list[dict] = []
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)

        def qemu() -> None:
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as f:
                f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
                f.flush()
                for line in f:
                    seen.append(json.loads(line))
                    if seen[-1]["execute"] == "screendump":
                        f.write(b'{"event": "RESET"}\n{"error": {"desc": "no screen"}}\n')
                    else:
                        f.write(b'{"return": {}}\n')
                    f.flush()

        thread = threading.Thread(target=qemu, daemon=True)
        thread.start()
        qmp = Qmp(path, timeout=5)
        assert qmp.execute("send-key", keys=[{"type": "qcode", "data": "1"}]) == {}
        with pytest.raises(Exception, match="no screen"):
            qmp.execute("screendump", filename="/x.ppm")
        qmp.close()
        thread.join(5)
    assert [m["execute"] for m in seen] == ["qmp_capabilities", "send-key", "screendump"]


def test_check_only_runs() -> None:
    proc = subprocess.run([str(REPO / "scripts" / "pi-vm"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--check-only" in proc.stdout
