"""Ingest on SQLite and PostgreSQL: exactly once, in chain order, forgeries refused, never
half-stored; two receivers on one device at once."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.records import GENESIS_HASH, canonical_json, record_hash, seal, sealed_hash
from sync.hub.db import HubDB, open_db
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from tests.sync.hub.helpers import chain, make_key, payload, topic
from tests.sync.hub.helpers import status as status_payload

DEVICE = "440500-hall1-w12"


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return make_key(tmp_path)


@pytest.fixture
def db(db_url: str, key: DeviceKey) -> HubDB:
    db = open_db(db_url)
    db.register(DEVICE, key.public.text)
    yield db
    db.close()


def snapshot(db: HubDB) -> tuple[int, int, int, list[Any]]:
    heads = db.rows("SELECT device_id, stream, last_seq FROM hub_heads ORDER BY device_id")
    return db.count(), db.parked(), len(db.dead()), [tuple(h) for h in heads]


def test_in_order_records_are_stored_and_acked(db: HubDB, key: DeviceKey) -> None:
    records = chain(key, DEVICE, 3)
    ingest = Ingest(db)
    result = ingest.handle_batch([(topic(DEVICE), payload(r)) for r in records])
    assert result.acks == {DEVICE: [r["id"] for r in records]}
    assert result.stored == 3 and not result.dead
    assert db.records(DEVICE) == records
    # stored as received: the canonical text, byte for byte
    texts = db.rows("SELECT record FROM hub_records ORDER BY seq")
    assert [t[0].encode() for t in texts] == [payload(r) for r in records]


def test_a_duplicate_is_acked_again_and_stored_once(db: HubDB, key: DeviceKey) -> None:
    (record,) = chain(key, DEVICE, 1)
    ingest = Ingest(db)
    ingest.handle(topic(DEVICE), payload(record))
    again = ingest.handle(topic(DEVICE), payload(record))
    assert again.acks == {DEVICE: [record["id"]]} and again.duplicates == 1
    assert again.stored == 0 and db.count() == 1


def test_a_record_ahead_of_its_predecessor_is_parked_then_promoted(
    db: HubDB, key: DeviceKey
) -> None:
    records = chain(key, DEVICE, 4)
    ingest = Ingest(db)
    parked = ingest.handle_batch([(topic(DEVICE), payload(r)) for r in records[2:]])
    assert parked.parked == 2 and parked.acks == {} and db.count() == 0
    assert db.parked() == 2
    first = ingest.handle(topic(DEVICE), payload(records[0]))
    assert first.acks == {DEVICE: [records[0]["id"]]} and db.parked() == 2
    second = ingest.handle(topic(DEVICE), payload(records[1]))
    # seq 2 chains on, and seq 3 and 4 are promoted and acked with it
    assert second.acks == {DEVICE: [r["id"] for r in records[1:]]}
    assert db.records(DEVICE) == records and db.parked() == 0
    assert db.rows("SELECT last_seq, last_hash FROM hub_heads") == [(4, records[3]["hash"])]


def forged(records: list[dict[str, Any]], key: DeviceKey, other: DeviceKey) -> dict[str, Any]:
    """Each way a message can be wrong, as (topic, payload, reason fragment)."""
    first = records[0]
    altered = dict(first, comment="")
    altered["elapsed_ms"] = 1
    resealed_other = seal({k: v for k, v in first.items()}, prev_hash=GENESIS_HASH, signer=other)
    unsigned = seal(
        {k: v for k, v in first.items() if k not in ("sig", "key_id")}, prev_hash=GENESIS_HASH
    )
    bad_schema = dict(first, level="great")
    bad_schema["hash"] = record_hash(bad_schema)
    wrong_sig = dict(first, sig=records[1]["sig"])
    return {
        "altered field": (topic(DEVICE), canonical_json(altered), "does not match its hash"),
        "other key": (topic(DEVICE), canonical_json(resealed_other), "not registered"),
        "unsigned": (topic(DEVICE), canonical_json(unsigned), "unsigned record"),
        "wrong sig": (topic(DEVICE), canonical_json(wrong_sig), "signature does not verify"),
        "wrong device in topic": (topic("pad-other"), payload(first), "not the topic's device"),
        "unregistered device": (
            topic("pad-other"),
            payload(chain(key, "pad-other", 1)[0]),
            "not registered",
        ),
        "malformed JSON": (topic(DEVICE), b'{"id": ', "not JSON"),
        "not UTF-8": (topic(DEVICE), b"\xff\xfe", "not UTF-8"),
        "schema violation": (topic(DEVICE), canonical_json(bad_schema), "schema rating: level"),
        "not an object": (topic(DEVICE), b"[1]", "not a JSON object"),
        "unknown topic": (f"hcp/v1/{DEVICE}/ratings/x", payload(first), "not a device topic"),
        "deep nesting": (topic(DEVICE), b"[" * 100 + b"]" * 100, "nested deeper"),
    }


def test_forgeries_go_to_dead_letters_never_stored_never_acked(
    db: HubDB, key: DeviceKey, tmp_path: Path
) -> None:
    records = chain(key, DEVICE, 2)
    cases = forged(records, key, make_key(tmp_path, "other"))
    ingest = Ingest(db)
    for name, (where, body, reason) in cases.items():
        result = ingest.handle(where, body)
        assert result.acks == {} and result.stored == 0, name
        assert [d.reason for d in result.dead] and reason in result.dead[0].reason, name
    assert db.count() == 0 and db.parked() == 0
    dead = db.dead()
    assert len(dead) == len(cases)
    assert dead[cases_index(cases, "not UTF-8")]["payload"] == "base64://4="
    # the genuine chain is still stored afterwards
    assert ingest.handle_batch([(topic(DEVICE), payload(r)) for r in records]).stored == 2


def cases_index(cases: dict[str, Any], name: str) -> int:
    return list(cases).index(name)


def test_unsigned_records_are_accepted_only_below_unsigned_before(
    db: HubDB, key: DeviceKey
) -> None:
    old = chain(None, DEVICE, 3)  # stored before the pad had a key
    ingest = Ingest(db, clock=iter(range(0, 10_000, 10)).__next__)  # no key caching
    assert "unsigned record" in ingest.handle(topic(DEVICE), payload(old[0])).dead[0].reason
    db.register(DEVICE, key.public.text, unsigned_before=3)
    assert ingest.handle_batch([(topic(DEVICE), payload(r)) for r in old[:2]]).stored == 2
    assert "unsigned record (seq 3)" in ingest.handle(topic(DEVICE), payload(old[2])).dead[0].reason
    signed = chain(key, DEVICE, 1, first_seq=3, prev=old[1]["hash"])
    assert ingest.handle(topic(DEVICE), payload(signed[0])).stored == 1


def test_chain_breaks_are_dead_letters(db: HubDB, key: DeviceKey) -> None:
    records = chain(key, DEVICE, 2)
    ingest = Ingest(db)
    ingest.handle(topic(DEVICE), payload(records[0]))
    # seq 2 signed and hashed correctly, but chained on something else
    other = chain(key, DEVICE, 1, first_seq=2, prev="f" * 64)[0]
    assert "chain broken" in ingest.handle(topic(DEVICE), payload(other)).dead[0].reason
    # seq 1 again with another id (a replaced store starting over)
    again = chain(key, DEVICE, 1)[0]
    assert "already stored" in ingest.handle(topic(DEVICE), payload(again)).dead[0].reason
    # a parked record that does not chain on is refused when its turn comes
    third = chain(key, DEVICE, 1, first_seq=3, prev="e" * 64)[0]
    assert ingest.handle(topic(DEVICE), payload(third)).parked == 1
    done = ingest.handle(topic(DEVICE), payload(records[1]))
    assert done.acks == {DEVICE: [records[1]["id"]]}
    assert "chain broken" in done.dead[0].reason and db.parked() == 0
    assert db.records(DEVICE) == records


def test_repeated_dead_letters_are_filed_once(db: HubDB) -> None:
    now = [0.0]
    ingest = Ingest(db, dead_repeat_after=60, clock=lambda: now[0])
    bad = (topic(DEVICE), b"not json")
    assert len(ingest.handle(*bad).dead) == 1
    repeat = ingest.handle(*bad)
    assert repeat.dead == [] and repeat.repeats == 1
    now[0] = 61.0
    assert len(ingest.handle(*bad).dead) == 1
    assert len(db.dead()) == 2


def test_a_failing_transaction_stores_nothing_and_acks_nothing(db: HubDB, key: DeviceKey) -> None:
    records = chain(key, DEVICE, 3)
    ingest = Ingest(db)
    # an id collision inside the batch's transaction, planted behind the receiver's back:
    # the UNIQUE(device, stream, seq) fails on seq 2 after seq 1 was inserted
    with db.transaction():
        db.execute(
            "INSERT INTO hub_records (id, device_id, stream, seq, hash, prev_hash, record,"
            " received_at) VALUES ('x', ?, 'ratings', 2, 'h', 'p', '{}', 'now')",
            (DEVICE,),
        )
    result = ingest.handle_batch([(topic(DEVICE), payload(r)) for r in records])
    assert result.failed == 3 and result.acks == {} and result.stored == 0
    assert db.count() == 1  # only the planted row: seq 1 was rolled back with the rest
    assert db.rows("SELECT last_seq FROM hub_heads") in ([], [(0,)])


def test_status_is_upserted_without_ack(db: HubDB) -> None:
    ingest = Ingest(db)
    status = topic(DEVICE, "status")
    ingest.handle(status, status_payload(DEVICE, True))
    result = ingest.handle(status, status_payload(DEVICE, False))
    assert result.acks == {} and result.statuses == 1
    payload_, at = db.statuses()[DEVICE]
    assert payload_ is not None and payload_["online"] is False and at
    assert ingest.handle(status, b"").statuses == 1  # a cleared retained status is ignored
    assert db.statuses()[DEVICE][0]["online"] is False
    wrong = ingest.handle(status, json.dumps({"device_id": DEVICE, "online": "yes"}).encode())
    assert "schema status" in wrong.dead[0].reason


def worker(url: str, items: list[tuple[str, bytes]], out: list[Any]) -> None:
    db = open_db(url)
    try:
        ingest = Ingest(db)
        for item in items:
            out.append(ingest.handle(*item))
    finally:
        db.close()


def test_two_receivers_split_one_device_and_store_it_in_order(
    db: HubDB, db_url: str, key: DeviceKey
) -> None:
    records = chain(key, DEVICE, 120)
    msgs = [(topic(DEVICE), payload(r)) for r in records]
    # a shared subscription hands alternate messages to each receiver, in arrival order;
    # duplicates (resends) go to both
    halves = (msgs[0::2] + msgs[:10], msgs[1::2] + msgs[5:15])
    outs: list[list[Any]] = [[], []]
    threads = [
        threading.Thread(target=worker, args=(db_url, h, o))
        for h, o in zip(halves, outs, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    acked = [rid for out in outs for r in out for rid in r.acks.get(DEVICE, [])]
    assert set(acked) == {r["id"] for r in records}
    assert not [d for out in outs for r in out for d in r.dead]
    assert db.records(DEVICE) == records and db.parked() == 0
    assert snapshot(db) == (120, 0, 0, [(DEVICE, "ratings", 120)])


def test_a_batch_of_many_chains_decides_as_if_each_record_came_alone(
    db: HubDB, key: DeviceKey, tmp_path: Path
) -> None:
    other_key = make_key(tmp_path, "other")
    db.register("pad-b", other_key.public.text)
    a, b = chain(key, DEVICE, 4), chain(other_key, "pad-b", 2)
    ingest = Ingest(db)
    assert ingest.handle(topic(DEVICE), payload(a[2])).parked == 1  # seq 3 ahead of seq 2
    ingest.handle(topic(DEVICE), payload(a[0]))
    # one batch: seq 2 closes the gap (seq 3 is promoted), seq 3 resent, seq 4 chains on the
    # promoted one, pad-b's whole chain, and seq 2 twice
    batch = [a[3], b[0], a[2], a[1], b[1], a[1]]
    result = ingest.handle_batch(
        [(topic(r["device_id"]), payload(r)) for r in batch if r["device_id"] == DEVICE]
        + [(topic("pad-b"), payload(r)) for r in b]
    )
    assert result.stored == 5 and result.duplicates == 2 and not result.dead
    # each id acked once, however many copies the batch held
    assert sorted(result.acks[DEVICE]) == sorted([a[1]["id"], a[2]["id"], a[3]["id"]])
    assert result.acks["pad-b"] == [r["id"] for r in b]
    assert db.records(DEVICE) == a and db.records("pad-b") == b and db.parked() == 0
    heads = db.rows("SELECT device_id, last_seq FROM hub_heads ORDER BY device_id")
    assert sorted(tuple(h) for h in heads) == [(DEVICE, 4), ("pad-b", 2)]


def test_one_failing_chain_rolls_the_whole_batch_back(
    db: HubDB, key: DeviceKey, tmp_path: Path
) -> None:
    other_key = make_key(tmp_path, "other")
    db.register("pad-b", other_key.public.text)
    with db.transaction():  # pad-b's seq 1 slot taken behind the receiver's back
        db.execute(
            "INSERT INTO hub_records (id, device_id, stream, seq, hash, prev_hash, record,"
            " received_at) VALUES ('x', 'pad-b', 'ratings', 1, 'h', 'p', '{}', 'now')"
        )
    msgs = [(topic(DEVICE), payload(r)) for r in chain(key, DEVICE, 2)]
    msgs += [(topic("pad-b"), payload(r)) for r in chain(other_key, "pad-b", 1)]
    result = Ingest(db).handle_batch(msgs)
    assert result.failed == 3 and result.acks == {} and result.stored == 0
    assert db.count() == 1 and db.parked() == 0


def batch_worker(url: str, items: list[tuple[str, bytes]], size: int, out: list[Any]) -> None:
    db = open_db(url)
    try:
        ingest = Ingest(db)
        for start in range(0, len(items), size):
            out.append(ingest.handle_batch(items[start : start + size]))
    finally:
        db.close()


def test_two_receivers_with_batches_of_many_devices_never_deadlock(
    db: HubDB, db_url: str, tmp_path: Path
) -> None:
    """Each receiver's batches hold the same devices in opposite arrival orders: the head rows
    are locked in one sorted order, so neither waits on the other for ever (PostgreSQL would
    abort one: a failed, unacked batch)."""
    devices = [f"pad-{i}" for i in range(6)]
    chains = {}
    for d in devices:
        k = make_key(tmp_path, d)
        db.register(d, k.public.text)
        chains[d] = chain(k, d, 30)
    # the broker's split: (record + device) even to the first, odd to the second, which gets
    # the devices in the opposite order; a few resends go to both
    first = [(topic(d), payload(chains[d][i])) for i in range(30)
             for j, d in enumerate(devices) if (i + j) % 2 == 0]  # fmt: skip
    second = [(topic(d), payload(chains[d][i])) for i in range(30)
              for j, d in reversed(list(enumerate(devices))) if (i + j) % 2 == 1]  # fmt: skip
    outs: list[list[Any]] = [[], []]
    threads = [
        threading.Thread(target=batch_worker, args=(db_url, msgs, 24, out))
        for msgs, out in zip((first, second + first[:10]), outs, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    results = [r for out in outs for r in out]
    assert sum(r.failed for r in results) == 0 and not [d for r in results for d in r.dead]
    acked = {rid for r in results for ids in r.acks.values() for rid in ids}
    assert acked == {r["id"] for c in chains.values() for r in c}
    for d in devices:
        assert db.records(d) == chains[d]
    assert db.parked() == 0


def poison(key: DeviceKey) -> dict[str, tuple[bytes, str]]:
    """Signed-looking records one bad device may send that no database column can hold."""
    (first,) = chain(key, DEVICE, 1)
    surrogate = payload(first).replace(b'"comment":""', b'"comment":"\\ud800"')
    assert surrogate != payload(first)
    far = []
    for seq in (2**63, 10**30):  # past BIGINT: SQLite and PostgreSQL refuse the insert
        body = {k: v for k, v in first.items() if k not in ("hash", "sig", "key_id")}
        far.append(payload(seal(dict(body, seq=seq), prev_hash="a" * 64, signer=key)))
    return {
        "lone surrogate": (surrogate, "lone surrogate"),
        "seq 2**63": (far[0], "seq"),
        "seq 10**30": (far[1], "seq"),
    }


@pytest.mark.parametrize("name", ["lone surrogate", "seq 2**63", "seq 10**30"])
def test_a_record_no_column_can_hold_is_a_dead_letter_not_the_batchs_end(
    db: HubDB, key: DeviceKey, tmp_path: Path, name: str
) -> None:
    """One bad record must not fail (and so un-ack, at every resend) the other devices'
    records of its batch."""
    other_key = make_key(tmp_path, "other")
    db.register("pad-b", other_key.public.text)
    body, reason = poison(key)[name]
    good = chain(other_key, "pad-b", 1)
    result = Ingest(db).handle_batch([(topic(DEVICE), body), (topic("pad-b"), payload(good[0]))])
    assert result.acks == {"pad-b": [good[0]["id"]]} and result.failed == 0
    assert [d.device_id for d in result.dead] == [DEVICE] and reason in result.dead[0].reason
    assert db.records("pad-b") == good and db.parked() == 0
    assert [d["device_id"] for d in db.dead()] == [DEVICE]


def test_a_storm_of_copies_is_stored_once_and_acked_once(db: HubDB, key: DeviceKey) -> None:
    """A pad resending in a burst (or a broker redelivering) puts one record many times in
    a batch: one row, and one id in the ack, not one per copy."""
    (record,) = chain(key, DEVICE, 1)
    ingest = Ingest(db)
    for _ in range(2):  # the first batch stores it, the second only acks it again
        result = ingest.handle_batch([(topic(DEVICE), payload(record))] * 300)
        assert result.acks == {DEVICE: [record["id"]]}
    assert db.count() == 1 and result.duplicates == 300


def test_a_dead_letter_not_filed_is_not_taken_for_a_repeat(db: HubDB) -> None:
    """The database refused the dead letter (down, full): its next copy must be filed, not
    counted as a repeat of one the city never got."""
    ingest = Ingest(db, dead_repeat_after=600, clock=lambda: 0.0)
    bad = (topic(DEVICE), b"not json")
    with db.transaction():
        db.execute("ALTER TABLE hub_dead RENAME TO hub_dead_away")
    ingest.handle(*bad)
    with db.transaction():
        db.execute("ALTER TABLE hub_dead_away RENAME TO hub_dead")
    again = ingest.handle(*bad)
    assert again.repeats == 0 and len(again.dead) == 1
    assert [d["reason"][:8] for d in db.dead()] == ["not JSON"]


def test_issue_14s_event_and_status_fields_are_taken_and_leave_the_figures_alone(
    tmp_path: Path, key: DeviceKey
) -> None:
    """What a pad of issue 14 sends the city: a cert_expiring event (active, then renewed) and
    a retained status with link_error and tls_cert.  The hub validates both against the
    published schemas, stores them, and counts no rating for them."""
    from sync.hub.figures import figures
    from tests.sync.hub.helpers import seal_all

    db = open_db(f"sqlite:///{tmp_path / 'hub.db'}")
    db.register(DEVICE, key.public.text)
    try:
        before = figures(db)
        at = "2026-05-29T04:30:00.000+08:00"
        events = seal_all(key, DEVICE, [
            {"kind": "cert_expiring", "at": at, "clock_synced": True, "active": active,
             "not_after": "2026-06-08T04:30:00.000+08:00", "days_left": days,
             "message": f"{'' if active else 'renewed: '}the client certificate expires"}
            for active, days in ((True, 9), (False, 400))
        ])  # fmt: skip
        body = json.loads(status_payload(DEVICE, True))
        body["link_error"] = {
            "cause": "cert_refused", "words": "the broker refused our client certificate",
            "broker": "mqtts://city.example:8883", "since": at, "count": 12, "last": at,
            "until": None,
        }  # fmt: skip
        body["tls_cert"] = {"not_after": "2026-06-08T04:30:00.000+08:00", "days_left": 9,
                            "expiring": True}  # fmt: skip
        result = Ingest(db).handle_batch(
            [(topic(DEVICE, "events"), payload(e)) for e in events]
            + [(topic(DEVICE, "status"), json.dumps(body).encode())]
        )
        assert not result.dead, result.dead
        assert result.stored == 2 and result.statuses == 1
        assert db.records(DEVICE, "events") == events
        stored, _ = db.statuses()[DEVICE]
        assert stored is not None and stored["link_error"]["cause"] == "cert_refused"
        assert stored["tls_cert"]["expiring"] is True
        after = figures(db)
        assert after["coverage"]["online"] == 1  # the status: the pad is online
        assert {k: v for k, v in after.items() if k != "coverage"} == {
            k: v for k, v in before.items() if k != "coverage"
        }
    finally:
        db.close()


@pytest.mark.parametrize("gap", [1, 2, 4, 6])
def test_a_parked_chain_names_what_it_misses_asks_rarely_and_flags_a_long_gap(
    db: HubDB, key: DeviceKey, gap: int
) -> None:
    """Records parked beyond a seq the city never got (any position, one or several missing):
    the ack names the missing seqs (lowest first, at most MISSING_MAX), at most once per
    MISSING_EVERY seconds per chain, and a gap parked for GAP_FLAG_AFTER is flagged."""
    from sync.hub.ingest import GAP_FLAG_AFTER, MISSING_EVERY, MISSING_MAX

    records = chain(key, DEVICE, 8)
    now = [0.0]
    ingest = Ingest(db, clock=lambda: now[0])
    absent = list(range(gap, min(gap + 2, 8)))  # one or two seqs missing from the middle
    sent = [(topic(DEVICE), payload(r)) for r in records if r["seq"] not in absent]
    first = ingest.handle_batch(sent)
    want = [{"stream": "ratings", "epoch": "", "seq": q} for q in absent][:MISSING_MAX]
    assert first.missing == {DEVICE: want}
    assert ingest.handle_batch(sent).missing == {}  # asked a moment ago: not again
    now[0] += MISSING_EVERY
    assert ingest.handle_batch(sent).missing == {DEVICE: want}
    assert db.flags(DEVICE) == []
    now[0] += GAP_FLAG_AFTER
    ingest.handle_batch(sent)
    flags = db.flags(DEVICE)
    assert [(f["kind"], f["key"]) for f in flags] == [("chain_gap", f"ratings::{gap}")]
    done = ingest.handle_batch([(topic(DEVICE), payload(records[q - 1])) for q in absent])
    assert done.missing == {} and db.parked() == 0 and db.records(DEVICE) == records


# -- the hash checked over the bytes received (issue 16 "Speed") ------------------------------


def _sealed_over(key: DeviceKey, body: bytes) -> bytes:
    """A key holder's record whose hash and signature are over ``body`` (non-canonical bytes of
    an object without hash and sig) with the members added the way a canonical record has
    them: what the bytes-only check would take, and the definition does not."""
    digest = hashlib.sha256(body).hexdigest()
    sig = base64.urlsafe_b64encode(key.sign(digest.encode())).rstrip(b"=").decode()
    head, _, tail = body.rpartition(b',"id":')
    member = b',"hash":"' + digest.encode() + b'","id":'
    return head + member + tail[:-1] + b',"sig":"' + sig.encode() + b'"}'


def test_a_record_in_other_bytes_is_judged_by_its_content(db: HubDB, key: DeviceKey) -> None:
    """The same genuine records spelled otherwise (spaces, another key order, \\u escapes), as a
    relay re-encoding them would: stored, as the hash's definition says; an altered one in
    those spellings is still refused."""
    records = chain(key, DEVICE, 3)
    spelled = [
        json.dumps(records[0], ensure_ascii=False, sort_keys=True).encode(),
        json.dumps(dict(reversed(records[1].items())), ensure_ascii=False).encode(),
        json.dumps(records[2], sort_keys=True, separators=(",", ":")).encode(),
    ]
    assert all(s != payload(r) for s, r in zip(spelled, records, strict=True))
    result = Ingest(db).handle_batch([(topic(DEVICE), s) for s in spelled])
    assert result.stored == 3 and not result.dead
    (altered,) = chain(key, DEVICE, 1, first_seq=4, prev=records[2]["hash"])
    text = json.dumps(altered, ensure_ascii=False, indent=1).replace("-000004", "-000009")
    refused = Ingest(db).handle(topic(DEVICE), text.encode())
    assert [d.reason for d in refused.dead] == ["content does not match its hash"]


@pytest.mark.parametrize(
    "twist",
    [
        pytest.param(
            lambda b: b.replace(b'"serial":', b'"serial":"B-1","serial":'), id="duplicate"
        ),
        pytest.param(lambda b: b.replace(b'"score":8', b'"score": 8'), id="space"),
        pytest.param(lambda b: b.replace(b'"instant"', b'"\\u0069nstant"'), id="escape"),
    ],
)
def test_signed_non_canonical_bytes_are_refused(db: HubDB, key: DeviceKey, twist: Any) -> None:
    """A key holder seals bytes that are not canonical (a duplicate key reads one way in
    Python and another in SQLite's json_extract): hash and signature hold over the bytes, but
    the record's hash is defined over its canonical content, so it is refused as before."""
    (record,) = chain(key, DEVICE, 1)
    body = canonical_json({k: v for k, v in record.items() if k not in ("hash", "sig")})
    forged = _sealed_over(key, twist(body))
    assert sealed_hash(forged, json.loads(forged)) == json.loads(forged)["hash"]  # bytes hold
    result = Ingest(db).handle(topic(DEVICE), forged)
    assert result.stored == 0 and db.count() == 0
    assert [d.reason for d in result.dead] == ["content does not match its hash"]
