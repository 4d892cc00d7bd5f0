"""Store faults on real SQLite files: nothing lost, nothing silent, nothing crashes the rest.

A damaged store file is kept aside and the new one knows it follows a gap; a read-only store is
refused at open with the fix; damaged record JSON is skipped and reported while the rest flows;
the read-only opener never writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.errors import StoreError
from sync.mqtt import SyncWorker
from sync.store import DamagedRecord, Store, StoreDamaged, StoreReadOnly
from tests.sync.test_mqtt import PREFIX, City, full_content, wait_until

REPO = Path(__file__).resolve().parents[2]
DEVICE = "pad-440500-07"  # the device of tests.sync.test_mqtt's City topics


def fill(path: Path, n: int) -> list[dict[str, Any]]:
    """A store at ``path`` with ``n`` unsent ratings; closed again."""
    with Store(path, device_id=DEVICE) as store:
        return [store.append_rating(full_content(f"S-{i}")) for i in range(1, n + 1)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def damage_record(path: Path, seq: int, text: str) -> None:
    """Edit one record's JSON behind the store's back, as someone holding the file would."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS ratings_no_update")
        conn.execute("UPDATE ratings SET record = ? WHERE seq = ?", [text, seq])
    finally:
        conn.close()


# -- a damaged store file is kept aside, the new one knows it follows a gap -------------------


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _header_only(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(100)


def _not_a_database(path: Path) -> None:
    path.write_bytes("这不是数据库 / not a database\n".encode() * 200)


def _bad_pages(path: Path) -> None:
    """Keep the header, scribble over the pages after the first."""
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(b"\xde\xad\xbe\xef" * 4096)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "empty": _empty,
    "truncated": _truncated,
    "header only": _header_only,
    "not a database": _not_a_database,
    "bad pages": _bad_pages,
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_store_is_kept_aside_and_the_new_one_follows_the_gap(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ratings.db"
    fill(path, 40)
    DAMAGE[how](path)
    damaged_bytes = digest(path)

    with caplog.at_level(logging.CRITICAL, logger="sync.store"):
        store = Store(path, device_id=DEVICE)
    with store:
        kept = store.recovered_from
        assert kept is not None and kept.parent == path.parent
        assert kept.name.startswith("ratings.db.damaged-") and kept.name.endswith("Z")
        assert digest(kept) == damaged_bytes  # kept, byte for byte, never deleted
        gap = store.follows_gap()
        assert gap is not None
        assert gap["kept_aside"] == str(kept) and gap["problem"] and gap["at"].endswith("+00:00")
        assert gap.get("unsent") in (None, 40) and gap.get("last_seq") in (None, 40)
        assert store.last_seq() == 0
        record = store.append_rating(full_content("NEW-1"))  # the pad goes on
        assert record["seq"] == 1
    [critical] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert str(path) in critical.getMessage() and str(kept) in critical.getMessage()

    with Store(path, device_id=DEVICE) as again:  # a restart: no new gap, the fact stays
        assert again.recovered_from is None
        assert again.follows_gap() == gap
    assert sorted(p.name for p in tmp_path.iterdir() if ".damaged-" in p.name) == [kept.name]


def test_readable_facts_of_the_kept_aside_store_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    records = fill(path, 40)
    conn = sqlite3.connect(path)  # readable, yet fails quick_check: a broken index
    try:
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_ratings_1'"
        ).fetchone()[0]
    finally:
        conn.close()
    with path.open("r+b") as f:  # wipe the id index' root page: the table itself stays
        f.seek((root - 1) * 4096)
        f.write(b"\x00" * 4096)
    with Store(path, device_id=DEVICE) as store:
        gap = store.follows_gap()
    assert gap is not None
    assert gap["last_seq"] == 40 and gap["last_hash"] == records[-1]["hash"]
    assert gap["unsent"] == 40


def test_the_wal_and_shm_go_aside_with_their_database(tmp_path: Path) -> None:
    live = tmp_path / "live" / "ratings.db"
    crashed = tmp_path / "crashed" / "ratings.db"
    with Store(live, device_id=DEVICE) as store:  # a power cut: the -wal is still there
        for i in range(3):
            store.append_rating(full_content(f"S-{i}"))
        crashed.parent.mkdir()
        for suffix in ("", "-wal", "-shm"):
            shutil.copyfile(f"{live}{suffix}", f"{crashed}{suffix}")
    wal_bytes = digest(Path(f"{crashed}-wal"))
    assert Path(f"{crashed}-wal").stat().st_size > 0
    _empty(crashed)

    with Store(crashed, device_id=DEVICE) as store:
        kept = store.recovered_from
        assert kept is not None
        assert store.last_seq() == 0  # the old -wal did not leak into the new store
    assert digest(Path(f"{kept}-wal")) == wal_bytes
    assert Path(f"{kept}-shm").exists()


def test_a_wal_left_without_its_database_is_kept_aside_too(tmp_path: Path) -> None:
    live = tmp_path / "live" / "ratings.db"
    gone = tmp_path / "gone" / "ratings.db"
    with Store(live, device_id=DEVICE) as store:
        store.append_rating(full_content("S-1"))
        gone.parent.mkdir()
        shutil.copyfile(f"{live}-wal", f"{gone}-wal")
    with Store(gone, device_id=DEVICE) as store:
        assert store.recovered_from is not None
        assert Path(f"{store.recovered_from}-wal").stat().st_size > 0
        assert store.last_seq() == 0 and store.follows_gap() is not None


def test_two_damages_in_the_same_second_keep_both_files(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    kept = []
    for text in ("first", "second"):
        path.write_text(text)
        with Store(path, device_id=DEVICE) as store:
            assert store.recovered_from is not None
            kept.append(store.recovered_from)
    assert kept[0] != kept[1]
    assert [p.read_text() for p in kept] == ["first", "second"]


def test_a_brand_new_path_is_a_new_store_not_a_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "var" / "ratings.db"
    with caplog.at_level(logging.WARNING, logger="sync.store"), Store(path, device_id=DEVICE) as s:
        assert s.recovered_from is None and s.follows_gap() is None
    assert [p.name for p in path.parent.iterdir() if not p.name.startswith("ratings.db")] == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_sync_worker_open_never_moves_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    _not_a_database(path)
    before = digest(path)
    with pytest.raises(StoreDamaged, match="damaged"):
        Store(path, device_id=DEVICE, keep_damaged_aside=False)
    assert digest(path) == before
    # Nothing moved; the store's lock file (sync/storelock.py) is all that was added.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.db", "ratings.db.lock"]


# -- a read-only store is refused at open, naming the path and the fix ------------------------


def run_without_write_rights(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` where file permissions bind: root without DAC-override capabilities.

    As root, permission bits do not stop writes; ``setpriv`` drops the capabilities that
    bypass them (the process stays uid 0, the owner of the test files).  Other users need no
    help: their permission bits bind already.
    """
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to test read-only stores as root"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [*prefix, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )


def make_read_only(path: Path, what: str) -> None:
    if what in ("file", "both"):
        path.chmod(0o444)
    if what in ("folder", "both"):
        path.parent.chmod(0o555)


OPEN_AND_REPORT = """
import sys
from sync.store import Store
try:
    Store(sys.argv[1] if len(sys.argv) > 1 else {path!r}, device_id={device!r})
except Exception as exc:
    print(type(exc).__name__)
    print(exc)
else:
    print("opened")
"""


@pytest.mark.parametrize("what", ["file", "folder", "both"])
def test_a_read_only_store_is_refused_at_open_with_the_fix(tmp_path: Path, what: str) -> None:
    path = tmp_path / "store" / "ratings.db"
    fill(path, 2)
    make_read_only(path, what)
    try:
        result = run_without_write_rights(OPEN_AND_REPORT.format(path=str(path), device=DEVICE))
    finally:
        path.parent.chmod(0o755)
        path.chmod(0o644)
    assert result.returncode == 0, result.stderr
    kind, _, message = result.stdout.partition("\n")
    assert kind == "StoreReadOnly", result.stdout
    assert str(path) in message and "writable" in message and str(path.parent) in message
    with Store(path, device_id=DEVICE) as store:  # nothing was lost or moved
        assert store.last_seq() == 2 and store.recovered_from is None


def test_a_read_only_folder_for_a_new_store_is_refused_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = run_without_write_rights(
            OPEN_AND_REPORT.format(path=str(folder / "ratings.db"), device=DEVICE)
        )
    finally:
        folder.chmod(0o755)
    assert result.stdout.startswith("StoreReadOnly\n"), result.stdout + result.stderr
    assert "writable" in result.stdout


def test_store_read_only_is_a_store_error() -> None:
    assert issubclass(StoreReadOnly, StoreError) and issubclass(StoreDamaged, StoreError)


# -- the read-only opener ---------------------------------------------------------------------


def snapshot(path: Path) -> tuple[tuple[int, int, str], str]:
    """Size, mtime and bytes of the database; bytes of its -wal (absent counts as empty).

    The -shm is left out: readers keep their marks there.
    """
    wal = Path(f"{path}-wal")
    wal_bytes = wal.read_bytes() if wal.exists() else b""
    return (
        (path.stat().st_size, path.stat().st_mtime_ns, digest(path)),
        hashlib.sha256(wal_bytes).hexdigest(),
    )


def test_read_only_open_reads_beside_a_writer_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    records = fill(path, 3)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the pad, mid-transaction
        writer.execute("INSERT INTO meta (key, value) VALUES ('pending', 'x')")
        before = snapshot(path)
        with Store.open_read_only(path) as store:
            assert store.read_only and store.device_id == DEVICE
            assert [r["id"] for r in store.records()] == [r["id"] for r in records]
            assert store.verify() is None and len(store.pending()) == 3
            assert store.db.conn.total_changes == 0
        assert snapshot(path) == before
        writer.execute("COMMIT")  # the writer was never disturbed
    finally:
        writer.close()
    before = snapshot(path)
    with Store.open_read_only(path) as store:
        with pytest.raises(StoreError):
            store.ack([records[0]["id"]])
        assert store.outbox_size() == 3
    assert snapshot(path) == before


def test_read_only_open_of_a_damaged_or_missing_store_leaves_it_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    with pytest.raises(StoreError, match="no rating store"):
        Store.open_read_only(path)
    assert not path.exists()
    _not_a_database(path)
    before = digest(path)
    with pytest.raises(StoreDamaged, match="damaged"):
        Store.open_read_only(path)
    assert digest(path) == before and [p.name for p in tmp_path.iterdir()] == ["ratings.db"]


# -- damaged record JSON: reported, skipped, the rest flows -----------------------------------


BAD_JSON: dict[str, Callable[[dict[str, Any]], str]] = {
    "not JSON": lambda r: '{"id": "cut off',
    "a JSON array": lambda r: json.dumps([r]),
    "JSON null": lambda r: "null",
    "a JSON string": lambda r: json.dumps(json.dumps(r)),
    "lacks seq and id": lambda r: json.dumps(
        {k: v for k, v in r.items() if k not in ("seq", "id")}
    ),
    "seq is a string": lambda r: json.dumps({**r, "seq": str(r["seq"])}),
    "cases is not a list": lambda r: json.dumps({**r, "cases": "S-2"}),
    "a case is not an object": lambda r: json.dumps({**r, "cases": ["S-2"]}),
    "clerk is a string": lambda r: json.dumps({**r, "clerk": "x"}),
    "another row's seq": lambda r: json.dumps({**r, "seq": 1}),
    "another id": lambda r: json.dumps({**r, "id": "0190a0a0-0000-7000-8000-000000000000"}),
}


@pytest.mark.parametrize("how", list(BAD_JSON))
def test_a_damaged_record_is_skipped_and_reported_by_every_reader(tmp_path: Path, how: str) -> None:
    path = tmp_path / "ratings.db"
    records = fill(path, 4)
    damage_record(path, 2, BAD_JSON[how](records[1]))
    with Store(path, device_id=DEVICE) as store:
        assert [r["seq"] for r in store.records()] == [1, 3, 4]
        [damaged] = store.damaged()
        assert isinstance(damaged, DamagedRecord) and damaged.seq == 2
        assert damaged.id == records[1]["id"] and damaged.problem
        assert store.damage == {2: damaged}
        assert [r["seq"] for r in store.pending()] == [1, 3, 4]
        broken = store.verify()
        assert broken is not None and broken.seq == 2 and "damaged" in broken.reason
        assert store.outbox_size() == 4  # the damaged one stays in the outbox


def test_pending_pages_past_runs_of_damaged_records(tmp_path: Path) -> None:
    path = tmp_path / "ratings.db"
    fill(path, 6)
    for seq in (1, 2, 3):
        damage_record(path, seq, "not json")
    with Store(path, device_id=DEVICE) as store:
        assert [r["seq"] for r in store.pending(2)] == [4, 5]
        assert [r["seq"] for r in store.pending(2, after_seq=5)] == [6]
        assert sorted(store.damage) == [1, 2, 3]


@pytest.fixture
def city(broker: Any) -> Iterator[City]:
    c = City(broker.host, broker.port)
    c.wait_subscribed()
    yield c
    c.close()


@pytest.fixture
def worker(broker: Any, tmp_path: Path) -> Iterator[Callable[[Path], SyncWorker]]:
    made: list[SyncWorker] = []

    def make(path: Path) -> SyncWorker:
        w = SyncWorker(
            store_path=path,
            device_id=DEVICE,
            host=broker.host,
            port=broker.port,
            topic_prefix=PREFIX,
            max_rate=100.0,
            reconnect_min=0.1,
        )
        made.append(w)
        w.start()
        return w

    yield make
    for w in made:
        w.stop()
        w.join(5)


def test_the_sync_publishes_around_a_damaged_record_and_reports_it(
    tmp_path: Path, city: City, worker: Callable[[Path], SyncWorker]
) -> None:
    path = tmp_path / "ratings.db"
    records = fill(path, 4)
    damage_record(path, 2, "{broken")
    w = worker(path)
    wanted = {records[i]["id"] for i in (0, 2, 3)}
    wait_until(lambda: wanted <= set(city.ids()), 10, "the intact ratings to arrive")
    assert records[1]["id"] not in city.ids()
    wait_until(lambda: "seq=2" in w.status.last_error, 10, "the damage in the status")
    assert "damaged" in w.status.last_error and w.is_alive()
    city.ack(sorted(wanted))
    wait_until(lambda: w.status.pending == 1, 10, "the acks to apply")
    with Store.open_read_only(path) as store:  # the damaged one is still waiting, unedited
        [left] = store.db.execute("SELECT r.seq FROM outbox o JOIN ratings r ON r.id = o.rating_id")
        assert tuple(left) == (2,)
    with Store(path, device_id=DEVICE) as store:  # a later rating still flows
        late = store.append_rating(full_content("S-9"))
    w.notify()
    wait_until(lambda: late["id"] in city.ids(), 10, "a later rating to arrive")


# -- bytes that are not UTF-8 where SQLite keeps text -----------------------------------------


def test_a_record_of_invalid_utf8_is_skipped_and_the_rest_still_flows(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    records = fill(path, 4)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS ratings_no_update")
        conn.execute("UPDATE ratings SET record = CAST(x'7b22ff227d' AS TEXT) WHERE seq = 2")
    finally:
        conn.close()
    with Store(path, device_id=DEVICE) as store:
        assert [r["seq"] for r in store.records()] == [1, 3, 4]
        assert [r["id"] for r in store.pending()] == [records[i]["id"] for i in (0, 2, 3)]
        broken = store.verify()
        assert broken is not None and broken.seq == 2
    reader = Store.open_read_only(path)
    try:
        assert [r["seq"] for r in reader.records()] == [1, 3, 4]
    finally:
        reader.close()


@pytest.mark.parametrize("seed", range(60))
def test_flipped_bytes_never_crash_opening(tmp_path: Path, seed: int) -> None:
    """Whatever random damage the file takes, opening it keeps it aside or works, the
    read-only opener refuses it with a StoreError or reads it, never another exception (a text
    decoding error used to stop the pad), and damage is never silent: when ``verify`` finds
    nothing, every record read is exactly one that was written.  Damage the quick check at open
    cannot see (a malformed page deep in a table, a garbled schema) may still surface later,
    but only as SQLite's own DatabaseError while reading, which the tools report as damage, or
    as a StoreError on a write, which the pad shows as a storage fault."""
    import random

    good = tmp_path / "good.db"
    written = {json.dumps(r, sort_keys=True) for r in fill(good, 30)}
    with sqlite3.connect(good) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(good.read_bytes())
    rng = random.Random(seed)
    for _ in range(20):
        i = rng.randrange(len(data))
        data[i] ^= 0xFF
    bad = tmp_path / "bad.db"
    bad.write_bytes(bytes(data))
    try:
        reader = Store.open_read_only(bad)
    except StoreError:
        pass
    else:
        try:
            read = {json.dumps(r, sort_keys=True) for r in reader.records()}
            if reader.verify() is None:
                assert read <= written, "damage neither refused nor found by verify"
        except sqlite3.DatabaseError:
            pass
        finally:
            reader.close()
    with Store(bad, device_id=DEVICE) as store:  # damage kept aside, or the file still works
        try:
            list(store.records())
            store.verify()
        except sqlite3.DatabaseError:
            pass
        with contextlib.suppress(StoreError):  # a write into hidden damage: a storage fault
            store.append_rating(full_content("NEW-1"))


_PAD = """
import os, subprocess, sys
from sync.store import Store
from tests.sync.test_mqtt import full_content

path, second, device = sys.argv[1], sys.argv[2], sys.argv[3]
first = Store(path, device_id=device)
first.append_rating(full_content("S-1"))
other = Store(path, device_id=device) if second == "writable" else Store.open_read_only(path)
# Another process opens the store read-write and closes it: a technician's sqlite3 shell (a
# second pad or tool through Store is refused by the store's lock before it opens anything).
ELSEWHERE = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
ELSEWHERE += "c.execute('PRAGMA schema_version'); c.close()"  # reads the file: SQLite opens it
subprocess.run([sys.executable, "-c", ELSEWHERE, path], check=True, timeout=60)
for i in range(2, 6):
    first.append_rating(full_content(f"S-{i}"))
os._exit(0)  # the power goes off: no close, no checkpoint
"""


@pytest.mark.parametrize("second", ["writable", "read_only"])
def test_a_second_store_in_the_process_keeps_the_first_ones_locks(
    tmp_path: Path, second: str
) -> None:
    """The pad opens the store in the UI thread and again in the sync worker.  Reading the file's
    header with Python at the second open closed a descriptor of the file, which drops EVERY
    POSIX lock the process holds on it (SQLite's included): another process that opened and
    closed the store then believed it was the last user, checkpointed and deleted the -wal, and
    what the pad committed afterwards went into a deleted file — lost at a power cut."""
    path = tmp_path / "ratings.db"
    subprocess.run([sys.executable, "-c", _PAD, str(path), second, DEVICE], check=True,
                   cwd=REPO, timeout=120)  # fmt: skip
    with Store(path, device_id=DEVICE) as again:
        assert [r["seq"] for r in again.records()] == [1, 2, 3, 4, 5]
