"""Attacks on the loss statements (issue 15) from the SD card's side: the `losses` table itself
fails byte by byte.  The pad's store (real SQLite) hands its checked outbox to the city's ingest
(real SQLite hub), acks what the city acks, and goes round until nothing moves: every intact
record must be stored and acked, the lost seq stored as a statement, the outbox empty.  Every
byte of the kept statement and of its row's columns is flipped in turn (a class, not one case).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evaluator.rules.loss import make_statement
from sync.hub.db import open_db
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from sync.store import Store
from tests.sync.hub.helpers import rating_content, topic
from tests.sync.test_losses import _flip

DEVICE = "pad-440500-attack"
RATINGS, LOST = 6, 3


def _base(tmp: Path, key: DeviceKey) -> Path:
    """A store of RATINGS ratings, LOST damaged on the card and its statement made and kept
    (the pad went down before the city acked anything)."""
    path = tmp / "base.db"
    with Store(path, device_id=DEVICE, signer=key) as store:
        for i in range(RATINGS):
            store.append_rating(rating_content(f"S-{i:04d}"))
        store.conn.execute("DROP TRIGGER ratings_no_update")
        _flip(store, "ratings", LOST, "text")
        assert store.outbox_page(100).stated == (LOST,)
        store.conn.execute("DROP TRIGGER losses_no_update")
        store.conn.commit()
    return path


def _deliver(
    path: Path, key: DeviceKey, hub_path: Path, streams: tuple[str, ...] = ("ratings", "events")
) -> tuple[int, list[int], list[str]]:
    """Pad → city until nothing moves: (outbox left, seqs the city stores, dead reasons).
    Both streams by default: every new store holds its epoch event (seq 1 of its events)."""
    db = open_db(f"sqlite:///{hub_path}")
    db.register(DEVICE, key.public.text)
    ingest, dead = Ingest(db), []
    try:
        with Store(path, device_id=DEVICE, signer=key) as store:
            for _ in range(5):
                sent = [(topic(DEVICE), i.payload) for i in store.outbox_page(100).items]
                if "events" in streams:
                    sent += [(topic(DEVICE, "events"), i.payload)
                             for i in store.event_outbox_page(100).items]  # fmt: skip
                result = ingest.handle_batch(sent)
                dead += [d.reason for d in result.dead]
                acked = store.ack(result.acks.get(DEVICE, []))
                asked = store.missing_page(result.missing.get(DEVICE, [])).items
                if asked:  # what the city names missing (a row lost on the card): sent now
                    result = ingest.handle_batch([(topic(DEVICE, i.stream), i.payload)
                                                  for i in asked])  # fmt: skip
                    dead += [d.reason for d in result.dead]
                    acked += store.ack(result.acks.get(DEVICE, []))
                if not acked:
                    break
            left = store.outbox_size() + store.event_outbox_size()
        seqs = [
            int(s)
            for (s,) in db.rows("SELECT seq FROM hub_records WHERE stream = 'ratings' ORDER BY seq")
        ]
    finally:
        db.close()
    return left, seqs, dead


def _cases(path: Path) -> list[tuple[str, int]]:
    with Store(path, device_id=DEVICE) as store:
        record, lost_hash = store.conn.execute(
            "SELECT record, lost_hash FROM losses WHERE seq = ?", [LOST]
        ).fetchone()
    return [("record", i) for i in range(len(record.encode()))] + [
        ("lost_hash", i) for i in range(len(lost_hash))
    ]


def _flip_loss(path: Path, column: str, at: int) -> None:
    with Store(path, device_id=DEVICE) as store:
        (text,) = store.conn.execute(
            f"SELECT {column} FROM losses WHERE seq = ?", [LOST]
        ).fetchone()
        data = bytearray(text.encode())
        data[at] ^= 0x01
        store.conn.execute(
            f"UPDATE losses SET {column} = CAST(? AS TEXT) WHERE seq = ?", [bytes(data), LOST]
        )
        store.conn.commit()


def test_any_byte_of_a_kept_statement_damaged_does_not_silence_the_window(
    tmp_path: Path,
) -> None:
    key = DeviceKey.create(tmp_path / "device.key")
    base = _base(tmp_path, key)
    broken = []
    for n, (column, at) in enumerate(_cases(base)):
        path = tmp_path / f"case{n}.db"
        shutil.copy(base, path)
        _flip_loss(path, column, at)
        left, seqs, dead = _deliver(path, key, tmp_path / f"hub{n}.db")
        if left or seqs != list(range(1, RATINGS + 1)):
            broken.append((column, at, left, seqs, sorted(set(dead))))
        path.unlink()
        (tmp_path / f"hub{n}.db").unlink()
    assert not broken, f"{len(broken)} of {len(_cases(base))} flips silence the window: " + (
        "; ".join(
            f"{c}[{a}]: {left} unacked, city has {s}, dead {d}" for c, a, left, s, d in broken[:6]
        )
    )


@pytest.mark.parametrize("table", ["outbox", "event_outbox"])
def test_any_byte_of_an_outbox_id_damaged_does_not_leave_the_row_for_ever(
    tmp_path: Path, table: str
) -> None:
    """The outbox row's id column is the only copy of what the city's ack must match: a flip in
    it (the record and its row intact) left the row unacked for ever, resent at every probe."""
    key = DeviceKey.create(tmp_path / "device.key")
    base = tmp_path / "base.db"
    column = "rating_id" if table == "outbox" else "event_id"
    with Store(base, device_id=DEVICE, signer=key) as store:
        for i in range(RATINGS):
            store.append_rating(rating_content(f"S-{i:04d}"))
            store.append_event("tech_menu", {"event": "opened"})
        (rid,) = store.conn.execute(
            f"SELECT {column} FROM {table} WHERE seq = ?", [LOST]
        ).fetchone()
    broken = []
    for at in range(len(rid)):
        path, hub = tmp_path / f"case{at}.db", tmp_path / f"hub{at}.db"
        shutil.copy(base, path)
        with Store(path, device_id=DEVICE) as store:
            store.conn.execute("PRAGMA foreign_keys = OFF")  # a card flips, it does not ask
            data = bytearray(rid.encode())
            data[at] ^= 0x01
            store.conn.execute(f"UPDATE {table} SET {column} = ? WHERE seq = ?",
                               [data.decode(), LOST])  # fmt: skip
            store.conn.commit()
        left, seqs, dead = _deliver(path, key, hub, streams=("ratings", "events"))
        if left:
            broken.append((at, left, seqs, sorted(set(dead))))
        path.unlink()
        hub.unlink()
    assert not broken, f"{len(broken)} of {len(rid)} flips leave rows unacked: {broken[:4]}"


@pytest.mark.parametrize("field", ["id", "seq"])
def test_a_misdirected_write_with_a_long_field_is_still_stated(tmp_path: Path, field: str) -> None:
    """A half-broken card writes another sector's text in a record's place: a JSON object of the
    record's shape whose ``id`` (or ``seq``) is long.  The problem the pad states quotes it, and
    a statement the city's schema refuses (``problem`` over 1000 characters) is resent for ever,
    parking every later record."""
    key = DeviceKey.create(tmp_path / "device.key")
    path = tmp_path / "pad.db"
    with Store(path, device_id=DEVICE, signer=key) as store:
        for i in range(RATINGS):
            store.append_rating(rating_content(f"S-{i:04d}"))
        store.conn.execute("DROP TRIGGER ratings_no_update")
        (text,) = store.conn.execute("SELECT record FROM ratings WHERE seq = ?", [LOST]).fetchone()
        other = json.loads(text)
        other[field] = "7" * 3000 if field == "id" else int("7" * 3000)
        store.conn.execute("UPDATE ratings SET record = ? WHERE seq = ?",
                           [json.dumps(other), LOST])  # fmt: skip
        store.conn.commit()
    left, seqs, dead = _deliver(path, key, tmp_path / "hub.db")
    assert (left, seqs) == (0, list(range(1, RATINGS + 1))), dead


@pytest.mark.parametrize("rows", ["outbox row", "rating and outbox rows"])
def test_an_outbox_row_that_vanished_does_not_park_the_window_for_ever(
    tmp_path: Path, rows: str
) -> None:
    """A half-broken card loses the outbox row of an undelivered rating (or a clerk with the card
    deletes a 差评 in the middle of the backlog, its row and its outbox row): the records after it
    chain on it, so the city parks them all.  Every intact record must still arrive, or the gap
    be stated (a loss statement, records_lost) instead of parking in silence."""
    key = DeviceKey.create(tmp_path / "device.key")
    path = tmp_path / "pad.db"
    with Store(path, device_id=DEVICE, signer=key) as store:
        for i in range(RATINGS):
            store.append_rating(rating_content(f"S-{i:04d}"))
        store.conn.execute("PRAGMA foreign_keys = OFF")
        for table in ("outbox", "ratings") if rows != "outbox row" else ("outbox",):
            store.conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
            store.conn.execute(f"DELETE FROM {table} WHERE seq = ?", [LOST])
        store.conn.commit()
    left, seqs, dead = _deliver(path, key, tmp_path / "hub.db")
    intact = [q for q in range(1, RATINGS + 1) if q != LOST or rows == "outbox row"]
    assert left == 0 and set(intact) <= set(seqs), (left, seqs, dead)


def _forged_rows(store: Store, key: DeviceKey, seq: int) -> dict[str, tuple[str, str]]:
    """``(lost_hash, record)`` a clerk with the card could write into ``losses`` for ``seq``."""
    genuine = make_statement(
        id="x", seq=seq, device_id=DEVICE, prev_hash="0" * 64, lost_hash="1" * 64,
        problem="p", stated_at="2026-05-29T04:26:47.400+08:00", clock_synced=True, damaged="",
        signer=key,
    )  # fmt: skip
    other = DeviceKey.create(store.path.parent / f"other{seq}.key")
    foreign = make_statement(**{**{k: genuine[k] for k in ("id", "seq", "device_id", "prev_hash",
                                   "lost_hash", "problem", "stated_at", "clock_synced",
                                   "damaged")}, "signer": other})  # fmt: skip
    unsigned = {**genuine, "sig": "A" * 86}
    return {
        "junk": ("2" * 64, "junk"),
        "unverified signature": ("1" * 64, json.dumps(unsigned)),
        "another key": ("1" * 64, json.dumps(foreign)),
    }


@pytest.mark.parametrize("forged", ["junk", "unverified signature", "another key"])
def test_a_forged_row_in_losses_does_not_erase_an_intact_rating(
    tmp_path: Path, forged: str
) -> None:
    """A clerk with the SD card writes a row into ``losses`` for a 差评 not delivered yet: an
    intact record is published as itself, never stated lost because of a row nobody signed."""
    key = DeviceKey.create(tmp_path / "device.key")
    broken = []
    for seq in range(1, RATINGS + 1):
        path = tmp_path / f"pad{seq}.db"
        with Store(path, device_id=DEVICE, signer=key) as store:
            for i in range(RATINGS):
                store.append_rating(rating_content(f"S-{i:04d}"))
            lost_hash, text = _forged_rows(store, key, seq)[forged]
            (rid,) = store.conn.execute("SELECT id FROM ratings WHERE seq = ?", [seq]).fetchone()
            store.conn.execute(
                "INSERT INTO losses (stream, seq, id, lost_hash, problem, stated_at, record)"
                " VALUES ('ratings', ?, ?, ?, 'p', 'now', ?)",
                [seq, rid, lost_hash, text],
            )
            store.conn.commit()
        hub = tmp_path / f"hub{seq}.db"
        left, _, dead = _deliver(path, key, hub)
        db = open_db(f"sqlite:///{hub}")
        try:
            lost = [f["key"] for f in db.flags(DEVICE)]
            counted = [r["seq"] for r in db.all_records()]
        finally:
            db.close()
        if left or counted != list(range(1, RATINGS + 1)) or lost:
            broken.append((seq, left, counted, lost, sorted(set(dead))))
    assert not broken, broken


def test_rows_written_into_losses_over_two_seqs_do_not_silence_the_window(
    tmp_path: Path,
) -> None:
    """Someone holding the card damages record N-1 and writes junk rows into ``losses`` for N-1
    (with a made-up lost_hash) and N: N, intact on its own, no longer chains, and its statement
    must be a new signed one, never the junk row (which the city refuses for ever)."""
    key = DeviceKey.create(tmp_path / "device.key")
    path = tmp_path / "pad.db"
    with Store(path, device_id=DEVICE, signer=key) as store:
        for i in range(RATINGS):
            store.append_rating(rating_content(f"S-{i:04d}"))
        store.conn.execute("DROP TRIGGER ratings_no_update")
        _flip(store, "ratings", LOST - 1, "text")
        for seq, lost_hash in ((LOST - 1, "e" * 64), (LOST, "f" * 64)):
            (rid,) = store.conn.execute("SELECT id FROM ratings WHERE seq = ?", [seq]).fetchone()
            store.conn.execute(
                "INSERT INTO losses (stream, seq, id, lost_hash, problem, stated_at, record)"
                " VALUES ('ratings', ?, ?, ?, 'p', 'now', 'junk')",
                [seq, rid, lost_hash],
            )
        store.conn.commit()
    left, seqs, dead = _deliver(path, key, tmp_path / "hub.db")
    assert (left, seqs, dead) == (0, list(range(1, RATINGS + 1)), [])
