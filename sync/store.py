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
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from evaluator.errors import StoreError
from evaluator.records import (
    GENESIS_HASH,
    ChainBreak,
    canonical_json,
    new_record_id,
    seal,
    verify_chain,
)

log = logging.getLogger(__name__)

#: How long (milliseconds) a connection waits for another one holding the write lock.
BUSY_TIMEOUT_MS = 5000

#: Message of the triggers that keep ratings append-only (also what sqlite3 raises).
APPEND_ONLY = "ratings are append-only"
#: Message of the trigger that keeps a presentation's outcome final.
OUTCOME_FINAL = "presentation outcome is final"

#: Outcomes a presentation can end with (see ``evaluator.session.Outcome``).
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

migrations = Migrations("evaluator")


@migrations(name="m001_initial")
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
    thread; see the module docstring.  Raises :class:`StoreError` when the file cannot be opened
    or fails ``PRAGMA quick_check``.  ``db`` is the underlying sqlite-utils ``Database``, for
    diagnostics and tests only: write through the methods.
    """

    def __init__(self, path: Path | str, *, device_id: str) -> None:
        if not device_id:
            raise ValueError("device_id must not be empty")
        self.path = Path(path)
        self.device_id = device_id
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the rating store {self.path}: {exc}") from exc
        try:
            self.db = Database(conn)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            problems = [row[0] for row in self.db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise StoreError(
                    f"the rating store {self.path} failed its integrity check: "
                    + "; ".join(str(p) for p in problems[:5])
                )
            if self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise StoreError(f"the rating store {self.path} cannot use WAL journaling")
            self.db.execute("PRAGMA synchronous = FULL")
            self.db.execute("PRAGMA foreign_keys = ON")
            with self._immediate():
                migrations.apply(self.db)
                self._check_device_id()
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the rating store {self.path}: {exc}") from exc

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[None]:
        """One write transaction that takes the write lock at once (no stale-snapshot retry).

        ``BEGIN IMMEDIATE`` waits (busy timeout) for another writer instead of failing midway
        when two instances write concurrently; sqlite-utils calls inside nest as savepoints.
        """
        conn = self.db.conn
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
        row = self.db.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
        if row is None:
            self.db.execute(
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

    def append_rating(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Commit one rating durably and queue it for upload; return the sealed record.

        Assigns ``id`` (UUIDv7-like), ``seq`` (last + 1, from 1) and ``device_id``, chains it to
        the previous record and writes the rating, one ``rating_cases`` row per distinct case
        serial and the outbox row in ONE transaction.  ``content`` needs ``level``, ``stage``,
        ``assess_number`` and ``cases`` (a list of objects with a ``serial``).

        Raises :class:`DuplicateRating` when a case was already rated at that stage and assess
        number, :class:`StoreError` when the disk refuses the write (full, read-only, I/O
        error); in both cases nothing is written.  ``ValueError`` for malformed content.
        """
        serials, stage, assess_number = _case_keys(content)
        try:
            with self._immediate():
                rated = self.already_rated(serials, stage, assess_number)
                if rated:
                    raise DuplicateRating(rated, stage, assess_number)
                last = self.db.execute(
                    "SELECT seq, hash FROM ratings ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
                body = dict(content)
                body.update(id=new_record_id(), seq=seq, device_id=self.device_id)
                record = seal(body, prev_hash=prev_hash)
                self.db.execute(
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
                self.db.conn.executemany(
                    "INSERT INTO rating_cases (rating_id, serial, stage, assess_number)"
                    " VALUES (?, ?, ?, ?)",
                    [(record["id"], s, stage, assess_number) for s in serials],
                )
                self.db.execute("INSERT INTO outbox (rating_id) VALUES (?)", [record["id"]])
        except sqlite3.IntegrityError as exc:
            if "rating_cases" in str(exc):
                raise DuplicateRating(serials, stage, assess_number) from exc
            raise StoreError(f"the rating was refused by the store: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(
                f"the rating could not be stored (nothing was written): {exc}"
            ) from exc
        return record

    def already_rated(self, serials: Iterable[str], stage: str, assess_number: int) -> list[str]:
        """Those of ``serials`` (in the given order) already rated at this stage/assess number."""
        wanted = list(dict.fromkeys(serials))
        found: set[str] = set()
        for chunk in _chunks(wanted, _SQL_VARS):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT serial FROM rating_cases WHERE stage = ? AND assess_number = ?"
                f" AND serial IN ({marks})",
                [stage, assess_number, *chunk],
            ).fetchall()
            found.update(r[0] for r in rows)
        return [s for s in wanted if s in found]

    def records(self, *, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        """Every sealed record with ``seq`` greater than ``since_seq``, in seq order."""
        after = since_seq
        while True:
            rows = self.db.execute(
                "SELECT seq, record FROM ratings WHERE seq > ? ORDER BY seq LIMIT ?",
                [after, _PAGE],
            ).fetchall()
            for seq, text in rows:
                after = seq
                yield json.loads(text)
            if len(rows) < _PAGE:
                return

    def verify(self) -> ChainBreak | None:
        """``None`` when every record is intact, else the first broken one.

        Checks the hash chain and seq continuity (``verify_chain``) and that each row's columns
        agree with its stored record JSON (a row edited behind the store's back).
        """
        mismatch: list[ChainBreak] = []
        names = ", ".join(_MIRRORED)

        def rows() -> Iterator[dict[str, Any]]:
            after = 0
            while True:
                page = self.db.execute(
                    f"SELECT {names}, record FROM ratings WHERE seq > ? ORDER BY seq LIMIT ?",
                    [after, _PAGE],
                ).fetchall()
                for row in page:
                    columns = dict(zip(_MIRRORED, row[:-1], strict=True))
                    after = columns["seq"]
                    try:
                        record = json.loads(row[-1])
                    except (TypeError, ValueError):
                        mismatch.append(
                            ChainBreak(columns["seq"], columns["id"], "record JSON is unreadable")
                        )
                        return
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

    # -- outbox ---------------------------------------------------------------------------

    def pending(self, limit: int = 100, *, after_seq: int = 0) -> list[dict[str, Any]]:
        """Up to ``limit`` sealed records still waiting for the city's ack, in seq order.

        ``after_seq`` skips records with a seq up to it (to page through a long outbox).
        """
        rows = self.db.execute(
            "SELECT r.record FROM outbox o JOIN ratings r ON r.id = o.rating_id"
            " WHERE r.seq > ? ORDER BY r.seq LIMIT ?",
            [after_seq, limit],
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def ack(self, ids: Iterable[str]) -> int:
        """The city stored these ratings: drop them from the outbox.

        Returns how many of ``ids`` were pending; unknown or already acked ids are ignored.
        """
        unique = [i for i in dict.fromkeys(ids) if isinstance(i, str)]
        removed = 0
        try:
            with self._immediate():
                for chunk in _chunks(unique, _SQL_VARS):
                    marks = ",".join("?" * len(chunk))
                    cur = self.db.execute(f"DELETE FROM outbox WHERE rating_id IN ({marks})", chunk)
                    removed += cur.rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"could not record the acknowledgement: {exc}") from exc
        return removed

    def last_seq(self) -> int:
        """The seq of the newest rating, 0 when there is none (a cheap "anything new?")."""
        return int(self.db.execute("SELECT coalesce(max(seq), 0) FROM ratings").fetchone()[0])

    def outbox_size(self) -> int:
        """How many ratings wait for the city's ack."""
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

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
    ) -> None:
        """Record that the rating screen opened (counts as *presented* for participation).

        Called when the screen opens, before any press, so an unrated presentation survives a
        power cut.  ``started_at`` is an ISO time (see ``clock_synced`` for its trust).
        Raises :class:`StoreError` when ``id`` exists or the disk refuses the write.
        """
        try:
            with self._immediate():
                last = self.db.execute("SELECT max(seq) FROM presentations").fetchone()[0]
                self.db.execute(
                    "INSERT INTO presentations (id, seq, serials, stage, assess_number, clerk_id,"
                    " matter_codes, started_at, clock_synced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        id,
                        (last or 0) + 1,
                        _json(list(serials)),
                        stage,
                        assess_number,
                        clerk_id,
                        _json(list(dict.fromkeys(matter_codes))),
                        started_at,
                        int(bool(clock_synced)),
                    ],
                )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"presentation {id} was already opened: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"could not record presentation {id}: {exc}") from exc

    def close_presentation(
        self, id: str, *, outcome: str, ended_at: str, rating_ids: Iterable[str] = ()
    ) -> None:
        """Set a presentation's outcome (``rated``, ``not_rated`` or ``cancelled``), once.

        Raises :class:`StoreError` for an unknown id, an outcome already set, or a disk error;
        ``ValueError`` for an unknown outcome.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        try:
            with self._immediate():
                cur = self.db.execute(
                    "UPDATE presentations SET outcome = ?, ended_at = ?, rating_ids = ?"
                    " WHERE id = ?",
                    [outcome, ended_at, _json(list(rating_ids)), id],
                )
                if cur.rowcount == 0:
                    raise StoreError(f"no presentation {id} to close")
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"presentation {id} cannot be closed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"could not close presentation {id}: {exc}") from exc

    def unclosed_presentations(self) -> list[dict[str, Any]]:
        """Presentations without an outcome (e.g. the power went off), oldest first.

        The app closes them ``not_rated`` at start so they are reported upstream (art. 25).
        """
        rows = self.db.execute(
            "SELECT id, seq, serials, stage, assess_number, clerk_id, matter_codes, started_at,"
            " clock_synced FROM presentations WHERE outcome IS NULL ORDER BY seq"
        ).fetchall()
        return [
            {
                "id": r[0],
                "seq": r[1],
                "serials": json.loads(r[2]),
                "stage": r[3],
                "assess_number": r[4],
                "clerk_id": r[5],
                "matter_codes": json.loads(r[6]),
                "started_at": r[7],
                "clock_synced": bool(r[8]),
            }
            for r in rows
        ]

    # -- statistics -----------------------------------------------------------------------

    def stats(self) -> list[dict[str, Any]]:
        """Per clerk and matter (art. 33): ratings, mean score, presented, rated, participation.

        One row per (clerk id, matter code), carrying the clerk and matter names last seen in a
        rating (``None`` if never rated).  A rating covering several matters counts once for
        each; a batch of cases of one matter counts once.  ``presented`` counts presentations
        that showed the matter with that clerk (whatever their outcome, unclosed included),
        ``rated`` those that ended ``rated``; ``participation`` = rated / presented, ``None``
        when nothing was presented.  ``mean_score`` is ``None`` without ratings.
        """
        groups: dict[tuple[str | None, str | None], dict[str, Any]] = {}

        def group(clerk_id: str | None, matter_code: str | None) -> dict[str, Any]:
            return groups.setdefault(
                (clerk_id, matter_code),
                {
                    "clerk_id": clerk_id,
                    "clerk_name": None,
                    "matter_code": matter_code,
                    "matter_name": None,
                    "ratings": 0,
                    "score_sum": 0.0,
                    "scored": 0,
                    "presented": 0,
                    "rated": 0,
                },
            )

        for record in self.records():
            clerk = record.get("clerk") or {}
            matters: dict[str | None, str | None] = {}
            for case in record.get("cases") or []:
                matters[case.get("matter_code")] = case.get("matter_name")
            for code, name in matters.items():
                g = group(clerk.get("id"), code)
                g["clerk_name"] = clerk.get("name")
                g["matter_name"] = name
                g["ratings"] += 1
                if isinstance(record.get("score"), int | float):
                    g["score_sum"] += record["score"]
                    g["scored"] += 1

        for clerk_id, codes, outcome in self.db.execute(
            "SELECT clerk_id, matter_codes, outcome FROM presentations"
        ).fetchall():
            for code in dict.fromkeys(json.loads(codes)):
                g = group(clerk_id, code)
                g["presented"] += 1
                g["rated"] += outcome == "rated"

        result = []
        for key in sorted(groups, key=lambda k: (k[0] or "", k[1] or "")):
            g = groups[key]
            scored, score_sum = g.pop("scored"), g.pop("score_sum")
            g["mean_score"] = score_sum / scored if scored else None
            g["participation"] = g["rated"] / g["presented"] if g["presented"] else None
            result.append(g)
        return result

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _case_keys(content: Mapping[str, Any]) -> tuple[list[str], str, int]:
    """The distinct case serials, stage and assess number a rating covers (validated)."""
    for key in ("level", "stage", "assess_number", "cases"):
        if key not in content:
            raise ValueError(f"a rating needs {key!r}")
    stage, assess_number, cases = content["stage"], content["assess_number"], content["cases"]
    if not isinstance(stage, str) or not stage:
        raise ValueError("a rating's 'stage' must be a non-empty string")
    if not isinstance(assess_number, int) or isinstance(assess_number, bool):
        raise ValueError("a rating's 'assess_number' must be an integer")
    if not isinstance(cases, list | tuple) or not cases:
        raise ValueError("a rating's 'cases' must be a non-empty list")
    serials = []
    for case in cases:
        serial = case.get("serial") if isinstance(case, Mapping) else None
        if not isinstance(serial, str) or not serial:
            raise ValueError("every case of a rating needs a non-empty 'serial'")
        serials.append(serial)
    return list(dict.fromkeys(serials)), stage, assess_number


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
