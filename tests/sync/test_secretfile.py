"""``sync.secretfile``: the key-file rules sync.keys and sync.tlscerts share, in their words."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.secretfile import read_secret, write_file


class _Refused(Exception):
    """A caller's own error class: read_secret must raise it, with the caller's noun."""


def _read(path: Path, max_size: int = 64) -> bytes:
    return read_secret(path, what="test key", missing="make one", max_size=max_size, error=_Refused)


def test_a_key_written_owner_only_is_read_back_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    old = os.umask(0)
    try:
        write_file(path, b"secret", 0o600, replace=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _read(path) == b"secret"
    assert [p.name for p in tmp_path.iterdir()] == ["k.pem"]  # no temporary file left


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: None, "no test key at .*: make one"),
        (lambda p: os.mkfifo(p, 0o600), "is not a regular file, so not a test key"),
        (lambda p: (p.write_bytes(b"x"), p.chmod(0o640)), r"readable by others \(mode 0640\)"),
        (lambda p: (p.write_bytes(b"x" * 65), p.chmod(0o600)), "65 bytes: not a test key"),
    ],
    ids=["missing", "fifo", "group-readable", "too-large"],
)
def test_a_file_that_is_no_owner_only_key_is_refused_in_the_callers_words(
    tmp_path: Path, make: Callable[[Path], object], says: str
) -> None:
    path = tmp_path / "k.pem"
    make(path)
    with pytest.raises(_Refused, match=says):
        _read(path)


def test_a_key_is_never_overwritten_but_a_public_file_is_replaced(tmp_path: Path) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    write_file(key, b"first", 0o600, replace=False)
    with pytest.raises(FileExistsError):
        write_file(key, b"second", 0o600, replace=False)
    assert key.read_bytes() == b"first"
    write_file(cert, b"old", 0o644, replace=True)
    write_file(cert, b"new", 0o644, replace=True)
    assert cert.read_bytes() == b"new" and stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pem", "k.pem"]
