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

from collections.abc import Callable, Container, Mapping, Sequence
from typing import TypeVar

import structlog

from syncd.core.model import Member, Skipped
from syncd.store import Store, StoreError

log = structlog.get_logger("syncd.cycle")

T = TypeVar("T")


class StoreMappingCache:
    """`MappingCache` and `PageStore` over a `Store`; `writable=False` only reads."""

    def __init__(self, store: Store, *, writable: bool) -> None:
        self._store = store
        self._writable = writable
        self._off = False

    def known_mappings(self, object_ids: Sequence[str]) -> dict[str, tuple[int, Member | Skipped]]:
        return self._guarded({}, lambda: self._store.known_mappings(object_ids), writes=False)

    def remember_mappings(self, rows: Sequence[tuple[str, int, Member | Skipped]]) -> None:
        self._guarded(None, lambda: self._store.remember_mappings(rows), writes=True)

    def prune_mappings(self, read: Container[str], users: int) -> int:
        return self._guarded(0, lambda: self._store.prune_mappings(read, users), writes=True)

    def stored_page(
        self, group_id: str, number: int, digest: str, inputs: str
    ) -> tuple[list[Member | Skipped], str | None] | None:
        return self._guarded(
            None, lambda: self._store.stored_page(group_id, number, digest, inputs), writes=False
        )

    def store_page(
        self,
        group_id: str,
        number: int,
        digest: str,
        inputs: str,
        mapped: Sequence[Member | Skipped],
        next_link: str | None,
    ) -> bool:
        return self._guarded(
            False,
            lambda: self._store.store_page(group_id, number, digest, inputs, mapped, next_link),
            writes=True,
        )

    def trim_pages(self, last_pages: Mapping[str, int]) -> int:
        return self._guarded(0, lambda: self._store.trim_pages(last_pages), writes=True)

    def _guarded(self, nothing: T, call: Callable[[], T], *, writes: bool) -> T:
        """`call()`'s result; `nothing` without calling it once the caches are off, or for a write when
        they are read-only; `nothing` too when it fails with a StoreError, which turns them off."""
        if self._off or (writes and not self._writable):
            return nothing
        try:
            return call()
        except StoreError as exc:
            self._turn_off(exc)
            return nothing

    def _turn_off(self, exc: StoreError) -> None:
        self._off = True
        log.warning("sync.mapping_cache_failed", error=str(exc))
