"""Fixtures for the store tests: every test that takes `database` or `store` runs twice, on SQLite (a file in
a temporary directory) and on PostgreSQL (a schema of its own, dropped afterwards).

PostgreSQL is `SYNCD_TEST_POSTGRES_URL` (default: trust-auth `root` on localhost). When it is unreachable
the PostgreSQL variants fail with a message naming that variable: the machines this suite runs on always
have it, so a silent skip would hide a broken environment.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from syncd.store import Store

DEFAULT_POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"

# Read at import: the suite's autouse `clean_environment` fixture removes every SYNCD_* variable.
POSTGRES_URL = os.environ.get("SYNCD_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


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
        return (
            make_url(self.url)
            .update_query_dict({"options": f"-csearch_path={self.schema}"})
            .render_as_string(hide_password=False)
        )


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres_admin(statement: sql.Composable) -> None:
    safe = make_url(POSTGRES_URL).render_as_string(hide_password=True)
    try:
        with psycopg.connect(_libpq_url(POSTGRES_URL), autocommit=True, connect_timeout=5) as connection:
            connection.execute(statement)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at SYNCD_TEST_POSTGRES_URL={safe} ({exc}). The store tests need it: "
            "start PostgreSQL or point SYNCD_TEST_POSTGRES_URL at one (a role that may create schemas).",
            pytrace=False,
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        # A directory that does not exist yet: Store creates it.
        path = tmp_path / "data" / "syncd.db"
        yield Database("sqlite", f"sqlite:///{path}", path=path)
        return
    schema = f"syncd_test_{uuid.uuid4().hex[:12]}"
    _postgres_admin(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield Database(
            "postgresql", POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}, schema=schema
        )
    finally:
        _postgres_admin(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    """A migrated, empty store."""
    with database.open() as store:
        store.upgrade()
        yield store
