"""Attacks on the city's ingest from a stolen pad with a valid key (issue 15): a parked record
whose id the chain stores first at another seq.  Promoting it must not roll back the whole batch
(the other pads' records in it included) for ever; it is a dead letter, the rest is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator.rules.records import seal
from sync.hub.db import HubDB, open_db
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from tests.sync.hub.helpers import chain, make_key, payload, topic

THIEF, HONEST = "440500-hall1-w13", "440500-hall1-w14"
N = 5


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, DeviceKey]:
    return {THIEF: make_key(tmp_path, "thief"), HONEST: make_key(tmp_path, "honest")}


@pytest.fixture
def db(db_url: str, keys: dict[str, DeviceKey]) -> Iterator[HubDB]:
    db = open_db(db_url)
    for device, key in keys.items():
        db.register(device, key.public.text)
    yield db
    db.close()


def _reusing_id(records: list[dict], at: int, of: int, key: DeviceKey) -> list[dict]:
    """``records`` re-sealed from seq ``at`` (1-based) on, with ``at``'s id = ``of``'s."""
    out = records[: at - 1]
    prev = out[-1]["hash"] if out else records[0]["prev_hash"]
    for i, rec in enumerate(records[at - 1 :], start=at):
        body = {k: v for k, v in rec.items() if k not in ("hash", "prev_hash", "sig", "key_id")}
        if i == at:
            body["id"] = records[of - 1]["id"]
        rec = seal(body, prev_hash=prev, signer=key)
        prev = rec["hash"]
        out.append(rec)
    return out


@pytest.mark.parametrize(("at", "of"), [(3, 2), (4, 2), (5, 2), (3, 1)])
def test_a_parked_record_reusing_a_stored_id_does_not_stop_the_city(
    db: HubDB, keys: dict[str, DeviceKey], at: int, of: int
) -> None:
    forged = _reusing_id(chain(keys[THIEF], THIEF, N), at, of, keys[THIEF])
    honest = chain(keys[HONEST], HONEST, 1)
    ingest = Ingest(db)
    first = ingest.handle_batch([(topic(THIEF), payload(r)) for r in forged[: of - 1]])
    assert first.failed == 0
    # everything after `of` arrives first: parked behind the missing seq `of`
    later = ingest.handle_batch([(topic(THIEF), payload(r)) for r in forged[of:]])
    assert later.failed == 0 and later.parked == N - of
    # then `of` itself, in one batch with another pad's rating
    for _ in range(3):  # the pads resend what was not acked
        result = ingest.handle_batch(
            [(topic(THIEF), payload(forged[of - 1])), (topic(HONEST), payload(honest[0]))]
        )
    assert result.failed == 0
    assert [r["id"] for r in db.records(HONEST)] == [honest[0]["id"]]
    stored = [r["seq"] for r in db.records(THIEF)]
    assert stored == list(range(1, at)), stored  # up to the record before the reused id
    assert any("id already stored" in d["reason"] for d in db.dead())


def test_records_parked_far_ahead_do_not_weigh_on_every_batch(
    db: HubDB, keys: dict[str, DeviceKey]
) -> None:
    """A stolen pad with a valid key parks thousands of signed records far ahead of its chain
    (20 000 parked made each batch 70 times slower: 1.1 → 74 ms).  What a batch reads of the
    parked table must not grow with them: counted, the rows it loads."""
    ingest = Ingest(db)
    loaded: list[int] = []
    parked_rows = ingest._parked_rows

    def counting(*args: object) -> list:
        rows = parked_rows(*args)
        loaded.append(len(rows))
        return rows

    ingest._parked_rows = counting  # type: ignore[method-assign]  # observed, not replaced
    far = chain(keys[THIEF], THIEF, 400, first_seq=10_000, prev="a" * 64)
    for start in range(0, len(far), 100):
        ingest.handle_batch([(topic(THIEF), payload(r)) for r in far[start : start + 100]])
    assert db.parked() == 400
    loaded.clear()
    mine, honest = chain(keys[THIEF], THIEF, 5), chain(keys[HONEST], HONEST, 5)
    for a, b in zip(mine, honest, strict=True):
        ingest.handle_batch([(topic(THIEF), payload(a)), (topic(HONEST), payload(b))])
    assert len(db.records(HONEST)) == 5 and len(db.records(THIEF)) == 5
    assert sum(loaded) <= 10, f"the batches loaded {sum(loaded)} parked rows"
