"""The Graph source with the real msal and msgraph-sdk against the Entra/Graph emulator over HTTPS.

Assertions read what the emulator received (its request log) and what the source returned.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import uuid
from collections.abc import Container, Mapping, Sequence
from pathlib import Path

import msal
import msal.application
import msal.token_cache
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import load_pem_x509_certificate

import syncd.graph.auth
from syncd.core.model import DesiredState, Member, Skipped, SkipReason
from syncd.emulators.graph import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    GraphEmulator,
    GraphServers,
    RecordedRequest,
)
from syncd.emulators.smartcomm import Faults, ScriptedFault
from syncd.graph.errors import (
    GraphCredentialError,
    GraphPermissionError,
    GraphUnavailable,
    GroupNotFound,
)
from syncd.graph.mapping import forget_phones
from syncd.graph.mapping_cache import TURN_EVERY
from syncd.graph.source import GraphSource
from tests.clocks import ShiftedTime
from tests.contract.conftest import graph_settings_for

MEMBERS_PATH = "/transitiveMembers/graph.user"
GraphServer = tuple[GraphEmulator, GraphServers]


def immutable_id(guid: str) -> str:
    return base64.b64encode(uuid.UUID(guid).bytes_le).decode()


def add_users(graph: GraphEmulator, group_id: str, count: int, *, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + count):
        user_id = graph.add_user(upn=f"user{i}@contoso.com", business_phones=[f"+1 415 555 {i:04d}"])
        graph.add_member(group_id, user_id)
        ids.append(user_id)
    return ids


def member_pages(graph: GraphEmulator) -> list[RecordedRequest]:
    return [r for r in graph.requests if r.path.endswith(MEMBERS_PATH)]


def token_requests(graph: GraphEmulator) -> list[RecordedRequest]:
    return [r for r in graph.requests if r.path.endswith("/oauth2/v2.0/token")]


async def read(server: GraphServers, group_ids: list[str], **changes: object) -> DesiredState:
    async with GraphSource(graph_settings_for(server, group_ids, **changes)) as source:
        return await source.read()


async def test_reads_members_with_a_client_secret(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, server = graph_server
    group = graph.add_group(display_name="Agents")
    guid = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38"
    jane = graph.add_user(
        upn="jane@contoso.com",
        business_phones=["(415) 555-0123"],
        on_premises_immutable_id=immutable_id(guid),
    )
    graph.add_member(group, jane)
    nophone = graph.add_user(upn="nophone@contoso.com")
    graph.add_member(group, nophone)
    disabled = graph.add_user(upn="off@contoso.com", business_phones=["+14155550199"], account_enabled=False)
    graph.add_member(group, disabled)
    graph.add_member(group, graph.add_device(display_name="kiosk"))

    state = await read(server, [group])

    assert state.members == {
        jane: Member(jane, DEFAULT_TENANT_ID, "jane@contoso.com", "+14155550123", guid, "businessPhones"),
    }
    assert {oid: s.reason for oid, s in state.skipped.items()} == {
        nophone: SkipReason.NO_PHONE,
        disabled: SkipReason.DISABLED,
    }
    assert state.group_counts == {group: 3}  # the device is not a user: the cast leaves it out
    [token] = token_requests(graph)
    assert token.body["client_secret"] == "***"
    assert token.body["scope"] == f"{server.base_url}/.default"
    [page] = member_pages(graph)
    assert page.consistency_level == "eventual"
    assert page.query["$count"] == "true"
    assert page.query["$top"] == "999"
    assert set(page.query["$select"].split(",")) == {
        "id",
        "userPrincipalName",
        "accountEnabled",
        "onPremisesImmutableId",
        "businessPhones",
    }


def write_certificate(directory: Path) -> tuple[trustme.LeafCert, Path]:
    # Entra takes RSA keys only (msal signs PS256); trustme would make ECDSA by default.
    leaf = trustme.CA().issue_cert("syncd-app.contoso.com", key_type=trustme.KeyType.RSA)
    directory.mkdir(parents=True, exist_ok=True)
    pem = directory / "app.pem"
    pem.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
    return leaf, pem


async def test_reads_members_with_a_pem_certificate(
    graph: GraphEmulator, graph_server: GraphServer, tmp_path: Path
) -> None:
    _, server = graph_server
    leaf, pem = write_certificate(tmp_path)
    graph.register_app(DEFAULT_CLIENT_ID, secret=None, certificate_pem=leaf.cert_chain_pems[0].bytes())
    group = graph.add_group()
    add_users(graph, group, 3)
    state = await read(server, [group], client_secret=None, certificate_path=str(pem))
    assert len(state.members) == 3
    [token] = token_requests(graph)
    assert token.status == 200
    assert token.body["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in token.body


async def test_reads_members_with_a_pfx_certificate(
    graph: GraphEmulator, graph_server: GraphServer, tmp_path: Path
) -> None:
    _, server = graph_server
    leaf, _ = write_certificate(tmp_path)
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    cert = load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"app", key, cert, None, serialization.BestAvailableEncryption(b"pfx-passphrase")
        )
    )
    graph.register_app(DEFAULT_CLIENT_ID, secret=None, certificate_pem=leaf.cert_chain_pems[0].bytes())
    group = graph.add_group()
    add_users(graph, group, 2)
    state = await read(
        server, [group], client_secret=None, certificate_path=str(pfx), certificate_password="pfx-passphrase"
    )
    assert len(state.members) == 2


async def test_a_certificate_entra_does_not_know_is_refused(
    graph: GraphEmulator, graph_server: GraphServer, tmp_path: Path
) -> None:
    _, server = graph_server
    registered, _ = write_certificate(tmp_path / "registered")
    _, other_pem = write_certificate(tmp_path / "other")
    graph.register_app(DEFAULT_CLIENT_ID, secret=None, certificate_pem=registered.cert_chain_pems[0].bytes())
    group = graph.add_group()
    with pytest.raises(GraphCredentialError) as caught:
        await read(server, [group], client_secret=None, certificate_path=str(other_pem))
    assert caught.value.code == "invalid_client"
    assert member_pages(graph) == []


async def test_a_wrong_secret_is_a_credential_error_that_hides_the_secret(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    with pytest.raises(GraphCredentialError) as caught:
        await read(server, [group], client_secret="definitely-wrong-secret")
    message = str(caught.value)
    assert "AADSTS7000215" in message
    assert "graph.client_secret" in message
    assert "definitely-wrong-secret" not in message
    assert DEFAULT_CLIENT_SECRET not in message
    assert member_pages(graph) == []


async def test_an_unknown_client_names_client_id(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, server = graph_server
    with pytest.raises(GraphCredentialError) as caught:
        await read(server, [graph.add_group()], client_id=str(uuid.uuid4()))
    assert caught.value.setting == "graph.client_id"


async def test_an_unknown_tenant_is_a_credential_error(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    with pytest.raises(GraphCredentialError) as caught:
        await read(server, [graph.add_group()], tenant_id=str(uuid.uuid4()))
    assert "tenant_id" in str(caught.value)


async def test_follows_every_next_link_across_many_pages(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.page_cap = 7
    group = graph.add_group()
    ids = add_users(graph, group, 100)
    state = await read(server, [group])
    assert sorted(state.members) == sorted(ids)
    pages = member_pages(graph)
    assert len(pages) == 15  # ceil(100 / 7)
    assert all(p.consistency_level == "eventual" and p.query["$count"] == "true" for p in pages)
    assert all(p.status == 200 for p in pages)
    assert len(token_requests(graph)) == 1  # msal's cache serves the other pages


async def test_the_next_page_is_on_its_way_while_the_reader_works_on_one(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    """Mapping a page and fetching the next overlap: once a page is handed over, the next is requested
    without waiting for the reader to ask; after the last page nothing more is; a reader that stops cancels
    the page on its way."""
    _, server = graph_server
    graph.page_cap = 2
    group = graph.add_group()
    ids = add_users(graph, group, 5)
    async with GraphSource(graph_settings_for(server, [group])) as source:
        pages = source.group_pages(group)
        first = await anext(pages)
        await asyncio.sleep(0.5)  # the reader is busy with the first page
        assert len(member_pages(graph)) == 2  # the second page came meanwhile
        read = [*first, *[item async for page in pages for item in page]]
    assert sorted(item.object_id for item in read) == sorted(ids)
    assert [p.status for p in member_pages(graph)] == [200, 200, 200]

    graph.clear_requests()
    async with GraphSource(graph_settings_for(server, [group])) as source:
        pages = source.group_pages(group)
        await anext(pages)
        await pages.aclose()  # the reader stops at once: the second page, not yet sent, never is
        await asyncio.sleep(0.2)
    assert len(member_pages(graph)) == 1


class _EmptyCache:
    """A mapping cache that has never seen anyone (a first read): every user is looked up, then mapped."""

    def __init__(self) -> None:
        self.remembered = 0

    def known_mappings(self, object_ids: Sequence[str]) -> Mapping[str, tuple[int, Member | Skipped]]:
        return {}

    def remember_mappings(self, rows: Sequence[tuple[str, int, Member | Skipped]]) -> None:
        self.remembered += len(rows)

    def prune_mappings(self, read: Container[str], users: int) -> int:
        return 0


@pytest.mark.parametrize("cached", [False, True], ids=["no-mapping-cache", "mapping-cache"])
async def test_the_next_page_is_requested_while_a_page_is_being_mapped(
    graph: GraphEmulator, graph_server: GraphServer, cached: bool
) -> None:
    """Mapping a page of new users (each number parsed) takes milliseconds of CPU; the loop turns every
    TURN_EVERY users, so the request for the next page reaches Graph while the page is mapped, not after:
    when the reader takes a page, the next one has already been asked for."""
    _, server = graph_server
    graph.page_cap = 16 * TURN_EVERY
    group = graph.add_group()
    ids = add_users(graph, group, 40 * TURN_EVERY)  # three pages, each user with their own number
    forget_phones()  # numbers this process parsed before would cost nothing to map
    cache = _EmptyCache() if cached else None
    asked: list[int] = []
    read: list[str] = []
    # The emulator serves from a thread of this process: a short switch interval lets it take the request
    # while the reader maps, as a server of its own would (the default 5 ms starves it meanwhile).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        async with GraphSource(graph_settings_for(server, [group]), mapping_cache=cache) as source:
            async for page in source.group_pages(group):
                asked.append(len(member_pages(graph)))
                read += [item.object_id for item in page]
    finally:
        sys.setswitchinterval(interval)
    assert asked == [2, 3, 3]
    assert sorted(read) == sorted(ids)
    assert cache is None or cache.remembered == len(ids)


async def test_after_page_is_called_once_the_reader_took_each_page(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    """The engine freezes what the read holds after each page (`syncd.cycle.collector`): the call comes when
    the reader asks for the next page, never before it took the one it has."""
    _, server = graph_server
    graph.page_cap = 2
    group = graph.add_group()
    add_users(graph, group, 5)
    taken: list[int] = []
    async with GraphSource(
        graph_settings_for(server, [group]), after_page=lambda: taken.append(len(member_pages(graph)))
    ) as source:
        pages = source.group_pages(group)
        await anext(pages)
        assert taken == []  # the reader is still on the first page
        rest = [page async for page in pages]
    assert len(rest) == 2
    assert len(taken) == 3  # once per page, the last one included


async def test_nested_groups_and_cycles_count_each_user_once(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    top, middle, bottom = graph.add_group(), graph.add_group(), graph.add_group()
    graph.add_member(top, middle)
    graph.add_member(middle, bottom)
    graph.add_member(bottom, top)  # a cycle must not loop
    direct = add_users(graph, top, 2)
    nested = add_users(graph, bottom, 3, start=10)
    graph.add_member(middle, nested[0])  # the same user through two paths
    state = await read(server, [top])
    assert sorted(state.members) == sorted(direct + nested)
    assert state.group_counts == {top: 5}


async def test_union_across_groups_deduplicates(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, server = graph_server
    sales, support = graph.add_group(), graph.add_group()
    shared = add_users(graph, sales, 2)
    graph.add_member(support, shared[0])
    only_support = add_users(graph, support, 1, start=50)
    state = await read(server, [sales, support])
    assert sorted(state.members) == sorted(shared + only_support)
    assert state.group_counts == {sales: 2, support: 2}


async def test_the_read_names_who_each_configured_and_excluded_group_returned(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    """What a full cycle checks its stored memberships against: per group, every user it returned, skipped
    ones included (no phone, excluded)."""
    _, server = graph_server
    sales, support, contractors = graph.add_group(), graph.add_group(), graph.add_group()
    shared = add_users(graph, sales, 2)
    graph.add_member(support, shared[0])
    nophone = graph.add_user(upn="nophone@contoso.com")
    graph.add_member(support, nophone)
    graph.add_member(contractors, shared[1])
    elsewhere = graph.add_user(upn="elsewhere@contoso.com")  # in no configured group
    graph.add_member(contractors, elsewhere)
    ids: dict[str, set[str]] = {}
    settings = graph_settings_for(server, [sales, support], exclude_group_ids=[contractors])
    async with GraphSource(settings) as source:
        state = await source.read(member_ids=ids)
    assert sorted(state.members) == [shared[0]]
    assert ids[sales] == set(shared)
    assert ids[support] == {shared[0], nophone}
    assert ids[contractors] == {shared[1], elsewhere}


async def test_an_empty_group_reads_as_zero_not_as_an_error(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    state = await read(server, [group])
    assert state.members == {}
    assert state.group_counts == {group: 0}


async def test_recovers_from_throttling_honouring_retry_after(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.page_cap = 10
    group = graph.add_group()
    ids = add_users(graph, group, 30)
    graph.inject(ScriptedFault(kind="throttle", retry_after_s=1, path_contains="skiptoken", times=1))
    state = await read(server, [group])
    assert sorted(state.members) == sorted(ids)
    pages = member_pages(graph)
    assert [p.status for p in pages] == [200, 429, 200, 200]
    assert pages[2].at - pages[1].at >= 1.0


async def test_recovers_from_transient_503_and_dropped_connections(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.page_cap = 10
    group = graph.add_group()
    ids = add_users(graph, group, 25)
    graph.inject(ScriptedFault(kind="status", status=503, path_contains=MEMBERS_PATH, times=1))
    graph.inject(ScriptedFault(kind="drop", path_contains="skiptoken", times=1))
    state = await read(server, [group])
    assert sorted(state.members) == sorted(ids)
    assert [p.status for p in member_pages(graph)] == [503, 200, None, 200, 200]


async def test_a_read_failing_midway_is_an_error_never_fewer_members(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.page_cap = 10
    group = graph.add_group()
    add_users(graph, group, 30)
    graph.inject(ScriptedFault(kind="status", status=503, path_contains="skiptoken", times=50))
    with pytest.raises(GraphUnavailable) as caught:
        await read(server, [group], max_retries=2)
    assert caught.value.group_id == group
    assert caught.value.status == 503
    assert group in str(caught.value)


async def test_persistent_drops_end_as_unavailable(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, server = graph_server
    group = graph.add_group()
    add_users(graph, group, 3)
    graph.faults = Faults(drop_rate=1.0)
    with pytest.raises(GraphUnavailable) as caught:
        await read(server, [group], max_attempts=2)
    assert "2 attempts" in str(caught.value)


async def test_a_missing_group_is_named(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, server = graph_server
    present = graph.add_group()
    missing = str(uuid.uuid4())
    with pytest.raises(GroupNotFound) as caught:
        await read(server, [present, missing])
    assert caught.value.group_id == missing
    assert caught.value.status == 404
    assert "graph.group_ids" in str(caught.value)


async def test_a_hidden_group_is_a_permission_error_naming_it(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    graph.deny_group(group)
    with pytest.raises(GraphPermissionError) as caught:
        await read(server, [group])
    assert caught.value.group_id == group
    assert "GroupMember.Read.All" in str(caught.value)


async def test_an_app_without_the_permission_is_refused(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.register_app(DEFAULT_CLIENT_ID, secret=DEFAULT_CLIENT_SECRET, roles=["User.Read.All"])
    group = graph.add_group()
    add_users(graph, group, 1)
    with pytest.raises(GraphPermissionError) as caught:
        await read(server, [group])
    assert caught.value.code == "Authorization_RequestDenied"


async def test_a_token_rejected_midway_is_renewed_once(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.page_cap = 5
    group = graph.add_group()
    ids = add_users(graph, group, 12)
    settings = graph_settings_for(server, [group])
    async with GraphSource(settings) as source:
        pages = source.group_pages(group)
        first = await anext(pages)
        graph.revoke_tokens()  # the token msal cached is now refused
        rest = [item async for page in pages for item in page]
    assert sorted(m.object_id for m in first + rest) == sorted(ids)
    statuses = [p.status for p in member_pages(graph)]
    assert statuses == [200, 401, 200, 200]
    assert len(token_requests(graph)) == 2


@pytest.fixture
def msal_clock(monkeypatch: pytest.MonkeyPatch) -> ShiftedTime:
    clock = ShiftedTime()
    monkeypatch.setattr(msal.application, "time", clock)
    monkeypatch.setattr(msal.token_cache, "time", clock)
    monkeypatch.setattr(syncd.graph.auth, "time", clock)  # the provider hands out msal's token by its clock
    return clock


async def test_a_cached_token_that_expires_mid_read_is_fetched_again(
    graph: GraphEmulator, graph_server: GraphServer, msal_clock: ShiftedTime
) -> None:
    """msal treats a token with under 5 minutes left as expired, so the token lives just over that: 310 s.
    Cached while more than 300 s are left (by 10 s), expired once fewer are (by 1 s): the read's third
    page needs a new token, and its fourth uses the new one from the cache."""
    _, server = graph_server
    graph.token_lifetime_s = 310.0
    graph.page_cap = 2
    group = graph.add_group()
    ids = add_users(graph, group, 8)
    async with GraphSource(graph_settings_for(server, [group])) as source:
        pages = source.group_pages(group)
        read = [await anext(pages), await anext(pages)]
        msal_clock.offset_s = 11.0  # 299 s of the first token left: msal's cache says it has expired
        read += [page async for page in pages]
    assert sorted(m.object_id for page in read for m in page if isinstance(m, Member)) == sorted(ids)
    tokens = token_requests(graph)
    assert [r.status for r in tokens] == [200, 200]
    pages_seen = member_pages(graph)
    assert [p.status for p in pages_seen] == [200, 200, 200, 200]
    first, second = pages_seen[0].token_id, pages_seen[2].token_id
    assert first is not None
    assert second is not None
    assert first != second
    assert [p.token_id for p in pages_seen] == [first, first, second, second]
    # Each token was fetched before the page that first used it, and no page went out in between.
    assert tokens[0].seq < pages_seen[0].seq
    assert pages_seen[1].seq < tokens[1].seq < pages_seen[2].seq


async def test_tokens_go_only_to_the_graph_host(graph_server: GraphServer) -> None:
    from syncd.graph.auth import MsalTokenProvider

    _, server = graph_server
    provider = MsalTokenProvider(graph_settings_for(server, [str(uuid.uuid4())]))
    try:
        assert await provider.get_authorization_token("https://evil.example.com/v1.0/groups") == ""
    finally:
        provider.close()


async def test_limited_information_users_are_a_permission_error(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    for i in range(3):
        user = graph.add_user(upn=f"u{i}@contoso.com", raw={"userPrincipalName": None, "businessPhones": []})
        graph.add_member(group, user)
    with pytest.raises(GraphPermissionError) as caught:
        await read(server, [group])
    assert "User.Read.All" in str(caught.value)
    assert caught.value.group_id == group
