"""Witnesses of the pads' ratings heads (art. 40, issue 15): a chain cut short is seen.

A pad hands a signed head of its ratings chain (:mod:`evaluator.rules.witness`) to the counter
with every ``rated``; the business system keeps them and the city imports them with
``evaluator hub witness FILE`` (:func:`import_heads`).  Each genuine head is kept in
``hub_witness`` with its epoch; a head whose signature does not verify with a key registered for
its device is refused, counted and never kept.  Then:

* **stored records** (:func:`check_records`, at import and after every stored batch of that
  device): a stored ratings record at the witnessed (device, epoch, seq) whose hash is not the
  witnessed hash, or two genuine heads with two hashes at one seq → ``head_contradicted``
  (key ``<epoch>:<seq>``).  The attack it catches: the newest rating of an offline pad deleted,
  the next one reusing its seq.
* **the pad's status** (:func:`check_status`, at every status the receiver stores): a pad
  ``online`` that reports a head below a witnessed seq of the same epoch, while the city holds
  no record at or above that seq → ``head_regressed`` (key ``<epoch>:<seq>``): the newest
  ratings deleted and nothing rated since.  A status reports the head as it was when it was
  published, so only witnesses imported *before* it arrived are judged against it (a rating after
  it would look like a regression); a witness newer than the pad's last status is judged at its
  next one (every ``[mqtt] status_every``, 60 s by default, while the pad is online).  A status
  that reports a head at a witnessed seq with another hash is a contradiction too.

Nothing here refuses a record: flags are findings for audit (:meth:`HubDB.flag`), listed by
``evaluator hub flags`` and named by ``evaluator hub figures``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from evaluator.rules.witness import check_head, head_of_line
from sync.hub.db import HubDB, now_text
from sync.keys import PublicKey

log = logging.getLogger(__name__)

#: Longest witness line read, in bytes (a head is ~300 bytes, a finished event with many
#: serials a few kB).
MAX_LINE = 64 * 1024
#: How many refused lines are kept with their reason (each is counted): a hostile file of
#: millions of bad lines must not fill the city's memory nor its terminal.
MAX_REFUSED_KEPT = 100


def read_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of ``stream``, read one at a time in bounded memory: a line longer than
    :data:`MAX_LINE` is yielded cut to ``MAX_LINE + 1`` bytes (refused as too long) and the rest
    of it skipped, however long (a file with no newline at all)."""
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while True:  # skip the rest of an over-long line
                rest = stream.readline(MAX_LINE)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line


@dataclass
class Imported:
    """What :func:`import_heads` did: heads kept (new), already kept, refused ``(line, why)``,
    and the flags raised ``(device, kind, key)``."""

    kept: int = 0
    known: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    """The first :data:`MAX_REFUSED_KEPT` refused lines; ``refused_count`` counts them all."""
    refused_count: int = 0
    flagged: list[tuple[str, str, str]] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)
    ahead: list[tuple[str, str, int, int]] = field(default_factory=list)
    """(device, epoch, witnessed seq, stored tip): heads above what the city holds, judged
    against the pad's records as they arrive and its next status."""


def import_heads(db: HubDB, lines: Iterable[bytes]) -> Imported:
    """Read JSON lines (a head, or the ``evaluation.finished`` event carrying it), keep each
    genuine head, then compare each device's witnesses with what is stored."""
    done = Imported()
    keys: dict[str, dict[str, PublicKey]] = {}
    # each distinct genuine head once (a file repeating one head a million times holds one)
    rows: dict[tuple[str, str, int, str, str, str, str], None] = {}
    seen: set[bytes] = set()  # lines already taken: a repeated line is not verified again
    devices = set(db.devices())  # a file naming a million unknown devices costs no query each
    at = now_text()

    def refuse(number: int, why: str) -> None:
        done.refused_count += 1
        if len(done.refused) < MAX_REFUSED_KEPT:
            done.refused.append((number, why))

    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            refuse(number, f"longer than {MAX_LINE} bytes")
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            refuse(number, f"not JSON: {exc}"[:200])
            continue
        if (
            isinstance(obj, dict)
            and obj.get("event") == "evaluation.finished"
            and ("head" not in obj)
        ):
            continue  # a not_rated / cancelled event, or a pad without a key: no head to keep
        head = head_of_line(obj)
        device = head.get("device_id") if isinstance(head, dict) else None
        if isinstance(device, str) and device in devices and device not in keys:
            keys[device] = db.keys(device)[0]  # only registered devices: one entry each
        registered = keys.get(device, {}) if isinstance(device, str) else {}

        def check(key_id: str, data: bytes, signature: bytes) -> bool:
            key = registered.get(key_id)  # noqa: B023 - used at once, in this iteration
            return key is not None and key.check(data, signature)

        text = json.dumps(head, sort_keys=True).encode() if isinstance(head, dict) else b""
        if text and text in seen:
            continue  # this very head was taken from an earlier line
        problem = check_head(head, check)
        if problem is None and not registered:
            problem = f"device {device} is not registered"
        if problem:
            refuse(number, problem)
            continue
        assert isinstance(head, dict)
        seen.add(text)
        rows[(head["device_id"], head["epoch"], head["seq"], head["hash"],
              head["key_id"], text.decode(), at)] = None  # fmt: skip
    if rows:
        with db.transaction():
            for row in rows:
                new = db.execute(
                    "INSERT INTO hub_witness (device_id, epoch, seq, hash, key_id, head,"
                    " received_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    row,
                ).rowcount
                if new:
                    done.kept += 1
                else:
                    done.known += 1
                done.devices.add(row[0])
    for device in sorted(done.devices):
        done.flagged += check_records(db, device)
        done.ahead += _ahead(db, device)
    return done


def _witnesses(db: HubDB, device_id: str) -> dict[tuple[str, int], set[str]]:
    """(epoch, seq) → the witnessed hashes of ``device_id``."""
    out: dict[tuple[str, int], set[str]] = {}
    for epoch, seq, hash_ in db.rows(
        "SELECT epoch, seq, hash FROM hub_witness WHERE device_id = ?", (device_id,)
    ):
        out.setdefault((str(epoch), int(seq)), set()).add(str(hash_))
    return out


def _stored(db: HubDB, device_id: str, seqs: list[int]) -> dict[tuple[str, int], tuple[str, str]]:
    """(epoch, seq) → (hash column, id) of the stored ratings records of ``device_id`` at
    ``seqs``; the epoch is the record's own ``epoch`` field ("" when it has none), so this holds
    whether or not the records table is keyed by epoch yet."""
    out: dict[tuple[str, int], tuple[str, str]] = {}
    for start in range(0, len(seqs), 500):
        part = seqs[start : start + 500]
        for rid, seq, hash_, text in db.rows(
            "SELECT id, seq, hash, record FROM hub_records WHERE device_id = ? AND"
            f" stream = 'ratings' AND {db.any_of('seq', part)}",
            (device_id, *db.any_params(part)),
        ):
            try:
                epoch = json.loads(text).get("epoch", "")
            except (ValueError, AttributeError):
                epoch = ""
            out[(str(epoch or ""), int(seq))] = (str(hash_), str(rid))
    return out


def check_records(db: HubDB, device_id: str) -> list[tuple[str, str, str]]:
    """Flag ``head_contradicted`` for each witnessed (epoch, seq) of ``device_id`` that a stored
    record, or a second witness, contradicts; the flags raised now."""
    witnessed = _witnesses(db, device_id)
    if not witnessed:
        return []
    stored = _stored(db, device_id, sorted({seq for _, seq in witnessed}))
    raised = []
    for (epoch, seq), hashes in sorted(witnessed.items()):
        record = stored.get((epoch, seq))
        if len(hashes) == 1 and (record is None or record[0] in hashes):
            continue
        detail: dict[str, Any] = {"epoch": epoch, "seq": seq, "witnessed": sorted(hashes)}
        if record is not None:
            detail.update(stored_hash=record[0], stored_id=record[1])
        detail["problem"] = (
            "two signed heads with different hashes at one seq (a rating deleted on the pad and "
            "its seq used again)" if len(hashes) > 1 else
            "the stored record at a witnessed seq is not the witnessed one (a rating deleted on "
            "the pad and its seq used again)"
        )  # fmt: skip
        key = f"{epoch}:{seq}"
        if db.flag(device_id, "head_contradicted", key, detail):
            log.warning("device %s: the witnessed head at seq %d (epoch %r) is contradicted",
                        device_id, seq, epoch)  # fmt: skip
            raised.append((device_id, "head_contradicted", key))
    return raised


def _ahead(db: HubDB, device_id: str) -> list[tuple[str, str, int, int]]:
    """Witnessed heads above the newest stored ratings record of their epoch."""
    out = []
    witnessed = _witnesses(db, device_id)
    tops: dict[str, int] = {}
    for epoch, seq in witnessed:
        tops[epoch] = max(tops.get(epoch, 0), seq)
    for epoch, top in sorted(tops.items()):
        tip = _stored_tip(db, device_id, epoch)
        if top > tip:
            out.append((device_id, epoch, top, tip))
    return out


def _stored_tip(db: HubDB, device_id: str, epoch: str) -> int:
    """The highest seq stored (or parked) for ``device_id``'s ratings in ``epoch`` (the chain
    key's own column: one indexed lookup per table, whatever the other epochs hold)."""
    top = 0
    for table in ("hub_records", "hub_parked"):
        row = db.rows(
            f"SELECT max(seq) FROM {table} WHERE device_id = ? AND stream = 'ratings'"
            " AND epoch = ?",
            (device_id, epoch),
        )
        if row and row[0][0] is not None:
            top = max(top, int(row[0][0]))
    return top


def check_status(
    db: HubDB, device_id: str, status: Any, received_at: str
) -> list[tuple[str, str, str]]:
    """Compare the head a status reports with the witnesses imported before it arrived
    (``received_at``): ``head_regressed`` / ``head_contradicted``; the flags raised now."""
    if not isinstance(status, dict) or status.get("online") is not True:
        return []
    if "ratings_head" not in status:
        return []  # a pad older than issue 15 says nothing of its head
    head = status.get("ratings_head")
    if not isinstance(head, dict):
        head = {"seq": 0, "hash": "", "epoch": ""}  # a pad that reports no rating at all
    epoch, seq, hash_ = str(head.get("epoch", "")), head.get("seq"), str(head.get("hash", ""))
    if not isinstance(seq, int) or isinstance(seq, bool):
        return []
    rows = db.rows(  # only the seqs at and above the reported one: a minute's status must not
        # read every head the counter was ever given (the primary key's range)
        "SELECT seq, hash FROM hub_witness WHERE device_id = ? AND epoch = ? AND seq >= ? AND"
        " received_at <= ? ORDER BY seq",
        (device_id, epoch, max(0, min(seq, 2**63 - 1)), received_at),
    )
    raised = []
    above = [(int(q), str(h)) for q, h in rows if int(q) > seq]
    if above and _stored_tip(db, device_id, epoch) < above[-1][0]:
        top, top_hash = above[-1]
        key = f"{epoch}:{top}"
        detail = {
            "epoch": epoch, "reported_seq": seq, "reported_hash": hash_, "witnessed_seq": top,
            "witnessed_hash": top_hash, "status_at": status.get("at"),
            "problem": "the pad reports a ratings head below one the counter was given (ratings "
                       "deleted on the pad)",
        }  # fmt: skip
        if db.flag(device_id, "head_regressed", key, detail):
            log.warning("device %s reports ratings head %d below the witnessed %d (epoch %r)",
                        device_id, seq, top, epoch)  # fmt: skip
            raised.append((device_id, "head_regressed", key))
    same = {h for q, h in rows if int(q) == seq}
    if same and hash_ not in same:
        key = f"{epoch}:{seq}"
        detail = {
            "epoch": epoch,
            "seq": seq,
            "witnessed": sorted(same),
            "reported_hash": hash_,
            "problem": "the pad reports a head at a witnessed seq with another hash",
        }
        if db.flag(device_id, "head_contradicted", key, detail):
            raised.append((device_id, "head_contradicted", key))
    return raised


def chain_hash(record: dict[str, Any]) -> str:
    """The hash a record stands for in its chain: a loss statement's ``lost_hash`` (the lost
    record's, which a head may witness), any other record's own ``hash``."""
    if record.get("kind") == "loss" and isinstance(record.get("lost_hash"), str):
        return str(record["lost_hash"])
    return str(record.get("hash", ""))


def after_batch(db: HubDB, stored: Iterable[tuple[str, int, str]]) -> None:
    """The receiver's hook, once at the end of each stored batch: the ratings records it stored,
    ``(device, seq, record text)``, compared with the witnesses at their seqs (one query for the
    whole batch; a device with a mismatch is then checked in full by :func:`check_records`).
    Never raises (a failure is logged: the batch is stored and acked whatever this finds)."""
    rows = list(stored)
    if not rows:
        return
    try:
        devices = sorted({r[0] for r in rows})
        seqs = sorted({int(r[1]) for r in rows})
        witnessed: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for device_id, epoch, seq, hash_ in db.rows(
            "SELECT device_id, epoch, seq, hash FROM hub_witness WHERE"
            f" {db.any_of('device_id', devices)} AND {db.any_of('seq', seqs)}",
            (*db.any_params(devices), *db.any_params(seqs)),
        ):
            witnessed.setdefault((str(device_id), int(seq)), []).append((str(epoch), str(hash_)))
        suspects = set()
        for device_id, seq, text in rows:
            heads = witnessed.get((device_id, int(seq)))
            if not heads:
                continue
            record = json.loads(text)
            epoch, hash_ = str(record.get("epoch", "") or ""), chain_hash(record)
            if any(e == epoch and h != hash_ for e, h in heads):
                suspects.add(device_id)
        for device_id in sorted(suspects):
            check_records(db, device_id)
    except Exception:
        log.exception("comparing the witnessed heads of %d record(s) failed", len(rows))
