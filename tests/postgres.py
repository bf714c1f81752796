"""A fresh PostgreSQL schema per test, shared by the store and end-to-end fixtures.

The PostgreSQL variants run only when `SYNCD_TEST_POSTGRES_URL` names a server (`.ci/run` sets it): unset,
they are skipped with a message saying how to enable them; set but unreachable, they fail (never skip), so a
broken CI database cannot pass silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

ENV = "SYNCD_TEST_POSTGRES_URL"
CI_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
SKIP_MESSAGE = f"PostgreSQL tests skipped: set {ENV}={CI_URL} (as .ci/run does) to run them"

# Read at import: the suite's autouse `clean_environment` fixture removes every SYNCD_* variable.
POSTGRES_URL: str | None = os.environ.get(ENV) or None


def require_url() -> str:
    """The server's URL; skips the calling test when the variable is unset."""
    if POSTGRES_URL is None:
        pytest.skip(SKIP_MESSAGE)
    return POSTGRES_URL


def url_with_search_path(url: str, schema: str) -> str:
    """`url` with the schema first on the search_path, for callers that take no connect_args."""
    return (
        make_url(url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


def _admin(url: str, statement: sql.Composable) -> None:
    safe = make_url(url).render_as_string(hide_password=True)
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as connection:
            connection.execute(statement)
        return
    except psycopg.OperationalError as exc:
        problem = str(exc).strip()
    # Outside the except block: the failure reads as one message, not as a chain of tracebacks.
    pytest.fail(
        f"PostgreSQL is unreachable at {ENV}={safe} ({problem}). Start PostgreSQL or point {ENV} at one "
        f"(a role that may create schemas), or unset {ENV} to skip the PostgreSQL variants.",
        pytrace=False,
    )


@contextmanager
def fresh_schema() -> Iterator[tuple[str, str]]:
    """(schema, server URL) for a new empty schema, dropped afterwards; skips when the variable is unset."""
    url = require_url()
    schema = f"syncd_test_{uuid.uuid4().hex[:12]}"
    _admin(url, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema, url
    finally:
        _admin(url, sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
