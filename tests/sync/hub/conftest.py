"""Fixtures of the receiver's tests: every database test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.pg import PostgresServer

_names = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty hub database: a SQLite file, or a new database on the session's
    private PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.fresh_database(f"hub_{next(_names)}")
