"""The Graph source's delta reads (groups delta, users delta, nested groups) with the real msal and
msgraph-sdk against the Entra/Graph emulator over HTTPS: paging, the query Graph received, and 410."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.emulators.graph import GraphEmulator, GraphServers, RecordedRequest
from syncd.graph.delta import GroupChanges, UserChanges, chunks
from syncd.graph.errors import DeltaExpired, GraphPermissionError
from syncd.graph.source import GraphSource
from tests.contract.conftest import graph_settings_for
from tests.contract.test_graph_source import add_users

GraphServer = tuple[GraphEmulator, GraphServers]
LIMITED_APP = "5f0b2a7e-3c1d-4e8f-9a6b-2d4c6e8f0a1b"


def delta_requests(graph: GraphEmulator, kind: str) -> list[RecordedRequest]:
    return [r for r in graph.requests if r.path == f"/v1.0/{kind}/delta()"]


async def test_an_initial_group_round_pages_through_every_direct_membership(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.page_cap = 10
    top, nested = graph.add_group(), graph.add_group()
    direct = add_users(graph, top, 25)
    inner = add_users(graph, nested, 12, start=100)
    graph.add_member(top, nested)
    async with GraphSource(graph_settings_for(server, [top])) as source:
        assert await source.nested_groups(top) == [nested]
        collected = GroupChanges()
        link = await source.group_delta(collected.fold, ids=[top, nested])
    assert sorted(collected.edges()) == sorted(
        [(top, u, "user") for u in direct] + [(nested, u, "user") for u in inner] + [(top, nested, "group")]
    )
    pages = delta_requests(graph, "groups")
    assert len(pages) >= 4  # 38 memberships at 10 per page
    assert pages[0].query["$filter"] == f"id eq '{top}' or id eq '{nested}'"
    assert pages[0].query["$select"] == "members"
    assert all(p.status == 200 for p in pages)
    assert "$deltatoken=" in link


async def test_links_report_only_changes_then_nothing(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    stay, leave = add_users(graph, group, 2)
    async with GraphSource(graph_settings_for(server, [group])) as source:
        group_link = await source.group_delta(GroupChanges().fold, ids=[group])
        users_link = await source.users_delta(UserChanges(source.select).fold)
        [latest] = delta_requests(graph, "users")
        assert latest.query["$deltatoken"] == "latest"
        assert set(latest.query["$select"].split(",")) == set(source.select)

        newcomer = add_users(graph, group, 1, start=50)[0]
        graph.remove_member(group, leave)
        graph.update_user(stay, business_phones=["+1 415 555 0999"])
        graph.clear_requests()
        changes, users = GroupChanges(), UserChanges(source.select)
        group_link = await source.group_delta(changes.fold, link=group_link)
        users_link = await source.users_delta(users.fold, link=users_link)
        assert changes.edges() == [(group, newcomer, "user")]
        assert changes.removed == {(group, leave): "user"}
        assert set(users.entries) == {stay, newcomer}
        complete: dict[str, Any] | None = users.complete(stay)
        assert complete is not None
        assert complete["businessPhones"] == ["+1 415 555 0999"]
        assert len(graph.requests) == 2  # one page each, no token request (msal's cache)

        graph.clear_requests()
        unchanged, nobody = GroupChanges(), UserChanges(source.select)
        await source.group_delta(unchanged.fold, link=group_link)
        await source.users_delta(nobody.fold, link=users_link)
    assert unchanged.edges() == []
    assert unchanged.removed == {}
    assert nobody.entries == {}
    assert [r.path for r in graph.requests] == ["/v1.0/groups/delta()", "/v1.0/users/delta()"]


async def test_an_expired_link_is_delta_expired(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, server = graph_server
    group = graph.add_group()
    add_users(graph, group, 1)
    async with GraphSource(graph_settings_for(server, [group])) as source:
        link = await source.group_delta(GroupChanges().fold, ids=[group])
        graph.expire_delta_links()
        with pytest.raises(DeltaExpired) as raised:
            await source.group_delta(GroupChanges().fold, link=link)
    assert raised.value.status == 410
    assert delta_requests(graph, "groups")[-1].status == 410


async def test_delta_without_the_member_permission_is_a_permission_error(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    graph.register_app(LIMITED_APP, secret="s3cret-value", roles=["User.Read.All"])
    settings = graph_settings_for(server, [group], client_id=LIMITED_APP, client_secret="s3cret-value")
    async with GraphSource(settings) as source:
        with pytest.raises(GraphPermissionError) as raised:
            await source.group_delta(GroupChanges().fold, ids=[group])
    assert "GroupMember.Read.All" in str(raised.value)


def test_filters_name_at_most_fifty_groups() -> None:
    assert [len(c) for c in chunks([str(n) for n in range(101)])] == [50, 50, 1]
