"""Full cycles that follow the stored delta links and repair the stored memberships from the member read,
in-process against both emulators.

Once tracking has started, a full cycle no longer restarts it: it follows the stored links (one groups delta
request per tracked tree, one users delta request), reads every member, checks the stored direct
memberships (`graph_edges`) with the changes just reported against the read tree by tree, and reads the
direct groups of the people the two disagree about (`GET /users/{id}/memberOf`) to repair theirs. A
structural change, an expired link or more disagreements than the repair limit restart tracking as before.

The correctness check is the one that matters: the stored memberships after a repairing full cycle equal
those of a second store whose first full cycle started tracking from scratch against the same Graph
(`fresh_edges`), and the incremental cycles after it plan exactly what the directory says.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, insert, select

from syncd.cycle.desired import read_desired
from syncd.emulators.graph import ScriptedFault
from syncd.graph.auth import MsalTokenProvider
from syncd.graph.repair import REPAIR_FLOOR
from syncd.graph.source import GraphSource
from syncd.store import Store, tables
from tests.cycle.conftest import AsgiSyncTransport, World, stopped_by
from tests.cycle.test_delta import (
    assert_read,
    clear,
    graph_kinds,
    nest,
    onboarded,
    outsider,
    seed,
    sync,
)
from tests.observed import assert_no_change_cycle, graph_api, kind

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
RESTART_KINDS = frozenset({"nested", "groups_delta_start", "users_delta_latest"})
"""Request kinds only a start of tracking sends."""

Edge = tuple[str, str, str]


def edges(store: Store) -> list[Edge]:
    """Every stored direct membership (group ID, member ID, kind), sorted."""
    table = tables.graph_edges
    with store.engine.connect() as connection:
        rows = connection.execute(select(table.c.group_id, table.c.member_id, table.c.member_kind))
        return sorted((str(g), str(m), str(k)) for g, m, k in rows)


def damage(store: Store, *, drop: Sequence[tuple[str, str]] = (), add: Sequence[Edge] = ()) -> None:
    """Change the stored memberships behind syncd's back, as a bug would."""
    table = tables.graph_edges
    with store.engine.begin() as connection:
        for group_id, member_id in drop:
            gone = connection.execute(
                delete(table).where(table.c.group_id == group_id, table.c.member_id == member_id)
            )
            assert gone.rowcount == 1, (group_id, member_id)
        for group_id, member_id, member_kind in add:
            connection.execute(
                insert(table).values(group_id=group_id, member_id=member_id, member_kind=member_kind)
            )


async def fresh_edges(world: World, tmp_path: Path, env: dict[str, str] | None = None) -> list[Edge]:
    """The memberships a first full cycle stores when it starts tracking against the same Graph, on an empty
    database of its own (the read alone: no SmartCommunicator is involved)."""
    fresh = Store(f"sqlite:///{tmp_path / f'fresh-{uuid.uuid4().hex}.db'}")
    try:
        fresh.upgrade()
        settings = world.settings(env).require_graph()
        hosts = world.hosts()
        tokens = MsalTokenProvider(settings, transport=AsgiSyncTransport(hosts))
        try:
            async with GraphSource(
                settings, transport=httpx.ASGITransport(app=hosts), tokens=tokens
            ) as source:
                read = await read_desired(source, settings, fresh, full=True, track=True, now=world.clock())
        finally:
            tokens.close()
        assert read.state is not None  # tracking started from scratch
        assert read.reason == "full cycle"
        return edges(fresh)
    finally:
        fresh.close()


def recheck(world: World) -> list[str]:
    """The people the stored links leave to the next cycle (`DeltaState.recheck`)."""
    raw = world.store.get_value("graph_delta")
    assert raw is not None
    value = json.loads(raw).get("recheck", [])
    assert isinstance(value, list)
    return sorted(str(v) for v in value)


def groups_read_one_by_one(world: World) -> list[str]:
    """The users whose direct groups were read (`GET /users/{id}/memberOf`), sorted."""
    return sorted(k.removeprefix("member_of:") for k in graph_kinds(world) if k.startswith("member_of:"))


# --- following the links -----------------------------------------------------------------------------


@BOTH
async def test_a_full_cycle_after_a_full_cycle_follows_the_links_and_keeps_the_memberships(
    world: World, tmp_path: Path
) -> None:
    contractors = world.graph.add_group(display_name="Contractors")
    env = {"SYNCD_GRAPH__EXCLUDE_GROUP_IDS": contractors}
    ids = seed(world, 3)
    sales = nest(world, world.group, "Sales")
    seed(world, 2, start=3, group=sales)
    world.graph.add_member(contractors, ids[0])
    first = await sync(world, full=True, env=env)
    assert_read(first, "full", "full cycle")
    assert set(graph_kinds(world)) >= RESTART_KINDS
    stored = edges(world.store)
    assert len(stored) == 7  # 3 direct + Sales + 2 through Sales + 1 in Contractors

    clear(world)
    second = await sync(world, full=True, env=env)
    assert second.graph_read_reason == "full cycle"
    kinds = graph_kinds(world)
    assert not RESTART_KINDS & set(kinds), kinds
    assert (kinds.count("groups_delta"), kinds.count("users_delta")) == (2, 1), kinds
    assert "members" in kinds
    assert groups_read_one_by_one(world) == []  # the read and the memberships agree about everyone
    assert all(r.status == 200 for r in graph_api(world))
    assert world.writes() == []
    assert second.planned == {"onboard": 0, "update": 0, "offboard": 0, "relink": 0}
    assert edges(world.store) == stored == await fresh_edges(world, tmp_path, env)

    clear(world)
    assert_read(await sync(world, env=env), "delta")
    assert_no_change_cycle(world, groups=2)


@BOTH
async def test_repaired_memberships_equal_a_fresh_read(world: World, tmp_path: Path) -> None:
    """Changes made in Graph (reported by the links) and memberships damaged in the store (found by the
    check, read again one by one): afterwards the store holds what a fresh start of tracking stores, and the
    incremental cycles that follow plan from it correctly."""
    excluded = world.graph.add_group(display_name="Contractors")
    env = {"SYNCD_GRAPH__EXCLUDE_GROUP_IDS": excluded}
    g = world.group
    sales = nest(world, g, "Sales")
    support = nest(world, g, "Support")
    u = seed(world, 4)
    s = seed(world, 2, start=10, group=sales)
    direct = world.add_user("direct", "+1 415 555 0201")  # a configured group's member the store loses
    nested = world.add_user("nested", "+1 415 555 0202", group=sales)  # a nested group's, likewise
    stranger = outsider(world, "stranger", "+1 415 555 0203")  # the store wrongly puts in Sales
    included = world.add_user("included", "+1 415 555 0204")  # the store wrongly puts in Contractors
    held = world.add_user("held", "+1 415 555 0205")  # in Contractors: the store loses that
    world.graph.add_member(excluded, held)
    late = outsider(world, "late", "+1 415 555 0206")
    await sync(world, full=True, env=env)

    # Changes in Graph, reported by the links.
    newcomer = world.add_user("newcomer", "+1 415 555 0207", group=support)
    world.graph.add_member(g, late)
    world.graph.remove_member(g, u[1])
    world.graph.add_member(support, s[0])  # moved from Sales to Support
    world.graph.remove_member(sales, s[0])
    world.graph.delete_user(u[2])
    world.graph.add_member(excluded, u[3])
    # Drift in the store.
    damage(
        world.store,
        drop=[(g, direct), (sales, nested), (excluded, held), (sales, s[1])],
        add=[(sales, stranger, "user"), (excluded, included, "user")],
    )

    clear(world)
    report = await sync(world, full=True, env=env)
    assert report.graph_read_reason == "full cycle"
    assert not RESTART_KINDS & set(graph_kinds(world))
    damaged = [direct, nested, stranger, included, held, s[1]]
    assert groups_read_one_by_one(world) == sorted(damaged)
    assert sorted(world.writes(), key=str) == sorted(
        [
            onboarded(newcomer, "+14155550207", "newcomer@contoso.com"),
            onboarded(late, "+14155550206", "late@contoso.com"),
            ("DELETE", f"/{u[1]}", None),
            ("DELETE", f"/{u[2]}", None),
            ("DELETE", f"/{u[3]}", None),
        ],
        key=str,
    )
    assert recheck(world) == []
    repaired = edges(world.store)
    assert repaired == await fresh_edges(world, tmp_path, env)
    assert (sales, stranger, "user") not in repaired
    assert (sales, nested, "user") in repaired

    clear(world)
    assert_read(await sync(world, env=env), "delta")
    assert_no_change_cycle(world, groups=2)
    assert world.writes() == []

    # Each damaged person changes: planned from the repaired memberships, none is offboarded or onboarded.
    for n, person in enumerate(damaged):
        world.graph.update_user(person, business_phones=[f"+1 415 555 03{n:02d}"])
    clear(world)
    changed = await sync(world, env=env)
    assert_read(changed, "delta")
    assert sorted(world.writes(), key=str) == sorted(
        [
            ("PATCH", f"/{person}", {"phone_number": f"+141555503{n:02d}"})
            for n, person in enumerate(damaged)
            if person not in (stranger, held)
        ],
        key=str,
    )
    assert changed.outcomes == {"update": {"ok": 4}}


async def test_people_a_lagging_read_disagrees_about_are_read_again_and_planned_by_the_next_cycle(
    world: World, tmp_path: Path
) -> None:
    """The member read is an advanced query that lags writes; `memberOf` without `ConsistencyLevel` does not.
    A joiner and a leaver the links reported but the read did not show yet are read again: their stored
    memberships are right, so they stay as they are, and the next cycle plans them from them."""
    world.graph.clock = world.clock
    world.graph.eventual_lag_s = 30.0
    stays, leaver = seed(world, 2)
    world.clock.advance(60)  # the index has caught up with the seeding
    await sync(world, full=True)
    world.graph.remove_member(world.group, leaver)
    joiner = world.add_user("joiner", "+1 415 555 0100")

    clear(world)
    raced = await sync(world, full=True)  # at once: the read sees the group as it was 30 s ago
    assert raced.graph_read_reason == "full cycle"
    assert not RESTART_KINDS & set(graph_kinds(world))
    assert groups_read_one_by_one(world) == sorted([joiner, leaver])
    assert world.writes() == []
    assert recheck(world) == sorted([joiner, leaver])
    assert edges(world.store) == await fresh_edges(world, tmp_path)

    clear(world)
    caught_up = await sync(world)  # the lag has not passed: the memberships decide
    assert_read(caught_up, "delta")
    assert sorted(world.writes(), key=str) == sorted(
        [onboarded(joiner, "+14155550100", "joiner@contoso.com"), ("DELETE", f"/{leaver}", None)], key=str
    )
    assert sorted(world.agents()) == sorted([stays, joiner])


# --- restarting instead ------------------------------------------------------------------------------


async def test_more_disagreements_than_the_limit_restart_tracking_after_the_read(
    world: World, tmp_path: Path
) -> None:
    ids = seed(world, REPAIR_FLOOR + 5)
    await sync(world, full=True)
    damage(world.store, drop=[(world.group, oid) for oid in ids])  # every membership lost

    clear(world)
    report = await sync(world, full=True)
    assert_read(report, "full", f"{len(ids)} people's stored memberships disagree")
    requests = [kind(r) for r in graph_api(world)]
    assert groups_read_one_by_one(world) == []  # restarted instead of reading them one by one
    assert "users_delta_latest" not in requests  # the users link followed before the read is kept
    last_member_page = max(i for i, k in enumerate(requests) if k == "members")
    assert {"nested", "groups_delta_start"} <= set(requests[last_member_page:]), requests
    assert world.writes() == []
    assert edges(world.store) == await fresh_edges(world, tmp_path)
    assert len(edges(world.store)) == len(ids)

    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)


async def test_a_structural_change_during_a_full_cycle_restarts_tracking(
    world: World, tmp_path: Path
) -> None:
    seed(world, 2)
    support = world.graph.add_group(display_name="Support")
    [joining] = seed(world, 1, start=5, group=support)
    await sync(world, full=True)
    world.graph.add_member(world.group, support)

    clear(world)
    report = await sync(world, full=True)
    assert_read(report, "full", "tracking restarted: nested group")
    assert set(graph_kinds(world)) >= RESTART_KINDS
    assert world.writes() == [onboarded(joining, "+14155550005", "user5@contoso.com")]
    assert edges(world.store) == await fresh_edges(world, tmp_path)

    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)


async def test_an_expired_link_during_a_full_cycle_restarts_tracking(world: World, tmp_path: Path) -> None:
    ids = seed(world, 3)
    await sync(world, full=True)
    world.graph.remove_member(world.group, ids[0])
    damage(world.store, drop=[(world.group, ids[1])])  # a restart repairs this too
    world.graph.expire_delta_links()

    clear(world)
    report = await sync(world, full=True)
    assert_read(report, "full", "tracking restarted: a delta link expired")
    assert any(kind(r) == "groups_delta" and r.status == 410 for r in graph_api(world))
    assert set(graph_kinds(world)) >= RESTART_KINDS
    assert world.writes() == [("DELETE", f"/{ids[0]}", None)]
    assert edges(world.store) == await fresh_edges(world, tmp_path)

    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)


async def test_links_that_fail_to_answer_during_a_full_cycle_restart_tracking(
    world: World, tmp_path: Path
) -> None:
    """A full cycle does not fail because its links could not be followed (as an incremental cycle would): it
    starts tracking instead, as it did before it followed links."""
    ids = seed(world, 3)
    await sync(world, full=True)
    world.graph.remove_member(world.group, ids[0])
    world.graph.inject(ScriptedFault(kind="status", status=503, path_contains="groups/delta", times=1))

    clear(world)
    env = {"SYNCD_GRAPH__MAX_RETRIES": "0"}
    report = await sync(world, full=True, env=env)
    assert_read(report, "full", "tracking restarted: the delta links could not be followed")
    assert [(kind(r), r.status) for r in graph_api(world) if kind(r).startswith("groups_delta")] == [
        ("groups_delta", 503),
        ("groups_delta_start", 200),
    ]
    assert world.writes() == [("DELETE", f"/{ids[0]}", None)]
    assert edges(world.store) == await fresh_edges(world, tmp_path, env)


# --- a cycle that stops stores nothing -----------------------------------------------------------------


@BOTH
async def test_a_guard_stop_leaves_the_memberships_with_their_links_and_force_repairs(
    world: World, tmp_path: Path
) -> None:
    ids = seed(world, 4)
    env = {"SYNCD_SYNC__MAX_OFFBOARD": "1"}
    await sync(world, full=True, env=env)
    world.graph.remove_member(world.group, ids[0])
    world.graph.remove_member(world.group, ids[1])
    damage(world.store, drop=[(world.group, ids[3])])
    links, memberships = world.store.get_value("graph_delta"), edges(world.store)

    clear(world)
    stopped = await sync(world, full=True, code=3, env=env)
    assert stopped_by(stopped) == "max_offboard"
    assert world.writes() == []
    # Nothing moved: the stored memberships still go with the stored links (the next cycle replays both).
    assert (world.store.get_value("graph_delta"), edges(world.store)) == (links, memberships)

    clear(world)
    forced = await sync(world, full=True, force=True, env=env)
    assert forced.outcomes == {"offboard": {"ok": 2}}
    assert not RESTART_KINDS & set(graph_kinds(world))
    assert groups_read_one_by_one(world) == [ids[3]]
    assert edges(world.store) == await fresh_edges(world, tmp_path, env)
    clear(world)
    assert_read(await sync(world, env=env), "delta")
    assert_no_change_cycle(world)
