"""A daemon's full cycles take the member pages and the agents list it read last time, when they come back
byte for byte, as it mapped and parsed them then (`syncd.graph.page_memo`, `syncd.smartcomm.memo`), in-process
against both emulators.

What matters is that nothing a memo holds hides a change: a user changed on a kept page, a user joining an
excluded group (their page unchanged), an agent changed behind our back, a new engine (a fresh process). Each
is checked by what SmartCommunicator received. Pages are 3 users here, so 7 users make 3 pages.
"""

from __future__ import annotations

import structlog

from syncd.emulators.graph import DEFAULT_TENANT_ID
from syncd.graph.mapping import forget_phones
from tests.cycle.conftest import World, expect

PAGES = {"SYNCD_GRAPH__PAGE_SIZE": "3"}


async def full_cycle(world: World, env: dict[str, str] | None = None) -> dict[str, int]:
    """One full cycle in the world's engine (a daemon's next full cycle); how many users its read mapped and
    how many pages it took as kept (summed over the `graph.group_read` events)."""
    with structlog.testing.capture_logs() as logs:
        expect(await world.cycle(full=True, env=PAGES | (env or {})))
    reads = [event for event in logs if event["event"] == "graph.group_read"]
    listed = [event for event in logs if event["event"] == "smartcomm.agents_listed"]  # none: 404, no agent
    return {
        **{key: sum(int(event.get(key, 0)) for event in reads) for key in ("mapped", "pages_unchanged")},
        "agents_unchanged": sum(int(event["unchanged"]) for event in listed),
    }


def seed(world: World, count: int = 7) -> list[str]:
    return [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(count)]


async def test_a_daemons_unchanged_pages_are_taken_as_kept_and_nothing_is_written(world: World) -> None:
    ids = seed(world)
    first = await full_cycle(world)
    assert first == {"mapped": 7, "pages_unchanged": 0, "agents_unchanged": 0}
    assert sorted(world.agents()) == sorted(ids)

    world.smartcomm.clear_requests()
    second = await full_cycle(world)
    assert second == {"mapped": 0, "pages_unchanged": 3, "agents_unchanged": 0}  # the list is new
    assert world.writes() == []
    world.smartcomm.clear_requests()
    third = await full_cycle(world)
    assert third == {"mapped": 0, "pages_unchanged": 3, "agents_unchanged": 1}
    assert world.writes() == []
    assert [r.method for r in world.smartcomm.requests if "/agents" in r.path] == ["GET"]  # the list, read

    # A new engine (a fresh process) keeps nothing: every page is read and mapped (from the mapping cache).
    await world.aclose()
    forget_phones()
    fresh = await full_cycle(world)
    assert fresh["pages_unchanged"] == 0
    assert world.writes() == []


async def test_a_change_on_a_kept_page_is_mapped_and_written(world: World) -> None:
    ids = seed(world)
    await full_cycle(world)
    await full_cycle(world)
    world.graph.update_user(ids[4], business_phones=["+1 415 555 0104"])  # the second page
    world.graph.update_user(ids[6], upn="renamed@contoso.com")  # the third
    world.smartcomm.clear_requests()
    changed = await full_cycle(world)
    assert changed == {"mapped": 4, "pages_unchanged": 1, "agents_unchanged": 1}
    assert sorted(world.writes(), key=str) == sorted(
        [
            ("PATCH", f"/{ids[4]}", {"phone_number": "+14155550104"}),
            ("PATCH", f"/{ids[6]}", {"upn": "renamed@contoso.com"}),
        ],
        key=str,
    )
    world.smartcomm.clear_requests()
    assert await full_cycle(world) == {"mapped": 0, "pages_unchanged": 3, "agents_unchanged": 0}
    assert world.writes() == []


async def test_a_user_joining_an_excluded_group_is_not_taken_from_a_kept_page(world: World) -> None:
    """Their page comes back byte for byte; what changed is an input of their mapping beyond the page."""
    excluded = world.graph.add_group(display_name="No agents")
    env = {"SYNCD_GRAPH__EXCLUDE_GROUP_IDS": excluded}
    ids = seed(world)
    await full_cycle(world, env)
    assert await full_cycle(world, env) == {"mapped": 0, "pages_unchanged": 3, "agents_unchanged": 0}
    world.graph.add_member(excluded, ids[1])
    world.smartcomm.clear_requests()
    again = await full_cycle(world, env)
    assert again == {
        "mapped": 7,
        "pages_unchanged": 0,
        "agents_unchanged": 1,
    }  # every mapping input changed: nothing is taken
    assert world.writes() == [("DELETE", f"/{ids[1]}", None)]
    assert sorted(world.agents()) == sorted(ids[:1] + ids[2:])


async def test_an_agent_changed_behind_our_back_is_seen_by_a_daemons_next_full_cycle(world: World) -> None:
    """The agents list taken as kept must never hide drift: a changed list is parsed again."""
    ids = seed(world, 3)
    await full_cycle(world)
    await full_cycle(world)
    kept = await full_cycle(world)
    assert kept == {"mapped": 0, "pages_unchanged": 1, "agents_unchanged": 1}
    world.smartcomm.reset()  # the remote lost everything behind our back
    world.smartcomm.add_agent(user_object_id=ids[0], tenant_id=DEFAULT_TENANT_ID, phone_number="+14155550999")
    world.smartcomm.clear_requests()
    assert await full_cycle(world) == {"mapped": 0, "pages_unchanged": 1, "agents_unchanged": 0}
    writes = world.writes()
    assert sorted((method, path) for method, path, _ in writes) == [
        ("PATCH", f"/{ids[0]}"),
        ("POST", "/"),
        ("POST", "/"),
    ]
    assert [body for method, _, body in writes if method == "PATCH"] == [{"phone_number": "+14155550000"}]
    assert {oid: phone for oid, (phone, _) in world.agents().items()} == {
        oid: f"+1415555000{i}" for i, oid in enumerate(ids)
    }
