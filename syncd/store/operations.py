"""The operations part of `Store`: the audit log of writes to SmartCommunicator, recorded pending before a
request is sent and settled after its answer (with the member's new row), and the history read from it."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import Row, func, insert, select, update

from syncd.core.model import Action, AgentFields, Change, MemberStatus, Outcome, Recorded
from syncd.store import tables
from syncd.store.common import (
    StorePart,
    driver_sql,
    member_values,
    stamps,
    to_datetime,
    to_epoch,
    to_epoch_or_none,
    upsert_members,
)
from syncd.store.records import (
    AuditEntry,
    HistoryEntry,
    OperationRecord,
    PendingOperation,
    Settlement,
    StoreError,
)

_SETTLE = (
    "UPDATE operations SET outcome = {marks}, http_status = {marks}, error = {marks}, settled_at = {marks} "
    "WHERE id = {marks}"
)
"""Settles one operation (`settle_operations`); each "{marks}" becomes one placeholder, the only thing
formatted in."""

_MARK_PENDING = (
    "INSERT INTO members (object_id, status, agent_active, upn, attempts, updated_at) "
    "VALUES ({marks}, {marks}, {marks}, {marks}, {marks}, {marks}) "
    "ON CONFLICT (object_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at"
)
"""Marks a member pending (`start_operations`), inserting a row with no agent for one seen for the first
time; each "{marks}" becomes one placeholder."""

HISTORY_PAGE_SIZE = 1_000
"""Operations read per query while streaming the history: memory stays flat for any number of rows."""


class OperationsMixin(StorePart):
    """`Store`'s methods on operations and the history."""

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
        also: Sequence[Recorded] = (),
    ) -> None:
        """Record how a write ended and replace the member's row with `record` (and the rows of `also`: a
        relink's other object ID), in one transaction."""
        now = to_datetime(time.time())
        o = tables.operations
        statement = (
            update(o)
            .where(o.c.id == op_id)
            .values(outcome=outcome.value, http_status=http_status, error=error, settled_at=now)
        )
        with self._write("settling an operation") as connection:
            if connection.execute(statement).rowcount != 1:
                raise StoreError(f"no operation {op_id} in {self._safe_url}")
            stamp = stamps(connection)
            stamped = stamp(now)
            rows = {r.object_id: member_values(r, stamped, stamp) for r in (*also, record)}
            upsert_members(connection, list(rows.values()))

    def start_operations(self, run_id: int, changes: Sequence[Change]) -> list[int]:
        """Record writes as pending before their requests are sent, and mark their members pending, in one
        transaction (a crash leaves all or none); their IDs, in the order of `changes`."""
        if not changes:
            return []
        now = to_datetime(time.time())
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
                "from_object_id": change.from_object_id,
            }
            for change in changes
        ]
        with self._write("starting operations") as connection:
            if len({change.object_id for change in changes}) == len(changes):
                # One object ID per change (as in any plan): the IDs come back in any order, matched by object
                # ID. SQLite cannot return them in order from one INSERT, so asking for that order would send
                # one INSERT per row (a third of the CPU of recording a write).
                returned = connection.execute(insert(o).returning(o.c.object_id, o.c.id), operations)
                by_object = {object_id: int(op_id) for object_id, op_id in returned}
                ids = [by_object[change.object_id] for change in changes]
            else:
                ordered = connection.execute(
                    insert(o).returning(o.c.id, sort_by_parameter_order=True), operations
                ).scalars()
                ids = [int(op_id) for op_id in ordered]
            # A member seen for the first time gets a row with no agent; an existing row keeps its believed
            # agent until the outcome is known: only its status changes.
            stamped = stamps(connection)(now)
            members: dict[str, tuple[Any, ...]] = {}
            for change in changes:
                known = change.desired or change.believed
                upn = known.upn if known is not None else None
                members[change.object_id] = (
                    change.object_id,
                    MemberStatus.PENDING.value,
                    False,
                    upn,
                    0,
                    stamped,
                )
            connection.exec_driver_sql(driver_sql(connection, _MARK_PENDING, 1), list(members.values()))
        return ids

    def settle_operations(self, settled: Sequence[Settlement]) -> None:
        """`settle_operation` for many writes in one transaction, on the DBAPI cursor itself (the apply step
        settles every write: SQLAlchemy's per-row parameter processing cost as much as the database)."""
        if not settled:
            return
        with self._write("settling operations") as connection:
            stamp = stamps(connection)
            now = stamp(to_datetime(time.time()))
            rows = [(item.outcome.value, item.http_status, item.error, now, item.op_id) for item in settled]
            members = {
                record.object_id: member_values(record, now, stamp)
                for item in settled
                for record in (*item.also, item.record)
            }
            connection.exec_driver_sql(driver_sql(connection, _SETTLE, 1), rows)
            upsert_members(connection, list(members.values()))

    def pending_operations(self) -> list[PendingOperation]:
        """Operations never settled (the process stopped between request and outcome), oldest first."""
        o = tables.operations
        query = (
            select(
                o.c.id, o.c.run_id, o.c.object_id, o.c.action, o.c.desired, o.c.believed, o.c.from_object_id
            )
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
                    from_object_id=row.from_object_id,
                )
                for row in connection.execute(query)
            ]

    def operations(
        self, *, object_id: str | None = None, run_id: int | None = None, limit: int = 100
    ) -> list[OperationRecord]:
        """The latest operations, newest first, optionally of one member (a relink to or from it included)
        and/or one run."""
        o = tables.operations
        query = select(o).order_by(o.c.id.desc()).limit(limit)
        if object_id is not None:
            query = query.where((o.c.object_id == object_id) | (o.c.from_object_id == object_id))
        if run_id is not None:
            query = query.where(o.c.run_id == run_id)
        with self._read("listing operations") as connection:
            return [_operation(row) for row in connection.execute(query)]

    def audit_entries(self, *, after_id: int, limit: int = HISTORY_PAGE_SIZE) -> list[AuditEntry]:
        """The operations with an ID above `after_id`, oldest first, at most `limit`, up to (not including)
        the first one still pending: the audit log writes settled operations in order and never skips one
        that a later start will settle."""
        o, m, r = tables.operations, tables.members, tables.runs
        query = (
            select(o, m.c.upn.label("member_upn"), r.c.trigger.label("run_trigger"), r.c.requested_by)
            .select_from(o.outerjoin(m, m.c.object_id == o.c.object_id).join(r, r.c.id == o.c.run_id))
            .where(o.c.id > after_id)
            .order_by(o.c.id)
            .limit(limit)
        )
        entries: list[AuditEntry] = []
        with self._read("reading the audit log") as connection:
            for row in connection.execute(query):
                operation = _operation(row)
                if operation.settled_at is None:
                    break
                entries.append(AuditEntry(operation, row.member_upn, row.run_trigger, row.requested_by))
        return entries

    def first_operation_of_run(self, run_id: int) -> int | None:
        """The lowest operation ID of run `run_id` or of any later run; None when there is none."""
        o = tables.operations
        query = select(func.min(o.c.id)).where(o.c.run_id >= run_id)
        with self._read("reading the audit log") as connection:
            first: int | None = connection.execute(query).scalar()
            return first

    def last_operation_id(self) -> int:
        """The highest operation ID (0 when there is none)."""
        with self._read("reading the audit log") as connection:
            last: int | None = connection.execute(select(func.max(tables.operations.c.id))).scalar()
            return last or 0

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

        `object_ids`: of these members only (empty: none), relinks to or from them included; `since`:
        created at or after this epoch second; `actions`, `outcomes`: any of these (empty: none); `limit`:
        at most this many (None: all).

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
            wanted = sorted(set(object_ids))
            query = query.where(o.c.object_id.in_(wanted) | o.c.from_object_id.in_(wanted))
        if since is not None:
            query = query.where(o.c.created_at >= to_datetime(since))
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
        created_at=to_epoch(row.created_at),
        settled_at=to_epoch_or_none(row.settled_at),
        from_object_id=row.from_object_id,
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
