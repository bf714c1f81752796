"""The Graph emulator's state and the bookkeeping every part of it shares: objects, memberships and their
cached closures, the version counter that dates every change for delta queries, the membership log, the page
and projection caches, delta rounds, and the signed tokens inside skip and delta links.

`_DirectoryState` is the base of the mixins that make up `GraphEmulator`; it handles no requests.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import random
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.emulators.common import ControlApi, FaultInjector, b64url, b64url_decode
from syncd.emulators.graph.credentials import (
    DEFAULT_APP_ROLES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    _App,
    _Token,
)
from syncd.emulators.graph.directory import (
    _GROUP,
    _USER,
    _USER_FIELDS,
    _USER_KEYWORDS,
    _Kind,
    _Object,
    _Projection,
    _raw_dict,
    _timestamp,
    _Tombstone,
    _user_value,
)
from syncd.emulators.graph.wire import _Entry

# A change list entry. Users: an object id (projected when its page is served) or a removal marker.
# Groups: (group id, member changes or None when members are not selected, whether to show properties);
# member changes are (member id, @odata.type, removed).
_MemberChange = tuple[str, str, bool]
_GroupItem = tuple[str, list[_MemberChange] | None, bool]


@dataclass(frozen=True)
class _Change:
    """One change to the directory at an emulator-clock time, kept while advanced queries may not show it
    yet (`GraphEmulator.eventual_lag_s`): enough to show the directory as it was before it."""

    at: float
    kind: str
    """"member" (a membership added or removed), "props" (a user's properties changed), "created" or
    "deleted" (an object)."""
    object_id: str
    group_id: str = ""
    """For "member": the group."""
    added: bool = False
    """For "member": whether the membership began (else it ended)."""
    before: _Object | None = None
    """For "props" and "deleted": the object as it was."""
    members: tuple[str, ...] | None = None
    """For a deleted group: its direct members then."""


@dataclass
class _Bucket:
    """An app's throttling budget: the resource units left, as of an emulator-clock time."""

    units: float
    at: float


@dataclass
class _Round:
    """One delta round's change list, computed at its first page and paged from here."""

    kind: str
    """"groups" or "users"."""
    since: int | None
    """The version of the delta link it answers (None for an initial round)."""
    target: int
    """The version its final delta link carries: everything up to it is in the list."""
    select: tuple[str, ...] | None
    filter: tuple[str, ...] | None
    items: list[Any]
    weights: list[int]


class _DirectoryState(ControlApi):
    """What `GraphEmulator` knows and the methods that keep it consistent (called with the lock held)."""

    # Set by `GraphEmulator.__init__`, declared here so that each mixin type-checks on its own.
    page_cap: int
    _seed: int
    _link_key: bytes
    _lock: threading.Lock
    _tokens: dict[str, _Token]
    _epoch: int
    clock: Callable[[], float]
    eventual_lag_s: float

    def _clear_state(self) -> None:
        self._apps: dict[str, _App] = {}
        self._objects: dict[str, _Object] = {}
        self._by_upn: dict[str, str] = {}
        self._members: dict[str, dict[str, None]] = {}
        self._denied: set[str] = set()
        self._tombstones: dict[str, _Tombstone] = {}
        self._version = 0
        self._membership_log: list[tuple[int, str, str, bool]] = []
        self._delta_floor: int | None = None
        """Oldest version a live delta link or round may ask about; None: no membership log needed."""
        self._rounds: OrderedDict[str, _Round] = OrderedDict()
        self._closures: dict[tuple[str, bool, str | None], list[str]] = {}
        self._pages: dict[tuple[object, ...], bytes] = {}
        """Encoded `value` arrays of member pages until the directory changes: benchmarks read a
        100,000-user group again and again."""
        self._pages_size = 0
        self._projections: dict[tuple[tuple[str, ...] | None, bool], _Projection] = {}
        self._numbers: dict[str, dict[str, object]] = {}
        """Teams number assignment records as served, by telephoneNumber."""
        self._number_ids: dict[str, str] = {}
        """Record ID -> telephoneNumber."""
        self._numbers_sorted: list[dict[str, object]] | None = None
        self._numbers_filtered: dict[str, list[dict[str, object]]] = {}
        """$filter text -> the matching records in order (cleared on any change), so paging is not O(N^2)."""
        self._log: list[_Entry] = []
        self._seq = 0
        self._user_count = 0
        """Users in the directory: the tenant's size, which sets its throttling budget."""
        self._buckets: dict[str, _Bucket] = {}
        """Client ID -> its resource unit bucket (`_Throttle`)."""
        self._recent: list[_Change] = []
        """Changes advanced queries may not show yet (kept only while `eventual_lag_s` > 0)."""
        self._injector = FaultInjector(self._seed)
        # Seeded on purpose: reproducible IDs, not secrets.
        self._id_rng = random.Random(self._seed + 1)  # noqa: S311
        self._apps[DEFAULT_CLIENT_ID.lower()] = _App(
            client_id=DEFAULT_CLIENT_ID,
            secret=DEFAULT_CLIENT_SECRET,
            certificate=None,
            roles=frozenset(DEFAULT_APP_ROLES),
            service_principal_id=self._new_id(),
            display_name="syncd",
        )

    def _expire_deltas(self) -> None:
        self._epoch += 1
        self._rounds.clear()
        self._membership_log.clear()
        self._delta_floor = None

    def _bump(self) -> int:
        """A new directory version: every change comes through here, so cached pages go too."""
        self._version += 1
        if self._pages:
            self._pages.clear()
            self._pages_size = 0
        return self._version

    def _new_uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._id_rng.getrandbits(128), version=4)

    def _new_id(self) -> str:
        while True:
            object_id = str(self._new_uuid())
            if object_id not in self._objects:
                return object_id

    def _insert(self, kind: _Kind, object_id: str | None, props: dict[str, object]) -> _Object:
        if object_id is None:
            object_id = self._new_id()
        elif object_id in self._objects:
            raise ValueError(f"an object with id {object_id!r} exists already")
        props.setdefault("createdDateTime", _timestamp())
        obj = _Object(object_id, kind, props, self._bump())
        self._objects[object_id] = obj
        self._tombstones.pop(object_id, None)
        if kind is _USER:
            self._user_count += 1
        self._remember(lambda at: _Change(at, "created", obj.id))
        return obj

    def _insert_user(self, fields: Mapping[str, Any]) -> str:
        unknown = fields.keys() - _USER_FIELDS
        if unknown:
            raise ValueError(f"unknown user fields: {', '.join(sorted(unknown))}")
        upn = fields.get("upn")
        if not isinstance(upn, str) or not upn:
            raise ValueError("a user needs a upn")
        if upn.lower() in self._by_upn:
            raise ValueError(f"UPN {upn!r} is taken")
        props: dict[str, object] = {"accountEnabled": True, "userType": "Member"}
        raw: dict[str, object] = {}
        for keyword, given in fields.items():
            if keyword == "raw":
                raw = _raw_dict(given)
            elif keyword != "id":
                value = _user_value(keyword, given)
                if value is not None:
                    props[_USER_KEYWORDS[keyword]] = value
        self._set_sync_enabled(props)
        obj = self._insert(_USER, fields.get("id"), props)
        obj.raw = raw or None
        self._by_upn[upn.lower()] = obj.id
        return obj.id

    @staticmethod
    def _set_sync_enabled(props: dict[str, object]) -> None:
        # Entra Connect sets the source anchor on synced users; cloud-only users have neither.
        if props.get("onPremisesImmutableId") is not None:
            props["onPremisesSyncEnabled"] = True
        else:
            props.pop("onPremisesSyncEnabled", None)

    def _forget_user(self, object_id: str) -> None:
        obj = self._objects.pop(object_id, None)
        if obj is not None:
            self._user_count -= 1
            upn = obj.props.get("userPrincipalName")
            if isinstance(upn, str):
                self._by_upn.pop(upn.lower(), None)

    def _delete_object(self, obj: _Object) -> None:
        had = tuple(self._members[obj.id]) if obj.kind is _GROUP else None
        for group_id, members in self._members.items():
            if obj.id in members:
                del members[obj.id]
                self._membership_changed(group_id, obj.id, added=False)
        if obj.kind is _GROUP:
            del self._members[obj.id]
            self._denied.discard(obj.id)
        self._closures.clear()
        upn = obj.props.get("userPrincipalName")
        if isinstance(upn, str):
            self._by_upn.pop(upn.lower(), None)
        del self._objects[obj.id]
        if obj.kind is _USER:
            self._user_count -= 1
        self._tombstones[obj.id] = _Tombstone(obj.kind, obj.created, self._bump())
        self._remember(lambda at: _Change(at, "deleted", obj.id, before=obj, members=had))

    def _group_members(self, group_id: str) -> dict[str, None]:
        members = self._members.get(group_id)
        if members is None:
            raise ValueError(f"no group {group_id!r}")
        return members

    def _add_members(self, group_id: str, member_ids: Iterable[str]) -> None:
        members = self._group_members(group_id)
        for member_id in member_ids:
            if member_id not in self._objects:
                raise ValueError(f"no directory object {member_id!r}")
            if member_id == group_id:
                raise ValueError("a group cannot be a member of itself")
            if member_id not in members:
                members[member_id] = None
                self._membership_changed(group_id, member_id, added=True)

    def _membership_changed(self, group_id: str, member_id: str, *, added: bool) -> None:
        version = self._bump()
        if self._closures:
            self._closures.clear()
        # Kept only while a delta link may ask about it: a 1,000,000-user fixture built before any delta
        # query costs no log at all.
        if self._delta_floor is not None:
            self._membership_log.append((version, group_id, member_id, added))
        self._remember(lambda at: _Change(at, "member", member_id, group_id=group_id, added=added))

    def _remember(self, change: Callable[[float], _Change]) -> None:
        """Keep a change for the lagging advanced queries (only while there is a lag: big fixtures built
        without one keep nothing), and let go of those every query shows by now."""
        if self.eventual_lag_s <= 0:
            if self._recent:
                self._recent.clear()
            return
        now = self.clock()
        self._recent.append(change(now))
        cutoff = now - self.eventual_lag_s
        if self._recent[0].at <= cutoff:
            self._recent = [c for c in self._recent if c.at > cutoff]

    def _odata_type(self, object_id: str) -> str:
        obj = self._objects.get(object_id)
        if obj is not None:
            return obj.kind.odata_type
        tombstone = self._tombstones.get(object_id)
        return (tombstone.kind if tombstone else _USER).odata_type

    def _member_ids(self, group_id: str, *, transitive: bool, kind: _Kind | None) -> list[str]:
        """Direct or transitive members in a stable order, optionally of one type (cached until the
        memberships change)."""
        key = (group_id, transitive, kind.name if kind else None)
        cached = self._closures.get(key)
        if cached is not None:
            return cached
        if kind is not None:
            everyone = self._member_ids(group_id, transitive=transitive, kind=None)
            objects = self._objects
            result = [object_id for object_id in everyone if objects[object_id].kind is kind]
        elif not transitive:
            result = list(self._members[group_id])
        else:
            result = _closure(self._members, group_id)
        self._closures[key] = result
        return result

    def _projection(self, select: tuple[str, ...] | None, *, with_type: bool) -> _Projection:
        key = (select, with_type)
        projection = self._projections.get(key)
        if projection is None:
            if len(self._projections) > 64:
                self._projections.clear()
            projection = self._projections[key] = _Projection(select, with_type=with_type)
        return projection

    # --- link tokens (skip and delta tokens) ------------------------------------------------------------

    def _link_token(self, payload: dict[str, object]) -> str:
        body = b64url(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        tag = hmac.new(self._link_key, body.encode("ascii"), hashlib.sha256).digest()[:12]
        return f"{body}.{b64url(tag)}"

    def _read_link_token(self, token: str) -> dict[str, Any] | None:
        body, _, tag = token.partition(".")
        try:
            expected = hmac.new(self._link_key, body.encode("ascii"), hashlib.sha256).digest()[:12]
            if not hmac.compare_digest(b64url_decode(tag), expected):
                return None
            payload: object = json.loads(b64url_decode(body))
        except (binascii.Error, ValueError, UnicodeError):
            return None
        return payload if isinstance(payload, dict) else None


def _closure(groups: Mapping[str, Mapping[str, None]], group_id: str) -> list[str]:
    """Transitive members of `group_id` in `groups` (group ID -> its direct members), depth first in
    insertion order, each object once; cycles are safe and the group itself is never its own member."""
    seen = {group_id}
    result: list[str] = []
    stack = [iter(groups[group_id])]
    while stack:
        for member_id in stack[-1]:
            if member_id in seen:
                continue
            seen.add(member_id)
            result.append(member_id)
            nested = groups.get(member_id)
            if nested:
                stack.append(iter(nested))
                break
        else:
            stack.pop()
    return result
