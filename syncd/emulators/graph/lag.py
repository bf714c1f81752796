"""The lag of Graph's advanced queries in the emulator: requests sent with `ConsistencyLevel: eventual` are
answered from a separate index that Entra fills asynchronously, so they may not show a write yet. With
`GraphEmulator.eventual_lag_s` > 0 such reads see the directory as it was that many seconds ago on the
emulator's clock (memberships, users' properties, objects created or deleted since); every other read (a
delta query, `GET /users/{id}`) sees it as it is. Off by default: Microsoft documents no bound for the delay.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from syncd.emulators.graph.directory import _Kind, _Object
from syncd.emulators.graph.state import _closure, _DirectoryState


class _Overlay(Mapping[str, _Object]):
    """The live objects, with some shown as they were and some (created since) hidden."""

    def __init__(self, live: Mapping[str, _Object], overrides: Mapping[str, _Object | None]) -> None:
        self._live = live
        self._overrides = overrides

    def __getitem__(self, object_id: str) -> _Object:
        if object_id in self._overrides:
            shown = self._overrides[object_id]
            if shown is None:
                raise KeyError(object_id)
            return shown
        return self._live[object_id]

    def __iter__(self) -> Iterator[str]:
        for object_id in self._live:
            if self._overrides.get(object_id, self._live[object_id]) is not None:
                yield object_id
        for object_id, shown in self._overrides.items():
            if shown is not None and object_id not in self._live:
                yield object_id

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class _View:
    """The directory as an advanced query sees it."""

    members: Mapping[str, Mapping[str, None]]
    """Group ID -> its direct members."""
    objects: Mapping[str, _Object]

    def member_ids(self, group_id: str, *, transitive: bool, kind: _Kind | None) -> list[str]:
        if group_id not in self.members:
            return []
        ids = _closure(self.members, group_id) if transitive else list(self.members[group_id])
        objects = self.objects
        return [i for i in ids if (obj := objects.get(i)) is not None and (kind is None or obj.kind is kind)]


class _Lag(_DirectoryState):
    """What advanced queries see while `eventual_lag_s` > 0 (called with the lock held)."""

    def _lagged_view(self) -> _View | None:
        """The directory as of `eventual_lag_s` ago, or None when no change is that recent (or no lag)."""
        if self.eventual_lag_s <= 0 or not self._recent:
            return None
        cutoff = self.clock() - self.eventual_lag_s
        self._recent = [change for change in self._recent if change.at > cutoff]
        if not self._recent:
            return None
        members: dict[str, dict[str, None]] = dict(self._members)
        copied: set[str] = set()
        overrides: dict[str, _Object | None] = {}

        def writable(group_id: str) -> dict[str, None] | None:
            group = members.get(group_id)
            if group is not None and group_id not in copied:
                group = members[group_id] = dict(group)
                copied.add(group_id)
            return group

        # Newest first: undoing each change in turn leaves the state before the oldest recent one.
        for change in reversed(self._recent):
            if change.kind == "member":
                group = writable(change.group_id)
                if group is None:
                    continue
                if change.added:
                    group.pop(change.object_id, None)
                else:
                    group[change.object_id] = None
            elif change.kind == "created":
                overrides[change.object_id] = None
                if members.pop(change.object_id, None) is not None:
                    copied.discard(change.object_id)
            else:  # "props" or "deleted": the object as it was
                overrides[change.object_id] = change.before
                if change.kind == "deleted" and change.members is not None:
                    members[change.object_id] = dict.fromkeys(change.members)
                    copied.add(change.object_id)
        return _View(members, _Overlay(self._objects, overrides))
