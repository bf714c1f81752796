"""The Graph emulator's directory reads: a group's `members` and `transitiveMembers` (OData casts and $count
as advanced queries, $select, $top, absolute nextLinks with a signed $skiptoken, pages cached while the
directory is unchanged), a user's direct memberships (`memberOf`), and single users and groups. Requests
with `ConsistencyLevel: eventual` read the lagging index of advanced queries (`lag`).
"""

from __future__ import annotations

from syncd.emulators.common import encode_json
from syncd.emulators.graph.checks import _PRIVILEGES_MESSAGE, _GraphChecks
from syncd.emulators.graph.credentials import (
    _HIDDEN_MEMBERS_ROLE,
    _MEMBER_OF_ROLES,
    _MEMBER_ROLES,
    _USER_ROLES,
    _Token,
)
from syncd.emulators.graph.directory import _CASTS, _DIRECTORY_OBJECT_PROPS, _GROUP, _USER, _Kind, _Object
from syncd.emulators.graph.lag import _Lag
from syncd.emulators.graph.wire import (
    GRAPH_PREFIX,
    _bad_request,
    _graph_error,
    _graph_headers,
    _Incoming,
    _next_link,
    _Rejected,
    _Reply,
)

# memberOf cast segments, lower-cased -> type name. Directory roles and administrative units are valid casts
# that this directory never has (always empty).
_MEMBER_OF_CASTS = {
    f"{prefix}.{name}".lower(): name
    for prefix in ("microsoft.graph", "graph")
    for name in ("group", "directoryRole", "administrativeUnit")
}

_PAGE_CACHE_BYTES = 512 * 1024 * 1024


def _limited(item: dict[str, object]) -> dict[str, object]:
    """Graph's "limited information" about an object the app may not read: its type and ID, every other
    property null."""
    return {name: item[name] if name in ("@odata.type", "id") else None for name in item}


class _Reads(_GraphChecks, _Lag):
    """GET /groups/{id}/members and /transitiveMembers, /users/{id}/memberOf, /users/{id}, /groups/{id}."""

    def _list_members(
        self, incoming: _Incoming, token: _Token, group_id: str, transitive: bool, tail: list[str]
    ) -> _Reply:
        self._require(incoming, token, _MEMBER_ROLES)
        group = self._objects.get(group_id)
        if group is None or group.kind is not _GROUP:
            raise self._not_found(incoming, group_id)
        if group_id in self._denied and _HIDDEN_MEMBERS_ROLE not in token.roles:
            raise _Rejected(_graph_error(incoming, 403, "Authorization_RequestDenied", _PRIVILEGES_MESSAGE))
        cast: _Kind | None = None
        count_segment = False
        for segment in tail:
            if segment == "":
                continue
            if segment.lower() == "$count" and not count_segment:
                count_segment = True
            elif cast is None and not count_segment and segment.lower() in _CASTS:
                cast = _CASTS[segment.lower()]
            else:
                return _graph_error(
                    incoming, 400, "BadRequest", f"Resource not found for the segment '{segment}'."
                )
        self._check_options(incoming, ())
        eventual = (incoming.consistency_level or "").strip().lower() == "eventual"
        view = self._lagged_view() if eventual else None
        count = self._count_requested(incoming)
        if count_segment:
            if not eventual:
                return _bad_request(incoming, "$count is not currently supported.")
            if view is not None:
                total = len(view.member_ids(group_id, transitive=transitive, kind=cast))
            else:
                total = len(self._member_ids(group_id, transitive=transitive, kind=cast))
            return _Reply(200, str(total).encode(), content_type="text/plain")
        if cast is not None and not (eventual and count):
            return _graph_error(
                incoming,
                400,
                "Request_UnsupportedQuery",
                "An OData cast on a member list is an advanced query: it needs the header 'ConsistencyLevel: "
                "eventual' and the query option '$count=true'.",
            )
        if cast is not None:
            select = self._select(incoming, cast.by_lower, f"microsoft.graph.{cast.name}")
        else:
            select = self._select(incoming, _DIRECTORY_OBJECT_PROPS, "microsoft.graph.directoryObject")
        size = self._page_size(incoming)
        if view is not None:
            ids = view.member_ids(group_id, transitive=transitive, kind=cast)
        else:
            ids = self._member_ids(group_id, transitive=transitive, kind=cast)
        offset = self._member_offset(incoming, ids, group_id, transitive, cast)
        page = ids[offset : offset + size]
        projection = self._projection(select, with_type=True)
        objects = self._objects if view is None else view.objects
        # Without a user permission Graph lists the users with "limited information" (docs/spec).
        limited = not token.roles & _USER_ROLES

        def encoded() -> bytes:
            items = [projection.project(objects[object_id]) for object_id in page]
            if limited:
                items = [
                    _limited(item) if objects[object_id].kind is _USER else item
                    for object_id, item in zip(page, items, strict=True)
                ]
            return encode_json(items)

        page_key = (group_id, transitive, cast.name if cast else None, select, offset, len(page), limited)
        value = self._pages.get(page_key) if view is None else None
        if view is not None:
            value = encoded()
        elif value is None:
            value = encoded()
            if self._pages_size + len(value) > _PAGE_CACHE_BYTES:
                self._pages.clear()
                self._pages_size = 0
            self._pages[page_key] = value
            self._pages_size += len(value)

        entity_set = cast.entity_set if cast is not None else "directoryObjects"
        context = f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{entity_set}"
        if select is not None:
            context += f"({','.join(select)})"
        body: dict[str, object] = {"@odata.context": context}
        # Graph ignores $count=true silently without ConsistencyLevel: eventual (documented).
        if count and eventual:
            body["@odata.count"] = len(ids)
        end = offset + len(page)
        if end < len(ids):
            skiptoken = self._link_token(
                {
                    "k": "m",
                    "g": group_id,
                    "t": transitive,
                    "c": cast.name if cast else None,
                    "o": end,
                    "l": page[-1],
                }
            )
            body["@odata.nextLink"] = _next_link(incoming, "$skiptoken", skiptoken, drop=("skiptoken",))
        # The envelope, then the value array spliced in from the cached objects.
        envelope = encode_json(body)[:-1]
        return _Reply(200, b"".join((envelope, b',"value":', value, b"}")), _graph_headers(incoming))

    def _member_offset(
        self, incoming: _Incoming, ids: list[str], group_id: str, transitive: bool, cast: _Kind | None
    ) -> int:
        raw = incoming.option("skiptoken")
        if raw is None:
            return 0
        payload = self._read_link_token(raw)
        if (
            payload is None
            or payload.get("k") != "m"
            or payload.get("g") != group_id
            or payload.get("t") != transitive
            or payload.get("c") != (cast.name if cast else None)
            or not isinstance(payload.get("o"), int)
        ):
            raise _Rejected(_bad_request(incoming, "The specified page token value is invalid."))
        offset: int = payload["o"]
        last = payload.get("l")
        # Continue after the last object served, even if members came or went in between.
        if 0 < offset <= len(ids) and ids[offset - 1] == last:
            return offset
        if isinstance(last, str):
            try:
                return ids.index(last) + 1
            except ValueError:
                pass
        return min(max(offset, 0), len(ids))

    def _list_member_of(self, incoming: _Incoming, token: _Token, key: str, tail: list[str]) -> _Reply:
        """GET /users/{id | userPrincipalName}/memberOf[/<cast>][/$count]: the groups the user is a direct
        member of, in the order the groups were created."""
        self._require(incoming, token, _MEMBER_OF_ROLES)
        object_id = key if key in self._objects else self._by_upn.get(key.lower(), key)
        user = self._objects.get(object_id)
        if user is None or user.kind is not _USER:
            raise self._not_found(incoming, key)
        cast_name: str | None = None
        count_segment = False
        for segment in tail:
            lowered = segment.lower()
            if segment == "":
                continue
            if lowered == "$count" and not count_segment:
                count_segment = True
            elif cast_name is None and not count_segment and lowered in _MEMBER_OF_CASTS:
                cast_name = _MEMBER_OF_CASTS[lowered]
            else:
                return _graph_error(
                    incoming, 400, "BadRequest", f"Resource not found for the segment '{segment}'."
                )
        self._check_options(incoming, ())
        eventual = (incoming.consistency_level or "").strip().lower() == "eventual"
        view = self._lagged_view() if eventual else None
        groups = self._members if view is None else view.members
        objects = self._objects if view is None else view.objects
        count = self._count_requested(incoming)
        hidden_ok = _HIDDEN_MEMBERS_ROLE in token.roles
        ids = (
            []
            if cast_name not in (None, "group")
            else [
                group_id
                for group_id, members in groups.items()
                if object_id in members and (hidden_ok or group_id not in self._denied)
            ]
        )
        if count_segment:
            if not eventual:
                return _bad_request(incoming, "$count is not currently supported.")
            return _Reply(200, str(len(ids)).encode(), content_type="text/plain")
        if cast_name is not None and not (eventual and count):
            return _graph_error(
                incoming,
                400,
                "Request_UnsupportedQuery",
                "An OData cast on a membership list is an advanced query: it needs the header "
                "'ConsistencyLevel: eventual' and the query option '$count=true'.",
            )
        props = _GROUP.by_lower if cast_name == "group" else _DIRECTORY_OBJECT_PROPS
        select = self._select(incoming, props, f"microsoft.graph.{cast_name or 'directoryObject'}")
        size = self._page_size(incoming)
        offset = self._member_of_offset(incoming, ids, object_id, cast_name)
        page = ids[offset : offset + size]
        projection = self._projection(select, with_type=True)
        limited = not token.roles & _MEMBER_ROLES
        value: list[dict[str, object]] = []
        for group_id in page:
            item = projection.project(objects[group_id])
            value.append(_limited(item) if limited else item)
        entity_set = f"{cast_name}s" if cast_name is not None else "directoryObjects"
        context = f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{entity_set}"
        if select is not None:
            context += f"({','.join(select)})"
        body: dict[str, object] = {"@odata.context": context}
        if count and eventual:
            body["@odata.count"] = len(ids)
        end = offset + len(page)
        if end < len(ids):
            skiptoken = self._link_token({"k": "mo", "u": object_id, "c": cast_name, "o": end, "l": page[-1]})
            body["@odata.nextLink"] = _next_link(incoming, "$skiptoken", skiptoken, drop=("skiptoken",))
        body["value"] = value
        return _Reply(200, encode_json(body), _graph_headers(incoming))

    def _member_of_offset(
        self, incoming: _Incoming, ids: list[str], user_id: str, cast_name: str | None
    ) -> int:
        raw = incoming.option("skiptoken")
        if raw is None:
            return 0
        payload = self._read_link_token(raw)
        if (
            payload is None
            or payload.get("k") != "mo"
            or payload.get("u") != user_id
            or payload.get("c") != cast_name
            or not isinstance(payload.get("o"), int)
        ):
            raise _Rejected(_bad_request(incoming, "The specified page token value is invalid."))
        offset: int = payload["o"]
        last = payload.get("l")
        # Continue after the last group served, even if memberships changed in between.
        if 0 < offset <= len(ids) and ids[offset - 1] == last:
            return offset
        if isinstance(last, str) and last in ids:
            return ids.index(last) + 1
        return min(max(offset, 0), len(ids))

    def _get_user(self, incoming: _Incoming, token: _Token, key: str) -> _Reply:
        self._require(incoming, token, _USER_ROLES)
        self._check_options(incoming, ())
        object_id = key if key in self._objects else self._by_upn.get(key.lower(), key)
        obj = self._objects.get(object_id)
        if obj is None or obj.kind is not _USER:
            raise self._not_found(incoming, key)
        select = self._select(incoming, _USER.by_lower, "microsoft.graph.user")
        return self._entity_reply(incoming, obj, select)

    def _get_group(self, incoming: _Incoming, token: _Token, group_id: str) -> _Reply:
        self._require(incoming, token, _MEMBER_ROLES)
        self._check_options(incoming, ())
        obj = self._objects.get(group_id)
        if obj is None or obj.kind is not _GROUP:
            raise self._not_found(incoming, group_id)
        select = self._select(incoming, _GROUP.by_lower, "microsoft.graph.group")
        return self._entity_reply(incoming, obj, select)

    def _entity_reply(self, incoming: _Incoming, obj: _Object, select: tuple[str, ...] | None) -> _Reply:
        context = f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{obj.kind.entity_set}"
        if select is not None:
            context += f"({','.join(select)})"
        body: dict[str, object] = {"@odata.context": context + "/$entity"}
        body.update(self._projection(select, with_type=False).project(obj))
        return _Reply(200, encode_json(body), _graph_headers(incoming))
