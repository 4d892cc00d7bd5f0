"""The hub database on SQLite and on a real PostgreSQL: tables, registration, URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.rules.deviceid import device_id_problem
from sync.hub.db import SCHEMA_VERSION, HubError, open_db
from sync.hub.ingest import Ingest
from tests.sync.hub.helpers import chain, make_key, payload, public_keys, topic


def test_tables_are_created_once_and_reopen(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    key = make_key(tmp_path)
    assert db.register("pad-1", key.public.text) == key.public.key_id
    db.close()
    with open_db(db_url) as again:  # CREATE … IF NOT EXISTS: nothing lost, nothing doubled
        assert again.rows("SELECT schema_version FROM hub_meta") == [(SCHEMA_VERSION,)]
        assert again.devices() == ["pad-1"]
        assert again.count() == 0 and again.count("ratings") == 0


def test_register_keeps_every_key_and_updates_unsigned_before(db_url: str, tmp_path: Path) -> None:
    with open_db(db_url) as db:
        old, new = make_key(tmp_path, "old"), make_key(tmp_path, "new")
        db.register("pad-1", old.public.text, unsigned_before=1)
        db.register("pad-1", new.public.text)
        db.register("pad-1", old.public.text, unsigned_before=40)
        keys, before = db.keys("pad-1")
        assert set(keys) == {old.key_id, new.key_id}
        assert before == 40
        assert db.keys("pad-2") == ({}, 0)


@pytest.mark.parametrize("device", ["", "_hub", "a/b", "a+", "#"])
def test_register_refuses_ids_that_are_no_device_topic(tmp_path: Path, device: str) -> None:
    with open_db(tmp_path / "hub.db") as db, pytest.raises(HubError, match="device id"):
        db.register(device, make_key(tmp_path).public.text)


def test_register_refuses_what_is_not_a_public_key(tmp_path: Path) -> None:
    with open_db(tmp_path / "hub.db") as db, pytest.raises(HubError, match="ed25519"):
        db.register("pad-1", "ssh-ed25519 AAAA")


def test_urls(tmp_path: Path) -> None:
    with open_db(f"sqlite:///{tmp_path}/a.db") as db:
        assert db.kind == "sqlite" and db.rows("PRAGMA journal_mode") == [("wal",)]
    with open_db(tmp_path / "b.db") as db:
        assert db.kind == "sqlite" and db.rows("PRAGMA synchronous") == [(2,)]  # FULL
    with pytest.raises(HubError, match="absolute"):
        open_db("sqlite://relative.db")
    with pytest.raises(HubError, match="expected"):
        open_db("mysql://host/db")
    with pytest.raises(HubError, match=r"hub:\*\*\*@") as caught:  # never the password
        open_db("postgresql://hub:secret@127.0.0.1:1/none")
    assert "secret" not in str(caught.value)


# --------------------------------------------------------------------------- many pads (issue 14)


def test_a_thousand_pads_register_at_once_and_again_change_nothing(db_url: str) -> None:
    keys = public_keys(1000)
    rows = [(f"row {i + 2}", f"pad-{i:04}", k) for i, k in enumerate(keys)]
    with open_db(db_url) as db:
        done = db.register_many(rows)
        assert (len(done.new), done.changed, done.unchanged, done.refused) == (1000, [], [], [])
        assert len(db.devices()) == 1000
        found, before = db.keys("pad-0999")
        assert [k.text for k in found.values()] == [keys[999]] and before == 1
        again = db.register_many(rows)
        assert (again.new, again.changed, len(again.unchanged), again.refused) == ([], [], 1000, [])
        assert int(db.rows("SELECT count(*) FROM hub_devices")[0][0]) == 1000


def test_a_changed_key_is_refused_unless_forced_and_the_old_key_kept(db_url: str) -> None:
    old, new, other, third = public_keys(4)
    with open_db(db_url) as db:
        db.register_many([("row 2", "pad-1", old), ("row 3", "pad-2", other)],
                         unsigned_before=40)  # fmt: skip
        done = db.register_many([("row 2", "pad-1", new), ("row 3", "pad-2", other),
                                 ("row 4", "pad-3", third)])  # fmt: skip
        assert (done.new, done.unchanged, done.changed) == (["pad-3"], ["pad-2"], [])
        ((where, device, why),) = done.refused
        assert (where, device) == ("row 2", "pad-1")
        assert "a changed key is refused unless --force" in why
        assert [k.text for k in db.keys("pad-1")[0].values()] == [old]
        assert db.keys("pad-2")[1] == 40  # an unchanged pad keeps its unsigned_before
        forced = db.register_many([("row 2", "pad-1", new)], force=True)
        assert forced.changed == ["pad-1"] and forced.refused == []
        assert sorted(k.text for k in db.keys("pad-1")[0].values()) == sorted([old, new])


def test_bad_rows_are_refused_by_row_and_the_good_ones_registered(db_url: str) -> None:
    a, b, c = public_keys(3)
    rows = [("row 2", "pad-1", a), ("row 3", "pad/2", b), ("row 4", "pad-3", "/etc/passwd"),
            ("row 5", "pad-4", "ed25519:%%%"), ("row 6", "pad-5", b), ("row 7", "pad-5", c),
            ("row 8", "pad-1", a)]  # fmt: skip
    with open_db(db_url) as db:
        done = db.register_many(rows)
        assert done.new == ["pad-1"]  # pad-1 twice with one key: once
        refused = {where: why for where, _device, why in done.refused}
        assert set(refused) == {"row 3", "row 4", "row 5", "row 6", "row 7"}
        assert refused["row 3"] == device_id_problem("pad/2")
        assert "expected 'ed25519:<base64>'" in refused["row 4"]  # a cell is never read as a file
        assert "not base64" in refused["row 5"]
        assert "pad-5 is on row 7 too, with another key" in refused["row 6"]
        assert db.devices() == ["pad-1"]


def test_one_key_on_two_pads_is_refused_even_forced(db_url: str) -> None:
    """A cloned SD card (or a bundle copied for the next pad) carries pad-1's key: registered
    for pad-2 too, whoever holds either pad could sign as both."""
    shared, own = public_keys(2)
    with open_db(db_url) as db:
        done = db.register_many([("row 2", "pad-1", shared), ("row 3", "pad-2", shared),
                                 ("row 4", "pad-3", own)])  # fmt: skip
        assert done.new == ["pad-3"]
        refused = {where: why for where, _device, why in done.refused}
        assert set(refused) == {"row 2", "row 3"}
        assert "is pad-2 (row 3)'s too: one key, one pad" in refused["row 2"]
        assert "is pad-1 (row 2)'s too: one key, one pad" in refused["row 3"]
        assert db.register_many([("row 2", "pad-1", shared)]).new == ["pad-1"]
        for force in (False, True):
            for device in ("pad-2", "pad-3"):  # a new pad, and a known pad's changed key
                done = db.register_many([("row 9", device, shared)], force=force)
                assert (done.new, done.changed) == ([], [])
                ((where, _device, why),) = done.refused
                assert where == "row 9" and "is pad-1 (registered)'s too: one key, one pad" in why
        assert db.devices() == ["pad-1", "pad-3"]
        assert [k.text for k in db.keys("pad-3")[0].values()] == [own]


def test_an_id_no_pad_can_have_is_refused_with_what_a_sheet_made_of_it(db_url: str) -> None:
    """A pad's [device] id is 1 to 64 letters, digits, '.', '_' or '-'; a spreadsheet's cell
    may hold full-width digits (a Chinese IME), an en dash (autocorrect), a space or a formula.
    Registered, such a pad never matched the one that connects (its records went to the dead
    letters as 'device not registered') while register said 'new'."""
    keys = public_keys(6)
    ids = ["４４０５００-hall1-w01", "440500–hall1-w02", "pad 3", '=HYPERLINK("x")',
           "p" * 65, "440500-hall1-w06"]  # fmt: skip
    with open_db(db_url) as db:
        rows = [(f"row {i + 2}", d, k) for i, (d, k) in enumerate(zip(ids, keys, strict=True))]
        done = db.register_many(rows)
        assert done.new == ["440500-hall1-w06"]
        refused = {where: why for where, _device, why in done.refused}
        assert set(refused) == {"row 2", "row 3", "row 4", "row 5", "row 6"}
        for why in refused.values():
            assert "is no pad's device id: expected 1 to 64 letters, digits, '.', '_' or '-'" \
                in why  # fmt: skip
        assert "did you mean '440500-hall1-w01'? (full-width characters)" in refused["row 2"]
        assert db.devices() == ["440500-hall1-w06"]


def test_flags_are_kept_once_per_finding_and_listed_by_device(db_url: str) -> None:
    with open_db(db_url) as db:
        with db.transaction():
            assert db.flag("pad-1", "records_lost", "7", {"seq": 7, "problem": "hash"})
            assert not db.flag("pad-1", "records_lost", "7", {"seq": 7, "problem": "again"})
            assert db.flag("pad-2", "chain_restarted", "e2", {"epoch": "e2"})
        assert [f["key"] for f in db.flags()] == ["7", "e2"]
        assert db.flags("pad-1")[0]["detail"] == {"seq": 7, "problem": "hash"}
        assert db.flags("pad-3") == []


def test_a_held_record_stays_stored_but_leaves_every_list(db_url: str, tmp_path: Path) -> None:
    key = make_key(tmp_path)
    records = chain(key, "pad-1", 3)
    with open_db(db_url) as db:
        db.register("pad-1", key.public.text)
        ingest = Ingest(db)
        assert ingest.handle_batch([(topic("pad-1"), payload(r)) for r in records]).failed == 0
        held = records[1]["id"]
        with db.transaction():
            assert db.hold(held, "pad-1", "case_rated_elsewhere", {"serial": "S1"}, ("pad-2", "x"))
            assert not db.hold(held, "pad-1", "case_rated_elsewhere", {"serial": "again"})
        assert db.count("ratings") == 3  # kept in its chain, never edited
        assert [r["id"] for r in db.all_records()] == [records[0]["id"], records[2]["id"]]
        (c,) = db.conflicts()
        assert (c["record_id"], c["other_device_id"], c["other_record_id"]) == (held, "pad-2", "x")
        assert c["detail"] == {"serial": "S1"} and db.conflicts("pad-2") == []


def test_registration_refuses_every_id_the_pad_and_the_ca_refuse_in_the_same_words(
    db_url: str,
) -> None:
    """Issue 16: ``hub-1`` (a receiver's name, which the CA never signs for a pad) was
    registered; every step now says the words of :func:`device_id_problem`."""
    from tests.evaluator.rules.test_deviceid import BAD_IDS

    keys = public_keys(len(BAD_IDS))
    with open_db(db_url) as db:
        for device_id, key in zip(BAD_IDS, keys, strict=True):
            with pytest.raises(HubError) as refused:
                db.register(device_id, key)
            assert str(refused.value) == device_id_problem(device_id)
        rows = [(f"row {n}", d, k) for n, (d, k) in enumerate(zip(BAD_IDS, keys, strict=True))]
        done = db.register_many(rows)
        assert [why for _where, _d, why in done.refused] == [device_id_problem(d) for d in BAD_IDS]
        assert db.devices() == []
