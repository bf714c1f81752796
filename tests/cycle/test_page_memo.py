"""Full cycles take the member pages and the agents list read last time, when they come back byte for byte,
as they were mapped and parsed then (`syncd.graph.page_memo`, `syncd.smartcomm.memo`), in-process against
both emulators: a daemon's from memory, a fresh process's pages from the store's page memo.

What matters is that nothing a memo holds hides a change: a user changed on a kept page, a user joining an
excluded group (their page unchanged), an agent changed behind our back, a new engine (a fresh process), a
change a fresh process meets on a stored page. Each is checked by what SmartCommunicator received. Pages are
3 users here, so 7 users make 3 pages.
"""

from __future__ import annotations

import structlog

from syncd.emulators.graph import DEFAULT_TENANT_ID
from syncd.graph.mapping import forget_phones
from syncd.store import tables
from tests.cycle.conftest import World, expect

PAGES = {"SYNCD_GRAPH__PAGE_SIZE": "3"}


async def full_cycle(world: World, env: dict[str, str] | None = None) -> dict[str, int]:
    """One full cycle in the world's engine (a daemon's next full cycle); how many users its read mapped and
    how many pages it took as kept (summed over the `graph.group_read` events)."""
    with structlog.testing.capture_logs() as logs:
        expect(await world.cycle(full=True, env=PAGES | (env or {})))
    reads = [event for event in logs if event["event"] == "graph.group_read"]
    listed = [event for event in logs if event["event"] == "smartcomm.agents_listed"]  # none: 404, no agent
    keys = ("mapped", "pages_unchanged", "pages_from_store")
    return {
        **{key: sum(int(event.get(key, 0)) for event in reads) for key in keys},
        "agents_unchanged": sum(int(event["unchanged"]) for event in listed),
    }


def seed(world: World, count: int = 7) -> list[str]:
    return [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(count)]


async def test_a_daemons_unchanged_pages_are_taken_as_kept_and_nothing_is_written(world: World) -> None:
    ids = seed(world)
    first = await full_cycle(world)
    assert first == {"mapped": 7, "pages_unchanged": 0, "pages_from_store": 0, "agents_unchanged": 0}
    assert sorted(world.agents()) == sorted(ids)
    assert world.store.count_pages() == 3

    world.smartcomm.clear_requests()
    second = await full_cycle(world)
    # From memory; the list is new (the first cycle wrote it).
    assert second == {"mapped": 0, "pages_unchanged": 3, "pages_from_store": 0, "agents_unchanged": 0}
    assert world.writes() == []
    world.smartcomm.clear_requests()
    third = await full_cycle(world)
    assert third == {"mapped": 0, "pages_unchanged": 3, "pages_from_store": 0, "agents_unchanged": 1}
    assert world.writes() == []
    assert [r.method for r in world.smartcomm.requests if "/agents" in r.path] == ["GET"]  # the list, read

    # A new engine (a fresh process) holds nothing in memory: every page comes from the store.
    await world.aclose()
    forget_phones()
    fresh = await full_cycle(world)
    assert fresh == {"mapped": 0, "pages_unchanged": 3, "pages_from_store": 3, "agents_unchanged": 0}
    assert world.writes() == []


async def test_a_change_on_a_kept_page_is_mapped_and_written(world: World) -> None:
    ids = seed(world)
    await full_cycle(world)
    await full_cycle(world)
    world.graph.update_user(ids[4], business_phones=["+1 415 555 0104"])  # the second page
    world.graph.update_user(ids[6], upn="renamed@contoso.com")  # the third
    world.smartcomm.clear_requests()
    changed = await full_cycle(world)
    assert changed == {"mapped": 4, "pages_unchanged": 1, "pages_from_store": 0, "agents_unchanged": 1}
    assert sorted(world.writes(), key=str) == sorted(
        [
            ("PATCH", f"/{ids[4]}", {"phone_number": "+14155550104"}),
            ("PATCH", f"/{ids[6]}", {"upn": "renamed@contoso.com"}),
        ],
        key=str,
    )
    world.smartcomm.clear_requests()
    assert await full_cycle(world) == {
        "mapped": 0,
        "pages_unchanged": 3,
        "pages_from_store": 0,
        "agents_unchanged": 0,
    }
    assert world.writes() == []


async def test_a_user_joining_an_excluded_group_is_not_taken_from_a_kept_page(world: World) -> None:
    """Their page comes back byte for byte; what changed is an input of their mapping beyond the page."""
    excluded = world.graph.add_group(display_name="No agents")
    env = {"SYNCD_GRAPH__EXCLUDE_GROUP_IDS": excluded}
    ids = seed(world)
    await full_cycle(world, env)
    kept = await full_cycle(world, env)
    assert kept == {"mapped": 0, "pages_unchanged": 3, "pages_from_store": 0, "agents_unchanged": 0}
    world.graph.add_member(excluded, ids[1])
    world.smartcomm.clear_requests()
    again = await full_cycle(world, env)
    # Every page's mapping inputs changed: nothing is taken, from memory or from the store.
    assert again == {"mapped": 7, "pages_unchanged": 0, "pages_from_store": 0, "agents_unchanged": 1}
    assert world.writes() == [("DELETE", f"/{ids[1]}", None)]
    assert sorted(world.agents()) == sorted(ids[:1] + ids[2:])


async def test_an_agent_changed_behind_our_back_is_seen_by_a_daemons_next_full_cycle(world: World) -> None:
    """The agents list taken as kept must never hide drift: a changed list is parsed again."""
    ids = seed(world, 3)
    await full_cycle(world)
    await full_cycle(world)
    kept = await full_cycle(world)
    assert kept == {"mapped": 0, "pages_unchanged": 1, "pages_from_store": 0, "agents_unchanged": 1}
    world.smartcomm.reset()  # the remote lost everything behind our back
    world.smartcomm.add_agent(user_object_id=ids[0], tenant_id=DEFAULT_TENANT_ID, phone_number="+14155550999")
    world.smartcomm.clear_requests()
    after = await full_cycle(world)
    assert after == {"mapped": 0, "pages_unchanged": 1, "pages_from_store": 0, "agents_unchanged": 0}
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


async def fresh_process(world: World) -> None:
    """The next cycle runs in a new engine with nothing in memory, as a new `syncd sync` process does."""
    await world.aclose()
    forget_phones()


async def test_a_fresh_process_maps_a_stored_page_that_changed_and_takes_the_others(world: World) -> None:
    ids = seed(world)
    await full_cycle(world)
    world.graph.update_user(ids[1], business_phones=["+1 415 555 0101"])  # the first page
    world.smartcomm.clear_requests()
    await fresh_process(world)
    changed = await full_cycle(world)
    assert changed == {"mapped": 3, "pages_unchanged": 2, "pages_from_store": 2, "agents_unchanged": 0}
    assert world.writes() == [("PATCH", f"/{ids[1]}", {"phone_number": "+14155550101"})]

    # The page mapped again replaced the stored one: the next fresh process takes all three.
    await fresh_process(world)
    world.smartcomm.clear_requests()
    again = await full_cycle(world)
    assert again == {"mapped": 0, "pages_unchanged": 3, "pages_from_store": 3, "agents_unchanged": 0}
    assert world.writes() == []


async def test_a_stored_page_under_other_mapping_inputs_is_not_taken(world: World) -> None:
    """A setting of the mapping changed between two processes: the stored pages were mapped under others."""
    seed(world, 2)
    mobile = world.graph.add_user(upn="mobile@contoso.com", mobile_phone="+1 415 555 0999")
    world.graph.add_member(world.group, mobile)  # skipped (no number) until mobilePhone is a source too
    await full_cycle(world)
    assert mobile not in world.agents()
    await fresh_process(world)
    world.smartcomm.clear_requests()
    changed = await full_cycle(world, {"SYNCD_GRAPH__PHONE_SOURCE": "businessPhones,mobilePhone"})
    assert changed == {"mapped": 3, "pages_unchanged": 0, "pages_from_store": 0, "agents_unchanged": 0}
    assert [(method, path) for method, path, _ in world.writes()] == [("POST", "/")]
    assert world.agents()[mobile][0] == "+14155550999"


async def test_a_dry_run_writes_no_page_and_a_shrunk_group_forgets_its_last_pages(world: World) -> None:
    ids = seed(world)
    expect(await world.cycle(full=True, dry_run=True, env=PAGES))
    assert world.store.count_pages() == 0  # a dry run leaves no trace
    await full_cycle(world)
    assert world.store.count_pages() == 3
    for object_id in ids[3:]:
        world.graph.remove_member(world.group, object_id)
    await full_cycle(world, {"SYNCD_SYNC__MAX_OFFBOARD": "10"})
    assert world.store.count_pages() == 1  # 3 users left: one page
    assert sorted(world.agents()) == sorted(ids[:3])


async def test_a_failing_page_memo_and_mapping_cache_turn_off_and_the_cycle_goes_on(world: World) -> None:
    """Both caches are an optimisation: with their tables gone, the read maps every user, says so once and
    the cycle converges as it would without them."""
    ids = seed(world)
    with world.store.engine.begin() as connection:
        tables.page_memo.drop(connection)
        tables.mapping_cache.drop(connection)
    with structlog.testing.capture_logs() as logs:
        expect(await world.cycle(full=True, env=PAGES))
    assert [event["event"] for event in logs].count("sync.mapping_cache_failed") == 1
    reads = [event for event in logs if event["event"] == "graph.group_read"]
    assert sum(int(event["mapped"]) for event in reads) == 7
    assert sorted(world.agents()) == sorted(ids)
