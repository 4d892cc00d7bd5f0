"""One pad, one store (issue 14): a second writer of a rating store is refused at once, whatever
the path spelling; readers run beside it; the lock dies with its process.

The writer that holds the store is a real process (``python -c`` opening a :class:`Store`), since
the writers of one process share the lock (the UI thread's store and the sync worker's).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.store import Store, StoreDamaged
from sync.storelock import StoreLocked, held_here, lock_path, lock_store
from tests.sync.test_mqtt import full_content

REPO = Path(__file__).resolve().parents[2]
DEVICE = "pad-440500-07"

#: A writer in a process of its own: opens the store, appends a rating, opens a presentation
#: (p-open), says "held" and keeps the store open until its stdin closes (or it is killed).
HOLDER = """
import sys
from sync.store import Store
from tests.sync.test_mqtt import full_content
from tests.sync.test_store import presentation
store = Store(sys.argv[1], device_id=sys.argv[2])
store.append_rating(full_content("HELD-1"))
store.open_presentation(**presentation("p-open"))  # a case on the holder's screen
print("held", flush=True)
sys.stdin.read()
store.close()
"""


@contextlib.contextmanager
def holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process writing the store at ``path``, ready once it said so (it holds the lock)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), DEVICE],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "held\n", f"the holder did not start (exit {proc.wait(10)})"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def spellings(tmp_path: Path, real: Path) -> dict[str, Path]:
    """Other names of the store file ``real`` (in ``tmp_path/var``); the cwd is ``tmp_path``."""
    (tmp_path / "linkdir").symlink_to(real.parent, target_is_directory=True)
    (tmp_path / "link.db").symlink_to(real)
    return {
        "same": real,
        "relative": Path("var/ratings.db"),
        "dot_relative": Path("./var/ratings.db"),
        "dot_dot": tmp_path / "var" / ".." / "var" / "ratings.db",
        "double_slash": Path(f"{tmp_path}//var//ratings.db"),
        "symlinked_dir": tmp_path / "linkdir" / "ratings.db",
        "symlinked_file": tmp_path / "link.db",
    }


SPELLINGS = ["same", "relative", "dot_relative", "dot_dot", "double_slash", "symlinked_dir",
             "symlinked_file"]  # fmt: skip


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_second_writer_is_refused_at_once_whatever_the_path_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """Refused before it looks at, writes or keeps aside anything, naming the store (as given
    and resolved) and the holder's pid; a reader runs beside the holder all the while."""
    real = tmp_path / "var" / "ratings.db"
    Store(real, device_id=DEVICE).close()
    monkeypatch.chdir(tmp_path)
    other = spellings(tmp_path, real)[spelling]
    with holder(real) as proc:
        started = time.monotonic()
        with pytest.raises(StoreLocked) as refused:
            Store(other, device_id=DEVICE)
        took = time.monotonic() - started
        assert refused.value.pid == proc.pid
        message = str(refused.value)
        assert str(other) in message and f"pid {proc.pid}" in message
        assert str(real) in message  # the resolved store, whatever the spelling given
        assert "systemctl stop evaluator" in message
        # LOCK_NB: at once, not after SQLite's 5 s busy wait.
        assert took < 2.0, took
        # Readers run beside the writer.
        reader = Store.open_read_only(other)
        try:
            assert [r["cases"][0]["serial"] for r in reader.records()] == ["HELD-1"]
        finally:
            reader.close()
        assert not held_here(other)
    with Store(other, device_id=DEVICE) as after:  # the holder ended: free again
        assert after.last_seq() == 1


def test_a_hard_link_to_the_store_is_never_written(tmp_path: Path) -> None:
    """A second name for the same file is another lock file and another -wal for SQLite: the
    store is refused (a storage fault for the pad), under either name, and nothing is written."""
    path = tmp_path / "var" / "ratings.db"
    with Store(path, device_id=DEVICE) as store:
        store.append_rating(full_content("S-1"))
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "copy.db"
    os.link(path, other)
    before = path.read_bytes()
    for name in (path, other):
        with pytest.raises(Exception) as refused:
            Store(name, device_id=DEVICE)
        assert not isinstance(refused.value, StoreDamaged)  # never kept aside: not damage
        assert "2 names (hard links)" in str(refused.value) and str(name) in str(refused.value)
        assert not held_here(name)  # the lock taken for the open is given back
    assert path.read_bytes() == before
    other.unlink()
    with Store(path, device_id=DEVICE) as store:
        assert store.last_seq() == 1


def test_a_lock_file_another_user_left_is_named_with_its_fix(tmp_path: Path) -> None:
    """``sudo evaluator run`` with a strict umask leaves ``<store>.lock`` root's 0600: the pad's
    user cannot open it although the store and its folder are its own.  The fault said "make
    the store and its folder writable", which fixes nothing (found by review)."""
    path = tmp_path / "ratings.db"
    Store(path, device_id=DEVICE).close()
    lock = lock_path(path)
    lock.chmod(0)  # as root below, without the capabilities that bypass modes: nobody's file
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to test file modes as root"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    opener = (
        "import sys\nfrom sync.store import Store\n"
        "try:\n    Store(sys.argv[1], device_id=sys.argv[2])\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [*prefix, sys.executable, "-c", opener, str(path), DEVICE],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lock.chmod(0o644)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StoreReadOnly "), done.stdout
    assert f"its lock file {lock} cannot be opened" in done.stdout
    assert f"Fix: sudo chown {pwd.getpwuid(os.geteuid()).pw_name} {lock}," in done.stdout
    assert "Fix: make" not in done.stdout
    with Store(path, device_id=DEVICE) as store:  # nothing was lost or changed
        assert store.last_seq() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a file can be given to another user only by root")
def test_a_lock_file_root_makes_goes_to_the_owner_of_the_store_s_folder() -> None:
    """``sudo evaluator run`` (or selftest) on a pad upgraded to the lock, whose store had no
    lock file yet: root's umask 077 made it root's 0600 and the pad's user could never open it
    again, so the pad could not start (found by review).  Root now gives the file it makes to
    the folder's owner, as SQLite gives root's -wal and -shm to the database's owner."""
    with tempfile.TemporaryDirectory() as top:  # pytest's tmp_path is root's alone (0700)
        os.chmod(top, 0o755)
        folder = Path(top) / "var"
        folder.mkdir()
        os.chown(folder, 65534, 65534)  # the pad's user's state folder
        _lock_as_root_then_as_the_pad(folder / "ratings.db")


def _lock_as_root_then_as_the_pad(path: Path) -> None:
    old = os.umask(0o077)
    try:
        with lock_store(path):
            pass
    finally:
        os.umask(old)
    st = lock_path(path).stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    code = _readable_copy(path.parent.parent / "code")  # the checkout may be root's alone
    as_pad = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", _python(), "-S", "-c",
         "import os, sys\nsys.path.insert(0, sys.argv[2])\n"
         "from sync.storelock import lock_store\n"
         "with lock_store(sys.argv[1]) as lock:\n"
         "    print(os.getpid(), lock.lock_path.read_text().strip())\n", str(path), str(code)],
        cwd=code, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert as_pad.returncode == 0, as_pad.stderr
    pid, noted = as_pad.stdout.split()
    assert noted == pid  # opened for writing: it noted its own pid


def test_a_creation_killed_between_its_link_and_unlink_leaves_no_second_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """_create links the new store into place, then unlinks its temporary name: killed between
    the two, the store had two names and was refused as a hard link for good, a storage fault
    no restart cleared (found by review).  The leftover name of the same file is removed; a
    real second name is still refused."""
    path = tmp_path / "ratings.db"
    with Store(path, device_id=DEVICE) as store:
        store.append_rating(full_content("S-1"))
    leftover = tmp_path / f".ratings.db.new-{2**22 + 7}-140000000000"
    os.link(path, leftover)  # what the killed creation left
    unrelated = tmp_path / ".ratings.db.new-1-1"
    unrelated.write_bytes(b"a file of its own")
    with Store(path, device_id=DEVICE) as store:
        assert store.last_seq() == 1
    assert not leftover.exists() and unrelated.read_bytes() == b"a file of its own"
    assert path.stat().st_nlink == 1
    assert f"second name {leftover}" in caplog.text
    os.link(path, tmp_path / "copy.db")
    with pytest.raises(Exception, match="2 names"):
        Store(path, device_id=DEVICE)


def test_a_killed_writer_leaves_no_lock_behind(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    with holder(path) as proc:
        with pytest.raises(StoreLocked):
            Store(path, device_id=DEVICE)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        with Store(path, device_id=DEVICE) as store:  # the lock died with it
            assert store.last_seq() == 1
    assert lock_path(path).exists()  # the file stays (never deleted); its lock is gone


def test_a_damaged_store_is_kept_aside_under_the_lock_and_the_new_one_is_still_locked(
    tmp_path: Path,
) -> None:
    """The lock is on ``<store>.lock``, not on the database file's inode: the new store that
    replaces a damaged one is covered from its first byte."""
    path = tmp_path / "ratings.db"
    path.write_bytes(b"not a database" * 100)
    with Store(path, device_id=DEVICE) as store:
        assert store.recovered_from is not None and store.recovered_from.exists()
        refused = subprocess.run(
            [sys.executable, "-c", HOLDER, str(path), DEVICE],
            cwd=REPO, input="", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1 and "StoreLocked" in refused.stderr
        assert f"pid {os.getpid()}" in refused.stderr
        assert store.last_seq() == 0  # the refused writer appended nothing
    kept = sorted(p.name for p in tmp_path.iterdir() if ".damaged-" in p.name)
    assert len(kept) == 1  # the refused one kept nothing aside


def test_writers_of_one_process_share_the_lock_until_the_last_one_closes(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    first = Store(path, device_id=DEVICE)
    second = Store(path, device_id=DEVICE)  # the sync worker's, in its thread
    first.close()
    assert held_here(path)
    second.close()
    second.close()  # idempotent: the count never goes below
    assert not held_here(path)
    with holder(path):  # another process gets it now
        pass


def test_the_lock_file_names_its_holder_and_no_child_keeps_the_lock(tmp_path: Path) -> None:
    """A child started while the lock is held (the voice process, started with every fd it
    could inherit) holds no copy of it: once the parent lets go, another writer gets it."""
    path = tmp_path / "ratings.db"
    with lock_store(path) as lock:
        assert lock.lock_path == Path(os.path.realpath(path) + ".lock")
        assert lock.lock_path.read_text() == f"{os.getpid()}\n"
        child = subprocess.Popen(["sleep", "60"], close_fds=False)
    try:
        with holder(path):  # the child still lives, and holds nothing
            assert child.poll() is None
    finally:
        child.kill()
        child.wait(10)


def _readable_copy(into: Path) -> Path:
    """What the pad's user imports (the lock and the one error it raises), copied where that
    user can read it: a clone in a 0700 folder (``mktemp -d``) is root's alone."""
    for rel in ("sync/__init__.py", "sync/storelock.py", "evaluator/__init__.py",
                "evaluator/rules/__init__.py", "evaluator/rules/errors.py"):  # fmt: skip
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / rel).read_bytes())
    for folder in (into, *(p for p in into.rglob("*") if p.is_dir())):
        folder.chmod(0o755)
    return into


def _python() -> str:
    """An interpreter the pad's user can run: the system's, else this one's real file."""
    return shutil.which("python3", path="/usr/bin:/bin") or os.path.realpath(sys.executable)
