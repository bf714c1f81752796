"""Mapping member pages through a cache of earlier mappings: a full read skips `map_user` (and its phone
parsing, half the CPU of a fresh process's full cycle) for every user whose fingerprint
(`syncd.graph.fingerprint`) is the one cached with their mapping.

The cache (`MappingCache`, kept in the store's `mapping_cache` table and handed in by the cycle) is a pure
memo of `map_user`: a row says "a user object with this fingerprint mapped to this Member or Skipped". Its
validity does not depend on any write to SmartCommunicator, so rows are written as soon as a page is mapped.
Each page asks the cache for its own users only (one lookup per page: no tenant-wide dict is held), takes
the cached result where the fingerprint matches and maps the others, which it then hands to the cache.

A lookup costs about 10 us a user, mapping with a phone text the process parsed before (`to_e164` remembers
262,144 per region) about 4 us, and parsing one 25-40 us. So only users whose mapping would parse a phone
text are looked up (`mapping.phones_parsed`); a cached member's phone text is then remembered as if parsed
(`mapping.learn_phone`), and a daemon's next full read maps them without a lookup, as it did before the
cache existed. Users whose object is not a JSON object or has no usable `id` are always mapped
(`fingerprint.cache_key`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Container, Mapping, Sequence
from typing import Any, Protocol

import structlog

from syncd.config.settings import GraphSettings
from syncd.core.model import Member, Skipped
from syncd.graph.fingerprint import Fingerprints, cache_key
from syncd.graph.mapping import learn_phone, phones_parsed

log = structlog.get_logger("syncd.graph")

Mapped = Member | Skipped

TURN_EVERY = 64
"""Users mapped between two turns of the event loop (`PageMapper.map_page`). A page of new users costs some
60 ms of CPU to map (their phone numbers), and the request for the next page, started before, is sent only
when the loop turns: turning every 64 users (a few ms) sends it, and reads its answer, while this page is
mapped, so a read that maps every user takes the CPU of the mapping rather than that plus a round trip per
page."""


class MapOne(Protocol):
    """Maps one user object, given the excluded group holding the user (`GraphSource.map`)."""

    def __call__(self, user: object, *, excluded_by: str | None = None) -> Mapped: ...


class MappingCache(Protocol):
    """Earlier mappings by object ID (implemented over the store by `syncd.cycle`)."""

    def known_mappings(self, object_ids: Sequence[str]) -> Mapping[str, tuple[int, Mapped]]:
        """The cached (fingerprint, mapping) of each of `object_ids` that has one."""
        ...

    def remember_mappings(self, rows: Sequence[tuple[str, int, Mapped]]) -> None:
        """Cache (object ID, fingerprint, mapping) rows, replacing what each object ID had."""
        ...

    def prune_mappings(self, read: Container[str], users: int) -> int:
        """After a whole read of `users` people (`read` holds their object IDs): forget the mappings of
        people not read, when there are enough of them to be worth a scan; how many were forgotten."""
        ...


def lower_id(user: object) -> str:
    """A user object's `id` in lower case ("" when it has none)."""
    object_id = user.get("id") if isinstance(user, dict) else None
    return object_id.lower() if isinstance(object_id, str) else ""


class PageMapper:
    """Maps member pages through a `MappingCache`, counting how many users were mapped and how many were
    taken from the cache."""

    def __init__(self, cache: MappingCache, settings: GraphSettings, map_one: MapOne) -> None:
        """`map_one` maps as `settings` say (their mapping inputs make the fingerprints)."""
        self._cache = cache
        self._chain = settings.phone_chain
        self._region = settings.default_region
        self._fingerprints = Fingerprints(
            tenant_id=settings.tenant_id,
            phone_sources=settings.phone_chain,
            default_region=settings.default_region,
            scope_filter=settings.filter,
        )
        self._map_one = map_one
        self._mapped = 0
        self._from_cache = 0

    def take_counts(self) -> dict[str, int]:
        """How many users were mapped and taken from the cache since the last call (`mapped`,
        `from_cache`: for the log of a group's read)."""
        counts = {"mapped": self._mapped, "from_cache": self._from_cache}
        self._mapped = self._from_cache = 0
        return counts

    async def map_page(self, users: Sequence[Any], excluded: Mapping[str, str]) -> list[Mapped]:
        """One page of user objects, mapped in order; `excluded` gives the excluded group holding a user by
        lower-case object ID. The event loop turns every TURN_EVERY users mapped."""
        chain, region = self._chain, self._region
        # Who is looked up: users with a usable ID whose mapping would parse a phone text (the others cost
        # less to map than to look up: no number to parse, or one this process parsed already).
        keys = [None if phones_parsed(user, chain, region) else cache_key(user) for user in users]
        wanted = [key for key in keys if key is not None]
        known = self._cache.known_mappings(wanted) if wanted else {}
        fingerprints = self._fingerprints
        map_one = self._map_one
        mapped: list[Mapped] = []
        fresh: list[tuple[str, int, Mapped]] = []
        hits = turn = 0
        for user, key in zip(users, keys, strict=True):
            excluded_by = excluded.get(lower_id(user)) if excluded else None
            if key is None:
                mapped.append(map_one(user, excluded_by=excluded_by))
                continue
            fingerprint = fingerprints.of(user, excluded_by)
            cached = known.get(key)
            if cached is not None and fingerprint is not None and cached[0] == fingerprint:
                item = cached[1]
                if isinstance(item, Member):
                    learn_phone(user, item, region)  # the next read maps them without a lookup
                mapped.append(item)
                hits += 1
                continue
            item = map_one(user, excluded_by=excluded_by)
            mapped.append(item)
            if fingerprint is not None:
                fresh.append((key, fingerprint, item))
            turn += 1
            if turn == TURN_EVERY:
                turn = 0
                await asyncio.sleep(0)
        self._from_cache += hits
        self._mapped += len(users) - hits
        if fresh:
            self._cache.remember_mappings(fresh)
        return mapped

    def prune(self, members: Mapping[str, Member], skipped: Mapping[str, Skipped]) -> int:
        """After a whole read (`members` and `skipped` by object ID): let the cache forget the people it did
        not find (`MappingCache.prune_mappings`); how many it forgot (logged)."""
        forgotten = self._cache.prune_mappings(_Either(members, skipped), len(members) + len(skipped))
        if forgotten:
            log.info("graph.mapping_cache_pruned", forgotten=forgotten)
        return forgotten


class _Either:
    """Whether a key is in either of two mappings (without a copy of both)."""

    def __init__(self, first: Mapping[str, object], second: Mapping[str, object]) -> None:
        self._first, self._second = first, second

    def __contains__(self, key: object) -> bool:
        return key in self._first or key in self._second
