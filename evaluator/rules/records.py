"""Tamper-evident rating records: canonical form, hash chain and time-ordered ids.

A stored rating is a flat JSON object (the same object that is published to the city).  Its
``hash`` is the SHA-256 of the canonical JSON of every other field, ``prev_hash`` included, so
each record seals the one before it (art. 35, 37, 40: ratings are never edited on the device).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: ``prev_hash`` of the first record on a device.
GENESIS_HASH = "0" * 64

#: Fields every published rating carries (the MQTT API promises at least these).
RATING_FIELDS: tuple[str, ...] = (
    "id",
    "seq",
    "device_id",
    "presentation_id",
    "level",
    "score",
    "satisfaction",
    "gbt_code",
    "channel",
    "cases",
    "clerk",
    "agencies",
    "agencies_concerned",
    "targets",
    "theme",
    "reasons",
    "comment",
    "stage",
    "visit",
    "assess_number",
    "follows",
    "area_code",
    "presented_at",
    "presented_clock_synced",
    "rated_at",
    "rated_clock_synced",
    "elapsed_ms",
    "prev_hash",
    "hash",
)


def canonical_json(obj: Any) -> bytes:
    """The one byte form that hashes are computed over (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over every field of ``record`` except ``hash`` itself."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def seal(content: Mapping[str, Any], *, prev_hash: str) -> dict[str, Any]:
    """A copy of ``content`` chained to ``prev_hash`` and carrying its own ``hash``."""
    record = dict(content)
    record.pop("hash", None)
    record["prev_hash"] = prev_hash
    record["hash"] = record_hash(record)
    return record


@dataclass(frozen=True)
class ChainBreak:
    """The first record whose chain does not hold, and why."""

    seq: int
    id: str
    reason: str

    def __str__(self) -> str:
        return f"record seq={self.seq} id={self.id}: {self.reason}"


def verify_chain(records: Iterable[Mapping[str, Any]]) -> ChainBreak | None:
    """Walk records in ``seq`` order; ``None`` when intact, else the first broken record.

    Checks that each hash matches the content, each ``prev_hash`` is the previous record's
    hash, and sequence numbers have no gaps (a deleted record breaks the chain too).
    """
    prev_hash = GENESIS_HASH
    expected_seq: int | None = None
    for record in records:
        seq, rid = int(record["seq"]), str(record["id"])
        if expected_seq is not None and seq != expected_seq:
            return ChainBreak(seq, rid, f"sequence gap: expected seq {expected_seq}")
        if record.get("prev_hash") != prev_hash:
            return ChainBreak(seq, rid, "prev_hash does not match the previous record's hash")
        if record_hash(record) != record.get("hash"):
            return ChainBreak(seq, rid, "content does not match its hash (record was altered)")
        prev_hash = str(record["hash"])
        expected_seq = seq + 1
    return None


_id_lock = threading.Lock()
_last_ms = 0


def new_record_id(now_ms: int | None = None) -> str:
    """A unique, time-ordered id in UUIDv7 layout (48-bit milliseconds, then random bits).

    Monotonic within the process even if the wall clock steps back: the millisecond field
    never decreases.  Order across reboots comes from ``seq``, not from this id.
    """
    global _last_ms
    with _id_lock:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        ms = max(ms, _last_ms)
        _last_ms = ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 68) & 0xFFF) << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
