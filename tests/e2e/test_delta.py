"""Incremental `syncd sync` cycles on Graph delta queries, as a user runs them against both emulators.

The first incremental cycle reads the groups in full and starts tracking (nested groups, an initial groups
delta round, a users delta link); later ones read only what changed: one groups delta request per
configured group and one users delta request, never a transitiveMembers page. What the delta cycles do
(changes found, structural changes, expired links, guards, retries) is tested in-process in
tests/cycle/test_delta.py; here stay the case that runs through the real command with a user's defaults and
the one that needs the process (kill -9).

Each test asserts what the emulators received: which Graph requests (from the Graph emulator's request
log: the Graph API only, logins excluded) and which writes SmartCommunicator got, plus the `graph_read`
and `graph_read_reason` keys of `syncd sync --json`. The tests marked with a `backend` parameter run on
SQLite and on PostgreSQL (skipped unless SYNCD_TEST_POSTGRES_URL is set, see tests/postgres.py).
"""

from __future__ import annotations

import re
import signal
from collections import Counter

import pytest

from syncd.emulators.smartcomm import RecordedRequest as SmartCommRequest
from tests.e2e.conftest import CONCURRENCY, World
from tests.e2e.test_daemon import wait_for
from tests.observed import assert_no_change_cycle, graph_api, kind, option

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
"""Overrides conftest's `backend` fixture for one test: it runs on both databases."""


# --- what Graph received -----------------------------------------------------------------------------


def agents_list_reads(world: World) -> list[SmartCommRequest]:
    """GETs of SmartCommunicator's whole agents list (a full cycle's remote read)."""
    return [r for r in world.smartcomm.requests if r.method == "GET" and r.path.endswith("/agents")]


# --- running syncd -----------------------------------------------------------------------------------


def sync(world: World, *args: str, code: int = 0, env: dict[str, str] | None = None) -> dict[str, object]:
    """`syncd sync --json [args]`; checks the exit code and returns the report."""
    result = world.run("sync", "--json", *args, env=env)
    assert result.code == code, (
        f"exit {result.code}\nstdout: {result.stdout}\nstderr: {result.stderr[-3000:]}"
    )
    return result.json()


def assert_read(report: dict[str, object], read: str, reason: str | None = None) -> None:
    assert report["graph_read"] == read, report
    if read == "delta":
        assert report["graph_read_reason"] is None, report
    else:
        assert isinstance(report["graph_read_reason"], str), report
        if reason is not None:
            assert reason in report["graph_read_reason"].lower(), report


def clear(world: World) -> None:
    world.graph.clear_requests()
    world.smartcomm.clear_requests()


def start_tracking(world: World, env: dict[str, str] | None = None) -> dict[str, object]:
    """The first real cycle: a full read that starts tracking; both request logs are cleared after it."""
    report = sync(world, env=env)
    assert_read(report, "full", "no delta state")
    clear(world)
    return report


def seed(world: World, count: int, *, start: int = 0, group: str | None = None) -> list[str]:
    return [
        world.add_user(f"user{i}", f"+1 415 555 {i:04d}", group=group) for i in range(start, start + count)
    ]


def nest(world: World, parent: str, name: str) -> str:
    """A new group, made a direct member of `parent`."""
    group = world.graph.add_group(display_name=name)
    world.graph.add_member(parent, group)
    return group


# --- through the real command ------------------------------------------------------------------------


@BOTH
def test_first_cycle_reads_in_full_and_starts_tracking_then_no_change_cycles_send_two_requests(
    world: World,
) -> None:
    direct = seed(world, 2)
    nested = nest(world, world.group, "Sales")
    deep = seed(world, 1, start=2, group=nested)

    first = sync(world)
    assert_read(first, "full", "no delta state")
    assert first["outcomes"] == {"onboard": {"ok": 3}}
    requests = graph_api(world)
    kinds = Counter(kind(r) for r in requests)
    assert kinds["members"] >= 1
    [nested_read] = [r for r in requests if kind(r) == "nested"]
    assert nested_read.path.startswith(f"/v1.0/groups/{world.group}/transitiveMembers/")
    assert option(nested_read, "select") == "id"
    [groups_start] = [r for r in requests if kind(r) == "groups_delta_start"]
    assert set(re.findall(r"id eq '([^']+)'", option(groups_start, "filter") or "")) == {world.group, nested}
    assert "members" in (option(groups_start, "select") or "").split(",")
    [users_latest] = [r for r in requests if kind(r) == "users_delta_latest"]
    assert {"userPrincipalName", "businessPhones", "accountEnabled"} <= set(
        (option(users_latest, "select") or "").split(",")
    )
    assert sorted(world.agents()) == sorted([*direct, *deep])

    for _ in range(2):  # the links advance: the third cycle is as cheap as the second
        clear(world)
        report = sync(world)
        assert_read(report, "delta")
        assert_no_change_cycle(world)
        assert world.writes() == []
        assert agents_list_reads(world) == []
        assert report["planned"] == {"onboard": 0, "update": 0, "offboard": 0, "relink": 0}


def test_a_delta_cycle_killed_mid_apply_is_completed_by_the_next(world: World) -> None:
    seed(world, 2)
    start_tracking(world)
    newcomers = seed(world, 12, start=10)
    world.hold_writes("POST")  # the first 4 onboardings are applied, their answers held back
    process = world.start("sync")
    wait_for(lambda: world.held("POST") == CONCURRENCY, what="the first writes")
    process.send_signal(signal.SIGKILL)  # with 4 writes applied and unanswered, and 8 never sent
    process.communicate(timeout=10)
    assert len(set(newcomers) & set(world.agents())) == CONCURRENCY

    report = sync(world)
    assert_read(report, "delta")  # the killed cycle stored no link: its changes are read again
    assert set(newcomers) <= set(world.agents())
    applied = [
        r.body["user_object_id"]  # type: ignore[index]
        for r in world.smartcomm.requests
        if r.method == "POST" and r.path.endswith("/agents") and r.applied
    ]
    assert sorted(applied) == sorted(newcomers)  # each onboarded exactly once
