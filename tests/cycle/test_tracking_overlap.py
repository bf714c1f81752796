"""A full read that starts tracking runs the groups delta round alongside the member read.

The round is a snapshot taken at its first page (its link reports every later change); the read sees the
groups as they are when each of its pages is served. With the two under way at once, either may see a change
the other missed. These tests put a change between them on purpose: the groups delta round is throttled once
(429, Retry-After 1 s) so the member read ends first, and the change is made before the round is asked again.
Whatever the two disagree about is planned by the next cycle from the tracked memberships, so nothing is lost
in either direction; and a failure of one side never hides the other's. The users delta link is still taken
before the read starts (a property change has no such recheck).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from syncd.cycle.result import CycleResult
from syncd.emulators.graph import ScriptedFault
from tests.cycle.conftest import World
from tests.cycle.test_delta import assert_read, clear, onboarded, seed, sync
from tests.cycle.test_delta_full import edges, fresh_edges, recheck
from tests.observed import graph_api, kind


async def _when_the_read_is_answered(world: World) -> None:
    """Wait until the member read's page has been answered (the emulator builds it when the request comes)."""
    for _ in range(2000):
        if any(kind(r) == "members" and r.status is not None for r in graph_api(world)):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"no member page was read: {[kind(r) for r in graph_api(world)]}")


async def _first_cycle_with_a_change_between(world: World, change: Callable[[], None]) -> CycleResult:
    """The first cycle (tracking starts), with `change()` made after the member read was answered and before
    the groups delta round's first page is (the round's first request is throttled once)."""
    world.graph.inject(ScriptedFault(kind="throttle", path_contains="groups/delta", retry_after_s=1.0))
    cycle = asyncio.create_task(sync(world))
    await _when_the_read_is_answered(world)
    assert cycle.done() is False
    change()
    report = await cycle
    assert_read(report, "full", "no delta state")
    answered = [kind(r) for r in graph_api(world) if r.status == 200]
    assert answered.index("members") < answered.index("groups_delta_start"), answered
    # The users delta link comes first: a property changed during the read is reported by it.
    assert answered.index("users_delta_latest") < answered.index("members"), answered
    assert [r.status for r in graph_api(world) if kind(r) == "groups_delta_start"] == [429, 200]
    return report


async def test_a_change_the_read_missed_but_the_starting_round_saw_is_planned_by_the_next_cycle(
    world: World, tmp_path: Path
) -> None:
    """A joiner and a leaver, changed after the read and before the round's snapshot: the read onboards the
    leaver and misses the joiner; the next cycle, a delta one, offboards the one and onboards the other."""
    stays, leaver = seed(world, 2)
    joiner = world.graph.add_user(upn="joiner@contoso.com", business_phones=["+1 415 555 0100"])

    def change() -> None:
        world.graph.remove_member(world.group, leaver)
        world.graph.add_member(world.group, joiner)

    first = await _first_cycle_with_a_change_between(world, change)
    assert first.outcomes == {"onboard": {"ok": 2}}
    assert sorted(world.agents()) == sorted([stays, leaver])
    assert recheck(world) == sorted([joiner, leaver])
    assert edges(world.store) == await fresh_edges(world, tmp_path)

    clear(world)
    second = await sync(world)
    assert_read(second, "delta")
    assert sorted(world.writes(), key=str) == sorted(
        [onboarded(joiner, "+14155550100", "joiner@contoso.com"), ("DELETE", f"/{leaver}", None)], key=str
    )
    assert sorted(world.agents()) == sorted([stays, joiner])
    assert recheck(world) == []


async def test_a_change_after_the_round_and_the_read_is_reported_by_the_round_s_link(world: World) -> None:
    """A member who leaves once both are done is in the snapshot and in the read: the link reports it."""
    stays, leaver = seed(world, 2)
    first = await _first_cycle_with_a_change_between(world, lambda: None)
    assert first.outcomes == {"onboard": {"ok": 2}}
    assert recheck(world) == []
    world.graph.remove_member(world.group, leaver)

    clear(world)
    second = await sync(world)
    assert_read(second, "delta")
    assert world.writes() == [("DELETE", f"/{leaver}", None)]
    assert list(world.agents()) == [stays]


async def test_a_starting_round_graph_refuses_leaves_the_read_and_no_links(world: World) -> None:
    """The groups delta round answers 503 to every attempt: the read still onboards everyone, no links are
    stored, and the next cycle reads everything again and starts tracking."""
    ids = seed(world, 2)
    world.graph.inject(ScriptedFault(kind="status", status=503, path_contains="groups/delta", times=2))
    env = {"SYNCD_GRAPH__MAX_RETRIES": "1"}
    first = await sync(world, env=env)
    assert_read(first, "full", "no delta state")
    assert first.outcomes == {"onboard": {"ok": 2}}
    assert sorted(world.agents()) == sorted(ids)
    assert world.store.get_value("graph_delta") is None

    clear(world)
    second = await sync(world, env=env)
    assert_read(second, "full", "no delta state")
    assert world.writes() == []
    assert world.store.get_value("graph_delta") is not None


async def test_a_failed_read_cancels_the_starting_round_and_stores_no_links(world: World) -> None:
    """The member read answers 503 to every attempt: the cycle fails with the read's error, writes nothing
    and stores no links, whatever the round running beside it got to."""
    seed(world, 2)
    world.graph.inject(ScriptedFault(kind="status", status=503, path_contains="graph.user", times=2))
    failed = await sync(world, code=1, env={"SYNCD_GRAPH__MAX_RETRIES": "1"})
    assert "503" in str(failed.error)
    assert [r.status for r in graph_api(world) if kind(r) == "members"] == [503, 503]
    assert world.writes() == []
    assert world.store.get_value("graph_delta") is None
