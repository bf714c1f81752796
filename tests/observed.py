"""What the emulators received, read the same way by the cycle and end-to-end tiers: the writes and active
agents of SmartCommunicator, and the Graph API requests classified by kind (delta rounds, member pages,
single users, a user's direct groups)."""

from __future__ import annotations

import re
from typing import Protocol

from syncd.emulators.graph import GraphEmulator, RecordedRequest
from syncd.emulators.smartcomm import SmartCommEmulator

_GROUPS_DELTA = re.compile(r"^/v1\.0/groups/delta(\(\))?$", re.IGNORECASE)
_USERS_DELTA = re.compile(r"^/v1\.0/users/delta(\(\))?$", re.IGNORECASE)
_MEMBERS = re.compile(r"/transitiveMembers/(microsoft\.)?graph\.user$", re.IGNORECASE)
_NESTED = re.compile(r"/transitiveMembers/(microsoft\.)?graph\.group$", re.IGNORECASE)
_ONE_USER = re.compile(r"^/v1\.0/users/([^/]+)$", re.IGNORECASE)
_MEMBER_OF = re.compile(r"^/v1\.0/users/([^/]+)/memberOf$", re.IGNORECASE)


class HasGraph(Protocol):
    """A test world with its Graph emulator."""

    @property
    def graph(self) -> GraphEmulator: ...


def writes(smartcomm: SmartCommEmulator) -> list[tuple[str, str, object]]:
    """POST/PATCH/DELETE calls SmartCommunicator received (authentication excluded), in order."""
    return [
        (r.method, r.path.rsplit("/agents", 1)[-1] or "/", r.body)
        for r in smartcomm.requests
        if r.method in {"POST", "PATCH", "DELETE"} and "/agents" in r.path
    ]


def agents(smartcomm: SmartCommEmulator) -> dict[str, tuple[str, str]]:
    """Active agents as object id -> (phone, upn)."""
    return {
        str(a["user_object_id"]): (str(a["phone_number"]), str(a["upn"]))
        for a in smartcomm.agents()
        if a["status"] == "active"
    }


def option(request: RecordedRequest, name: str) -> str | None:
    """An OData option as sent, with or without its "$"."""
    value = request.query.get(f"${name}")
    return value if value is not None else request.query.get(name)


def kind(request: RecordedRequest) -> str:
    """What a Graph API request was for, in the terms of the behaviour spec."""
    path = request.path
    if _MEMBERS.search(path):
        return "members"
    if _NESTED.search(path):
        return "nested"
    for pattern, name in ((_GROUPS_DELTA, "groups_delta"), (_USERS_DELTA, "users_delta")):
        if pattern.match(path):
            if option(request, "skiptoken") is not None:
                return f"{name}_page"
            token = option(request, "deltatoken")
            if token is None:
                return f"{name}_start"
            return f"{name}_latest" if token.lower() == "latest" else name
    one = _ONE_USER.match(path)
    if one:
        return f"user:{one.group(1).lower()}"
    groups_of = _MEMBER_OF.match(path)
    if groups_of:
        return f"member_of:{groups_of.group(1).lower()}"
    return f"other:{request.method} {path}"


def graph_api(world: HasGraph) -> list[RecordedRequest]:
    """The Graph API requests since the log was last cleared (Entra login requests excluded)."""
    return [r for r in world.graph.requests if r.path.lower().startswith("/v1.0/")]


def assert_no_change_cycle(world: HasGraph, *, groups: int = 1) -> None:
    """Exactly one groups delta request per configured group and one users delta request, all answered."""
    requests = graph_api(world)
    assert sorted(kind(r) for r in requests) == ["groups_delta"] * groups + ["users_delta"]
    assert all(r.status == 200 for r in requests), [(r.path, r.status) for r in requests]
