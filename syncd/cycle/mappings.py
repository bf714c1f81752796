"""The store as the caches of a cycle's Graph read: the mapping cache
(`syncd.graph.mapping_cache.MappingCache`) and the pages kept across processes
(`syncd.graph.page_memo.PageStore`).

Read-only for a cycle that must leave no trace of itself (a dry run, `--user`, `relink --dry-run`): it
takes earlier mappings and pages but writes and prunes none. The caches are an optimisation, never a reason
for a cycle to fail: a store error turns them off for the rest of the read (logged once) and the users are
mapped as they would be without them; the cycle's own store calls then report the database if it is really
failing.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence

import structlog

from syncd.core.model import Member, Skipped
from syncd.store import Store, StoreError

log = structlog.get_logger("syncd.cycle")


class StoreMappingCache:
    """`MappingCache` and `PageStore` over a `Store`; `writable=False` only reads."""

    def __init__(self, store: Store, *, writable: bool) -> None:
        self._store = store
        self._writable = writable
        self._off = False

    def known_mappings(self, object_ids: Sequence[str]) -> dict[str, tuple[int, Member | Skipped]]:
        if self._off:
            return {}
        try:
            return self._store.known_mappings(object_ids)
        except StoreError as exc:
            self._turn_off(exc)
            return {}

    def remember_mappings(self, rows: Sequence[tuple[str, int, Member | Skipped]]) -> None:
        if not self._writable or self._off:
            return
        try:
            self._store.remember_mappings(rows)
        except StoreError as exc:
            self._turn_off(exc)

    def prune_mappings(self, read: Container[str], users: int) -> int:
        if not self._writable or self._off:
            return 0
        try:
            return self._store.prune_mappings(read, users)
        except StoreError as exc:
            self._turn_off(exc)
            return 0

    def stored_page(
        self, group_id: str, number: int, digest: str, inputs: str
    ) -> tuple[list[Member | Skipped], str | None] | None:
        if self._off:
            return None
        try:
            return self._store.stored_page(group_id, number, digest, inputs)
        except StoreError as exc:
            self._turn_off(exc)
            return None

    def store_page(
        self,
        group_id: str,
        number: int,
        digest: str,
        inputs: str,
        mapped: Sequence[Member | Skipped],
        next_link: str | None,
    ) -> bool:
        if not self._writable or self._off:
            return False
        try:
            return self._store.store_page(group_id, number, digest, inputs, mapped, next_link)
        except StoreError as exc:
            self._turn_off(exc)
            return False

    def trim_pages(self, last_pages: Mapping[str, int]) -> int:
        if not self._writable or self._off:
            return 0
        try:
            return self._store.trim_pages(last_pages)
        except StoreError as exc:
            self._turn_off(exc)
            return 0

    def _turn_off(self, exc: StoreError) -> None:
        self._off = True
        log.warning("sync.mapping_cache_failed", error=str(exc))
