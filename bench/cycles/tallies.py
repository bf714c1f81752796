"""The requests an emulator received, counted by kind (from its request log): Graph's (login, member
pages, delta, ...) and SmartCommunicator's (login, agents list, POST, PATCH, DELETE, ...), with errors and
429s; and the warnings and errors a worker logged."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from cycles.common import Json

_SC_AGENTS = re.compile(r"^/rest/v1/smartcomm/[^/]+/agents(?:/([^/]+))?$")
_GRAPH_USER = re.compile(r"^/v1\.0/users/[^/]+$", re.IGNORECASE)
_GRAPH_MEMBER_OF = re.compile(r"^/v1\.0/users/[^/]+/memberOf$", re.IGNORECASE)
_GRAPH_GROUP_MEMBERS = re.compile(r"^/v1\.0/groups/[^/]+/members", re.IGNORECASE)


def graph_kind(request: Json) -> str:
    path: str = request["path"]
    lowered = path.lower()
    if not lowered.startswith("/v1.0/"):
        return "login"
    if "/transitivemembers" in lowered:
        # transitiveMembers/graph.group lists a group's nested groups; graph.user (or no cast) are members.
        return "nested_group_pages" if lowered.rstrip("/").endswith("graph.group") else "member_pages"
    if lowered.startswith("/v1.0/groups/delta"):
        return "group_delta"
    if lowered.startswith("/v1.0/users/delta"):
        return "user_delta"
    if _GRAPH_USER.match(path):
        return "user_get"
    if _GRAPH_GROUP_MEMBERS.match(path):
        return "direct_member_pages"
    if _GRAPH_MEMBER_OF.match(path):
        return "member_of"  # a full cycle repairing someone's stored memberships
    if "numberassignments" in lowered:
        return "teams"
    return "other"


def smartcomm_kind(request: Json) -> str:
    path: str = request["path"]
    if path == "/rest/v1/authenticate":
        return "login"
    match = _SC_AGENTS.match(path)
    method: str = request["method"]
    if match is None:
        return "other"
    if match.group(1) is None:
        return {"GET": "list", "POST": "POST"}.get(method, "other")
    return {"GET": "get_single", "PATCH": "PATCH", "DELETE": "DELETE"}.get(method, "other")


def tally(requests: Sequence[Json], kind: Callable[[Json], str]) -> Json:
    counts: dict[str, int] = {}
    errors = throttled = 0
    others: list[str] = []
    for request in requests:
        k = kind(request)
        counts[k] = counts.get(k, 0) + 1
        status = request.get("status")
        if status is None or status >= 400:
            errors += 1
        throttled += status == 429
        if k == "other" and len(others) < 5:
            others.append(f"{request['method']} {request['path']}")
    return {
        "by_kind": dict(sorted(counts.items())),
        "total": len(requests),
        "errors": errors,
        "throttled": throttled,
        "others": others,
    }


def logged_events(stderr: str) -> dict[str, int]:
    """Warnings and errors a worker logged (syncd logs JSON lines to stderr), by level and event."""
    events: dict[str, int] = {}
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
            key = f"{entry['level']}:{entry.get('event')}"
            events[key] = events.get(key, 0) + 1
    return dict(sorted(events.items()))


def writes_of(smartcomm: Json) -> dict[str, int]:
    kinds = smartcomm["by_kind"]
    return {method: kinds.get(method, 0) for method in ("POST", "PATCH", "DELETE")}


def graph_reads(graph: Json) -> int:
    """Graph requests other than login."""
    return sum(n for kind, n in graph["by_kind"].items() if kind != "login")
