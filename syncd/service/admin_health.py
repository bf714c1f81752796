"""Whether the database is usable, as `/readyz` asks it: a cheap query, in a thread, within a time limit.

The daemon's own pooled connections are not enough to tell. A SQLite database in WAL mode serves a
connection from its page cache for as long as the write-ahead log does not change, so a database file whose
header was overwritten still "answers" on a warm connection until the next write, after which every query
fails with "file is not a database". For a SQLite file the check therefore opens a fresh, read-only
connection (no pool, no file created) and reads the schema table, which reads the file's header; then, as
for PostgreSQL (whose pool pings its connections), it runs a small query through the store itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from urllib.parse import quote

from syncd.store import Store, StoreError

CHECK_TIMEOUT_S = 5.0
"""How long `/readyz` waits for the database check before saying not ready (seconds)."""

_SQLITE_BUSY_S = 2.0


def _sqlite_file(store: Store) -> Path | None:
    """The database file of a file-backed SQLite store, or None (in memory, a `file:` URI, PostgreSQL)."""
    url = store.engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database).expanduser()


def check_database(store: Store) -> None:
    """Blocking: raise StoreError when the database cannot be used, with the driver's message."""
    path = _sqlite_file(store)
    if path is not None:
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=_SQLITE_BUSY_S)
            try:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as exc:
            raise StoreError(f"{type(exc).__name__}: {exc}") from exc
    store.count_by_status()


async def database_problem(store: Store, timeout_s: float = CHECK_TIMEOUT_S) -> str | None:
    """Why the database is not usable (for `/readyz`), or None when it is; runs off the event loop."""
    try:
        await asyncio.wait_for(asyncio.to_thread(check_database, store), timeout=timeout_s)
    except TimeoutError:
        return f"the database did not answer within {timeout_s:g} s"
    except StoreError as exc:
        return str(exc)
    return None


__all__ = ["CHECK_TIMEOUT_S", "check_database", "database_problem"]
