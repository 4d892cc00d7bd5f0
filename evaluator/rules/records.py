"""Tamper-evident rating records: canonical form, hash chain and time-ordered ids.

A stored rating is a flat JSON object (the same object that is published to the city).  Its
``hash`` is the SHA-256 of the canonical JSON of every other field, ``prev_hash`` included, so
each record seals the one before it (art. 35, 37, 40: ratings are never edited on the device).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

#: ``prev_hash`` of the first record on a device.
GENESIS_HASH = "0" * 64

#: Fields the store adds when it seals a rating: ``id`` (given by the session, or assigned),
#: ``seq`` and ``device_id`` before sealing, ``prev_hash`` and ``hash`` by :func:`seal`.
STORE_FIELDS: tuple[str, ...] = ("id", "seq", "device_id", "prev_hash", "hash")


def _plain(value: Any) -> Any:
    """``value`` as JSON containers: tuples become lists, mappings dicts (copies, all the way)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class RatingContent:
    """What a rating says, before the store seals it: the ONE definition of the record's shape.

    The session builds a rating only through this class; :data:`RATING_FIELDS` (what the MQTT
    API promises, and what ``docs/schemas/rating.schema.json`` requires) is derived from its
    fields plus :data:`STORE_FIELDS`.  Nested values (cases, clerk, theme, reasons) are already
    in their JSON form; sequences are kept as tuples so the content cannot change after it is
    built, and :meth:`to_json` turns them into lists.  The bytes of a record for the same inputs
    do not depend on this class (the hash is over :func:`canonical_json`, keys sorted).
    """

    presentation_id: str
    level: str
    score: int
    satisfaction: int
    gbt_code: int
    channel: int
    cases: tuple[Mapping[str, Any], ...]
    clerk: Mapping[str, Any] | None
    """``{id, name}`` of the rated clerk; ``None`` for a self-service terminal (no clerk)."""
    terminal: str | None
    """The 终端机编号 of a self-service terminal (art. 18/23); ``None`` for a window rating."""
    agencies: tuple[str, ...]
    agencies_concerned: tuple[str, ...]
    targets: tuple[str, ...]
    theme: Mapping[str, Any] | None
    reasons: tuple[Mapping[str, str], ...]
    comment: str
    stage: str
    visit: int
    assess_number: int
    follows: tuple[str, ...]
    area_code: str
    presented_at: str
    presented_clock_synced: bool
    rated_at: str
    rated_clock_synced: bool
    elapsed_ms: int

    def to_json(self) -> dict[str, Any]:
        """The content as a fresh JSON object, one key per field (no store fields)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


#: The content fields, in record order.
CONTENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RatingContent))

#: Fields every published rating carries (the MQTT API promises at least these).
RATING_FIELDS: tuple[str, ...] = (*STORE_FIELDS[:3], *CONTENT_FIELDS, *STORE_FIELDS[3:])


def canonical_json(obj: Any) -> bytes:
    """The one byte form that hashes are computed over (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over every field of ``record`` except ``hash`` and ``sig`` (the signature
    is over the hash, so it cannot be inside it)."""
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return hashlib.sha256(canonical_json(body)).hexdigest()


#: JSON without a backslash whose bytes outside strings hold nothing json.dumps never writes in
#: canonical form: no whitespace, and no ``-0`` (an int it spells ``0``; a float's ``-0.5`` is
#: caught by the float hook anyway): every ``-`` starts a number with 1-9.  One C pass over the
#: bytes (possessive, so a failing match never backtracks), ~2× faster than cutting out the
#: strings and searching the rest.
_CANONICAL_SPACING = re.compile(rb'(?:[^" \t\n\r-]++|"[^"]*+"|-[1-9])*+')


class CanonicalReader:
    """Parses received JSON and tells, without encoding it again, whether the bytes are exactly
    :func:`canonical_json` of what they parse to (issue 16: the receiver checks a record's hash
    over the bytes it received, which is only the record's hash when they are canonical).

    Certified canonical (``True``) only when: no backslash (so every string is raw and every
    ``"`` delimits one), no whitespace or ``-0`` between the strings, no float and no
    ``NaN``/``Infinity``, and every object's keys unique and sorted.  Those are all the ways a
    parseable spelling can differ from ``json.dumps(sort_keys=True, ensure_ascii=False,
    separators=(",", ":"))``; anything else answers ``False`` (then the caller hashes the
    re-encoded content, :func:`record_hash`, the definition).  One instance per thread.
    """

    def __init__(self) -> None:
        self._plain = True
        self._keys = 0
        self._decoder = json.JSONDecoder(
            object_hook=self._object, parse_float=self._float, parse_constant=self._float
        )

    def _object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Each object as parsed (a duplicate key already merged: they are counted apart)."""
        self._keys += len(obj)
        if self._plain and (keys := list(obj)) != sorted(keys):
            self._plain = False
        return obj

    def _float(self, text: str) -> float:
        self._plain = False
        return float(text)

    def read(self, text: str, payload: bytes) -> tuple[Any, bool]:
        """``(parsed, canonical)`` of ``text`` (``payload`` decoded); raises ``ValueError`` on
        bad JSON as :func:`json.loads` does."""
        self._plain, self._keys = b"\\" not in payload, 0
        obj = self._decoder.decode(text)
        # Unique keys: without a backslash every '"' delimits a string, so '":' is a key's end
        # or a string starting with ':'; as many as the parsed objects hold keys only when
        # neither a duplicate (merged) nor such a string is there (cheaper than a pairs hook).
        if self._plain and (payload.count(b'":') != self._keys or not _plainly_spaced(payload)):
            self._plain = False
        return obj, self._plain


def _plainly_spaced(payload: bytes) -> bool:
    """Valid JSON ``payload`` without a backslash has no whitespace and no ``-0`` outside its
    strings.  When no whitespace byte and no ``-0`` where a number starts (after ``:`` ``[``
    ``,``, or first) is anywhere (a few ``memchr``-fast scans: a pad's rating holds none),
    nothing else is needed; else the strings are told apart by :data:`_CANONICAL_SPACING`."""
    if (
        b" " in payload or b"\n" in payload or b"\r" in payload or b"\t" in payload
        or b":-0" in payload or b"[-0" in payload or b",-0" in payload
        or payload.startswith(b"-0")
    ):  # fmt: skip
        return _CANONICAL_SPACING.fullmatch(payload) is not None
    return True


def sealed_hash(payload: bytes, record: Mapping[str, Any]) -> str | None:
    """The SHA-256 (hex) of ``payload`` less its top-level ``hash`` and ``sig`` members: equal to
    :func:`record_hash` of ``record`` when ``payload`` is its canonical JSON (certified by
    :class:`CanonicalReader`) and each member follows another key (a chained record's
    ``device_id`` sorts before ``hash``, its ``seq`` before ``sig``); ``None`` when a member is
    not found exactly once that way (the caller then uses :func:`record_hash`)."""
    body = payload
    for name, head in _SEALED_MEMBERS:
        value = record.get(name, _ABSENT)
        if value is _ABSENT:
            continue
        if not isinstance(value, str):
            return None
        member = head + value.encode() + b'"'
        if body.count(member) != 1:
            return None
        body = body.replace(member, b"", 1)
    return hashlib.sha256(body).hexdigest()


#: The members :func:`sealed_hash` takes out, and how each starts in canonical bytes.
_SEALED_MEMBERS = (("hash", b',"hash":"'), ("sig", b',"sig":"'))
_ABSENT = object()


#: Fields a signed record adds: ``key_id`` (inside the hash: which device key signs) and ``sig``
#: (the Ed25519 signature of the ``hash`` text's ASCII bytes, base64url without padding).
SIGNATURE_FIELDS: tuple[str, ...] = ("key_id", "sig")


class Signer(Protocol):
    """What signs records: the device key (``sync.keys.DeviceKey``)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def seal(
    content: Mapping[str, Any], *, prev_hash: str, signer: Signer | None = None
) -> dict[str, Any]:
    """A copy of ``content`` chained to ``prev_hash`` and carrying its own ``hash``; with a
    ``signer``, also its ``key_id`` (sealed in the hash) and the ``sig`` over the hash."""
    record = dict(content)
    for name in ("hash", "sig", "key_id"):
        record.pop(name, None)
    record["prev_hash"] = prev_hash
    if signer is not None:
        record["key_id"] = signer.key_id
    record["hash"] = record_hash(record)
    if signer is not None:
        record["sig"] = _b64(signer.sign(str(record["hash"]).encode("ascii")))
    return record


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signature_of(record: Mapping[str, Any]) -> bytes | None:
    """The raw signature of a record, ``None`` when it has none or it is not base64url."""
    text = record.get("sig")
    if not isinstance(text, str) or not text:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


@dataclass(frozen=True)
class ChainBreak:
    """The first record whose chain does not hold, and why."""

    seq: int
    id: str
    reason: str

    def __str__(self) -> str:
        return f"record seq={self.seq} id={self.id}: {self.reason}"


#: Checks a signature: ``check(key_id, data, signature)`` → True when genuine.
SignatureCheck = Callable[[str, bytes, bytes], bool]


def verify_chain(records: Iterable[Mapping[str, Any]]) -> ChainBreak | None:
    """Walk records in ``seq`` order; ``None`` when intact, else the first broken record.

    Checks that each hash matches the content, each ``prev_hash`` is the previous record's
    hash, and sequence numbers have no gaps (a deleted record breaks the chain too).  Whoever
    holds the store can still re-seal records: :func:`signature_report` with the device's
    registered key is what tells the device's records from others.
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


#: The one spelling of a record's signature (a lenient decoder would skip stray characters).
_SIG_RE = re.compile(r"[A-Za-z0-9_-]{86}")


@dataclass(frozen=True)
class SignatureReport:
    """Every record's signature checked (not only up to the first problem): how many are good
    per key id, and the ``seq`` of each unsigned record and of each whose signature fails."""

    signed: dict[str, int]
    unsigned: tuple[int, ...]
    bad: tuple[int, ...]

    def findings(self, unsigned_before: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(unsigned, bad)`` that count as findings: unsigned records from ``seq``
        ``unsigned_before`` on (records from before the device had a key are expected
        unsigned, but nothing on the device can prove which they are: the city says), and
        every bad signature."""
        return tuple(q for q in self.unsigned if q >= unsigned_before), self.bad


def signature_report(
    records: Iterable[Mapping[str, Any]], check: SignatureCheck
) -> SignatureReport:
    """Check the signature of every record with ``check`` (the registered public key or keys)."""
    signed: dict[str, int] = {}
    unsigned: list[int] = []
    bad: list[int] = []
    for record in records:
        seq = int(record["seq"])
        verdict = signature_verdict(record, check)
        if verdict == UNSIGNED:
            unsigned.append(seq)
        elif verdict == BAD_SIGNATURE:
            bad.append(seq)
        else:
            signed[verdict] = signed.get(verdict, 0) + 1
    return SignatureReport(signed, tuple(unsigned), tuple(bad))


#: :func:`signature_verdict` of a record without ``sig`` and ``key_id``.
UNSIGNED = "unsigned"
#: :func:`signature_verdict` of a record whose signature does not check with ``check``.
BAD_SIGNATURE = "bad signature"


def signature_verdict(record: Mapping[str, Any], check: SignatureCheck) -> str:
    """One record's signature: its ``key_id`` when genuine, else :data:`UNSIGNED` or
    :data:`BAD_SIGNATURE` (a malformed, foreign or wrong signature)."""
    if "sig" not in record and "key_id" not in record:
        return UNSIGNED
    key_id = str(record.get("key_id", ""))
    text = record.get("sig")
    signature = signature_of(record) if isinstance(text, str) and _SIG_RE.fullmatch(text) else None
    data = str(record.get("hash", "")).encode("ascii", "replace")
    if signature is not None and key_id and check(key_id, data, signature):
        return key_id
    return BAD_SIGNATURE


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
