"""Loss statements: what a pad publishes in place of a stored record it can no longer deliver.

An SD card fails byte by byte.  A stored record (a rating or an event) that no longer decodes,
whose content no longer matches its hash, whose signature no longer verifies with the device's
key, or whose ``prev_hash`` is not the chain hash of the seq before it, is never published and
never edited (issue 15).  In its place, on the same topic and under the same ``id`` (so the
city's ack clears that outbox row), the pad publishes ONE signed loss statement, made once and
kept durably so that every resend is byte-identical::

    {"kind": "loss", "id", "seq", "device_id", ["epoch"], "prev_hash", "lost_hash", "problem",
     "stated_at", "clock_synced", "damaged", "key_id", "hash", "sig"}

``prev_hash`` is the chain hash of ``seq - 1`` and ``lost_hash`` the chain hash of ``seq``: the
city stores the statement as seq's place in the chain (its hash is ``lost_hash``) and the next
record chains on.  A statement never carries made-up content: ``damaged`` is the stored text as
read, as evidence, and nothing counts it.

The chain hash of seq k (:func:`lost_chain_hash` for a lost one) is the record's own hash when
it is intact; for a lost record, the ``prev_hash`` of the record at k + 1 when that one is
intact (it is signed), else the ``hash`` column of k's row.

Standard library only (the rules).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from evaluator.rules.records import Signer, record_hash, seal, signature_of

#: The ``kind`` of a loss statement (on the ratings and the events topic alike).
LOSS_KIND = "loss"
#: The most characters of the damaged record's stored text a statement carries.
MAX_DAMAGED = 4096
#: The most characters of a statement's ``problem`` (the schema's bound: a problem that quotes
#: a long field of another sector's text must not make a statement the city refuses for ever).
MAX_PROBLEM = 1000
#: The fields of a loss statement (``epoch`` only when the store has one).
LOSS_FIELDS: tuple[str, ...] = (
    "kind",
    "id",
    "seq",
    "device_id",
    "prev_hash",
    "lost_hash",
    "problem",
    "stated_at",
    "clock_synced",
    "damaged",
    "key_id",
    "hash",
    "sig",
)
#: A hash as the chain writes it.
HASH_RE = re.compile(r"[0-9a-f]{64}")
#: The one spelling of a signature (86 base64url characters: 64 bytes, no padding).
SIG_RE = re.compile(r"[A-Za-z0-9_-]{86}")
#: Checks a signature of the device's current key: ``check(data, signature)`` → True if genuine.
KeyCheck = Callable[[bytes, bytes], bool]


def is_loss(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` is a loss statement (never counted in a figure, export or list)."""
    return record.get("kind") == LOSS_KIND


def make_statement(
    *,
    id: str,
    seq: int,
    device_id: str,
    prev_hash: str,
    lost_hash: str,
    problem: str,
    stated_at: str,
    clock_synced: bool,
    damaged: str,
    signer: Signer,
    epoch: str = "",
) -> dict[str, Any]:
    """The signed loss statement for the record at ``seq`` (see the module docstring).

    ``damaged`` is cut to :data:`MAX_DAMAGED` characters, ``problem`` to :data:`MAX_PROBLEM`;
    ``epoch`` is carried when not empty.
    A statement is always signed: the city refuses an unsigned one."""
    content: dict[str, Any] = {
        "kind": LOSS_KIND,
        "id": id,
        "seq": seq,
        "device_id": device_id,
        "lost_hash": lost_hash,
        "problem": problem if len(problem) <= MAX_PROBLEM else problem[: MAX_PROBLEM - 1] + "…",
        "stated_at": stated_at,
        "clock_synced": bool(clock_synced),
        "damaged": damaged[:MAX_DAMAGED],
    }
    if epoch:
        content["epoch"] = epoch
    return seal(content, prev_hash=prev_hash, signer=signer)


def self_problem(
    record: Mapping[str, Any], *, key_id: str | None, check: KeyCheck | None
) -> str | None:
    """What is wrong with a decoded record on its own (``None``: nothing): its content does not
    match its ``hash``, or its signature is not well-formed, or (``key_id``: the device's current
    key, ``check`` its verification) does not verify.  A record signed by another key id (an
    older key) is checked for a well-formed signature only; an unsigned one (no ``sig`` and no
    ``key_id``: written before the device had a key) is the city's to judge.

    Whether it chains on the record before it is :func:`chain_problem`'s business."""
    if record_hash(record) != record.get("hash"):
        return "content does not match its hash"
    if "sig" not in record and "key_id" not in record:
        return None
    text = record.get("sig")
    if not isinstance(text, str) or not SIG_RE.fullmatch(text):
        return "signature missing or not well-formed"
    if key_id is not None and check is not None and record.get("key_id") == key_id:
        signature = signature_of(record)
        data = str(record.get("hash", "")).encode("ascii", "replace")
        if signature is None or not check(data, signature):
            return "signature does not verify with the device key"
    return None


def chain_problem(record: Mapping[str, Any], previous_chain_hash: str) -> str | None:
    """``None`` when ``record`` chains on ``previous_chain_hash`` (the chain hash of seq - 1)."""
    if record.get("prev_hash") != previous_chain_hash:
        return f"prev_hash does not match the chain hash of seq {record.get('seq')} - 1"
    return None


def lost_chain_hash(next_record: Mapping[str, Any] | None, row_hash: Any) -> str:
    """The chain hash of a lost record: the ``prev_hash`` of the record after it when that one
    is intact (``next_record``, signed), else the ``hash`` column of the lost record's row."""
    if next_record is not None and isinstance(next_record.get("prev_hash"), str):
        return str(next_record["prev_hash"])
    return str(row_hash) if row_hash is not None else ""


def statement_problem(statement: Mapping[str, Any]) -> str | None:
    """What makes ``statement`` unfit to publish or store (``None``: nothing), beyond its
    schema: its hash, its signature text, and its hashes' spelling."""
    if not is_loss(statement):
        return "not a loss statement"
    for name in ("prev_hash", "lost_hash", "hash"):
        if not isinstance(statement.get(name), str) or not HASH_RE.fullmatch(statement[name]):
            return f"{name} is not a SHA-256 hex digest"
    if record_hash(statement) != statement["hash"]:
        return "content does not match its hash"
    text = statement.get("sig")
    if not isinstance(text, str) or not SIG_RE.fullmatch(text):
        return "unsigned (a loss statement must be signed by the device key)"
    return None
