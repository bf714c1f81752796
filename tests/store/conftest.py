"""Fixtures for the store tests: every test that takes `database` or `store` runs twice, on SQLite (a file in
a temporary directory) and on PostgreSQL (a schema of its own, dropped afterwards).

PostgreSQL is `SYNCD_TEST_POSTGRES_URL` (`.ci/run` sets it to trust-auth `root` on 127.0.0.1:5432/test).
Unset, the PostgreSQL variants are skipped with a message saying how to enable them; set but unreachable,
they fail with a message naming the variable (see tests/postgres.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from syncd.store import Store
from tests import postgres


@dataclass(frozen=True)
class Database:
    """An empty database for one test, and how to open a Store on it (as often as the test likes)."""

    backend: str
    """"sqlite" or "postgresql"."""
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None
    """PostgreSQL: the test's own schema (first on the search_path)."""
    path: Path | None = None
    """SQLite: the database file."""

    def open(self) -> Store:
        return Store(self.url, connect_args=self.connect_args)

    def url_with_search_path(self) -> str:
        """The URL alone, for callers that take no connect_args (Alembic's command line)."""
        if self.schema is None:
            return self.url
        return postgres.url_with_search_path(self.url, self.schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        # A database that does not exist yet, in a folder that does (Store creates only the default data/).
        path = tmp_path / "data" / "syncd.db"
        path.parent.mkdir()
        yield Database("sqlite", f"sqlite:///{path}", path=path)
        return
    with postgres.fresh_schema() as (schema, url):
        yield Database("postgresql", url, connect_args={"options": f"-csearch_path={schema}"}, schema=schema)


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    """A migrated, empty store."""
    with database.open() as store:
        store.upgrade()
        yield store
