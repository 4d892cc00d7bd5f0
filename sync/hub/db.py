"""The receiver's database: SQLite (default) or PostgreSQL, the same tables on both.

``open_db("sqlite:///abs/path.db")`` or a plain path opens SQLite in WAL mode with
``synchronous=FULL`` (a record is acked only once it is durable, so the commit must be too);
``open_db("postgresql://user@host/db")`` opens PostgreSQL through psycopg 3.  The SQL is written
once with ``?`` placeholders; :class:`HubDB` turns them into ``%s`` for psycopg.

Tables (created when missing; ``hub_meta.schema_version`` says which layout a file has):

* ``hub_devices`` — each registered (device, key): the public key and ``unsigned_before``.
* ``hub_records`` — every stored record, exactly once by ``id``,
  ``UNIQUE(device_id, stream, epoch, seq)``: a pad that had to start a new store opens a new
  epoch (issue 15 B) whose seqs start at 1 again; records of a store made before epochs have
  epoch ``''``.
* ``hub_heads`` — the chain tip per (device, stream, epoch): the row every writer of that device
  locks.
* ``hub_parked`` — records that arrived ahead of their predecessor (normal: a new rating is sent
  before an old backlog); promoted when the gap closes.  Keyed by (device, stream, epoch, seq,
  hash): several candidates for one seq (a forgery and the genuine record) are all kept until
  the chain decides (schema version 3).
* ``hub_parking`` — per device, how many records and bytes it has parked (the cap is checked
  against this row, not by counting the parked rows).
* ``hub_status`` — the latest retained status of each device.
* ``hub_dead`` — what was refused, with the reason (a capped sample of the payload; at most
  ``DEAD_ROWS`` rows per device and cause, see :mod:`sync.hub.ingest`).
* ``hub_dead_counts`` — every refusal counted per (device, cause): count, first and last seen,
  the SHA-256 and a capped sample of the last payload (``evaluator hub dead``).
* ``hub_witness`` — signed ratings heads the counters were given (``evaluator hub witness``),
  per (device, epoch, seq, hash): compared with the stored records and the pads' statuses
  (:mod:`sync.hub.witness`).
* ``hub_conflicts`` — records kept in their chain but held out of every figure, list and
  export: what a device cannot truthfully say (a clerk of another window, a second first rating
  of a case rated elsewhere, a ``rated_at`` out of step with its chain), each with the other side
  of the conflict for a person to look at (``evaluator hub conflicts``).
* ``hub_slots``, ``hub_case_kinds``, ``hub_rated``, ``hub_chain_time``, ``hub_signins``,
  ``hub_signin_from``, ``hub_event_clock``, ``hub_roster`` — what :mod:`sync.hub.truth`
  checks against: the first rating that took each case slot (serial, slot), the kind its
  first counted rating gave each serial, each stored rating's clerk and time (UTC), each
  chain's high-water time, the clerks' sign-ins reported by the pads (and from when each
  counts for ``clerk_two_places``), the latest time each pad's events chain reached, and the
  city's roster (``evaluator hub roster``).
* ``hub_report_times`` — the time each countable record is reported under (a rating's
  ``rated_at``, a ``presentation_end`` event's ``ended_at``) as wall-clock and UTC text, indexed
  per stream: a period's figures and export read only that period's records
  (:mod:`sync.hub.figures`); loss statements and other events are not in it.
  ``hub_report_serials`` — the serials of every first rating, by serial: "was this case ever
  rated" without reading the history.  Both are written with each stored record and filled once
  on an older database (``hub_backfills`` says which one-time fills are done).
* ``hub_flags`` — findings for audit about a device (records lost on its SD card, a chain that
  started again, a chain head witnessed outside the pad that the stored chain contradicts): what
  the city must look at, never a reason to refuse what is intact.

A :class:`HubDB` is one connection: use it from one thread at a time (the receiver opens its own).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.rules.deviceid import device_id_problem
from evaluator.rules.errors import EvaluatorError
from evaluator.rules.records import GENESIS_HASH
from sync.keys import PUBLIC_PREFIX, DeviceKeyError, PublicKey

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
STREAMS = ("ratings", "events")


_DDL = """
CREATE TABLE IF NOT EXISTS hub_meta (schema_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hub_devices (
    device_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    unsigned_before INTEGER NOT NULL DEFAULT 1,
    registered_at TEXT NOT NULL,
    PRIMARY KEY (device_id, key_id)
);
CREATE TABLE IF NOT EXISTS hub_records (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('ratings', 'events')),
    epoch TEXT NOT NULL DEFAULT '',
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    record TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (device_id, stream, epoch, seq)
);
CREATE TABLE IF NOT EXISTS hub_heads (
    device_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    epoch TEXT NOT NULL DEFAULT '',
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    PRIMARY KEY (device_id, stream, epoch)
);
CREATE TABLE IF NOT EXISTS hub_parked (
    device_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    epoch TEXT NOT NULL DEFAULT '',
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, stream, epoch, seq, hash)
);
CREATE TABLE IF NOT EXISTS hub_parking (
    device_id TEXT PRIMARY KEY,
    records BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_status (
    device_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_dead (
    id {serial},
    device_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_dead_counts (
    device_id TEXT NOT NULL,
    cause TEXT NOT NULL,
    count BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    last_sha256 TEXT NOT NULL,
    sample TEXT NOT NULL,
    PRIMARY KEY (device_id, cause)
);
CREATE TABLE IF NOT EXISTS hub_flags (
    id {serial},
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    detail TEXT NOT NULL,
    flagged_at TEXT NOT NULL,
    UNIQUE (device_id, kind, key)
);
CREATE TABLE IF NOT EXISTS hub_conflicts (
    id {serial},
    record_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    other_device_id TEXT NOT NULL DEFAULT '',
    other_record_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL,
    flagged_at TEXT NOT NULL,
    UNIQUE (record_id, kind)
);
CREATE TABLE IF NOT EXISTS hub_slots (
    serial TEXT NOT NULL,
    slot TEXT NOT NULL,
    record_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (serial, slot)
);
CREATE TABLE IF NOT EXISTS hub_case_kinds (
    serial TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    device_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_rated (
    record_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    clerk_id TEXT NOT NULL,
    rated_at TEXT NOT NULL,
    high_water TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_chain_time (
    device_id TEXT NOT NULL,
    epoch TEXT NOT NULL,
    record_id TEXT NOT NULL,
    high_water TEXT NOT NULL,
    PRIMARY KEY (device_id, epoch)
);
CREATE INDEX IF NOT EXISTS hub_rated_time ON hub_rated (device_id, rated_at);
CREATE TABLE IF NOT EXISTS hub_roster (
    hall TEXT NOT NULL,
    device_id TEXT NOT NULL DEFAULT '',
    clerk_id TEXT NOT NULL,
    PRIMARY KEY (hall, device_id, clerk_id)
);
CREATE INDEX IF NOT EXISTS hub_roster_device ON hub_roster (device_id);
CREATE INDEX IF NOT EXISTS hub_roster_clerk ON hub_roster (clerk_id);
CREATE TABLE IF NOT EXISTS hub_signins (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    clerk_id TEXT NOT NULL,
    action TEXT NOT NULL,
    at TEXT NOT NULL,
    synced INTEGER NOT NULL,
    contested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS hub_signin_from (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    clerk_id TEXT NOT NULL,
    since TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hub_signin_from_clerk ON hub_signin_from (clerk_id, since);
CREATE TABLE IF NOT EXISTS hub_event_clock (
    device_id TEXT PRIMARY KEY,
    latest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hub_signins_device ON hub_signins (device_id, at);
CREATE INDEX IF NOT EXISTS hub_signins_clerk ON hub_signins (clerk_id, at);
CREATE TABLE IF NOT EXISTS hub_witness (
    device_id TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    head TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, epoch, seq, hash)
);
CREATE TABLE IF NOT EXISTS hub_backfills (name TEXT PRIMARY KEY, done_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hub_backfill_progress (name TEXT PRIMARY KEY, after TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hub_report_times (
    record_id TEXT PRIMARY KEY,
    stream TEXT NOT NULL,
    local_at TEXT,
    utc_at TEXT
);
CREATE INDEX IF NOT EXISTS hub_report_times_local ON hub_report_times (stream, local_at);
CREATE INDEX IF NOT EXISTS hub_report_times_utc ON hub_report_times (stream, utc_at);
CREATE TABLE IF NOT EXISTS hub_report_serials (
    serial TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (serial, record_id)
);
"""

#: The one-time fill of the report tables on a database made before them (``hub_backfills``).
REPORT_BACKFILL = "report_times_v1"
#: Records one transaction of that fill indexes (by id, resumable from
#: ``hub_backfill_progress``): short, so a receiver's batches wait at most a moment for it, and
#: a receiver killed midway (systemd's start timeout, a deploy) loses at most one chunk.
FILL_CHUNK = 2000
#: Rows a report or a backfill holds in memory at a time (PostgreSQL: one server-side FETCH).
STREAM_CHUNK = 2000

#: Schema version 1 → 2 (issue 15 B): the three chain tables rebuilt with ``epoch`` in their
#: keys, every row of version 1 in epoch ``''`` (the same statements on SQLite and PostgreSQL:
#: neither can change a table's key in place on both).  ``hub_parked`` is rebuilt in its
#: version-2 layout (:data:`_PARKED_V2`); version 3 rebuilds it again.
_MIGRATE_1_TO_2 = [
    ("hub_records", "id, device_id, stream, '', seq, hash, prev_hash, record, received_at",
     "id, device_id, stream, epoch, seq, hash, prev_hash, record, received_at"),
    ("hub_heads", "device_id, stream, '', last_seq, last_hash",
     "device_id, stream, epoch, last_seq, last_hash"),
    ("hub_parked", "device_id, stream, '', seq, id, record, received_at",
     "device_id, stream, epoch, seq, id, record, received_at"),
]  # fmt: skip

#: ``hub_parked`` as schema version 2 had it: one record per seq.
_PARKED_V2 = """CREATE TABLE IF NOT EXISTS hub_parked (
    device_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    epoch TEXT NOT NULL DEFAULT '',
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, stream, epoch, seq)
)"""

#: The steps from each schema version to the next, in order: ``(from_version, step)``.
MIGRATIONS = [
    (1, lambda db: db._migrate_1_to_2()),
    (2, lambda db: db._migrate_2_to_3()),
]
_cursor_ids = itertools.count(1)

_SERIAL = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGSERIAL PRIMARY KEY"}


class HubError(EvaluatorError):
    """The receiver's database cannot be opened or used; the message says what to do."""


def now_text() -> str:
    """The receiver's timestamps: UTC, ISO 8601 with milliseconds (they sort as text)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def open_db(url: str | Path) -> HubDB:
    """The database at ``url``: ``sqlite:///abs/path``, a plain path (SQLite), or
    ``postgresql://…`` / ``postgres://…`` (PostgreSQL); tables are created when missing."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return HubDB(text, "postgresql")
    if text.startswith("sqlite://"):
        text = text[len("sqlite://") :]
        if not text.startswith("/"):
            raise HubError(f"{url}: a SQLite URL is sqlite:///absolute/path.db")
    elif "://" in text:
        raise HubError(f"{url}: expected sqlite:///path, postgresql://… or a file path")
    return HubDB(text, "sqlite")


class HubDB:
    """One connection to the receiver's database (see the module docstring)."""

    def __init__(self, target: str, kind: str) -> None:
        self.kind = kind
        self.target = target
        self._filled = False
        self._lock = threading.RLock()
        if kind == "sqlite":
            path = Path(target)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout = 30000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            except (OSError, sqlite3.Error) as exc:
                raise HubError(f"cannot open the hub database {path}: {exc}") from exc
            self.conn: Any = conn
        else:
            try:
                import psycopg

                self.conn = psycopg.connect(target, autocommit=True)
            except Exception as exc:  # psycopg.Error, or psycopg missing
                raise HubError(f"cannot connect to {_redact(target)}: {exc}") from exc
        self._create()
        self._mark_filled_when_empty()

    # -- SQL plumbing ---------------------------------------------------------------------

    def sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders as this database's driver wants them."""
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the cursor."""
        if self.kind == "sqlite":
            return self.conn.execute(text, params)
        return self.conn.execute(self.sql(text), params)

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(text, params).fetchall())

    @contextlib.contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """One write transaction: SQLite ``BEGIN IMMEDIATE`` (the writer lock, so two
        receivers on one file take turns), PostgreSQL a normal transaction (row locks are
        taken with ``FOR UPDATE`` inside it).  ``durable=False`` for what no ack depends on
        (dead-letter counts): its commit does not wait for the disk (SQLite ``synchronous =
        NORMAL`` in WAL, PostgreSQL ``synchronous_commit = off``), so a flood of refusals does
        not add a disk flush to every batch of the honest pads."""
        with self._lock:
            if self.kind == "sqlite":
                if not durable:
                    self.conn.execute("PRAGMA synchronous = NORMAL")
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield
                    except BaseException:
                        self.conn.execute("ROLLBACK")
                        raise
                    self.conn.execute("COMMIT")
                finally:
                    if not durable:
                        self.conn.execute("PRAGMA synchronous = FULL")
            else:
                with self.conn.transaction():
                    if not durable:
                        self.conn.execute("SET LOCAL synchronous_commit = off")
                    yield

    def lock_head(self, device_id: str, stream: str, epoch: str = "") -> tuple[int, str]:
        """Inside :meth:`transaction`: the chain tip of (device, stream, epoch), locked until
        commit (the row is created at seq 0 / GENESIS first when missing)."""
        return self.lock_heads([(device_id, stream, epoch)])[(device_id, stream, epoch)]

    def lock_heads(
        self, chains: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[int, str]]:
        """Inside :meth:`transaction`: the tips of every (device, stream, epoch) of ``chains``
        in two statements, locked until commit (missing rows are created at seq 0 / GENESIS
        first).

        The rows are created and locked in one sorted order, so two receivers whose batches
        share devices take the locks in the same order and never deadlock; SQLite's
        ``BEGIN IMMEDIATE`` already holds the whole file."""
        ordered = sorted(set(chains))
        if not ordered:
            return {}
        self.executemany(
            "INSERT INTO hub_heads (device_id, stream, epoch, last_seq, last_hash)"
            " VALUES (?, ?, ?, 0, ?) ON CONFLICT DO NOTHING",
            [(d, s, e, GENESIS_HASH) for d, s, e in ordered],
        )
        devices = sorted({d for d, _, _ in ordered})
        streams = sorted({s for _, s, _ in ordered})
        lock = "" if self.kind == "sqlite" else " FOR UPDATE"
        rows = self.execute(
            "SELECT device_id, stream, epoch, last_seq, last_hash FROM hub_heads WHERE"
            f" {self.any_of('device_id', devices)} AND {self.any_of('stream', streams)}"
            f" ORDER BY device_id, stream, epoch{lock}",
            (*self.any_params(devices), *self.any_params(streams)),
        ).fetchall()
        wanted = set(ordered)
        return {
            (str(d), str(s), str(e)): (int(q), str(h))
            for d, s, e, q, h in rows
            if (d, s, e) in wanted
        }

    def heads(self, device_id: str) -> dict[tuple[str, str], tuple[int, str]]:
        """Every chain tip of ``device_id`` that holds a record: (stream, epoch) → (seq, hash)."""
        return {
            (str(s), str(e)): (int(q), str(h))
            for s, e, q, h in self.rows(
                "SELECT stream, epoch, last_seq, last_hash FROM hub_heads"
                " WHERE device_id = ? AND last_seq > 0",
                (device_id,),
            )
        }

    def any_of(self, column: str, values: Sequence[Any]) -> str:
        """A condition ``column`` is one of ``values`` (bound by :meth:`any_params`): one array
        parameter on PostgreSQL (one statement text, prepared once), ``IN (?, …)`` on SQLite."""
        if self.kind == "sqlite":
            return f"{column} IN ({', '.join('?' * len(values))})"
        return f"{column} = ANY(?)"

    def any_params(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """The parameters of :meth:`any_of` for ``values``."""
        return tuple(values) if self.kind == "sqlite" else (list(values),)

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows (psycopg sends them in one pipeline: one round trip)."""
        if not rows:
            return
        if self.kind == "sqlite":
            self.conn.executemany(text, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self.sql(text), rows)

    def _create(self) -> None:
        ddl = _DDL.replace("{serial}", _SERIAL[self.kind])
        try:
            with self.transaction():
                for statement in ddl.split(";"):
                    if statement.strip():
                        self.execute(statement)
                lock = "" if self.kind == "sqlite" else " FOR UPDATE"
                found = self.rows("SELECT schema_version FROM hub_meta" + lock)
                if not found:
                    self.execute(
                        "INSERT INTO hub_meta (schema_version) VALUES (?)", (SCHEMA_VERSION,)
                    )
                else:
                    self._migrate(int(found[0][0]))
        except Exception as exc:
            if self.kind == "postgresql" and _is_unique_violation(exc):
                # Two receivers creating the tables at the same instant: the other one won.
                return
            raise HubError(f"cannot create the hub tables in {self.where}: {exc}") from exc
        version = self.rows("SELECT schema_version FROM hub_meta")[0][0]
        if int(version) != SCHEMA_VERSION:
            raise HubError(
                f"{self.where} has hub schema version {version}; this receiver knows"
                f" {SCHEMA_VERSION}"
            )

    def _migrate(self, version: int) -> None:
        """Inside :meth:`_create`'s transaction (hub_meta's row locked on PostgreSQL, the file
        on SQLite: one receiver migrates, the others wait and find the new version): every
        step of :data:`MIGRATIONS` from ``version`` on, in order (a later version appends its
        own step), then the version written once."""
        if version >= SCHEMA_VERSION:
            return
        for start, step in MIGRATIONS:
            if start >= version:
                step(self)
        self.execute("UPDATE hub_meta SET schema_version = ?", (SCHEMA_VERSION,))

    def _rebuild(self, table: str, old: str, create: str) -> None:
        """Rename ``table`` to ``{table}_{old}`` (its key's index renamed too on PostgreSQL,
        which keeps the name) and create it anew with ``create``; the caller copies the rows
        and drops the old table."""
        self.execute(f"ALTER TABLE {table} RENAME TO {table}_{old}")
        if self.kind == "postgresql":
            self.execute(f"ALTER TABLE {table}_{old} RENAME CONSTRAINT {table}_pkey"
                         f" TO {table}_{old}_pkey")  # fmt: skip
            if table == "hub_records" and old == "v1":
                self.execute(
                    "ALTER TABLE hub_records_v1 RENAME CONSTRAINT"
                    " hub_records_device_id_stream_seq_key TO hub_records_v1_key"
                )
        self.execute(create)

    def _migrate_1_to_2(self) -> None:
        """Each chain table rebuilt with ``epoch`` in its key, its rows copied into epoch
        ``''`` (``hub_parked`` in its version-2 layout)."""
        ddl = _DDL.replace("{serial}", _SERIAL[self.kind])
        for table, old_columns, new_columns in _MIGRATE_1_TO_2:
            start = ddl.index(f"CREATE TABLE IF NOT EXISTS {table} (")
            create = ddl[start : ddl.index(";", start)] if table != "hub_parked" else _PARKED_V2
            self._rebuild(table, "v1", create)
            self.execute(
                f"INSERT INTO {table} ({new_columns}) SELECT {old_columns} FROM {table}_v1"
            )
            self.execute(f"DROP TABLE {table}_v1")

    def _migrate_2_to_3(self) -> None:
        """``hub_parked`` keyed by the record's hash too (competing candidates for one seq are
        all kept, issue 16), its rows copied with the hash read from each record, and
        ``hub_parking`` counted from them (a version-2 receiver parked without a cap: a device
        over the cap parks nothing more until its chain drains)."""
        ddl = _DDL.replace("{serial}", _SERIAL[self.kind])
        start = ddl.index("CREATE TABLE IF NOT EXISTS hub_parked (")
        self._rebuild("hub_parked", "v2", ddl[start : ddl.index(";", start)])
        self.execute("DELETE FROM hub_parking")
        use: dict[str, list[int]] = {}
        cursor = self.execute(
            "SELECT device_id, stream, epoch, seq, id, record, received_at FROM hub_parked_v2"
        )
        while part := cursor.fetchmany(1000):
            rows = []
            for device_id, stream, epoch, seq, rid, text, at in part:
                try:
                    found = json.loads(text).get("hash")
                except (ValueError, AttributeError):
                    found = None
                digest = str(found) if found else hashlib.sha256(str(text).encode()).hexdigest()
                rows.append((device_id, stream, epoch, seq, digest, rid, text, at))
                count = use.setdefault(str(device_id), [0, 0])
                count[0] += 1
                count[1] += len(str(text).encode())
            self._insert_parked(rows)
        self.executemany(
            "INSERT INTO hub_parking (device_id, records, bytes) VALUES (?, ?, ?)",
            [(d, n, b) for d, (n, b) in sorted(use.items())],
        )
        self.execute("DROP TABLE hub_parked_v2")

    def _insert_parked(self, rows: Sequence[Sequence[Any]]) -> None:
        """Park ``rows`` (device, stream, epoch, seq, hash, id, record, received_at); a
        candidate parked already (the same hash at the same seq) is kept once."""
        self.executemany(
            "INSERT INTO hub_parked (device_id, stream, epoch, seq, hash, id, record,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            rows,
        )

    @property
    def broken(self) -> bool:
        """The connection is lost (PostgreSQL restarted, failed over, ended it): every later
        statement fails, so the caller must open a new one (SQLite: never)."""
        return self.kind == "postgresql" and bool(self.conn.broken or self.conn.closed)

    @property
    def where(self) -> str:
        """The database, for messages (a PostgreSQL password is never shown)."""
        return self.target if self.kind == "sqlite" else _redact(self.target)

    # -- the public API -------------------------------------------------------------------

    def register(self, device_id: str, public_key_text: str, unsigned_before: int = 1) -> str:
        """Register ``public_key_text`` (``ed25519:<base64>`` as ``evaluator keys show``
        prints, a PEM key, or a file holding one) for ``device_id``; returns its key id.

        Records of the device are accepted only when signed by a key registered for it, or
        unsigned with ``seq < unsigned_before`` (a pad upgraded to keys: what it stored before).
        Registering the same key again updates ``unsigned_before``; keep every key a device
        was ever registered with (a replaced key still signed the older records).
        """
        if (why := _device_id_problem(device_id)) is not None:
            raise HubError(why)
        if unsigned_before < 1:
            raise HubError("unsigned_before must be 1 or more")
        try:
            key = PublicKey.parse(public_key_text)
        except DeviceKeyError as exc:
            raise HubError(str(exc)) from exc
        with self.transaction():
            self.execute(
                "INSERT INTO hub_devices (device_id, key_id, public_key, unsigned_before,"
                " registered_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id, key_id)"
                " DO UPDATE SET unsigned_before = excluded.unsigned_before,"
                " public_key = excluded.public_key",
                (device_id, key.key_id, key.text, unsigned_before, now_text()),
            )
        return key.key_id

    def register_many(
        self,
        rows: Sequence[tuple[str, str, str]],
        *,
        unsigned_before: int = 1,
        force: bool = False,
    ) -> Registered:
        """Register many pads at once (``evaluator hub register --csv devices.csv``): ``rows``
        are ``(where, device_id, public key text)``, ``where`` naming the row in messages.

        One read of what is registered and one transaction for every new row (1,000 pads:
        docs/hub.md §2 for the time).  A pad registered with this key is *unchanged* (its
        ``unsigned_before`` kept); a pad registered with *another* key is refused, named,
        unless ``force`` (then the new key is added and the old one kept: it signed the older
        records); a row that is no device id and key, or a pad twice with two keys, is refused,
        and so is a key another pad has (on another row, or registered; even with ``force``:
        one key is one pad).  Every good row is registered even when others are refused."""
        if unsigned_before < 1:
            raise HubError("unsigned_before must be 1 or more")
        result = Registered()
        wanted: dict[str, tuple[str, PublicKey]] = {}
        twice: set[str] = set()  # on two rows with two keys: neither is taken
        for where, device_id, text in rows:
            why = _device_id_problem(device_id)
            if why is None and device_id in twice:
                why = f"{device_id} is on another row too, with another key"
            key = None
            if why is None:
                if not text.strip().startswith((PUBLIC_PREFIX, "-----BEGIN")):
                    why = f"public key {text[:40]!r}: expected 'ed25519:<base64>'"
                else:
                    try:
                        key = PublicKey.parse(text)
                    except DeviceKeyError as exc:
                        why = str(exc)
            if why is None and key is not None:
                seen = wanted.get(device_id)
                if seen is None:
                    wanted[device_id] = (where, key)
                    continue
                if seen[1].key_id == key.key_id:
                    continue  # the same pad and key twice: once is enough
                why = f"{device_id} is on {seen[0]} too, with another key"
                del wanted[device_id]
                twice.add(device_id)
                result.refused.append((seen[0], device_id, f"{device_id} is on {where} too, "
                                       "with another key"))  # fmt: skip
            result.refused.append((where, device_id, why or "no key"))
        by_key: dict[str, list[str]] = {}  # one key on two pads' rows: neither is taken
        for device_id, (_where, key) in wanted.items():
            by_key.setdefault(key.key_id, []).append(device_id)
        for key_id, devices in by_key.items():
            rows_of = {d: wanted[d][0] for d in devices}
            for device_id in devices if len(devices) > 1 else ():
                del wanted[device_id]
                others = ", ".join(f"{d} ({w})" for d, w in rows_of.items() if d != device_id)
                result.refused.append((rows_of[device_id], device_id,
                                       _shared_key(key_id, others)))  # fmt: skip
        with self.transaction():
            known: dict[str, set[str]] = {}
            owners: dict[str, set[str]] = {}
            for device_id, key_id in self.rows("SELECT device_id, key_id FROM hub_devices"):
                known.setdefault(str(device_id), set()).add(str(key_id))
                owners.setdefault(str(key_id), set()).add(str(device_id))
            now = now_text()
            insert = []
            for device_id, (where, key) in wanted.items():
                keys = known.get(device_id)
                if others := sorted(owners.get(key.key_id, set()) - {device_id}):
                    result.refused.append((where, device_id, _shared_key(
                        key.key_id, f"{', '.join(others)} (registered)")))  # fmt: skip
                    continue  # even with --force: whoever holds the key could sign as both
                if keys is None:
                    result.new.append(device_id)
                elif key.key_id in keys:
                    result.unchanged.append(device_id)
                    continue
                elif force:
                    result.changed.append(device_id)
                else:
                    result.refused.append((where, device_id, (
                        f"{device_id} is registered with key {', '.join(sorted(keys))}, not "
                        f"{key.key_id}: a changed key is refused unless --force (a replaced "
                        "pad or key; the old key is kept for its older records)")))  # fmt: skip
                    continue
                insert.append((device_id, key.key_id, key.text, unsigned_before, now))
            self.executemany(
                "INSERT INTO hub_devices (device_id, key_id, public_key, unsigned_before,"
                " registered_at) VALUES (?, ?, ?, ?, ?)",
                insert,
            )
        return result

    def keys(self, device_id: str) -> tuple[dict[str, PublicKey], int]:
        """The registered keys of ``device_id`` by key id, and its ``unsigned_before`` (the
        highest registered); ``({}, 0)`` for an unregistered device."""
        found: dict[str, PublicKey] = {}
        before = 0
        for key_id, text, unsigned_before in self.rows(
            "SELECT key_id, public_key, unsigned_before FROM hub_devices WHERE device_id = ?",
            (device_id,),
        ):
            found[str(key_id)] = PublicKey.parse(str(text))
            before = max(before, int(unsigned_before))
        return found, before

    def devices(self) -> list[str]:
        """Every registered device id, sorted."""
        return [str(r[0]) for r in self.rows("SELECT DISTINCT device_id FROM hub_devices")]

    def records(
        self, device_id: str, stream: str = "ratings", epoch: str | None = None
    ) -> list[dict[str, Any]]:
        """Every stored record of ``device_id`` on ``stream`` (of one ``epoch``, or of every
        epoch), by epoch then ``seq`` (epoch ids are time-ordered; ``''``, before epochs, first)."""
        where, params = ("", ()) if epoch is None else (" AND epoch = ?", (epoch,))
        return [
            json.loads(r[0])
            for r in self.rows(
                "SELECT record FROM hub_records WHERE device_id = ? AND stream = ?"
                f"{where} ORDER BY epoch, seq",
                (device_id, stream, *params),
            )
        ]

    def all_records(self, stream: str = "ratings") -> Iterator[dict[str, Any]]:
        """Every stored record on ``stream``, by device, epoch, then ``seq``; loss statements
        (what a pad lost on its SD card, issue 15) are not records to count, list or export:
        skipped (they are in ``hub_records`` for the chain, and in :meth:`flags`); nor are
        records held in a conflict (:meth:`conflicts`): the figures count only what a device
        could truthfully say."""
        for (text,) in self.rows(
            "SELECT record FROM hub_records r WHERE stream = ? AND NOT EXISTS"
            " (SELECT 1 FROM hub_conflicts c WHERE c.record_id = r.id)"
            " ORDER BY device_id, epoch, seq",
            (stream,),
        ):
            record = json.loads(text)
            if record.get("kind") != "loss":
                yield record

    def stream_rows(self, text: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of one query, :data:`STREAM_CHUNK` at a time, never all at once: a
        server-side cursor on PostgreSQL (inside a transaction, or the caller's), ``fetchmany``
        on SQLite.  Consume it to the end before the next statement that must commit."""
        if self.kind == "sqlite":
            cursor = self.conn.execute(text, params)
            while chunk := cursor.fetchmany(STREAM_CHUNK):
                yield from chunk
            return
        name = f"hub_stream_{next(_cursor_ids)}"
        with self._lock, self.conn.transaction(), self.conn.cursor(name=name) as cursor:
            # every row is read: plan for all of them, not a fast first row (a cursor's default
            # 0.1 can pick a walk of the whole table in the ORDER BY's order)
            self.conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            cursor.itersize = STREAM_CHUNK
            cursor.execute(self.sql(text), params)
            yield from cursor

    def reported(
        self,
        stream: str,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The records :meth:`all_records` gives, in its order, whose own time (a rating's
        ``rated_at``, a ``presentation_end`` event's ``ended_at``; other events are not given)
        is in ``[since, until)`` as :func:`sync.hub.figures.in_period` reads it, found through
        the index on ``hub_report_times`` and streamed: a day of a long history costs a day."""
        self.ensure_reports()
        where, params = ["t.stream = ?"], [stream]
        for bound, op in ((since, ">="), (until, "<")):
            if bound is not None:
                column, text = bound_text(bound)
                where.append(f"t.{column} {op} ?")
                params.append(text)
        query = (
            # CROSS JOIN: SQLite keeps the period's index as the outer loop whatever its
            # statistics say (PostgreSQL reads it as an inner join)
            "SELECT r.record FROM hub_report_times t CROSS JOIN hub_records r"
            f" WHERE r.id = t.record_id AND {' AND '.join(where)} AND NOT EXISTS"
            " (SELECT 1 FROM hub_conflicts c WHERE c.record_id = t.record_id)"
            " ORDER BY r.device_id, r.epoch, r.seq"
        )
        for (text,) in self.stream_rows(query, params):
            yield json.loads(text)

    def counted_by_id(self, stream: str, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        """The records of ``ids`` on ``stream`` that :meth:`all_records` would give (no loss
        statement, none held in a conflict), each looked up by its key."""
        self.ensure_reports()
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            for (text,) in self.rows(
                f"SELECT record FROM hub_records r WHERE stream = ? AND {self.any_of('id', part)}"
                " AND NOT EXISTS (SELECT 1 FROM hub_conflicts c WHERE c.record_id = r.id)",
                (stream, *self.any_params(part)),
            ):
                record = json.loads(text)
                if record.get("kind") != "loss":
                    yield record

    def rated_serials(self, serials: Sequence[str]) -> set[str]:
        """Which of ``serials`` a first rating that counts (not held in a conflict) names,
        ever: looked up in ``hub_report_serials`` by serial, not by reading the history."""
        self.ensure_reports()
        wanted = sorted(set(serials))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            found.update(str(s) for (s,) in self.rows(
                "SELECT DISTINCT s.serial FROM hub_report_serials s"
                f" JOIN hub_records r ON r.id = s.record_id WHERE {self.any_of('s.serial', part)}"
                " AND NOT EXISTS (SELECT 1 FROM hub_conflicts c WHERE c.record_id = s.record_id)",
                self.any_params(part),
            ))  # fmt: skip
        return found

    def index_reports(self, stored: Iterable[tuple[str, str, Any]]) -> None:
        """Inside the transaction that stores them: the report rows of records ``(id, stream,
        record)`` (:func:`report_rows`); a row already there is kept."""
        times, serials = [], []
        for record_id, stream, record in stored:
            row, names = report_rows(record_id, stream, record)
            if row is not None:
                times.append(row)
            serials.extend(names)
        self.executemany(
            "INSERT INTO hub_report_times (record_id, stream, local_at, utc_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            times,
        )
        self.executemany(
            "INSERT INTO hub_report_serials (serial, record_id) VALUES (?, ?)"
            " ON CONFLICT DO NOTHING",
            serials,
        )

    def _mark_filled_when_empty(self) -> None:
        """A database with no record yet has nothing to fill: marked done at once.  An older one
        is filled later, chunk by chunk (:meth:`fill_reports`): never at open, where 10 million
        records took 25 minutes and a receiver must be READY within seconds."""
        if self.reports_filled() or self.rows("SELECT 1 FROM hub_records LIMIT 1"):
            return
        self.execute(
            "INSERT INTO hub_backfills (name, done_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (REPORT_BACKFILL, now_text()),
        )

    def reports_filled(self) -> bool:
        """Whether every stored record is in the report tables (the one-time fill is done; once
        seen, never undone, so remembered)."""
        if not self._filled:
            self._filled = bool(
                self.rows("SELECT 1 FROM hub_backfills WHERE name = ?", (REPORT_BACKFILL,))
            )
        return self._filled

    def ensure_reports(self) -> None:
        """Before a report: finish the one-time fill of an older database if no receiver has
        yet (logged: a report on a long history waits for it once)."""
        if self.reports_filled():
            return
        log.warning("the report tables of %s are not filled yet: filling them now (once; a"
                    " running receiver fills them in the background too)", self.where)  # fmt: skip
        self.fill_reports()

    def fill_reports(self, chunks: int | None = None) -> bool:
        """Index up to ``chunks`` × :data:`FILL_CHUNK` stored records (all when ``None``) into
        the report tables, each chunk in its own transaction, resumable where the last one
        ended; True once every record is in.  Two fillers at once take turns on the progress
        row; a record indexed twice is kept once."""
        done = 0
        try:
            while chunks is None or done < chunks:
                if self._fill_chunk():
                    return True
                done += 1
        except Exception as exc:
            raise HubError(f"cannot fill the report tables of {self.where}: {exc}") from exc
        return self.reports_filled()

    def _fill_chunk(self) -> bool:
        lock = "" if self.kind == "sqlite" else " FOR UPDATE"
        with self.transaction():
            if self.reports_filled():
                return True
            self.execute(
                "INSERT INTO hub_backfill_progress (name, after) VALUES (?, '')"
                " ON CONFLICT DO NOTHING",
                (REPORT_BACKFILL,),
            )
            locked = self.rows(
                f"SELECT after FROM hub_backfill_progress WHERE name = ?{lock}", (REPORT_BACKFILL,)
            )
            # another filler may have finished while this one waited for the row's lock
            # (PostgreSQL reads committed rows afresh after the lock): asked again, uncached
            if self.rows("SELECT 1 FROM hub_backfills WHERE name = ?", (REPORT_BACKFILL,)):
                self._filled = True
                return True
            after = str(locked[0][0]) if locked else ""
            found = self.rows(
                "SELECT id, stream, record FROM hub_records WHERE id > ? ORDER BY id LIMIT ?",
                (after, FILL_CHUNK),
            )
            chunk = []
            for record_id, stream, text in found:
                try:
                    chunk.append((str(record_id), str(stream), json.loads(text)))
                except ValueError:
                    continue  # no record to count (all_records could not read it either)
            self.index_reports(chunk)
            if len(found) < FILL_CHUNK:
                self.execute(
                    "INSERT INTO hub_backfills (name, done_at) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (REPORT_BACKFILL, now_text()),
                )
                self.execute(  # kept (a filler waiting on it finds it), reset for a refill
                    "UPDATE hub_backfill_progress SET after = '' WHERE name = ?",
                    (REPORT_BACKFILL,),
                )
                return True
            self.execute(
                "UPDATE hub_backfill_progress SET after = ? WHERE name = ?",
                (str(found[-1][0]), REPORT_BACKFILL),
            )
            return False

    def count(self, stream: str | None = None) -> int:
        """How many records are stored (on ``stream``, or on every stream)."""
        if stream is None:
            return int(self.rows("SELECT count(*) FROM hub_records")[0][0])
        return int(self.rows("SELECT count(*) FROM hub_records WHERE stream = ?", (stream,))[0][0])

    def parked(self) -> int:
        """How many records wait for a predecessor."""
        return int(self.rows("SELECT count(*) FROM hub_parked")[0][0])

    def parking(self, device_id: str) -> tuple[int, int]:
        """How many records, and bytes of them, ``device_id`` has parked."""
        found = self.rows(
            "SELECT records, bytes FROM hub_parking WHERE device_id = ?", (device_id,)
        )
        return (int(found[0][0]), int(found[0][1])) if found else (0, 0)

    def dead_counts(self, device_id: str | None = None) -> list[dict[str, Any]]:
        """Every refusal counted per (device, cause), the most first: count, rows kept in
        ``hub_dead``, first and last seen, the last payload's SHA-256 and a sample of it."""
        where, params = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        return [
            {"device_id": d, "cause": c, "count": int(n), "stored": int(k), "first_at": f,
             "last_at": la, "last_sha256": h, "sample": sm}
            for d, c, n, k, f, la, h, sm in self.rows(
                "SELECT device_id, cause, count, stored, first_at, last_at, last_sha256, sample"
                f" FROM hub_dead_counts {where} ORDER BY count DESC, device_id, cause",
                params,
            )
        ]  # fmt: skip

    def dead(self) -> list[dict[str, Any]]:
        """Every dead letter, oldest first."""
        return [
            {"device_id": d, "topic": t, "reason": r, "payload": p, "at": a}
            for d, t, r, p, a in self.rows(
                "SELECT device_id, topic, reason, payload, received_at FROM hub_dead ORDER BY id"
            )
        ]

    def hold(
        self,
        record_id: str,
        device_id: str,
        kind: str,
        detail: dict[str, Any],
        other: tuple[str, str] = ("", ""),
    ) -> bool:
        """Hold the stored record ``record_id`` of ``device_id`` out of the figures (inside the
        caller's transaction, or on its own): it stays in its chain, acked, never edited.
        ``kind`` says why, ``other`` is the other side (device, record id) when there is one,
        ``detail`` what a person needs to decide.  True when it is new."""
        text = json.dumps(detail, ensure_ascii=False, sort_keys=True)
        if self.rows(
            "SELECT 1 FROM hub_conflicts WHERE record_id = ? AND kind = ?", (record_id, kind)
        ):
            return False
        self.execute(
            "INSERT INTO hub_conflicts (record_id, device_id, kind, other_device_id,"
            " other_record_id, detail, flagged_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (record_id, device_id, kind, other[0], other[1], text, now_text()),
        )
        return True

    def conflicts(self, device_id: str | None = None) -> list[dict[str, Any]]:
        """Every record held out of the figures (of ``device_id``, or of every device), oldest
        first, with the other side of the conflict."""
        where, params = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        out = []
        for rid, dev, kind, odev, orid, detail, at in self.rows(
            "SELECT record_id, device_id, kind, other_device_id, other_record_id, detail,"
            f" flagged_at FROM hub_conflicts {where} ORDER BY id",
            params,
        ):
            out.append({"record_id": rid, "device_id": dev, "kind": kind,
                        "other_device_id": odev, "other_record_id": orid,
                        "detail": _detail(detail),
                        "flagged_at": at})  # fmt: skip
        return out

    def set_roster(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Replace the city's roster (``(hall, device_id, clerk_id)`` rows, see
        :mod:`sync.hub.roster`) in one transaction."""
        with self.transaction():
            self.execute("DELETE FROM hub_roster")
            self.executemany(
                "INSERT INTO hub_roster (hall, device_id, clerk_id) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                list(rows),
            )

    def roster(self) -> list[tuple[str, str, str]]:
        """The city's roster, sorted."""
        return [(str(h), str(d), str(c)) for h, d, c in self.rows(
            "SELECT hall, device_id, clerk_id FROM hub_roster ORDER BY hall, device_id, clerk_id"
        )]  # fmt: skip

    def flag(self, device_id: str, kind: str, key: str, detail: dict[str, Any]) -> bool:
        """Record a finding for audit about ``device_id`` (inside the caller's transaction, or
        on its own); the same ``(device, kind, key)`` is recorded once.  True when it is new.

        ``kind`` names the finding (``records_lost``, ``chain_restarted``, ``head_contradicted``
        …), ``key`` tells findings of one kind apart (the seq, the epoch), ``detail`` says
        what was found, in JSON."""
        text = json.dumps(detail, ensure_ascii=False, sort_keys=True)
        before = self.rows(
            "SELECT 1 FROM hub_flags WHERE device_id = ? AND kind = ? AND key = ?",
            (device_id, kind, key),
        )
        if before:
            return False
        self.execute(
            "INSERT INTO hub_flags (device_id, kind, key, detail, flagged_at) VALUES"
            " (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (device_id, kind, key, text, now_text()),
        )
        return True

    def amend_flag(self, device_id: str, kind: str, key: str, detail: dict[str, Any]) -> None:
        """Replace the detail of a finding already recorded (inside the caller's transaction):
        a restart flagged on its first rating is completed when its ``epoch`` event arrives."""
        self.execute(
            "UPDATE hub_flags SET detail = ? WHERE device_id = ? AND kind = ? AND key = ?",
            (json.dumps(detail, ensure_ascii=False, sort_keys=True), device_id, kind, key),
        )

    def flags(self, device_id: str | None = None) -> list[dict[str, Any]]:
        """Every finding for audit (of ``device_id``, or of every device), oldest first."""
        where, params = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        out = []
        for dev, kind, key, detail, at in self.rows(
            f"SELECT device_id, kind, key, detail, flagged_at FROM hub_flags {where} ORDER BY id",
            params,
        ):
            out.append(
                {"device_id": dev, "kind": kind, "key": key, "detail": _detail(detail),
                 "flagged_at": at}
            )
        return out

    def statuses(self) -> dict[str, tuple[dict[str, Any] | None, str]]:
        """The latest status of each device that sent one: ``(payload or None, received_at)``."""
        out: dict[str, tuple[dict[str, Any] | None, str]] = {}
        for device_id, payload, at in self.rows(
            "SELECT device_id, payload, received_at FROM hub_status"
        ):
            try:
                body = json.loads(payload)
            except ValueError:
                body = None
            out[str(device_id)] = (body if isinstance(body, dict) else None, str(at))
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> HubDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Registered:
    """What :meth:`HubDB.register_many` did: device ids new, changed (``--force``: a key
    added) and unchanged, and each refused row ``(where, device id, why)``."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)


def case_serials(record: Mapping[str, Any]) -> list[str]:
    """The serials (业务流水号) of a record's cases, as the figures read them."""
    return [str(c.get("serial")) for c in record.get("cases") or [] if isinstance(c, Mapping)]


def report_times(value: Any) -> tuple[str | None, str | None]:
    """A record's own time as (wall-clock, UTC) text of one fixed width, so that text order is
    time order; ``(None, None)`` when it is no ISO time (no period holds it).  A time without
    an offset is UTC, as :func:`sync.hub.figures.parse_time` reads it."""
    try:
        at = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None, None
    local = at.replace(tzinfo=None).isoformat(timespec="microseconds")
    aware = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    try:
        utc = aware.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    except OverflowError:
        utc = None
    return local, utc


def bound_text(bound: dt.datetime) -> tuple[str, str]:
    """A period's bound as (column, text) of ``hub_report_times``: a naive bound is wall-clock
    time at the pad (``local_at``), an aware one an instant (``utc_at``)."""
    if bound.tzinfo is None:
        return "local_at", bound.isoformat(timespec="microseconds")
    return "utc_at", bound.astimezone(dt.UTC).replace(tzinfo=None).isoformat(
        timespec="microseconds"
    )


def report_rows(
    record_id: str, stream: str, record: Any
) -> tuple[tuple[str, str, str | None, str | None] | None, list[tuple[str, str]]]:
    """The ``hub_report_times`` row of a stored record (None when no report counts it: a loss
    statement, an event other than ``presentation_end``) and its ``hub_report_serials`` rows
    (the serials of a first rating)."""
    if not isinstance(record, Mapping) or record.get("kind") == "loss":
        return None, []
    if stream == "ratings":
        when = record.get("rated_at")
    elif record.get("kind") == "presentation_end":
        when = record.get("ended_at")
    else:
        return None, []
    row = (record_id, stream, *report_times(when))
    if stream != "ratings" or record.get("assess_number") != 1:
        return row, []
    return row, [(serial, record_id) for serial in sorted(set(case_serials(record)))]


def _shared_key(key_id: str, others: str) -> str:
    """Why a pad is refused whose key another pad has (a copied SD card or bundle)."""
    return (
        f"its key {key_id} is {others}'s too: one key, one pad (a copied SD card or "
        "bundle?), whoever holds it could sign as either; give the pad a key of its own "
        "(move its device.key away, then `evaluator keys init` or `evaluator provision`)"
    )


def _device_id_problem(device_id: str) -> str | None:
    """Why ``device_id`` cannot be a pad's id (the pad's, provision's and signing's rule)."""
    return device_id_problem(device_id)


def _detail(text: str) -> Any:
    """A finding's or a conflict's stored detail: its JSON, or the text as found."""
    try:
        return json.loads(text)
    except ValueError:
        return {"text": text}


def _redact(url: str) -> str:
    """``url`` without its password (``postgresql://user:***@host/db``)."""
    head, sep, tail = url.partition("://")
    if not sep or "@" not in tail:
        return url
    cred, _, rest = tail.rpartition("@")
    user = cred.split(":", 1)[0]
    return f"{head}://{user}:***@{rest}" if ":" in cred else url


def _is_unique_violation(exc: BaseException) -> bool:
    return type(exc).__name__ in ("UniqueViolation", "IntegrityError")
