"""The mapping cache part of `Store` (`mapping_cache`): earlier mappings of Graph users by object ID, each
with the fingerprint of what it was mapped from (`syncd.graph.mapping_cache` decides when one is used).

A full read looks up each member page's users (one `IN (...)` list) and writes the page's new mappings (one
executemany upsert); after a whole read the rows of people it did not find are forgotten, when there are
enough of them to be worth a scan of the table's keys."""

from __future__ import annotations

import sys
from collections.abc import Container, Sequence
from typing import Any

from sqlalchemy import delete, func, select

from syncd.core.model import Member, Skipped, SkipReason
from syncd.store import tables
from syncd.store.common import IN_BATCH, StorePart, driver_sql

PRUNE_SHARE = 0.1
"""Rows of people a whole read did not find are forgotten once they are more than this share of the people
it found: a scan of every key then costs a small part of the reads it follows."""

LOOKUP_BATCH = 999
"""Object IDs per lookup: a whole Graph page in one `IN (...)`, under SQLite's oldest bound-parameter limit
(999; 32766 since 3.32) and PostgreSQL's (65535)."""

_COLUMNS = (
    "object_id",
    "fingerprint",
    "tenant_id",
    "upn",
    "phone_number",
    "consistency_id",
    "phone_source",
    "skip_reason",
    "detail",
)
# Plain SQL, run with exec_driver_sql: a full read looks up and writes 100,000s of rows, and SQLAlchemy's
# statement compilation and per-row parameter processing cost more than the database's own work. The same
# text suits SQLite (>= 3.24) and PostgreSQL; only the placeholders differ (`_sql`). Only these constant
# names and the placeholders are formatted in: every value is a bound parameter.
_NAMES = ", ".join(_COLUMNS)
_SELECT = f"SELECT {_NAMES} FROM mapping_cache WHERE object_id IN ({{marks}})"  # noqa: S608 - constant
_SET = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS[1:])
_UPSERT = (
    f"INSERT INTO mapping_cache ({_NAMES}) VALUES ({{marks}}) "  # noqa: S608 - constant
    f"ON CONFLICT (object_id) DO UPDATE SET {_SET}"
)
_SKIP_REASONS = {reason.value: reason for reason in SkipReason}
_SCAN_ROWS = 5000
"""Keys fetched at a time by the scan of a prune."""


class MappingsMixin(StorePart):
    """`Store`'s methods on the mapping cache."""

    def known_mappings(self, object_ids: Sequence[str]) -> dict[str, tuple[int, Member | Skipped]]:
        """The cached (fingerprint, Member or Skipped) of each of `object_ids` that has a usable row."""
        found: dict[str, tuple[int, Member | Skipped]] = {}
        if not object_ids:
            return found
        with self._read("reading cached mappings") as connection:
            # The DBAPI cursor itself: SQLAlchemy's processing of each row cost more than the query.
            cursor = connection.connection.cursor()
            try:
                for start in range(0, len(object_ids), LOOKUP_BATCH):
                    batch = tuple(object_ids[start : start + LOOKUP_BATCH])
                    cursor.execute(driver_sql(connection, _SELECT, len(batch)), batch)
                    for row in cursor.fetchall():
                        mapped = _mapped(row)
                        if mapped is not None:
                            found[row[0]] = (row[1], mapped)
            finally:
                cursor.close()
        return found

    def remember_mappings(self, rows: Sequence[tuple[str, int, Member | Skipped]]) -> None:
        """Cache (object ID, fingerprint, Member or Skipped) rows in one transaction, replacing what each
        object ID had (the last row wins for a repeated ID)."""
        # Keyed by object ID: PostgreSQL refuses one statement that upserts the same row twice.
        values = {
            object_id: _row(object_id, fingerprint, mapped)
            for object_id, fingerprint, mapped in rows
            if "\x00" not in (mapped.upn or "")  # PostgreSQL text cannot hold NUL: such a user is not cached
        }
        if not values:
            return
        with self._write("caching mappings") as connection:
            connection.exec_driver_sql(driver_sql(connection, _UPSERT, len(_COLUMNS)), list(values.values()))

    def prune_mappings(self, read: Container[str], users: int) -> int:
        """After a whole read that found `users` people (`read` holds their object IDs): forget the rows of
        everyone else, once there are more than PRUNE_SHARE of `users` of them; how many were forgotten.
        Below that, or after a read that found nobody (a group emptied by mistake stops the cycle: its
        people are likely back soon), only the rows are counted."""
        table = tables.mapping_cache
        if users == 0 or self.count_mappings() - users <= users * PRUNE_SHARE:
            return 0
        keys = select(table.c.object_id).execution_options(yield_per=_SCAN_ROWS)  # streamed, not all held
        with self._read("finding stale cached mappings") as connection:
            stale = [oid for oid in connection.scalars(keys) if oid not in read]
        with self._write("forgetting stale cached mappings") as connection:
            for start in range(0, len(stale), IN_BATCH):
                connection.execute(
                    delete(table).where(table.c.object_id.in_(stale[start : start + IN_BATCH]))
                )
        return len(stale)

    def count_mappings(self) -> int:
        """How many mappings are cached."""
        table = tables.mapping_cache
        with self._read("counting cached mappings") as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def _row(object_id: str, fingerprint: int, mapped: Member | Skipped) -> tuple[object, ...]:
    """The values of `_COLUMNS` for a mapping."""
    if isinstance(mapped, Member):
        return (
            object_id,
            fingerprint,
            mapped.tenant_id,
            mapped.upn,
            mapped.phone_number,
            mapped.consistency_id,
            mapped.phone_source,
            None,
            None,
        )
    return (object_id, fingerprint, None, mapped.upn, None, None, None, mapped.reason.value, mapped.detail)


def _mapped(row: Sequence[Any]) -> Member | Skipped | None:
    """The Member or Skipped of a row of `_COLUMNS`; None for a row this syncd cannot read (a skip reason
    it does not know, a member without a number): it is mapped again."""
    object_id, _fingerprint, tenant_id, upn, phone_number, consistency_id, source, reason, detail = row
    if reason is None:
        if tenant_id is None or phone_number is None:
            return None
        # A full cycle holds everyone at once: the tenant and the source are one string each.
        source = sys.intern(source) if source is not None else None
        return Member(object_id, sys.intern(tenant_id), upn, phone_number, consistency_id, source)
    skip_reason = _SKIP_REASONS.get(reason)
    if skip_reason is None:
        return None
    return Skipped(object_id, upn, skip_reason, detail or "")
