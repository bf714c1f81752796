"""The page memo part of `Store` (`page_memo`): the member pages of the last full read, as mapped, each kept
under the digest of its body and of the mapping's inputs (`syncd.graph.page_memo` decides when one is used).

A fresh process's full read asks for each page it receives (one primary-key lookup that also compares both
digests, so a changed page is never decoded) and writes each page it had to map (one upsert); a read that
went through to its end forgets the rows of the places it no longer reached (`trim_pages`).

A page's mapped users are kept as compact JSON (`encode_page`): the tenant IDs and phone sources of the page
once each, then a list per user, six items for a Member (object ID, tenant index, UPN, number, consistency
GUID, source index) and four for a Skipped (object ID, UPN, reason, detail). Decoding 1,000 users costs about
a tenth of parsing and mapping them from Graph's JSON. A row this syncd cannot read is a miss, never an
error: the page is mapped again and the row replaced.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, not_, or_, select

from syncd.core.model import Member, Skipped, SkipReason
from syncd.store import tables
from syncd.store.common import StorePart, dialect_insert

Mapped = Member | Skipped

_SKIP_REASONS = {reason.value: reason for reason in SkipReason}
_SELECT = (
    "SELECT next_link, mapped FROM page_memo "
    "WHERE group_id = {0} AND page_number = {0} AND digest = {0} AND inputs = {0}"
)
"""`stored_page`'s query; {0} is the driver's placeholder (every value a bound parameter)."""
_FORMAT = 1
"""The version of `encode_page`'s JSON; a row of another is a miss."""


class PagesMixin(StorePart):
    """`Store`'s methods on the page memo."""

    def stored_page(
        self, group_id: str, number: int, digest: str, inputs: str
    ) -> tuple[list[Mapped], str | None] | None:
        """The mapped users and next link kept for the `number`-th page of `group_id` when its body had
        `digest` under mapping inputs `inputs` (both hex); None when the row is missing, was kept for
        another body or other inputs, or cannot be read."""
        with self._read("reading a remembered page") as connection:
            # The DBAPI cursor itself: one short query per page, where SQLAlchemy's statement handling cost
            # more than the database's own work.
            cursor = connection.connection.cursor()
            try:
                mark = "?" if connection.dialect.name == "sqlite" else "%s"
                cursor.execute(_SELECT.format(mark), (group_id, number, digest, inputs))
                row = cursor.fetchone()
            finally:
                cursor.close()
        if row is None:
            return None
        mapped = decode_page(row[1])
        return None if mapped is None else (mapped, row[0])

    def store_page(
        self,
        group_id: str,
        number: int,
        digest: str,
        inputs: str,
        mapped: Sequence[Mapped],
        next_link: str | None,
    ) -> bool:
        """Keep a page as mapped, replacing what its place held; whether it was kept (always: the JSON escapes
        every control character, so PostgreSQL's text takes whatever a user's fields hold)."""
        values = {
            "group_id": group_id,
            "page_number": number,
            "digest": digest,
            "inputs": inputs,
            "next_link": next_link,
            "mapped": encode_page(mapped),
        }
        with self._write("remembering a page") as connection:
            statement = dialect_insert(connection, tables.page_memo)
            excluded = statement.excluded
            statement = statement.on_conflict_do_update(
                index_elements=["group_id", "page_number"],
                set_={name: excluded[name] for name in ("digest", "inputs", "next_link", "mapped")},
            )
            connection.execute(statement, values)
        return True

    def trim_pages(self, last_pages: Mapping[str, int]) -> int:
        """After a whole read, whose groups had `last_pages[group_id]` pages each: forget the pages of other
        groups and those beyond each group's last; how many were forgotten."""
        table = tables.page_memo
        statement = delete(table)
        if last_pages:
            beyond = [
                and_(table.c.group_id == group_id, table.c.page_number > last)
                for group_id, last in last_pages.items()
            ]
            statement = statement.where(or_(not_(table.c.group_id.in_(list(last_pages))), *beyond))
        with self._write("forgetting remembered pages") as connection:
            return connection.execute(statement).rowcount or 0

    def count_pages(self) -> int:
        """How many pages are kept."""
        table = tables.page_memo
        with self._read("counting remembered pages") as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def encode_page(mapped: Sequence[Mapped]) -> str:
    """Pure: a page's mapped users as `page_memo.mapped` JSON."""
    tenants: dict[str, int] = {}
    sources: dict[str | None, int] = {}
    rows: list[list[Any]] = []
    for item in mapped:
        if isinstance(item, Member):
            tenant = tenants.setdefault(item.tenant_id, len(tenants))
            source = sources.setdefault(item.phone_source, len(sources))
            rows.append([item.object_id, tenant, item.upn, item.phone_number, item.consistency_id, source])
        else:
            rows.append([item.object_id, item.upn, item.reason.value, item.detail])
    page = {"v": _FORMAT, "t": list(tenants), "s": list(sources), "m": rows}
    return json.dumps(page, separators=(",", ":"), ensure_ascii=False)


def decode_page(text: str) -> list[Mapped] | None:
    """Pure: the mapped users of `page_memo.mapped` JSON; None when it is not what `encode_page` writes."""
    try:
        page = json.loads(text)
        if page["v"] != _FORMAT:
            return None
        # A full cycle holds everyone at once: each tenant and each source is one string.
        tenants = [sys.intern(tenant) for tenant in page["t"]]
        sources = [None if source is None else sys.intern(source) for source in page["s"]]
        mapped: list[Mapped] = []
        append = mapped.append
        for row in page["m"]:
            if len(row) == 6:
                object_id, tenant, upn, phone_number, consistency_id, source = row
                append(Member(object_id, tenants[tenant], upn, phone_number, consistency_id, sources[source]))
            else:
                object_id, upn, reason, detail = row
                append(Skipped(object_id, upn, _SKIP_REASONS[reason], detail))
        return mapped
    except (ValueError, TypeError, KeyError, IndexError):
        return None
