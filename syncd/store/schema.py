"""The schema's revision and its migrations, for `Store.upgrade` and `Store.check_schema`: the Alembic
configuration built in code, the PostgreSQL migration lock, and the checks that say what to do when the
database's revision is not this syncd's.

Replicas starting together take turns migrating under a transaction advisory lock of their schema
(`migration_lock_key`), distinct from the leader's session lock (`lock_key`, here too): a
replica starting while a leader runs must not wait for the leader to exit. Whatever may wait at start (the
migration lock, a table lock a migration needs) waits at most STARTUP_TIMEOUT_S, then fails with a message
naming what it waited for.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import structlog
from sqlalchemy import Connection, func, inspect, select, text

if TYPE_CHECKING:
    from alembic.config import Config

from syncd.store.records import StoreError, UnusableDatabase

log = structlog.get_logger("syncd.store")

STARTUP_TIMEOUT_S = 60.0
"""How long a process starting waits for what another may hold (seconds): the migration lock (a replica
migrating; on SQLite the `<database>.migrate-lock` file), and on PostgreSQL the table locks a migration needs
(`lock_timeout`). Past it, the start fails with a message naming what it waited for. The database connection
has its own bound: libpq's `connect_timeout` (POSTGRES_CONNECT_TIMEOUT_S), SQLite's busy_timeout."""

LOCK_POLL_S = 0.2
"""How often a process waiting for the PostgreSQL migration lock tries again (seconds)."""


LEADER_KEY = "leader"
"""The kv key under which the leader says where it is (a JSON object)."""

LEGACY_LOCK_KEY = 0x73796E6364  # "syncd"
"""The advisory lock key in the `public` schema (the key syncd always used, so versions agree on it)."""


def lock_key(schema: str) -> int:
    """Pure: the advisory lock key for syncd's tables in `schema` (a non-negative 62-bit integer).

    `public` keeps the key syncd always used; another schema gets its own, so deployments (or tests) that
    share one PostgreSQL database in different schemas do not block each other.
    """
    if schema == "public":
        return LEGACY_LOCK_KEY
    return int.from_bytes(hashlib.sha256(f"syncd:{schema}".encode()).digest()[:8], "big") >> 2


def migration_lock_key(schema: str) -> int:
    """Pure: the PostgreSQL advisory lock key under which syncd migrates its tables in `schema` (a
    non-negative 62-bit integer): one per schema, and never the key of the leader's lock in any schema
    (those are LEGACY_LOCK_KEY for `public` and hashes of "syncd:<schema>")."""
    return int.from_bytes(hashlib.sha256(f"syncd-migrations:{schema}".encode()).digest()[:8], "big") >> 2


SCHEMA_HEAD = "0011"
"""This syncd's newest revision (migrations/versions): a database stamped with it needs nothing from Alembic,
so `Store` loads Alembic only to migrate or to say why a revision is wrong. A new migration updates it
(tests/store/test_schema_head.py compares it with the scripts)."""


def stamped_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions in the database's alembic_version, read with plain SQL (none without that table)."""
    if not inspect(connection).has_table("alembic_version"):
        return ()
    return tuple(str(row[0]) for row in connection.execute(text("SELECT version_num FROM alembic_version")))


def alembic_config(script_location: str) -> Config:
    """The Alembic configuration of `Store` (no alembic.ini): the migrations in `script_location`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location)
    # Without it Alembic warns (DeprecationWarning) about legacy path splitting.
    config.set_main_option("path_separator", "os")
    return config


def take_postgres_migration_lock(
    connection: Connection, shown_url: str, deadline: float, timeout_s: float
) -> None:
    """Take this schema's migration lock for the transaction of `connection`, waiting until `deadline`
    (time.monotonic()) for a replica migrating; then bound the migration's own table locks by what is left."""
    schema = connection.execute(select(func.current_schema())).scalar() or "public"
    key = migration_lock_key(str(schema))
    waited = False
    while not connection.execute(select(func.pg_try_advisory_xact_lock(key))).scalar():
        if not waited:
            log.info("store.migration_lock_waiting", database=shown_url, schema=schema)
            waited = True
        if time.monotonic() >= deadline:
            raise StoreError(
                f"timed out after {timeout_s:g} s waiting for the migration lock of schema {schema} on "
                f"{shown_url}: another syncd has been migrating it that long (or holds the lock)"
            )
        time.sleep(LOCK_POLL_S)
    left_ms = max(1, int((deadline - time.monotonic()) * 1000))
    # SET takes no bind parameters; left_ms is an int we computed.
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {left_ms}")


def current_heads(connection: Connection) -> tuple[str, ...]:
    """The revisions stamped in the database's alembic_version (none for a database never migrated)."""
    from alembic.runtime.migration import MigrationContext

    return tuple(MigrationContext.configure(connection).get_current_heads())


def has_tables(connection: Connection) -> bool:
    """Whether syncd's tables exist (in the schema first on the search_path)."""
    return bool(inspect(connection).has_table("members"))


class SchemaState(NamedTuple):
    """Where a database's schema stands against this syncd's migrations (`Store.schema_state`)."""

    revisions: tuple[str, ...]
    """The revisions stamped in the database (none for a database never migrated)."""
    head: str
    """This syncd's newest revision."""
    tables: bool
    """Whether syncd's tables exist."""
    newer: tuple[str, ...]
    """The stamped revisions this syncd does not know: a newer syncd's."""


def schema_state(connection: Connection, config: Config) -> SchemaState:
    """Where the schema of the database behind `connection` stands; reads only."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    heads = current_heads(connection)
    return SchemaState(
        revisions=heads,
        head=script.get_current_head() or "",
        tables=has_tables(connection),
        newer=tuple(head for head in heads if head not in known),
    )


def refuse_unknown(heads: Sequence[str], config: Config, shown_url: str) -> None:
    """Raise UnusableDatabase when a revision stamped in the database is not one of this syncd's."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = [head for head in heads if head not in known]
    if unknown:
        raise UnusableDatabase(
            f"{shown_url}: this database was written by a newer syncd (revision {', '.join(unknown)}); "
            "upgrade syncd"
        )


def require_head(heads: Sequence[str], config: Config, shown_url: str) -> None:
    """For read-only commands, which never migrate: raise UnusableDatabase unless the database is at this
    syncd's head revision (newer: upgrade syncd; behind: migrate it first)."""
    from alembic.script import ScriptDirectory

    refuse_unknown(heads, config, shown_url)
    head = ScriptDirectory.from_config(config).get_current_head()
    if tuple(heads) != (head,):
        at = ", ".join(heads) or "none"
        raise UnusableDatabase(
            f"{shown_url}: the database's schema is at revision {at}, behind this syncd's {head}; this "
            "command only reads, so it does not migrate: run `syncd db upgrade` (or start `syncd run`, which "
            "migrates at start), then try again"
        )


__all__ = [
    "LEADER_KEY",
    "LEGACY_LOCK_KEY",
    "SCHEMA_HEAD",
    "STARTUP_TIMEOUT_S",
    "SchemaState",
    "alembic_config",
    "current_heads",
    "has_tables",
    "lock_key",
    "migration_lock_key",
    "refuse_unknown",
    "require_head",
    "schema_state",
    "stamped_revisions",
    "take_postgres_migration_lock",
]
