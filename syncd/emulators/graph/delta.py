"""Graph delta queries in the emulator, for groups (`members@delta`) and users. A round's change list is
computed at its first page from the objects' versions and the membership log, then paged (big groups across
pages); nextLinks and deltaLinks carry signed tokens, and the links of an expired generation, or delta links
older than `delta_link_lifetime_s` on the emulator's clock (Graph: 7 days), answer 410. A groups delta
`$filter` names at most 50 groups (`id eq` clauses joined by `or`), as Graph allows.
"""

from __future__ import annotations

import bisect
import re
import secrets
from collections.abc import Callable
from typing import Any

from syncd.emulators.common import encode_json
from syncd.emulators.graph.checks import _GraphChecks
from syncd.emulators.graph.credentials import _MEMBER_ROLES, _USER_ROLES, _Token
from syncd.emulators.graph.directory import _GROUP, _USER
from syncd.emulators.graph.state import _GroupItem, _Round
from syncd.emulators.graph.wire import (
    GRAPH_PREFIX,
    _bad_request,
    _graph_error,
    _graph_headers,
    _Incoming,
    _Rejected,
    _Reply,
)

DELTA_LINK_LIFETIME_S = 7 * 24 * 3600.0
"""How long Graph honours a directory object's delta link."""
MAX_FILTER_IDS = 50
"""The most `id eq` clauses a groups delta `$filter` may hold."""
_MAX_ROUNDS = 8
"""Delta rounds (their change lists) kept for paging; an evicted round is recomputed from its token."""

_ID_EQ = re.compile(r"\s*id\s+eq\s+'([^']+)'\s*", re.IGNORECASE)
_OR = re.compile(r"\s+or\s+", re.IGNORECASE)


class _Delta(_GraphChecks):
    """GET /groups/delta and /users/delta (with or without "()"), their nextLinks and deltaLinks."""

    # Set by `GraphEmulator.__init__`, declared here so that this mixin type-checks on its own.
    delta_link_lifetime_s: float | None
    clock: Callable[[], float]

    def _groups_delta(self, incoming: _Incoming, token: _Token) -> _Reply:
        self._require(incoming, token, _MEMBER_ROLES)
        return self._delta(incoming, "groups")

    def _users_delta(self, incoming: _Incoming, token: _Token) -> _Reply:
        self._require(incoming, token, _USER_ROLES)
        return self._delta(incoming, "users")

    def _delta(self, incoming: _Incoming, kind: str) -> _Reply:
        skiptoken, deltatoken = incoming.option("skiptoken"), incoming.option("deltatoken")
        if skiptoken is not None:
            payload = self._delta_payload(incoming, skiptoken, kind, "page")
            round_id, offset = payload.get("r"), payload.get("o")
            if not isinstance(round_id, str) or not isinstance(offset, int):
                raise _Rejected(_bad_request(incoming, "The specified page token value is invalid."))
            delta_round = self._rounds.get(round_id)
            if delta_round is None:
                # Evicted: recompute the same question from the current directory.
                since = payload.get("b")
                delta_round = self._new_round(
                    kind,
                    since if isinstance(since, int) else None,
                    _tuple(payload.get("s")),
                    _tuple(payload.get("f")),
                )
                round_id = self._keep_round(delta_round)
                offset = min(offset, len(delta_round.items))
            return self._delta_page(incoming, round_id, delta_round, offset)
        if deltatoken is not None:
            if deltatoken.lower() == "latest":
                select, filter_ids = self._delta_question(incoming, kind)
                delta_round = _Round(kind, None, self._version, select, filter_ids, [], [])
                self._open_delta(delta_round.target)
                return self._delta_page(incoming, self._keep_round(delta_round), delta_round, 0)
            payload = self._delta_payload(incoming, deltatoken, kind, "delta")
            issued = payload.get("t")
            lifetime = self.delta_link_lifetime_s
            if lifetime is not None and isinstance(issued, (int, float)) and self.clock() - issued > lifetime:
                raise _Rejected(_sync_state_not_found(incoming))
            since = payload.get("v")
            if not isinstance(since, int):
                raise _Rejected(_bad_request(incoming, "The specified delta token value is invalid."))
            delta_round = self._new_round(kind, since, _tuple(payload.get("s")), _tuple(payload.get("f")))
            return self._delta_page(incoming, self._keep_round(delta_round), delta_round, 0)
        select, filter_ids = self._delta_question(incoming, kind)
        delta_round = self._new_round(kind, None, select, filter_ids)
        return self._delta_page(incoming, self._keep_round(delta_round), delta_round, 0)

    def _delta_question(
        self, incoming: _Incoming, kind: str
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        """The $select and $filter of an initial delta request, validated."""
        if kind == "groups":
            self._check_options(incoming, ("filter",))
            props = dict(_GROUP.by_lower, members="members")
            select = self._select(incoming, props, "microsoft.graph.group")
            raw_filter = incoming.option("filter")
            filter_ids = None if raw_filter is None else _id_filter(raw_filter)
            if filter_ids is not None and len(filter_ids) > MAX_FILTER_IDS:
                raise _Rejected(
                    _graph_error(
                        incoming,
                        400,
                        "Request_UnsupportedQuery",
                        "Too many child clauses specified in search filter expression containing 'OR' "
                        f"operators: {len(filter_ids)}. Max allowed: {MAX_FILTER_IDS}.",
                    )
                )
            if raw_filter is not None and filter_ids is None:
                raise _Rejected(
                    _graph_error(
                        incoming,
                        400,
                        "Request_UnsupportedQuery",
                        "Unsupported filter: group delta takes only "
                        "$filter=id eq '<id>' [or id eq '<id>' ...].",
                    )
                )
            return select, filter_ids
        self._check_options(incoming, ())
        return self._select(incoming, _USER.by_lower, "microsoft.graph.user"), None

    def _delta_payload(self, incoming: _Incoming, token: str, kind: str, use: str) -> dict[str, Any]:
        payload = self._read_link_token(token)
        if payload is None or payload.get("k") != f"{use}:{kind}":
            what = "page" if use == "page" else "delta"
            raise _Rejected(_bad_request(incoming, f"The specified {what} token value is invalid."))
        if payload.get("e") != self._epoch:
            raise _Rejected(_sync_state_not_found(incoming))
        return payload

    def _keep_round(self, delta_round: _Round) -> str:
        round_id = secrets.token_hex(8)
        self._rounds[round_id] = delta_round
        while len(self._rounds) > _MAX_ROUNDS:
            self._rounds.popitem(last=False)
        return round_id

    def _open_delta(self, version: int) -> None:
        """From now on keep the membership log from `version` on (a delta link will ask about it)."""
        if self._delta_floor is None or version < self._delta_floor:
            self._delta_floor = version

    def _new_round(
        self, kind: str, since: int | None, select: tuple[str, ...] | None, filter_ids: tuple[str, ...] | None
    ) -> _Round:
        target = self._version
        self._open_delta(target)
        if kind == "users":
            items, weights = self._user_changes(since, select)
        else:
            items, weights = self._group_changes(since, select, filter_ids)
        return _Round(kind, since, target, select, filter_ids, items, weights)

    def _user_changes(self, since: int | None, select: tuple[str, ...] | None) -> tuple[list[Any], list[int]]:
        items: list[Any] = []
        watched = {name.lower() for name in (select if select is not None else _USER.default_select)}
        for obj in self._objects.values():
            if obj.kind is not _USER:
                continue
            if (
                since is None
                or obj.created > since
                or (obj.changed and any(v > since and name in watched for name, v in obj.changed.items()))
            ):
                items.append(obj.id)
        if since is not None:
            for object_id, tombstone in self._tombstones.items():
                if tombstone.kind is _USER and tombstone.created <= since < tombstone.deleted:
                    items.append({"id": object_id, "@removed": {"reason": "changed"}})
        return items, [1] * len(items)

    def _group_changes(
        self, since: int | None, select: tuple[str, ...] | None, filter_ids: tuple[str, ...] | None
    ) -> tuple[list[Any], list[int]]:
        with_members = select is None or "members" in select
        watched = {name.lower() for name in (select if select is not None else _GROUP.default_select)}
        watched.discard("members")
        if filter_ids is not None:
            candidates = list(dict.fromkeys(filter_ids))
        else:
            candidates = [o.id for o in self._objects.values() if o.kind is _GROUP]
            if since is not None:
                candidates += [i for i, t in self._tombstones.items() if t.kind is _GROUP]
        # Net membership changes since `since`: the first event after it tells the state at `since`.
        before: dict[str, dict[str, bool]] = {}
        if since is not None and with_members:
            start = bisect.bisect_right(self._membership_log, since, key=lambda event: event[0])
            for _, group_id, member_id, added in self._membership_log[start:]:
                was = before.setdefault(group_id, {})
                if member_id not in was:
                    was[member_id] = not added
        entries: list[_GroupItem] = []
        for group_id in candidates:
            obj = self._objects.get(group_id)
            if obj is None or obj.kind is not _GROUP:
                tombstone = self._tombstones.get(group_id)
                if (
                    since is not None
                    and tombstone is not None
                    and tombstone.kind is _GROUP
                    and tombstone.created <= since < tombstone.deleted
                ):
                    entries.append((group_id, None, False))
                continue
            members = self._members[group_id]
            if since is None or obj.created > since:
                changes = [(m, self._odata_type(m), False) for m in members] if with_members else None
                entries.append((group_id, changes, True))
                continue
            props_changed = bool(obj.changed) and any(
                v > since and name in watched for name, v in (obj.changed or {}).items()
            )
            changes = []
            for member_id, was_member in before.get(group_id, {}).items():
                is_member = member_id in members
                if was_member != is_member:
                    changes.append((member_id, self._odata_type(member_id), not is_member))
            if props_changed or changes:
                entries.append((group_id, changes if with_members else None, True))
        # Pages hold at most page_cap member entries: big groups continue on the next page, as Graph does.
        cap = max(1, self.page_cap)
        items: list[Any] = []
        weights: list[int] = []
        for group_id, changes, show in entries:
            if changes is None or len(changes) <= cap:
                items.append((group_id, changes, show))
                weights.append(max(1, len(changes or ())))
                continue
            for start in range(0, len(changes), cap):
                items.append((group_id, changes[start : start + cap], show))
                weights.append(len(changes[start : start + cap]))
        return items, weights

    def _delta_page(self, incoming: _Incoming, round_id: str, delta_round: _Round, offset: int) -> _Reply:
        cap = max(1, self.page_cap)
        end = offset
        used = 0
        while end < len(delta_round.items) and (end == offset or used + delta_round.weights[end] <= cap):
            used += delta_round.weights[end]
            end += 1
        if delta_round.kind == "users":
            value = self._user_delta_values(delta_round, delta_round.items[offset:end])
        else:
            value = self._group_delta_values(delta_round, delta_round.items[offset:end])
        context = f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{delta_round.kind}"
        if delta_round.select is not None:
            context += f"({','.join(delta_round.select)})"
        body: dict[str, object] = {"@odata.context": context}
        link_base = f"{incoming.origin}{GRAPH_PREFIX}/{delta_round.kind}/delta()"
        common = {
            "e": self._epoch,
            "s": list(delta_round.select or ()) or None,
            "f": _list(delta_round.filter),
        }
        if end < len(delta_round.items):
            token = self._link_token(
                {"k": f"page:{delta_round.kind}", "r": round_id, "o": end, "b": delta_round.since, **common}
            )
            body["@odata.nextLink"] = f"{link_base}?$skiptoken={token}"
        else:
            token = self._link_token(
                {"k": f"delta:{delta_round.kind}", "v": delta_round.target, "t": self.clock(), **common}
            )
            body["@odata.deltaLink"] = f"{link_base}?$deltatoken={token}"
        body["value"] = value
        return _Reply(200, encode_json(body), _graph_headers(incoming))

    def _user_delta_values(self, delta_round: _Round, items: list[Any]) -> list[object]:
        projection = self._projection(delta_round.select, with_type=False)
        value: list[object] = []
        for item in items:
            if isinstance(item, dict):
                value.append(item)
                continue
            obj = self._objects.get(item)
            if obj is None:  # deleted since the round began: the next round reports it
                continue
            value.append(projection.project(obj))
        return value

    def _group_delta_values(self, delta_round: _Round, items: list[Any]) -> list[object]:
        select = delta_round.select
        props = tuple(p for p in select if p != "members") if select is not None else None
        projection = self._projection(props, with_type=False)
        value: list[object] = []
        for group_id, changes, show in items:
            obj = self._objects.get(group_id)
            if changes is None and not show:
                value.append({"id": group_id, "@removed": {"reason": "changed"}})
                continue
            entry: dict[str, object] = {"id": group_id}
            if show and obj is not None and (props is None or props):
                entry = projection.project(obj)
            if changes is not None:
                entry["members@delta"] = [
                    {"@odata.type": odata_type, "id": member_id, "@removed": {"reason": "deleted"}}
                    if removed
                    else {"@odata.type": odata_type, "id": member_id}
                    for member_id, odata_type, removed in changes
                ]
            value.append(entry)
        return value


def _sync_state_not_found(incoming: _Incoming) -> _Reply:
    return _graph_error(
        incoming,
        410,
        "SyncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized "
        "again.",
    )


def _id_filter(raw: str) -> tuple[str, ...] | None:
    """The IDs of `id eq '<id>' or id eq '<id>' ...` (the only $filter group delta takes), else None."""
    ids: list[str] = []
    for part in _OR.split(raw.strip()):
        match = _ID_EQ.fullmatch(part)
        if match is None:
            return None
        ids.append(match.group(1))
    return tuple(ids) if ids else None


def _tuple(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _list(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)
