"""What production would refuse, through the real `syncd` command and daemon: Entra login and Graph on two
hosts (a configuration that mixes them up fails naming the key), a tenant with more groups to track than one
groups delta `$filter` may name (50), a delta link that aged out (410) met by a scheduled cycle, and a
SmartCommunicator account that takes only registered numbers, in JSON.

The emulators behave as the real services by default; each test asserts what they received.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from syncd.config.loader import load_settings
from syncd.emulators.graph import DELTA_LINK_LIFETIME_S, MAX_FILTER_IDS
from tests.e2e.conftest import World
from tests.e2e.test_daemon import Daemon, wait_for
from tests.observed import graph_api, kind, option


class Clock:
    """The Graph emulator's clock: the real time, plus what the test adds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(world: World) -> Iterator[Clock]:
    clock = Clock()
    world.graph.clock = clock
    yield clock
    world.graph.clock = time.time


def test_swapped_login_and_graph_hosts_exit_2_naming_the_key(world: World) -> None:
    world.add_user("a", "+1 415 555 0001")
    graph = load_settings(world.config, {}).require_graph()
    swapped = {
        "SYNCD_GRAPH__AUTHORITY_HOST": graph.graph_origin,
        "SYNCD_GRAPH__BASE_URL": f"{graph.authority_host}/v1.0",
    }
    result = world.run("sync", env=swapped)
    assert result.code == 2, result.stderr
    assert "graph.authority_host" in result.stderr
    assert "Traceback" not in result.stderr
    assert graph_api(world) == []
    assert world.writes() == []


def test_more_groups_than_one_delta_filter_takes_are_tracked_in_chunks_of_50(world: World) -> None:
    nested = [world.graph.add_group(display_name=f"Team {i}") for i in range(60)]
    world.graph.add_members(world.group, nested)
    first = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}", group=nested[i * 15]) for i in range(4)]
    started = world.run("sync", "--json")
    assert started.code == 0, started.stderr
    assert started.json()["graph_read"] == "full"
    assert sorted(world.agents()) == sorted(first)

    starts = [r for r in graph_api(world) if kind(r) == "groups_delta_start"]
    filtered = [re.findall(r"id eq '([^']+)'", option(r, "filter") or "") for r in starts]
    assert [len(ids) for ids in filtered] == [MAX_FILTER_IDS, 61 - MAX_FILTER_IDS]  # 61 tracked groups
    assert sorted(i for ids in filtered for i in ids) == sorted([world.group, *nested])
    assert {r.status for r in starts} == {200}

    world.graph.clear_requests()
    late = world.add_user("late", "+1 415 555 0100", group=nested[-1])  # a group of the second chunk
    early = world.add_user("early", "+1 415 555 0101", group=nested[0])
    result = world.run("sync", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["graph_read"] == "delta"
    assert sorted(world.agents()) == sorted([*first, late, early])
    kinds = sorted(kind(r) for r in graph_api(world) if not kind(r).startswith("user:"))
    assert kinds == ["groups_delta", "groups_delta", "users_delta"]
    assert {r.status for r in graph_api(world)} == {200}


def test_a_delta_link_that_aged_out_is_read_in_full_by_the_next_scheduled_cycle(
    world: World, daemons: list[Daemon], clock: Clock
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(2)]
    daemons.append(daemon := Daemon(world, interval="1s"))
    wait_for(lambda: sorted(world.agents()) == sorted(ids), what="the first cycle")
    wait_for(
        lambda: any(kind(r) == "groups_delta" and r.status == 200 for r in graph_api(world)),
        what="a scheduled delta cycle",
    )
    clock.offset += DELTA_LINK_LIFETIME_S + 1  # Graph keeps delta links 7 days
    mark = max(r.seq for r in world.graph.requests)
    newcomer = world.add_user("newcomer", "+1 415 555 0100")

    wait_for(lambda: newcomer in world.agents(), timeout=30, what="the newcomer")
    since = [r for r in graph_api(world) if r.seq > mark]
    gone = [r for r in since if kind(r) in ("groups_delta", "users_delta") and r.status == 410]
    assert gone, [(kind(r), r.status) for r in since]
    after = [kind(r) for r in since if r.seq > gone[0].seq]
    assert "members" in after  # the fallback read everything
    assert "groups_delta_start" in after  # and tracking began again
    restarted = max(r.seq for r in since if kind(r) == "groups_delta_start")
    wait_for(
        lambda: any(
            kind(r) == "groups_delta" and r.status == 200 and r.seq > restarted for r in graph_api(world)
        ),
        what="delta cycles on the new links",
    )
    code, stderr = daemon.stop()
    assert code == 0, stderr
    fallbacks = [line for line in stderr.splitlines() if '"event": "graph.delta_fallback"' in line]
    assert fallbacks
    assert "a delta link expired" in fallbacks[0]


def test_smartcommunicator_takes_only_registered_numbers_and_json_by_default(world: World) -> None:
    registered = world.add_user("registered", "+1 415 555 0001")
    unregistered = world.add_user("unregistered", "+1 415 555 0002")
    world.registry_follows_directory = False
    world.smartcomm.unregister_numbers(["+14155550002"])
    result = world.run("sync", "--json")
    assert result.code == 1, result.stderr
    report = result.json()
    assert report["outcomes"] == {"onboard": {"ok": 1, "failed": 1}}
    assert list(world.agents()) == [registered]
    [failure] = [r for r in world.smartcomm.requests if r.status == 400]
    assert isinstance(failure.body, dict)
    assert failure.body["user_object_id"] == unregistered
    # Every request syncd sent said JSON and took JSON: none was refused 415 or 406.
    statuses = [r.status for r in world.smartcomm.requests]
    assert 200 in statuses
    assert not {415, 406} & set(statuses), statuses
