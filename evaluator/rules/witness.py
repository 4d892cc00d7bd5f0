"""The witness of the ratings chain's head (art. 40, issue 15): a signed head kept outside the pad.

Whoever holds the pad's SD card can delete the newest ratings of an offline pad (the SQLite
triggers dropped): the chain stays whole, only shorter, the next rating reuses the seq, and
nothing on the pad or in the city can tell.  So the pad hands a **signed head** of its ratings
chain to the counter with every ``rated`` (``evaluation.finished``): the business system keeps
them, the city imports them (``evaluator hub witness``) and compares them with the records it
stores and with the head the pad reports in its status.  A deleted rating is then either a
contradiction (another record at a witnessed seq) or a regression (the pad says it is below a
witnessed seq).

A head is::

    {"device_id": ..., "epoch": <the store's epoch id, "" for a store made before epochs>,
     "seq": N, "hash": <the hash of ratings record N>, "key_id": ..., "sig": ...}

``sig`` is the device key's Ed25519 signature of :func:`head_text`: the text
``"hcp-ratings-head-v1\\n"`` followed by the canonical JSON of the other five fields.  A record's
signature is over its 64 hex digits of ``hash``, a head's over a text that starts with the domain
line, so neither can ever be taken for the other (no record signature verifies as a head, and no
head signature as a record).

**A head tells nothing of a level** (art. 4: the counter never learns one).  Its fields are the
device, the epoch, the seq (the counter counts its own ``rated`` anyway), the key id, the record's
``hash`` and a signature of those.  The hash is SHA-256 over the whole record, which includes its
``id`` and ``presentation_id``: time-ordered ids with 74 random bits each
(:func:`evaluator.rules.records.new_record_id`), never shown to the counter.  Even someone who knew
every other field of the rating could not test the 11 possible scores against the hash without
guessing those bits; and every field has the same length whatever was pressed (a 64-digit hash,
an 86-character signature), so a head of a 10 and a head of a 0 have one shape and one size
(``tests/evaluator/rules/test_witness.py``).  The head goes out at the moment ``rated`` does
(when the 谢谢 ends), the same moment for every level.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from evaluator.rules.records import SignatureCheck, Signer, canonical_json

#: The fields of a signed head, in the order the docs list them.
HEAD_FIELDS: tuple[str, ...] = ("device_id", "epoch", "seq", "hash", "key_id", "sig")
#: The first line of the signed text: what it is, and its version.
HEAD_DOMAIN = "hcp-ratings-head-v1"

_HASH = re.compile(r"[0-9a-f]{64}")
_SIG = re.compile(r"[A-Za-z0-9_-]{86}")
_DEVICE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TEXT = re.compile(r"[A-Za-z0-9._:-]{0,64}")


def head_text(device_id: str, epoch: str, seq: int, hash_: str, key_id: str) -> bytes:
    """The bytes a head's signature is over (domain-separated from every record signature)."""
    body = {"device_id": device_id, "epoch": epoch, "seq": seq, "hash": hash_, "key_id": key_id}
    return HEAD_DOMAIN.encode("ascii") + b"\n" + canonical_json(body)


def make_head(
    signer: Signer, *, device_id: str, epoch: str, seq: int, hash_: str
) -> dict[str, Any]:
    """The signed head of a ratings chain whose newest record is ``seq`` with ``hash_``."""
    key_id = signer.key_id
    sig = signer.sign(head_text(device_id, epoch, seq, hash_, key_id))
    return {
        "device_id": device_id,
        "epoch": epoch,
        "seq": seq,
        "hash": hash_,
        "key_id": key_id,
        "sig": base64.urlsafe_b64encode(sig).rstrip(b"=").decode("ascii"),
    }


def head_problem(obj: Any) -> str | None:
    """Why ``obj`` is not a head in shape (``None`` when it is); the signature is not checked."""
    if not isinstance(obj, Mapping):
        return "a head is a JSON object"
    names = set(obj)
    if names != set(HEAD_FIELDS):
        missing = [f for f in HEAD_FIELDS if f not in names]
        extra = sorted(str(n) for n in names - set(HEAD_FIELDS))
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown field(s) {', '.join(extra)[:100]}"] if extra else []
        )
        return f"not a head: {'; '.join(parts)}"
    device, epoch, seq = obj["device_id"], obj["epoch"], obj["seq"]
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        return "device_id is not a pad's device id"
    if not isinstance(epoch, str) or not _TEXT.fullmatch(epoch):
        return 'epoch is not an epoch id (or "")'
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < 2**63:
        return "seq is not a record's seq (an integer from 1)"
    if not isinstance(obj["hash"], str) or not _HASH.fullmatch(obj["hash"]):
        return "hash is not 64 lowercase hex digits"
    key_id = obj["key_id"]
    if not isinstance(key_id, str) or not key_id or not _TEXT.fullmatch(key_id):
        return "key_id is not a key id"
    if not isinstance(obj["sig"], str) or not _SIG.fullmatch(obj["sig"]):
        return "sig is not an Ed25519 signature in base64url"
    return None


def check_head(obj: Any, check: SignatureCheck) -> str | None:
    """Why ``obj`` is not a genuine head (``None`` when it is): its shape, then its signature with
    ``check(key_id, data, signature)`` (the device's registered keys)."""
    problem = head_problem(obj)
    if problem:
        return problem
    text = str(obj["sig"])
    signature = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    data = head_text(obj["device_id"], obj["epoch"], obj["seq"], obj["hash"], obj["key_id"])
    if not check(str(obj["key_id"]), data, signature):
        return f"the signature does not verify with key {obj['key_id']} of {obj['device_id']}"
    return None


def head_of_line(obj: Any) -> Any:
    """The head a witness line holds: the line itself, or the ``head`` of an
    ``evaluation.finished`` event as the business system read it from the counter link."""
    if isinstance(obj, Mapping) and obj.get("event") == "evaluation.finished":
        return obj.get("head")
    return obj
