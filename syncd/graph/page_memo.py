"""The memory of the last full read: each member page's body digest with the page as it was mapped, so that
the next full read takes an unchanged page as it is instead of parsing and mapping its users again.

A full cycle reads every member page of every configured group. When nobody changed, Graph sends the very
pages it sent last time, byte for byte: parsing them and mapping their users again (about 60% of the CPU of
such a cycle's read) only rebuilds what the last read built. `PageMemo` keeps, by group and page number, a
128-bit blake2b digest of each page's whole body (its `@odata.nextLink` included) with the page's mapped
users and its next link. A page whose body has the digest kept for its place is taken from the memo; any
other is parsed and mapped as usual, and kept in its place. A change anywhere on a page (a user's field, one
user more, the order, the next link) changes its digest, so a page is never taken for another.

Two levels: a long-lived process holds the pages of its last read in memory; behind that, a `PageStore` (the
store's `page_memo` table, handed to `begin` by the cycle) keeps them across processes, so a fresh process
(a one-shot `syncd sync`, a restarted daemon) asks it for each place memory has nothing for. A page the read
had to map is written there as well (unless the store is read-only for the cycle, as in a dry run).

The users of a page are mapped with inputs beyond the page: the settings of the mapping, the versions of
the mapping code and of phonenumbers' metadata, and the excluded group holding each user. `begin` is handed
a digest of those (`mapping_inputs`); when it differs from the previous read's, everything held in memory is
forgotten, and a stored page kept under other inputs is a miss. Teams numbers come from another read, so a
read with "teams" in the phone chain uses no memo (as for the mapping cache).

A page leaves memory as soon as its place is read again (taken, or replaced by the page just mapped), so a
read that changes every page never holds two mappings of the tenant. A read that went through to its end
forgets the pages it did not reach (`end`, in the store too); one that failed keeps what it mapped beside
what it did not reach (`abandon`: every page is checked against its digest anyway). Holding the pages costs
what the read's mapped users cost (the desired state of the last full read stays alive between cycles).
The memo itself does no I/O; its `PageStore` does.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import phonenumbers

from syncd.core.model import Member, Skipped
from syncd.graph.fingerprint import MAPPING_VERSION

Mapped = Member | Skipped


def page_digest(body: bytes) -> bytes:
    """Pure: the digest of a page's whole body (16 bytes of blake2b)."""
    return hashlib.blake2b(body, digest_size=16).digest()


def mapping_inputs(settings_key: str, excluded: Mapping[str, str]) -> bytes:
    """Pure: a digest of what a read's mappings depend on beyond each user's object: `settings_key` (the
    mapping settings as text), the versions of the mapping code (`MAPPING_VERSION`), of phonenumbers and of
    the Unicode database (a stored page outlives the process that mapped it), and the excluded group holding
    each user (`excluded`, by lower-case object ID), in a canonical order."""
    versions = f"{MAPPING_VERSION}\0{phonenumbers.__version__}\0{unicodedata.unidata_version}\0"
    digest = hashlib.blake2b((versions + settings_key).encode(), digest_size=16)
    for object_id in sorted(excluded):
        digest.update(f"\0{object_id}\0{excluded[object_id]}".encode())
    return digest.digest()


class PageStore(Protocol):
    """Pages kept across processes (implemented over the store by `syncd.cycle`); digests are given as hex."""

    def stored_page(
        self, group_id: str, number: int, digest: str, inputs: str
    ) -> tuple[Sequence[Mapped], str | None] | None:
        """The mapped users and next link kept at this place for a body of `digest` under `inputs`, or
        None."""
        ...

    def store_page(
        self,
        group_id: str,
        number: int,
        digest: str,
        inputs: str,
        mapped: Sequence[Mapped],
        next_link: str | None,
    ) -> bool:
        """Keep a page as mapped at its place (replacing what the place held); whether it was kept (not when
        the store is read-only for this read, or failing)."""
        ...

    def trim_pages(self, last_pages: Mapping[str, int]) -> int:
        """After a whole read whose groups had `last_pages[group_id]` pages: forget every other place."""
        ...


@dataclass(frozen=True, slots=True)
class MemoPage:
    """One page as a read mapped it."""

    digest: bytes
    mapped: Sequence[Mapped]
    next_link: str | None
    stored: bool = False
    """Whether the `PageStore` holds it (under the inputs of the read that keeps it)."""


class PageMemo:
    """The member pages of the last full read, by (group ID, page number)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, int], MemoPage] = {}
        self._reading: dict[tuple[str, int], MemoPage] = {}
        self._inputs: bytes | None = None
        self._stored: PageStore | None = None
        self.recalled = 0
        """Pages taken from the memo (memory or store) during the current read."""
        self.from_store = 0
        """Of those, pages taken from the `PageStore`."""

    def begin(self, inputs: bytes, stored: PageStore | None = None) -> None:
        """A full read starts; `inputs` is its `mapping_inputs`, `stored` the pages kept across processes
        (None: memory only). Pages held under other inputs are forgotten."""
        if inputs != self._inputs:
            self._kept = {}
            self._inputs = inputs
        self._stored = stored
        self._reading = {}
        self.recalled = self.from_store = 0

    def recall(self, group_id: str, number: int, digest: bytes) -> MemoPage | None:
        """The page kept at this place when it was mapped from a body of this `page_digest` (kept for the next
        read as well); None otherwise (then map it and `keep` it)."""
        page = self._kept.pop((group_id, number), None)  # taken or replaced: never held twice
        if page is None and self._stored is not None and self._inputs is not None:
            # Nothing in memory for this place (a fresh process): the store may have kept it.
            found = self._stored.stored_page(group_id, number, digest.hex(), self._inputs.hex())
            if found is not None:
                page = MemoPage(digest, found[0], found[1], stored=True)
                self.from_store += 1
        if page is None or page.digest != digest:
            return None
        self._reading[(group_id, number)] = self._stored_too(group_id, number, page)
        self.recalled += 1
        return page

    def keep(
        self, group_id: str, number: int, digest: bytes, mapped: Sequence[Mapped], next_link: str | None
    ) -> None:
        """Keep a page this read mapped from a body of this `page_digest` (taken by the next read if it finds
        the same body there), in the store as well."""
        self._reading[(group_id, number)] = self._stored_too(
            group_id, number, MemoPage(digest, mapped, next_link)
        )

    def _stored_too(self, group_id: str, number: int, page: MemoPage) -> MemoPage:
        """`page`, written to the store if it is not there yet (one the memory took while the store was
        read-only, as in a dry run, is written by the next read that may write)."""
        if page.stored or self._stored is None or self._inputs is None:
            return page
        digest, inputs = page.digest.hex(), self._inputs.hex()
        if not self._stored.store_page(group_id, number, digest, inputs, page.mapped, page.next_link):
            return page
        return MemoPage(page.digest, page.mapped, page.next_link, stored=True)

    def end(self) -> None:
        """The read went through to its end: what it read replaces what was kept (the store forgets the
        places it did not reach)."""
        if self._stored is not None:
            last_pages: dict[str, int] = {}
            for group_id, number in self._reading:
                last_pages[group_id] = max(number, last_pages.get(group_id, 0))
            self._stored.trim_pages(last_pages)
        self._kept, self._reading = self._reading, {}

    def abandon(self) -> None:
        """The read failed: what it kept joins what it did not reach."""
        self._kept.update(self._reading)
        self._reading = {}

    def take_recalled(self) -> dict[str, int]:
        """How many pages were taken from the memo since the last call (`pages_unchanged`), and how many of
        those from the store (`pages_from_store`): for the log of a group's read."""
        counts = {"pages_unchanged": self.recalled, "pages_from_store": self.from_store}
        self.recalled = self.from_store = 0
        return counts

    def __len__(self) -> int:
        """How many pages are kept."""
        return len(self._kept)
