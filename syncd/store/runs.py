"""The runs part of `Store`: one row per cycle (trigger, kind, outcome, counts) and the retention that prunes
old runs and operations in short transactions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import Connection, delete, exists, func, insert, select, update
from sqlalchemy.sql import Insert

from syncd.core.model import Outcome
from syncd.core.setting_changes import SettingChange, changes_from_json, changes_to_json
from syncd.store import tables
from syncd.store.common import StorePart, to_datetime, to_epoch, to_epoch_or_none
from syncd.store.records import RunRecord, StoreError

PRUNE_BATCH_SIZE = 10_000
"""Rows deleted per transaction when pruning the history: a first prune of millions of rows is many short
transactions, never one that holds SQLite's write lock (or PostgreSQL's row locks) for minutes."""


class RunsMixin(StorePart):
    """`Store`'s methods on runs and pruning the history."""

    # runs

    def begin_run(self, *, trigger: str, kind: str, dry_run: bool, requested_by: str | None = None) -> int:
        """Record a cycle starting now (outcome "running"); its ID."""
        statement = insert(tables.runs).values(
            trigger=trigger,
            requested_by=requested_by,
            kind=kind,
            dry_run=dry_run,
            started_at=to_datetime(time.time()),
            outcome="running",
            counts="{}",
        )
        with self._write("recording a run") as connection:
            return _inserted_id(connection, statement)

    def finish_run(
        self,
        run_id: int,
        *,
        outcome: str,
        counts: Mapping[str, int],
        error: str | None = None,
        settings_changed: Sequence[SettingChange] = (),
    ) -> None:
        """Record how a cycle ended (ended_at is now), and the settings it found changed."""
        r = tables.runs
        statement = (
            update(r)
            .where(r.c.id == run_id)
            .values(
                ended_at=to_datetime(time.time()),
                outcome=outcome,
                counts=json.dumps({str(key): int(value) for key, value in counts.items()}, sort_keys=True),
                error=error,
                settings_changed=changes_to_json(settings_changed) if settings_changed else None,
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
            .values(outcome="interrupted", ended_at=to_datetime(time.time()))
        )
        with self._write("interrupting runs") as connection:
            return connection.execute(statement).rowcount

    def last_success_at(self) -> float | None:
        """When a cycle (not a dry run) last ended "ok", every in-scope user converged; None if never."""
        r = tables.runs
        query = select(func.max(r.c.ended_at)).where(r.c.outcome == "ok", r.c.dry_run.is_(False))
        with self._read("reading the last successful run") as connection:
            return to_epoch_or_none(connection.execute(query).scalar())

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
                    started_at=to_epoch(row.started_at),
                    ended_at=to_epoch_or_none(row.ended_at),
                    outcome=row.outcome,
                    counts={str(key): int(value) for key, value in json.loads(row.counts).items()},
                    error=row.error,
                    requested_by=row.requested_by,
                    settings_changed=changes_from_json(row.settings_changed),
                )
                for row in connection.execute(query)
            ]

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
        cutoff = to_datetime(before_epoch)
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


def _inserted_id(connection: Connection, statement: Insert) -> int:
    primary_key = connection.execute(statement).inserted_primary_key
    assert primary_key is not None  # a single-row INSERT always reports it
    return int(primary_key[0])
