"""The files of an SQLite database on disk, for the store and the daemon's instance lock.

- Its path, fully resolved (symlinks, `.` and `..`): the lock files beside it are named after that, so a
  symlink to the database or another spelling of its path finds the same locks.
- Its folder: syncd creates only the default one (`data/`, relative to the working directory, from the
  default `database.url`); any other missing folder is a configuration error naming `database.url`, so a
  typo never makes a database somewhere unexpected.
- Owner-only files (0600): the database is created before SQLite opens it (SQLite gives its -wal and -shm
  files the database's mode), and so are the lock files.
- Waiting for a lock file with a deadline, so a process starting never hangs silently.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import URL, make_url

from syncd.config.settings import DatabaseSettings
from syncd.store.records import UnusableDatabase

PRIVATE_FILE_MODE = 0o600
"""The mode of the files syncd creates for its database: readable and writable by their owner only."""

PRIVATE_FOLDER_MODE = 0o700
"""The mode of the default `data/` folder when syncd creates it."""

DEFAULT_FOLDER = Path(make_url(str(DatabaseSettings.model_fields["url"].default)).database or "x").parent
"""The folder of the default database.url (`data`, relative to the working directory): the only one
syncd creates."""

LOCK_POLL_S = 0.1
"""How often a process waiting for a lock file tries again (seconds)."""


def sqlite_file(url: URL) -> Path | None:
    """Pure but for the file system: the database file an SQLite URL names, fully resolved, or None for an
    in-memory database (or a URL of another backend)."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    if database.startswith("file:") and str(url.query.get("uri", "")).lower() in ("true", "1"):
        database = unquote(urlsplit(database).path)
        if not database or database == ":memory:":
            return None
    return Path(database).resolve()


def beside(database: Path, suffix: str) -> Path:
    """The file named `<database file><suffix>` in the database's folder (`database` already resolved)."""
    return database.with_name(database.name + suffix)


def ensure_folder(database: str, shown_url: str, *, create: bool = True) -> None:
    """Make sure the folder of an SQLite database file (`database`, as the URL spells it) exists: create it
    when it is the default `data/` (unless `create` is false: a reader finds no database there, which reads
    as empty), else raise UnusableDatabase naming database.url and the folder."""
    if database.startswith("file:"):
        return  # an SQLite URI: SQLite itself says what is wrong with it
    folder = Path(database).parent
    if folder.is_dir():
        return
    shown = os.path.abspath(folder)
    if folder.exists():
        raise UnusableDatabase(f"database.url = {shown_url}: {shown} is not a folder")
    if folder == DEFAULT_FOLDER:
        if not create:
            return
        try:
            folder.mkdir(mode=PRIVATE_FOLDER_MODE)
        except FileExistsError:
            return  # another process made it meanwhile
        except OSError as exc:
            raise UnusableDatabase(
                f"database.url = {shown_url}: cannot create the folder {shown}: {exc.strerror}"
            ) from exc
        return
    raise UnusableDatabase(
        f"database.url = {shown_url}: the folder {shown} does not exist; create it (syncd creates only the "
        f"default {DEFAULT_FOLDER}/ folder itself) or correct database.url"
    )


def create_private(path: Path) -> None:
    """Create `path` empty and owner-only (0600) unless it exists; SQLite then opens it as a new database.

    A failure is left for SQLite to report when it opens the file (its message names the database)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except OSError:
        return
    os.close(descriptor)


def open_lock_file(path: Path) -> IO[str]:
    """A lock file opened for reading and writing, created owner-only (0600) if it did not exist."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    return os.fdopen(descriptor, "r+", encoding="utf-8")


def try_lock(handle: IO[str]) -> bool:
    """Take an exclusive flock on `handle` if it is free (released by the kernel when the process dies)."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_within(handle: IO[str], timeout_s: float, *, on_wait: Callable[[], None] | None = None) -> bool:
    """Take an exclusive flock on `handle`, waiting at most `timeout_s`; False when it stayed taken.

    `on_wait` is called once, when the lock is found taken (to say what the process waits for)."""
    deadline = time.monotonic() + timeout_s
    waited = False
    while not try_lock(handle):
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(LOCK_POLL_S, max(0.0, deadline - time.monotonic())))
    return True


__all__ = [
    "DEFAULT_FOLDER",
    "PRIVATE_FILE_MODE",
    "beside",
    "create_private",
    "ensure_folder",
    "lock_within",
    "open_lock_file",
    "sqlite_file",
    "try_lock",
]
