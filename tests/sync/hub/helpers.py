"""Records as the pads make them, for the receiver's tests: schema-valid content, sealed and
signed by a real device key (``sync.keys.DeviceKey``), through a real ``sync.store.Store`` or
straight through ``evaluator.rules.records.seal`` when only the chain matters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluator.rules.records import GENESIS_HASH, canonical_json, new_record_id, seal
from sync.keys import DeviceKey

PREFIX = "hcp/v1"

#: level → (score, satisfaction, gbt_code)
LEVELS = {
    "very_satisfied": (10, 5, 1),
    "satisfied": (8, 4, 2),
    "basically_satisfied": (6, 3, 3),
    "dissatisfied": (3, 2, 4),
    "very_dissatisfied": (0, 1, 5),
}


def rating_content(
    serial: str,
    *,
    level: str = "satisfied",
    clerk: tuple[str, str] = ("A1023", "陈晓明"),
    matter: tuple[str, str] = ("M1", "不动产登记"),
    kind: str = "instant",
    stage: str = "deliver",
) -> dict[str, Any]:
    """The content of one rating as the session builds it (every field the schema requires)."""
    score, satisfaction, gbt = LEVELS[level]
    bad = score < 6
    return {
        "presentation_id": new_record_id(),
        "level": level,
        "score": score,
        "satisfaction": satisfaction,
        "gbt_code": gbt,
        "channel": 4,
        "cases": [
            {"serial": serial, "matter_code": matter[0], "matter_name": matter[1], "kind": kind}
        ],
        "clerk": {"id": clerk[0], "name": clerk[1]},
        "terminal": None,
        "agencies": [],
        "agencies_concerned": [],
        "targets": ["clerk", "matter"] if stage == "deliver" else ["clerk"],
        "theme": None,
        "reasons": [{"code": "214", "text": "服务态度生硬", "target": "clerk"}] if bad else [],
        "comment": "",
        "stage": stage,
        "visit": 1,
        "assess_number": 1,
        "follows": [],
        "area_code": "440500",
        "presented_at": "2026-05-29T04:26:40.000+08:00",
        "presented_clock_synced": True,
        "rated_at": "2026-05-29T04:26:47.400+08:00",
        "rated_clock_synced": True,
        "elapsed_ms": 7400,
    }


def chain(
    key: DeviceKey | None,
    device_id: str,
    n: int,
    *,
    first_seq: int = 1,
    prev: str = GENESIS_HASH,
    epoch: str = "",
) -> list[dict[str, Any]]:
    """``n`` sealed ratings of ``device_id`` from ``first_seq``, signed by ``key`` (unsigned
    when ``key`` is None), chained on ``prev``, sealed in ``epoch`` (none: before epochs)."""
    out = []
    for i in range(n):
        tag = f"{device_id}-{epoch[-12:]}" if epoch else device_id
        body = rating_content(f"{tag}-{first_seq + i:06d}")
        body.update(id=new_record_id(), seq=first_seq + i, device_id=device_id)
        if epoch:
            body["epoch"] = epoch
        record = seal(body, prev_hash=prev, signer=key)
        prev = record["hash"]
        out.append(record)
    return out


def payload(record: dict[str, Any]) -> bytes:
    """What the pad publishes: the record's canonical JSON."""
    return canonical_json(record)


def topic(device_id: str, stream: str = "ratings") -> str:
    return f"{PREFIX}/{device_id}/{stream}"


def make_key(tmp_path: Path, name: str = "device") -> DeviceKey:
    return DeviceKey.create(tmp_path / f"{name}.key")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def end_event(
    serial: str,
    *,
    outcome: str = "not_rated",
    by: str = "timeout",
    clerk: tuple[str, str] = ("A1023", "陈晓明"),
    matter: tuple[str, str] = ("M1", "不动产登记"),
    ended_at: str = "2026-05-29T04:28:00.000+08:00",
) -> dict[str, Any]:
    """The content of a ``presentation_end`` event (docs/schemas/event.schema.json)."""
    return {
        "kind": "presentation_end",
        "presentation_id": new_record_id(),
        "outcome": outcome,
        "cases": [
            {
                "serial": serial,
                "matter_code": matter[0],
                "matter_name": matter[1],
                "kind": "instant",
            }
        ],
        "clerk": {"id": clerk[0], "name": clerk[1]},
        "terminal": None,
        "area_code": "440500",
        "presented_at": "2026-05-29T04:27:00.000+08:00",
        "ended_at": ended_at,
        "by": by,
        "at": ended_at,
        "clock_synced": True,
    }


def epoch_event(
    key: DeviceKey | None, device_id: str, epoch: str, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """A new store's seq-1 ``epoch`` event as the pad seals it (sync.store)."""
    body = {
        "kind": "epoch", "epoch": epoch, "previous": previous, "id": new_record_id(), "seq": 1,
        "device_id": device_id, "at": "2026-05-29T04:30:00.000+08:00", "clock_synced": True,
    }  # fmt: skip
    return seal(body, prev_hash=GENESIS_HASH, signer=key)


def previous(
    epoch: str, ratings: list[dict[str, Any]], acked: int, lost: list[int] = ()
) -> dict[str, Any]:
    """An epoch event's ``previous``: the kept-aside store of ``epoch`` held ``ratings``, the
    city acked the first ``acked`` of them, ``lost`` of the rest could not be read."""
    unsent = len(ratings) - acked
    none = {"acked_seq": 0, "acked_hash": GENESIS_HASH, "last_seq": 0, "last_hash": GENESIS_HASH,
            "unsent": 0, "carried": 0, "lost": []}  # fmt: skip
    return {
        "epoch": epoch, "kept_aside": "/var/lib/evaluator/ratings.db.damaged-20260529T043000Z",
        "problem": "the file is truncated",
        "ratings": {
            "acked_seq": acked, "acked_hash": ratings[acked - 1]["hash"] if acked else GENESIS_HASH,
            "last_seq": len(ratings), "last_hash": ratings[-1]["hash"] if ratings else GENESIS_HASH,
            "unsent": unsent, "carried": unsent - len(lost), "lost": list(lost),
        },
        "events": none,
    }  # fmt: skip


def seal_all(
    key: DeviceKey | None, device_id: str, contents: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``contents`` sealed as one chain of ``device_id`` from seq 1 (ratings or events)."""
    out, prev = [], GENESIS_HASH
    for seq, body in enumerate(contents, 1):
        record = seal(dict(body, id=new_record_id(), seq=seq, device_id=device_id),
                      prev_hash=prev, signer=key)  # fmt: skip
        prev = record["hash"]
        out.append(record)
    return out


def status(device_id: str, online: bool) -> bytes:
    """A retained status as the pad publishes it (docs/schemas/status.schema.json); offline is
    the last will's shape."""
    body: dict[str, Any] = {
        "device_id": device_id, "online": online, "at": "2026-05-29T04:30:00.000+08:00",
        "firmware": "0.1.0", "outbox": 0, "oldest_age_s": None, "clock_synced": True,
        "printer": "ok", "counter_link": "up", "store_check": None,
    }  # fmt: skip
    if not online:
        body.update(at=None, outbox=None, clock_synced=None, printer=None, counter_link=None)
    return json.dumps(body).encode()


def public_keys(n: int) -> list[str]:
    """``n`` fresh pads' public keys as ``evaluator keys show`` prints them (no files)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from sync.keys import PublicKey

    return [PublicKey(Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)).text for _ in range(n)]  # fmt: skip
