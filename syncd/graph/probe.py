"""The small Graph reads `syncd check` makes to tell whether a cycle would work, before the first one runs:
the app roles in the access token, a group's member count, a first page of users, of Teams numbers and of
the delta queries. Each is one request (or two) on the source's request path, so its errors are the source's
own `GraphError`s; none of them follows a next link, so a check costs the same on any tenant.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration

from syncd.graph.classify import ERROR_MAP, classify, classify_delta, classify_teams
from syncd.graph.delta import id_filter
from syncd.graph.errors import GraphReadError, GraphUnavailable
from syncd.graph.source import GraphSource

SAMPLE_USERS = 5
"""Users read from a group to tell whether Graph lets the app see their properties."""


def token_claims(token: str) -> dict[str, Any]:
    """Pure: the claims of a JWT access token, read without verifying it (Graph does that); {} for a token
    that is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_roles(claims: dict[str, Any]) -> list[str]:
    """Pure: the application permissions (app roles) an access token carries, sorted; Entra leaves the
    `roles` claim out when none is granted."""
    roles = claims.get("roles")
    if not isinstance(roles, list):
        return []
    return sorted({role for role in roles if isinstance(role, str)})


class GraphProbe(GraphSource):
    """The source with the reads of `syncd check`. Use as `async with GraphProbe(settings) as probe:`."""

    async def claims(self) -> dict[str, Any]:
        """The claims of the app's access token (asking Entra for one: a `GraphCredentialError` names the
        setting to fix)."""
        return token_claims(await self._tokens.token())

    async def member_count(self, group_id: str) -> int:
        """How many users are members of a group at any depth (`$count` of its transitive user members)."""
        builder = self._graph.groups.by_group_id(group_id).transitive_members.graph_user.count
        request = builder.to_get_request_information(self._configuration(None))
        try:
            body = await self._adapter.send_primitive_async(request, "bytes", ERROR_MAP)
        except APIError as exc:
            raise classify(exc, group_id=group_id) from exc
        except Exception as exc:
            # httpx errors and what the transport lets through: the check says so, it does not retry.
            raise GraphUnavailable(f"no answer from Graph ({type(exc).__name__})", group_id=group_id) from exc
        text = bytes(body).decode("ascii", errors="replace").strip() if isinstance(body, bytes) else ""
        if not text.isdigit():
            raise GraphReadError("the member count is not a number", group_id=group_id)
        return int(text)

    async def sample_users(self, group_id: str, top: int = SAMPLE_USERS) -> list[dict[str, Any]]:
        """The first `top` users of a group at any depth, with the fields a cycle selects."""
        builder = self._graph.groups.by_group_id(group_id).transitive_members.graph_user
        query = builder.GraphUserRequestBuilderGetQueryParameters(select=self._select, top=top, count=True)
        request = builder.to_get_request_information(self._configuration(query))
        page = await self._fetch_page(
            request, f"group {group_id}", lambda exc: classify(exc, group_id=group_id), group_id=group_id
        )
        value = page.get("value")
        if not isinstance(value, list):
            raise GraphReadError("the page of members has no `value` array", group_id=group_id)
        return [user for user in value if isinstance(user, dict)]

    async def teams_sample(self) -> int:
        """How many Teams number assignments the first page of one holds (0 or 1): whether the app may list
        them (a 403 is a `GraphPermissionError` naming the permission)."""
        builder = self._graph.admin.teams.telephone_number_management.number_assignments
        query = builder.NumberAssignmentsRequestBuilderGetQueryParameters(top=1)
        configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        request = builder.to_get_request_information(configuration)
        page = await self._fetch_page(request, "Teams number assignments", classify_teams)
        value = page.get("value")
        if not isinstance(value, list):
            raise GraphReadError("the page of Teams number assignments has no `value` array")
        return len(value)

    async def delta_start(self, group_ids: list[str]) -> None:
        """Start both delta queries a cycle tracks, and drop what they answer: a users delta link for the
        current state (`$deltatoken=latest`, no user read) and the first page of the groups delta of
        `group_ids`."""
        await self.users_delta(lambda _value: None)
        builder = self._graph.groups.delta
        query = builder.DeltaRequestBuilderGetQueryParameters(filter=id_filter(group_ids), select=["members"])
        configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        request = builder.to_get_request_information(configuration)
        page = await self._fetch_page(request, "the group changes (delta)", classify_delta)
        if not isinstance(page.get("value"), list):
            raise GraphReadError("the first page of the groups delta has no `value` array")
