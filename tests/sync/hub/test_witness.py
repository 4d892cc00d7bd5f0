"""Witnessed ratings heads at the receiver (sync.hub.witness), on SQLite and PostgreSQL: forged
heads refused and never kept, a chain cut short and continued flagged ``head_contradicted``
whichever arrives first, a pad reporting a head below a witnessed one flagged ``head_regressed``,
and ``hub figures`` naming the device."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.witness import make_head
from sync.hub import figures
from sync.hub.db import HubDB, now_text, open_db
from sync.hub.ingest import Ingest
from sync.hub.witness import check_status, import_heads
from sync.keys import DeviceKey
from tests.sync.hub.helpers import chain, make_key, payload, topic
from tests.sync.hub.helpers import status as status_payload

DEVICE = "440500-hall1-w12"
N = 6


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return make_key(tmp_path)


@pytest.fixture
def db(db_url: str, key: DeviceKey) -> Iterator[HubDB]:
    db = open_db(db_url)
    db.register(DEVICE, key.public.text)
    yield db
    db.close()


def heads_of(key: DeviceKey, records: list[dict[str, Any]], epoch: str = "") -> list[dict]:
    """The head the counter got after each record."""
    return [
        make_head(key, device_id=DEVICE, epoch=epoch, seq=r["seq"], hash_=r["hash"])
        for r in records
    ]


def lines(heads: list[dict[str, Any]], *, as_events: bool = False) -> list[bytes]:
    if as_events:
        return [
            json.dumps(
                {"event": "evaluation.finished", "serials": ["S"], "outcome": "rated", "head": h}
            ).encode()
            for h in heads
        ]
    return [json.dumps(h).encode() for h in heads]


def cut_and_continue(key: DeviceKey, original: list[dict[str, Any]], k: int) -> list[dict]:
    """The pad's chain after seq ``k``..N were deleted and as many rated again on seq ``k``."""
    prev = original[k - 2]["hash"] if k > 1 else "0" * 64
    return original[: k - 1] + chain(key, DEVICE, N - k + 1, first_seq=k, prev=prev)


def status(head: dict[str, Any] | None, *, online: bool = True) -> dict[str, Any]:
    return {"device_id": DEVICE, "online": online, "ratings_head": head, "at": "t"}


def kinds(db: HubDB) -> list[tuple[str, str]]:
    return [(f["kind"], f["key"]) for f in db.flags(DEVICE)]


def test_genuine_heads_are_kept_once_and_match_the_stored_chain(db: HubDB, key: DeviceKey) -> None:
    records = chain(key, DEVICE, N)
    Ingest(db).handle_batch([(topic(DEVICE), payload(r)) for r in records])
    done = import_heads(db, lines(heads_of(key, records), as_events=True))
    assert (done.kept, done.known, done.refused, done.flagged) == (N, 0, [], [])
    again = import_heads(db, [*lines(heads_of(key, records)), b"", b"  "])
    assert (again.kept, again.known) == (0, N)
    assert db.flags() == []


@pytest.mark.parametrize("field", ["device_id", "epoch", "seq", "hash", "key_id", "sig"])
def test_a_forged_head_is_refused_counted_and_never_kept(
    db: HubDB, key: DeviceKey, tmp_path: Path, field: str
) -> None:
    """Any field of a genuine head changed, or a head signed by a key not registered for the
    device: refused with a reason, not kept, no finding made of it."""
    (record,) = chain(key, DEVICE, 1)
    genuine = heads_of(key, [record])[0]
    forged = dict(genuine)
    if field == "seq":
        forged["seq"] = 2
    elif field == "sig":
        other = make_key(tmp_path, "thief")
        forged = make_head(other, device_id=DEVICE, epoch="", seq=1, hash_=record["hash"])
    else:
        text = str(genuine[field]) or "e"
        forged[field] = text[:-1] + ("0" if text[-1] != "0" else "1")
    done = import_heads(db, [json.dumps(forged).encode(), b"not json", b"[1]"])
    assert done.kept == 0 and len(done.refused) == 3
    assert db.rows("SELECT count(*) FROM hub_witness")[0][0] == 0
    assert db.flags() == []


@pytest.mark.parametrize("witness_first", [True, False], ids=["witness-first", "records-first"])
def test_a_chain_cut_and_continued_is_contradicted_at_every_position(
    db: HubDB, key: DeviceKey, witness_first: bool
) -> None:
    """For every seq k: the pad's ratings from k on deleted and k rated again; the city has
    the heads the counter got before.  Whichever arrives first, the device is flagged at k."""
    for k in range(1, N + 1):
        device = f"pad-{k}-{int(witness_first)}"
        db.register(device, key.public.text)
        original = [dict(r, device_id=device) for r in chain(key, device, N)]
        heads = [
            make_head(key, device_id=device, epoch="", seq=r["seq"], hash_=r["hash"])
            for r in original
        ]
        prev = original[k - 2]["hash"] if k > 1 else "0" * 64
        pad = original[: k - 1] + chain(key, device, N - k + 1, first_seq=k, prev=prev)
        ingest = Ingest(db)
        if witness_first:
            import_heads(db, lines(heads))
            assert db.flags(device) == []
            ingest.handle_batch([(topic(device), payload(r)) for r in pad])
        else:
            ingest.handle_batch([(topic(device), payload(r)) for r in pad])
            done = import_heads(db, lines(heads))
            assert [f[1] for f in done.flagged] == ["head_contradicted"] * (N - k + 1)
        found = db.flags(device)
        assert [f["key"] for f in found] == [f":{q}" for q in range(k, N + 1)], k
        assert {f["kind"] for f in found} == {"head_contradicted"}
        assert found[0]["detail"]["stored_hash"] == pad[k - 1]["hash"]


def test_two_genuine_heads_at_one_seq_contradict_each_other(db: HubDB, key: DeviceKey) -> None:
    """The counter got both heads (the deleted rating's and its replacement's): flagged before
    any record arrives."""
    original = chain(key, DEVICE, N)
    pad = cut_and_continue(key, original, N)
    done = import_heads(db, lines(heads_of(key, original) + heads_of(key, pad[-1:])))
    assert done.flagged == [(DEVICE, "head_contradicted", f":{N}")]


@pytest.mark.parametrize("k", range(N))
def test_a_status_below_a_witnessed_head_is_regressed(db: HubDB, key: DeviceKey, k: int) -> None:
    """The pad's ratings from k+1 on deleted, nothing rated since (k = 0: every one): an online
    status reporting head k, received after the witnesses, is flagged at the witnessed top.
    Not judged: an offline status, one received before the witnesses were imported (the pad
    may have rated since), a pad that reports no head field (older than issue 15)."""
    original = chain(key, DEVICE, N)
    Ingest(db).handle_batch([(topic(DEVICE), payload(r)) for r in original[:k]])
    import_heads(db, lines(heads_of(key, original)))
    later = now_text()
    head = {"seq": k, "hash": original[k - 1]["hash"], "epoch": ""} if k else None
    assert check_status(db, DEVICE, status(head, online=False), later) == []
    assert check_status(db, DEVICE, status(head), "2000-01-01T00:00:00.000+00:00") == []
    assert check_status(db, DEVICE, {"device_id": DEVICE, "online": True}, later) == []
    assert db.flags() == []
    assert check_status(db, DEVICE, status(head), later) == [(DEVICE, "head_regressed", f":{N}")]
    (found,) = db.flags(DEVICE)
    assert found["detail"]["reported_seq"] == k and found["detail"]["witnessed_seq"] == N


def test_a_status_at_the_witnessed_head_is_no_finding_and_another_hash_is(
    db: HubDB, key: DeviceKey
) -> None:
    original = chain(key, DEVICE, N)
    import_heads(db, lines(heads_of(key, original)))
    top = {"seq": N, "hash": original[-1]["hash"], "epoch": ""}
    assert check_status(db, DEVICE, status(top), now_text()) == []
    other = dict(top, hash="ab" * 32)
    raised = check_status(db, DEVICE, status(other), now_text())
    assert raised == [(DEVICE, "head_contradicted", f":{N}")]
    # a witness of another epoch says nothing of this one
    assert check_status(db, DEVICE, status(dict(top, seq=1, epoch="e2")), now_text()) == []


def test_the_receiver_judges_each_status_it_stores(db: HubDB, key: DeviceKey) -> None:
    """Through ``Ingest``: the status message as the pad publishes it."""
    original = chain(key, DEVICE, N)
    ingest = Ingest(db)
    ingest.handle_batch([(topic(DEVICE), payload(r)) for r in original[:-1]])
    import_heads(db, lines(heads_of(key, original)))
    body = json.loads(status_payload(DEVICE, True))
    body["ratings_head"] = {"seq": N - 1, "hash": original[-2]["hash"], "epoch": ""}
    result = ingest.handle(topic(DEVICE, "status"), json.dumps(body).encode())
    assert result.statuses == 1 and not result.dead
    assert kinds(db) == [("head_regressed", f":{N}")]


def test_figures_say_which_devices_have_findings(db: HubDB, key: DeviceKey) -> None:
    original = chain(key, DEVICE, N)
    pad = cut_and_continue(key, original, N)
    Ingest(db).handle_batch([(topic(DEVICE), payload(r)) for r in pad])
    assert figures.figures(db)["audit"] == {"devices_with_findings": {}}
    import_heads(db, lines(heads_of(key, original)))
    assert figures.figures(db)["audit"] == {
        "devices_with_findings": {DEVICE: ["head_contradicted"]}
    }
