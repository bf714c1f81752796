"""Alembic's entry point for syncd's schema: runs the revisions in versions/ on one connection.

Two ways in. `Store.upgrade()` hands over its connection, already inside a transaction (and, on
PostgreSQL, holding the migration lock), through `config.attributes["connection"]`; the migration joins
that transaction. Alembic's command line (see `migrations.main`) gives a URL instead, and this module opens
the database through `Store` so SQLite gets the same pragmas and transaction handling as the daemon.
`--sql` (offline mode) renders the SQL for a URL without connecting.

SQLite cannot ALTER most things in place, so migrations are rendered in batch mode there.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from syncd.store.repository import Store
from syncd.store.tables import metadata

URL_ENV = "SYNCD_DATABASE__URL"


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    url = url or os.environ.get(URL_ENV)
    if not url:
        raise SystemExit(f"no database: pass -x url=... or set {URL_ENV}")
    return url


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=make_url(url).get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    store = Store(_url())
    try:
        with store.engine.begin() as connection:
            _migrate(connection)
    finally:
        store.close()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
