"""One received message → stored exactly once, acked again, parked, or refused (no MQTT here).

For ``{prefix}/{device}/ratings`` and ``…/events`` every check that needs no database state runs
first (topic, size, UTF-8, nesting, JSON, the published schema, ``device_id`` = the topic's
device, the hash over the content, the signature with a key registered for that device, or an
unsigned record below the device's ``unsigned_before``); the schema check is compiled Rust
(:func:`sync.hub.schemas.first_error`).  Then ONE transaction per batch, holding the head rows of
every (device, stream) in it (PostgreSQL ``SELECT … FOR UPDATE`` in one sorted order, SQLite
``BEGIN IMMEDIATE``), decides, chain by chain and record by record in ``seq`` order, against what
is stored and what the batch itself stores before it (the writes go out together at the end, as
``executemany``: a few statements per batch whatever its size):

* ``id`` already stored → a duplicate: acked again, nothing written;
* ``seq`` = tip + 1 and ``prev_hash`` = the tip's hash → stored, the tip moves, and parked
  successors that chain on are promoted (and acked) in the same transaction;
* ``seq`` > tip + 1 → parked (not acked: it is acked when promoted, by whichever receiver
  promotes it), beside any other candidate for that seq: when the gap closes the candidate
  that links is stored, the others are dead letters; a device's parking is capped
  (:data:`PARK_RECORDS`, :data:`PARK_BYTES`) and a batch reads only the seq a chain needs next;
* anything else → a dead letter with the reason: never acked, never half-stored.

Two receivers may hold messages of the same device at once (a shared subscription splits a
device's traffic): the head lock serialises them, so the chain is stored in order whoever
received what.  ``…/status`` upserts the device's latest status (no ack).  After a batch the
witnessed ratings heads of its devices are compared with what is stored, and each status with
them (:mod:`sync.hub.witness`: findings for audit, never a refusal).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from evaluator.rules.loss import LOSS_KIND, is_loss
from evaluator.rules.protocol import MAX_DEPTH, nesting_depth
from evaluator.rules.records import CanonicalReader, record_hash, sealed_hash, signature_of
from evaluator.rules.recordtext import shown_text_problem
from sync.hub import schemas, truth, witness
from sync.hub.db import STREAMS, HubDB, now_text
from sync.keys import PublicKey

log = logging.getLogger(__name__)

#: Largest message read, in bytes (a rating is ~1–3 kB; 50 cases of long names stay far below).
MAX_PAYLOAD = 64 * 1024
#: Seconds a device's registered keys are cached (a new registration is seen within this).
KEYS_TTL = 5.0
#: A refused message that repeats (same device, id and reason, or the same bytes on the same
#: topic when it has no id) within this many seconds
#: is counted but neither stored nor published again: a pad resends what was not acked every
#: ``resend_after``, and a forger may repeat for ever.
DEAD_REPEAT_AFTER = 600.0

#: A chain that parks records beyond a missing seq: the ack names at most this many of its
#: missing seqs (the lowest first), asking the pad at most once per MISSING_EVERY seconds per
#: chain; parked on the same missing seq for GAP_FLAG_AFTER seconds, it is flagged chain_gap.
MISSING_MAX = 5
MISSING_EVERY = 5.0
GAP_FLAG_AFTER = 600.0
#: How many refused (device, id) pairs are remembered for that.
DEAD_MEMORY = 10_000
#: What one device may have parked at once (records ahead of a missing predecessor): beyond
#: either, a record to park is refused as a dead letter "parking full" (not acked: an honest
#: pad sends it again once its chain moved) and the device is flagged ``parking_full``.
PARK_RECORDS = 5_000
PARK_BYTES = 16 * 1024 * 1024
#: Dead letters kept as rows in ``hub_dead`` per (device, cause); beyond it they are only
#: counted (``hub_dead_counts``: count, first/last seen, hash and sample of the last).
DEAD_ROWS = 100
#: Causes counted apart per device; a device's further causes are counted as ``other``.
DEAD_CAUSES = 50
#: Bytes of a refused payload kept in its ``hub_dead`` row, and in the count's sample.
DEAD_ROW_BYTES = 4096
DEAD_SAMPLE_BYTES = 512

#: The schema each stream's records are checked against (``docs/schemas/<name>.schema.json``).
SCHEMA_OF = {"ratings": "rating", "events": "event", "status": "status"}
#: The highest ``seq`` a chain can hold (the ``BIGINT`` column; Python ints have no bound).
MAX_SEQ = 2**63 - 1
#: What every chained record needs when its stream has no published schema yet.
_CHAIN_FIELDS = {"id": str, "seq": int, "device_id": str, "prev_hash": str, "hash": str}


@dataclass(frozen=True)
class Dead:
    """A refused message: what, from where, why (``payload`` as received, cut to 64 KiB;
    ``size`` and ``sha256`` are the whole payload's, when it was cut)."""

    device_id: str
    topic: str
    reason: str
    payload: bytes
    key: str
    at: str = ""
    size: int = -1
    sha256: str = ""

    def whole(self) -> tuple[int, str]:
        """The length and SHA-256 of the payload as received (before any cut)."""
        if self.size >= 0 and self.sha256:
            return self.size, self.sha256
        return len(self.payload), hashlib.sha256(self.payload).hexdigest()

    def payload_text(self) -> tuple[str, str]:
        """``(text, encoding)``: the payload as UTF-8 text, or base64 when it is not text (or
        holds a NUL, which a PostgreSQL text column cannot)."""
        try:
            text = self.payload.decode("utf-8")
            if "\0" not in text:
                return text, "utf-8"
        except UnicodeDecodeError:
            pass
        return base64.b64encode(self.payload).decode("ascii"), "base64"


@dataclass
class Result:
    """What a batch of messages did.  ``acks``: ids to ack per device (only after commit)."""

    acks: dict[str, list[str]] = field(default_factory=dict)
    stored: int = 0
    duplicates: int = 0
    parked: int = 0
    statuses: int = 0
    dead: list[Dead] = field(default_factory=list)
    #: Dead letters counted but not stored/published again (repeats, see DEAD_REPEAT_AFTER).
    repeats: int = 0
    #: Records stored (and acked) but held out of the figures (:mod:`sync.hub.truth`).
    held: int = 0
    #: Messages whose transaction failed (database error): not acked, the pad resends them.
    failed: int = 0
    #: What the city needs per device to unpark a chain: ``{"stream", "epoch", "seq"}`` of the
    #: seqs after a chain's tip that it parks records beyond (the lowest first, a few per
    #: chain, each chain asked at most once per :data:`MISSING_EVERY` seconds).
    missing: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def ack(self, device_id: str, rid: str) -> None:
        self.acks.setdefault(device_id, []).append(rid)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs a message
class _Valid:
    device_id: str
    stream: str
    topic: str
    record: dict[str, Any]
    text: str
    payload: bytes


#: A chain at the hub: (device, stream, epoch); records of a store made before epochs: ``''``.
Chain = tuple[str, str, str]


def epoch_of(record: dict[str, Any]) -> str:
    """The epoch a record was sealed in (issue 15 B); ``""`` before epochs."""
    return str(record.get("epoch", ""))


@dataclass
class _Batch:
    """What one batch's transaction decided, written at its end (``executemany``)."""

    known: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Parked candidates read so far: (device, stream, epoch, seq) → [(id, hash, record)].
    parked: dict[tuple[str, str, str, int], list[tuple[str, str, str]]] = field(
        default_factory=dict
    )
    #: Per device of the batch: [records, bytes] it has parked (stored, plus this batch's).
    parking: dict[str, list[int]] = field(default_factory=dict)
    #: Per device: what this batch adds to (or takes from) its parking, written at commit.
    parking_delta: dict[str, list[int]] = field(default_factory=dict)
    #: Devices refused a park for the cap in this batch (flagged ``parking_full`` once).
    full: set[str] = field(default_factory=set)
    #: Records already parked, sent again: they wait as they are.
    still_parked: int = 0
    #: (device, stream, epoch, seq, hash) of this batch's parks.
    park_keys: set[tuple[str, str, str, int, str]] = field(default_factory=set)
    inserts: list[tuple[Any, ...]] = field(default_factory=list)
    parks: list[tuple[Any, ...]] = field(default_factory=list)
    unparked: list[tuple[str, str, str, int]] = field(default_factory=list)
    #: Chains whose first record this batch stored (a new epoch), and the epoch events stored.
    opened: list[Chain] = field(default_factory=list)
    epoch_events: list[dict[str, Any]] = field(default_factory=list)
    lost: dict[Chain, set[int]] = field(default_factory=dict)
    heads: list[tuple[Any, ...]] = field(default_factory=list)
    acks: list[tuple[str, str]] = field(default_factory=list)
    dead: list[Dead] = field(default_factory=list)
    duplicates: int = 0
    #: (id, stream, record) of each record stored: its report rows (``HubDB.index_reports``).
    reports: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    ratings: list[tuple[str, int, str]] = field(default_factory=list)
    """(device, seq, record text) of each ratings record stored: for the witness hook."""
    #: Chains that parked a record in this batch: chain → the lowest seq parked.
    gaps: dict[Chain, int] = field(default_factory=dict)
    #: The chain's tip when it parked (``gaps`` then holds how many seqs are missing).
    gap_tips: dict[Chain, int] = field(default_factory=dict)
    #: Findings for audit (``HubDB.flag`` arguments), written with the batch.
    flags: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    #: (stream, record) of each record stored, in order: for :meth:`Ingest._truthful`.
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def store(self, device_id: str, stream: str, rec: dict[str, Any], text: str, at: str) -> None:
        """Insert ``rec`` at commit; from now on its id counts as stored (a resend of it later
        in the batch is a duplicate), and it is acked once the transaction commits."""
        rid = str(rec["id"])
        # A loss statement takes the lost record's place in the chain: its hash is lost_hash.
        chained = rec["lost_hash"] if is_loss(rec) else rec["hash"]
        self.inserts.append(
            (rid, device_id, stream, epoch_of(rec), int(rec["seq"]), str(chained),
             str(rec["prev_hash"]), text, at)
        )  # fmt: skip
        if stream == "events" and rec.get("kind") == "epoch":
            self.epoch_events.append(rec)
            self.lost.clear()  # what it names lost counts from now on in this batch
        if is_loss(rec):
            epoch = str(rec.get("epoch", ""))
            self.flags.append((device_id, "records_lost", f"{stream}:{epoch}:{rec['seq']}", {
                "stream": stream, "seq": int(rec["seq"]), "epoch": epoch,
                "lost_hash": rec["lost_hash"], "problem": rec["problem"],
            }))  # fmt: skip
        self.known[rid] = (device_id, stream)
        self.records.append((stream, rec))
        self.reports.append((rid, stream, rec))
        self.acks.append((device_id, rid))
        if stream == "ratings":
            self.ratings.append((device_id, int(rec["seq"]), text))


class Ingest:
    """Stores messages into ``db`` (a :class:`~sync.hub.db.HubDB`) under ``topic_prefix``.

    ``clock`` (monotonic seconds) drives the key cache and the repeat filter of dead letters
    (tests pass their own).  Use from one thread, like the ``HubDB`` it holds.
    """

    def __init__(
        self,
        db: HubDB,
        topic_prefix: str = "hcp/v1",
        *,
        dead_repeat_after: float = DEAD_REPEAT_AFTER,
        clock: Callable[[], float] = time.monotonic,
        park_records: int = PARK_RECORDS,
        park_bytes: int = PARK_BYTES,
    ) -> None:
        self.db = db
        self.park_records, self.park_bytes = park_records, park_bytes
        self.prefix = topic_prefix.rstrip("/")
        self._head = self.prefix + "/"
        self.dead_repeat_after = dead_repeat_after
        self._clock = clock
        self._keys: dict[str, tuple[float, dict[str, PublicKey], int]] = {}
        self._dead_seen: OrderedDict[str, float] = OrderedDict()
        #: Causes counted per device (read from hub_dead_counts once per device), and per
        #: device when dead letters counted without a row were last logged, and how many since.
        self._counted_told: dict[str, tuple[float, int]] = {}
        self._causes: dict[str, set[str]] = {}
        #: Per parked chain: (tip, when asked) and (tip, parked on it since), and the gaps
        #: flagged (one flag per chain and tip).
        self._asked: dict[Chain, tuple[int, float]] = {}
        self._gap_since: dict[Chain, tuple[int, float]] = {}
        self._gap_flagged: set[tuple[Chain, int]] = set()
        self._reader = CanonicalReader()

    # -- the entry points ------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> Result:
        """One message (see :meth:`handle_batch`)."""
        return self.handle_batch([(topic, payload)])

    def handle_batch(self, messages: Iterable[tuple[str, bytes]]) -> Result:
        """Check, store and decide every message; dead letters are stored (repeats filtered)
        and returned in ``Result.dead``; the caller publishes ``Result.acks`` and them."""
        result = Result()
        groups: dict[Chain, list[_Valid]] = {}
        statuses: list[tuple[str, str]] = []
        for topic, payload in messages:
            checked = self._check(topic, payload)
            if isinstance(checked, Dead):
                result.dead.append(checked)
            elif isinstance(checked, _Valid):
                chain = (checked.device_id, checked.stream, epoch_of(checked.record))
                groups.setdefault(chain, []).append(checked)
            else:
                statuses.append(checked)
        if groups:
            self._store_groups(groups, result)
        if statuses:
            self._store_statuses(statuses, result)
        self._file_dead(result)
        return result

    # -- checks without the database's chain state -----------------------------------------

    def _check(self, topic: str, payload: bytes) -> _Valid | Dead | tuple[str, str]:
        head = self._head
        parts = topic[len(head) :].split("/") if topic.startswith(head) else []
        if len(parts) != 2 or parts[1] not in SCHEMA_OF or not parts[0]:
            return self._dead("", topic, f"not a device topic under {head}", payload)
        device_id, stream = parts
        if len(payload) > MAX_PAYLOAD:
            return self._dead(
                device_id, topic, f"{len(payload)} bytes, more than {MAX_PAYLOAD}", payload
            )
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return self._dead(device_id, topic, "not UTF-8", payload)
        if stream == "status" and not text:
            return (device_id, "")  # a retained status cleared: nothing to keep
        # the depth is at most the number of opening brackets (two C counts); a rating has ~12
        if payload.count(b"[") + payload.count(b"{") > MAX_DEPTH and (
            nesting_depth(payload) > MAX_DEPTH
        ):
            return self._dead(device_id, topic, f"nested deeper than {MAX_DEPTH}", payload)
        try:
            obj, canonical = self._reader.read(text, payload)
        except (ValueError, RecursionError) as exc:
            return self._dead(device_id, topic, f"not JSON: {exc}"[:200], payload)
        if not isinstance(obj, dict):
            return self._dead(device_id, topic, "not a JSON object", payload)
        # valid UTF-8 can still decode to a lone surrogate through a \u escape (a pad's
        # canonical JSON escapes only control characters): no hash, column or reply holds one
        if not canonical and b"\\u" in payload and _has_lone_surrogate(obj):  # (no \ at all)
            return self._dead(device_id, topic, "a lone surrogate (\\udXXX escape)", payload)
        rid = obj.get("id") if isinstance(obj.get("id"), str) else None
        # A loss statement (issue 15) replaces a damaged record on either stream.
        schema = LOSS_KIND if stream != "status" and is_loss(obj) else SCHEMA_OF[stream]
        problem = schemas.first_error(schema, obj)
        if problem is None and stream != "status" and schemas.schema(schema) is None:
            problem = _chain_fields_problem(obj)
        if not problem and stream != "status" and obj["seq"] > MAX_SEQ:
            problem = f"seq above {MAX_SEQ} (no database column holds it)"
        # a received text without a backslash (certified canonical) holds each string as a
        # slice of it: printable as a whole, no text can hold what the pad refuses (one C pass
        # instead of walking the record's fields)
        if not problem and not (canonical and text.isprintable()):
            problem = _shown_text_problem(stream, obj)
        if problem:
            return self._dead(device_id, topic, problem, payload, rid)
        claimed = obj.get("device_id", device_id)
        if claimed != device_id:
            return self._dead(
                device_id, topic, f"device_id {claimed!r} is not the topic's device", payload, rid
            )
        keys, unsigned_before = self._device_keys(device_id)
        if not keys:
            return self._dead(device_id, topic, "device not registered", payload, rid)
        if stream == "status":
            return (device_id, text)
        # over the bytes received when they are canonical (a pad's always are), else over the
        # content encoded again (the definition): the same verdict, without the encoding
        sealed = sealed_hash(payload, obj) if canonical else None
        if (sealed or record_hash(obj)) != obj["hash"]:
            return self._dead(device_id, topic, "content does not match its hash", payload, rid)
        if is_loss(obj) and "sig" not in obj:  # the schema requires it; never accepted unsigned
            return self._dead(device_id, topic, "unsigned loss statement", payload, rid)
        if "sig" in obj or "key_id" in obj:
            key = keys.get(str(obj.get("key_id")))
            if key is None:
                return self._dead(
                    device_id,
                    topic,
                    f"key_id {obj.get('key_id')!r} is not registered for the device",
                    payload,
                    rid,
                )
            signature = signature_of(obj)
            if signature is None or not key.check(str(obj["hash"]).encode("ascii"), signature):
                return self._dead(device_id, topic, "signature does not verify", payload, rid)
        elif not int(obj["seq"]) < unsigned_before:
            return self._dead(
                device_id,
                topic,
                f"unsigned record (seq {obj['seq']}); the device's records"
                f" must be signed from seq {unsigned_before}",
                payload,
                rid,
            )
        return _Valid(device_id, stream, topic, obj, text, payload)

    def _device_keys(self, device_id: str) -> tuple[dict[str, PublicKey], int]:
        now = self._clock()
        cached = self._keys.get(device_id)
        if cached is not None and now - cached[0] < KEYS_TTL:
            return cached[1], cached[2]
        keys, before = self.db.keys(device_id)
        self._keys[device_id] = (now, keys, before)
        return keys, before

    # -- the chains, in one transaction per batch --------------------------------------------

    def _store_groups(self, groups: dict[Chain, list[_Valid]], result: Result) -> None:
        """Every (device, stream, epoch) of the batch in ONE transaction holding all their head rows
        (locked in one sorted order, see :meth:`HubDB.lock_heads`): a few statements per batch
        (heads, the ids already stored, the parked rows, then the writes as ``executemany``),
        whatever its size.  The decisions are taken record by record in ``seq`` order against
        what is stored plus what this batch stores, exactly as if each were written at once.
        Any database error rolls the whole batch back: nothing stored, nothing acked."""
        db = self.db
        at = now_text()
        batch = _Batch()
        try:
            with db.transaction():
                heads = db.lock_heads(list(groups))
                batch.known = self._known_ids([v for items in groups.values() for v in items])
                batch.parking = self._parking_of(sorted({d for d, _, _ in groups}))
                for chain, items in sorted(groups.items()):
                    items.sort(key=lambda v: int(v.record["seq"]))
                    tip, tip_hash = heads[chain]
                    new_tip = self._decide(chain, items, tip, tip_hash, at, batch)
                    self._note_gap(chain, new_tip[0], batch)
                    if new_tip != (tip, tip_hash):
                        batch.heads.append((*new_tip, *chain))
                        if tip == 0:
                            batch.opened.append(chain)
                db.executemany(
                    "INSERT INTO hub_records (id, device_id, stream, epoch, seq, hash, prev_hash,"
                    " record, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch.inserts,
                )
                held = self._truthful(batch)
                db.index_reports(batch.reports)
                db.executemany(
                    "DELETE FROM hub_parked WHERE device_id = ? AND stream = ? AND epoch = ?"
                    " AND seq = ?",
                    batch.unparked,
                )
                db._insert_parked(batch.parks)
                self._write_parking(batch)
                db.executemany(
                    "UPDATE hub_heads SET last_seq = ?, last_hash = ? WHERE device_id = ?"
                    " AND stream = ? AND epoch = ?",
                    batch.heads,
                )
                for device_id, kind, key, detail in batch.flags:
                    db.flag(device_id, kind, key, detail)
                self._flag_restarts(batch, heads)
        except Exception:
            count = sum(len(items) for items in groups.values())
            log.exception(
                "storing %d message(s) of %d device(s) failed; not acked (the pads resend)",
                count,
                len({d for d, _, _ in groups}),
            )
            result.failed += count
            return
        for device_id, rid in dict.fromkeys(batch.acks):  # a storm of copies: acked once
            result.ack(device_id, rid)
        self._ask_missing(batch, result)
        witness.after_batch(db, batch.ratings)  # the witnessed heads at what was stored
        result.stored += len(batch.inserts)
        result.duplicates += batch.duplicates
        result.parked += len(batch.parks) + batch.still_parked
        result.held += len(held)
        result.dead.extend(batch.dead)
        _log_held(held)
        for device_id, _kind, key, detail in batch.flags:
            log.warning(
                "device %s lost %s seq %s on its SD card (%s): its signed loss statement is "
                "stored in its place; flagged records_lost %s",
                device_id, detail["stream"], detail["seq"], detail["problem"], key,
            )  # fmt: skip

    def _truthful(self, batch: _Batch) -> list[truth.Held]:
        """Inside the batch's transaction, once its records are inserted: each one checked, in
        chain order, for what its device cannot truthfully say (:mod:`sync.hub.truth`: a clerk
        of another window, a case slot rated first elsewhere, a time out of step); those stay
        stored and acked (the chain goes on) but are held out of every figure.  The new
        holds."""
        checker = truth.Checker(self.db)
        checker.prepare(batch.records)
        for stream, record in batch.records:
            if stream == "ratings":
                checker.rating(record)
            else:
                checker.event(record)
        checker.flush()
        return truth.write(self.db, checker.verdicts)

    def _known_ids(self, items: list[_Valid]) -> dict[str, tuple[str, str]]:
        """The batch's ids already stored: id → (device, stream)."""
        return self._stored_ids([str(v.record["id"]) for v in items])

    def _stored_ids(self, wanted: list[str]) -> dict[str, tuple[str, str]]:
        """Which of ``wanted`` are stored: id → (device, stream)."""
        db, ids = self.db, sorted(set(wanted))
        known: dict[str, tuple[str, str]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            for rid, device_id, stream in db.execute(
                f"SELECT id, device_id, stream FROM hub_records WHERE {db.any_of('id', part)}",
                db.any_params(part),
            ).fetchall():
                known[str(rid)] = (str(device_id), str(stream))
        return known

    # -- parking: bounded per device, read one seq at a time -------------------------------

    def _parking_of(self, devices: list[str]) -> dict[str, list[int]]:
        """What each of ``devices`` has parked: [records, bytes] (one statement per batch; a
        device with nothing parked costs no other read of the parked table)."""
        db = self.db
        found = {d: [0, 0] for d in devices}
        for device_id, records, size in db.execute(
            "SELECT device_id, records, bytes FROM hub_parking WHERE"
            f" {db.any_of('device_id', devices)}",
            db.any_params(devices),
        ).fetchall():
            found[str(device_id)] = [int(records), int(size)]
        return found

    def _parked_rows(self, chain: Chain, seq: int) -> list[tuple[str, str, str]]:
        """The candidates parked for ``seq`` of ``chain``: [(id, hash, record)], the first
        received first (an indexed lookup of that one seq, whatever else the device parked)."""
        return [
            (str(rid), str(digest), str(text))
            for rid, digest, text in self.db.rows(
                "SELECT id, hash, record FROM hub_parked WHERE device_id = ? AND stream = ?"
                " AND epoch = ? AND seq = ? ORDER BY received_at, hash",
                (*chain, seq),
            )
        ]

    def _parked_at(self, chain: Chain, seq: int, batch: _Batch) -> list[tuple[str, str, str]]:
        """:meth:`_parked_rows`, read once per batch, and none read for a device that has
        nothing parked."""
        key = (*chain, seq)
        found = batch.parked.get(key)
        if found is None:
            stored = batch.parking.get(chain[0], [0, 0])[0] - batch.parking_delta.get(
                chain[0], [0, 0]
            )[0]
            found = self._parked_rows(chain, seq) if stored > 0 else []
            batch.parked[key] = found
        return found

    def _park(self, chain: Chain, item: _Valid, at: str, batch: _Batch) -> None:
        """Park ``item`` ahead of its predecessor: kept beside any other candidate for its seq
        (the chain decides when the predecessor arrives), once; refused as a dead letter when
        its device has :attr:`park_records` records or :attr:`park_bytes` bytes parked."""
        device_id, stream, epoch = chain
        rec = item.record
        seq, digest, rid = int(rec["seq"]), str(rec["hash"]), str(rec["id"])
        waiting = self._parked_at(chain, seq, batch)
        if any(h == digest for _, h, _ in waiting) or (*chain, seq, digest) in batch.park_keys:
            batch.still_parked += 1  # sent again while it waits: nothing to write
            batch.gaps[chain] = min(batch.gaps.get(chain, seq), seq)
            return
        use = batch.parking.setdefault(device_id, [0, 0])
        size = len(item.payload)
        if use[0] + 1 > self.park_records or use[1] + size > self.park_bytes:
            why = (f"parking full: the device may park {self.park_records} records or"
                   f" {self.park_bytes} bytes ahead of its chain")  # fmt: skip
            batch.dead.append(self._dead(device_id, item.topic, why, item.payload, rid))
            batch.full.add(device_id)
            return
        self._count_parking(device_id, 1, size, batch)
        batch.parks.append((device_id, stream, epoch, seq, digest, rid, item.text, at))
        batch.park_keys.add((*chain, seq, digest))
        batch.gaps[chain] = min(batch.gaps.get(chain, seq), seq)

    def _count_parking(self, device_id: str, records: int, size: int, batch: _Batch) -> None:
        for counts in (batch.parking.setdefault(device_id, [0, 0]),
                       batch.parking_delta.setdefault(device_id, [0, 0])):  # fmt: skip
            counts[0] += records
            counts[1] += size

    def _write_parking(self, batch: _Batch) -> None:
        """Inside the batch's transaction: each device's parking counted, and a device refused
        for the cap flagged ``parking_full`` (once)."""
        self.db.executemany(
            "INSERT INTO hub_parking (device_id, records, bytes) VALUES (?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET records = hub_parking.records"
            " + excluded.records, bytes = hub_parking.bytes + excluded.bytes",
            [(d, n, b) for d, (n, b) in sorted(batch.parking_delta.items()) if n or b],
        )
        for device_id in sorted(batch.full):
            records, size = batch.parking[device_id]
            detail = {"records": records, "bytes": size, "max_records": self.park_records,
                      "max_bytes": self.park_bytes}  # fmt: skip
            if self.db.flag(device_id, "parking_full", "", detail):
                log.warning(
                    "device %s has %d records (%d bytes) parked ahead of its chain: more are"
                    " refused (dead letter 'parking full'); flagged parking_full",
                    device_id, records, size,
                )  # fmt: skip

    def _decide(
        self,
        chain: Chain,
        items: list[_Valid],
        tip: int,
        tip_hash: str,
        at: str,
        batch: _Batch,
    ) -> tuple[int, str]:
        """Each record of one chain (device, stream, epoch), in ``seq`` order: stored,
        duplicate, parked or dead (written into ``batch``); returns the chain's new tip.  A new
        epoch's chain starts at its seq 1 (prev_hash GENESIS) like any chain."""
        device_id, stream, _ = chain
        for item in items:
            rec = item.record
            rid, seq = str(rec["id"]), int(rec["seq"])
            known = batch.known.get(rid)
            if known is not None:
                if known == (device_id, stream):
                    batch.duplicates += 1
                    batch.acks.append((device_id, rid))
                else:
                    batch.dead.append(
                        self._dead(
                            device_id,
                            item.topic,
                            "id already stored for another device or stream",
                            item.payload,
                            rid,
                        )
                    )
                continue
            if seq == tip + 1:
                if rec["prev_hash"] != tip_hash:
                    batch.dead.append(
                        self._dead(
                            device_id,
                            item.topic,
                            f"prev_hash does not match the hash of seq {tip} (chain broken)",
                            item.payload,
                            rid,
                        )
                    )
                    continue
                batch.store(device_id, stream, rec, item.text, at)
                tip, tip_hash = seq, _chain_hash(rec)
                tip, tip_hash = self._promote(chain, tip, tip_hash, at, batch)
            elif seq > tip + 1 and self._lost_between(chain, tip, seq, batch):
                # what lies between was named lost by the pad's signed epoch event: the
                # intact record after it is delivered (its prev_hash names the lost one)
                batch.store(device_id, stream, rec, item.text, at)
                tip, tip_hash = seq, _chain_hash(rec)
                tip, tip_hash = self._promote(chain, tip, tip_hash, at, batch)
            elif seq > tip + 1:
                self._park(chain, item, at, batch)
            else:
                batch.dead.append(
                    self._dead(
                        device_id,
                        item.topic,
                        f"seq {seq} is already stored with another record"
                        f" (the chain's tip is seq {tip})",
                        item.payload,
                        rid,
                    )
                )
        return tip, tip_hash

    def _promote(
        self, chain: Chain, tip: int, tip_hash: str, at: str, batch: _Batch
    ) -> tuple[int, str]:
        """Parked records that chain on the new tip, stored in turn: of the candidates for
        each next seq, the one whose ``prev_hash`` links is stored, every other is a dead
        letter (a forgery parked first no longer hides the genuine record)."""
        device_id, stream, epoch = chain
        while True:
            nxt = tip + 1
            if not self._parked_at(chain, nxt, batch) and batch.parking[device_id][0] > 0:
                lost = self._lost(chain, batch)
                while nxt in lost and not self._parked_at(chain, nxt, batch):
                    nxt += 1  # named lost by the pad's epoch event: the next intact one follows
            rows = self._parked_at(chain, nxt, batch)
            if not rows:
                return tip, tip_hash
            batch.parked[(*chain, nxt)] = []
            batch.unparked.append((device_id, stream, epoch, nxt))
            self._count_parking(device_id, -len(rows),
                                -sum(len(t.encode()) for _, _, t in rows), batch)  # fmt: skip
            chosen = self._choose(chain, rows, nxt, tip, tip_hash if nxt == tip + 1 else None,
                                  batch)  # fmt: skip
            if chosen is None:
                return tip, tip_hash
            rec, text = chosen
            batch.store(device_id, stream, rec, text, at)
            tip, tip_hash = nxt, _chain_hash(rec)

    def _choose(
        self,
        chain: Chain,
        rows: list[tuple[str, str, str]],
        seq: int,
        tip: int,
        link: str | None,
        batch: _Batch,
    ) -> tuple[dict[str, Any], str] | None:
        """Of the candidates parked for ``seq``, the record to store: the first received whose
        ``prev_hash`` is ``link`` (any, after seqs named lost: ``link`` None) and whose id is
        not stored yet; every other candidate becomes a dead letter saying why."""
        device_id, stream, _ = chain
        stored = self._stored_ids([rid for rid, _, _ in rows if rid not in batch.known])
        chosen: tuple[dict[str, Any], str] | None = None
        refused: list[tuple[str, str, str]] = []
        for rid, _digest, text in rows:
            rec = json.loads(text)
            if rid in batch.known or rid in stored:
                why = "id already stored (a parked record reusing it at another seq)"
            elif link is not None and rec.get("prev_hash") != link:
                why = f"prev_hash does not match the hash of seq {tip} (chain broken)"
            elif chosen is not None:
                why = (f"another record for seq {seq} that chains on seq {tip} was stored first"
                       " (two records signed for one seq)")  # fmt: skip
            else:
                chosen = (rec, text)
                continue
            refused.append((rid, text, why))
        topic = f"{self.prefix}/{device_id}/{stream}"
        for rid, text, why in refused:
            if chosen is not None and "chain broken" in why:
                why += f": another record for seq {seq} chains on and was stored"
            batch.dead.append(self._dead(device_id, topic, why, text.encode(), rid))
        return chosen

    def _note_gap(self, chain: Chain, tip: int, batch: _Batch) -> None:
        """After ``chain``'s records were decided: the lowest seq parked beyond its tip (this
        batch's or an earlier one's), kept in ``batch.gaps`` when this batch parked one."""
        if chain not in batch.gaps:
            return
        beyond = [p[3] for p in batch.parks if tuple(p[:3]) == chain and p[3] > tip + 1]
        if batch.parking.get(chain[0], [0, 0])[0] > len(beyond):
            row = self.db.rows(
                "SELECT min(seq) FROM hub_parked WHERE device_id = ? AND stream = ?"
                " AND epoch = ? AND seq > ?",
                (*chain, tip + 1),
            )
            if row and row[0][0] is not None:
                beyond.append(int(row[0][0]))
        if beyond:
            batch.gaps[chain] = min(beyond) - (tip + 1)
            batch.gap_tips[chain] = tip
        else:
            del batch.gaps[chain]

    def _ask_missing(self, batch: _Batch, result: Result) -> None:
        """Name in the ack what each parked chain needs next (the seqs between its tip and
        the lowest record parked), at most :data:`MISSING_MAX` per chain and once per
        :data:`MISSING_EVERY` seconds per chain; a chain parked on a missing seq for longer
        than :data:`GAP_FLAG_AFTER` seconds is flagged ``chain_gap`` for audit."""
        now = self._clock()
        for memory in (self._gap_since, self._asked):  # bounded: a stolen key can open
            while len(memory) > DEAD_MEMORY:  # chains (epochs) without end; the oldest go
                memory.pop(next(iter(memory)))
        if len(self._gap_flagged) > DEAD_MEMORY:
            self._gap_flagged.clear()  # hub_flags keeps each (device, kind, key) once anyway
        for chain, count in sorted(batch.gaps.items()):
            device_id, stream, epoch = chain
            tip = batch.gap_tips[chain]
            since = self._gap_since.get(chain)
            if since is None or since[0] != tip:
                self._gap_since[chain] = since = (tip, now)
            asked = self._asked.get(chain)
            if asked is None or asked[0] != tip or now - asked[1] >= MISSING_EVERY:
                self._asked[chain] = (tip, now)
                result.missing.setdefault(device_id, []).extend(
                    {"stream": stream, "epoch": epoch, "seq": q}
                    for q in range(tip + 1, tip + 1 + min(count, MISSING_MAX))
                )
                log.info(
                    "device %s: %s epoch %r parks records after seq %d; asked for seq %d",
                    device_id, stream, epoch, tip, tip + 1,
                )  # fmt: skip
            if now - since[1] >= GAP_FLAG_AFTER and (chain, tip) not in self._gap_flagged:
                self._gap_flagged.add((chain, tip))
                detail = {"stream": stream, "epoch": epoch, "seq": tip + 1,
                          "parked_for_s": round(now - since[1])}  # fmt: skip
                try:
                    self.db.flag(device_id, "chain_gap", f"{stream}:{epoch}:{tip + 1}", detail)
                except Exception:
                    log.exception("flagging chain_gap of device %s failed", device_id)
                log.warning(
                    "device %s: %s epoch %r has parked records after seq %d for %d s; the pad"
                    " sends neither seq %d nor its loss statement; flagged chain_gap",
                    device_id, stream, epoch, tip, now - since[1], tip + 1,
                )  # fmt: skip

    def _lost(self, chain: Chain, batch: _Batch) -> set[int]:
        """The seqs of ``chain`` that a later epoch's signed ``epoch`` event of the device
        names as lost (unacked and unreadable in the kept-aside store), stored or in this
        batch; read once per chain and batch."""
        found = batch.lost.get(chain)
        if found is None:
            device_id, stream, epoch = chain
            found = set()
            for record in _epoch_events(self.db, device_id) + [
                e for e in batch.epoch_events if e["device_id"] == device_id
            ]:
                previous = record.get("previous")
                if isinstance(previous, dict) and previous.get("epoch", "") == epoch:
                    part = previous.get(stream) or {}
                    found.update(q for q in part.get("lost") or [] if isinstance(q, int))
            batch.lost[chain] = found
        return found

    def _lost_between(self, chain: Chain, tip: int, seq: int, batch: _Batch) -> bool:
        """Every seq after ``tip`` and before ``seq`` is named lost (see :meth:`_lost`)."""
        lost = self._lost(chain, batch)
        return bool(lost) and all(q in lost for q in range(tip + 1, seq))

    def _flag_restarts(self, batch: _Batch, before: dict[Chain, tuple[int, str]]) -> None:
        """Inside the batch's transaction: ``chain_restarted`` (key: the new epoch) for each
        new epoch of a device that already has records in another epoch, or whose epoch event
        names a store it follows (issue 15 B), with what the pad's ``epoch`` event names and
        what the hub held before this batch (``before``: the tips of the batch's chains when
        it began); a flag raised on a new epoch's first rating is completed when its epoch
        event arrives."""
        events = {(str(e["device_id"]), epoch_of(e)): e for e in batch.epoch_events}
        todo = {(d, e) for d, _, e in batch.opened} | set(events)
        for device_id, epoch in sorted(todo):
            held = {
                (stream, e): before.get((device_id, stream, e), tip)
                for (stream, e), tip in self.db.heads(device_id).items()
                if e != epoch
            }
            held = {k: v for k, v in held.items() if v[0] > 0}
            event = events.get((device_id, epoch))
            named = event is not None and isinstance(event.get("previous"), dict)
            if not held and not named:
                continue  # the device's first epoch: nothing restarted
            if epoch in _previous_epochs(self.db, device_id, batch.epoch_events):
                continue  # an older epoch whose carried records open its chain late
            if event is None:
                event = _stored_epoch_event(self.db, device_id, epoch)
                if event is None and epoch < max(e for _, e in held):
                    continue  # older by its id, and no epoch event says otherwise
            detail = restart_detail(epoch, event, held)
            if self.db.flag(device_id, "chain_restarted", epoch, detail):
                pass
            elif (device_id, epoch) in events:  # flagged on a rating: now with the event
                self.db.amend_flag(device_id, "chain_restarted", epoch, detail)
            else:
                continue
            log.warning(
                "device %s started a new store (epoch %s): flagged chain_restarted; %s",
                device_id,
                epoch,
                detail["summary"],
            )

    def _store_statuses(self, statuses: list[tuple[str, str]], result: Result) -> None:
        at = now_text()
        latest = dict(statuses)  # the last of each device in this batch
        try:
            with self.db.transaction():
                for device_id, text in latest.items():
                    if not text:
                        continue
                    self.db.execute(
                        "INSERT INTO hub_status (device_id, payload, received_at) VALUES (?, ?, ?)"
                        " ON CONFLICT (device_id) DO UPDATE SET payload = excluded.payload,"
                        " received_at = excluded.received_at",
                        (device_id, text, at),
                    )
        except Exception:
            log.exception("storing %d status message(s) failed", len(latest))
            result.failed += len(statuses)
            return
        result.statuses += len(statuses)
        for device_id, text in latest.items():
            if text:
                try:
                    witness.check_status(self.db, device_id, json.loads(text), at)
                except Exception:
                    log.exception("comparing the status head of %s with its witnesses failed",
                                  device_id)  # fmt: skip

    # -- dead letters ----------------------------------------------------------------------

    def _dead(
        self, device_id: str, topic: str, reason: str, payload: bytes, rid: str | None = None
    ) -> Dead:
        if rid:  # a pad resending what was refused: once per (device, id, why)
            key = f"{device_id}\0{rid}\0{reason}"
        else:
            key = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()
        if len(payload) > MAX_PAYLOAD:
            whole = (len(payload), hashlib.sha256(payload).hexdigest())
            return Dead(device_id, topic, reason, payload[:MAX_PAYLOAD], key, now_text(), *whole)
        return Dead(device_id, topic, reason, payload, key, now_text())

    def _file_dead(self, result: Result) -> None:
        """Count the batch's dead letters per (device, cause) and store them, except repeats
        and beyond :data:`DEAD_ROWS` rows per (device, cause); ``result.dead`` keeps only the
        new ones (to publish)."""
        if not result.dead:
            return
        now = self._clock()
        fresh: list[Dead] = []
        for dead in result.dead:
            seen = self._dead_seen.get(dead.key)
            if seen is not None and now - seen < self.dead_repeat_after:
                result.repeats += 1
                continue
            self._dead_seen[dead.key] = now
            self._dead_seen.move_to_end(dead.key)
            fresh.append(dead)
        while len(self._dead_seen) > DEAD_MEMORY:
            self._dead_seen.popitem(last=False)
        every, result.dead = result.dead, fresh
        kept: list[Dead] = list(fresh)
        try:
            with self.db.transaction(durable=False):  # nothing is acked on it
                kept = self._count_dead(every, fresh)
        except Exception:
            log.exception("storing %d dead letter(s) failed", len(fresh))
            for dead in fresh:  # not filed: the next copy is filed, not taken for a repeat
                self._dead_seen.pop(dead.key, None)
        for dead in kept:
            log.warning(
                "dead letter from %s on %s: %s", dead.device_id or "?", dead.topic, dead.reason
            )
        logged = {id(d) for d in kept}
        self._log_counted([d for d in fresh if id(d) not in logged], now)

    def _log_counted(self, counted: list[Dead], now: float) -> None:
        """Dead letters beyond :data:`DEAD_ROWS` of their (device, cause): one WARNING per
        device a minute saying how many were counted, not one a message (a flood of junk would
        fill the journal instead of the database)."""
        by_device: dict[str, int] = {}
        for dead in counted:
            by_device[dead.device_id] = by_device.get(dead.device_id, 0) + 1
        for device_id, n in by_device.items():
            told, since = self._counted_told.get(device_id, (-60.0, 0))
            since += n
            if now - told >= 60.0:
                log.warning(
                    "%d more dead letter(s) from %s counted, not filed one by one (over %d of"
                    " one cause): evaluator hub dead --device %s", since, device_id or "?",
                    DEAD_ROWS, device_id,
                )  # fmt: skip
                told, since = now, 0
            self._counted_told[device_id] = (told, since)
        while len(self._counted_told) > DEAD_MEMORY:
            self._counted_told.pop(next(iter(self._counted_told)))

    def _count_dead(self, every: list[Dead], fresh: list[Dead]) -> list[Dead]:
        """Inside a transaction: ``every`` dead letter (repeats too) counted per (device,
        cause), the ``fresh`` ones stored as rows while their (device, cause) has fewer than
        :data:`DEAD_ROWS`; returns those stored."""
        db = self.db
        keys = {id(d): self._cause_key(d) for d in every}
        counts: dict[tuple[str, str], list[Any]] = {}  # key → [count, new rows, first, last]
        kept: list[Dead] = []
        for dead in every:
            entry = counts.setdefault(keys[id(dead)], [0, [], dead, dead])
            entry[0] += 1
            entry[3] = dead
        for dead in fresh:
            counts[keys[id(dead)]][1].append(dead)
        for (device_id, cause), (count, rows, first, last) in sorted(
            counts.items(), key=lambda kv: kv[0]
        ):
            found = db.rows(
                "SELECT stored FROM hub_dead_counts WHERE device_id = ? AND cause = ?",
                (device_id, cause),
            )
            stored = int(found[0][0]) if found else 0
            rows = rows[: max(0, DEAD_ROWS - stored)]
            kept.extend(rows)
            db.executemany(
                "INSERT INTO hub_dead (device_id, topic, reason, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(d.device_id, d.topic[:256], d.reason[:300], _kept(d, DEAD_ROW_BYTES), d.at)
                 for d in rows],
            )  # fmt: skip
            sample = _kept(last, DEAD_SAMPLE_BYTES)
            digest = last.whole()[1]
            db.execute(
                "INSERT INTO hub_dead_counts (device_id, cause, count, stored, first_at,"
                " last_at, last_sha256, sample) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (device_id, cause) DO UPDATE SET"
                " count = hub_dead_counts.count + excluded.count,"
                " stored = hub_dead_counts.stored + excluded.stored,"
                " last_at = excluded.last_at, last_sha256 = excluded.last_sha256,"
                " sample = excluded.sample",
                (device_id, cause, count, len(rows), first.at or now_text(),
                 last.at or now_text(), digest, sample),
            )  # fmt: skip
        return kept

    def _cause_key(self, dead: Dead) -> tuple[str, str]:
        """(device, cause) under which ``dead`` is counted: a device with
        :data:`DEAD_CAUSES` causes counted already has its new ones counted as ``other``."""
        device_id, cause = dead.device_id[:64], cause_of(dead.reason)
        if device_id not in self._causes and len(self._causes) >= DEAD_MEMORY:
            self._causes.clear()  # read again from the table when needed: memory stays bounded
        known = self._causes.setdefault(device_id, set())
        if cause in known:
            return device_id, cause
        if len(known) >= DEAD_CAUSES:
            return device_id, "other"
        rows = self.db.rows(
            "SELECT cause FROM hub_dead_counts WHERE device_id = ?", (device_id,)
        )
        known.update(str(r[0]) for r in rows)
        if cause in known or len(known) < DEAD_CAUSES:
            known.add(cause)
            return device_id, cause
        return device_id, "other"


def cause_of(reason: str) -> str:
    """The kind of refusal, without the sender's words: the reason up to its first ``:``, quoted
    values and numbers replaced (``device_id '…' is not the topic's device``, ``N bytes, more
    than N``, ``schema rating``, ``not JSON``)."""
    head = reason.split(":", 1)[0]
    head = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", head)
    head = re.sub(r"(?<![\w-])\d+", "N", head)  # not UTF-8's 8
    return head[:80]


def _kept(dead: Dead, most: int) -> str:
    """What is kept of ``dead``'s payload: its text (``base64:`` when not text) cut to
    ``most`` bytes, and when cut, its length and SHA-256 (the whole is never stored)."""
    cut = Dead(dead.device_id, dead.topic, dead.reason, dead.payload[:most], dead.key)
    text, encoding = cut.payload_text()
    text = text if encoding == "utf-8" else "base64:" + text
    size, digest = dead.whole()
    if size > most:
        text += f"…[{size} bytes, sha256 {digest}]"
    return text


def _log_held(held: list[truth.Held]) -> None:
    """A WARNING per device and kind of what a batch held (one line, however many)."""
    counts: dict[tuple[str, str], int] = {}
    for h in held:
        counts[(h.device_id, h.kind)] = counts.get((h.device_id, h.kind), 0) + 1
    for (device_id, kind), n in sorted(counts.items()):
        log.warning(
            "device %s: %d record(s) held out of the figures (%s): stored and acked, listed"
            " by `evaluator hub conflicts`", device_id, n, kind,
        )  # fmt: skip


def _chain_hash(rec: dict[str, Any]) -> str:
    """The hash the next record of the chain names as ``prev_hash``: a loss statement's
    ``lost_hash`` (the lost record's place), any other record's own ``hash``."""
    return str(rec["lost_hash"] if is_loss(rec) else rec["hash"])


def _stored_epoch_event(db: HubDB, device_id: str, epoch: str) -> dict[str, Any] | None:
    """The ``epoch`` event of (device, epoch) when the hub stored it (its events' seq 1)."""
    rows = db.rows(
        "SELECT record FROM hub_records WHERE device_id = ? AND stream = 'events' AND epoch = ?"
        " AND seq = 1",
        (device_id, epoch),
    )
    if not rows:
        return None
    record = json.loads(rows[0][0])
    return record if record.get("kind") == "epoch" else None


def _epoch_events(db: HubDB, device_id: str) -> list[dict[str, Any]]:
    """Every stored ``epoch`` event of ``device_id`` (each epoch's events seq 1)."""
    records = [
        json.loads(str(r[0]))
        for r in db.rows(
            "SELECT record FROM hub_records WHERE device_id = ? AND stream = 'events'"
            " AND seq = 1 AND epoch != ''",
            (device_id,),
        )
    ]
    return [r for r in records if r.get("kind") == "epoch"]


def _previous_epochs(db: HubDB, device_id: str, fresh: list[dict[str, Any]]) -> set[str]:
    """The epochs that an epoch event of ``device_id`` (stored, or in this batch) names as the
    store it follows: older epochs, never a restart of their own now."""
    records = _epoch_events(db, device_id) + [e for e in fresh if e["device_id"] == device_id]
    return {
        str(r["previous"].get("epoch", ""))
        for r in records
        if r.get("kind") == "epoch" and isinstance(r.get("previous"), dict)
    }


def _ranges(seqs: list[int]) -> list[list[int]]:
    """``[1, 2, 3, 7]`` → ``[[1, 3], [7, 7]]``: long runs of seqs said briefly."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def restart_detail(
    epoch: str, event: dict[str, Any] | None, held: dict[tuple[str, str], tuple[int, str]]
) -> dict[str, Any]:
    """The ``chain_restarted`` finding: what the epoch event names (``previous``; ``None``
    when the pad found no earlier store, ``"not received yet"`` before the event arrives),
    what the hub holds (every other epoch's tip per stream), and per stream of the previous
    epoch the seqs the pad's old store had after the hub's tip (``missing``: the intact ones
    among them are carried over and arrive on their own) and those it could not read
    (``lost``)."""
    hub = {
        f"{stream}:{e}": {"stream": stream, "epoch": e, "seq": seq, "hash": h}
        for (stream, e), (seq, h) in sorted(held.items())
    }
    detail: dict[str, Any] = {"epoch": epoch, "hub": hub}
    if event is None:
        detail["previous"] = "not received yet"
        detail["summary"] = "the epoch event is not received yet"
        return detail
    previous = event.get("previous")
    detail["previous"] = previous
    detail["epoch_event"] = event.get("id")
    if not isinstance(previous, dict):
        detail["summary"] = "the pad found no earlier store (its file lost or deleted)"
        return detail
    old = str(previous.get("epoch", ""))
    missing: dict[str, list[list[int]]] = {}
    lost: dict[str, list[int]] = {}
    for stream in ("ratings", "events"):
        part = previous.get(stream) or {}
        tip = held.get((stream, old), (0, ""))[0]
        last = part.get("last_seq")
        if isinstance(last, int) and last > tip:
            missing[stream] = [[tip + 1, last]]
        elif not isinstance(last, int):  # the old store's end could not be read: open-ended
            missing[stream] = [[tip + 1, None]]
        # the seqs the pad could not read that the hub does not hold either
        lost[stream] = [int(q) for q in part.get("lost") or [] if isinstance(q, int) and q > tip]
    detail.update(previous_epoch=old, missing=missing, lost=lost)
    detail["summary"] = (
        f"previous epoch {old or '(none)'}: missing at the hub "
        + (
            ", ".join(f"{s} {r[0][0]}-{r[0][1] or '(end unknown)'}" for s, r in missing.items())
            or "nothing"
        )
        + "; lost "
        + (", ".join(f"{s} {_ranges(q)}" for s, q in lost.items() if q) or "none")
    )
    return detail


def _has_lone_surrogate(obj: Any) -> bool:
    """``obj`` (parsed JSON) holds a string, key or value, that is not encodable text."""
    try:
        json.dumps(obj, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _shown_text_problem(stream: str, obj: dict[str, Any]) -> str | None:
    """A record's name, matter, comment… with a character the pad's own checks refuse (a tab,
    a newline, a bidi override): no honest pad sealed it (evaluator.rules.recordtext)."""
    return None if stream == "status" else shown_text_problem(obj)


def _chain_fields_problem(obj: dict[str, Any]) -> str | None:
    """For a stream without a published schema: the fields the chain itself needs."""
    for name, kind in _CHAIN_FIELDS.items():
        value = obj.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name} missing or not {kind.__name__}"
    if obj["seq"] < 1:
        return "seq must be 1 or more"
    return None


__all__ = ["STREAMS", "Dead", "Ingest", "Result", "cause_of"]
