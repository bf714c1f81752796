"""The single-person reads of `syncd explain` (a mixin of `GraphSource`): one user, one group, a user's
direct groups, a group's child groups and Teams number assignments. Small answers, read whole through the
source's own request path (`GraphSource._fetch_page` and `_all_pages`: retries, token refresh, error
classification); msgraph-sdk's request builders make the URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from msgraph.graph_service_client import GraphServiceClient

from syncd.config.settings import GraphSettings
from syncd.graph.classify import classify, classify_person, classify_teams
from syncd.graph.errors import GraphError, GraphReadError


class PersonReads:
    """`syncd explain`'s reads; the request path is `GraphSource`'s."""

    _graph: GraphServiceClient
    _settings: GraphSettings
    _select: list[str]

    async def _fetch_page(
        self,
        request: RequestInformation,
        what: str,
        classify_error: Callable[[APIError], GraphError],
        *,
        group_id: str | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def _all_pages(
        self,
        builder: Any,
        request: RequestInformation,
        what: str,
        classify_error: Callable[[APIError], GraphError],
        *,
        advanced: bool,
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    @staticmethod
    def _configuration(query: Any) -> RequestConfiguration[Any]:
        raise NotImplementedError

    async def get_user(self, key: str) -> dict[str, Any] | None:
        """One user by object ID or UPN, with the fields the mapping reads and `displayName`; None when Graph
        has no such user (404)."""
        builder = self._graph.users.by_user_id(key)
        query = builder.UserItemRequestBuilderGetQueryParameters(select=[*self._select, "displayName"])
        configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        return await self._fetch_entity(builder.to_get_request_information(configuration), f"user {key}")

    async def get_group(self, group_id: str) -> dict[str, Any] | None:
        """A group's `id` and `displayName`; None when Graph has no such group (404)."""
        builder = self._graph.groups.by_group_id(group_id)
        query = builder.GroupItemRequestBuilderGetQueryParameters(select=["id", "displayName"])
        configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        return await self._fetch_entity(
            builder.to_get_request_information(configuration), f"group {group_id}"
        )

    async def _fetch_entity(self, request: RequestInformation, what: str) -> dict[str, Any] | None:
        """One object about a person as parsed JSON; None when Graph has no such object (404)."""
        try:
            return await self._fetch_page(request, what, lambda exc: classify_person(exc, what=what))
        except GraphReadError as exc:
            if exc.status == 404:
                return None
            raise

    async def member_of(self, object_id: str) -> list[dict[str, Any]]:
        """The groups (`id`, `displayName`) the user is a direct member of, every page."""
        builder = self._graph.users.by_user_id(object_id).member_of.graph_group
        query = builder.GraphGroupRequestBuilderGetQueryParameters(
            select=["id", "displayName"], top=self._settings.page_size, count=True
        )
        request = builder.to_get_request_information(self._configuration(query))
        what = f"the groups of user {object_id}"
        return await self._all_pages(
            builder, request, what, lambda exc: classify_person(exc, what=what), advanced=True
        )

    async def child_groups(self, group_id: str) -> list[dict[str, Any]]:
        """The groups (`id`, `displayName`) that are direct members of a group, every page."""
        builder = self._graph.groups.by_group_id(group_id).members.graph_group
        query = builder.GraphGroupRequestBuilderGetQueryParameters(
            select=["id", "displayName"], top=self._settings.page_size, count=True
        )
        request = builder.to_get_request_information(self._configuration(query))
        return await self._all_pages(
            builder,
            request,
            f"the nested groups of group {group_id}",
            lambda exc: classify(exc, group_id=group_id),
            advanced=True,
        )

    async def teams_assignments(self, odata_filter: str) -> list[dict[str, Any]]:
        """The Teams number assignments matching a `$filter` (e.g. `assignmentTargetId eq '<id>'`), raw,
        every page."""
        builder = self._graph.admin.teams.telephone_number_management.number_assignments
        query = builder.NumberAssignmentsRequestBuilderGetQueryParameters(
            filter=odata_filter, top=self._settings.teams_page_size
        )
        configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        request = builder.to_get_request_information(configuration)
        return await self._all_pages(
            builder, request, "Teams number assignments", classify_teams, advanced=False
        )
