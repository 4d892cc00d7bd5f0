"""Private key files: read only when owner-only, created owner-only, never overwritten, never cut.

Why one module: the device's signing key (:mod:`sync.keys`) and the TLS and CA keys
(:mod:`sync.tlscerts`) are guarded by the same rules, and a fix to one (a FIFO that hangs the
pad, a key briefly readable by others, a half-written key after a full disk) must reach both.
Each caller keeps its own error class and wording: :func:`read_secret` takes them, and
:func:`write_file` (also the public certificates' writer) raises :class:`OSError`
(:class:`FileExistsError` for a key already there) for the caller to word.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from sync.durable import fsync_dir

__all__ = ["read_secret", "write_file"]


def read_secret(
    path: Path, *, what: str, missing: str, max_size: int, error: Callable[[str], Exception]
) -> bytes:
    """The bytes of the key file ``path``; ``error(message)`` is raised when it is missing
    (``no {what} at {path}: {missing}``), unreadable, not a regular file, readable by others
    than its owner, or larger than ``max_size`` (then it is not a key)."""
    try:
        # Non-blocking: a FIFO at the path must not hang the pad; checked before reading.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise error(f"no {what} at {path}: {missing}") from exc
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc}") from exc
    try:
        info = os.fstat(fd)  # the file opened, not whatever the path names a moment later
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file, so not a {what}")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise error(
                f"the {what} {path} is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
            )
        if info.st_size > max_size:
            raise error(f"{path} is {info.st_size} bytes: not a {what}")
        return os.read(fd, max_size + 1)
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc}") from exc
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """``data`` written whole to ``path`` with ``mode`` (whatever the umask), durably.

    Written to a temporary file first (fsynced), then linked in place (``replace=False``:
    :class:`FileExistsError` when ``path`` exists, or is a dangling symlink, refused atomically)
    or renamed over it (``replace=True``): a crash or a nearly full disk never leaves a cut file.
    The folder must exist; any failure is an :class:`OSError`.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:  # a nearly full disk may take part of it: write the rest
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
