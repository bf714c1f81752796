"""What the parts of `Store` share (`members`, `operations`, `runs` and `repository` itself): the base class
naming the transactions they run in, batch sizes, the upsert, and conversions between a member row and
`Recorded` and between epoch seconds and the database's UTC timestamps. Internal to `syncd.store`.

The dialects' own INSERT (for ON CONFLICT) is imported for the connection's backend only: a process on SQLite
never loads SQLAlchemy's PostgreSQL dialect (some 30 ms of CPU to import)."""

from __future__ import annotations

from collections.abc import Sequence
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

MEMBER_COLUMNS = tuple(column.name for column in tables.members.columns if column.name != "object_id")
"""What an upsert of a whole member row replaces."""


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


def member_row(record: Recorded, now: datetime) -> dict[str, Any]:
    agent = record.agent
    return {
        "object_id": record.object_id,
        "status": record.status.value,
        "agent_active": agent is not None,
        "tenant_id": agent.tenant_id if agent is not None else None,
        "phone_number": agent.phone_number if agent is not None else None,
        "upn_pushed": agent.upn if agent is not None else None,
        "consistency_id": agent.consistency_id if agent is not None else None,
        "upn": record.upn,
        "skip_reason": record.skip_reason.value if record.skip_reason is not None else None,
        "detail": record.detail,
        "attempts": record.attempts,
        "next_attempt_at": _to_datetime_or_none(record.next_attempt_at),
        "updated_at": now,
        "phone_source": record.phone_source if agent is not None else None,
        "left_scope_at": _to_datetime_or_none(record.left_scope_at) if agent is not None else None,
    }


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _to_datetime_or_none(epoch: float | None) -> datetime | None:
    return None if epoch is None else to_datetime(epoch)


def to_epoch(value: datetime) -> float:
    # SQLite keeps no offset; everything written here is UTC.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def to_epoch_or_none(value: datetime | None) -> float | None:
    return None if value is None else to_epoch(value)
