"""The city broker as shipped: ``config/mosquitto/mosquitto.conf`` and ``acl`` on a real mosquitto,
with certificates made by :mod:`sync.tlscerts` for the test.

Only what a test run must change is changed in the shipped files, each substitution checked to
match exactly once (a reworded example fails here loudly instead of running another config):
the install folder ``/etc/mosquitto/evaluator/`` becomes a temporary folder, ``listener 8883``
a free port on 127.0.0.1, the persistence folder and the log file move into the temporary
folder.  Everything else (TLS, ``require_certificate``, the CN as user name and client id, the
ACL, no anonymous client) is the file a city installs.

Run as root, mosquitto drops to the ``mosquitto`` user before it reads the ACL: the folder is
then given to that user, as README.md tells a city to do with /etc/mosquitto/evaluator.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sync import tlscerts
from tests.support import REPO, SupportError, binary, free_port, port_open, stop_process, wait_for

SHIPPED = REPO / "config" / "mosquitto"
INSTALL_DIR = "/etc/mosquitto/evaluator/"


@dataclass(frozen=True)
class Identity:
    """A client's certificate and key files (and the CA file it checks the broker with)."""

    name: str
    cert: Path
    key: Path
    ca: Path


class CityPki:
    """A city CA in ``folder`` and the certificates a test asks for: the broker's (for
    ``localhost`` and ``127.0.0.1``), pads' and receivers' (``hub-…``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = tlscerts.make_ca(folder / "ca")
        self.broker = self._issue("broker", server_names=("localhost", "127.0.0.1"))

    def _issue(self, name: str, **kwargs: object) -> Identity:
        key = tlscerts.create_tls_key(self.folder / f"{name}.key")
        cert = self.folder / f"{name}.crt"
        csr = tlscerts.make_csr(key, name)
        cert.write_bytes(tlscerts.sign_csr(csr, self.ca, **kwargs))  # type: ignore[arg-type]
        return Identity(name, cert, self.folder / f"{name}.key", self.ca.cert_path)

    def client(self, name: str) -> Identity:
        """The certificate of pad or receiver ``name`` (made once)."""
        if (self.folder / f"{name}.crt").exists():
            return Identity(name, self.folder / f"{name}.crt", self.folder / f"{name}.key",
                            self.ca.cert_path)  # fmt: skip
        return self._issue(name, receiver=name.startswith(tlscerts.RECEIVER_PREFIX))


def _substitute(text: str, old: str, new: str, *, at_least: int = 1, exactly: bool = True) -> str:
    count = text.count(old)
    if count < at_least or (exactly and count != 1):
        raise SupportError(f"the shipped mosquitto config changed: {old!r} found {count} times")
    return text.replace(old, new)


class TlsBroker:
    """mosquitto running the shipped config and ACL, on a free port of 127.0.0.1."""

    host = "127.0.0.1"

    def __init__(self, pki: CityPki) -> None:
        self.pki = pki
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="evaluator-broker-"))
        for name, source in (("ca.crt", pki.ca.cert_path), ("broker.crt", pki.broker.cert),
                             ("broker.key", pki.broker.key),
                             ("crl.pem", pki.ca.folder / tlscerts.CRL_NAME)):  # fmt: skip
            shutil.copyfile(source, self.folder / name)
        shutil.copyfile(SHIPPED / "acl", self.folder / "acl")
        (self.folder / "data").mkdir()
        self.log = self.folder / "mosquitto.log"
        text = (SHIPPED / "mosquitto.conf").read_text(encoding="utf-8")
        text = _substitute(text, INSTALL_DIR, f"{self.folder}/", at_least=4, exactly=False)
        text = _substitute(text, "\nlistener 8883\n", f"\nlistener {self.port} {self.host}\n")
        text = _substitute(text, "\npersistence_location /var/lib/mosquitto/\n",
                           f"\npersistence_location {self.folder}/data/\n")  # fmt: skip
        text = _substitute(text, "\nlog_dest syslog\n", f"\nlog_dest file {self.log}\n")
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text(text, encoding="utf-8")
        if os.geteuid() == 0:  # mosquitto drops to its own user before reading the ACL
            user = pwd.getpwnam("mosquitto")
            for path in (self.folder, *self.folder.rglob("*")):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [binary("mosquitto"), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                _out, err = self.process.communicate()
                raise SupportError(
                    f"mosquitto exited: {err.decode(errors='replace')} {self.logs()}"
                )
            return port_open(self.port)

        wait_for(up, 10, "mosquitto (TLS) to listen")

    def install_crl(self) -> None:
        """The CA's current ``crl.pem`` copied to the broker's (as the README tells a city)."""
        target = self.folder / "crl.pem"
        shutil.copyfile(self.pki.ca.folder / tlscerts.CRL_NAME, target)
        if os.geteuid() == 0:
            user = pwd.getpwnam("mosquitto")
            os.chown(target, user.pw_uid, user.pw_gid)

    def logs(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def listening_ports(self) -> set[int]:
        """The TCP ports the broker process listens on (from /proc: its sockets in LISTEN)."""
        assert self.process is not None
        inodes = set()
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            if self.process.stderr is not None:
                self.process.stderr.close()
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
