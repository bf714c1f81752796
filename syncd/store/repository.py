"""The state store: members as we recorded them, runs, the operations audit log and small key/values, kept
in SQLite (the embedded default) or PostgreSQL (shared by replicas) through SQLAlchemy Core.

`Store` is the facade: it sets up the engine, opens the transactions, runs the migrations and keeps the
key/values; its methods on members and group memberships (`members`), the mapping cache (`mappings`), the
page memo (`pages`), operations and the history (`operations`) and runs (`runs`) come from one mixin each,
so every method is still `store.x(...)`.

Every public method is one short transaction and is synchronous: the transactions are small and local, so
the engine calls them straight from its event loop. The Python side speaks epoch seconds and the model's
types; the database holds UTC timestamps, enumeration values as text and JSON as text.

Every SQLAlchemy, DB-API or Alembic failure leaves the store as `StoreError`, raised `from` the cause,
whose message names the database URL with its password hidden and never repeats statement parameters;
`UnusableDatabase` (a StoreError) says what the user must do instead (a missing folder, a newer schema).

Commands that only read (`syncd status`, `history`, `explain`) open a read-only store: it never migrates and
never writes (SQLite opens the file read-only, PostgreSQL sessions are READ ONLY), so it works on a file and
folder syncd may not write, and `check_schema` replaces `upgrade`. SQLite files, their -wal and -shm files
and the lock files beside them are created owner-only (`syncd.store.files`).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, create_engine, delete, event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from syncd.store import tables
from syncd.store.common import BATCH_SIZE, IN_BATCH, to_datetime, upsert
from syncd.store.files import beside, create_private, ensure_folder, lock_within, open_lock_file, sqlite_file
from syncd.store.mappings import MappingsMixin
from syncd.store.members import MembersMixin
from syncd.store.operations import HISTORY_PAGE_SIZE, OperationsMixin
from syncd.store.pages import PagesMixin
from syncd.store.records import (
    HistoryEntry,
    OperationRecord,
    PendingOperation,
    RunRecord,
    Settlement,
    StoreError,
    UnusableDatabase,
)
from syncd.store.runs import PRUNE_BATCH_SIZE, RunsMixin
from syncd.store.schema import (
    SCHEMA_HEAD,
    STARTUP_TIMEOUT_S,
    SchemaState,
    alembic_config,
    current_heads,
    has_tables,
    migration_lock_key,
    refuse_unknown,
    require_head,
    schema_state,
    stamped_revisions,
    take_postgres_migration_lock,
)

# What this module exported before its parts moved out: still importable from here.
__all__ = [
    "BATCH_SIZE",
    "HISTORY_PAGE_SIZE",
    "IN_BATCH",
    "POSTGRES_CONNECT_TIMEOUT_S",
    "PRUNE_BATCH_SIZE",
    "SQLITE_PRAGMAS",
    "STARTUP_TIMEOUT_S",
    "HistoryEntry",
    "OperationRecord",
    "PendingOperation",
    "RunRecord",
    "Settlement",
    "Store",
    "StoreError",
    "UnusableDatabase",
    "migration_lock_key",
    "migrations_directory",
]

log = structlog.get_logger("syncd.store")

SQLITE_PRAGMAS = (
    # First, so that even switching the journal mode waits for another process instead of failing.
    "PRAGMA busy_timeout=5000",
    # Readers never block the writer and vice versa; one writer at a time waits (busy_timeout) for another.
    "PRAGMA journal_mode=WAL",
    # Durable at every checkpoint, fast per commit: with WAL a power cut can lose the last commits, never
    # corrupt the file, and the next cycle converges again anyway.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    # A checkpoint every 10,000 pages (a WAL of up to some 40 MB) instead of 1,000, and 16 MB of page cache
    # a connection instead of 2 MB. A batch of writes to people spread over a large table dirties hundreds
    # of pages, so at 1,000 nearly every commit of the apply step likely checkpointed, copying (and
    # syncing) pages the next batches dirty again. Together (neither helps as much alone): a fifth less CPU
    # to record and settle 80,000 onboardings (docs/benchmarks.md, round 8).
    "PRAGMA wal_autocheckpoint=10000",
    "PRAGMA cache_size=-16000",
)
"""Run on every new SQLite connection."""

POSTGRES_CONNECT_TIMEOUT_S = 10
"""libpq waits forever for an unreachable host by default; a daemon should fail and retry instead."""

_READ_ONLY = "syncd_read_only"
"""Execution option marking read transactions, which SQLite starts deferred instead of IMMEDIATE."""

_ERROR_LIMIT = 500
"""Characters of a driver's message kept in a StoreError."""


class Store(MembersMixin, MappingsMixin, PagesMixin, OperationsMixin, RunsMixin):
    """The state store on one database URL (`sqlite:///path`, `sqlite://` in memory, or
    `postgresql+psycopg://...`).

    Creating a Store does not connect; the first method call does. `connect_args` go to the DB-API
    `connect()` (tests use it to set a PostgreSQL `search_path`). Thread-safe for file and PostgreSQL URLs;
    an in-memory SQLite database is a single shared connection, for quick tests only.

    `read_only=True` opens it for commands that only read: nothing is created or written, not even a lock
    file; call `check_schema` instead of `upgrade`. Otherwise an SQLite database's folder must exist (the
    default `data/` is created), and its file is created owner-only.
    """

    def __init__(
        self, url: str, *, connect_args: Mapping[str, Any] | None = None, read_only: bool = False
    ) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            # Not repeated: where its password sits cannot be told.
            raise StoreError(f"invalid database URL: {exc}") from exc
        self._safe_url = _hide_password(parsed)
        self._secrets = [
            s for s in (parsed.password, parsed.query.get("password")) if isinstance(s, str) and s
        ]
        self._read_only = read_only
        self._file: Path | None = None
        """SQLite: the database file, fully resolved (it names the lock files); None in memory."""
        args = dict(connect_args or {})
        options: dict[str, Any] = {}
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            self._file = sqlite_file(parsed)
            if self._file is None:
                # One connection shared by every caller, or each would see its own empty database.
                options["poolclass"] = StaticPool
                args.setdefault("check_same_thread", False)
            else:
                ensure_folder(parsed.database or "", self._safe_url, create=not read_only)
        elif backend == "postgresql":
            # A connection dropped by a server restart is replaced on checkout instead of failing a cycle.
            options["pool_pre_ping"] = True
            if "connect_timeout" not in parsed.query:
                args.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
        else:
            raise StoreError(f"unsupported database {self._safe_url}: use sqlite:// or postgresql+psycopg://")
        try:
            self._engine = create_engine(parsed, connect_args=args, **options)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot use database {self._safe_url}: {self._describe(exc)}") from exc
        if backend == "sqlite":
            _install_sqlite_hooks(self._engine, self._file, read_only=read_only)
        elif read_only:
            _install_postgres_read_only(self._engine)
        self._reader = self._engine.execution_options(**{_READ_ONLY: True})

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self._safe_url!r})"

    @property
    def url(self) -> str:
        """The database URL with its password hidden, for logs and messages."""
        return self._safe_url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations, tests and admin tools; the engine uses the methods)."""
        return self._engine

    @property
    def shares_one_connection(self) -> bool:
        """An in-memory SQLite database: every caller shares its one connection, so calls must not overlap
        from several threads."""
        return isinstance(self._engine.pool, StaticPool)

    @property
    def read_only(self) -> bool:
        """Whether this store was opened for reading only (never migrated, never written)."""
        return self._read_only

    @property
    def sqlite_file(self) -> Path | None:
        """SQLite: the database file, fully resolved (symlinks, `.` and `..`); else None."""
        return self._file

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    # schema

    def upgrade(self, *, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Migrate the database to the newest revision (creating the tables in an empty one).

        Idempotent. Runs in one transaction on both backends (SQLite and PostgreSQL have transactional DDL),
        so a failed migration leaves the previous schema. Waits at most `timeout_s` for another process
        migrating (and, on PostgreSQL, for the table locks a migration needs), then fails saying so. A
        database written by a newer syncd is an UnusableDatabase, and is left as it is.
        """
        if self._read_only:
            raise StoreError(f"{self._safe_url} is open read-only: it is never migrated")
        if self._at_head():
            return
        self._migrate(timeout_s)

    def _at_head(self) -> bool:
        """Whether the database is stamped with this syncd's newest revision, read with plain SQL: a process
        starting on a current database (nearly every start) then never loads Alembic and its scripts."""
        if self._file is not None and not self._file.exists():
            return False
        with self._read("reading the schema revision") as connection:
            return stamped_revisions(connection) == (SCHEMA_HEAD,)

    def _migrate(self, timeout_s: float) -> None:
        from alembic import command

        config = alembic_config(str(migrations_directory()))
        deadline = time.monotonic() + timeout_s
        with self._migration_lock(deadline, timeout_s), self._write("upgrading the schema") as connection:
            if connection.dialect.name == "postgresql":
                take_postgres_migration_lock(connection, self._safe_url, deadline, timeout_s)
            else:
                # Batch migrations rebuild a table (copy, drop, rename); with foreign_keys=ON dropping a
                # referenced table fails at once unless checks wait for the commit. Reset at commit.
                connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            refuse_unknown(current_heads(connection), config, self._safe_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def check_schema(self) -> None:
        """What a read-only command does instead of `upgrade`: nothing when the database is at this syncd's
        revision; an UnusableDatabase saying what to do when it is behind (migrate it) or newer (upgrade
        syncd). A database never created reads as empty: an in-memory one with this syncd's tables stands in
        for it, and nothing is created where the URL points.
        """
        if self._file is not None and not self._file.exists():
            self._stand_in_for_empty()
            return
        with self._read("reading the schema revision") as connection:
            heads = stamped_revisions(connection)
            if heads == (SCHEMA_HEAD,):
                return
            tables_exist = has_tables(connection)
        if not heads and not tables_exist:
            self._stand_in_for_empty()
            return
        require_head(heads, alembic_config(str(migrations_directory())), self._safe_url)

    def _stand_in_for_empty(self) -> None:
        """An empty in-memory database with this syncd's tables in place of one never created. The tables come
        from `tables.metadata`, which the migrations produce exactly (tests/store compare them), so reading
        commands load no Alembic even then."""
        self._engine.dispose()
        memory = {"check_same_thread": False}
        self._engine = create_engine("sqlite://", poolclass=StaticPool, connect_args=memory)
        _install_sqlite_hooks(self._engine, None, read_only=False)
        self._reader = self._engine.execution_options(**{_READ_ONLY: True})
        self._file = None
        with self._write("creating the tables of an empty database") as connection:
            tables.metadata.create_all(connection)

    @contextmanager
    def _migration_lock(self, deadline: float, timeout_s: float) -> Iterator[None]:
        """SQLite: an exclusive flock beside the database file while migrating, so replicas starting
        together migrate one after the other however long a migration takes (busy_timeout would give up
        after 5 s), waiting until `deadline` at most. PostgreSQL takes a transaction advisory lock instead
        (`schema.take_postgres_migration_lock`); an in-memory database needs none."""
        if self._file is None:
            yield
            return
        path = beside(self._file, ".migrate-lock")
        try:
            handle = open_lock_file(path)
        except OSError as exc:
            raise StoreError(f"cannot open the migration lock {path}: {exc.strerror}") from exc
        with handle:

            def waiting() -> None:
                log.info("store.migration_lock_waiting", database=self._safe_url, lock=str(path))

            if not lock_within(handle, max(0.0, deadline - time.monotonic()), on_wait=waiting):
                raise StoreError(
                    f"timed out after {timeout_s:g} s waiting for the migration lock {path} of "
                    f"{self._safe_url}: another syncd has been migrating it that long (or holds the lock)"
                )
            yield  # released when the file closes (or the process dies)

    def schema_state(self) -> SchemaState:
        """Where the schema stands against this syncd's migrations, read without migrating or writing
        anything: for `syncd check`."""
        config = alembic_config(str(migrations_directory()))
        with self._read("reading the schema revision") as connection:
            return schema_state(connection, config)

    def probe_write(self) -> None:
        """Prove the database takes writes without leaving any: in one transaction, create a table and write
        a row (and a key/value when syncd's tables exist), then roll it all back. StoreError when it refuses.
        For `syncd check`."""
        with self._failures("trying a write"), self._engine.connect() as connection:
            transaction = connection.begin()  # on SQLite BEGIN IMMEDIATE: the write lock, as a cycle takes it
            try:
                connection.exec_driver_sql("CREATE TABLE syncd_check_probe (id INTEGER)")
                connection.exec_driver_sql("INSERT INTO syncd_check_probe (id) VALUES (1)")
                if has_tables(connection):
                    row = {"key": "syncd_check_probe", "value": "", "updated_at": to_datetime(time.time())}
                    connection.execute(upsert(connection, tables.kv, "key", ("value", "updated_at")), [row])
            finally:
                transaction.rollback()

    def current_revision(self) -> str | None:
        """The schema's Alembic revision, or None for a database never migrated."""
        from alembic.runtime.migration import MigrationContext

        with self._read("reading the schema revision") as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # key/value

    def delete_values(self, keys: Collection[str]) -> None:
        """Forget the values stored under `keys` (missing keys are fine)."""
        if not keys:
            return
        with self._write("deleting values") as connection:
            connection.execute(delete(tables.kv).where(tables.kv.c.key.in_(list(keys))))

    def get_value(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        query = select(tables.kv.c.value).where(tables.kv.c.key == key)
        with self._read("reading a value") as connection:
            value: str | None = connection.execute(query).scalar_one_or_none()
            return value

    def set_value(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing any previous one."""
        self.set_values({key: value})

    def set_values(self, values: Mapping[str, str]) -> None:
        """Store several values in one transaction."""
        if not values:
            return
        now = to_datetime(time.time())
        rows = [{"key": key, "value": value, "updated_at": now} for key, value in values.items()]
        with self._write("storing values") as connection:
            connection.execute(upsert(connection, tables.kv, "key", ("value", "updated_at")), rows)

    # transactions and errors

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        """A read-write transaction (on SQLite: BEGIN IMMEDIATE), committed unless the block raises."""
        with self._failures(doing), self._engine.begin() as connection:
            yield connection

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        """A read-only transaction (on SQLite: deferred, so it never waits for a writer)."""
        with self._failures(doing), self._reader.connect() as connection:
            yield connection

    @contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            # The driver's own errors too: the full cycle's bulk reads use the DBAPI cursor directly.
            driver_error = getattr(self._engine.dialect.loaded_dbapi, "Error", SQLAlchemyError)
            if not isinstance(exc, SQLAlchemyError | driver_error) and not _alembic_error(exc):
                raise
            raise StoreError(f"{doing} failed on {self._safe_url}: {self._describe(exc)}") from exc

    def _describe(self, exc: BaseException) -> str:
        """The driver's own message: SQLAlchemy's rendering would repeat the statement's parameters."""
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        text = " ".join(f"{type(cause).__name__}: {cause}".split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:_ERROR_LIMIT]


def _alembic_error(exc: BaseException) -> bool:
    """Whether `exc` is Alembic's CommandError, without importing Alembic: only a process that loaded
    Alembic (to migrate or check a revision) can raise it."""
    util = sys.modules.get("alembic.util")
    return util is not None and isinstance(exc, util.CommandError)


def migrations_directory() -> Path:
    """The directory of the `migrations` package (env.py and versions/), wherever it is installed.

    Found through the import system rather than relative to this file, so it works from a checkout, an
    editable install (where it may show up as a namespace package) and a wheel in site-packages alike.
    """
    try:
        spec = importlib.util.find_spec("migrations")
    except (ImportError, ValueError) as exc:
        raise StoreError(f"cannot import the migrations package: {exc}") from exc
    locations = [] if spec is None else list(spec.submodule_search_locations or [])
    for location in locations:
        directory = Path(location)
        # Another distribution could ship a top-level "migrations" too: ours is the one with env.py.
        if (directory / "env.py").is_file() and (directory / "versions").is_dir():
            return directory
    raise StoreError(f"the migrations package (env.py, versions/) is not installed; searched {locations}")


def _install_sqlite_hooks(engine: Engine, file: Path | None, *, read_only: bool) -> None:
    """Pragmas on every connection, and SQLAlchemy (not sqlite3) in charge of BEGIN. A file database is
    created owner-only before SQLite opens it, or, read-only, opened as such (`_open_read_only`)."""

    if file is not None:

        @event.listens_for(engine, "do_connect")
        def _on_do_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
            if read_only:
                return _open_read_only(dialect.loaded_dbapi, file, cparams)
            # SQLite would create it with 0644; its -wal and -shm files take the database's mode.
            create_private(file)
            return None  # SQLAlchemy connects as usual

    # A read-only connection cannot switch the journal mode; a database syncd wrote is in WAL already.
    pragmas = [p for p in SQLITE_PRAGMAS if not (read_only and "journal_mode" in p)]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # sqlite3's legacy transaction control would skip BEGIN before DDL and SELECT; take it over.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY, whatever
        # busy_timeout says, if another connection wrote in between: writers take the lock up front.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_SQLITE_READONLY, _SQLITE_CANTOPEN = 8, 14
"""SQLite's primary result codes for a database that cannot be written, or opened, as asked."""


def _open_read_only(dbapi: Any, file: Path, params: dict[str, Any]) -> Any:
    """An SQLite connection that can only read `file` (`mode=ro`).

    A WAL database needs its -shm file, which a reader creates when it is missing; where it cannot (a
    read-only folder, and no process has the database open, so no -shm), the file is opened `immutable`,
    which reads it without locks: no writer can be at work then, as a writer would have made the -shm file.
    """
    params = {key: value for key, value in params.items() if key != "uri"}
    base = file.as_uri()
    for query in ("mode=ro", "mode=ro&immutable=1"):
        connection = dbapi.connect(f"{base}?{query}", uri=True, **params)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except dbapi.OperationalError as exc:
            connection.close()
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if "immutable" in query or code not in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
                raise
            continue
        return connection
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _install_postgres_read_only(engine: Engine) -> None:
    """Every session of a read-only store refuses writes (`SET SESSION CHARACTERISTICS ... READ ONLY`)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        dbapi_connection.commit()


def _hide_password(url: URL) -> str:
    """The URL for messages: its password, and a libpq `password` query parameter, as "***"."""
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    return url.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
