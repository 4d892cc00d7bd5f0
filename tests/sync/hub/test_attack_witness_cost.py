"""Each status a pad sends (every minute, every pad) is compared with its witnessed heads
(art. 40, issue 15).  Witnesses accumulate, one per rating, for ever: the comparison must cost
the same whatever the pad's history, not read every head the counter was ever given.  Work
counted (SQLite virtual-machine steps), not timed."""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.rules.witness import make_head
from sync.hub.db import open_db
from sync.hub.ingest import Ingest
from sync.hub.witness import check_status, import_heads
from tests.sync.hub.helpers import chain, make_key, payload, topic
from tests.sync.test_store_outbox import steps

DEVICE = "440500-hall1-w17"


def _status_steps(tmp: Path, history: int) -> int:
    key = make_key(tmp, f"k{history}")
    db = open_db(f"sqlite:///{tmp / f'hub{history}.db'}")
    try:
        db.register(DEVICE, key.public.text)
        records = chain(key, DEVICE, history)
        ingest = Ingest(db)
        for start in range(0, history, 500):
            ingest.handle_batch([(topic(DEVICE), payload(r)) for r in records[start : start + 500]])
        heads = [make_head(key, device_id=DEVICE, epoch="", seq=r["seq"], hash_=r["hash"])
                 for r in records]  # fmt: skip
        import_heads(db, [json.dumps(h).encode() for h in heads])
        top = records[-1]
        head = {"seq": top["seq"], "hash": top["hash"], "epoch": ""}
        status = {"device_id": DEVICE, "online": True, "at": "t", "ratings_head": head}
        later = "9999-01-01T00:00:00.000+00:00"
        found: list = []
        count = steps(db.conn, lambda: found.extend(check_status(db, DEVICE, status, later)))
        assert found == [] and db.flags() == []
        return count
    finally:
        db.close()


def test_a_status_costs_the_same_whatever_the_witnessed_history(tmp_path: Path) -> None:
    short, long = _status_steps(tmp_path, 20), _status_steps(tmp_path, 2000)
    assert long <= short * 1.5, f"{short} steps with 20 witnesses, {long} with 2000"
