"""The source: the transitive user members of the configured groups, read from Microsoft Graph.

Requests are built by msgraph-sdk's request builders (URL templates, query parameters, auth, the Graph retry
middleware for 429/503/504 with Retry-After) on our own pooled httpx client (aiohttp transport, our TLS
context). Member pages are taken as raw bytes and parsed as plain JSON: SDK models cost about 10 ms per
user, JSON about 8 us (docs/spec/graph-and-msal.md, "Measured costs"). Pages stream: the next one is fetched
while one is mapped, and each is dropped once mapped (at most two raw pages alive).

A read either returns every member of every configured group or raises a `GraphError`; it never returns
a partial set. Given a `MappingCache`, member pages are mapped through it (`syncd.graph.mapping_cache`):
users unchanged since an earlier read are taken from it instead of mapped again.

The single-person reads (`get_user`, `member_of`, `get_group`, `child_groups`, `teams_assignments`) serve
`syncd explain`: small answers, read whole through the same request path. msgraph-sdk percent-encodes the
keys it puts in paths ("a/b" is sent as `a%2Fb`; quoting them here too would send `%2540` for a UPN's "@");
`_fetch_page` refuses the keys it cannot encode (`path_segment`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import structlog
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from syncd.config.settings import GraphSettings
from syncd.core.backoff import backoff_delay_s
from syncd.core.model import DesiredState, Member, Skipped
from syncd.core.text import path_segment
from syncd.graph.auth import MsalTokenProvider
from syncd.graph.classify import (
    ERROR_MAP,
    classify,
    classify_delta,
    classify_person,
    classify_teams,
)
from syncd.graph.delta import id_filter
from syncd.graph.errors import GraphError, GraphReadError, GraphUnavailable
from syncd.graph.lookups import PersonReads
from syncd.graph.mapping import map_user, select_fields
from syncd.graph.mapping_cache import TURN_EVERY, MappingCache, PageMapper, lower_id
from syncd.graph.page_memo import PageMemo, PageStore, mapping_inputs, page_digest
from syncd.graph.pages import lower_ids, page_users, parse_page
from syncd.graph.teams import TeamsIndexer, TeamsNumber, ambiguous, assignment_filter
from syncd.graph.transport import graph_transport

log = structlog.get_logger("syncd.graph")

PageFold = Callable[[list[Any]], None]
"""Takes one delta page's `value` (parsed JSON, any shape)."""


class GraphSource(PersonReads):
    """Reads desired state for one tenant. Use as `async with GraphSource(settings) as source:`."""

    def __init__(
        self,
        settings: GraphSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        tokens: MsalTokenProvider | None = None,
        on_throttled: Callable[[], None] | None = None,
        mapping_cache: MappingCache | None = None,
        page_memo: PageMemo | None = None,
        page_store: PageStore | None = None,
        after_page: Callable[[], None] | None = None,
    ) -> None:
        """`on_throttled` is called for every 429 Graph answers (`syncd.graph.transport`). `mapping_cache`
        holds earlier mappings of member pages, `page_memo` the pages of the last full read, `page_store`
        keeps those pages across processes (all three unused with "teams" in the phone chain: Teams
        numbers come from another read than the user object). `after_page` is called once the reader took
        each mapped member page (the engine freezes what the read holds so far out of the garbage
        collector's walks)."""
        self._settings = settings
        # A caller's token provider outlives this source (a daemon keeps its token across cycles).
        self._own_tokens = tokens is None
        self._tokens = tokens if tokens is not None else MsalTokenProvider(settings)
        transport = graph_transport(settings, transport, on_throttled)
        # kiota wraps the transport in a middleware transport that does not close what it wraps.
        self._transport = transport
        http = httpx.AsyncClient(
            transport=transport,
            trust_env=False,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
        )
        retry = RetryHandlerOption(delay=settings.retry_delay_s, max_retries=settings.max_retries)
        http = GraphClientFactory.create_with_default_middleware(
            client=http, options={RetryHandlerOption.get_key(): retry}
        )
        self._http = http
        self._adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(self._tokens), client=http)
        # Set explicitly and without a trailing slash, else requests go to /v1.0//groups.
        self._adapter.base_url = settings.base_url
        self._graph = GraphServiceClient(request_adapter=self._adapter)
        self._chain = settings.phone_chain
        self._filter = settings.scope_filter
        self._select = select_fields(self._chain, self._filter)
        self._excluded: dict[str, str] = {}
        """Lower-case object ID -> the excluded group that holds the user (read by `read`)."""
        self._teams: dict[str, TeamsNumber] | None = None
        self._pages_mapper = (
            PageMapper(mapping_cache, settings, self.map)
            if mapping_cache is not None and not settings.uses_teams
            else None
        )
        self._memo = page_memo if not settings.uses_teams else None
        self._page_store = page_store
        self._after_page = after_page
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._graph_host = urlsplit(settings.base_url).hostname

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close both connection pools (Graph's, and msal's unless the token provider was given)."""
        await self._http.aclose()
        await self._transport.aclose()
        if self._own_tokens:
            await asyncio.to_thread(self._tokens.close)

    async def read(self, *, member_ids: dict[str, set[str]] | None = None) -> DesiredState:
        """Every configured group's transitive user members, mapped, deduplicated by object ID.

        With "teams" in the phone source chain, the tenant's Teams number assignments are read first, and
        so are the transitive user members of the excluded groups (`graph.exclude_group_ids`).
        `member_ids`, when given, is filled with the object IDs (lower case) each configured and each excluded
        group returned, by group ID: a full cycle checks its stored memberships against them.
        """
        if self._settings.uses_teams:
            self._teams = await self.teams_numbers()
        self._excluded = {}
        for group_id in self._settings.exclude_group_ids:
            found = await self.excluded_members(group_id)
            if member_ids is not None:
                member_ids[group_id] = found
            for object_id in found:
                self._excluded.setdefault(object_id, group_id)
        members: dict[str, Member] = {}
        skipped: dict[str, Skipped] = {}
        counts: dict[str, int] = {}
        in_scope: dict[str, int] = {}
        pages_mapper = self._pages_mapper
        if pages_mapper is not None:
            pages_mapper.take_counts()
        memo = self._memo
        if memo is not None:
            memo.begin(mapping_inputs(self._mapping_settings(), self._excluded), self._page_store)
        try:
            await self._read_groups(members, skipped, counts, in_scope, member_ids)
        except BaseException:
            if memo is not None:
                memo.abandon()
            raise
        if memo is not None:
            memo.end()
        if pages_mapper is not None:
            pages_mapper.prune(members, skipped)
        return DesiredState(
            members=members,
            skipped=skipped,
            group_counts=counts,
            group_in_scope=in_scope,
            teams_numbers=len(self._teams) if self._teams is not None else None,
            ambiguous=self._ambiguous(members),
        )

    def _mapping_settings(self) -> str:
        """The settings every user's mapping depends on, and the host a next link must name, as text
        (`PageMemo`'s inputs, to which `mapping_inputs` adds the versions of the code)."""
        settings = self._settings
        return repr(
            (settings.tenant_id, self._chain, settings.default_region, settings.filter, self._graph_host)
        )

    async def _read_groups(
        self,
        members: dict[str, Member],
        skipped: dict[str, Skipped],
        counts: dict[str, int],
        in_scope: dict[str, int],
        member_ids: dict[str, set[str]] | None,
    ) -> None:
        """Every configured group's pages into `members` and `skipped`, with the users (`counts`) and members
        in scope (`in_scope`) of each group."""
        pages_mapper = self._pages_mapper
        for group_id in self._settings.group_ids:
            count = scope = 0
            seen = member_ids.setdefault(group_id, set()) if member_ids is not None else None
            async for page in self.group_pages(group_id):
                count += len(page)
                if seen is not None:
                    seen.update(lower_ids(page))
                for item in page:
                    if isinstance(item, Member):
                        members[item.object_id] = item
                        scope += 1
                    else:
                        skipped[item.object_id or f"(no id #{len(skipped)})"] = item
            counts[group_id], in_scope[group_id] = count, scope
            # With a mapping cache: how many users were mapped, how many taken from the cache.
            cached = pages_mapper.take_counts() if pages_mapper is not None else {}
            if self._memo is not None:
                cached.update(self._memo.take_recalled())
            log.info("graph.group_read", group_id=group_id, users=count, in_scope=scope, **cached)

    def _ambiguous(self, members: Mapping[str, Member]) -> dict[str, str]:
        """Members whose Teams number was chosen among tied assignments, with how (also logged)."""
        found = ambiguous(members, self._teams) if self._teams else {}
        for object_id, note in found.items():
            log.warning("graph.teams_number_tie", object_id=object_id, upn=members[object_id].upn, note=note)
        return found

    async def teams_numbers(self) -> dict[str, TeamsNumber]:
        """The tenant's Teams numbers assigned to users, by lower-case object ID (one per user).

        Raises GraphPermissionError naming TeamsTelephoneNumber.Read.All when the app lacks it: no
        answer is never taken for "nobody has a Teams number".
        """
        settings = self._settings
        builder = self._graph.admin.teams.telephone_number_management.number_assignments
        query = builder.NumberAssignmentsRequestBuilderGetQueryParameters(
            filter=assignment_filter(settings.teams_categories), top=settings.teams_page_size
        )
        configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        request = builder.to_get_request_information(configuration)
        indexer = TeamsIndexer(settings.teams_categories)
        pages = 0
        async for items, _page in self._pages(builder, request, "Teams number assignments", classify_teams):
            pages += 1
            indexer.add(items)
        numbers = indexer.result()
        log.info(
            "graph.teams_read",
            pages=pages,
            assignments=indexer.read,
            users=len(numbers),
            ignored=dict(indexer.ignored),
        )
        return numbers

    async def group_pages(self, group_id: str) -> AsyncIterator[Sequence[Member | Skipped]]:
        """The group's transitive user members, one mapped page at a time."""
        builder = self._graph.groups.by_group_id(group_id).transitive_members.graph_user
        query = builder.GraphUserRequestBuilderGetQueryParameters(
            select=self._select, top=self._settings.page_size, count=True
        )
        request = builder.to_get_request_information(self._configuration(query))
        pages = 0

        def classify_members(exc: APIError) -> GraphError:
            return classify(exc, group_id=group_id)

        memo = self._memo
        what = f"group {group_id}"

        def fetch(request: RequestInformation) -> asyncio.Task[bytes]:
            return asyncio.ensure_future(self._fetch_body(request, what, classify_members, group_id=group_id))

        fetching = fetch(request)
        try:
            while True:
                body = await fetching
                pages += 1
                # A long-lived process takes a page it read last time, byte for byte, as it mapped it then.
                digest = page_digest(body) if memo is not None else b""
                known = memo.recall(group_id, pages, digest) if memo is not None else None
                if known is not None:
                    users, next_link = None, known.next_link
                else:
                    users, next_link = page_users(
                        parse_page(body, what, group_id), pages, group_id, self._graph_host
                    )
                del body  # at most two raw pages alive: this one's users and the next one coming in
                if next_link is not None:
                    # The next page is on its way while this one is mapped. Its link carries the whole
                    # query; only the headers must be sent again.
                    request = builder.with_url(next_link).to_get_request_information(
                        self._configuration(None)
                    )
                    fetching = fetch(request)
                if known is not None:
                    mapped: Sequence[Member | Skipped] = known.mapped
                else:
                    mapped = await self._map_users(users or [])
                    if memo is not None:
                        memo.keep(group_id, pages, digest, mapped, next_link)
                del users
                yield mapped
                if self._after_page is not None:
                    self._after_page()
                if next_link is None:
                    return
        finally:
            if not fetching.done():
                fetching.cancel()  # the reader stopped (a failure): the next page is not wanted
            elif not fetching.cancelled():
                fetching.exception()  # retrieved: a failure of an unwanted page is not logged as lost

    async def _map_users(self, users: list[Any]) -> list[Member | Skipped]:
        """One member page's users, mapped (through the mapping cache when there is one), the event loop
        turning every TURN_EVERY users (the next page's request goes out meanwhile)."""
        excluded = self._excluded
        if self._pages_mapper is not None:
            return await self._pages_mapper.map_page(users, excluded)
        mapped: list[Member | Skipped] = []
        for start in range(0, len(users), TURN_EVERY):
            if start:
                await asyncio.sleep(0)
            mapped += [
                self.map(user, excluded_by=excluded.get(lower_id(user))) if excluded else self.map(user)
                for user in users[start : start + TURN_EVERY]
            ]
        return mapped

    # -- delta queries (incremental cycles) -------------------------------------------------------------

    @property
    def select(self) -> tuple[str, ...]:
        """The user fields every read selects (what `map` needs)."""
        return tuple(self._select)

    def map(self, user: object, *, excluded_by: str | None = None) -> Member | Skipped:
        """One user object (parsed JSON) mapped to a Member or Skipped, with the Teams numbers of this cycle's
        read when the chain has them, `graph.filter`, and `excluded_by` (the excluded group holding the
        user, if one does)."""
        settings = self._settings
        return map_user(
            user,
            tenant_id=settings.tenant_id,
            phone_sources=self._chain,
            default_region=settings.default_region,
            teams=self._teams,
            excluded_by=excluded_by,
            scope_filter=self._filter,
        )

    async def excluded_members(self, group_id: str) -> set[str]:
        """The object IDs (lower case) of an excluded group's transitive user members, every page (only
        their `id` is selected). A missing group is `GroupNotFound` naming `graph.exclude_group_ids`."""
        builder = self._graph.groups.by_group_id(group_id).transitive_members.graph_user
        query = builder.GraphUserRequestBuilderGetQueryParameters(
            select=["id"], top=self._settings.page_size, count=True
        )
        request = builder.to_get_request_information(self._configuration(query))
        users = await self._all_pages(
            builder,
            request,
            f"the members of excluded group {group_id}",
            lambda exc: classify(exc, group_id=group_id, setting="graph.exclude_group_ids"),
            advanced=True,
        )
        found = {user["id"].lower() for user in users if isinstance(user.get("id"), str)}
        log.info("graph.excluded_group_read", group_id=group_id, users=len(found))
        return found

    async def nested_groups(self, group_id: str) -> list[str]:
        """The IDs (lower case) of every group nested in a group, at any depth."""
        builder = self._graph.groups.by_group_id(group_id).transitive_members.graph_group
        query = builder.GraphGroupRequestBuilderGetQueryParameters(
            select=["id"], top=self._settings.page_size, count=True
        )
        request = builder.to_get_request_information(self._configuration(query))
        groups = await self._all_pages(
            builder,
            request,
            f"the nested groups of group {group_id}",
            lambda exc: classify(exc, group_id=group_id),
            advanced=True,
        )
        return list(dict.fromkeys(g["id"].lower() for g in groups if isinstance(g.get("id"), str)))

    async def group_delta(self, fold: PageFold, *, ids: Sequence[str] = (), link: str | None = None) -> str:
        """One groups delta round: an initial one for the groups `ids` (their direct members), or the
        changes since a stored `link`. Each page's entries go to `fold`; returns the round's delta link."""
        builder = self._graph.groups.delta
        if link is None:
            query = builder.DeltaRequestBuilderGetQueryParameters(filter=id_filter(ids), select=["members"])
            configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
            request = builder.to_get_request_information(configuration)
        else:
            request = builder.with_url(link).to_get_request_information(RequestConfiguration())
        return await self._delta_round(builder, request, "the group changes (delta)", fold)

    async def users_delta(self, fold: PageFold, *, link: str | None = None) -> str:
        """The users changed since a stored `link` (their selected fields), page by page to `fold`; without a
        link, only a link to the tenant's current state (`$deltatoken=latest`: no users are read). Returns
        the new delta link."""
        builder = self._graph.users.delta
        if link is None:
            query = builder.DeltaRequestBuilderGetQueryParameters(select=self._select)
            configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
            initial = builder.to_get_request_information(configuration)
            initial.path_parameters["baseurl"] = self._adapter.base_url  # what the adapter sets when sending
            url = initial.url
            link = f"{url}{'&' if '?' in url else '?'}$deltatoken=latest"
        request = builder.with_url(link).to_get_request_information(RequestConfiguration())
        return await self._delta_round(builder, request, "the user changes (delta)", fold)

    async def get_users(
        self, object_ids: Sequence[str], *, concurrency: int = 16
    ) -> dict[str, dict[str, Any]]:
        """Several users by object ID (the fields the mapping reads), `concurrency` at a time; users Graph no
        longer has are left out."""
        semaphore = asyncio.Semaphore(concurrency)
        found: dict[str, dict[str, Any]] = {}

        async def one(object_id: str) -> None:
            async with semaphore:
                user = await self.get_user(object_id)
            if user is not None:
                found[object_id] = user

        await asyncio.gather(*(one(object_id) for object_id in object_ids))
        return found

    async def direct_groups(self, object_ids: Sequence[str], *, concurrency: int = 16) -> dict[str, set[str]]:
        """The IDs (lower case) of the groups each user is a direct member of, `concurrency` users at a time;
        users Graph no longer has are left out.

        A standard query (`GET /users/{id}/memberOf?$select=id`, no `ConsistencyLevel`), so that it shows the
        directory as the delta queries do, not the lagging index of advanced queries (`member_of`'s cast)."""
        semaphore = asyncio.Semaphore(concurrency)
        found: dict[str, set[str]] = {}

        async def one(object_id: str) -> None:
            builder = self._graph.users.by_user_id(object_id).member_of
            query = builder.MemberOfRequestBuilderGetQueryParameters(
                select=["id"], top=self._settings.page_size
            )
            configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
            request = builder.to_get_request_information(configuration)
            what = f"the groups of user {object_id}"
            async with semaphore:
                try:
                    items = await self._all_pages(
                        builder, request, what, lambda exc: classify_person(exc, what=what), advanced=False
                    )
                except GraphReadError as exc:
                    if exc.status == 404:
                        return
                    raise
            found[object_id] = {
                item["id"].lower()
                for item in items
                if str(item.get("@odata.type", "")).lower() == "#microsoft.graph.group"
                and isinstance(item.get("id"), str)
            }

        await asyncio.gather(*(one(object_id) for object_id in object_ids))
        return found

    async def _delta_round(self, builder: Any, request: RequestInformation, what: str, fold: PageFold) -> str:
        """Every page of one delta round to `fold`; the final `@odata.deltaLink`."""
        pages = 0
        delta_link: object = None
        async for value, page in self._pages(builder, request, what, classify_delta):
            pages += 1
            fold(value)
            delta_link = page.get("@odata.deltaLink")  # on the last page only
        if not isinstance(delta_link, str) or urlsplit(delta_link).hostname != self._graph_host:
            raise GraphReadError(f"page {pages} of {what} ends the round without a usable deltaLink")
        log.debug("graph.delta_round", reading=what, pages=pages)
        return delta_link

    async def _all_pages(
        self,
        builder: Any,
        request: RequestInformation,
        what: str,
        classify_error: Callable[[APIError], GraphError],
        *,
        advanced: bool,
    ) -> list[dict[str, Any]]:
        """Every object of a small collection."""
        items: list[dict[str, Any]] = []
        async for value, _page in self._pages(builder, request, what, classify_error, advanced=advanced):
            items.extend(item for item in value if isinstance(item, dict))
        return items

    async def _pages(
        self,
        builder: Any,
        request: RequestInformation,
        what: str,
        classify_error: Callable[[APIError], GraphError],
        *,
        advanced: bool = False,
    ) -> AsyncIterator[tuple[list[Any], dict[str, Any]]]:
        """Every page of a collection as (its `value`, the whole page), following `@odata.nextLink`s, which
        must stay on the Graph host (our token goes with them). `advanced` sends the advanced-query headers
        again with each next page."""
        pages = 0
        while True:
            page = await self._fetch_page(request, what, classify_error)
            pages += 1
            value = page.get("value")
            if not isinstance(value, list):
                raise GraphReadError(f"page {pages} of {what} has no `value` array")
            yield value, page
            next_link = page.get("@odata.nextLink")
            del page, value  # at most one page alive while the next is fetched
            if next_link is None:
                return
            if not isinstance(next_link, str) or urlsplit(next_link).hostname != self._graph_host:
                raise GraphReadError(f"page {pages} of {what} has an unusable @odata.nextLink")
            configuration = self._configuration(None) if advanced else RequestConfiguration()
            request = builder.with_url(next_link).to_get_request_information(configuration)

    @staticmethod
    def _configuration(query: Any) -> RequestConfiguration[Any]:
        configuration: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        # The user cast is an advanced query: Graph wants these on every page.
        configuration.headers.add("ConsistencyLevel", "eventual")
        return configuration

    async def _fetch_page(
        self,
        request: RequestInformation,
        what: str,
        classify_error: Callable[[APIError], GraphError],
        *,
        group_id: str | None = None,
    ) -> dict[str, Any]:
        """One page of `what` as parsed JSON (`_fetch_body`)."""
        body = await self._fetch_body(request, what, classify_error, group_id=group_id)
        return parse_page(body, what, group_id)

    async def _fetch_body(
        self,
        request: RequestInformation,
        what: str,
        classify_error: Callable[[APIError], GraphError],
        *,
        group_id: str | None = None,
    ) -> bytes:
        """One page of `what` as Graph sent it: our retries for transport failures, one token refresh on 401;
        Graph's refusals become `classify_error(exc)`; a path key `path_segment` refuses is never sent."""
        keys = [str(v) for k, v in request.path_parameters.items() if k.endswith("%2Did")]  # by_user_id(...)
        if any(path_segment(key) is None for key in keys):  # "..": /users/.. would be sent as /v1.0
            raise GraphReadError(f"{what}: not an object ID Graph can address", group_id=group_id)
        settings = self._settings
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                body = await self._adapter.send_primitive_async(request, "bytes", ERROR_MAP)
            except APIError as exc:
                if exc.response_status_code == 401 and not refreshed:
                    refreshed, attempt = True, attempt - 1
                    log.info("graph.token_rejected", reading=what)
                    await self._tokens.invalidate()
                    # kiota only asks for a token when the request has no Authorization header yet.
                    request.headers.remove("Authorization")
                    continue
                raise classify_error(exc) from exc
            except GraphError:
                raise
            except Exception as exc:
                # httpx errors and whatever the transport lets through unmapped: retried, then unavailable.
                if attempt >= settings.max_attempts:
                    raise GraphUnavailable(
                        f"no answer from Graph after {attempt} attempts (last: {type(exc).__name__})",
                        group_id=group_id,
                    ) from exc
                delay = backoff_delay_s(attempt, initial_s=0.5, max_s=30.0, rng=self._rng)
                log.warning(
                    "graph.retry",
                    reading=what,
                    attempt=attempt,
                    reason=type(exc).__name__,
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            if not isinstance(body, bytes | bytearray):
                raise GraphReadError(f"a page of {what} is not a JSON object", group_id=group_id)
            return bytes(body)
