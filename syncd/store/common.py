"""What the parts of `Store` share (`members`, `operations`, `runs` and `repository` itself): the base class
naming the transactions they run in, batch sizes, the upsert, and conversions between a member row and
`Recorded` and between epoch seconds and the database's UTC timestamps. Internal to `syncd.store`.

The dialects' own INSERT (for ON CONFLICT) is imported for the connection's backend only: a process on SQLite
never loads SQLAlchemy's PostgreSQL dialect (some 30 ms of CPU to import)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table
from sqlalchemy.sql import Insert

from syncd.core.model import Recorded
from syncd.store import tables
from syncd.store.records import StoreError

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

BATCH_SIZE = 5_000
"""Rows per executemany when saving members: bounds memory, not transactions (one per call)."""
IN_BATCH = 500
"""IDs per `IN (...)` list: well under SQLite's bound-parameter limit."""

_MEMBER_COLUMNS = tuple(column.name for column in tables.members.columns if column.name != "object_id")
"""What an upsert of a whole member row replaces."""
_MEMBER_NAMES = ("object_id", *_MEMBER_COLUMNS)
# Run on the DBAPI cursor (`upsert_members`). Only these constant names and the placeholders are formatted
# in: every value is a bound parameter. The same text suits SQLite (>= 3.24) and PostgreSQL.
_MEMBER_SET = ", ".join(f"{name} = excluded.{name}" for name in _MEMBER_COLUMNS)
_MEMBER_UPSERT = (
    f"INSERT INTO members ({', '.join(_MEMBER_NAMES)}) VALUES ({{marks}}) "  # noqa: S608 - constant
    f"ON CONFLICT (object_id) DO UPDATE SET {_MEMBER_SET}"
)


class StorePart:
    """A part of `Store` (`syncd.store.repository`): its methods run in the transactions `Store` opens.

    The parts are mixins so that every public method stays on `Store` itself (callers write `store.x(...)`);
    this base only names what they use of it, for the type checker.
    """

    _safe_url: str
    """The database URL with its password hidden, for messages."""

    def _write(self, doing: str) -> AbstractContextManager[Connection]:
        """A read-write transaction, committed unless the block raises (`Store._write`)."""
        raise NotImplementedError

    def _read(self, doing: str) -> AbstractContextManager[Connection]:
        """A read-only transaction (`Store._read`)."""
        raise NotImplementedError


def driver_sql(connection: Connection, template: str, count: int) -> str:
    """`template` with `count` placeholders in the driver's style (sqlite3 "?", psycopg "%s") for its
    "{marks}": SQL run on the DBAPI cursor itself."""
    mark = "?" if connection.dialect.name == "sqlite" else "%s"
    return template.format(marks=", ".join([mark] * count))


def dialect_insert(connection: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT into `table` in the dialect of `connection` (SQLite or PostgreSQL), which has ON CONFLICT."""
    if connection.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    raise StoreError(f"no upsert for {connection.dialect.name}")  # pragma: no cover - Store refuses others


def upsert(connection: Connection, table: Table, key: str, update_columns: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET the given columns from the inserted row."""
    statement = dialect_insert(connection, table)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[key], set_={column: excluded[column] for column in update_columns}
    )


Stamp = Callable[[datetime | None], Any]
"""A timestamp as the DBAPI driver takes it for a column of the store (`stamps`)."""


def stamps(connection: Connection) -> Stamp:
    """How `connection`'s driver takes a timestamp bound on its own cursor: SQLAlchemy's conversion for the
    store's timestamp columns in that dialect (SQLite: its text form, which reads and orders as SQLAlchemy
    writes it), or the datetime itself where the driver adapts it (psycopg)."""
    dialect = connection.dialect
    process = tables.members.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def _same(value: datetime | None) -> datetime | None:
    return value


def member_values(record: Recorded, now: Any, stamp: Stamp) -> tuple[Any, ...]:
    """The members row of `record` as `upsert_members` takes it: `now` already stamped (`stamp` converts
    the record's own times)."""
    agent = record.agent
    return (
        record.object_id,
        record.status.value,
        agent is not None,
        agent.tenant_id if agent is not None else None,
        agent.phone_number if agent is not None else None,
        agent.upn if agent is not None else None,
        agent.consistency_id if agent is not None else None,
        record.upn,
        record.skip_reason.value if record.skip_reason is not None else None,
        record.detail,
        record.attempts,
        None if record.next_attempt_at is None else stamp(to_datetime(record.next_attempt_at)),
        now,
        record.phone_source if agent is not None else None,
        None if agent is None or record.left_scope_at is None else stamp(to_datetime(record.left_scope_at)),
    )


def upsert_members(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert or replace whole member rows (`member_values`), on the DBAPI cursor itself: the apply step
    settles a row per write, and SQLAlchemy's per-row parameter processing cost about as much as the
    database's own work. No object ID may repeat (PostgreSQL refuses to upsert a row twice in one go)."""
    if rows:
        connection.exec_driver_sql(driver_sql(connection, _MEMBER_UPSERT, len(_MEMBER_NAMES)), list(rows))


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def to_epoch(value: datetime) -> float:
    # SQLite keeps no offset; everything written here is UTC.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def to_epoch_or_none(value: datetime | None) -> float | None:
    return None if value is None else to_epoch(value)
