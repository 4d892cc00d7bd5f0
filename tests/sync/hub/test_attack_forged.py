"""Issue 16, forged figures: a stolen pad signs, with its own registered key and on its own
topic, 20 非常不满意 *first* ratings of another pad's cases and clerk, dated a month back.  On
the real ``evaluator hub run`` behind a real mosquitto the 20 are stored in the forger's chain
(acked: the chain does not stall) but held out of the figures, and listed for a person with
both sides by ``evaluator hub conflicts``."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from evaluator.rules.records import GENESIS_HASH, new_record_id, seal
from sync.hub.db import open_db
from sync.keys import DeviceKey
from tests.support import Broker, wait_for
from tests.sync.hub.helpers import make_key, payload, rating_content, topic

REPO = Path(__file__).resolve().parents[3]
PAD_A, PAD_B = "440500-hall1-w01", "440500-hall1-w02"
CLERK_A, CLERK_B = ("A1", "李明"), ("B1", "王芳")
HALL = dt.timezone(dt.timedelta(hours=8))


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(HALL).isoformat(timespec="milliseconds")


Row = tuple[str, str, tuple[str, str], dt.datetime]


def _ratings(
    key: DeviceKey, device: str, rows: list[Row], first_seq: int = 1, prev: str = GENESIS_HASH
) -> list[dict]:
    """``rows`` (serial, level, clerk, rated_at) sealed as one chain of ``device``."""
    out = []
    for seq, (serial, level, clerk, at) in enumerate(rows, first_seq):
        body = rating_content(serial, level=level, clerk=clerk)
        body.update(id=new_record_id(), seq=seq, device_id=device, presented_at=_stamp(
            at - dt.timedelta(seconds=7)), rated_at=_stamp(at))  # fmt: skip
        record = seal(body, prev_hash=prev, signer=key)
        prev = record["hash"]
        out.append(record)
    return out


def _hub(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluator", "hub", *args, "--db", url],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def hub_run(broker: Broker, tmp_path: Path) -> Iterator[str]:
    """The real receiver (``evaluator hub run``) on ``broker``; yields its database URL."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    open_db(url).close()
    log = (tmp_path / "hub.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "evaluator", "hub", "run", "--db", url,
         "--broker", f"mqtt://{broker.host}:{broker.port}"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    try:
        wait_for(lambda: "receiving on" in (tmp_path / "hub.log").read_text(), 30, "hub ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _publish(broker: Broker, records: list[dict[str, Any]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for record in records:
            client.publish(topic(record["device_id"]), payload(record), qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def _clerk(figures: dict[str, Any], clerk_id: str) -> dict[str, Any]:
    return next(c for c in figures["clerks"] if c["clerk_id"] == clerk_id)


def test_a_stolen_pad_cannot_rate_another_pads_cases_and_clerk_a_month_back(
    broker: Broker, hub_run: str, tmp_path: Path
) -> None:
    url = hub_run
    key_a, key_b = make_key(tmp_path, "a"), make_key(tmp_path, "b")
    with open_db(url) as db:
        db.register(PAD_A, key_a.public.text)
        db.register(PAD_B, key_b.public.text)
    now = dt.datetime.now(dt.UTC)
    month_ago = now - dt.timedelta(days=30)
    genuine_b = _ratings(key_b, PAD_B, [
        (f"B-{i:04d}", "very_satisfied", CLERK_B, now - dt.timedelta(minutes=60 - i))
        for i in range(20)])  # fmt: skip
    today_a = _ratings(key_a, PAD_A, [
        (f"A-{i:04d}", "satisfied", CLERK_A, now - dt.timedelta(minutes=30 - i))
        for i in range(5)])  # fmt: skip
    forged = _ratings(key_a, PAD_A, [
        (f"B-{i:04d}", "very_dissatisfied", CLERK_B, month_ago + dt.timedelta(minutes=i))
        for i in range(20)], first_seq=6, prev=today_a[-1]["hash"])  # fmt: skip
    _publish(broker, genuine_b + today_a)
    with open_db(url) as db:
        wait_for(lambda: db.count("ratings") == 25, 60, "the honest 25 stored")
    before = json.loads(_hub(url, "figures", "--json").stdout)
    assert _clerk(before, "B1")["ratings"] == 20 and _clerk(before, "B1")["mean_score"] == 10.0

    _publish(broker, forged)
    with open_db(url) as db:  # stored in the forger's chain (acked: the chain goes on)
        wait_for(lambda: db.count("ratings") == 45, 60, "the forged 20 stored in A's chain")
        assert db.parked() == 0

    after = json.loads(_hub(url, "figures", "--json").stdout)
    b1 = _clerk(after, "B1")
    assert (b1["ratings"], b1["mean_score"], b1["bad"]) == (20, 10.0, 0), b1
    assert after["hall"]["ratings"] == 25
    month = month_ago.astimezone(HALL).date()
    closed = json.loads(_hub(url, "figures", "--json", "--since", str(month),
                             "--until", str(month + dt.timedelta(days=1))).stdout)  # fmt: skip
    assert closed["hall"]["ratings"] == 0
    assert after["held"] == {PAD_A: 20, PAD_B: 0}

    listed = _hub(url, "conflicts", "--json")
    assert listed.returncode == 1, listed.stderr
    conflicts = json.loads(listed.stdout)
    assert {c["record_id"] for c in conflicts} == {r["id"] for r in forged}
    kinds: dict[str, set[str]] = {}
    for c in conflicts:
        kinds.setdefault(c["record_id"], set()).add(c["kind"])
    assert set(map(frozenset, kinds.values())) == {
        frozenset({"second_first_rating", "time_backwards"})
    }
    by_slot = {c["record_id"]: c for c in conflicts if c["kind"] == "second_first_rating"}
    assert len(by_slot) == 20
    for genuine, fake in zip(genuine_b, forged, strict=True):
        side = by_slot[fake["id"]]
        assert side["other_device_id"] == PAD_B and side["other_record_id"] == genuine["id"]
        assert side["record"]["clerk"]["id"] == "B1" and side["other"]["seq"] == genuine["seq"]
    text = _hub(url, "conflicts")
    assert text.returncode == 1 and "20 record(s) held" in text.stdout, text.stdout
