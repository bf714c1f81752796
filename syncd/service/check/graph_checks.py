"""The Entra and Graph checks of `syncd check`: a token and the app roles in it, each group (exists, its
name, its member count), that the users' properties are readable (User.Read.All), the Teams numbers when
`teams` is a phone source, and both delta queries. Reads only (Graph takes nothing else from syncd).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncd.config.settings import GraphSettings
from syncd.graph.errors import GraphError, GraphPermissionError
from syncd.graph.probe import GraphProbe, token_roles
from syncd.service.check.fixes import (
    ENTRA_FIXES,
    GRANTS_MEMBERS,
    GRANTS_USERS,
    GRAPH_UNREACHABLE,
    HIDDEN_MEMBERS,
    MEMBER_READ,
    TEAMS_READ,
    USER_READ,
    grant,
    missing_permissions,
)
from syncd.service.check.model import Check, fail, ok, skip, warn

GROUPS_KEY = "graph.group_ids"

_TOKEN = ("entra_token", "Entra token")
_GROUP = ("group", "group")
_USERS = ("user_read", USER_READ)
_TEAMS = ("teams_numbers", "Teams numbers")
_DELTA = ("delta", "delta queries")


def groups_to_check(graph: GraphSettings) -> list[tuple[str, str]]:
    """(label, group ID) of every group `syncd check` reads; the label is the key that names the group, and
    the key a failure tells the admin to correct."""
    return [(GROUPS_KEY, group_id) for group_id in graph.group_ids] + [
        ("graph.exclude_group_ids", group_id) for group_id in graph.exclude_group_ids
    ]


@dataclass
class _Group:
    label: str
    group_id: str
    count: int | None = None
    """Users at any depth; None when the group could not be read."""


def _refused(error: GraphError) -> str:
    """Graph's refusal in its own terms (the fix says what to grant)."""
    answer = " ".join(str(part) for part in (error.status, error.code) if part)
    return f"Graph refused ({answer})" if answer else "Graph refused"


def _entra_fix(error: GraphError) -> str:
    setting = error.setting or "graph.tenant_id / graph.client_id and the credential"
    return ENTRA_FIXES.get(setting, f"check {setting}")


def _skipped_after_token(graph: GraphSettings, reason: str) -> list[Check]:
    checks = [skip(*_GROUP, reason, label=label, group_id=g) for label, g in groups_to_check(graph)]
    checks += [skip(*_USERS, reason), skip(*_TEAMS, reason), skip(*_DELTA, reason)]
    return checks


async def graph_checks(graph: GraphSettings) -> list[Check]:
    """Every Entra and Graph check, in the checklist's order."""
    try:
        probe = GraphProbe(graph)
    except GraphError as exc:  # the certificate file cannot be used
        failure = fail(*_TOKEN, str(exc), _entra_fix(exc))
        return [failure, *_skipped_after_token(graph, "needs an Entra token")]
    async with probe:
        try:
            claims = await probe.claims()
        except GraphError as exc:
            return [
                fail(*_TOKEN, str(exc), _entra_fix(exc)),
                *_skipped_after_token(graph, "needs an Entra token"),
            ]
        roles = token_roles(claims)
        checks = [_token_check(graph, claims, roles)]
        groups = [_Group(label, group_id) for label, group_id in groups_to_check(graph)]
        for group in groups:
            checks.append(await _group_check(probe, group, roles))
        checks.append(await _users_check(probe, groups, roles))
        checks.append(await _teams_check(probe, graph))
        checks.append(await _delta_check(probe, graph, roles))
    return checks


def _token_check(graph: GraphSettings, claims: dict[str, object], roles: list[str]) -> Check:
    app = claims.get("appid") or graph.client_id
    tenant = claims.get("tid") or graph.tenant_id
    granted = ", ".join(roles) or "none"
    detail = f"app {app} in tenant {tenant}; application permissions in the token: {granted}"
    missing = missing_permissions(roles, uses_teams=graph.uses_teams)
    if missing:
        return warn(*_TOKEN, f"{detail}; missing: {', '.join(missing)}", grant(missing), roles=roles)
    return ok(*_TOKEN, detail, roles=roles)


async def _group_check(probe: GraphProbe, group: _Group, roles: list[str]) -> Check:
    data: dict[str, Any] = {"label": group.label, "group_id": group.group_id}
    try:
        found = await probe.get_group(group.group_id)
    except GraphPermissionError as exc:
        return fail(*_GROUP, f"{group.group_id}: {_refused(exc)}", grant([MEMBER_READ]), **data)
    except GraphError as exc:
        return fail(*_GROUP, f"{group.group_id}: {exc}", GRAPH_UNREACHABLE, **data)
    if found is None:
        return fail(
            *_GROUP,
            f"{group.group_id} ({group.label}) does not exist: deleted, or a wrong ID",
            f"correct the ID in {group.label}: copy the group's Object ID from Entra admin center > Groups",
            **data,
        )
    name = found.get("displayName")
    data["display_name"] = name
    shown = f'"{name}" ({group.group_id}, {group.label})' if name else f"{group.group_id} ({group.label})"
    try:
        group.count = await probe.member_count(group.group_id)
    except GraphPermissionError as exc:
        # The group reads, its members do not: a hidden membership, or no permission to list members.
        hidden = bool(GRANTS_MEMBERS & set(roles))
        fix = grant([HIDDEN_MEMBERS] if hidden else [MEMBER_READ])
        return fail(*_GROUP, f"{shown}: listing its members: {_refused(exc)}", fix, **data)
    except GraphError as exc:
        return fail(*_GROUP, f"{shown}: counting its members failed: {exc}", GRAPH_UNREACHABLE, **data)
    data["members"] = group.count
    detail = f"{shown}: {group.count} users at any depth"
    if group.count == 0 and group.label == GROUPS_KEY:
        fix = f"add the people who should be agents to it (or its nested groups), or correct {group.label}"
        return warn(*_GROUP, f"{detail}: nobody in it would become an agent", fix, **data)
    return ok(*_GROUP, detail, **data)


async def _users_check(probe: GraphProbe, groups: list[_Group], roles: list[str]) -> Check:
    """Whether Graph shows the users' properties: a first page of a configured group with users, where a
    page without any UPN is Graph's "limited information" answer; with no users anywhere, the token says."""
    for group in groups:
        if group.label != GROUPS_KEY or not group.count:
            continue
        try:
            users = await probe.sample_users(group.group_id)
        except GraphError as exc:
            return fail(*_USERS, f"reading users of group {group.group_id} failed: {exc}", GRAPH_UNREACHABLE)
        if not users:
            continue
        with_upn = sum(1 for user in users if user.get("userPrincipalName"))
        if not with_upn:
            detail = (
                f"Graph answered the first {len(users)} users of group {group.group_id} with limited "
                "information (no properties): every member would look out of scope"
            )
            return fail(*_USERS, detail, grant([USER_READ]), sampled=len(users))
        detail = f"the users' properties are readable ({with_upn} of the first {len(users)} read in full)"
        return ok(*_USERS, detail, sampled=len(users))
    if GRANTS_USERS & set(roles):
        return ok(*_USERS, "granted in the token (no configured group has users to read yet)", sampled=0)
    detail = "not in the token, and no configured group has users to show it otherwise"
    return fail(*_USERS, detail, grant([USER_READ]), sampled=0)


async def _teams_check(probe: GraphProbe, graph: GraphSettings) -> Check:
    if not graph.uses_teams:
        return skip(*_TEAMS, "teams is not in graph.phone_source")
    try:
        await probe.teams_sample()
    except GraphPermissionError as exc:
        fix = grant([TEAMS_READ], otherwise="or take teams out of graph.phone_source")
        return fail(*_TEAMS, f"listing the Teams number assignments: {_refused(exc)}", fix)
    except GraphError as exc:
        return fail(*_TEAMS, str(exc), GRAPH_UNREACHABLE)
    return ok(*_TEAMS, "the app may list the Teams number assignments (teams is a phone source)")


async def _delta_check(probe: GraphProbe, graph: GraphSettings, roles: list[str]) -> Check:
    try:
        await probe.delta_start([*graph.group_ids, *graph.exclude_group_ids])
    except GraphPermissionError as exc:
        missing = missing_permissions(roles, uses_teams=False) or [MEMBER_READ, USER_READ]
        return fail(*_DELTA, f"starting the delta queries: {_refused(exc)}", grant(missing))
    except GraphError as exc:
        return fail(*_DELTA, str(exc), GRAPH_UNREACHABLE)
    return ok(*_DELTA, "a users delta and the groups delta of the configured groups answered")
