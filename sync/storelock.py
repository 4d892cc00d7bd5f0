"""One pad, one store: the lock every writer of a rating store holds (issue 14).

Two ``evaluator run`` processes on one store were both accepted: the second closed the first
one's open case as ``restart`` (and the city sent a false SMS follow-up).  Now a writer of the
store (:class:`sync.store.Store`, opened read-write) takes this lock first and is refused at once
(:class:`StoreLocked`, never a wait) while another process holds it.  Read-only openers
(``Store.open_read_only``: ``evaluator ratings``, ``verify``, ``stats``) take no lock and run
beside the pad.

What is locked, and why: ``flock(LOCK_EX | LOCK_NB)`` on a sidecar file ``<store>.lock`` next to
the store's **resolved** path (``os.path.realpath``: symlinks, a symlinked folder, ``./x`` and
``x``, ``..`` and relative paths all name one lock file), never on the database file itself:

* SQLite locks the database file with POSIX (``fcntl``) locks, which belong to the process and
  the inode: closing ANY descriptor of that file drops every one of them (see ``_FILES_LOCK`` in
  :mod:`sync.store`), so Python must not keep opening and closing the database file to lock it;
  and on NFS ``flock`` is emulated with ``fcntl`` locks, which would collide with SQLite's.  The
  sidecar is a file SQLite never opens.
* The database file's inode is not the store's identity: there is none before the first start
  (``_create`` links a whole new file in), and a damaged file is renamed aside and replaced by a
  new one.  The sidecar's name stays, so the lock covers the creation and the keep-aside too.
* A BSD ``flock`` lock belongs to the open file description: it dies with the process that holds
  it (``SIGKILL``, a power cut, the watchdog's ``SIGABRT``), so a crashed pad never leaves a lock
  behind and systemd's next start succeeds.  The descriptor is close-on-exec (children such as
  the voice process never inherit it).  The file itself stays (never deleted: deleting a lock
  file while someone waits lets two holders in); its content is the holder's pid, for people.

A second name made with a hard link is not another path to one lock file: :class:`sync.store.
Store` refuses to write a store file with more than one name (SQLite finds the -wal by name).

In one process every writer of the store (the UI thread's store, the sync worker's, the
scheduled check's) shares one lock, counted: :func:`lock_store` again in the same process
returns another reference, and the lock is released when the last reference is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from evaluator.rules.errors import StoreError

#: What is appended to the store's resolved path to name its lock file.
LOCK_SUFFIX = ".lock"
_PROC_LOCKS = "/proc/locks"
_COMMAND_CHARS = 200


class StoreLocked(StoreError):
    """Another process writes this rating store; this writer was refused and wrote nothing.

    ``path`` is the store as given, ``lock_path`` its lock file, ``pid`` the holder's process id
    (``None`` when it cannot be known) and ``command`` its command line (``""`` if unreadable).
    """

    def __init__(self, path: Path, lock_path: Path, pid: int | None, command: str) -> None:
        self.path = path
        self.lock_path = lock_path
        self.pid = pid
        self.command = command
        real = Path(str(lock_path)[: -len(LOCK_SUFFIX)])
        where = f"{path}" if str(real) == str(path) else f"{path} (that is {real})"
        who = f"pid {pid}" if pid is not None else "pid unknown"
        if command:
            who += f": {command}"
        super().__init__(
            f"the rating store {where} is in use by another process ({who}; lock {lock_path}): "
            "only one pad may write a store, so this one was refused and wrote nothing. "
            "Fix: stop the other pad first (sudo systemctl stop evaluator), or leave it running; "
            "evaluator ratings, verify and stats read the store beside it"
        )


def lock_path(path: Path | str) -> Path:
    """The lock file of the store at ``path``: its resolved path plus :data:`LOCK_SUFFIX`."""
    return Path(os.path.realpath(path) + LOCK_SUFFIX)


@dataclass
class _Held:
    fd: int
    count: int


_GUARD = threading.Lock()
_HELD: dict[str, _Held] = {}


class StoreLock:
    """One reference to this process's lock on a store (from :func:`lock_store`).

    :meth:`release` (idempotent, or leaving a ``with`` block) gives it back; the last reference
    of the process unlocks and closes the lock file."""

    def __init__(self, path: Path, lock_file: Path) -> None:
        self.path = path
        self.lock_path = lock_file
        self._released = False

    def release(self) -> None:
        with _GUARD:
            if self._released:
                return
            self._released = True
            key = str(self.lock_path)
            held = _HELD.get(key)
            if held is None:
                return
            held.count -= 1
            if held.count <= 0:
                del _HELD[key]
                os.close(held.fd)  # closing the only descriptor of it releases the flock

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_store(path: Path | str) -> StoreLock:
    """Lock the store at ``path`` for writing, at once or never (``LOCK_NB``).

    Creates the store's folder and the lock file if missing.  Raises :class:`StoreLocked` when
    another process holds the lock, :class:`OSError` when the lock file can be neither created
    nor opened (a read-only folder for a new store: the store's own open says what to fix).
    """
    given = Path(path)
    lock_file = lock_path(given)
    key = str(lock_file)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
            return StoreLock(given, lock_file)
        fd = _take(given, lock_file)
        _HELD[key] = _Held(fd, 1)
        return StoreLock(given, lock_file)


def held_here(path: Path | str) -> bool:
    """This process holds the lock of the store at ``path``."""
    with _GUARD:
        return str(lock_path(path)) in _HELD


def _take(given: Path, lock_file: Path) -> int:
    for _ in range(5):  # the file replaced between open and flock (a person deleted it): again
        fd = _open(lock_file)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _holder(fd)
                raise StoreLocked(given, lock_file, pid, _command(pid)) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_file))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            _note_pid(fd)
            return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    raise StoreError(f"the lock file {lock_file} of the rating store {given} keeps being replaced")


def _open(lock_file: Path) -> int:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        # The existing file, or a new one this process made (then given to the folder's owner).
        # Made by another opener in between: opened again; a dangling link: created through it.
        for _ in range(3):
            try:
                return os.open(lock_file, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                pass
            with contextlib.suppress(FileExistsError):
                fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                _give_to_folder_owner(fd, lock_file.parent)
                return fd
        return os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        # Another user's lock file, or a read-only disk: a read-only descriptor locks as well
        # (the store's own open then says whether the store itself can be written).
        try:
            return os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise exc from None


def _give_to_folder_owner(fd: int, folder: Path) -> None:
    """A lock file root just made (``sudo evaluator run`` or ``selftest`` by hand, the pad
    stopped) goes to the owner of the store's folder, as SQLite gives root's -wal and -shm to
    the database's owner: else, under a strict umask (0600), the pad's user could never open
    it again and the pad could not start."""
    if os.geteuid() != 0:
        return
    try:
        st = os.stat(folder)
        if st.st_uid != 0:
            os.fchown(fd, st.st_uid, st.st_gid)
    except OSError:
        pass  # root's own then: the store's open says what to fix, naming the lock file


def _note_pid(fd: int) -> None:
    """The holder's pid in the lock file, for people and for a refused writer that cannot read
    ``/proc/locks``; a read-only descriptor (another user's file) writes nothing."""
    data = f"{os.getpid()}\n".encode()
    try:  # overwritten in place: truncating to 0 first frees the block, ~0.4 ms on ext4
        os.pwrite(fd, data, 0)
        if os.fstat(fd).st_size != len(data):
            os.ftruncate(fd, len(data))
    except OSError:
        pass


def _holder(fd: int) -> int | None:
    """The pid holding the flock on the file of ``fd``: from ``/proc/locks`` (the kernel's
    word), else the pid written in the file."""
    st = os.fstat(fd)
    exact: list[int] = []
    by_inode: list[int] = []
    try:
        with open(_PROC_LOCKS, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # a waiter, or another kind of lock
        try:
            pid = int(fields[4])
            major, minor, inode = fields[5].split(":")
            if int(inode) != st.st_ino:
                continue
            by_inode.append(pid)
            if (int(major, 16), int(minor, 16)) == (os.major(st.st_dev), os.minor(st.st_dev)):
                exact.append(pid)
        except ValueError:
            continue
    found = exact or (by_inode if len(set(by_inode)) == 1 else [])
    pids = {pid for pid in found if pid > 0 and pid != os.getpid()}
    if len(pids) == 1:
        return pids.pop()
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        return int(text) if text.isdigit() and int(text) != os.getpid() else None
    except (OSError, ValueError):
        return None


def _command(pid: int | None) -> str:
    """The command line of ``pid``, shortened; ``""`` when it cannot be read."""
    if pid is None:
        return ""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        return ""
    text = raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip()
    return text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 1] + "…"
