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
  promotes it);
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
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from evaluator.rules.loss import LOSS_KIND, is_loss
from evaluator.rules.protocol import MAX_DEPTH, nesting_depth
from evaluator.rules.records import CanonicalReader, record_hash, sealed_hash, signature_of
from evaluator.rules.recordtext import shown_text_problem
from sync.hub import schemas, witness
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

#: The schema each stream's records are checked against (``docs/schemas/<name>.schema.json``).
SCHEMA_OF = {"ratings": "rating", "events": "event", "status": "status"}
#: The highest ``seq`` a chain can hold (the ``BIGINT`` column; Python ints have no bound).
MAX_SEQ = 2**63 - 1
#: What every chained record needs when its stream has no published schema yet.
_CHAIN_FIELDS = {"id": str, "seq": int, "device_id": str, "prev_hash": str, "hash": str}


@dataclass(frozen=True)
class Dead:
    """A refused message: what, from where, why (``payload`` as received, cut to 64 KiB)."""

    device_id: str
    topic: str
    reason: str
    payload: bytes
    key: str
    at: str = ""

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
    parked: dict[tuple[str, str, str, int], tuple[str, str]] = field(default_factory=dict)
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
    ratings: list[tuple[str, int, str]] = field(default_factory=list)
    """(device, seq, record text) of each ratings record stored: for the witness hook."""
    #: Chains that parked a record in this batch: chain → the lowest seq parked.
    gaps: dict[Chain, int] = field(default_factory=dict)
    #: The chain's tip when it parked (``gaps`` then holds how many seqs are missing).
    gap_tips: dict[Chain, int] = field(default_factory=dict)
    #: Findings for audit (``HubDB.flag`` arguments), written with the batch.
    flags: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

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
    ) -> None:
        self.db = db
        self.prefix = topic_prefix.rstrip("/")
        self._head = self.prefix + "/"
        self.dead_repeat_after = dead_repeat_after
        self._clock = clock
        self._keys: dict[str, tuple[float, dict[str, PublicKey], int]] = {}
        self._dead_seen: OrderedDict[str, float] = OrderedDict()
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
                batch.parked = self._parked_rows(list(groups))
                # a parked record whose id is stored already (at another seq) is never
                # promoted: its insert would roll the whole batch back, at every resend
                batch.known.update(self._stored_ids([rid for rid, _ in batch.parked.values()]))
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
                db.executemany(
                    "DELETE FROM hub_parked WHERE device_id = ? AND stream = ? AND epoch = ?"
                    " AND seq = ?",
                    batch.unparked,
                )
                db.executemany(
                    "INSERT INTO hub_parked (device_id, stream, epoch, seq, id, record,"
                    " received_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    batch.parks,
                )
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
        result.parked += len(batch.parks)
        result.dead.extend(batch.dead)
        for device_id, _kind, key, detail in batch.flags:
            log.warning(
                "device %s lost %s seq %s on its SD card (%s): its signed loss statement is "
                "stored in its place; flagged records_lost %s",
                device_id, detail["stream"], detail["seq"], detail["problem"], key,
            )  # fmt: skip

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

    def _parked_rows(self, chains: list[Chain]) -> dict[tuple[str, str, str, int], Any]:
        """The parked records of the batch's chains: (device, stream, epoch, seq) → (id,
        record)."""
        db = self.db
        devices = sorted({d for d, _, _ in chains})
        wanted = set(chains)
        return {
            (str(d), str(s), str(e), int(q)): (str(rid), str(text))
            for d, s, e, q, rid, text in db.execute(
                "SELECT device_id, stream, epoch, seq, id, record FROM hub_parked WHERE"
                f" {db.any_of('device_id', devices)}",
                db.any_params(devices),
            ).fetchall()
            if (d, s, e) in wanted
        }

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
        device_id, stream, epoch = chain
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
                batch.parks.append((device_id, stream, epoch, seq, rid, item.text, at))
                batch.gaps[chain] = min(batch.gaps.get(chain, seq), seq)
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
        """Parked records that chain on the new tip, stored in turn."""
        device_id, stream, epoch = chain
        while True:
            nxt = tip + 1
            if batch.parked and (device_id, stream, epoch, nxt) not in batch.parked:
                lost = self._lost(chain, batch)
                while nxt in lost and (device_id, stream, epoch, nxt) not in batch.parked:
                    nxt += 1  # named lost by the pad's epoch event: the next intact one follows
            row = batch.parked.pop((device_id, stream, epoch, nxt), None)
            if row is None:
                return tip, tip_hash
            batch.unparked.append((device_id, stream, epoch, nxt))
            rid, text = row
            rec = json.loads(text)
            why = (
                "id already stored (a parked record reusing it at another seq)"
                if rid in batch.known
                else f"prev_hash does not match the hash of seq {tip} (chain broken)"
                if nxt == tip + 1 and rec.get("prev_hash") != tip_hash
                else ""
            )
            if why:
                topic = f"{self.prefix}/{device_id}/{stream}"
                batch.dead.append(self._dead(device_id, topic, why, text.encode(), rid))
                return tip, tip_hash
            batch.store(device_id, stream, rec, text, at)
            tip, tip_hash = nxt, _chain_hash(rec)

    def _note_gap(self, chain: Chain, tip: int, batch: _Batch) -> None:
        """After ``chain``'s records were decided: the lowest seq parked beyond its tip (this
        batch's or an earlier one's), kept in ``batch.gaps`` when this batch parked one."""
        if chain not in batch.gaps:
            return
        beyond = [q for (d, s, e, q) in batch.parked if (d, s, e) == chain and q > tip + 1] + [
            p[3] for p in batch.parks if tuple(p[:3]) == chain and p[3] > tip + 1
        ]
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
        return Dead(device_id, topic, reason, payload[:MAX_PAYLOAD], key, now_text())

    def _file_dead(self, result: Result) -> None:
        """Store the batch's dead letters, except repeats; ``result.dead`` keeps only those
        stored (to publish)."""
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
        result.dead = fresh
        if not fresh:
            return
        try:
            with self.db.transaction():
                for dead in fresh:
                    text, encoding = dead.payload_text()
                    self.db.execute(
                        "INSERT INTO hub_dead (device_id, topic, reason, payload, received_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (
                            dead.device_id,
                            dead.topic,
                            dead.reason,
                            text if encoding == "utf-8" else "base64:" + text,
                            dead.at,
                        ),
                    )
        except Exception:
            log.exception("storing %d dead letter(s) failed", len(fresh))
            for dead in fresh:  # not filed: the next copy is filed, not taken for a repeat
                self._dead_seen.pop(dead.key, None)
        for dead in fresh:
            log.warning(
                "dead letter from %s on %s: %s", dead.device_id or "?", dead.topic, dead.reason
            )


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


__all__ = ["STREAMS", "Dead", "Ingest", "Result"]
