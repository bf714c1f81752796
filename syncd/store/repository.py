"""The state store: members as we recorded them, runs, the operations audit log and small key/values, kept
in SQLite (the embedded default) or PostgreSQL (shared by replicas) through SQLAlchemy Core.

Every public method is one short transaction and is synchronous: the transactions are small and local, so
the engine calls them straight from its event loop. The Python side speaks epoch seconds and the model's
types; the database holds UTC timestamps, enumeration values as text and JSON as text.

Every SQLAlchemy, DB-API or Alembic failure leaves this module as `StoreError`, raised `from` the cause,
whose message names the database URL with its password hidden and never repeats statement parameters.
"""

from __future__ import annotations

import fcntl
import importlib.util
import itertools
import json
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Insert

from syncd.core.model import Action, AgentFields, Change, MemberStatus, Outcome, Recorded, SkipReason
from syncd.store import tables

SQLITE_PRAGMAS = (
    # First, so that even switching the journal mode waits for another process instead of failing.
    "PRAGMA busy_timeout=5000",
    # Readers never block the writer and vice versa; one writer at a time waits (busy_timeout) for another.
    "PRAGMA journal_mode=WAL",
    # Durable at every checkpoint, fast per commit: with WAL a power cut can lose the last commits, never
    # corrupt the file, and the next cycle converges again anyway.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
"""Run on every new SQLite connection."""

BATCH_SIZE = 5_000
"""Rows per executemany when saving members: bounds memory, not transactions (one per call)."""
IN_BATCH = 500
"""IDs per `IN (...)` list: well under SQLite's bound-parameter limit."""

PRUNE_BATCH_SIZE = 10_000
"""Rows deleted per transaction when pruning the history: a first prune of millions of rows is many short
transactions, never one that holds SQLite's write lock (or PostgreSQL's row locks) for minutes."""

HISTORY_PAGE_SIZE = 1_000
"""Operations read per query while streaming the history: memory stays flat for any number of rows."""

POSTGRES_CONNECT_TIMEOUT_S = 10
"""libpq waits forever for an unreachable host by default; a daemon should fail and retry instead."""

MIGRATION_LOCK_KEY = 0x73796E6364
"""PostgreSQL advisory lock ("syncd") held while migrating, so replicas starting together take turns."""

_READ_ONLY = "syncd_read_only"
"""Execution option marking read transactions, which SQLite starts deferred instead of IMMEDIATE."""

_ERROR_LIMIT = 500
"""Characters of a driver's message kept in a StoreError."""

_MEMBER_COLUMNS = tuple(column.name for column in tables.members.columns if column.name != "object_id")
"""What an upsert of a whole member row replaces."""

_RECORDED_COLUMNS = tuple(
    tables.members.c[name]
    for name in (
        "object_id",
        "status",
        "agent_active",
        "tenant_id",
        "phone_number",
        "upn_pushed",
        "consistency_id",
        "upn",
        "skip_reason",
        "detail",
        "attempts",
        "next_attempt_at",
        "phone_source",
    )
)
"""The columns `_recorded` decodes, in its order."""


class StoreError(Exception):
    """A database failure: unreachable, locked, constraint violated, schema too new, ...

    The message names the database with its password hidden; the driver's exception is the `__cause__`.
    """


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One cycle as recorded."""

    id: int
    trigger: str
    """Who started it: "cli", "schedule", "manual", ..."""
    kind: str
    """"incremental" or "full"."""
    dry_run: bool
    started_at: float
    """Epoch seconds."""
    ended_at: float | None
    """Epoch seconds; None while running."""
    outcome: str
    """"running", "ok", "failed", "guard", "interrupted" or "error"."""
    counts: dict[str, int]
    error: str | None


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One write to SmartCommunicator as the audit log holds it."""

    id: int
    run_id: int
    object_id: str
    action: Action
    outcome: Outcome
    http_status: int | None
    error: str | None
    """The API's message for a failure; never a secret."""
    desired: AgentFields | None
    believed: AgentFields | None
    created_at: float
    """Epoch seconds: when it was recorded, just before the request was sent."""
    settled_at: float | None
    """Epoch seconds; None while pending."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One operation of the audit history with what we know now of its member."""

    operation: OperationRecord
    member_upn: str | None
    """The member's UPN as last seen in Graph (now, not when the operation ran); None when unknown."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one write ended, for `Store.settle_operations`."""

    op_id: int
    outcome: Outcome
    record: Recorded
    http_status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PendingOperation:
    """A write whose request may or may not have reached SmartCommunicator (the process stopped before
    its outcome was recorded): the engine reads the agent back to settle it."""

    id: int
    run_id: int
    object_id: str
    action: Action
    desired: AgentFields | None
    believed: AgentFields | None


class Store:
    """The state store on one database URL (`sqlite:///path`, `sqlite://` in memory, or
    `postgresql+psycopg://...`).

    Creating a Store does not connect; the first method call does. `connect_args` go to the DB-API
    `connect()` (tests use it to set a PostgreSQL `search_path`). Thread-safe for file and PostgreSQL URLs;
    an in-memory SQLite database is a single shared connection, for quick tests only.
    """

    def __init__(self, url: str, *, connect_args: Mapping[str, Any] | None = None) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            # Not repeated: where its password sits cannot be told.
            raise StoreError(f"invalid database URL: {exc}") from exc
        self._safe_url = _hide_password(parsed)
        self._secrets = [
            s for s in (parsed.password, parsed.query.get("password")) if isinstance(s, str) and s
        ]
        args = dict(connect_args or {})
        options: dict[str, Any] = {}
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
                # One connection shared by every caller, or each would see its own empty database.
                options["poolclass"] = StaticPool
                args.setdefault("check_same_thread", False)
            elif not database.startswith("file:"):
                try:
                    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the directory of {self._safe_url}: {exc}") from exc
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
            _install_sqlite_hooks(self._engine)
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

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    # schema

    def upgrade(self) -> None:
        """Migrate the database to the newest revision (creating the tables in an empty one).

        Idempotent. Runs in one transaction on both backends (SQLite and PostgreSQL have transactional DDL),
        so a failed migration leaves the previous schema.
        """
        config = Config()
        config.set_main_option("script_location", str(migrations_directory()))
        # Without it Alembic warns (DeprecationWarning) about legacy path splitting.
        config.set_main_option("path_separator", "os")
        with self._migration_lock(), self._write("upgrading the schema") as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            else:
                # Batch migrations rebuild a table (copy, drop, rename); with foreign_keys=ON dropping a
                # referenced table fails at once unless checks wait for the commit. Reset at commit.
                connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """SQLite: an exclusive flock beside the database file while migrating, so replicas starting
        together migrate one after the other however long a migration takes (busy_timeout would give up
        after 5 s). PostgreSQL takes a transaction advisory lock instead; an in-memory database needs none."""
        url = self._engine.url
        database = url.database or ""
        if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            yield
            return
        path = Path(database).resolve().with_name(Path(database).name + ".migrate-lock")
        try:
            handle = path.open("a+")
        except OSError as exc:
            raise StoreError(f"cannot open the migration lock {path}: {exc.strerror}") from exc
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file closes (or the process dies)
            yield

    def current_revision(self) -> str | None:
        """The schema's Alembic revision, or None for a database never migrated."""
        with self._read("reading the schema revision") as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # members

    def load_recorded(self, object_ids: Collection[str] | None = None) -> dict[str, Recorded]:
        """Every member row by object ID, or only those of `object_ids` (read in batches, never one SELECT
        per person)."""
        if object_ids is None:
            query = select(*_RECORDED_COLUMNS)
            with self._read("loading members") as connection:
                return {row[0]: _recorded(row) for row in connection.execute(query)}
        m = tables.members
        found: dict[str, Recorded] = {}
        wanted = list(object_ids)
        with self._read("loading members") as connection:
            for start in range(0, len(wanted), IN_BATCH):
                batch = wanted[start : start + IN_BATCH]
                rows = connection.execute(select(*_RECORDED_COLUMNS).where(m.c.object_id.in_(batch)))
                found.update((row[0], _recorded(row)) for row in rows)
        return found

    def unsettled(self, now: float) -> tuple[list[str], list[str]]:
        """Object IDs whose last write failed (or was never settled): those whose backoff has run out at
        `now` and those still waiting. An incremental cycle plans the first again although Graph reported no
        change, and counts the second as waiting."""
        m = tables.members
        query = (
            select(m.c.object_id, m.c.next_attempt_at)
            .where(m.c.status.in_([MemberStatus.FAILED.value, MemberStatus.PENDING.value]))
            .order_by(m.c.object_id)
        )
        due: list[str] = []
        waiting: list[str] = []
        with self._read("finding members due for a retry") as connection:
            for object_id, next_attempt_at in connection.execute(query):
                if next_attempt_at is None or _to_epoch(next_attempt_at) <= now:
                    due.append(object_id)
                else:
                    waiting.append(object_id)
        return due, waiting

    def find_members(self, text: str) -> list[tuple[Recorded, float]]:
        """Members whose object ID, UPN (last seen or pushed, any case) or agent's number is `text`, with
        when their row last changed (epoch seconds), by object ID."""
        m = tables.members
        wanted = text.strip()
        lowered = wanted.lower()
        query = (
            select(*_RECORDED_COLUMNS, m.c.updated_at)
            .where(
                (m.c.object_id == lowered)
                | (func.lower(m.c.upn) == lowered)
                | (func.lower(m.c.upn_pushed) == lowered)
                | (m.c.phone_number == wanted)
            )
            .order_by(m.c.object_id)
        )
        with self._read("finding members") as connection:
            return [(_recorded(row[:-1]), _to_epoch(row[-1])) for row in connection.execute(query)]

    def save_members(self, records: Iterable[Recorded]) -> None:
        """Insert or replace many members in one transaction (the last record wins for a repeated ID)."""
        now = _to_datetime(time.time())
        with self._write("saving members") as connection:
            statement = _upsert(connection, tables.members, "object_id", _MEMBER_COLUMNS)
            # Keyed by object ID: PostgreSQL refuses one statement that upserts the same row twice.
            batch: dict[str, dict[str, Any]] = {}
            for record in records:
                batch[record.object_id] = _member_row(record, now)
                if len(batch) >= BATCH_SIZE:
                    connection.execute(statement, list(batch.values()))
                    batch = {}
            if batch:
                connection.execute(statement, list(batch.values()))

    def members_needing_attention(self) -> list[Recorded]:
        """Members whose last write failed or is not settled, by object ID."""
        m = tables.members
        query = (
            select(*_RECORDED_COLUMNS)
            .where(m.c.status.in_([MemberStatus.FAILED.value, MemberStatus.PENDING.value]))
            .order_by(m.c.object_id)
        )
        with self._read("loading members needing attention") as connection:
            return [_recorded(row) for row in connection.execute(query)]

    def count_by_status(self) -> dict[str, int]:
        """Members per status, for the statuses that have any."""
        m = tables.members
        query = select(m.c.status, func.count()).group_by(m.c.status).order_by(m.c.status)
        with self._read("counting members") as connection:
            return {status: count for status, count in connection.execute(query)}

    def count_by_skip_reason(self) -> dict[str, int]:
        """People out of scope (status skipped) per reason, for the reasons that have any."""
        m = tables.members
        query = (
            select(m.c.skip_reason, func.count())
            .where(m.c.status == MemberStatus.SKIPPED.value)
            .group_by(m.c.skip_reason)
            .order_by(m.c.skip_reason)
        )
        with self._read("counting skipped members") as connection:
            return {str(reason or "unknown"): count for reason, count in connection.execute(query)}

    def count_by_phone_source(self) -> dict[str, int]:
        """Active agents per source of their number ("unknown" where it was not recorded)."""
        m = tables.members
        source = func.coalesce(m.c.phone_source, "unknown")
        query = (
            select(source, func.count()).where(m.c.agent_active.is_(True)).group_by(source).order_by(source)
        )
        with self._read("counting phone sources") as connection:
            return {name: count for name, count in connection.execute(query)}

    # runs

    def begin_run(self, *, trigger: str, kind: str, dry_run: bool) -> int:
        """Record a cycle starting now (outcome "running"); its ID."""
        statement = insert(tables.runs).values(
            trigger=trigger,
            kind=kind,
            dry_run=dry_run,
            started_at=_to_datetime(time.time()),
            outcome="running",
            counts="{}",
        )
        with self._write("recording a run") as connection:
            return _inserted_id(connection, statement)

    def finish_run(
        self, run_id: int, *, outcome: str, counts: Mapping[str, int], error: str | None = None
    ) -> None:
        """Record how a cycle ended (ended_at is now)."""
        r = tables.runs
        statement = (
            update(r)
            .where(r.c.id == run_id)
            .values(
                ended_at=_to_datetime(time.time()),
                outcome=outcome,
                counts=json.dumps({str(key): int(value) for key, value in counts.items()}, sort_keys=True),
                error=error,
            )
        )
        with self._write("finishing a run") as connection:
            if connection.execute(statement).rowcount != 1:
                raise StoreError(f"no run {run_id} in {self._safe_url}")

    def interrupt_running_runs(self) -> int:
        """Mark every run still "running" (its process died) as "interrupted"; how many there were."""
        r = tables.runs
        statement = (
            update(r)
            .where(r.c.outcome == "running")
            .values(outcome="interrupted", ended_at=_to_datetime(time.time()))
        )
        with self._write("interrupting runs") as connection:
            return connection.execute(statement).rowcount

    def runs(self, *, limit: int = 10) -> list[RunRecord]:
        """The latest runs, newest first."""
        r = tables.runs
        query = select(r).order_by(r.c.id.desc()).limit(limit)
        with self._read("listing runs") as connection:
            return [
                RunRecord(
                    id=row.id,
                    trigger=row.trigger,
                    kind=row.kind,
                    dry_run=row.dry_run,
                    started_at=_to_epoch(row.started_at),
                    ended_at=_to_epoch_or_none(row.ended_at),
                    outcome=row.outcome,
                    counts={str(key): int(value) for key, value in json.loads(row.counts).items()},
                    error=row.error,
                )
                for row in connection.execute(query)
            ]

    # operations

    def start_operation(self, run_id: int, change: Change) -> int:
        """Record a write as pending, before its request is sent, and mark the member pending; its ID.

        One transaction, so a crash leaves either both or neither. A member seen for the first time gets a
        row with no agent.
        """
        return self.start_operations(run_id, [change])[0]

    def settle_operation(
        self,
        op_id: int,
        *,
        outcome: Outcome,
        record: Recorded,
        http_status: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record how a write ended and replace the member's row with `record`, in one transaction."""
        now = _to_datetime(time.time())
        o = tables.operations
        statement = (
            update(o)
            .where(o.c.id == op_id)
            .values(outcome=outcome.value, http_status=http_status, error=error, settled_at=now)
        )
        with self._write("settling an operation") as connection:
            if connection.execute(statement).rowcount != 1:
                raise StoreError(f"no operation {op_id} in {self._safe_url}")
            connection.execute(
                _upsert(connection, tables.members, "object_id", _MEMBER_COLUMNS), _member_row(record, now)
            )

    def start_operations(self, run_id: int, changes: Sequence[Change]) -> list[int]:
        """Record writes as pending before their requests are sent, and mark their members pending, in one
        transaction (a crash leaves all or none); their IDs, in the order of `changes`."""
        if not changes:
            return []
        now = _to_datetime(time.time())
        o = tables.operations
        operations = [
            {
                "run_id": run_id,
                "object_id": change.object_id,
                "action": change.action.value,
                "outcome": Outcome.PENDING.value,
                "desired": _fields_json(change.desired),
                "believed": _fields_json(change.believed),
                "created_at": now,
            }
            for change in changes
        ]
        members: dict[str, dict[str, Any]] = {}
        for change in changes:
            known = change.desired or change.believed
            # A member seen for the first time gets a row with no agent.
            members[change.object_id] = {
                "object_id": change.object_id,
                "status": MemberStatus.PENDING.value,
                "agent_active": False,
                "upn": known.upn if known is not None else None,
                "attempts": 0,
                "updated_at": now,
            }
        with self._write("starting operations") as connection:
            returned = connection.execute(
                insert(o).returning(o.c.id, sort_by_parameter_order=True), operations
            ).scalars()
            ids = [int(op_id) for op_id in returned]
            # An existing row keeps its believed agent until the outcome is known: only its status changes.
            mark_pending = _upsert(connection, tables.members, "object_id", ("status", "updated_at"))
            connection.execute(mark_pending, list(members.values()))
        return ids

    def settle_operations(self, settled: Sequence[Settlement]) -> None:
        """`settle_operation` for many writes in one transaction."""
        if not settled:
            return
        now = _to_datetime(time.time())
        o = tables.operations
        statement = (
            update(o)
            .where(o.c.id == bindparam("op_id"))
            .values(
                outcome=bindparam("outcome_value"),
                http_status=bindparam("status_value"),
                error=bindparam("error_value"),
                settled_at=now,
            )
        )
        rows = [
            {
                "op_id": item.op_id,
                "outcome_value": item.outcome.value,
                "status_value": item.http_status,
                "error_value": item.error,
            }
            for item in settled
        ]
        members = {item.record.object_id: _member_row(item.record, now) for item in settled}
        with self._write("settling operations") as connection:
            connection.execute(statement, rows)
            connection.execute(
                _upsert(connection, tables.members, "object_id", _MEMBER_COLUMNS), list(members.values())
            )

    def pending_operations(self) -> list[PendingOperation]:
        """Operations never settled (the process stopped between request and outcome), oldest first."""
        o = tables.operations
        query = (
            select(o.c.id, o.c.run_id, o.c.object_id, o.c.action, o.c.desired, o.c.believed)
            .where(o.c.outcome == Outcome.PENDING.value)
            .order_by(o.c.id)
        )
        with self._read("listing pending operations") as connection:
            return [
                PendingOperation(
                    id=row.id,
                    run_id=row.run_id,
                    object_id=row.object_id,
                    action=Action(row.action),
                    desired=_fields(row.desired),
                    believed=_fields(row.believed),
                )
                for row in connection.execute(query)
            ]

    def operations(
        self, *, object_id: str | None = None, run_id: int | None = None, limit: int = 100
    ) -> list[OperationRecord]:
        """The latest operations, newest first, optionally of one member and/or one run."""
        o = tables.operations
        query = select(o).order_by(o.c.id.desc()).limit(limit)
        if object_id is not None:
            query = query.where(o.c.object_id == object_id)
        if run_id is not None:
            query = query.where(o.c.run_id == run_id)
        with self._read("listing operations") as connection:
            return [_operation(row) for row in connection.execute(query)]

    def iter_operations(
        self,
        *,
        object_ids: Collection[str] | None = None,
        since: float | None = None,
        actions: Collection[Action] | None = None,
        outcomes: Collection[Outcome] | None = None,
        limit: int | None = None,
        page_size: int = HISTORY_PAGE_SIZE,
    ) -> Iterator[HistoryEntry]:
        """The operations matching every given filter, newest (highest ID) first, with their member's UPN.

        `object_ids`: of these members only (empty: none); `since`: created at or after this epoch second;
        `actions`, `outcomes`: any of these (empty: none); `limit`: at most this many (None: all).

        Streams: each page of `page_size` rows is its own short read transaction, the next page continuing
        below the last ID seen, so millions of rows never sit in memory and no long transaction holds back
        SQLite's checkpoints or PostgreSQL's vacuum. Rows added meanwhile are newer than the first page and
        not returned; rows deleted meanwhile (a prune) are skipped.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        o, m = tables.operations, tables.members
        query = select(o, m.c.upn.label("member_upn")).select_from(
            o.outerjoin(m, m.c.object_id == o.c.object_id)
        )
        if object_ids is not None:
            query = query.where(o.c.object_id.in_(sorted(set(object_ids))))
        if since is not None:
            query = query.where(o.c.created_at >= _to_datetime(since))
        if actions is not None:
            query = query.where(o.c.action.in_(sorted(action.value for action in actions)))
        if outcomes is not None:
            query = query.where(o.c.outcome.in_(sorted(outcome.value for outcome in outcomes)))
        query = query.order_by(o.c.id.desc())
        remaining = limit
        below: int | None = None
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            page_query = query if below is None else query.where(o.c.id < below)
            with self._read("reading the history") as connection:
                page = [_history_entry(row) for row in connection.execute(page_query.limit(size))]
            yield from page
            if len(page) < size:
                return
            below = page[-1].operation.id
            if remaining is not None:
                remaining -= len(page)

    def prune_history(
        self,
        before_epoch: float,
        batch_size: int = PRUNE_BATCH_SIZE,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[int, int]:
        """Delete the settled operations created before `before_epoch`, then the runs started before it
        that have no operation left; how many of each were deleted.

        Pending operations stay (the next start settles them), and so do their runs and runs still
        "running". Each batch of at most `batch_size` rows is its own transaction; `should_stop` is asked
        between batches (from this thread) and ends the pruning early when it returns true.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        cutoff = _to_datetime(before_epoch)
        o = tables.operations
        # An alias: a subquery on the DELETE's own table would otherwise be correlated to it.
        old_ops = o.alias("old_operations")
        operations_batch = delete(o).where(
            o.c.id.in_(
                select(old_ops.c.id)
                .where(old_ops.c.created_at < cutoff, old_ops.c.outcome != Outcome.PENDING.value)
                .limit(batch_size)
            )
        )
        r = tables.runs
        old_runs = r.alias("old_runs")
        runs_batch = delete(r).where(
            r.c.id.in_(
                select(old_runs.c.id)
                .where(
                    old_runs.c.started_at < cutoff,
                    old_runs.c.outcome != "running",
                    ~exists().where(o.c.run_id == old_runs.c.id),
                )
                .limit(batch_size)
            )
        )
        deleted = [0, 0]
        for index, statement in enumerate((operations_batch, runs_batch)):
            while should_stop is None or not should_stop():
                with self._write("pruning the history") as connection:
                    count = connection.execute(statement).rowcount
                deleted[index] += count
                if count < batch_size:
                    break
        return deleted[0], deleted[1]

    # group memberships (Graph delta)

    def replace_edges(self, edges: dict[tuple[str, str], str]) -> int:
        """Make the stored memberships exactly `edges` ((group ID, member ID) -> "user" | "group") in one
        transaction, writing only the difference; returns how many are stored. Consumes `edges` (emptied
        as it goes), so a large tree is never held twice."""
        table = tables.graph_edges
        wanted = len(edges)
        with self._write("replacing group memberships") as connection:
            gone: list[tuple[str, str]] = []
            changed: list[tuple[str, str, str]] = []
            rows = connection.execute(select(table.c.group_id, table.c.member_id, table.c.member_kind))
            for group_id, member_id, kind in rows:
                now_kind = edges.pop((group_id, member_id), None)
                if now_kind != kind:
                    gone.append((group_id, member_id))
                    if now_kind is not None:
                        changed.append((group_id, member_id, now_kind))
            _delete_edges(connection, gone)
            # What is left was not stored; `changed` was stored with another kind (deleted just above).
            _insert_edges(connection, itertools.chain(changed, _drain(edges)))
        return wanted

    def apply_edge_changes(
        self, added: Collection[tuple[str, str, str]], removed: Collection[tuple[str, str]]
    ) -> None:
        """Add memberships (group ID, member ID, kind) and remove others (group ID, member ID), in one
        transaction; adding a stored pair or removing a missing one is not an error (deltas replay)."""
        if not added and not removed:
            return
        with self._write("updating group memberships") as connection:
            _delete_edges(connection, list(removed))
            _insert_edges(connection, added)

    def remove_member_edges(self, member_ids: Collection[str]) -> None:
        """Forget every membership of these members (users deleted from the directory)."""
        table = tables.graph_edges
        wanted = list(member_ids)
        if not wanted:
            return
        with self._write("removing group memberships") as connection:
            for start in range(0, len(wanted), IN_BATCH):
                connection.execute(
                    delete(table).where(table.c.member_id.in_(wanted[start : start + IN_BATCH]))
                )

    def memberships(self, member_ids: Collection[str]) -> dict[str, set[str]]:
        """The tracked groups each of `member_ids` is a direct member of (absent: none), read in batches."""
        table = tables.graph_edges
        wanted = list(member_ids)
        found: dict[str, set[str]] = {}
        with self._read("reading group memberships") as connection:
            for start in range(0, len(wanted), IN_BATCH):
                query = select(table.c.member_id, table.c.group_id).where(
                    table.c.member_id.in_(wanted[start : start + IN_BATCH])
                )
                for member_id, group_id in connection.execute(query):
                    found.setdefault(member_id, set()).add(group_id)
        return found

    def count_users_in(self, group_ids: Collection[str]) -> int:
        """How many distinct users are direct members of any of `group_ids`."""
        table = tables.graph_edges
        query = (
            select(func.count(table.c.member_id.distinct()))
            .where(table.c.group_id.in_(list(group_ids)))
            .where(table.c.member_kind == "user")
        )
        with self._read("counting group members") as connection:
            return int(connection.execute(query).scalar_one())

    def count_edges(self) -> int:
        """How many memberships are stored."""
        with self._read("counting group memberships") as connection:
            return int(connection.execute(select(func.count()).select_from(tables.graph_edges)).scalar_one())

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
        now = _to_datetime(time.time())
        rows = [{"key": key, "value": value, "updated_at": now} for key, value in values.items()]
        with self._write("storing values") as connection:
            connection.execute(_upsert(connection, tables.kv, "key", ("value", "updated_at")), rows)

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
        except (SQLAlchemyError, CommandError) as exc:
            raise StoreError(f"{doing} failed on {self._safe_url}: {self._describe(exc)}") from exc

    def _describe(self, exc: BaseException) -> str:
        """The driver's own message: SQLAlchemy's rendering would repeat the statement's parameters."""
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        text = " ".join(f"{type(cause).__name__}: {cause}".split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:_ERROR_LIMIT]


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


def _install_sqlite_hooks(engine: Engine) -> None:
    """Pragmas on every connection, and SQLAlchemy (not sqlite3) in charge of BEGIN."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # sqlite3's legacy transaction control would skip BEGIN before DDL and SELECT; take it over.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY, whatever
        # busy_timeout says, if another connection wrote in between: writers take the lock up front.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _upsert(connection: Connection, table: Table, key: str, update_columns: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET the given columns from the inserted row."""
    statement: sqlite.Insert | postgresql.Insert
    if connection.dialect.name == "sqlite":
        statement = sqlite.insert(table)
    elif connection.dialect.name == "postgresql":
        statement = postgresql.insert(table)
    else:  # pragma: no cover - Store refuses other backends
        raise StoreError(f"no upsert for {connection.dialect.name}")
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[key], set_={column: excluded[column] for column in update_columns}
    )


def _delete_edges(connection: Connection, pairs: Sequence[tuple[str, str]]) -> None:
    """Delete memberships (group ID, member ID), a batch per statement."""
    table = tables.graph_edges
    statement = delete(table).where(table.c.group_id == bindparam("g"), table.c.member_id == bindparam("m"))
    for start in range(0, len(pairs), BATCH_SIZE):
        connection.execute(statement, [{"g": g, "m": m} for g, m in pairs[start : start + BATCH_SIZE]])


def _insert_edges(connection: Connection, edges: Iterable[tuple[str, str, str]]) -> None:
    """Insert memberships (group ID, member ID, kind), a batch per statement; stored pairs are kept."""
    statement = _insert_ignore(connection, tables.graph_edges)
    batch: dict[tuple[str, str], dict[str, str]] = {}  # by pair: one statement must not touch a row twice
    for group_id, member_id, kind in edges:
        batch[(group_id, member_id)] = {"group_id": group_id, "member_id": member_id, "member_kind": kind}
        if len(batch) >= BATCH_SIZE:
            connection.execute(statement, list(batch.values()))
            batch = {}
    if batch:
        connection.execute(statement, list(batch.values()))


def _drain(edges: dict[tuple[str, str], str]) -> Iterator[tuple[str, str, str]]:
    """The memberships of `edges` as (group ID, member ID, kind), removed from it one by one."""
    while edges:
        (group_id, member_id), kind = edges.popitem()
        yield group_id, member_id, kind


def _insert_ignore(connection: Connection, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING (on the primary key)."""
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return postgresql.insert(table).on_conflict_do_nothing()


def _inserted_id(connection: Connection, statement: Insert) -> int:
    primary_key = connection.execute(statement).inserted_primary_key
    assert primary_key is not None  # a single-row INSERT always reports it
    return int(primary_key[0])


def _member_row(record: Recorded, now: datetime) -> dict[str, Any]:
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
    }


def _recorded(row: Sequence[Any]) -> Recorded:
    """A Recorded from a row of `_RECORDED_COLUMNS`."""
    (
        object_id,
        status,
        agent_active,
        tenant_id,
        phone_number,
        upn_pushed,
        consistency_id,
        upn,
        skip_reason,
        detail,
        attempts,
        next_attempt_at,
        phone_source,
    ) = row
    # A full cycle holds every row at once: repeated values share one string (the tenant, the source,
    # the UPN when it is the one we pushed).
    if upn_pushed is not None and upn_pushed == upn:
        upn_pushed = upn
    agent = (
        AgentFields(sys.intern(tenant_id), phone_number, upn_pushed, consistency_id)
        if agent_active and tenant_id is not None
        else AgentFields(tenant_id, phone_number, upn_pushed, consistency_id)
        if agent_active
        else None
    )
    return Recorded(
        object_id=object_id,
        status=MemberStatus(status),
        agent=agent,
        upn=upn,
        skip_reason=SkipReason(skip_reason) if skip_reason is not None else None,
        detail=detail,
        attempts=attempts,
        next_attempt_at=_to_epoch_or_none(next_attempt_at),
        phone_source=sys.intern(phone_source) if phone_source is not None else None,
    )


def _operation(row: Row[Any]) -> OperationRecord:
    """An OperationRecord from a row holding the columns of `tables.operations`."""
    return OperationRecord(
        id=row.id,
        run_id=row.run_id,
        object_id=row.object_id,
        action=Action(row.action),
        outcome=Outcome(row.outcome),
        http_status=row.http_status,
        error=row.error,
        desired=_fields(row.desired),
        believed=_fields(row.believed),
        created_at=_to_epoch(row.created_at),
        settled_at=_to_epoch_or_none(row.settled_at),
    )


def _history_entry(row: Row[Any]) -> HistoryEntry:
    return HistoryEntry(_operation(row), row.member_upn)


def _fields_json(fields: AgentFields | None) -> str | None:
    if fields is None:
        return None
    return json.dumps(
        {
            "tenant_id": fields.tenant_id,
            "phone_number": fields.phone_number,
            "upn": fields.upn,
            "consistency_id": fields.consistency_id,
        },
        ensure_ascii=False,
    )


def _fields(text: str | None) -> AgentFields | None:
    if text is None:
        return None
    data = json.loads(text)
    return AgentFields(data["tenant_id"], data["phone_number"], data.get("upn"), data.get("consistency_id"))


def _to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _to_datetime_or_none(epoch: float | None) -> datetime | None:
    return None if epoch is None else _to_datetime(epoch)


def _to_epoch(value: datetime) -> float:
    # SQLite keeps no offset; everything written here is UTC.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _to_epoch_or_none(value: datetime | None) -> float | None:
    return None if value is None else _to_epoch(value)


def _hide_password(url: URL) -> str:
    """The URL for messages: its password, and a libpq `password` query parameter, as "***"."""
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    return url.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
