"""Tests of the Graph emulator's service limits, held to what the real service refuses: the 50 groups of a
groups delta `$filter`, the lag of advanced queries, the resource unit budget of each app (429 and
Retry-After when it is spent) and the age of delta links. They run on the emulator's own clock, moved by
the tests, never on elapsed time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from syncd.emulators.graph import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    DELTA_LINK_LIFETIME_S,
    LARGE_TENANT_UNITS,
    MAX_FILTER_IDS,
    MEDIUM_TENANT_UNITS,
    SMALL_TENANT_UNITS,
    GraphEmulator,
    tenant_budget,
)

GRAPH = "https://graph.emulator.test"
LOGIN = "https://login.emulator.test"
TOKEN_URL = f"{LOGIN}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"
EVENTUAL = {"ConsistencyLevel": "eventual"}
USERS_CAST = "transitiveMembers/microsoft.graph.user?$count=true&$select=id,businessPhones"


class Clock:
    """The emulator's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(clock: Clock) -> GraphEmulator:
    return GraphEmulator(graph_resource=GRAPH, clock=clock)


@pytest.fixture
async def client(emu: GraphEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu.graph_app),
        mounts={"all://login.emulator.test": httpx.ASGITransport(app=emu.login_app)},
        base_url=GRAPH,
    ) as client:
        yield client


@pytest.fixture
async def auth(client: httpx.AsyncClient) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "scope": f"{GRAPH}/.default",
    }
    response = await client.post(TOKEN_URL, data=form)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


async def delta_round(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[list[Any], str]:
    items: list[Any] = []
    while True:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


# --- the groups delta $filter --------------------------------------------------------------------------


def id_filter(ids: list[str]) -> str:
    return " or ".join(f"id eq '{i}'" for i in ids)


async def test_a_groups_delta_filter_names_at_most_50_groups(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    groups = [emu.add_group(display_name=f"g{i}") for i in range(MAX_FILTER_IDS + 1)]
    url = "/v1.0/groups/delta?$select=members&$filter="
    allowed = await client.get(url + id_filter(groups[:MAX_FILTER_IDS]), headers=auth)
    assert allowed.status_code == 200, allowed.text
    assert len(allowed.json()["value"]) == MAX_FILTER_IDS
    refused = await client.get(url + id_filter(groups), headers=auth)
    assert error(refused) == (
        400,
        "Request_UnsupportedQuery",
        "Too many child clauses specified in search filter expression containing 'OR' operators: 51. "
        "Max allowed: 50.",
    )
    assert MAX_FILTER_IDS == 50


# --- advanced queries lag writes ---------------------------------------------------------------------


async def test_advanced_queries_lag_writes_and_other_reads_do_not(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator, clock: Clock
) -> None:
    assert GraphEmulator().eventual_lag_s == 0  # off unless asked for: Microsoft documents no bound
    emu.eventual_lag_s = 10.0
    group = emu.add_group()
    old = emu.add_user(upn="old@contoso.com", business_phones=["+14155550100"])
    gone = emu.add_user(upn="gone@contoso.com", business_phones=["+14155550101"])
    emu.add_members(group, [old, gone])
    clock.now += 11
    new = emu.add_user(upn="new@contoso.com", business_phones=["+14155550102"])
    emu.add_member(group, new)
    emu.update_user(old, business_phones=["+14155550199"])
    emu.delete_user(gone)
    advanced = auth | EVENTUAL

    lagging = await client.get(f"/v1.0/groups/{group}/{USERS_CAST}", headers=advanced)
    assert [(u["id"], u["businessPhones"]) for u in lagging.json()["value"]] == [
        (old, ["+14155550100"]),
        (gone, ["+14155550101"]),
    ]
    assert lagging.json()["@odata.count"] == 2
    count = await client.get(f"/v1.0/groups/{group}/transitiveMembers/graph.user/$count", headers=advanced)
    assert count.text == "2"
    member_of = await client.get(f"/v1.0/users/{new}/memberOf", headers=advanced)
    assert member_of.json()["value"] == []

    plain = await client.get(f"/v1.0/groups/{group}/members?$select=id", headers=auth)
    assert [u["id"] for u in plain.json()["value"]] == [old, new]
    user = await client.get(f"/v1.0/users/{old}?$select=businessPhones", headers=auth)
    assert user.json()["businessPhones"] == ["+14155550199"]
    items, _ = await delta_round(client, f"/v1.0/groups/delta?$select=members&$filter=id eq '{group}'", auth)
    assert [m["id"] for m in items[0]["members@delta"]] == [old, new]

    clock.now += 10  # the index has caught up
    caught_up = await client.get(f"/v1.0/groups/{group}/{USERS_CAST}", headers=advanced)
    assert [(u["id"], u["businessPhones"]) for u in caught_up.json()["value"]] == [
        (old, ["+14155550199"]),
        (new, ["+14155550102"]),
    ]


# --- the resource unit budget ------------------------------------------------------------------------


def test_the_budget_follows_the_tenant_size() -> None:
    assert [tenant_budget(n) for n in (0, 49, 50, 500, 501, 100_000)] == [
        SMALL_TENANT_UNITS,
        SMALL_TENANT_UNITS,
        MEDIUM_TENANT_UNITS,
        MEDIUM_TENANT_UNITS,
        LARGE_TENANT_UNITS,
        LARGE_TENANT_UNITS,
    ]
    assert (SMALL_TENANT_UNITS, MEDIUM_TENANT_UNITS, LARGE_TENANT_UNITS) == (3_500, 5_000, 8_000)
    emulator = GraphEmulator()
    emulator.add_users({"upn": f"u{i}@contoso.com"} for i in range(50))
    assert emulator.budget() == MEDIUM_TENANT_UNITS
    emulator.resource_units_per_10s = 7
    assert emulator.budget() == 7


@pytest.mark.parametrize(
    ("path", "cost"),
    [
        ("/v1.0/groups/{group}/transitiveMembers", 5),
        ("/v1.0/groups/{group}/transitiveMembers?$select=id", 4),
        ("/v1.0/groups/{group}/transitiveMembers?$select=id&$top=10", 3),
        ("/v1.0/groups/{group}/members", 3),
        ("/v1.0/groups/{group}/members?$select=id&$top=5", 1),
        ("/v1.0/users/{user}", 1),
        ("/v1.0/users/{user}?$select=id", 1),
        ("/v1.0/groups/delta?$select=members", 1),
        ("/v1.0/users/delta", 1),
    ],
)
async def test_each_request_costs_its_documented_units(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator, path: str, cost: int
) -> None:
    group, user = emu.add_group(), emu.add_user(upn="a@contoso.com")
    response = await client.get(path.format(group=group, user=user), headers=auth)
    assert response.status_code == 200, response.text
    assert response.headers["x-ms-resource-unit"] == str(cost)


async def test_a_spent_budget_is_429_with_retry_after_until_it_refills(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator, clock: Clock
) -> None:
    group = emu.add_group()
    emu.resource_units_per_10s = 20  # 2 units a second
    members = f"/v1.0/groups/{group}/transitiveMembers"  # 5 units each
    answers = [await client.get(members, headers=auth) for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429]
    assert "x-ms-throttle-limit-percentage" not in answers[0].headers  # 25% used
    assert answers[3].headers["x-ms-throttle-limit-percentage"] == "1.0"
    throttled = answers[4]
    assert error(throttled) == (
        429,
        "TooManyRequests",
        "Your request is throttled temporarily. Please try after 3 seconds.",
    )
    assert throttled.headers["retry-after"] == "3"  # 5 units at 2 a second
    assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert throttled.headers["x-ms-throttle-scope"] == (
        f"Tenant_Application/ReadWrite/{DEFAULT_CLIENT_ID}/{DEFAULT_TENANT_ID}"
    )
    clock.now += 2  # not enough yet
    assert (await client.get(members, headers=auth)).status_code == 429
    clock.now += 1
    assert (await client.get(members, headers=auth)).status_code == 200
    # Logins and Teams numbers are other services: not charged here.
    numbers = "/v1.0/admin/teams/telephoneNumberManagement/numberAssignments"
    assert (await client.get(numbers, headers=auth)).status_code == 200
    assert [r.status for r in emu.requests if r.path == members] == [200, 200, 200, 200, 429, 429, 200]


async def test_throttling_can_be_turned_off_and_reset_restores_it(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group = emu.add_group()
    emu.throttle = False
    emu.resource_units_per_10s = 1
    for _ in range(5):
        response = await client.get(f"/v1.0/groups/{group}/members", headers=auth)
        assert response.status_code == 200
        assert "x-ms-resource-unit" not in response.headers
    emu.reset()
    assert (emu.throttle, emu.resource_units_per_10s) == (True, None)


# --- delta links expire with age ---------------------------------------------------------------------


async def test_delta_links_answer_410_once_older_than_their_lifetime(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator, clock: Clock
) -> None:
    assert DELTA_LINK_LIFETIME_S == 7 * 24 * 3600  # as Graph keeps directory delta tokens
    assert emu.delta_link_lifetime_s == DELTA_LINK_LIFETIME_S
    group = emu.add_group()
    _, link = await delta_round(client, f"/v1.0/groups/delta?$select=members&$filter=id eq '{group}'", auth)
    _, users_link = await delta_round(client, "/v1.0/users/delta?$deltatoken=latest", auth)
    clock.now += DELTA_LINK_LIFETIME_S  # exactly 7 days: still good
    _, renewed = await delta_round(client, link, auth)
    clock.now += 1
    for expired in (link, users_link):
        gone = await client.get(expired, headers=auth)
        assert error(gone)[:2] == (410, "SyncStateNotFound")
    assert (await client.get(renewed, headers=auth)).status_code == 200  # issued a second ago

    emu.delta_link_lifetime_s = None  # links that never age
    clock.now += 365 * 24 * 3600
    assert (await client.get(renewed, headers=auth)).status_code == 200
