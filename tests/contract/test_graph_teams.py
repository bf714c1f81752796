"""Teams numbers as the phone source: the real msal and msgraph-sdk against the Graph emulator over HTTPS.

Assertions read what the emulator received (its request log) and what the source returned.
"""

from __future__ import annotations

import pytest

from syncd.core.model import DesiredState, Member, Skipped, SkipReason
from syncd.emulators.graph import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    GRAPH_ROLES,
    GraphEmulator,
    GraphServers,
    RecordedRequest,
    ScriptedFault,
)
from syncd.graph.errors import GraphPermissionError
from syncd.graph.source import GraphSource
from tests.contract.conftest import graph_settings_for

GraphServer = tuple[GraphEmulator, GraphServers]
ASSIGNMENTS_PATH = "/v1.0/admin/teams/telephoneNumberManagement/numberAssignments"
CHAIN = ["teams", "businessPhones", "mobilePhone"]


async def read(server: GraphServers, group_ids: list[str], **changes: object) -> DesiredState:
    changes.setdefault("phone_source", CHAIN)
    async with GraphSource(graph_settings_for(server, group_ids, **changes)) as source:
        return await source.read()


def assignment_pages(graph: GraphEmulator) -> list[RecordedRequest]:
    return [r for r in graph.requests if r.path == ASSIGNMENTS_PATH]


def graph_reads(graph: GraphEmulator) -> list[RecordedRequest]:
    return [r for r in graph.requests if r.path.startswith("/v1.0/")]


def user(
    graph: GraphEmulator, group: str, name: str, business: str | None = None, mobile: str | None = None
) -> str:
    user_id = graph.add_user(
        upn=f"{name}@contoso.com",
        business_phones=[business] if business else [],
        mobile_phone=mobile,
    )
    graph.add_member(group, user_id)
    return user_id


def phones(state: DesiredState) -> dict[str, tuple[str, str | None]]:
    return {m.upn or "": (m.phone_number, m.phone_source) for m in state.members.values()}


async def test_the_chain_over_teams_numbers_and_attributes(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    ada = user(graph, group, "ada", business="+1 415 555 0100")
    bob = user(graph, group, "bob", business="+1 415 555 0101")
    cy = user(graph, group, "cy", mobile="+1 415 555 0102")
    dee = user(graph, group, "dee")
    eve = user(graph, group, "eve", business="n/a")
    graph.assign_number("+14155550199", ada)  # Teams differs from businessPhones: Teams wins
    graph.assign_number("+14155550198;ext=12", cy)  # Direct Routing extension: not an agent number
    graph.assign_number("+14155550197", bob, category="alternate")  # not a configured category
    graph.assign_number("+14155550196", dee, status="voiceApplicationAssigned")
    graph.assign_number("+14155550195", eve, activation_state="assignmentPending")
    graph.assign_number("+14155550194", "0d1c1a5e-0000-4000-8000-000000000000")  # someone not in the group

    state = await read(server, [group])

    assert phones(state) == {
        "ada@contoso.com": ("+14155550199", "teams"),
        "bob@contoso.com": ("+14155550101", "businessPhones"),
        "cy@contoso.com": ("+14155550102", "mobilePhone"),
    }
    assert state.skipped[dee].reason is SkipReason.NO_PHONE
    assert (
        state.skipped[dee].detail
        == "teams has no number assigned; businessPhones is empty; mobilePhone is empty"
    )
    assert state.skipped[eve].reason is SkipReason.INVALID_PHONE
    # What Graph was asked: user assignments of the primary category, 1,000 a page, before the groups.
    [page] = assignment_pages(graph)
    assert page.query == {
        "$filter": "assignmentStatus eq 'userAssigned' and assignmentCategory eq 'primary'",
        "$top": "1000",
    }
    assert graph_reads(graph)[0].path == ASSIGNMENTS_PATH


async def test_assignments_are_paged(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, server = graph_server
    graph.page_cap = 4
    group = graph.add_group()
    ids = [user(graph, group, f"u{i}", business=f"+1 415 555 01{i:02d}") for i in range(10)]
    for i, user_id in enumerate(ids):
        graph.assign_number(f"+1415555029{i}", user_id)
    state = await read(server, [group], page_size=50)
    assert {m.phone_number for m in state.members.values()} == {f"+1415555029{i}" for i in range(10)}
    assert {m.phone_source for m in state.members.values()} == {"teams"}
    pages = assignment_pages(graph)
    assert [p.status for p in pages] == [200, 200, 200]
    assert [p.query.get("$skip") for p in pages] == [None, "4", "8"]


async def test_several_categories_prefer_primary_and_report_ties(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    ada = user(graph, group, "ada")
    bob = user(graph, group, "bob")
    cy = user(graph, group, "cy")
    graph.assign_number("+14155550110", ada, category="alternate")
    graph.assign_number("+14155550111", ada)
    graph.assign_number("+14155550120", bob, category="alternate")
    graph.assign_number("+14155550131", cy)
    graph.assign_number("+14155550130", cy)

    state = await read(server, [group], teams_categories=["primary", "alternate"])

    assert phones(state) == {
        "ada@contoso.com": ("+14155550111", "teams"),
        "bob@contoso.com": ("+14155550120", "teams"),
        "cy@contoso.com": ("+14155550130", "teams"),
    }
    assert list(state.ambiguous) == [cy]
    assert "chose +14155550130, the lowest" in state.ambiguous[cy]
    # Several categories are filtered on our side: Graph is asked for every user assignment.
    assert [p.query["$filter"] for p in assignment_pages(graph)] == ["assignmentStatus eq 'userAssigned'"]


async def test_a_missing_teams_permission_is_a_configuration_error_not_an_empty_set(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    graph.register_app(DEFAULT_CLIENT_ID, secret=DEFAULT_CLIENT_SECRET, roles=GRAPH_ROLES)
    group = graph.add_group()
    user(graph, group, "ada", business="+1 415 555 0100")
    with pytest.raises(GraphPermissionError) as caught:
        await read(server, [group])
    assert "TeamsTelephoneNumber.Read.All" in str(caught.value)
    assert caught.value.status == 403
    assert [p.status for p in assignment_pages(graph)] == [403]
    # Nothing was read as "no numbers": the groups were never listed.
    assert [r.path for r in graph_reads(graph)] == [ASSIGNMENTS_PATH]
    # Without teams in the chain the same app reads fine and never asks for numbers.
    state = await read(server, [group], phone_source=["businessPhones"])
    assert phones(state) == {"ada@contoso.com": ("+14155550100", "businessPhones")}
    assert len(assignment_pages(graph)) == 1


async def test_throttling_of_the_assignments_is_retried(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    ada = user(graph, group, "ada")
    graph.assign_number("+14155550100", ada)
    graph.inject(ScriptedFault(kind="throttle", retry_after_s=0, path_contains="numberAssignments"))
    state = await read(server, [group])
    assert phones(state) == {"ada@contoso.com": ("+14155550100", "teams")}
    assert [p.status for p in assignment_pages(graph)] == [429, 200]


async def test_an_unchanged_read_costs_one_request_per_thousand_assignments(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, server = graph_server
    group = graph.add_group()
    ids = [user(graph, group, f"u{i}") for i in range(5)]
    for i, user_id in enumerate(ids):
        graph.assign_number(f"+1415555030{i}", user_id)
    settings = graph_settings_for(server, [group], phone_source=["teams"])
    async with GraphSource(settings) as source:
        first = await source.read()
        graph.unassign_number("+14155550300")
        second = await source.read()
    assert len(first.members) == 5
    assert isinstance(second.skipped[ids[0]], Skipped)
    assert set(second.members) == set(ids[1:])
    assert all(isinstance(m, Member) for m in second.members.values())
    assert len(assignment_pages(graph)) == 2
