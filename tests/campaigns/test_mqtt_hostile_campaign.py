"""The hostile MQTT campaign, short: 300 junk messages on the ack topic (some retained, a worker
restart half-way) and every rating still reaches the city and leaves the outbox by its ack.

The long run is ``python -m tests.campaigns.mqtt_hostile --messages 10000`` (docs/reliability.md).
"""

from __future__ import annotations

import random
from pathlib import Path

from sync.mqtt import parse_ack
from tests.campaigns.mqtt_hostile import Figures, hostile, run_campaign

FAST_MESSAGES = 300


def test_hostile_mqtt_campaign_loses_no_rating_and_applies_every_ack(tmp_path: Path) -> None:
    figures = run_campaign(FAST_MESSAGES, seed=20261127, work=tmp_path, ratings=12, settle=30)
    report = figures.table()
    assert figures.tried == FAST_MESSAGES and figures.retained > 0, report
    assert figures.restarts == 1, report
    assert figures.ratings == 12 and figures.unique == 12 and figures.lost == 0, report
    assert figures.acks_applied == 12 and figures.outbox_left == 0, report
    assert figures.worker_alive and figures.connected, report
    assert "malformed ack" in figures.last_error, report  # the junk did arrive
    assert figures.ok


def test_every_generated_payload_is_refused_or_acks_nothing_real() -> None:
    rng = random.Random(7)
    known = ["01a218ba-8127-7b24-9c1f-be803d583727"]
    classes = set()
    for _ in range(2000):
        name, payload = hostile(rng, known)
        classes.add(name)
        ids, problem = parse_ack(payload)
        # junk never acknowledges a real rating: what it may carry is unknown or cut off
        assert known[0] not in ids, (name, payload[:80])
        assert problem or name == "unknown_ids", (name, payload[:80])  # only those are valid
    assert len(classes) >= 10


def test_figures_fail_on_a_lost_rating_or_an_unapplied_ack() -> None:
    good = Figures(ratings=3, unique=3, acks_applied=3, worker_alive=True, connected=True)
    assert good.ok
    assert not Figures(ratings=3, unique=2, lost=1, acks_applied=3, worker_alive=True,
                       connected=True).ok  # fmt: skip
    assert not Figures(ratings=3, unique=3, acks_applied=2, outbox_left=1, worker_alive=True,
                       connected=True).ok  # fmt: skip
    assert not Figures(ratings=3, unique=3, acks_applied=3, worker_alive=False).ok
