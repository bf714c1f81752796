"""The state store: SQLAlchemy tables and the repository the engine and CLI use (members, runs, the
operations audit log, key/values), on SQLite or PostgreSQL, migrated by Alembic (`migrations/`)."""

from syncd.store.records import (
    HistoryEntry,
    OperationRecord,
    PendingOperation,
    RunRecord,
    Settlement,
    StoreError,
    UnusableDatabase,
)
from syncd.store.repository import Store

__all__ = [
    "HistoryEntry",
    "OperationRecord",
    "PendingOperation",
    "RunRecord",
    "Settlement",
    "Store",
    "StoreError",
    "UnusableDatabase",
]
