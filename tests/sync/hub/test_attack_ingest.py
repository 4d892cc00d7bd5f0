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
