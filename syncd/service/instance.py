"""The single-instance lock: one process at a time runs cycles on a database (`syncd run` or `syncd sync`),
and a process refused says who holds it.

SQLite: an exclusive flock on `<database file>.lock`, named after the database's fully resolved path (so a
symlink or another spelling of the path finds the same lock) and released by the kernel when the holder
dies. Once locked, the holder writes its role and pid into the file (`{"role", "pid", "host"}`); a process
refused reads them ("syncd run (pid 1234) holds the lock on ..."). The file is emptied on release.

PostgreSQL: `syncd sync` takes the leader's session advisory lock (`syncd.store.schema.lock_key`) on a
connection of its own, named after it (`application_name`), so it never races a leading daemon nor a leader
it. A sync refused there reads the holder's `application_name`, or else where the leader says it is (the kv
key `leader`). Daemons on PostgreSQL take no instance lock: replicas elect a leader instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from syncd.store import Store, StoreError
from syncd.store.files import beside, open_lock_file, try_lock
from syncd.store.schema import LEADER_KEY, lock_key

Role = Literal["daemon", "sync"]
"""Who holds the lock: `syncd run` ("daemon") or `syncd sync` ("sync")."""

COMMANDS: dict[str, str] = {"daemon": "syncd run", "sync": "syncd sync"}
"""The command of each role, as messages name the holder."""


class AlreadyRunning(Exception):
    """Another syncd process holds the instance lock for this database.

    `holder_role` is "daemon" or "sync" when the holder could be told, else None; `str(error)` says who
    holds it, e.g. "syncd run (pid 1234) holds the lock on /data/syncd.db".
    """

    def __init__(self, message: str, *, holder_role: str | None) -> None:
        super().__init__(message)
        self.holder_role = holder_role


def describe_holder(document: object, *, with_host: bool = False) -> tuple[str, str | None] | None:
    """Pure: ("syncd run (pid 1234)", "daemon") from what a holder wrote ({"role", "pid", "host"}), or None
    when it says nothing usable."""
    if not isinstance(document, dict):
        return None
    role, pid, host = document.get("role"), document.get("pid"), document.get("host")
    if role not in COMMANDS or not isinstance(pid, int):
        return None
    where = f" on host {host}" if with_host and isinstance(host, str) and host else ""
    return f"{COMMANDS[role]} (pid {pid}{where})", str(role)


@contextlib.contextmanager
def instance_lock(store: Store, url: str, role: Role) -> Iterator[None]:
    """Hold the single-instance lock for this database as `role`, or raise AlreadyRunning naming who holds
    it. An in-memory SQLite database needs none."""
    if make_url(url).get_backend_name() == "sqlite":
        database = store.sqlite_file
        if database is None:
            yield
            return
        with _file_lock(database, role):
            yield
        return
    with _postgres_lock(store, role):
        yield


@contextlib.contextmanager
def _file_lock(database: Path, role: Role) -> Iterator[None]:
    path = beside(database, ".lock")
    handle: IO[str] = open_lock_file(path)
    try:
        if not try_lock(handle):
            holder = _read_holder(handle)
            who, holder_role = holder if holder is not None else ("another syncd", None)
            raise AlreadyRunning(f"{who} holds the lock on {database} ({path})", holder_role=holder_role)
        _write_holder(handle, {"role": role, "pid": os.getpid(), "host": socket.gethostname()})
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # a stale entry is only a less precise message
                _write_holder(handle, None)
    finally:
        handle.close()


def _write_holder(handle: IO[str], document: dict[str, object] | None) -> None:
    handle.seek(0)
    handle.truncate()
    if document is not None:
        handle.write(json.dumps(document))
    handle.flush()


def _read_holder(handle: IO[str]) -> tuple[str, str | None] | None:
    try:
        handle.seek(0)
        return describe_holder(json.loads(handle.read(4096) or "null"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _postgres_lock(store: Store, role: Role) -> Iterator[None]:
    # Autocommit: the lock's connection must not sit "idle in transaction" (timeouts would drop it).
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # The daemon's leader lock (`syncd.service.leader`): `syncd sync` never races a leader, nor a leader
        # it.
        key = lock_key(str(connection.execute(text("SELECT current_schema()")).scalar() or "public"))
        got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not got:
            who, holder_role = _postgres_holder(store, connection, key) or ("another syncd", None)
            raise AlreadyRunning(f"{who} holds the lock on {store.url}", holder_role=holder_role)
        name = f"{COMMANDS[role]} (pid {os.getpid()} on host {socket.gethostname()})"
        with contextlib.suppress(Exception):  # only the message of a process refused depends on it
            connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": name})
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a dead connection has released the lock anyway
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def _postgres_holder(store: Store, connection: Connection, key: int) -> tuple[str, str | None] | None:
    """Who holds the lock: a `syncd sync` names itself in its session's application_name; otherwise the
    holder is a leading daemon, which says where it is in the kv table."""
    try:
        name = connection.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid::bigint = :high AND l.objid::bigint = :low"
            ),
            {"high": key >> 32, "low": key & 0xFFFFFFFF},
        ).scalar()
    except Exception:  # only the message depends on it
        name = None
    if isinstance(name, str) and name.startswith(f"{COMMANDS['sync']} ("):
        return name, "sync"
    try:
        leader = json.loads(store.get_value(LEADER_KEY) or "null")
    except (StoreError, ValueError):
        return None
    return describe_holder(dict(leader, role="daemon") if isinstance(leader, dict) else None, with_host=True)


__all__ = ["COMMANDS", "AlreadyRunning", "Role", "describe_holder", "instance_lock"]
