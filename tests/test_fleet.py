"""The fleet run of issue 8 (bench/fleet.py) at a small size, so the benchmark cannot rot: 50 pads
(real SyncWorker threads, 25 per process) with 20 signed ratings each plus live ones, two hub
receivers in one shared-subscription group over one SQLite database, a private mosquitto."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.fleet import Result, rates, report, run
from tests.conftest import require_binary


def test_a_small_fleet_is_stored_exactly_once_by_two_receivers(tmp_path: Path) -> None:
    require_binary("mosquitto")
    result = run(
        tmp_path, devices=50, per_process=25, backlog=20, live=2, receivers=2, timeout=120, ramp=2
    )
    assert result.expected == 50 * 22
    assert result.stored == result.expected
    assert (result.duplicates, result.missing, result.outbox_left, result.dead) == (0, 0, 0, 0)
    assert result.chain_breaks == []
    assert result.ok
    # both receivers took a share (the broker splits the group's messages between them)
    assert len(result.per_receiver) == 2
    assert all(r["stored"] > 0 for r in result.per_receiver)
    assert sum(r["stored"] for r in result.per_receiver) >= result.expected
    # every pad and both receivers were connected at once ($SYS every second)
    assert result.peak_connections >= 52
    assert result.drain_s > 0 and result.cpu["receivers"] > 0


def test_the_report_says_when_something_is_missing() -> None:
    ok = Result(devices=2, expected=10, stored=10, drain_s=1.0)
    assert ok.ok
    short = Result(devices=2, expected=10, stored=9, drain_s=1.0, missing=1)
    assert not short.ok

    args = argparse.Namespace(per_process=2, backlog=4, live=1)
    assert report(short, args).splitlines()[-1].endswith("NO")
    assert report(ok, args).splitlines()[-1].endswith("yes")


def test_receiver_rates_from_samples() -> None:
    samples = [(t / 5, 100 * t) for t in range(0, 51)]  # 500 records/s for 10 s
    busiest, sustained = rates(samples)
    assert busiest == 500
    assert abs(sustained - 500) < 1
    assert rates([(0.0, 0)]) == (0.0, 0.0)
