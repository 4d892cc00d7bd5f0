"""What a pad cannot truthfully say is stored in its chain (acked) but held out of the
figures (sync/hub/truth.py), each kind on SQLite and PostgreSQL, with the honest cases that must
not be held: an offline backlog, a clock never synced, two pads rating different cases of one
batch, a clerk moving from window 1 to 2 after signing out, old pads without sign-in events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.records import GENESIS_HASH, new_record_id, seal
from sync.hub.db import HubDB, open_db
from sync.hub.figures import figures
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from tests.sync.hub.helpers import make_key, payload, rating_content, topic

HALL = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PADS = ("pad-1", "pad-2")


def _at(hours: float) -> str:
    """``hours`` from now (negative: ago) as the pad writes a time."""
    return (NOW + dt.timedelta(hours=hours)).astimezone(HALL).isoformat(timespec="milliseconds")


class Pad:
    """A registered pad sealing its own two chains with its own key."""

    def __init__(self, db: HubDB, key: DeviceKey, device: str) -> None:
        self.db, self.key, self.device = db, key, device
        self.tips = {"ratings": (0, GENESIS_HASH), "events": (0, GENESIS_HASH)}
        db.register(device, key.public.text)

    def seal(self, stream: str, body: dict[str, Any]) -> dict[str, Any]:
        seq, prev = self.tips[stream]
        body = dict(body, id=new_record_id(), seq=seq + 1, device_id=self.device)
        record = seal(body, prev_hash=prev, signer=self.key)
        self.tips[stream] = (seq + 1, record["hash"])
        return record

    def rating(self, serial: str, hours: float, clerk: str = "A1", **kw: Any) -> dict[str, Any]:
        synced = kw.pop("synced", True)
        body = rating_content(serial, clerk=(clerk, f"name-{clerk}"), **kw)
        body.update(presented_at=_at(hours), rated_at=_at(hours), rated_clock_synced=synced,
                    presented_clock_synced=synced)  # fmt: skip
        return self.seal("ratings", body)

    def event(self, kind: str, clerk: str, hours: float, synced: bool = True) -> dict[str, Any]:
        body = {"kind": kind, "clerk": {"id": clerk, "name": f"name-{clerk}"}, "at": _at(hours),
                "clock_synced": synced}  # fmt: skip
        return self.seal("events", body)

    def send(self, *records: dict[str, Any]) -> None:
        """Each record in a batch of its own, as a pad's messages arrive; all stored."""
        for record in records:
            stream = "events" if "kind" in record else "ratings"
            result = Ingest(self.db).handle(topic(self.device, stream), payload(record))
            assert result.stored == 1, [d.reason for d in result.dead]


@pytest.fixture
def db(db_url: str) -> Iterator[HubDB]:
    with open_db(db_url) as hub:
        yield hub


@pytest.fixture
def pads(db: HubDB, tmp_path: Path) -> tuple[Pad, Pad]:
    return Pad(db, make_key(tmp_path, "1"), PADS[0]), Pad(db, make_key(tmp_path, "2"), PADS[1])


def _held(db: HubDB) -> dict[str, str]:
    """Held record id → kinds (comma-joined)."""
    out: dict[str, list[str]] = {}
    for c in db.conflicts():
        out.setdefault(c["record_id"], []).append(c["kind"])
    return {rid: ",".join(sorted(kinds)) for rid, kinds in out.items()}


def test_a_second_first_rating_of_a_case_slot_from_another_pad_is_held_never_counted_twice(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    one, two = pads
    genuine = one.rating("S1", -2, level="very_satisfied")
    forged = two.rating("S1", -1, level="very_dissatisfied")
    one.send(genuine)
    two.send(forged)
    assert _held(db) == {forged["id"]: "second_first_rating"}
    (conflict,) = db.conflicts()
    assert (conflict["other_device_id"], conflict["other_record_id"]) == ("pad-1", genuine["id"])
    hall = figures(db)["hall"]
    assert (hall["ratings"], hall["mean_score"], hall["bad"]) == (1, 10.0, 0)
    assert figures(db)["held"] == {"pad-1": 0, "pad-2": 1}


def test_two_pads_rating_other_cases_or_slots_of_one_batch_are_not_held(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    """Different serials of one batch, and one 承诺件 rated at acceptance at one window and at
    delivery at another (two slots): all honest."""
    one, two = pads
    one.send(one.rating("B-1", -3), one.rating("P-1", -2, kind="promise", stage="accept"))
    two.send(two.rating("B-2", -1), two.rating("P-1", -0.5, kind="promise", stage="deliver"))
    assert _held(db) == {} and figures(db)["hall"]["ratings"] == 4


def test_a_rating_dated_back_after_todays_is_held_an_offline_backlog_is_not(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    one, two = pads
    backlog = [one.rating(f"S{d}", -24 * (5 - d)) for d in range(5)]  # 5 days offline
    one.send(*backlog)
    assert _held(db) == {}
    today = two.rating("T1", -1)
    month_ago = two.rating("T2", -24 * 30)
    after = two.rating("T3", -24 * 30 + 0.01)  # cannot climb back from the forged one either
    future = two.rating("T4", 1)
    two.send(today, month_ago, after, future)
    assert _held(db) == {month_ago["id"]: "time_backwards", after["id"]: "time_backwards",
                         future["id"]: "time_future"}  # fmt: skip


def test_a_clock_never_synced_is_not_judged_by_its_dates(db: HubDB, pads: tuple[Pad, Pad]) -> None:
    one, _ = pads
    one.send(one.rating("S1", -1), one.rating("S2", -24 * 400, synced=False),
             one.rating("S3", 24 * 400, synced=False), one.rating("S4", -0.5))  # fmt: skip
    assert _held(db) == {}


def test_a_clerk_off_the_citys_roster_is_held_where_the_city_keeps_one(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    """pad-1 is on the roster (hall H1: A1 at pad-1, C3 at any pad of H1); pad-2 is not:
    checked against sign-ins only (it reports none: nothing held)."""
    db.set_roster([("H1", "pad-1", "A1"), ("H1", "", "C3"), ("H2", "", "B1")])
    one, two = pads
    a1, c3, b1 = one.rating("S1", -3), one.rating("S2", -2, "C3"), one.rating("S3", -1, "B1")
    one.send(a1, c3, b1)
    two.send(two.rating("S4", -1, "B1"))
    assert _held(db) == {b1["id"]: "clerk_not_on_roster"}
    (conflict,) = db.conflicts()
    assert conflict["detail"]["roster"] == [{"hall": "H2", "device_id": ""}]


def test_a_rating_of_a_clerk_not_signed_in_at_the_pad_is_held(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    one, two = pads
    one.send(one.event("clerk_sign_in", "A1", -5))
    right, wrong = one.rating("S1", -4.5), one.rating("S2", -4, "B1")
    one.send(right, wrong)
    assert _held(db) == {}  # pad-1's events have not reached -4 h yet: judged when they do
    one.send(one.event("clerk_sign_out", "A1", -3.5))
    late = one.rating("S3", -3, "A1")  # signed out at -3.5 h
    one.send(late)
    assert _held(db) == {wrong["id"]: "clerk_not_signed_in"}
    one.send(one.event("clerk_sign_in", "C3", -2))
    assert _held(db) == {wrong["id"]: "clerk_not_signed_in", late["id"]: "clerk_not_signed_in"}
    two.send(two.rating("S9", -1, "anyone"))  # pad-2 reports no sign-ins: an old pad
    assert len(_held(db)) == 2


def test_ratings_arriving_before_the_sign_ins_that_cover_them_are_not_held(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    one, _ = pads
    first = one.event("clerk_sign_in", "A1", -5)
    out, c2 = one.event("clerk_sign_out", "A1", -4), one.event("clerk_sign_in", "C2", -3)
    one.send(first)
    one.send(one.rating("S1", -2.9, "C2"))  # the events of -4 h and -3 h still on their way
    one.send(out, c2)
    assert _held(db) == {}


def test_a_clerk_moving_from_window_1_to_2_after_signing_out_is_honest(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    one, two = pads
    one.send(one.event("clerk_sign_in", "A1", -5), one.rating("S1", -4.5),
             one.event("clerk_sign_out", "A1", -4))  # fmt: skip
    two.send(two.event("clerk_sign_in", "A1", -3.9), two.rating("S2", -3.5),
             two.event("clerk_sign_out", "A1", -3))  # fmt: skip
    assert _held(db) == {} and db.flags() == []


def test_a_clerk_signed_in_at_two_pads_at_once_holds_the_later_sign_ins_ratings(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    """A stolen key signs a sign-in too: the later of two overlapping sign-ins is contested,
    its ratings held for a person, both pads flagged; the first pad's ratings count."""
    one, two = pads
    one.send(one.event("clerk_sign_in", "B1", -5))
    stolen = two.rating("S2", -3.9, "B1")
    two.send(two.event("clerk_sign_in", "B1", -4), stolen, two.event("clerk_sign_out", "B1", -1))
    one.send(one.rating("S1", -3, "B1"), one.rating("S3", -2, "B1"),
             one.event("clerk_sign_out", "B1", -1))  # fmt: skip
    assert _held(db) == {stolen["id"]: "clerk_two_places"}
    assert figures(db)["held"] == {"pad-1": 0, "pad-2": 1}
    flagged = {(f["device_id"], f["kind"]) for f in db.flags()}
    assert flagged == {("pad-1", "clerk_two_places"), ("pad-2", "clerk_two_places")}


def test_a_clock_set_ahead_then_corrected_holds_only_what_was_ahead(
    db: HubDB, pads: tuple[Pad, Pad]
) -> None:
    """A wrong time server put a pad a day ahead (synced, but wrong): those ratings are held
    as ahead of the city's time; once the clock is right again its ratings are not held as
    going back (what was held raised no high water)."""
    one, _ = pads
    before = one.rating("S0", -1)
    ahead = one.rating("S1", 24)
    right = one.rating("S2", -0.1)
    one.send(before, ahead, right)
    assert _held(db) == {ahead["id"]: "time_future"}
