"""Graph's resource unit budget with the real msgraph-sdk: a read that spends its app's budget meets 429s
with Retry-After, waits them out and still returns every member (never a smaller set); a 429 that outlasts
the retries ends the read as unavailable.

The emulator charges each request its documented cost per app (a transitiveMembers page with `$select`:
4 units) from a bucket refilled at the budget's rate on the emulator's clock, here the real time.
"""

from __future__ import annotations

import pytest

from syncd.emulators.graph import GraphEmulator, GraphServers
from syncd.graph.errors import GraphUnavailable
from syncd.graph.source import GraphSource
from tests.contract.conftest import graph_settings_for

GraphServer = tuple[GraphEmulator, GraphServers]
MEMBERS_PATH = "/transitiveMembers/graph.user"


def fill(graph: GraphEmulator, count: int) -> tuple[str, list[str]]:
    group = graph.add_group()
    users = graph.add_users(
        {"upn": f"user{i}@contoso.com", "business_phones": [f"+1 415 555 {i:04d}"]} for i in range(count)
    )
    graph.add_members(group, users)
    return group, users


async def test_a_read_that_spends_the_budget_waits_out_retry_after_and_reads_everyone(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, servers = graph_server
    group, users = fill(graph, 12)
    graph.page_cap = 1  # 12 pages of 4 units
    graph.resource_units_per_10s = 40  # 4 units a second: the 11th page finds the bucket empty
    async with GraphSource(graph_settings_for(servers, [group])) as source:
        desired = await source.read()
    assert sorted(desired.members) == sorted(users)
    pages = [r for r in graph.requests if r.path.endswith(MEMBERS_PATH)]
    throttled = [i for i, r in enumerate(pages) if r.status == 429]
    assert throttled, [r.status for r in pages]
    assert [r.status for r in pages].count(200) == 12
    for i in throttled:  # the retry came after the Retry-After the 429 gave (1 s: 4 units at 4 a second)
        assert pages[i + 1].at - pages[i].at >= 1.0


async def test_a_budget_that_stays_spent_is_unavailable_not_an_empty_group(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, servers = graph_server
    group, _ = fill(graph, 3)
    graph.resource_units_per_10s = 1  # a page costs 4: never affordable
    with pytest.raises(GraphUnavailable, match="throttling"):
        async with GraphSource(graph_settings_for(servers, [group], max_retries=0)) as source:
            await source.read()
    pages = [r for r in graph.requests if r.path.endswith(MEMBERS_PATH)]
    assert [r.status for r in pages] == [429]
