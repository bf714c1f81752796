"""The members part of `Store`: each person as we recorded them (status, believed agent, backoff) and the
Graph group memberships a delta read keeps (`graph_edges`)."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, func, select

from syncd.core.model import AgentFields, Member, MemberStatus, Recorded, SkipReason
from syncd.store import tables
from syncd.store.common import (
    BATCH_SIZE,
    IN_BATCH,
    StorePart,
    driver_sql,
    member_values,
    stamps,
    to_datetime,
    to_epoch,
    upsert_members,
)
from syncd.store.records import StoreError

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
        "left_scope_at",
    )
)
"""The columns `_recorded` decodes, in its order."""
_ALL_RECORDED = select(*_RECORDED_COLUMNS)
_FETCH_ROWS = 2000
"""Rows fetched from the driver at a time by a full load."""
_STATUSES = {status.value: status for status in MemberStatus}
_SKIP_REASONS = {reason.value: reason for reason in SkipReason}


class MembersMixin(StorePart):
    """`Store`'s methods on members and group memberships."""

    # members

    def load_recorded(
        self, object_ids: Collection[str] | None = None, *, like: Mapping[str, Member] | None = None
    ) -> dict[str, Recorded]:
        """Every member row by object ID, or only those of `object_ids` (read in batches, never one SELECT
        per person).

        `like` (a cycle's desired members) only saves memory: a recorded value equal to the desired one
        is the same string object, so a full cycle holding both pays for each value once."""
        found: dict[str, Recorded] = {}
        shared = like.get if like is not None else _nothing
        if object_ids is None:
            with self._read("loading members") as connection:
                for row in _driver_rows(connection, _ALL_RECORDED):
                    record = _recorded(row, shared(row[0]))
                    found[record.object_id] = record
            return found
        m = tables.members
        wanted = list(object_ids)
        with self._read("loading members") as connection:
            for start in range(0, len(wanted), IN_BATCH):
                batch = wanted[start : start + IN_BATCH]
                for row in connection.execute(select(*_RECORDED_COLUMNS).where(m.c.object_id.in_(batch))):
                    record = _recorded(row, shared(row[0]))
                    found[record.object_id] = record
        return found

    def members_version(self) -> int:
        """The members table's change counter: it moves on with every committed transaction that inserts,
        updates or deletes member rows, whoever wrote them (triggers, migration 0010). Read it before
        `load_recorded`: records loaded after reading version v are the table's as long as it still reads v
        (a write committed in between makes it read more, never less)."""
        c = tables.change_counters.c
        with self._read("reading the members' change counter") as connection:
            value = connection.scalar(select(c.value).where(c.name == "members"))
        if value is None:
            raise StoreError("the members' change counter is missing: run `syncd db upgrade`")
        return int(value)

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
                if next_attempt_at is None or to_epoch(next_attempt_at) <= now:
                    due.append(object_id)
                else:
                    waiting.append(object_id)
        return due, waiting

    def anchor_holders(self, consistency_ids: Collection[str]) -> dict[str, list[str]]:
        """The object IDs whose active agent has each of `consistency_ids` (as recorded), by GUID; GUIDs
        nobody holds are absent. Read in batches."""
        wanted = sorted(set(consistency_ids))
        found: dict[str, list[str]] = {}
        with self._read("finding agents by consistency GUID") as connection:
            for start in range(0, len(wanted), IN_BATCH):
                query = anchors_query(wanted[start : start + IN_BATCH])
                for consistency_id, object_id in connection.execute(query):
                    found.setdefault(consistency_id, []).append(object_id)
        return {guid: sorted(holders) for guid, holders in found.items()}

    def offboards_due(self, left_before: float) -> list[str]:
        """Object IDs whose agent waits out the offboarding grace and who left scope at or before
        `left_before` (now minus `sync.offboard_grace`): an incremental cycle plans them although Graph
        reported no change."""
        with self._read("finding offboards due") as connection:
            return sorted(connection.scalars(offboards_due_query(left_before)))

    def members_leaving(self) -> list[Recorded]:
        """Members out of scope whose agent waits out the offboarding grace, longest out first."""
        m = tables.members
        query = (
            select(*_RECORDED_COLUMNS)
            .where(m.c.agent_active.is_(True), m.c.left_scope_at.is_not(None))
            .order_by(m.c.left_scope_at, m.c.object_id)
        )
        with self._read("loading members leaving scope") as connection:
            return [_recorded(row) for row in connection.execute(query)]

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
            return [(_recorded(row[:-1]), to_epoch(row[-1])) for row in connection.execute(query)]

    def save_members(self, records: Iterable[Recorded]) -> None:
        """Insert or replace many members in one transaction (the last record wins for a repeated ID)."""
        with self._write("saving members") as connection:
            stamp = stamps(connection)
            now = stamp(to_datetime(time.time()))
            # Keyed by object ID: PostgreSQL refuses one statement that upserts the same row twice.
            batch: dict[str, tuple[Any, ...]] = {}
            for record in records:
                batch[record.object_id] = member_values(record, now, stamp)
                if len(batch) >= BATCH_SIZE:
                    upsert_members(connection, list(batch.values()))
                    batch = {}
            upsert_members(connection, list(batch.values()))

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

    def count_managed_agents(self) -> int:
        """Agents we believe exist and manage (members with an active agent, whatever their last attempt):
        what a guard's percentage is of."""
        m = tables.members
        query = select(func.count()).select_from(m).where(m.c.agent_active.is_(True))
        with self._read("counting managed agents") as connection:
            return int(connection.execute(query).scalar_one())

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

    def users_in(self, tree: Collection[str]) -> set[str]:
        """The direct members of the groups of `tree` that are not groups of `tree` themselves: for a whole
        tree (a group and every group nested in it), its users (checked against a full read). Read from the
        primary key alone, without the rows' `member_kind`."""
        wanted = list(tree)
        found: set[str] = set()
        with self._read("reading group members") as connection:
            # The DBAPI cursor itself: a full cycle reads every membership, SQLAlchemy's row processing
            # cost more than the query.
            cursor = connection.connection.cursor()
            try:
                for start in range(0, len(wanted), IN_BATCH):
                    batch = tuple(wanted[start : start + IN_BATCH])
                    cursor.execute(driver_sql(connection, _USERS_IN, len(batch)), batch)
                    found.update(row[0] for row in cursor.fetchall())
            finally:
                cursor.close()
        return found.difference(wanted)

    def count_users_in(self, group_ids: Collection[str], *, at_most: int | None = None) -> int:
        """How many distinct users are direct members of any of `group_ids`; with `at_most`, the count stops
        there (the least of the two). An exact count sorts every membership of the groups (3 s of SQLite
        for a million); the first few distinct users are found at once."""
        table = tables.graph_edges
        users = (
            select(table.c.member_id)
            .where(table.c.group_id.in_(list(group_ids)))
            .where(table.c.member_kind == "user")
            .distinct()
        )
        if at_most is not None:
            users = users.limit(max(at_most, 0))
        query = select(func.count()).select_from(users.subquery())
        with self._read("counting group members") as connection:
            return int(connection.execute(query).scalar_one())

    def count_edges(self) -> int:
        """How many memberships are stored."""
        with self._read("counting group memberships") as connection:
            return int(connection.execute(select(func.count()).select_from(tables.graph_edges)).scalar_one())


def _delete_edges(connection: Connection, pairs: Sequence[tuple[str, str]]) -> None:
    """Delete memberships (group ID, member ID), a batch per statement."""
    table = tables.graph_edges
    statement = delete(table).where(table.c.group_id == bindparam("g"), table.c.member_id == bindparam("m"))
    for start in range(0, len(pairs), BATCH_SIZE):
        connection.execute(statement, [{"g": g, "m": m} for g, m in pairs[start : start + BATCH_SIZE]])


def _insert_edges(connection: Connection, edges: Iterable[tuple[str, str, str]]) -> None:
    """Insert memberships (group ID, member ID, kind), a batch at a time; stored pairs are kept. Through the
    DBAPI cursor itself (`executemany`): the start of tracking stores a whole tree's memberships, and
    SQLAlchemy's per-row parameter processing cost more than the database's own work."""
    cursor = connection.connection.cursor()
    sql = driver_sql(connection, _INSERT_EDGE, 3)
    try:
        batch: list[tuple[str, str, str]] = []
        for edge in edges:
            batch.append(edge)
            if len(batch) >= BATCH_SIZE:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
    finally:
        cursor.close()


def _drain(edges: dict[tuple[str, str], str]) -> Iterator[tuple[str, str, str]]:
    """The memberships of `edges` as (group ID, member ID, kind), removed from it one by one."""
    while edges:
        (group_id, member_id), kind = edges.popitem()
        yield group_id, member_id, kind


# Neither query has an ORDER BY (their callers sort): with one, SQLite walks the primary key, the whole
# table, instead of the index (tests/store/test_query_plans.py).


def anchors_query(consistency_ids: Sequence[str]) -> Select[Any]:
    """(consistency GUID, object ID) of the active agents holding any of `consistency_ids`."""
    m = tables.members
    return select(m.c.consistency_id, m.c.object_id).where(
        m.c.agent_active.is_(True), m.c.consistency_id.in_(consistency_ids)
    )


def offboards_due_query(left_before: float) -> Select[Any]:
    """The object IDs of the active agents whose person left scope at or before `left_before`."""
    m = tables.members
    return select(m.c.object_id).where(
        m.c.agent_active.is_(True), m.c.left_scope_at <= to_datetime(left_before)
    )


_INSERT_EDGE = (
    "INSERT INTO graph_edges (group_id, member_id, member_kind) VALUES ({marks}) ON CONFLICT DO NOTHING"
)
"""`_insert_edges`' statement (a pair already stored is kept), placeholders formatted in by `driver_sql`."""
_USERS_IN = "SELECT member_id FROM graph_edges WHERE group_id IN ({marks})"
"""`users_in`'s query, placeholders formatted in by `driver_sql` (every value a bound parameter)."""


def _nothing(_object_id: str) -> None:
    return None


def _driver_rows(connection: Connection, query: Select[Any]) -> Iterator[Sequence[Any]]:
    """The rows of a query without parameters, as the DBAPI driver returns them, a few at a time.

    A full cycle loads every member: SQLAlchemy's per-row processing (and its row-at-a-time fetching) cost
    more than the fetch itself, and `_recorded` reads the driver's values as they are (see `_epoch_of`).
    Fetched in slices, so the raw rows of a large table are never all held beside the records.
    """
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(query.compile(dialect=connection.dialect)))
        while rows := cursor.fetchmany(_FETCH_ROWS):
            yield from rows
    finally:
        cursor.close()


def _epoch_of(value: datetime | str | None) -> float | None:
    """A `DateTime` column's value as epoch seconds, from SQLAlchemy or straight from the driver (SQLite
    keeps the text SQLAlchemy wrote, "2026-12-07 00:51:00.000000", in UTC)."""
    if value is None:
        return None
    return to_epoch(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _recorded(row: Sequence[Any], like: Member | None = None) -> Recorded:
    """A Recorded from a row of `_RECORDED_COLUMNS` (processed by SQLAlchemy or not: `_driver_rows`); its
    values equal to those of `like` (the person's desired state) are `like`'s own strings."""
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
        left_scope_at,
    ) = row
    # A full cycle holds every row at once: repeated values share one string (the tenant, the source,
    # the UPN when it is the one we pushed).
    if like is not None:
        object_id = like.object_id if like.object_id == object_id else object_id
        upn = like.upn if upn is not None and like.upn == upn else upn
        if phone_number is not None and like.phone_number == phone_number:
            phone_number = like.phone_number
        if consistency_id is not None and like.consistency_id == consistency_id:
            consistency_id = like.consistency_id
    if upn_pushed is not None and upn_pushed == upn:
        upn_pushed = upn
    agent = (
        AgentFields(sys.intern(tenant_id), phone_number, upn_pushed, consistency_id)
        if agent_active and tenant_id is not None
        else AgentFields(tenant_id, phone_number, upn_pushed, consistency_id)
        if agent_active
        else None
    )
    # Positional, in the order of Recorded's fields: a frozen dataclass takes keywords at half the speed.
    return Recorded(
        object_id,
        _STATUSES[status],
        agent,
        upn,
        _SKIP_REASONS[skip_reason] if skip_reason is not None else None,
        detail,
        attempts,
        _epoch_of(next_attempt_at) if next_attempt_at is not None else None,
        sys.intern(phone_source) if phone_source is not None else None,
        _epoch_of(left_scope_at) if left_scope_at is not None else None,
    )
