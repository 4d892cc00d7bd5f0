"""The rating store: one SQLite file, append-only ratings, a durable outbox (art. 22, 33, 35, 40).

Every rating the pad takes is committed here, hash-chained, **before** the citizen sees 谢谢, and
stays in the ``outbox`` until the city acknowledges its id over MQTT.  Nothing on the device ever
edits or deletes a rating: SQL triggers refuse it, and :meth:`Store.verify` detects what was done
behind the store's back (an altered record, a deleted one).

Threading: a :class:`Store` wraps one SQLite connection, which belongs to the thread that opened
it (using it from another thread raises ``sqlite3.ProgrammingError``).  Each thread opens its own
``Store`` on the same file: the UI thread appends ratings and presentations, the sync worker reads
the outbox and acks.  WAL mode lets them work concurrently; writers wait up to
``BUSY_TIMEOUT_MS`` for each other.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``, so each commit fsyncs the WAL and a
rating survives a power cut right after :meth:`Store.append_rating` returns.

One writer: opening read-write takes the store's lock first (:mod:`sync.storelock`, a ``flock``
on ``<resolved path>.lock``, shared by the writers of one process); a writer in another process
is refused at once with :class:`sync.storelock.StoreLocked`.  :meth:`Store.open_read_only` takes
no lock.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import pwd
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.rules.errors import StoreError
from evaluator.rules.loss import (
    chain_problem,
    lost_chain_hash,
    make_statement,
    self_problem,
    statement_problem,
)
from evaluator.rules.records import (
    GENESIS_HASH,
    ChainBreak,
    SignatureCheck,
    SignatureReport,
    Signer,
    canonical_json,
    new_record_id,
    record_hash,
    seal,
    signature_of,
    signature_report,
    verify_chain,
)
from evaluator.rules.request import rating_slot
from sync.durable import fsync_dir
from sync.storelock import StoreLock, lock_path, lock_store

if TYPE_CHECKING:  # imported where used: sqlite-utils costs ~40 ms of start-up (issue 6)
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

log = logging.getLogger(__name__)

#: How long (milliseconds) a connection waits for another one holding the write lock.
BUSY_TIMEOUT_MS = 5000

#: Message of the triggers that keep ratings append-only (also what sqlite3 raises).
APPEND_ONLY = "ratings are append-only"
#: Message of the trigger that keeps a presentation's outcome final.
OUTCOME_FINAL = "presentation outcome is final"
#: Message of the triggers that keep events append-only.
EVENTS_APPEND_ONLY = "events are append-only"
LOSSES_APPEND_ONLY = "loss statements are append-only"

#: Kinds of event (docs/schemas/event.schema.json).
EVENT_KINDS: tuple[str, ...] = (
    "presentation_end",
    "represented",
    "store_fault",
    "printer_fault",
    "tech_menu",
    "cert_expiring",
    "epoch",
    "clerk_sign_in",
    "clerk_sign_out",
)
#: What ended a presentation (its ``end_cause``) → the ``by`` of its ``presentation_end`` event.
END_BY: dict[str, str] = {
    "timeout": "timeout",
    "evaluation.cancel": "clerk",
    "window.pause": "pause",
    "clerk.sign_out": "sign_out",
    "restart": "restart",
}

#: Outcomes a presentation can end with (see ``evaluator.rules.session.Outcome``).
OUTCOMES: tuple[str, ...] = ("rated", "not_rated", "cancelled")

#: Columns of ``ratings`` that copy a field of the sealed record; verify() checks they agree.
_MIRRORED = (
    "id",
    "seq",
    "device_id",
    "presentation_id",
    "level",
    "stage",
    "assess_number",
    "rated_at",
    "hash",
    "prev_hash",
)

_PAGE = 500  # rows per read when walking the whole table
_SQL_VARS = 500  # ids per "IN (...)" statement

#: The sqlite-utils migration set of the store (its rows in ``_sqlite_migrations``).
MIGRATION_SET = "evaluator"
#: sqlite-utils' table of applied migrations (``Migrations.migrations_table``).
MIGRATIONS_TABLE = "_sqlite_migrations"
#: The schema migrations in order, ``(name, function)``; applied by :func:`migration_set`.
MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = []


def _migration(name: str) -> Callable[[Callable[[Database], None]], Callable[[Database], None]]:
    def register(fn: Callable[[Database], None]) -> Callable[[Database], None]:
        MIGRATIONS.append((name, fn))
        return fn

    return register


_migrations: Migrations | None = None


def migration_set() -> Migrations:
    """The sqlite-utils :class:`~sqlite_utils.migrations.Migrations` of :data:`MIGRATIONS`.

    Built (and sqlite-utils imported) on first use: a store whose migrations have all run
    opens with the standard ``sqlite3`` module alone (:func:`_pending_migrations`), which keeps
    sqlite-utils' import out of the pad's start (issue 6).
    """
    global _migrations
    if _migrations is None:
        from sqlite_utils.migrations import Migrations

        built = Migrations(MIGRATION_SET)
        for name, fn in MIGRATIONS:
            built(name=name)(fn)
        _migrations = built
    return _migrations


def _pending_migrations(conn: sqlite3.Connection, *, check_table: bool = True) -> bool:
    """Whether ``Migrations.apply`` has work to do on ``conn``, asked with plain SQL: a
    migration of :data:`MIGRATIONS` not recorded in ``_sqlite_migrations``, no such table, or
    (``check_table``) a table whose primary key sqlite-utils would rebuild."""
    table = MIGRATIONS_TABLE
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table])
    if found.fetchone() is None:
        return bool(MIGRATIONS) or check_table
    if check_table:
        pks = [row[1] for row in conn.execute(f"PRAGMA table_info([{table}])") if row[5]]
        if pks != ["id"]:
            return True
    done = {
        row[0]
        for row in conn.execute(
            f"SELECT name FROM [{table}] WHERE migration_set = ?", [MIGRATION_SET]
        )
    }
    return any(name not in done for name, _ in MIGRATIONS)


@_migration(name="m001_initial")
def m001_initial(db: Database) -> None:
    """Ratings, their cases, presentations, the outbox and a key/value meta table."""
    statements = [
        """CREATE TABLE IF NOT EXISTS ratings (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL UNIQUE,
            device_id TEXT NOT NULL,
            presentation_id TEXT,
            level TEXT NOT NULL,
            stage TEXT NOT NULL,
            assess_number INTEGER NOT NULL,
            rated_at TEXT,
            hash TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            record TEXT NOT NULL
        )""",
        f"""CREATE TRIGGER IF NOT EXISTS ratings_no_update BEFORE UPDATE ON ratings
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
        f"""CREATE TRIGGER IF NOT EXISTS ratings_no_delete BEFORE DELETE ON ratings
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
        """CREATE TABLE IF NOT EXISTS rating_cases (
            rating_id TEXT NOT NULL REFERENCES ratings(id),
            serial TEXT NOT NULL,
            stage TEXT NOT NULL,
            assess_number INTEGER NOT NULL,
            UNIQUE (serial, stage, assess_number)
        )""",
        "CREATE INDEX IF NOT EXISTS rating_cases_rating ON rating_cases(rating_id)",
        f"""CREATE TRIGGER IF NOT EXISTS rating_cases_no_update BEFORE UPDATE ON rating_cases
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
        f"""CREATE TRIGGER IF NOT EXISTS rating_cases_no_delete BEFORE DELETE ON rating_cases
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
        """CREATE TABLE IF NOT EXISTS presentations (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL UNIQUE,
            serials TEXT NOT NULL,
            stage TEXT NOT NULL,
            assess_number INTEGER NOT NULL,
            clerk_id TEXT,
            matter_codes TEXT NOT NULL,
            started_at TEXT NOT NULL,
            clock_synced INTEGER NOT NULL,
            outcome TEXT CHECK (outcome IS NULL OR outcome IN ('rated', 'not_rated', 'cancelled')),
            ended_at TEXT,
            rating_ids TEXT
        )""",
        # The outcome is set once; nothing else about a presentation ever changes.
        f"""CREATE TRIGGER IF NOT EXISTS presentations_outcome_final
            BEFORE UPDATE ON presentations WHEN OLD.outcome IS NOT NULL
            BEGIN SELECT RAISE(ABORT, '{OUTCOME_FINAL}'); END""",
        """CREATE TRIGGER IF NOT EXISTS presentations_fixed_facts
            BEFORE UPDATE OF id, seq, serials, stage, assess_number, clerk_id, matter_codes,
                started_at, clock_synced ON presentations
            BEGIN SELECT RAISE(ABORT, 'presentations are append-only'); END""",
        """CREATE TRIGGER IF NOT EXISTS presentations_no_delete BEFORE DELETE ON presentations
            BEGIN SELECT RAISE(ABORT, 'presentations are append-only'); END""",
        """CREATE TABLE IF NOT EXISTS outbox (
            rating_id TEXT PRIMARY KEY REFERENCES ratings(id)
        )""",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    ]
    for sql in statements:
        db.execute(sql)


@_migration(name="m002_slots_and_supervision")
def m002_slots_and_supervision(db: Database) -> None:
    """Rating slots (art. 22), presentation causes, touches and re-presentations (art. 4).

    ``rating_cases`` becomes unique per (serial, slot, assess number) instead of per stage: a
    承诺件 rates the clerk once per window visit (``accept.1``, ``accept.2``…), a consult case once
    in total (``consult``).  ``presentation_cases`` lists what each presentation showed, so
    participation counts cases, not presentations, and a re-presentation of an unrated case
    names the presentations it follows.
    """
    conn = db.conn
    conn.execute(
        """CREATE TABLE rating_cases_v2 (
            rating_id TEXT NOT NULL REFERENCES ratings(id),
            serial TEXT NOT NULL,
            stage TEXT NOT NULL,
            slot TEXT NOT NULL,
            assess_number INTEGER NOT NULL,
            kind TEXT NOT NULL DEFAULT '',
            UNIQUE (serial, slot, assess_number)
        )"""
    )
    kinds: dict[tuple[str, str], str] = {}
    for rid, text in conn.execute("SELECT id, record FROM ratings").fetchall():
        try:
            record = json.loads(text)
            for case in record.get("cases") or []:
                kinds[(rid, case["serial"])] = str(case.get("kind", ""))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    rows = conn.execute(
        "SELECT rating_id, serial, stage, assess_number FROM rating_cases"
    ).fetchall()
    conn.executemany(
        "INSERT INTO rating_cases_v2 (rating_id, serial, stage, slot, assess_number, kind)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (r, s, st, rating_slot(kinds.get((r, s), ""), st), a, kinds.get((r, s), ""))
            for r, s, st, a in rows
        ],
    )
    conn.execute("DROP TABLE rating_cases")
    conn.execute("ALTER TABLE rating_cases_v2 RENAME TO rating_cases")
    statements = [
        "CREATE INDEX IF NOT EXISTS rating_cases_rating ON rating_cases(rating_id)",
        "CREATE INDEX IF NOT EXISTS rating_cases_serial ON rating_cases(serial)",
        f"""CREATE TRIGGER IF NOT EXISTS rating_cases_no_update BEFORE UPDATE ON rating_cases
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
        f"""CREATE TRIGGER IF NOT EXISTS rating_cases_no_delete BEFORE DELETE ON rating_cases
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
        "ALTER TABLE presentations ADD COLUMN visit INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE presentations ADD COLUMN follows TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE presentations ADD COLUMN represents TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE presentations ADD COLUMN end_cause TEXT",
        "ALTER TABLE presentations ADD COLUMN touched INTEGER",
        """CREATE TABLE IF NOT EXISTS presentation_cases (
            presentation_id TEXT NOT NULL REFERENCES presentations(id),
            serial TEXT NOT NULL,
            slot TEXT NOT NULL,
            assess_number INTEGER NOT NULL,
            matter_code TEXT NOT NULL,
            PRIMARY KEY (presentation_id, serial)
        )""",
        """CREATE INDEX IF NOT EXISTS presentation_cases_key
            ON presentation_cases(serial, slot, assess_number)""",
        f"""CREATE TRIGGER IF NOT EXISTS presentation_cases_no_update
            BEFORE UPDATE ON presentation_cases
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
        f"""CREATE TRIGGER IF NOT EXISTS presentation_cases_no_delete
            BEFORE DELETE ON presentation_cases
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
        "DROP TRIGGER IF EXISTS presentations_fixed_facts",
        """CREATE TRIGGER presentations_fixed_facts
            BEFORE UPDATE OF id, seq, serials, stage, assess_number, clerk_id, matter_codes,
                started_at, clock_synced, visit, follows, represents ON presentations
            BEGIN SELECT RAISE(ABORT, 'presentations are append-only'); END""",
    ]
    for sql in statements:
        conn.execute(sql)
    # Presentations recorded before this migration: their cases, the slot from each serial's
    # rated kind when it was rated (a consult case is one "consult" slot), else the stage alone.
    kind_of = {serial: kind for (_, serial), kind in kinds.items()}
    for pid, serials, stage, assess, codes in conn.execute(
        "SELECT id, serials, stage, assess_number, matter_codes FROM presentations"
    ).fetchall():
        try:
            serial_list = json.loads(serials)
            code_list = json.loads(codes)
        except ValueError:
            continue
        code = code_list[0] if len(code_list) == 1 else ""
        conn.executemany(
            "INSERT OR IGNORE INTO presentation_cases VALUES (?, ?, ?, ?, ?)",
            [(pid, s, rating_slot(kind_of.get(s, ""), stage), assess, code) for s in serial_list],
        )


@_migration(name="m003_outbox_by_seq")
def m003_outbox_by_seq(db: Database) -> None:
    """The outbox keyed by the rating's ``seq`` (its rowid), so the sync reads the next page of
    what waits with one range read of the outbox, whatever the length of the rating history.

    Before, the outbox held only ids: finding what waits after a seq walked ``ratings`` by seq
    and looked each row up in the outbox, so every new rating cost a walk of the whole history
    (issue 8).  Rows whose rating is missing (impossible with foreign keys on) are not kept:
    there is nothing to send for them.
    """
    conn = db.conn
    conn.execute(
        """CREATE TABLE outbox_v2 (
            seq INTEGER PRIMARY KEY,
            rating_id TEXT NOT NULL UNIQUE REFERENCES ratings(id)
        )"""
    )
    conn.execute(
        "INSERT INTO outbox_v2 (seq, rating_id)"
        " SELECT r.seq, o.rating_id FROM outbox o JOIN ratings r ON r.id = o.rating_id"
    )
    conn.execute("DROP TABLE outbox")
    conn.execute("ALTER TABLE outbox_v2 RENAME TO outbox")


@_migration(name="m004_events")
def m004_events(db: Database) -> None:
    """The pad's events for the city (issue 8): an append-only ``events`` table with its own
    seq and hash chain, an ``event_outbox`` emptied by the city's acks like the ratings' one,
    and ``presentations.facts``: what a ``presentation_end`` event tells of a presentation
    (cases with kind and matter name, clerk, terminal, area code) that its row does not keep,
    written when it opens so that an end at a restart can still tell it."""
    statements = [
        """CREATE TABLE IF NOT EXISTS events (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            at TEXT,
            hash TEXT NOT NULL,
            record TEXT NOT NULL
        )""",
        f"""CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, '{EVENTS_APPEND_ONLY}'); END""",
        f"""CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, '{EVENTS_APPEND_ONLY}'); END""",
        """CREATE TABLE IF NOT EXISTS event_outbox (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE REFERENCES events(id)
        )""",
        "ALTER TABLE presentations ADD COLUMN facts TEXT",
        "DROP TRIGGER IF EXISTS presentations_fixed_facts",
        """CREATE TRIGGER presentations_fixed_facts
            BEFORE UPDATE OF id, seq, serials, stage, assess_number, clerk_id, matter_codes,
                started_at, clock_synced, visit, follows, represents, facts ON presentations
            BEGIN SELECT RAISE(ABORT, 'presentations are append-only'); END""",
    ]
    for sql in statements:
        db.conn.execute(sql)


@_migration(name="m005_losses")
def m005_losses(db: Database) -> None:
    """The loss statements (issue 15): one signed statement per stored record (rating or event)
    that the check before publishing found damaged, made once and kept, so that every resend
    of it is byte-identical (:mod:`evaluator.rules.loss`).  Append-only like the records: the
    damaged row itself stays where it is, never edited."""
    statements = [
        """CREATE TABLE IF NOT EXISTS losses (
            stream TEXT NOT NULL CHECK (stream IN ('ratings', 'events')),
            seq INTEGER NOT NULL,
            id TEXT NOT NULL,
            lost_hash TEXT NOT NULL,
            problem TEXT NOT NULL,
            stated_at TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (stream, seq)
        )""",
        f"""CREATE TRIGGER IF NOT EXISTS losses_no_update BEFORE UPDATE ON losses
            BEGIN SELECT RAISE(ABORT, '{LOSSES_APPEND_ONLY}'); END""",
        f"""CREATE TRIGGER IF NOT EXISTS losses_no_delete BEFORE DELETE ON losses
            BEGIN SELECT RAISE(ABORT, '{LOSSES_APPEND_ONLY}'); END""",
    ]
    for sql in statements:
        db.conn.execute(sql)


#: The carried records of a kept-aside store (issue 15 B): created by :func:`_create` in the
#: new file itself (so it appears whole) and by :func:`m006_epoch` in older stores.
_CARRIED_DDL = (
    """CREATE TABLE IF NOT EXISTS carried (
        id TEXT PRIMARY KEY,
        stream TEXT NOT NULL CHECK (stream IN ('ratings', 'events')),
        epoch TEXT NOT NULL,
        seq INTEGER NOT NULL,
        record TEXT NOT NULL,
        UNIQUE (stream, epoch, seq)
    )""",
    f"""CREATE TRIGGER IF NOT EXISTS carried_no_update BEFORE UPDATE ON carried
        BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS carried_no_delete BEFORE DELETE ON carried
        BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""",
    """CREATE TABLE IF NOT EXISTS carried_outbox (
        n INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE REFERENCES carried(id)
    )""",
)


@_migration(name="m006_epoch")
def m006_epoch(db: Database) -> None:
    """Epochs (issue 15 B): the records carried over from a kept-aside store, verbatim, and
    their own outbox.  A store made before epochs keeps none (its epoch is ""); a new store gets
    its ``epoch`` in ``meta`` when :func:`_create` makes it, and these tables with it."""
    for sql in _CARRIED_DDL:
        db.conn.execute(sql)


# -- damage, read-only disks, keeping a damaged file aside ------------------------------------

#: The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"

#: Fields (and their JSON types) a stored record needs to be published, exported or counted.
RECORD_SHAPE: dict[str, type] = {
    "id": str,
    "seq": int,
    "device_id": str,
    "level": str,
    "stage": str,
    "assess_number": int,
    "cases": list,
    "prev_hash": str,
    "hash": str,
}

_SQLITE_DAMAGE = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_SQLITE_READ_ONLY = frozenset({3, 8, 14})  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN
_SQLITE_FULL = 13
_OS_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_SIDE_FILES = ("-wal", "-shm")
_META_DDL = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number"}


class StoreReadOnly(StoreError):
    """The store cannot be written (file, folder or disk read-only): no rating can be saved.

    Raised when the store is opened, not at the first rating; the message names the path and
    the fix, for the screen and the counter.
    """


class StoreDamaged(StoreError):
    """The store file is damaged and was left where it is (read-only tools, the sync worker)."""


@dataclass(frozen=True)
class DamagedRecord:
    """A stored rating whose ``record`` JSON cannot be used: skipped, reported, left in place."""

    seq: int
    id: str | None
    problem: str

    def __str__(self) -> str:
        return f"seq={self.seq} id={self.id or '?'}: {self.problem}"


@dataclass(frozen=True)
class Outgoing:
    """One outbox record ready to publish: its seq, id and stored canonical JSON (UTF-8);
    ``stream`` says its topic for a record carried over from a kept-aside store."""

    seq: int
    id: str
    payload: bytes
    stream: str = ""


@dataclass(frozen=True)
class OutboxPage:
    """What :meth:`Store.outbox_page` read: intact records, the last seq read (damaged rows
    included) and whether the page was full (more rows may follow)."""

    items: list[Outgoing]
    last_seq: int
    more: bool
    #: Seqs of the records this read found damaged and replaced by a NEW loss statement.
    stated: tuple[int, ...] = ()
    #: ``(seq, problem)`` of damaged records held back: no device key to sign a statement yet.
    held: tuple[tuple[int, str], ...] = ()


#: The problem a loss statement names for a seq the city asks for and the table lacks.
MISSING_PROBLEM = "record missing from the store"

_MAX_SEQ = 2**63 - 1  # SQLite's largest integer: "no upper bound" for a seq range


def _lenient_text(data: bytes) -> str:
    """Text from SQLite, never an exception: bytes that are not UTF-8 (a flipped bit, a record
    edited behind the store's back) become U+FFFD, so the damage is found where the text is
    checked (quick_check's answer, a record's JSON and hash) instead of stopping every read."""
    return data.decode("utf-8", errors="replace")


def _connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect`` with :func:`_lenient_text` for every TEXT value read."""
    conn = sqlite3.connect(*args, **kwargs)
    conn.text_factory = _lenient_text
    return conn


class _Damage(Exception):
    """The file at the store path is not a usable database (why: ``args[0]``)."""


def decode_record(seq: int, row_id: str | None, text: Any) -> dict[str, Any] | DamagedRecord:
    """The sealed record stored as ``text`` in the row (``seq``, ``row_id``), or what is wrong.

    Damaged: not valid JSON, not a JSON object, a field of :data:`RECORD_SHAPE` missing or of
    another type, or a ``seq``/``id`` that is not the row's.  Whether the content still matches
    its hash is :meth:`Store.verify`'s business, not this one's.
    """
    try:
        record = json.loads(text)
    except (TypeError, ValueError) as exc:
        return DamagedRecord(seq, row_id, f"record JSON is unreadable ({exc})")
    if not isinstance(record, dict):
        kind = _JSON_TYPES.get(type(record), "null" if record is None else "value")
        return DamagedRecord(seq, row_id, f"record is a JSON {kind}, not an object")
    missing = [k for k in RECORD_SHAPE if k not in record]
    if missing:
        return DamagedRecord(seq, row_id, "record lacks " + ", ".join(missing))
    wrong = [
        k
        for k, kind in RECORD_SHAPE.items()
        if not isinstance(record[k], kind) or isinstance(record[k], bool)
    ]
    if wrong:
        return DamagedRecord(
            seq,
            row_id,
            "record fields of the wrong type: "
            + ", ".join(f"{k} must be a JSON {_JSON_TYPES[RECORD_SHAPE[k]]}" for k in wrong),
        )
    inner = [
        name
        for name, ok in (
            ("cases", all(isinstance(c, dict) for c in record["cases"])),
            ("clerk", isinstance(record.get("clerk"), dict | None)),
            ("reasons", isinstance(record.get("reasons", []), list)),
        )
        if not ok
    ]
    if inner:
        return DamagedRecord(seq, row_id, "record fields of the wrong shape: " + ", ".join(inner))
    if record["seq"] != seq or record["id"] != row_id:
        return DamagedRecord(
            seq,
            row_id,
            f"record says seq={record['seq']} id={record['id']}, its row is seq={seq} id={row_id}",
        )
    return record


def _quick_check(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA quick_check``'s findings, ``[]`` when the file is intact (reads every page)."""
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and _sqlite_code(exc) not in _SQLITE_DAMAGE:
            raise  # busy, locked, I/O, out of memory: nothing learnt about the file itself
        return [f"quick_check could not read the file: {exc}"]
    return [] if rows == ["ok"] else rows


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _end_reads(conn: sqlite3.Connection, kind: str, name: str, table: str) -> list[str]:
    """Statements that read the first and the last entry of one b-tree, through its root."""
    t = _quoted(table)
    if kind == "table":
        info = conn.execute(f"PRAGMA table_list({t})").fetchone()
        if info is not None and info[4]:  # WITHOUT ROWID: its primary key is its b-tree
            return [f"SELECT 1 FROM {t} LIMIT 1"]
        return [f"SELECT rowid FROM {t} ORDER BY rowid {d} LIMIT 1" for d in ("ASC", "DESC")]
    keys = [r for r in conn.execute(f"PRAGMA index_xinfo({_quoted(name)})") if r[5]]
    if not keys or any(r[1] < 0 for r in keys):  # an expression index: its root alone
        return []
    cols = [_quoted(r[2]) for r in keys]

    def order(flip: bool) -> str:
        return ", ".join(
            f"{c} COLLATE {r[4]} {'DESC' if bool(r[3]) != flip else 'ASC'}"
            for c, r in zip(cols, keys, strict=True)
        )

    return [
        f"SELECT {', '.join(cols)} FROM {t} INDEXED BY {_quoted(name)}"
        f" ORDER BY {order(flip)} LIMIT 1"
        for flip in (False, True)
    ]


def _btree_ends(conn: sqlite3.Connection) -> list[str]:
    """Damage found reading each table's and index's root page and its first and last leaf.

    Cost: a few pages per b-tree, whatever the number of rows (each read follows the index
    order, tests/sync/test_store.py counts the rows touched).  A root page that is not one (the
    id index wiped, pages overwritten) is found; a damaged page in the middle of a big table is
    left to :meth:`Store.integrity_check`.
    """
    problems: list[str] = []
    try:
        objects = conn.execute(
            "SELECT type, name, tbl_name FROM sqlite_master"
            " WHERE type IN ('table', 'index') AND rootpage > 0 ORDER BY rootpage"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        if _sqlite_code(exc) not in _SQLITE_DAMAGE:
            raise
        return [f"the schema (sqlite_master): {exc}"]
    for kind, name, table in objects:
        try:
            for sql in _end_reads(conn, kind, name, table):
                conn.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if _sqlite_code(exc) in _SQLITE_DAMAGE:
                problems.append(f"{kind} {name}: {exc}")
            elif "no query solution" not in str(exc):  # a partial index: not readable alone
                raise
        except sqlite3.DatabaseError as exc:
            problems.append(f"{kind} {name}: {exc}")
    return problems


def _sqlite_code(exc: BaseException) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


#: A case's ratings with what the re-ask rules measure: serial, id, rated_at, clock synced
#: (``NULL`` where the record is not JSON: a damaged row counts as unsynchronised, refused).
_RATING_STAMPS = (
    "SELECT c.serial, r.id, r.rated_at,"
    " CASE WHEN json_valid(r.record) THEN json_extract(r.record, '$.rated_clock_synced') END"
    " FROM rating_cases c JOIN ratings r ON r.id = c.rating_id"
)


def _rating_stamp(rating_id: str, rated_at: str | None, synced: Any) -> dict[str, Any]:
    """One row of :data:`_RATING_STAMPS` as :meth:`Store.first_ratings` gives it."""
    return {"rating_id": rating_id, "rated_at": rated_at or "", "clock_synced": bool(synced)}


def _slot_match(n: int) -> str:
    """SQL matching ``c.serial``/``c.slot`` against ``n`` pairs (values: :func:`_slot_values`).
    SQLite uses an index for ``(serial, slot) IN (VALUES ...)`` with one row only and scans the
    whole table for more, so the serials narrow it first (an index on serial leads both)."""
    return (
        f"c.serial IN ({','.join('?' * n)})"
        f" AND (c.serial, c.slot) IN (VALUES {','.join(['(?, ?)'] * n)})"
    )


def _slot_values(pairs: list[tuple[str, str]]) -> list[str]:
    return [s for s, _ in pairs] + [v for pair in pairs for v in pair]


def _open_error(path: Path, exc: BaseException) -> StoreError:
    """The StoreError for a store that cannot be opened or written, naming the fix."""
    code = _sqlite_code(exc)
    if code in _SQLITE_READ_ONLY or (isinstance(exc, OSError) and exc.errno in _OS_READ_ONLY):
        return StoreReadOnly(
            f"the rating store {path} cannot be written ({exc}), so no rating can be saved. "
            f"Fix: make {path} and its folder {path.parent} writable for user {_user()} "
            "(and the disk mounted read-write), then restart the pad"
        )
    if code == _SQLITE_FULL or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        return StoreError(
            f"the disk of the rating store {path} is full ({exc}), so no rating can be saved. "
            "Fix: free space on it, then restart the pad"
        )
    return StoreError(f"cannot open the rating store {path}: {exc}")


def _lock_error(path: Path, exc: OSError) -> StoreError:
    """The StoreError for a store whose lock file cannot be opened.  Its own user is named: a
    lock file left owned by another user (``sudo evaluator run`` with a strict umask) blocks a
    store that is otherwise writable, and "make the store writable" would fix nothing."""
    lock = lock_path(path)
    if exc.errno in (errno.EACCES, errno.EPERM) and exc.filename == str(lock) and lock.exists():
        return StoreReadOnly(
            f"the rating store {path} cannot be written: its lock file {lock} cannot be opened "
            f"by user {_user()} ({exc.strerror}; left by a pad or tool run as another user, "
            f"e.g. with sudo?), so no rating can be saved. Fix: sudo chown {_user()} {lock}, "
            "then restart the pad"
        )
    return _open_error(path, exc)


#: Serialises opening and closing stores in this process, and counts the SQLite connections
#: this process holds on each database file (by device and inode).  Python must never open and
#: close a database file that SQLite holds in this process: closing ANY descriptor of a file
#: drops every POSIX lock the process holds on it, SQLite's included, and another process then
#: takes itself for the store's last user, checkpoints and deletes the -wal under the pad.
_FILES_LOCK = threading.RLock()
_HELD: dict[tuple[int, int], int] = {}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _held_here(path: Path) -> bool:
    """SQLite holds this file open in this process (another :class:`Store` has it)."""
    key = _identity(path)
    return key is not None and _HELD.get(key, 0) > 0


def _hold(path: Path) -> tuple[int, int] | None:
    key = _identity(path)
    if key is not None:
        _HELD[key] = _HELD.get(key, 0) + 1
    return key


def _release(key: tuple[int, int] | None) -> None:
    if key is not None and key in _HELD:
        _HELD[key] -= 1
        if _HELD[key] <= 0:
            del _HELD[key]


def _file_damage(path: Path) -> str | None:
    """Why the file at ``path`` cannot be a rating store, looked at BEFORE SQLite touches it.

    ``None`` for a usable-looking file and for no file at all (a brand-new store), unless a
    write-ahead log was left there without its database.  It must be looked at first: SQLite
    creates an empty file on connect, and on opening a database of less than one page it
    DELETES the -wal beside it.  New stores are created whole (``_create``), so an empty or
    shorter-than-a-page file is only ever damage.
    """
    if _held_here(path):  # checked when it was first opened, and SQLite holds it now
        return None
    wal = path.with_name(path.name + "-wal")
    try:
        wal_size = wal.stat().st_size
    except OSError:
        wal_size = 0
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        if wal_size > 0:
            return "the database file is gone but its write-ahead log (-wal) is still there"
        return None
    except OSError as exc:
        raise StoreError(f"cannot read the rating store {path}: {exc}") from exc
    if size == 0:
        return "the file is empty (0 bytes)"
    if not head.startswith(SQLITE_MAGIC):
        return "the file is not a SQLite database (wrong header)"
    if len(head) < 100:
        return f"the file is truncated ({size} bytes, less than a database header)"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"the database header is damaged (page size {page_size})"
    if size < page_size:
        return f"the file is truncated ({size} bytes, less than one {page_size}-byte page)"
    if wal_size == 0:  # no log to complete it: the file alone must be whole
        pages = int.from_bytes(head[28:32], "big")
        header_valid = head[24:28] == head[92:96]
        if size % page_size or (header_valid and size < pages * page_size):
            return f"the file is truncated ({size} bytes, the database has {pages} pages)"
    return None


def _refuse_other_names(path: Path) -> None:
    """A store file with more than one name (a hard link) is never written: SQLite finds the
    write-ahead log by the name it was given, so what one name's -wal holds is not seen through
    the other, and the store's lock (``<resolved path>.lock``) is per name: two pads could write
    it at once.  A :class:`StoreError` (a storage fault for the pad: it says so and retries)."""
    try:
        links = os.stat(path).st_nlink
    except OSError:
        return  # no file yet (a new store), or the open says what is wrong
    if links > 1:
        raise StoreError(
            f"the rating store {path} has {links} names (hard links): SQLite keeps its "
            "write-ahead log by name and the pad's lock is per name, so ratings written under "
            "another name could be lost, and two pads could write it at once; nothing was "
            f"written. Fix: find the other names (find / -xdev -samefile {path}), stop what "
            "uses them and remove them (not this one), then restart the pad"
        )


def _drop_names_of_crashed_creations(path: Path) -> None:
    """Remove the temporary names :func:`_create` left on the store file when its process died
    between the link into place and the unlink of the temporary name (SIGKILL, a power cut):
    a second name of the store itself, which :func:`_refuse_other_names` would refuse for good.
    Called under the store's lock and :data:`_FILES_LOCK`, when no creation can be under way;
    only a name of the very same file goes (never a file of its own: nothing is lost)."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if st.st_nlink < 2:
        return
    for other in path.parent.glob(f".{glob.escape(path.name)}.new-*"):
        with contextlib.suppress(OSError):
            if os.path.samestat(os.lstat(other), st):
                os.unlink(other)
                log.warning(
                    "the rating store %s had a second name %s left by a creation that was cut "
                    "off (a crash between its two steps): that name removed, nothing else",
                    path,
                    other,
                )


def _create(path: Path, follows_gap: Mapping[str, Any] | None) -> None:
    """Create an empty WAL store at ``path`` whole: built aside, then linked into place.

    So a crash while creating never leaves an empty file at ``path`` (which would read as
    damage).  ``follows_gap`` goes into ``meta`` before the file appears.  Never replaces an
    existing file.
    """
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{threading.get_ident()}")
    for suffix in ("", *_SIDE_FILES, "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{tmp}{suffix}")
    try:
        conn = _connect(str(tmp), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(_META_DDL)
            # Every store made from now on opens an epoch of its own (issue 15 B): its records
            # carry it, and the city keys its chains by it.
            conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", [new_record_id()])
            if follows_gap is not None:
                facts = {k: v for k, v in follows_gap.items() if k != CARRIED}
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('follows_gap', ?)",
                    [json.dumps(facts, ensure_ascii=False, sort_keys=True)],
                )
                carried = follows_gap.get(CARRIED) or []
                if carried:  # one transaction: the file appears with all of them or none
                    conn.execute("BEGIN IMMEDIATE")
                    for sql in _CARRIED_DDL:
                        conn.execute(sql)
                    conn.executemany(
                        "INSERT OR IGNORE INTO carried (id, stream, epoch, seq, record)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [(c.id, c.stream, c.epoch, c.seq, c.text) for c in carried],
                    )
                    conn.executemany(
                        "INSERT OR IGNORE INTO carried_outbox (id) VALUES (?)",
                        [(c.id,) for c in carried],
                    )
                    conn.execute("COMMIT")
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another opener created it first: use theirs
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        for suffix in ("", *_SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{tmp}{suffix}")
    fsync_dir(path.parent)


#: Key of the gap facts holding the kept-aside store's intact unacked records (never in meta).
CARRIED = "carried"


@dataclass(frozen=True)
class Carried:
    """An intact record of a kept-aside store the city never acked: delivered verbatim."""

    stream: str
    epoch: str
    seq: int
    id: str
    text: str


def _salvage_facts(
    kept: Path, signed: Callable[[Mapping[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """What can still be read from a kept-aside store: its epoch, the head the city acked and
    the last readable one of each stream, how many were unsent, and its intact unacked records
    (under :data:`CARRIED`, to carry over: whole, hash matching, and ``signed`` as the city
    will check it) with the seqs of those that could not be read or fail those checks.

    Reads a scratch copy (with its -wal), never the kept files: SQLite may delete or rewrite
    the log of a damaged database it opens.
    """
    import shutil  # here, not at the top: only a damaged store needs them (start-up, issue 6)
    import tempfile

    facts: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix=".salvage-", dir=kept.parent) as scratch:
            copy = Path(scratch) / "copy.db"
            shutil.copyfile(kept, copy)
            wal = kept.with_name(kept.name + "-wal")
            if wal.exists():
                shutil.copyfile(wal, f"{copy}-wal")
            _fit_header(copy)
            conn = _connect(str(copy))
            try:
                # a schema naming pages past a truncation is not fatal: each table is read
                # as far as it goes (the scratch copy is never written)
                conn.execute("PRAGMA writable_schema = ON")
                _read_facts(conn, facts, signed, copy)
            finally:
                conn.close()
                _SCANS.clear()
    except (OSError, sqlite3.Error, UnicodeDecodeError):
        pass
    if not facts.get("epoch"):
        with contextlib.suppress(OSError):
            facts["epoch"] = _epoch_in_bytes(kept)
    return facts


#: The ``meta`` row of the epoch as SQLite stores it: the key's text, then the value's.
_META_EPOCH = re.compile(
    rb"epoch([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})"
)


def _epoch_in_bytes(kept: Path) -> str:
    """The epoch of a kept-aside store whose schema SQLite can no longer read (the pages of
    ``sqlite_master`` cut off): its ``meta`` row found in the raw bytes, ``""`` when none."""
    tail = b""
    with kept.open("rb") as f:
        while chunk := f.read(1 << 20):
            found = _META_EPOCH.search(tail + chunk)
            if found:
                return found.group(1).decode("ascii")
            tail = chunk[-48:]
    return ""


def _fit_header(copy: Path) -> None:
    """In a scratch copy of a truncated store, the header's page count cut to the pages the
    file still has: SQLite then reads what is left instead of calling the whole file
    malformed (a header counting pages past the end of the file)."""
    with contextlib.suppress(OSError), copy.open("r+b") as f:
        head = f.read(100)
        if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
            return
        page_size = int.from_bytes(head[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        if page_size < 512 or page_size & (page_size - 1):
            return
        pages = copy.stat().st_size // page_size
        if int.from_bytes(head[28:32], "big") > pages > 0:
            f.seek(28)
            f.write(pages.to_bytes(4, "big"))


#: Per stream: its table, its outbox and the outbox's id column.
_STREAM_TABLES = {
    "ratings": ("ratings", "outbox", "rating_id"),
    "events": ("events", "event_outbox", "event_id"),
}


def _rows_until_damage(conn: sqlite3.Connection, sql: str) -> tuple[list[tuple[Any, ...]], bool]:
    """The rows of ``sql`` read one by one up to the first that SQLite cannot read (a damaged
    or missing page): what is before it is kept; and whether every row was read."""
    out: list[tuple[Any, ...]] = []
    with contextlib.suppress(sqlite3.Error, UnicodeDecodeError):
        cur = conn.execute(sql)
        while True:
            row = cur.fetchone()
            if row is None:
                return out, True
            out.append(tuple(row))
    return out, False


def _read_facts(
    conn: sqlite3.Connection,
    facts: dict[str, Any],
    signed: Callable[[Mapping[str, Any]], bool] | None = None,
    copy: Path | None = None,
) -> None:
    """Each fact on its own: a damaged table must not hide what another one still says.

    When a stream's outbox cannot be read (its pages cut off), which records the city acked is
    unknown: every intact record of that stream still found in the file's bytes
    (:func:`_scan_records`) is carried over (the city stores each id once and acks a
    duplicate again), and the seqs missing among the last :data:`SCAN_LOST` before the highest
    found are named lost."""
    with contextlib.suppress(sqlite3.Error, UnicodeDecodeError):
        row = conn.execute("SELECT value FROM meta NOT INDEXED WHERE key = 'epoch'").fetchone()
        facts["epoch"] = str(row[0]) if row and row[0] else ""
    carried: list[Carried] = []
    for stream, (table, outbox, _) in _STREAM_TABLES.items():
        rows, whole = _rows_until_damage(
            conn, f"SELECT seq, id, hash, record FROM {table} NOT INDEXED"
        )
        by_seq = {int(r[0]): r for r in rows if isinstance(r[0], int)}
        unacked: list[int] | None = None
        with contextlib.suppress(sqlite3.Error, UnicodeDecodeError):
            unacked = sorted(
                int(r[0]) for r in conn.execute(f"SELECT seq FROM {outbox} NOT INDEXED")
            )
        if not whole and copy is not None:  # the rest of the table: whatever is still whole
            for raw, record in _scan_records(copy):
                seq = record["seq"]
                ours = record.get("epoch", "") == facts.get("epoch", record.get("epoch", ""))
                if ours and ("kind" in record) == (stream == "events") and seq not in by_seq:
                    by_seq[seq] = (seq, record["id"], record["hash"], raw)
        part: dict[str, Any] = {}
        if by_seq and whole:  # its last one is known only when the whole table was read
            last = max(by_seq)
            part.update(last_seq=last, last_hash=str(by_seq[last][2]))
        if unacked is not None:
            part["unsent"] = len(unacked)
            # the city acked every seq below the first unacked one (all when none waits)
            acked = (unacked[0] - 1) if unacked else part.get("last_seq")
            part["acked_seq"] = acked
            row = by_seq.get(acked) if acked is not None else None
            part["acked_hash"] = str(row[2]) if row is not None else (
                GENESIS_HASH if acked == 0 else None)  # fmt: skip
            lost: list[int] = []
            for seq in unacked:
                row = by_seq.get(seq)
                record = _intact(stream, seq, row)
                if record is None or (signed is not None and not signed(record)):
                    lost.append(seq)
                else:
                    carried.append(
                        Carried(stream, str(record.get("epoch", "")), seq, str(row[1]), row[3])
                    )
            part["carried"] = len(unacked) - len(lost)
            part["lost"] = lost
        if unacked is None and copy is not None:
            part.update(_scanned(stream, copy, signed, carried))
        if part:
            facts[stream] = part
        if not facts.get("epoch"):  # meta unreadable: the records say which epoch they were
            for row in reversed(rows):
                with contextlib.suppress(TypeError, ValueError, AttributeError):
                    epoch = json.loads(row[3]).get("epoch")
                    if isinstance(epoch, str) and epoch:
                        facts["epoch"] = epoch
                        break
    if carried:
        facts[CARRIED] = carried
    # The names of before (gap_note, evaluator verify): the ratings' last head and unsent.
    ratings = facts.get("ratings", {})
    for key in ("last_seq", "last_hash", "unsent"):
        if key in ratings:
            facts[key] = ratings[key]


#: How far back from the highest seq found a scan of a store without its outbox names lost seqs.
SCAN_LOST = 1000

_SCANS: dict[Path, list[tuple[str, dict[str, Any]]]] = {}


def _scan_records(copy: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every sealed record whose canonical JSON is still whole in the file's bytes, wherever
    its page is (a b-tree whose pages are cut off cannot be walked): ``(text, record)``, its
    hash matching.  A record is a JSON object with ``id``, ``seq``, ``hash`` and ``prev_hash``;
    nested objects (cases, clerk) are tried too and fail that.  Read once per scratch copy."""
    if copy in _SCANS:
        return _SCANS[copy]
    found: list[tuple[str, dict[str, Any]]] = []
    decoder = json.JSONDecoder()
    seen: set[str] = set()
    step, overlap = 4 << 20, 128 << 10  # a record is at most 64 KiB: each is whole in a window
    with copy.open("rb") as f:
        at = 0
        while True:
            f.seek(at)
            text = f.read(step + overlap).decode("utf-8", errors="replace")
            if not text:
                break
            for start in (m.start() for m in re.finditer(r'\{"', text)):
                try:
                    record, end = decoder.raw_decode(text, start)
                except ValueError:
                    continue
                if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
                    continue
                raw = text[start:end]
                try:
                    keys = ("id", "hash", "prev_hash")
                    whole = all(isinstance(record.get(k), str) for k in keys)
                    if not whole or raw in seen or record_hash(record) != record["hash"]:
                        continue
                except (TypeError, ValueError):
                    continue
                if canonical_json(record).decode() != raw:
                    continue  # not as the pad stores it: not a record of a store
                seen.add(raw)
                found.append((raw, record))
            if len(text) <= step:
                break
            at += step
    _SCANS.clear()
    _SCANS[copy] = found
    return found


def _scanned(
    stream: str,
    copy: Path,
    signed: Callable[[Mapping[str, Any]], bool] | None,
    carried: list[Carried],
) -> dict[str, Any]:
    """The facts of a ``stream`` whose outbox cannot be read, from :func:`_scan_records`."""
    mine: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    for raw, record in _scan_records(copy):
        if record.get("kind") == "loss" or ("kind" in record) != (stream == "events"):
            continue  # a loss statement's stream cannot be told from its text: left alone
        if signed is not None and not signed(record):
            continue
        mine.setdefault((str(record.get("epoch", "")), int(record["seq"])), (raw, record))
    if not mine:
        return {}
    for (epoch, seq), (raw, record) in sorted(mine.items()):
        carried.append(Carried(stream, epoch, seq, str(record["id"]), raw))
    own = max(mine)[0]  # the newest epoch found: the store's own
    seqs = {q for e, q in mine if e == own}
    top = max(seqs)
    lost = [q for q in range(max(1, top - SCAN_LOST + 1), top + 1) if q not in seqs]
    return {"unsent": None, "carried": len(mine), "lost": lost, "scanned": True}


def _intact(stream: str, seq: int, row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    """The record of a kept-aside row when it is whole: a JSON object naming its row, whose
    content matches its hash (the city checks the signature); else ``None``."""
    if row is None or not isinstance(row[3], str):
        return None
    if stream == "ratings":
        record = decode_record(seq, row[1], row[3])
        if not isinstance(record, dict):
            return None
    else:
        record = _decode_event(seq, row[1], row[3])
        if record is None:
            return None
    try:
        return record if record_hash(record) == record.get("hash") == row[2] else None
    except (TypeError, ValueError):
        return None


def _keep_aside(
    path: Path, problem: str, signed: Callable[[Mapping[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """Rename the damaged store (and its -wal/-shm) to ``<name>.damaged-<UTC stamp>``.

    Never deletes nor overwrites anything.  Returns the ``follows_gap`` facts for the new store.
    """
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    name, n = f"{path.name}.damaged-{stamp}", 1
    while any(path.with_name(name + s).exists() for s in ("", *_SIDE_FILES)):
        n += 1
        name = f"{path.name}.damaged-{stamp}-{n}"
    kept = path.with_name(name)
    try:
        # The logs first: a database file must never meet another file's -wal.
        for suffix in (*_SIDE_FILES, ""):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.rename(side, kept.with_name(name + suffix))
    except OSError as exc:
        raise StoreDamaged(
            f"the rating store {path} is damaged ({problem}) and could not be kept aside as "
            f"{kept}: {exc}. Fix: make the folder {path.parent} writable, then restart the pad"
        ) from exc
    fsync_dir(path.parent)
    facts: dict[str, Any] = {
        "kept_aside": str(kept),
        "at": now.isoformat(timespec="seconds"),
        "problem": problem,
    }
    facts.update(_salvage_facts(kept, signed))
    return facts


def gap_note(gap: Mapping[str, Any]) -> str:
    """One line saying that a store follows a gap (for ``evaluator verify`` and the logs)."""
    text = f"this store follows a gap after {gap.get('kept_aside', '?')}"
    details = []
    if gap.get("problem"):
        details.append(f"damaged: {gap['problem']}")
    if gap.get("at"):
        details.append(f"kept aside at {gap['at']}")
    if gap.get("last_seq") is not None:
        details.append(f"its last readable rating is seq {gap['last_seq']}")
    if gap.get("unsent") is not None:
        details.append(f"{gap['unsent']} of its ratings were not yet acknowledged by the city")
    for stream in ("ratings", "events"):
        part = gap.get(stream) if isinstance(gap.get(stream), dict) else {}
        if part.get("carried"):
            details.append(f"{part['carried']} unacknowledged {stream} carried over and sent")
        if part.get("lost"):
            seqs = ", ".join(str(q) for q in part["lost"][:10])
            more = f" and {len(part['lost']) - 10} more" if len(part["lost"]) > 10 else ""
            details.append(f"{stream} seq {seqs}{more} unreadable: lost")
    return text + (f" ({'; '.join(details)})" if details else "")


def scheduled_check(store: Store) -> str:
    """Run ``store``'s full :meth:`Store.integrity_check` (the sync's schedule), log the result
    and return it for the status: ``"ok (12 ms)"`` or ``"damaged: …"``."""
    started = time.monotonic()
    try:
        problems = store.integrity_check()
    except StoreError as exc:  # it could not run: say so, claim nothing about the file
        log.warning("rating store %s: %s; it runs again at its next time", store.path, exc)
        return f"not checked: {exc}"
    took = (time.monotonic() - started) * 1000
    if problems:
        text = "; ".join(problems[:3])
        log.critical(
            "the rating store %s failed its integrity check (%s): the pad keeps it aside and "
            "starts a new store at its next start",
            store.path,
            text,
        )
        return f"damaged: {text}"
    log.info("rating store %s checked: ok (%.0f ms)", store.path, took)
    return f"ok ({took:.0f} ms)"


class DuplicateRating(StoreError):
    """A case was already rated at this stage with this assess number (art. 22); nothing stored.

    ``serials`` names the cases that were rated before.
    """

    def __init__(self, serials: Iterable[str], stage: str, assess_number: int) -> None:
        self.serials = list(serials)
        self.stage = stage
        self.assess_number = assess_number
        super().__init__(
            f"already rated at stage {stage!r}, assess number {assess_number}: "
            + ", ".join(self.serials)
        )


class Store:
    """The pad's rating store over one SQLite file at ``path`` (its directory is created).

    ``device_id`` goes into every record appended through this instance.  Open one instance per
    thread; see the module docstring.  ``conn`` is the ``sqlite3`` connection and ``db`` a
    sqlite-utils ``Database`` over it (made on first use), for diagnostics and tests only:
    write through the methods.

    Opening proves the store can be written (a committed write to ``meta``): a read-only file,
    folder or disk raises :class:`StoreReadOnly` at once, naming the path and the fix.  Other
    failures raise :class:`StoreError`.

    A store that was there but is damaged (an empty file, not a SQLite database, truncated,
    failing ``PRAGMA quick_check``, or a -wal without its database) is never silently replaced:
    with ``keep_damaged_aside`` (the pad's own open) it is renamed with its -wal/-shm to
    ``<name>.damaged-<UTC stamp>``, logged as critical, and a new store is created whose
    ``meta`` records that it follows that gap (:meth:`follows_gap`); ``recovered_from`` is then
    the kept-aside path.  Without it (the sync worker, which must not pull a file from under
    the UI thread) :class:`StoreDamaged` is raised.  :meth:`open_read_only` opens for the tools.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        device_id: str,
        keep_damaged_aside: bool = True,
        signer: Signer | Callable[[], Signer | None] | None = None,
    ) -> None:
        if not device_id:
            raise ValueError("device_id must not be empty")
        self.path = Path(path)
        self.device_id = device_id
        #: The device key that signs every record appended here, or a function giving it
        #: (:class:`sync.keyloader.KeyLoader`: loaded beside the pad); ``None``: unsigned (tools).
        self.signer = signer
        self.read_only = False
        #: The damaged file THIS open kept aside before starting a new store, else ``None``.
        self.recovered_from: Path | None = None
        #: Damaged records met so far by records(), pending() and damaged(), by seq.
        self.damage: dict[int, DamagedRecord] = {}
        self._damage_logged: set[int] = set()
        self._held_logged: set[tuple[str, int]] = set()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _open_error(self.path, exc) from exc
        # One writer per store (issue 14): refused at once while another process writes it,
        # before anything is looked at, created, kept aside or written (sync/storelock.py).
        try:
            lock = lock_store(self.path)
        except StoreError:  # sync.storelock.StoreLocked: another process writes this store
            raise
        except OSError as exc:  # no lock file in a read-only folder: say what to fix
            raise _lock_error(self.path, exc) from exc
        try:
            self._open_locked(keep_damaged_aside)
        except BaseException:
            lock.release()
            raise
        self._lock = lock

    def _signature_check(self) -> Callable[[Mapping[str, Any]], bool]:
        """Whether a record of a kept-aside store is signed as the city will check it: by the
        device key when its ``key_id`` is the key's (an older key's: a well-formed signature);
        unsigned, or no key to check with: left to the city."""
        signer = self._signer()
        public = getattr(signer, "public", None)
        key_id = getattr(signer, "key_id", None)

        def check(record: Mapping[str, Any]) -> bool:
            if "sig" not in record and "key_id" not in record:
                return True
            sig = signature_of(record)
            if sig is None or not isinstance(record.get("hash"), str):
                return False
            if public is None or record.get("key_id") != key_id:
                return len(sig) == 64
            return bool(public.check(record["hash"].encode("ascii"), sig))

        return check

    def _open_locked(self, keep_damaged_aside: bool) -> None:
        """The open of ``__init__`` once the store's lock is held: check, keep a damaged file
        aside and start a new store, or raise."""
        try:
            self._open_writable(None)
        except _Damage as damage:
            if not keep_damaged_aside:
                raise StoreDamaged(f"the rating store {self.path} is damaged: {damage}") from None
            gap = _keep_aside(self.path, str(damage), self._signature_check())
            self.recovered_from = Path(gap["kept_aside"])
            log.critical(
                "the rating store %s was damaged (%s): kept aside as %s (with its -wal/-shm), "
                "nothing deleted; a NEW store starts at %s: %s",
                self.path,
                damage,
                self.recovered_from,
                self.path,
                gap_note(gap),
            )
            try:
                self._open_writable(gap)
            except _Damage as again:
                raise StoreDamaged(
                    f"the new rating store {self.path} is damaged too: {again}"
                ) from None

    conn: sqlite3.Connection
    _db: Database | None = None
    _lock: StoreLock | None = None
    """This writer's reference to the store's lock (``None``: read-only, or closed)."""

    def _use(self, conn: sqlite3.Connection) -> None:
        """Make ``conn`` the store's connection, with the pragma sqlite-utils' ``Database``
        sets on every connection it wraps (so the SQL behaves the same with or without it)."""
        conn.execute("PRAGMA recursive_triggers = on")
        self.conn = conn
        self._db = None
        self._epoch = None  # a new file has its own epoch

    @property
    def db(self) -> Database:
        """A sqlite-utils ``Database`` over :attr:`conn` (migrations, diagnostics, tests);
        sqlite-utils is imported on first use, not at the pad's start."""
        if self._db is None or self._db.conn is not self.conn:
            from sqlite_utils import Database

            self._db = Database(self.conn)
        return self._db

    _held: tuple[int, int] | None = None

    def _open_writable(self, gap: Mapping[str, Any] | None) -> None:
        """Open (creating whole if absent), check, migrate and prove writable; or raise.

        Under :data:`_FILES_LOCK` from the header check to the open connection, so that no other
        store of this process reads the header with Python while SQLite holds the file."""
        with _FILES_LOCK:
            self._open_writable_locked(gap)
            self._held = _hold(self.path)

    def _open_writable_locked(self, gap: Mapping[str, Any] | None) -> None:
        _drop_names_of_crashed_creations(self.path)
        _refuse_other_names(self.path)
        problem = _file_damage(self.path)
        if problem is not None:
            raise _Damage(problem)
        try:
            if not self.path.exists():
                _create(self.path, gap)
            conn = _connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise _open_error(self.path, exc) from exc
        try:
            self._use(conn)
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._open_check()
            if self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise StoreError(f"the rating store {self.path} cannot use WAL journaling")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            with self._immediate():
                if _pending_migrations(conn):
                    migration_set().apply(self.db)
                self._check_device_id()
                # A real, committed write at every open: a read-only file, folder or disk is
                # found here, at start, and not by the first citizen who presses a button.
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)",
                    [datetime.now(UTC).isoformat(timespec="seconds")],
                )
        except (_Damage, StoreError):
            conn.close()
            raise
        except UnicodeDecodeError as exc:  # SQLite's own message quotes the garbled bytes
            conn.close()
            raise _Damage(f"it holds unreadable bytes where SQLite keeps text ({exc})") from exc
        except sqlite3.Error as exc:
            conn.close()
            if _sqlite_code(exc) in _SQLITE_DAMAGE:
                raise _Damage(str(exc)) from exc
            raise _open_error(self.path, exc) from exc

    def _open_check(self) -> None:
        """The check at every open, whose cost does not grow with the store: every b-tree's
        root page and its first and last leaf (:func:`_btree_ends`, well under a millisecond),
        after :func:`_file_damage` looked at the header.  The full ``quick_check`` (141 ms at
        100,000 ratings, and it ran at both opens of the pad's start) runs here only when the
        last scheduled one (:meth:`integrity_check`, the sync worker's) found damage; otherwise
        damage deeper inside a table is found by that schedule, or by SQLite as it reads."""
        problems = _btree_ends(self.conn)
        if not problems and self._last_check_failed():
            problems = _quick_check(self.conn)
        if problems:
            raise _Damage("it failed its integrity check: " + "; ".join(problems[:5]))

    def _last_check_failed(self) -> bool:
        try:
            row = self.conn.execute(
                "SELECT value FROM meta WHERE key = 'integrity_check'"
            ).fetchone()
        except sqlite3.OperationalError:  # no meta table yet: a new store
            return False
        if row is None:
            return False
        try:
            return json.loads(row[0]).get("ok") is not True
        except (TypeError, ValueError, AttributeError):
            return True  # an unreadable record of the last check: check again

    def integrity_check(self) -> list[str]:
        """The full ``PRAGMA quick_check`` of the store: ``[]`` when intact, else what SQLite
        found (at most 5 lines).  A file SQLite calls corrupt is a finding; an error that says
        nothing about the file (busy, I/O, out of memory) raises :class:`StoreError` and records
        nothing, so it never makes the next open keep a sound store aside.

        Its time grows with the store (141 ms at 100,000 ratings), so it is not run at open but
        by the sync worker on a schedule (``[mqtt] store_check_every``).  The result goes into
        ``meta`` (``integrity_check``: ``at``, ``ok``, ``problems``) when the disk still takes a
        write; after a failed check the next open runs it again, and a store still damaged
        then is kept aside like any damaged store (the pad's open).
        """
        try:
            problems = _quick_check(self.conn)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"the store check could not run: {exc}") from exc
        if not self.read_only:
            result = {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "ok": not problems,
                "problems": problems[:5],
            }
            try:
                with self._immediate():
                    self.conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('integrity_check', ?)",
                        [json.dumps(result, ensure_ascii=False, sort_keys=True)],
                    )
            except sqlite3.Error as exc:
                log.warning("could not record the store check's result: %s", exc)
        return problems

    @classmethod
    def open_read_only(cls, path: Path | str) -> Store:
        """Open an existing store for reading only, beside a pad that may be writing to it.

        SQLite ``mode=ro``: no migration, no ``meta`` write, no checkpoint, no lock that a
        writer waits for.  A store an older version wrote (migrations pending) is read through
        a migrated copy in memory.  ``device_id`` is the one in ``meta`` (``"unknown"`` if none).
        Raises :class:`StoreError` when there is no store, :class:`StoreDamaged` when it is
        damaged (it is left as it is: keeping it aside is the pad's job).  Writing methods
        raise :class:`StoreError`.
        """
        self = cls.__new__(cls)
        self.path = Path(path)
        self.read_only = True
        self.signer = None
        self.recovered_from = None
        self.damage = {}
        self._damage_logged = set()
        with _FILES_LOCK:
            self._open_read_only_locked()
            self._held = _hold(self.path)
        return self

    def _open_read_only_locked(self) -> None:
        if not self.path.exists():
            raise StoreError(f"no rating store at {self.path}")
        problem = _file_damage(self.path)
        if problem is not None:
            raise StoreDamaged(
                f"the rating store {self.path} is damaged: {problem} "
                "(the pad keeps it aside and starts a new store at its next start)"
            )
        uri = self.path.resolve().as_uri() + "?mode=ro"
        timeout = BUSY_TIMEOUT_MS / 1000
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(uri, uri=True, timeout=timeout)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                # A WAL store in a folder this user cannot write, and no -shm to share: safe
                # to read as an immutable file only when no write-ahead log content exists.
                wal = self.path.with_name(self.path.name + "-wal")
                if _sqlite_code(exc) not in _SQLITE_READ_ONLY or (
                    wal.exists() and wal.stat().st_size > 0
                ):
                    raise
                conn.close()
                conn = _connect(uri + "&immutable=1", uri=True, timeout=timeout)
            problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise StoreDamaged(
                    f"the rating store {self.path} failed its integrity check: "
                    + "; ".join(str(p) for p in problems[:5])
                )
            self._use(conn)
            if _pending_migrations(conn, check_table=False):
                # Written by an older version: read it through a migrated copy in memory,
                # never migrating the file itself (that is the pad's job, at its start).
                memory = _connect(":memory:")
                conn.backup(memory)
                conn.close()
                conn = memory
                self._use(conn)
                migration_set().apply(self.db)
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
            except sqlite3.OperationalError:
                row = None
        except StoreError:
            if conn is not None:
                conn.close()
            raise
        except UnicodeDecodeError as exc:
            if conn is not None:
                conn.close()
            raise StoreDamaged(
                f"the rating store {self.path} is damaged: unreadable bytes where SQLite keeps "
                f"text ({exc})"
            ) from exc
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if _sqlite_code(exc) in _SQLITE_DAMAGE:
                raise StoreDamaged(f"the rating store {self.path} is damaged: {exc}") from exc
            raise StoreError(f"cannot read the rating store {self.path}: {exc}") from exc
        self.device_id = str(row[0]) if row else "unknown"

    def follows_gap(self) -> dict[str, Any] | None:
        """``None``, or the facts of the damaged store this one replaced (see ``gap_note``).

        Keys: ``kept_aside`` (path), ``at`` (UTC), ``problem``, and when they could still be
        read from the damaged file ``last_seq``, ``last_hash`` and ``unsent`` (of its ratings),
        its ``epoch``, and per stream (``ratings``, ``events``) ``acked_seq``, ``acked_hash``,
        ``last_seq``, ``last_hash``, ``unsent``, ``carried`` and ``lost`` (issue 15 B).
        """
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'follows_gap'").fetchone()
        except sqlite3.OperationalError:
            return None
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError):
            value = None
        return value if isinstance(value, dict) else {"kept_aside": str(row[0])}

    _epoch: str | None = None

    @property
    def epoch(self) -> str:
        """The store's epoch id (issue 15 B), ``""`` for a store made before epochs: every
        record sealed here carries it, and the city keys this store's chains by it."""
        if self._epoch is None:
            try:
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            except sqlite3.Error:
                return ""  # no meta table (an empty legacy file): not cached
            self._epoch = str(row[0]) if row and row[0] else ""
        return self._epoch

    def open_epoch(self) -> dict[str, Any] | None:
        """Write the store's ``epoch`` event now if it is not written yet (it is anyway, with
        the first record): the event, or ``None`` when there is nothing to write (written
        before, or a store made before epochs).  :class:`StoreError` when the disk refuses."""
        signer = self._signer()
        try:
            with self._immediate():
                return self._open_epoch(signer)
        except sqlite3.Error as exc:
            raise StoreError(f"the epoch event could not be stored: {exc}") from exc

    def _open_epoch(self, signer: Signer | None) -> dict[str, Any] | None:
        """Inside a write transaction, before the first record of a new store: its event seq 1,
        the signed ``epoch`` event naming the kept-aside store it follows (or none).  Written
        with the first record (not at open: the key may still be loading, issue 6)."""
        epoch = self.epoch
        if not epoch or self.conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
            return None
        gap = self.follows_gap()
        previous: dict[str, Any] | None = None
        if gap is not None:
            previous = {
                "epoch": str(gap.get("epoch", "")),
                "kept_aside": str(gap.get("kept_aside", "")),
                "problem": str(gap.get("problem", "")),
            }
            for stream in ("ratings", "events"):
                part = gap.get(stream) if isinstance(gap.get(stream), dict) else {}
                previous[stream] = {
                    key: part.get(key)
                    for key in ("acked_seq", "acked_hash", "last_seq", "last_hash", "unsent")
                } | {"carried": part.get("carried"), "lost": list(part.get("lost") or [])}
        body = {"epoch": epoch, "previous": previous}
        return self._append_event("epoch", body, signer, opening=True)

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[None]:
        """One write transaction that takes the write lock at once (no stale-snapshot retry).

        ``BEGIN IMMEDIATE`` waits (busy timeout) for another writer instead of failing midway
        when two instances write concurrently; sqlite-utils calls inside nest as savepoints.
        """
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _check_device_id(self) -> None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
        if row is None:
            self.conn.execute(
                "INSERT INTO meta(key, value) VALUES ('device_id', ?)", [self.device_id]
            )
        elif row[0] != self.device_id:
            log.warning(
                "rating store %s was created by device %r, now used as %r; new records carry %r",
                self.path,
                row[0],
                self.device_id,
                self.device_id,
            )

    # -- ratings --------------------------------------------------------------------------

    def append_rating(
        self, content: Mapping[str, Any], *, close: PresentationEnd | None = None
    ) -> dict[str, Any]:
        """Commit one rating durably and queue it for upload; return the sealed record.

        Assigns ``id`` (UUIDv7-like, unless ``content`` brings one), ``seq`` (last + 1, from 1)
        and ``device_id``, chains it to the previous record and writes the rating, one
        ``rating_cases`` row per distinct case serial, the outbox row and, given ``close``, the
        presentation's outcome, in ONE transaction: a power cut leaves all or none of them.
        ``content`` needs ``level``, ``stage``, ``assess_number`` and ``cases`` (objects with a
        ``serial`` and ``kind``; ``visit`` defaults to 1).

        Raises :class:`DuplicateRating` when a case was already rated in its slot with that
        assess number, :class:`StoreError` for a follow-up without a first rating, or when the
        disk refuses the write (full, read-only, I/O error); in every case nothing is written.
        ``ValueError`` for malformed content.
        """
        slots, stage, assess_number = _case_keys(content)
        serials = [s for s, _ in slots]
        kinds = {
            str(c.get("serial")): str(c.get("kind", ""))
            for c in content["cases"]
            if isinstance(c, Mapping)
        }
        # The key is had before the write transaction (it may still be loading).
        signer = self.signer() if callable(self.signer) else self.signer
        try:
            with self._immediate():
                rated = self.already_rated(slots, assess_number)
                if rated:
                    raise DuplicateRating(rated, stage, assess_number)
                changed = [
                    s for s, k in self.case_kinds(serials).items() if k and k != kinds.get(s)
                ]
                if changed:
                    raise StoreError(
                        f"kind changed: {', '.join(changed)} was rated with another kind before"
                    )
                if assess_number > 1:
                    firsts = self.first_ratings(slots)
                    missing = [s for s in serials if s not in firsts]
                    if missing:
                        raise StoreError(
                            f"follow-up refused: no first rating of {', '.join(missing)}"
                        )
                self._open_epoch(signer)
                last = self.conn.execute(
                    "SELECT seq, hash FROM ratings ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
                body = dict(content)
                if not isinstance(body.get("id"), str) or not body["id"]:
                    body["id"] = new_record_id()
                body.update(seq=seq, device_id=self.device_id)
                if self.epoch:
                    body["epoch"] = self.epoch
                record = seal(body, prev_hash=prev_hash, signer=signer)
                self.conn.execute(
                    "INSERT INTO ratings (id, seq, device_id, presentation_id, level, stage,"
                    " assess_number, rated_at, hash, prev_hash, record)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        record["id"],
                        seq,
                        self.device_id,
                        record.get("presentation_id"),
                        record["level"],
                        stage,
                        assess_number,
                        record.get("rated_at"),
                        record["hash"],
                        record["prev_hash"],
                        canonical_json(record).decode(),
                    ],
                )
                self.conn.executemany(
                    "INSERT INTO rating_cases (rating_id, serial, stage, slot, assess_number,"
                    " kind) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (record["id"], s, stage, slot, assess_number, kinds.get(s, ""))
                        for s, slot in slots
                    ],
                )
                self.conn.execute(
                    "INSERT INTO outbox (seq, rating_id) VALUES (?, ?)", [seq, record["id"]]
                )
                if close is not None:
                    self._close(close, signer)
        except sqlite3.IntegrityError as exc:
            if "rating_cases" in str(exc):
                raise DuplicateRating(serials, stage, assess_number) from exc
            raise StoreError(f"the rating was refused by the store: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(
                f"the rating could not be stored (nothing was written): {exc}"
            ) from exc
        return record

    def already_rated(self, slots: Iterable[tuple[str, str]], assess_number: int) -> list[str]:
        """Serials of ``(serial, slot)`` pairs (in the given order) already rated with
        ``assess_number``."""
        wanted = list(dict.fromkeys(slots))
        found: set[tuple[str, str]] = set()
        for chunk in _chunks(wanted, _SQL_VARS // 3):
            rows = self.conn.execute(
                "SELECT c.serial, c.slot FROM rating_cases c WHERE c.assess_number = ?"
                f" AND {_slot_match(len(chunk))}",
                [assess_number, *_slot_values(chunk)],
            ).fetchall()
            found.update((r[0], r[1]) for r in rows)
        return list(dict.fromkeys(s for s, slot in wanted if (s, slot) in found))

    def case_kinds(self, serials: Iterable[str]) -> dict[str, str]:
        """Serial → the kind (instant, promise, consult) its ratings were stored with, for
        those already rated: a case keeps its kind, so a kind sent differently later cannot
        open a new slot (art. 22)."""
        wanted = list(dict.fromkeys(serials))
        found: dict[str, str] = {}
        for chunk in _chunks(wanted, _SQL_VARS):
            marks = ",".join("?" * len(chunk))
            for serial, kind in self.conn.execute(
                f"SELECT serial, kind FROM rating_cases WHERE serial IN ({marks}) AND kind != ''",
                chunk,
            ).fetchall():
                found.setdefault(serial, kind)
        return found

    def first_ratings(self, slots: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """Serial → its first rating (assess number 1) in that slot: ``rating_id``,
        ``rated_at`` (ISO) and ``clock_synced``; serials without one are left out."""
        wanted = list(dict.fromkeys(slots))
        result: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(wanted, _SQL_VARS // 3):
            rows = self.conn.execute(
                _RATING_STAMPS + f" WHERE c.assess_number = 1 AND {_slot_match(len(chunk))}",
                _slot_values(chunk),
            ).fetchall()
            for serial, rid, rated_at, synced in rows:
                result[serial] = _rating_stamp(rid, rated_at, synced)
        return result

    def last_ratings(self, serials: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Serial → its latest rating (by seq) in any slot and assess number: ``rating_id``,
        ``rated_at`` (ISO) and ``clock_synced``; serials never rated are left out."""
        wanted = list(dict.fromkeys(serials))
        result: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(wanted, _SQL_VARS):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                _RATING_STAMPS + f" WHERE c.serial IN ({marks}) ORDER BY r.seq",
                chunk,
            ).fetchall()
            for serial, rid, rated_at, synced in rows:  # the last one wins
                result[serial] = _rating_stamp(rid, rated_at, synced)
        return result

    def left_unrated(self, slots: Iterable[tuple[str, str]], assess_number: int) -> list[str]:
        """Serials of ``(serial, slot)`` pairs (in the given order) that a presentation with
        ``assess_number`` showed, the citizen touched, and that ended without a rating."""
        wanted = list(dict.fromkeys(slots))
        found: set[tuple[str, str]] = set()
        for chunk in _chunks(wanted, _SQL_VARS // 3):
            rows = self.conn.execute(
                "SELECT c.serial, c.slot FROM presentation_cases c"
                " JOIN presentations p ON p.id = c.presentation_id"
                " WHERE c.assess_number = ? AND p.touched = 1"
                f" AND p.outcome IN ('cancelled', 'not_rated') AND {_slot_match(len(chunk))}",
                [assess_number, *_slot_values(chunk)],
            ).fetchall()
            found.update((r[0], r[1]) for r in rows)
        return list(dict.fromkeys(s for s, slot in wanted if (s, slot) in found))

    def records(
        self, *, since_seq: int = 0, damage: list[DamagedRecord] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every intact sealed record with ``seq`` greater than ``since_seq``, in seq order.

        The one place where stored records are decoded.  A damaged record (see
        :func:`decode_record`) is skipped, never raised: it is added to ``damage`` when given
        and to :attr:`damage`, and logged once (by the pad, not by the read-only tools).
        """
        after = since_seq
        while True:
            rows = self.conn.execute(
                "SELECT seq, id, record FROM ratings WHERE seq > ? ORDER BY seq LIMIT ?",
                [after, _PAGE],
            ).fetchall()
            for seq, row_id, text in rows:
                after = seq
                record = self._decode(seq, row_id, text, damage)
                if record is not None:
                    yield record
            if len(rows) < _PAGE:
                return

    def damaged(self) -> list[DamagedRecord]:
        """Every damaged record in the store, in seq order (reads the whole table)."""
        found: list[DamagedRecord] = []
        for _ in self.records(damage=found):
            pass
        return found

    def _decode(
        self, seq: int, row_id: str | None, text: Any, damage: list[DamagedRecord] | None
    ) -> dict[str, Any] | None:
        decoded = decode_record(seq, row_id, text)
        if isinstance(decoded, dict):
            return decoded
        self.damage[seq] = decoded
        if damage is not None:
            damage.append(decoded)
        if not self.read_only and seq not in self._damage_logged:
            self._damage_logged.add(seq)
            log.error(
                "rating store %s: damaged record %s; skipped, left in place", self.path, decoded
            )
        return None

    def verify(self) -> ChainBreak | None:
        """``None`` when every record is intact, else the first broken one.

        Checks that each record can be decoded (:func:`decode_record`), the hash chain and seq
        continuity (``verify_chain``) and that each row's columns agree with its stored record
        JSON (a row edited behind the store's back).  Never raises for damaged content.  The
        signatures are :meth:`signatures`' business.
        """
        mismatch: list[ChainBreak] = []
        names = ", ".join(_MIRRORED)

        def rows() -> Iterator[dict[str, Any]]:
            after = 0
            while True:
                page = self.conn.execute(
                    f"SELECT {names}, record FROM ratings WHERE seq > ? ORDER BY seq LIMIT ?",
                    [after, _PAGE],
                ).fetchall()
                for row in page:
                    columns = dict(zip(_MIRRORED, row[:-1], strict=True))
                    after = columns["seq"]
                    decoded = decode_record(columns["seq"], columns["id"], row[-1])
                    if isinstance(decoded, DamagedRecord):
                        mismatch.append(
                            ChainBreak(
                                columns["seq"],
                                columns["id"],
                                f"record is damaged: {decoded.problem}",
                            )
                        )
                        return
                    record = decoded
                    differ = [k for k in _MIRRORED if record.get(k) != columns[k]]
                    if differ:
                        mismatch.append(
                            ChainBreak(
                                columns["seq"],
                                columns["id"],
                                "stored columns disagree with the record: " + ", ".join(differ),
                            )
                        )
                        return
                    yield record
                if len(page) < _PAGE:
                    return

        broken = verify_chain(rows())
        return broken or (mismatch[0] if mismatch else None)

    def signatures(self, check: SignatureCheck) -> SignatureReport:
        """Every record's signature checked with ``check`` (damaged records are left to
        :meth:`verify` and ``records``)."""
        return signature_report(self.records(), check)

    def signed_count(self) -> tuple[int, int]:
        """``(signed, unsigned)`` records: those from before the device had a key are unsigned."""
        signed, total = self.conn.execute(
            "SELECT count(*) FILTER (WHERE json_valid(record)"
            " AND json_extract(record, '$.sig') IS NOT NULL), count(*) FROM ratings"
        ).fetchone()
        return int(signed), int(total) - int(signed)

    # -- outbox ---------------------------------------------------------------------------

    #: The outbox read: a range of the outbox's own key (the seq), each row's rating by its
    #: seq; CROSS JOIN keeps the outbox outside, so no read walks the rating history.
    _OUTBOX_SQL = (
        "SELECT o.seq, r.id, r.record FROM outbox o CROSS JOIN ratings r ON r.seq = o.seq"
        " WHERE o.seq > ? AND o.seq <= ? ORDER BY o.seq LIMIT ?"
    )
    #: The same read for the sync, with the outbox row's own id and the row's ``hash`` column.
    _OUTBOX_CHECK_SQL = (
        "SELECT o.seq, o.rating_id, r.id, r.record, r.hash FROM outbox o"
        " CROSS JOIN ratings r ON r.seq = o.seq"
        " WHERE o.seq > ? AND o.seq <= ? ORDER BY o.seq LIMIT ?"
    )

    def pending(
        self,
        limit: int = 100,
        *,
        after_seq: int = 0,
        damage: list[DamagedRecord] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` intact sealed records still waiting for the city's ack, in seq order.

        ``after_seq`` skips records with a seq up to it (to page through a long outbox).
        Damaged records are skipped as in :meth:`records` (they stay in the outbox, reported
        through ``damage`` and :attr:`damage`), so fewer than ``limit`` records means that the
        outbox holds no more intact ones after ``after_seq``.  Reads the outbox rows it returns
        (and the damaged ones it skips), never the rating history before them.
        """
        found: list[dict[str, Any]] = []
        after = after_seq
        while len(found) < limit:
            want = limit - len(found)
            rows = self.conn.execute(self._OUTBOX_SQL, [after, _MAX_SEQ, want]).fetchall()
            for seq, row_id, text in rows:
                after = seq
                record = self._decode(seq, row_id, text, damage)
                if record is not None:
                    found.append(record)
            if len(rows) < want:
                break
        return found

    def outbox_page(
        self, limit: int, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> OutboxPage:
        """The next ``limit`` outbox rows after ``after_seq`` (up to ``upto_seq``), for the sync.

        One range read of the outbox, each record checked before it is handed on
        (:meth:`_checked_page`: shape, hash, signature, chain) as the bytes stored, which are its
        canonical JSON: nothing re-encoded.  A damaged record is never handed on: its signed
        loss statement is, in its place (made now if it is the first time).  The page's
        ``last_seq`` moves past every row read, and ``more`` says that ``limit`` rows were read
        (so more may wait).
        """
        rows = self.conn.execute(
            self._OUTBOX_CHECK_SQL, [after_seq, _MAX_SEQ if upto_seq is None else upto_seq, limit]
        ).fetchall()
        return self._checked_page("ratings", rows, after_seq, limit)

    def ack(self, ids: Iterable[str], *, durable: bool = True) -> int:
        """The city stored these ratings and events: drop them from both outboxes, in ONE
        transaction (ratings and events are acked on the same topic, by id).

        Returns how many of ``ids`` were pending; unknown or already acked ids are ignored.
        ``durable=False`` (the sync worker's acks) commits without waiting for the disk: a power
        cut may bring back an ack's outbox rows, whose ratings are then sent again and acked
        again (the city deduplicates by id) — never a rating lost, and no fsync per ack.
        """
        unique = [i for i in dict.fromkeys(ids) if isinstance(i, str)]
        if not unique:
            return 0
        removed = 0
        try:
            with self._synchronous(None if durable else "NORMAL"), self._immediate():
                for chunk in _chunks(unique, _SQL_VARS):
                    marks = ",".join("?" * len(chunk))
                    cur = self.conn.execute(
                        f"DELETE FROM outbox WHERE rating_id IN ({marks})", chunk
                    )
                    removed += cur.rowcount
                    cur = self.conn.execute(
                        f"DELETE FROM event_outbox WHERE event_id IN ({marks})", chunk
                    )
                    removed += cur.rowcount
                    cur = self.conn.execute(
                        f"DELETE FROM carried_outbox WHERE id IN ({marks})", chunk
                    )
                    removed += cur.rowcount
                    # an outbox row whose id column the card damaged: found by its record's id
                    # (the id the city acks), else it stayed unacked and resent for ever
                    cur = self.conn.execute(
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM ratings WHERE id IN"
                        f" ({marks}))", chunk
                    )  # fmt: skip
                    removed += cur.rowcount
                    cur = self.conn.execute(
                        "DELETE FROM event_outbox WHERE seq IN (SELECT seq FROM events WHERE id IN"
                        f" ({marks}))", chunk
                    )  # fmt: skip
                    removed += cur.rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"could not record the acknowledgement: {exc}") from exc
        return removed

    @contextlib.contextmanager
    def _synchronous(self, level: str | None) -> Iterator[None]:
        """``PRAGMA synchronous = level`` for one transaction (outside any), FULL again after."""
        if level is None:
            yield
            return
        self.conn.execute(f"PRAGMA synchronous = {level}")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA synchronous = FULL")

    def last_seq(self) -> int:
        """The seq of the newest rating, 0 when there is none (a cheap "anything new?")."""
        return int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM ratings").fetchone()[0])

    def ratings_head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the newest rating (the ratings chain's head), ``None`` when none:
        what the signed head of :mod:`evaluator.rules.witness` and the status report."""
        row = self.conn.execute(
            "SELECT seq, hash FROM ratings ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def last_outbox_seq(self) -> int:
        """The seq of the newest rating waiting for the city's ack, 0 when none waits."""
        return int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0])

    def outbox_size(self) -> int:
        """How many ratings wait for the city's ack."""
        return int(self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    # -- presentations --------------------------------------------------------------------

    def open_presentation(
        self,
        *,
        id: str,
        serials: Iterable[str],
        stage: str,
        assess_number: int,
        clerk_id: str | None,
        matter_codes: Iterable[str],
        started_at: str,
        clock_synced: bool,
        cases: Iterable[tuple[str, str, str]] | None = None,
        visit: int = 1,
        follows: Iterable[str] = (),
        facts: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Record that the rating screen opened (counts as *presented* for participation).

        Called when the screen opens, before any press, so an unrated presentation survives a
        power cut.  ``started_at`` is an ISO time (see ``clock_synced`` for its trust).
        ``cases`` lists ``(serial, slot, matter_code)`` per case (default: the slot from the
        stage alone).  Returns the ids of earlier presentations of the same cases that ended
        unrated (cancelled or not rated): this one re-presents them, and says so in its row
        and in a ``represented`` event for the city (art. 4 supervision), in the same
        transaction.  ``facts`` (``cases`` as in ratings, ``clerk``, ``terminal``,
        ``area_code``) are kept for the ``presentation_end`` event of an end without a rating.
        Raises :class:`StoreError` when ``id`` exists or the disk refuses the write.
        """
        serial_list = list(serials)
        codes = list(dict.fromkeys(matter_codes))
        if cases is None:
            one = codes[0] if len(codes) == 1 else ""
            case_rows = [(s, rating_slot("", stage, visit), one) for s in serial_list]
        else:
            case_rows = list(cases)
        signer = self._signer()  # before the write transaction (it may still be loading)
        try:
            with self._immediate():
                earlier: list[str] = []
                again: list[str] = []  # the serials shown before
                for chunk in _chunks([(s, slot) for s, slot, _ in case_rows], _SQL_VARS // 2):
                    marks = ",".join("(?, ?)" for _ in chunk)
                    rows = self.conn.execute(
                        "SELECT p.id, c.serial FROM presentation_cases c"
                        " JOIN presentations p ON p.id = c.presentation_id"
                        " WHERE c.assess_number = ? AND p.outcome IN ('cancelled', 'not_rated')"
                        f" AND (c.serial, c.slot) IN (VALUES {marks}) ORDER BY p.seq",
                        [assess_number, *[v for pair in chunk for v in pair]],
                    ).fetchall()
                    earlier.extend(dict.fromkeys(r[0] for r in rows if r[0] not in earlier))
                    again.extend(dict.fromkeys(r[1] for r in rows if r[1] not in again))
                last = self.conn.execute("SELECT max(seq) FROM presentations").fetchone()[0]
                self.conn.execute(
                    "INSERT INTO presentations (id, seq, serials, stage, assess_number, clerk_id,"
                    " matter_codes, started_at, clock_synced, visit, follows, represents, facts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        id,
                        (last or 0) + 1,
                        _json(serial_list),
                        stage,
                        assess_number,
                        clerk_id,
                        _json(codes),
                        started_at,
                        int(bool(clock_synced)),
                        visit,
                        _json(list(follows)),
                        _json(earlier),
                        None if facts is None else _json(dict(facts)),
                    ],
                )
                self.conn.executemany(
                    "INSERT INTO presentation_cases (presentation_id, serial, slot,"
                    " assess_number, matter_code) VALUES (?, ?, ?, ?, ?)",
                    [(id, s, slot, assess_number, code) for s, slot, code in case_rows],
                )
                if earlier:
                    known = facts or {}
                    event = {
                        "presentation_id": id,
                        "represents": earlier,
                        "serials": again,
                        "clerk": known["clerk"] if "clerk" in known else _clerk_of(clerk_id),
                        "at": started_at,
                        "clock_synced": clock_synced,
                    }
                    self._append_event("represented", event, signer)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"presentation {id} was already opened: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"could not record presentation {id}: {exc}") from exc
        if earlier:
            log.info("presentation %s re-presents unrated presentation(s) %s", id, earlier)
        return earlier

    def close_presentation(
        self,
        id: str,
        *,
        outcome: str,
        ended_at: str,
        rating_ids: Iterable[str] = (),
        cause: str = "",
        touched: bool | None = None,
        clock_synced: bool = False,
    ) -> None:
        """Set a presentation's outcome (``rated``, ``not_rated`` or ``cancelled``), once, with
        what ended it (``cause``: ``rated``, ``timeout``, ``evaluation.cancel``, ``window.pause``,
        ``clerk.sign_out``, ``restart``) and whether the citizen touched it.

        An end without a rating also appends its ``presentation_end`` event (the city's, for
        the art. 25 follow-up) in the same transaction: never lost, never written twice (the
        outcome is set once).  ``clock_synced`` is the trust of ``ended_at``.

        Raises :class:`StoreError` for an unknown id, an outcome already set, or a disk error;
        ``ValueError`` for an unknown outcome.
        """
        end = PresentationEnd(
            id, outcome, ended_at, tuple(rating_ids), cause, touched, clock_synced
        )
        signer = self._signer()  # before the write transaction (it may still be loading)
        try:
            with self._immediate():
                self._close(end, signer)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"presentation {id} cannot be closed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"could not close presentation {id}: {exc}") from exc

    def _close(self, end: PresentationEnd, signer: Signer | None = None) -> None:
        """The UPDATE of :meth:`close_presentation`, inside the caller's transaction, and the
        ``presentation_end`` event of an end without a rating."""
        if end.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {end.outcome!r}")
        cur = self.conn.execute(
            "UPDATE presentations SET outcome = ?, ended_at = ?, rating_ids = ?, end_cause = ?,"
            " touched = ? WHERE id = ?",
            [
                end.outcome,
                end.ended_at,
                _json(list(end.rating_ids)),
                end.cause or None,
                None if end.touched is None else int(end.touched),
                end.id,
            ],
        )
        if cur.rowcount == 0:
            raise StoreError(f"no presentation {end.id} to close")
        if end.outcome != "rated":
            self._append_event("presentation_end", self._end_event(end), signer)

    def _end_event(self, end: PresentationEnd) -> dict[str, Any]:
        """The body of a ``presentation_end`` event, from the presentation's row and the facts
        kept when it opened (a row from before migration m004 has none: what it lacks is null)."""
        row = self.conn.execute(
            "SELECT serials, clerk_id, started_at, facts FROM presentations WHERE id = ?",
            [end.id],
        ).fetchone()
        serials, clerk_id, started_at, facts_text = row
        facts = _json_object(facts_text)
        cases = facts.get("cases")
        if not isinstance(cases, list) or not cases:
            codes = dict(
                self.conn.execute(
                    "SELECT serial, matter_code FROM presentation_cases WHERE presentation_id = ?",
                    [end.id],
                ).fetchall()
            )
            cases = [
                {"serial": s, "matter_code": codes.get(s, ""), "matter_name": None, "kind": None}
                for s in _json_list(serials)
            ]
        clerk = facts["clerk"] if "clerk" in facts else _clerk_of(clerk_id)
        return {
            "presentation_id": end.id,
            "outcome": end.outcome,
            "cases": cases,
            "clerk": clerk,
            "terminal": facts.get("terminal"),
            "area_code": facts.get("area_code"),
            "presented_at": started_at,
            "ended_at": end.ended_at,
            "by": END_BY.get(end.cause, end.cause or "unknown"),
            "at": end.ended_at,
            "clock_synced": bool(end.clock_synced),
        }

    # -- events ---------------------------------------------------------------------------

    def _signer(self) -> Signer | None:
        return self.signer() if callable(self.signer) else self.signer

    def append_event(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Commit one event for the city durably with its outbox row, in ONE transaction, and
        return the sealed record (see docs/schemas/event.schema.json).

        ``body`` holds the kind's fields and ``at`` (ISO local time) and ``clock_synced``
        (now, unsynchronised, when absent).  The store adds ``id``, ``seq`` (the events' own,
        from 1), ``device_id`` and ``kind``, chains it to the previous EVENT (its own chain,
        :data:`~evaluator.rules.records.GENESIS_HASH` first) and signs it with the ratings'
        device key.  :class:`StoreError` when the disk refuses (nothing written);
        ``ValueError`` for an unknown kind.
        """
        signer = self._signer()
        try:
            with self._immediate():
                return self._append_event(kind, body, signer)
        except sqlite3.Error as exc:
            raise StoreError(f"the event could not be stored (nothing was written): {exc}") from exc

    def _append_event(
        self,
        kind: str,
        body: Mapping[str, Any],
        signer: Signer | None,
        *,
        opening: bool = False,
    ) -> dict[str, Any]:
        """The INSERTs of :meth:`append_event`, inside the caller's transaction (after the
        store's ``epoch`` event when it is its first event; ``opening``: that event itself)."""
        if kind not in EVENT_KINDS or (kind == "epoch") != opening:
            known = ", ".join(k for k in EVENT_KINDS if k != "epoch")
            raise ValueError(f"event kind must be one of {known}, not {kind!r}")
        if not opening:
            self._open_epoch(signer)
        last = self.conn.execute(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        content = {k: v for k, v in body.items() if k not in ("id", "seq", "device_id", "kind")}
        content.setdefault("at", local_now())
        content["clock_synced"] = bool(content.get("clock_synced", False))
        content.update(id=new_record_id(), seq=seq, device_id=self.device_id, kind=kind)
        if self.epoch:
            content["epoch"] = self.epoch
        record = seal(content, prev_hash=prev_hash, signer=signer)
        self.conn.execute(
            "INSERT INTO events (seq, id, kind, at, hash, record) VALUES (?, ?, ?, ?, ?, ?)",
            [
                seq,
                record["id"],
                kind,
                record["at"],
                record["hash"],
                canonical_json(record).decode(),
            ],
        )
        self.conn.execute(
            "INSERT INTO event_outbox (seq, event_id) VALUES (?, ?)", [seq, record["id"]]
        )
        return record

    def event_records(self, *, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        """Every readable event with ``seq`` greater than ``since_seq``, in seq order (an
        unreadable one is logged and skipped; :meth:`verify_events` reports the break)."""
        after = since_seq
        while True:
            rows = self.conn.execute(
                "SELECT seq, id, record FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                [after, _PAGE],
            ).fetchall()
            for seq, row_id, text in rows:
                after = seq
                record = _decode_event(seq, row_id, text)
                if record is not None:
                    yield record
            if len(rows) < _PAGE:
                return

    def verify_events(self) -> ChainBreak | None:
        """``None`` when the events' own hash chain holds, else the first broken event."""
        return verify_chain(self.event_records())

    #: The event outbox read, as :attr:`_OUTBOX_SQL` for ratings.
    _EVENT_OUTBOX_SQL = (
        "SELECT o.seq, o.event_id, e.id, e.record, e.hash FROM event_outbox o"
        " CROSS JOIN events e ON e.seq = o.seq WHERE o.seq > ? ORDER BY o.seq LIMIT ?"
    )

    def event_outbox_page(self, limit: int, *, after_seq: int = 0) -> OutboxPage:
        """The next ``limit`` events waiting for the city's ack after ``after_seq`` (the sync's
        event lane), each checked and handed on as the canonical JSON stored, or its loss
        statement in its place (as :meth:`outbox_page`)."""
        rows = self.conn.execute(self._EVENT_OUTBOX_SQL, [after_seq, limit]).fetchall()
        return self._checked_page("events", rows, after_seq, limit)

    # -- the check before publishing, loss statements (issue 15) ---------------------------

    #: Whether the pad's clock is synchronised (the sync worker keeps it): a new loss
    #: statement's ``clock_synced``.
    clock_synced = False

    def _own_check(
        self, stream: str, seq: int, row_id: Any, text: Any
    ) -> tuple[dict[str, Any] | None, str]:
        """``(record, "")`` when the stored record is intact on its own (shape, the row's seq
        and id, hash, signature with the device's current key), else ``(None, problem)``."""
        decode = decode_record if stream == "ratings" else decode_event_record
        decoded = decode(seq, row_id, text)
        if isinstance(decoded, DamagedRecord):
            return None, decoded.problem
        signer = self._signer()
        public = getattr(signer, "public", None)
        problem = self_problem(
            decoded,
            key_id=getattr(signer, "key_id", None) if public is not None else None,
            check=public.check if public is not None else None,
        )
        return (decoded, "") if problem is None else (None, problem)

    def _checked_page(
        self, stream: str, rows: list[tuple[Any, ...]], after_seq: int, limit: int
    ) -> OutboxPage:
        """Each outbox row ``(seq, outbox id, row id, record text, row hash)`` checked before it
        is published: intact (on its own, and its ``prev_hash`` is the chain hash of seq - 1) it
        is handed on as stored; else its loss statement is, made now when there is none yet
        (:mod:`evaluator.rules.loss`).  Reads this page, the statements of its seq range, and
        at most the row before it: never the history."""
        last = rows[-1][0] if rows else after_seq
        if not rows:
            return OutboxPage([], last, False)
        table = "ratings" if stream == "ratings" else "events"
        low, high = rows[0][0], rows[-1][0]
        kept_rows = self.conn.execute(
            "SELECT seq, lost_hash, record FROM losses WHERE stream = ? AND seq BETWEEN ? AND ?",
            [stream, low - 1, high + 1],
        ).fetchall()
        by_seq = {int(row[0]): (row[2], row[3], row[4]) for row in rows}
        own: dict[int, tuple[dict[str, Any] | None, str, Any]] = {}

        def checked(seq: int) -> tuple[dict[str, Any] | None, str, Any] | None:
            if seq not in own:
                row = by_seq.get(seq)
                if row is None:
                    found = self.conn.execute(
                        f"SELECT id, record, hash FROM {table} WHERE seq = ?", [seq]
                    ).fetchone()
                    if found is None:
                        return None
                    row = tuple(found)
                if row[0] is None and row[1] is None:  # asked for, not in the table at all
                    return None
                record, problem = self._own_check(stream, seq, row[0], row[1])
                own[seq] = (record, problem, row[2])
            return own[seq]

        stated: dict[int, tuple[str, str]] = {}
        for seq, lost, text in kept_rows:
            # the signed statement's lost_hash, not the column, when the statement is intact:
            # a flipped byte in the column must not break the chain of the record after it
            kept = self._intact_statement(int(seq), text)
            mine = checked(int(seq)) if kept is None else None
            if mine is not None and mine[0] is not None:
                continue  # a row nobody signed (damaged or written in) never hides an intact record
            stated[int(seq)] = (str(kept["lost_hash"] if kept else lost), str(text))

        def chain_hash(seq: int) -> str:
            if seq < 1:
                return GENESIS_HASH
            if seq in stated:
                return stated[seq][0]
            mine = checked(seq)
            if mine is None:  # no such row: what the record after it says
                after = checked(seq + 1)
                return lost_chain_hash(after[0] if after else None, None)
            if mine[0] is not None:
                return str(mine[0]["hash"])
            after = checked(seq + 1)
            return lost_chain_hash(after[0] if after else None, mine[2])

        items: list[Outgoing] = []
        new: list[int] = []
        held: list[tuple[int, str]] = []
        for seq, outbox_id, _row_id, text, _row_hash in rows:
            seq = int(seq)
            if seq in stated:
                kept = self._kept_statement(stream, seq, stated[seq][1])
                if kept is not None:
                    items.append(Outgoing(seq, str(outbox_id), kept.encode("utf-8")))
                    continue
                # The kept statement itself was damaged on the card: a new one, not kept (the
                # table is append-only); the city has the first by id, or takes this one.
                problem = (checked(seq) or (None, MISSING_PROBLEM, None))[1]
                made = self._state_loss(
                    stream, seq, str(outbox_id), prev_hash=chain_hash(seq - 1),
                    lost_hash=stated[seq][0], problem=problem or "stated before",
                    damaged=text if isinstance(text, str) else "", keep=False,
                )  # fmt: skip
                if made is not None:
                    items.append(Outgoing(seq, str(outbox_id), made[1].encode("utf-8")))
                continue
            record, problem, row_hash = checked(seq) or (None, MISSING_PROBLEM, None)
            if record is not None:
                problem = chain_problem(record, chain_hash(seq - 1)) or ""
                if not problem:  # under the record's id: the one the city acks
                    items.append(Outgoing(seq, str(record["id"]), str(text).encode("utf-8")))
                    continue
            after = checked(seq + 1)
            made = self._state_loss(
                stream,
                seq,
                str(outbox_id),
                prev_hash=chain_hash(seq - 1),
                lost_hash=lost_chain_hash(after[0] if after else None, row_hash),
                problem=problem,
                damaged=text if isinstance(text, str) else "",
            )
            if made is None:
                held.append((seq, problem))
                if stream == "ratings":
                    self.damage[seq] = DamagedRecord(seq, str(outbox_id), problem)
                continue
            stated[seq] = made
            new.append(seq)
            items.append(Outgoing(seq, str(outbox_id), made[1].encode("utf-8")))
        return OutboxPage(items, last, len(rows) >= limit, tuple(new), tuple(held))

    def _state_loss(
        self,
        stream: str,
        seq: int,
        rid: str,
        *,
        prev_hash: str,
        lost_hash: str,
        problem: str,
        damaged: str,
        keep: bool = True,
    ) -> tuple[str, str] | None:
        """Make, sign and durably keep the loss statement of ``stream`` ``seq`` (once: a
        statement already kept is returned as kept); ``(lost_hash, text)``, or ``None`` when no
        device key can sign it (it is made once the key is there).  Logged as a warning.
        ``keep=False``: made and returned only (the kept one is damaged)."""
        signer = self._signer()
        if signer is None:
            if (stream, seq) not in self._held_logged:
                self._held_logged.add((stream, seq))
                log.error(
                    "rating store %s: %s seq %d is damaged (%s); not published, left in place; "
                    "its loss statement waits for the device key",
                    self.path, stream, seq, problem,
                )  # fmt: skip
            return None
        statement = make_statement(
            id=rid,
            seq=seq,
            device_id=self.device_id,
            prev_hash=prev_hash,
            lost_hash=lost_hash,
            problem=problem,
            stated_at=local_now(),
            clock_synced=self.clock_synced,
            damaged=damaged,
            signer=signer,
            epoch=self.epoch,
        )
        text = canonical_json(statement).decode()
        if not keep:
            return lost_hash, text
        with self._immediate():
            self.conn.execute(
                "INSERT OR IGNORE INTO losses (stream, seq, id, lost_hash, problem, stated_at,"
                " record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [stream, seq, rid, lost_hash, problem, statement["stated_at"], text],
            )
            kept = self.conn.execute(
                "SELECT lost_hash, record FROM losses WHERE stream = ? AND seq = ?",
                [stream, seq],
            ).fetchone()
        log.warning(
            "rating store %s: %s seq %d is damaged (%s): never published, left in place; a "
            "signed loss statement (lost hash %s) goes to the city in its place",
            self.path, stream, seq, problem, kept[0],
        )  # fmt: skip
        if self._statement_problem(seq, kept[1]) is not None:  # a row there already, unsigned
            return lost_hash, text  # this one goes, not kept (the table is append-only)
        return str(kept[0]), str(kept[1])

    def _statement_problem(self, seq: int, text: Any) -> str | None:
        """What is wrong with the kept statement ``text`` of ``seq`` (``None``: intact): its
        shape and hash, and its signature with the device's current key (a flip inside the
        signature leaves it well-formed; the city would refuse it for ever)."""
        try:
            statement = json.loads(text)
        except (TypeError, ValueError) as exc:
            return f"unreadable JSON ({exc})"
        if not isinstance(statement, dict):
            return "not an object"
        problem = statement_problem(statement)
        if problem is None and statement.get("seq") != seq:
            problem = "wrong seq"
        signer = self._signer()
        public = getattr(signer, "public", None)
        if problem is None and public is not None and statement.get("key_id") != signer.key_id:
            problem = "signed by another key than the device's"  # made here, by this key
        if problem is None:
            problem = self_problem(
                statement,
                key_id=getattr(signer, "key_id", None) if public is not None else None,
                check=public.check if public is not None else None,
            )
        return problem

    def _intact_statement(self, seq: int, text: Any) -> dict[str, Any] | None:
        """The kept statement of ``seq`` decoded when it is intact, else ``None``."""
        if self._statement_problem(seq, text) is not None:
            return None
        decoded: dict[str, Any] = json.loads(text)
        return decoded

    def _kept_statement(self, stream: str, seq: int, text: str) -> str | None:
        """The kept statement's text when it is still intact, else ``None`` (logged once)."""
        problem = self._statement_problem(seq, text)
        if problem is None:
            return text
        if (stream, -seq) not in self._held_logged:
            self._held_logged.add((stream, -seq))
            log.error(
                "rating store %s: the loss statement of %s seq %d is damaged too (%s); a new "
                "one is sent in its place", self.path, stream, seq, problem,
            )  # fmt: skip
        return None

    def losses(self) -> dict[str, list[int]]:
        """The seqs of the records lost on this store (a loss statement made), per stream."""
        found: dict[str, list[int]] = {"ratings": [], "events": []}
        for stream, seq in self.conn.execute(
            "SELECT stream, seq FROM losses ORDER BY stream, seq"
        ).fetchall():
            found.setdefault(str(stream), []).append(int(seq))
        return found

    def missing_page(self, missing: Iterable[Mapping[str, Any]]) -> OutboxPage:
        """The records the city names missing in an ack (``{"stream", "epoch", "seq"}``: it
        parks later records of that chain), read from their tables even when no outbox row
        names them (a row lost on the card): each checked as the outbox pages are
        (:meth:`_checked_page`), so an intact record goes as stored, a damaged one as its loss
        statement, and a seq the table does not hold at all as a loss statement with problem
        :data:`MISSING_PROBLEM` (when a later record says what it was).  A seq of another
        epoch goes as the carried record when this store holds it, else is left (logged)."""
        epoch = self.epoch
        wanted: dict[str, set[int]] = {"ratings": set(), "events": set()}
        items: list[Outgoing] = []
        for ask in missing:
            stream, seq = ask.get("stream"), ask.get("seq")
            if stream not in wanted or not isinstance(seq, int) or isinstance(seq, bool):
                continue
            if ask.get("epoch", "") == epoch:
                wanted[str(stream)].add(seq)
                continue
            found = self.conn.execute(
                "SELECT id, record FROM carried WHERE stream = ? AND epoch = ? AND seq = ?",
                [stream, str(ask.get("epoch")), seq],
            ).fetchone()
            if found is None:
                log.info(
                    "rating store %s: the city asks for %s seq %d of epoch %r, which this store"
                    " does not hold", self.path, stream, seq, ask.get("epoch"),
                )  # fmt: skip
                continue
            items.append(Outgoing(seq, str(found[0]), str(found[1]).encode("utf-8"), stream))
        stated: list[int] = []
        for stream, seqs in wanted.items():
            table = "ratings" if stream == "ratings" else "events"
            top = self.conn.execute(f"SELECT max(seq) FROM {table}").fetchone()[0] or 0
            rows: list[tuple[Any, ...]] = []
            for seq in sorted(q for q in seqs if 0 < q <= top):
                found = self.conn.execute(
                    f"SELECT id, record, hash FROM {table} WHERE seq = ?", [seq]
                ).fetchone()
                if found is not None:
                    rows.append((seq, found[0], found[0], found[1], found[2]))
                    continue
                kept = self.conn.execute(
                    "SELECT id FROM losses WHERE stream = ? AND seq = ?", [stream, seq]
                ).fetchone()
                if kept is None and not self._next_names(stream, seq):
                    log.warning(
                        "rating store %s: the city asks for %s seq %d, which this store lacks,"
                        " and the record after it is damaged too: nothing says what it was, no"
                        " statement can be made", self.path, stream, seq,
                    )  # fmt: skip
                    continue
                rows.append((seq, kept[0] if kept else new_record_id(), None, None, None))
            for seq, *_ in rows:
                page = self._checked_page(stream, [r for r in rows if r[0] == seq], seq - 1, 1)
                items += [replace(i, stream=stream) for i in page.items]
                stated += page.stated
        return OutboxPage(items, 0, False, tuple(stated))

    def _next_names(self, stream: str, seq: int) -> bool:
        """The record after ``seq`` is intact, so its signed ``prev_hash`` says what ``seq``
        was (the ``lost_hash`` of a statement for a seq the table lacks)."""
        table = "ratings" if stream == "ratings" else "events"
        found = self.conn.execute(
            f"SELECT id, record FROM {table} WHERE seq = ?", [seq + 1]
        ).fetchone()
        return (
            found is not None
            and self._own_check(stream, seq + 1, found[0], found[1])[0] is not None
        )

    def carried_page(self, limit: int, *, after: int = 0) -> OutboxPage:
        """The next ``limit`` records carried over from a kept-aside store (issue 15 B) that
        the city has not acked, after the carried row ``after`` (``last_seq`` is that row's
        number): each handed on verbatim, with its stream, its old epoch and its old seq."""
        rows = self.conn.execute(
            "SELECT o.n, c.id, c.stream, c.seq, c.record FROM carried_outbox o"
            " CROSS JOIN carried c ON c.id = o.id WHERE o.n > ? ORDER BY o.n LIMIT ?",
            [after, limit],
        ).fetchall()
        items = [
            Outgoing(seq, rid, text.encode("utf-8"), stream) for _, rid, stream, seq, text in rows
        ]
        return OutboxPage(items, rows[-1][0] if rows else after, len(rows) >= limit)

    def carried_size(self) -> int:
        """How many carried-over records wait for the city's ack."""
        return int(self.conn.execute("SELECT count(*) FROM carried_outbox").fetchone()[0])

    def event_outbox_size(self) -> int:
        """How many events wait for the city's ack."""
        return int(self.conn.execute("SELECT count(*) FROM event_outbox").fetchone()[0])

    def outbox_summary(self) -> tuple[int, str | None]:
        """Ratings and events waiting for the city's ack, and the time (ISO, as stored) of the
        oldest of them (``None`` when nothing waits): the city's status message."""
        count = self.outbox_size() + self.event_outbox_size() + self.carried_size()
        times = [
            row[0]
            for row in (
                self.conn.execute(
                    "SELECT r.rated_at FROM outbox o CROSS JOIN ratings r ON r.seq = o.seq"
                    " ORDER BY o.seq LIMIT 1"
                ).fetchone(),
                self.conn.execute(
                    "SELECT e.at FROM event_outbox o CROSS JOIN events e ON e.seq = o.seq"
                    " ORDER BY o.seq LIMIT 1"
                ).fetchone(),
            )
            if row is not None and isinstance(row[0], str)
        ]
        oldest = min(times, key=_instant, default=None)
        return count, oldest

    def unclosed_presentations(self) -> list[dict[str, Any]]:
        """Presentations without an outcome (e.g. the power went off), oldest first, each with
        ``rating_ids``: the ratings already stored for it (items of a theme rated one by one).

        The app closes them at start: ``rated`` when a rating is stored, else ``not_rated``.
        """
        rows = self.conn.execute(
            "SELECT id, seq, serials, stage, assess_number, clerk_id, matter_codes, started_at,"
            " clock_synced FROM presentations WHERE outcome IS NULL ORDER BY seq"
        ).fetchall()
        result = []
        for r in rows:
            rated = self.conn.execute(
                "SELECT id FROM ratings WHERE presentation_id = ? ORDER BY seq", [r[0]]
            ).fetchall()
            result.append(
                {
                    "id": r[0],
                    "seq": r[1],
                    "serials": _json_list(r[2]),
                    "stage": r[3],
                    "assess_number": r[4],
                    "clerk_id": r[5],
                    "matter_codes": _json_list(r[6]),
                    "started_at": r[7],
                    "clock_synced": bool(r[8]),
                    "rating_ids": [x[0] for x in rated],
                }
            )
        return result

    def presentation_row(self, id: str) -> dict[str, Any] | None:
        """One presentation as stored (for supervision tools and tests), or ``None``."""
        cur = self.conn.execute("SELECT * FROM presentations WHERE id = ?", [id])
        row = cur.fetchone()
        if row is None:
            return None
        names = [d[0] for d in cur.description]
        result = dict(zip(names, row, strict=True))
        for key in ("serials", "matter_codes", "rating_ids", "follows", "represents"):
            if isinstance(result.get(key), str):
                result[key] = _json_list(result[key])
        return result

    def probe(self) -> None:
        """One small durable write, to learn whether the disk takes writes again after a
        fault; raises :class:`StoreError` while it does not."""
        try:
            with self._immediate():
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('last_probe', datetime('now'))"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
                )
        except sqlite3.Error as exc:
            raise StoreError(f"the rating store still refuses writes: {exc}") from exc

    # -- small state kept in meta ---------------------------------------------------------

    def read_meta(self, key: str) -> str | None:
        """The value kept under ``key`` in ``meta`` (see :meth:`write_meta`), or ``None``."""
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {key!r} from the rating store: {exc}") from exc
        return None if row is None or row[0] is None else str(row[0])

    def write_meta(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` in ``meta``: one small durable write (its own
        transaction, fsynced like every commit), e.g. the window's clerk and pause state.
        The rating tables are untouched.  :class:`StoreError` when the disk refuses."""
        try:
            with self._immediate():
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [key, value],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write {key!r} to the rating store: {exc}") from exc

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with _FILES_LOCK:
            self.conn.close()
            _release(self._held)
            self._held = None
        if self._lock is not None:  # after the connection: no write of ours outlives the lock
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _case_keys(content: Mapping[str, Any]) -> tuple[list[tuple[str, str]], str, int]:
    """The distinct ``(serial, slot)`` pairs, stage and assess number a rating covers."""
    for key in ("level", "stage", "assess_number", "cases"):
        if key not in content:
            raise ValueError(f"a rating needs {key!r}")
    stage, assess_number, cases = content["stage"], content["assess_number"], content["cases"]
    visit = content.get("visit", 1)
    if not isinstance(stage, str) or not stage:
        raise ValueError("a rating's 'stage' must be a non-empty string")
    if not isinstance(assess_number, int) or isinstance(assess_number, bool):
        raise ValueError("a rating's 'assess_number' must be an integer")
    if not isinstance(visit, int) or isinstance(visit, bool):
        raise ValueError("a rating's 'visit' must be an integer")
    if not isinstance(cases, list | tuple) or not cases:
        raise ValueError("a rating's 'cases' must be a non-empty list")
    slots = []
    for case in cases:
        serial = case.get("serial") if isinstance(case, Mapping) else None
        if not isinstance(serial, str) or not serial:
            raise ValueError("every case of a rating needs a non-empty 'serial'")
        slots.append((serial, rating_slot(str(case.get("kind", "")), stage, visit)))
    return list(dict.fromkeys(slots)), stage, assess_number


@dataclass(frozen=True)
class PresentationEnd:
    """How a presentation ended; see :meth:`Store.close_presentation`."""

    id: str
    outcome: str
    ended_at: str
    rating_ids: tuple[str, ...] = ()
    cause: str = ""
    touched: bool | None = None
    clock_synced: bool = False
    """Whether ``ended_at`` came from a synchronised clock (the event's ``clock_synced``)."""


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _json_list(text: Any) -> list[Any]:
    """A JSON list column, or ``[]`` when it was damaged (reported, never fatal)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        log.error("a presentation row holds damaged JSON: %.80r", text)
        return []
    return value if isinstance(value, list) else []


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_object(text: Any) -> dict[str, Any]:
    """A JSON object column, ``{}`` when absent or unusable."""
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        log.error("a presentation row holds damaged JSON facts: %.80r", text)
        return {}
    return value if isinstance(value, dict) else {}


def _clerk_of(clerk_id: Any) -> dict[str, Any] | None:
    """The clerk of a row that kept only the id (before migration m004)."""
    return {"id": clerk_id, "name": None} if isinstance(clerk_id, str) and clerk_id else None


def local_now() -> str:
    """Now as the pad writes its times: local time with offset, milliseconds."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _instant(text: str) -> float:
    """An ISO time as a POSIX timestamp (``inf`` when unreadable: never the oldest)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return float("inf")
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


#: Fields (and their JSON types) a stored event needs to be published.
EVENT_SHAPE: dict[str, type] = {
    "id": str,
    "seq": int,
    "device_id": str,
    "kind": str,
    "prev_hash": str,
    "hash": str,
}


def decode_event_record(seq: int, row_id: Any, text: Any) -> dict[str, Any] | DamagedRecord:
    """The sealed event stored as ``text`` in the row (``seq``, ``row_id``), or what is wrong
    (as :func:`decode_record` for ratings, with :data:`EVENT_SHAPE`)."""
    try:
        record = json.loads(text)
    except (TypeError, ValueError) as exc:
        return DamagedRecord(seq, row_id, f"record JSON is unreadable ({exc})")
    if not isinstance(record, dict):
        return DamagedRecord(seq, row_id, "record is not a JSON object")
    wrong = [
        k
        for k, kind in EVENT_SHAPE.items()
        if not isinstance(record.get(k), kind) or isinstance(record.get(k), bool)
    ]
    if wrong:
        return DamagedRecord(seq, row_id, "record fields missing or of the wrong type: "
                             + ", ".join(wrong))  # fmt: skip
    if record["seq"] != seq or record["id"] != row_id:
        return DamagedRecord(
            seq,
            row_id,
            f"record says seq={record['seq']} id={record['id']}, its row is seq={seq} id={row_id}",
        )
    return record


def _decode_event(seq: int, row_id: Any, text: Any) -> dict[str, Any] | None:
    """A stored event's record, or ``None`` (logged) when it is not a JSON object that
    names its own row."""
    try:
        record = json.loads(text)
    except (TypeError, ValueError):
        record = None
    if not isinstance(record, dict) or record.get("seq") != seq or record.get("id") != row_id:
        log.error("event seq=%s id=%s is damaged; skipped, left in place", seq, row_id)
        return None
    return record
