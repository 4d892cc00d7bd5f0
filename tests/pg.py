"""A private PostgreSQL server for the tests: ``initdb`` in a temp dir, ``pg_ctl start`` on a free
port with its unix socket in that dir, stopped (and the dir removed) at the end.

Never the machine's own server (a fresh CI machine has none running).  ``initdb`` refuses to run
as root, so as root the data dir is chowned to ``postgres`` and the tools run through
``runuser -u postgres --``.  Missing tools are an error (:class:`SupportError`), never a skip:
``scripts/setup`` installs the Debian ``postgresql`` package.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import SupportError, free_port, wait_for

TOOLS = ("initdb", "pg_ctl")


def pg_bin(name: str) -> str:
    """``initdb``/``pg_ctl``: on PATH, else the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise SupportError(f"{name} (PostgreSQL) is not installed; run scripts/setup")
    return candidates[-1]


class PostgresServer:
    """One throw-away PostgreSQL cluster; :attr:`url` is a psycopg connection URL."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "hub"
        self._as_root = os.geteuid() == 0
        self._started = False
        try:
            self._init()
            self._start()
        except BaseException:
            self.stop()
            raise

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise SupportError(f"{' '.join(argv[:2])} failed: {done.stderr.strip()[-800:]}")
        return done

    def _init(self) -> None:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root, 0o700)
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def _start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=on -c max_connections=50"
        )
        self._run(
            pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
            str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        self._started = True
        wait_for(self._answers, 30, "PostgreSQL to accept connections")

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def fresh_database(self, name: str) -> str:
        """A new empty database on this server; its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self._started:
            try:
                self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            except (SupportError, subprocess.TimeoutExpired):
                self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)
