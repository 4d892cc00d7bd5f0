"""The hub database on SQLite and on a real PostgreSQL: tables, registration, URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.hub.db import SCHEMA_VERSION, HubError, open_db
from tests.sync.hub.helpers import make_key


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
