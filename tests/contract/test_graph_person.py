"""The single-person Graph reads of `syncd explain`: the real msal and msgraph-sdk against the Graph emulator
over HTTPS.

Assertions read what the emulator received (its request log) and what the source returned.
"""

from __future__ import annotations

import pytest

from syncd.emulators.graph import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    GRAPH_ROLES,
    GraphEmulator,
    GraphServers,
    RecordedRequest,
    ScriptedFault,
)
from syncd.graph.errors import GraphPermissionError, GroupNotFound
from syncd.graph.source import GraphSource
from tests.contract.conftest import graph_settings_for

GraphServer = tuple[GraphEmulator, GraphServers]
ASSIGNMENTS_PATH = "/v1.0/admin/teams/telephoneNumberManagement/numberAssignments"


def graph_reads(graph: GraphEmulator) -> list[RecordedRequest]:
    return [r for r in graph.requests if r.path.startswith("/v1.0/")]


def source_for(server: GraphServers, group: str, **changes: object) -> GraphSource:
    return GraphSource(graph_settings_for(server, [group], **changes))


async def test_get_user_by_object_id_or_upn_and_none_for_nobody(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    ada = graph.add_user(
        upn="ada@contoso.com",
        display_name="Ada Lovelace",
        business_phones=["+1 415 555 0100"],
        mobile_phone="+1 415 555 0101",
        on_premises_immutable_id="AAECAwQFBgcICQoLDA0ODw==",
    )
    async with source_for(
        server, group, phone_source=["teams", "mobilePhone", "extensionAttribute3"]
    ) as source:
        by_id = await source.get_user(ada)
        by_upn = await source.get_user("ADA@contoso.com")
        nobody = await source.get_user("nobody@contoso.com")
    assert by_id is not None
    assert {k: v for k, v in by_id.items() if not k.startswith("@")} == {
        "id": ada,
        "userPrincipalName": "ada@contoso.com",
        "accountEnabled": True,
        "onPremisesImmutableId": "AAECAwQFBgcICQoLDA0ODw==",
        "mobilePhone": "+1 415 555 0101",
        "onPremisesExtensionAttributes": {f"extensionAttribute{n}": None for n in range(1, 16)},
        "displayName": "Ada Lovelace",
    }
    assert by_upn is not None
    assert by_upn["id"] == ada
    assert nobody is None
    reads = graph_reads(graph)
    assert [(r.path, r.status) for r in reads] == [
        (f"/v1.0/users/{ada}", 200),
        ("/v1.0/users/ADA@contoso.com", 200),
        ("/v1.0/users/nobody@contoso.com", 404),
    ]
    # What the mapping reads for this phone chain, and the display name; the Teams source selects nothing.
    assert reads[0].query == {
        "$select": "id,userPrincipalName,accountEnabled,onPremisesImmutableId,mobilePhone,"
        "onPremisesExtensionAttributes,displayName"
    }


async def test_member_of_reads_every_page_of_direct_groups_as_an_advanced_query(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.page_cap = 2
    ada = graph.add_user(upn="ada@contoso.com")
    groups = [graph.add_group(display_name=f"Team {i}") for i in range(5)]
    for group in groups:
        graph.add_member(group, ada)
    outer = graph.add_group(display_name="Outer")
    graph.add_member(outer, groups[0])  # transitive only: not a direct membership
    async with source_for(server, groups[0]) as source:
        found = await source.member_of(ada)
    assert [(g["id"], g["displayName"]) for g in found] == [(g, f"Team {i}") for i, g in enumerate(groups)]
    pages = [r for r in graph_reads(graph) if r.path == f"/v1.0/users/{ada}/memberOf/graph.group"]
    assert [r.status for r in pages] == [200, 200, 200]
    assert all(r.consistency_level == "eventual" for r in pages)
    assert pages[0].query == {"$count": "true", "$select": "id,displayName", "$top": "999"}
    assert "$skiptoken" in pages[1].query


async def test_direct_groups_are_a_standard_query_that_does_not_lag_and_skip_deleted_users(
    graph: GraphEmulator, graph_server: GraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a full cycle repairing its stored memberships reads per person: every page of the user's direct
    groups, without `ConsistencyLevel: eventual`, so a membership written a moment ago is there (advanced
    queries lag it); a user Graph no longer has is left out."""
    _, server = graph_server
    now = [1_000_000.0]
    monkeypatch.setattr(graph, "clock", lambda: now[0])  # the emulator outlives the test: put back after
    graph.eventual_lag_s = 30.0
    graph.page_cap = 2
    ada = graph.add_user(upn="ada@contoso.com")
    bob = graph.add_user(upn="bob@contoso.com")
    gone = graph.add_user(upn="gone@contoso.com")
    groups = [graph.add_group(display_name=f"Team {i}") for i in range(4)]
    for group in groups:
        graph.add_member(group, ada)
    graph.add_member(groups[0], gone)
    outer = graph.add_group(display_name="Outer")
    graph.add_member(outer, groups[0])  # transitive only: not a direct membership
    now[0] += 60  # the index has caught up
    graph.remove_member(groups[3], ada)  # just now: advanced queries still show it
    graph.add_member(groups[1], bob)
    graph.delete_user(gone)
    async with source_for(server, groups[0]) as source:
        found = await source.direct_groups([ada, bob, gone])
        lagging = await source.member_of(ada)
    assert found == {ada: set(groups[:3]), bob: {groups[1]}}
    assert [g["id"] for g in lagging] == groups  # the advanced query does not show the removal yet
    reads = [r for r in graph_reads(graph) if r.path.endswith("/memberOf")]
    assert sorted({r.path for r in reads}) == sorted(f"/v1.0/users/{u}/memberOf" for u in (ada, bob, gone))
    assert all(r.consistency_level is None for r in reads)
    assert {r.query.get("$select") for r in reads} == {"id"}
    assert [r.status for r in reads if r.path == f"/v1.0/users/{ada}/memberOf"] == [200, 200]  # 2 a page
    assert [r.status for r in reads if r.path == f"/v1.0/users/{gone}/memberOf"] == [404]


async def test_child_groups_and_get_group(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, server = graph_server
    agents = graph.add_group(display_name="Agents")
    sales = graph.add_group(display_name="Sales EMEA")
    support = graph.add_group(display_name="Support")
    graph.add_members(agents, [sales, graph.add_user(upn="ada@contoso.com"), support])
    missing = "0d1c1a5e-0000-4000-8000-000000000000"
    async with source_for(server, agents) as source:
        children = await source.child_groups(agents)
        leaf = await source.child_groups(sales)
        named = await source.get_group(agents)
        unknown = await source.get_group(missing)
        with pytest.raises(GroupNotFound) as caught:
            await source.child_groups(missing)
    assert [(g["id"], g["displayName"]) for g in children] == [(sales, "Sales EMEA"), (support, "Support")]
    assert leaf == []
    assert named is not None
    assert named["displayName"] == "Agents"
    assert unknown is None
    assert caught.value.group_id == missing
    reads = graph_reads(graph)
    assert (reads[0].path, reads[0].consistency_level) == (
        f"/v1.0/groups/{agents}/members/graph.group",
        "eventual",
    )
    assert reads[2].query == {"$select": "id,displayName"}
    assert [r.status for r in reads] == [200, 200, 200, 404, 404]


async def test_teams_assignments_of_one_user_by_filter(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    ada = graph.add_user(upn="ada@contoso.com")
    bob = graph.add_user(upn="bob@contoso.com")
    graph.assign_number("+14155550100", ada)
    graph.assign_number("+14155550101", ada, category="alternate", activation_state="assignmentPending")
    graph.assign_number("+14155550102", bob)
    async with source_for(server, group, phone_source=["teams"]) as source:
        mine = await source.teams_assignments(f"assignmentTargetId eq '{ada}'")
        holder = await source.teams_assignments("telephoneNumber eq '+14155550102'")
    assert [(a["telephoneNumber"], a["assignmentCategory"], a["activationState"]) for a in mine] == [
        ("+14155550100", "primary", "activated"),
        ("+14155550101", "alternate", "assignmentPending"),
    ]
    assert [a["assignmentTargetId"] for a in holder] == [bob]
    assert [r.query for r in graph_reads(graph) if r.path == ASSIGNMENTS_PATH] == [
        {"$filter": f"assignmentTargetId eq '{ada}'", "$top": "1000"},
        {"$filter": "telephoneNumber eq '+14155550102'", "$top": "1000"},
    ]


async def test_refusals_name_the_permissions_and_throttling_is_retried(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    ada = graph.add_user(upn="ada@contoso.com")
    graph.add_member(group, ada)
    graph.inject(ScriptedFault(kind="throttle", retry_after_s=0, path_contains="memberOf"))
    async with source_for(server, group) as source:
        assert [g["id"] for g in await source.member_of(ada)] == [group]
    assert [r.status for r in graph_reads(graph) if "memberOf" in r.path] == [429, 200]

    graph.register_app(
        DEFAULT_CLIENT_ID, secret=DEFAULT_CLIENT_SECRET, roles=["TeamsTelephoneNumber.Read.All"]
    )
    async with source_for(server, group) as source:
        with pytest.raises(GraphPermissionError) as user_refused:
            await source.get_user(ada)
        with pytest.raises(GraphPermissionError) as groups_refused:
            await source.member_of(ada)
    assert "User.Read.All" in str(user_refused.value)
    assert "GroupMember.Read.All" in str(groups_refused.value)
    assert groups_refused.value.status == 403

    graph.register_app(DEFAULT_CLIENT_ID, secret=DEFAULT_CLIENT_SECRET, roles=GRAPH_ROLES)
    async with source_for(server, group, phone_source=["teams"]) as source:
        with pytest.raises(GraphPermissionError) as teams_refused:
            await source.teams_assignments(f"assignmentTargetId eq '{ada}'")
    assert "TeamsTelephoneNumber.Read.All" in str(teams_refused.value)
