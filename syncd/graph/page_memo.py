"""A long-lived process's memory of its last full read: each member page's body digest with the page as it
was mapped, so that the next full read takes an unchanged page as it is instead of parsing and mapping its
users again.

A daemon's full cycle reads every member page of every configured group. When nobody changed, Graph sends
the very pages it sent last time, byte for byte: parsing them and mapping their users again (about 60% of the
CPU of such a cycle's read) only rebuilds what the process held a cycle ago. `PageMemo` keeps, by group and
page number, a 128-bit blake2b digest of each page's whole body (its `@odata.nextLink` included) with the
page's mapped users and its next link. A page whose body has the digest kept for its place is taken from the
memo; any other is parsed and mapped as usual, and kept in its place. A change anywhere on a page (a user's
field, one user more, the order, the next link) changes its digest, so a page is never taken for another.

The users of a page are mapped with inputs beyond the page: the settings of the mapping and the excluded
group holding each user. `begin` is handed a digest of those (`mapping_inputs`); when it differs from the
previous read's, everything kept is forgotten. Teams numbers come from another read, so a read with "teams"
in the phone chain uses no memo (as for the mapping cache).

A page leaves the memo as soon as its place is read again (taken, or replaced by the page just mapped), so a
read that changes every page never holds two mappings of the tenant. A read that went through to its end
forgets the pages it did not reach (`end`); one that failed keeps what it mapped beside what it did not reach
(`abandon`: every page is checked against its digest anyway). Holding the pages costs what the read's mapped
users cost (the desired state of the last full read stays alive between cycles); a one-shot `syncd sync`
reads once and never uses it. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from syncd.core.model import Member, Skipped

Mapped = Member | Skipped


def page_digest(body: bytes) -> bytes:
    """Pure: the digest of a page's whole body (16 bytes of blake2b)."""
    return hashlib.blake2b(body, digest_size=16).digest()


def mapping_inputs(settings_key: str, excluded: Mapping[str, str]) -> bytes:
    """Pure: a digest of what a read's mappings depend on beyond each user's object: `settings_key` (the
    mapping settings as text) and the excluded group holding each user (`excluded`, by lower-case object
    ID), in a canonical order."""
    digest = hashlib.blake2b(settings_key.encode(), digest_size=16)
    for object_id in sorted(excluded):
        digest.update(f"\0{object_id}\0{excluded[object_id]}".encode())
    return digest.digest()


@dataclass(frozen=True, slots=True)
class MemoPage:
    """One page as a read mapped it."""

    digest: bytes
    mapped: Sequence[Mapped]
    next_link: str | None


class PageMemo:
    """The member pages of the last full read, by (group ID, page number)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, int], MemoPage] = {}
        self._reading: dict[tuple[str, int], MemoPage] = {}
        self._inputs: bytes | None = None
        self.recalled = 0
        """Pages taken from the memo during the current read."""

    def begin(self, inputs: bytes) -> None:
        """A full read starts; `inputs` is its `mapping_inputs`. Pages kept under other inputs are
        forgotten."""
        if inputs != self._inputs:
            self._kept = {}
            self._inputs = inputs
        self._reading = {}
        self.recalled = 0

    def recall(self, group_id: str, number: int, digest: bytes) -> MemoPage | None:
        """The page kept at this place when it was mapped from a body of this `page_digest` (kept for the next
        read as well); None otherwise (then map it and `keep` it)."""
        page = self._kept.pop((group_id, number), None)  # taken or replaced: never held twice
        if page is None or page.digest != digest:
            return None
        self._reading[(group_id, number)] = page
        self.recalled += 1
        return page

    def keep(
        self, group_id: str, number: int, digest: bytes, mapped: Sequence[Mapped], next_link: str | None
    ) -> None:
        """Keep a page this read mapped from a body of this `page_digest` (taken by the next read if it finds
        the same body there)."""
        self._reading[(group_id, number)] = MemoPage(digest, mapped, next_link)

    def end(self) -> None:
        """The read went through to its end: what it read replaces what was kept."""
        self._kept, self._reading = self._reading, {}

    def abandon(self) -> None:
        """The read failed: what it kept joins what it did not reach."""
        self._kept.update(self._reading)
        self._reading = {}

    def take_recalled(self) -> int:
        """How many pages were taken from the memo since the last call (for the log of a group's read)."""
        recalled, self.recalled = self.recalled, 0
        return recalled

    def __len__(self) -> int:
        """How many pages are kept."""
        return len(self._kept)
