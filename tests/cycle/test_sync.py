"""Sync cycles as `syncd sync` runs them, in-process against both emulators (from tests/e2e/test_sync.py).

Each test asserts what SmartCommunicator received (the emulator's request log and agents) and the cycle's
result (exit code, counts, stop reasons). Every test runs twice: with SQLite and with PostgreSQL (a schema of
its own; skipped unless SYNCD_TEST_POSTGRES_URL is set, see tests/postgres.py).
"""

from __future__ import annotations

import pytest

from syncd.core.model import Action
from syncd.emulators.smartcomm import ScriptedFault
from tests.cycle.conftest import World, expect, stopped_by

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides tests/cycle/conftest.py's: every test here runs on both databases."""
    return str(request.param)


def seed(world: World, count: int = 5) -> list[str]:
    return [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(count)]


async def test_initial_sync_onboards_everyone_in_scope(world: World) -> None:
    ids = seed(world, 5)
    world.add_user("nophone", "")
    result = expect(await world.cycle())
    assert result.planned == {"onboard": 5, "update": 0, "offboard": 0, "relink": 0}
    assert result.outcomes == {"onboard": {"ok": 5}}
    assert result.skipped == {"no_phone": 1}
    assert sorted(world.agents()) == sorted(ids)
    assert world.agents()[ids[3]] == ("+14155550003", "user3@contoso.com")
    posts = world.writes()
    assert sorted(body["user_object_id"] for _, _, body in posts) == sorted(ids)  # type: ignore[index]
    assert all(body["tenant_id"] == TENANT for _, _, body in posts)  # type: ignore[index]


async def test_a_cycle_reports_the_cpu_and_wall_time_of_each_phase(world: World) -> None:
    seed(world, 3)
    result = expect(await world.cycle())
    phases = ["read", "plan", "apply"]
    assert list(result.phase_cpu_s) == phases
    assert list(result.phase_wall_s) == phases
    assert all(seconds >= 0 for seconds in [*result.phase_cpu_s.values(), *result.phase_wall_s.values()])
    # The phases are consecutive parts of the cycle: together no longer than it.
    assert sum(result.phase_wall_s.values()) <= result.duration_s
    document = result.to_json()
    assert document["phase_wall_s"] == result.phase_wall_s
    assert document["phase_cpu_s"] == result.phase_cpu_s


async def test_second_sync_sends_exactly_the_changes_and_a_third_sends_nothing(world: World) -> None:
    ids = seed(world, 5)
    expect(await world.cycle())
    world.smartcomm.clear_requests()

    newcomer = world.add_user("newcomer", "+1 415 555 0100")
    world.graph.remove_member(world.group, ids[0])
    world.graph.update_user(ids[1], business_phones=["+1 415 555 0199"])
    world.graph.update_user(ids[2], upn="renamed@contoso.com")
    expect(await world.cycle())
    assert sorted(world.writes(), key=str) == sorted(
        [
            (
                "POST",
                "/",
                {
                    "user_object_id": newcomer,
                    "tenant_id": TENANT,
                    "phone_number": "+14155550100",
                    "upn": "newcomer@contoso.com",
                },
            ),
            ("DELETE", f"/{ids[0]}", None),
            ("PATCH", f"/{ids[1]}", {"phone_number": "+14155550199"}),
            ("PATCH", f"/{ids[2]}", {"upn": "renamed@contoso.com"}),
        ],
        key=str,
    )

    world.smartcomm.clear_requests()
    world.graph.clear_requests()
    third = expect(await world.cycle())
    assert world.writes() == []
    # Graph reported no change since the second cycle: nobody was compared, nothing read but the deltas.
    assert third.graph_read == "delta"
    assert third.unchanged == 0
    assert not [r for r in world.graph.requests if "transitiveMembers" in r.path]


async def test_an_existing_agent_is_adopted_not_duplicated(world: World) -> None:
    [oid] = seed(world, 1)
    world.smartcomm.add_agent(
        user_object_id=oid, tenant_id=TENANT, phone_number="+14155550000", upn="old@x.com"
    )
    result = expect(await world.cycle())
    assert result.outcomes == {"onboard": {"adopted": 1}}
    assert [m for m, _, _ in world.writes()] == ["POST", "PATCH"]
    assert world.writes()[1][2] == {"upn": "user0@contoso.com"}
    assert world.agents() == {oid: ("+14155550000", "user0@contoso.com")}


async def test_a_number_conflict_fails_only_that_user(world: World) -> None:
    ids = seed(world, 3)
    world.smartcomm.add_agent(
        user_object_id="e2f19e0a-0490-41f4-8509-44a3390ae0b6", tenant_id=TENANT, phone_number="+14155550001"
    )
    result = expect(await world.cycle(), 1)
    assert result.outcomes == {"onboard": {"failed": 1, "ok": 2}}
    [failure] = result.failures
    assert failure.object_id == ids[1]
    assert failure.category == "conflict"
    assert "TN is already registered with a different Azure Object ID" in failure.error
    assert {ids[0], ids[2]} <= set(world.agents())
    # What `syncd status` shows: the conflicted user needs attention, with the service's reason.
    [attention] = world.status()["attention"]
    assert attention["object_id"] == ids[1]
    assert "TN is already registered with a different Azure Object ID" in attention["detail"]
    # The conflicted user waits for the backoff: the next cycle does not hammer the API.
    world.smartcomm.clear_requests()
    again = await world.cycle()
    assert again.deferred == 1
    assert world.writes() == []


async def test_deletion_guard_stops_and_force_proceeds(world: World) -> None:
    ids = seed(world, 12)
    expect(await world.cycle())
    for oid in ids[:11]:
        world.graph.remove_member(world.group, oid)
    world.smartcomm.clear_requests()
    stopped = expect(await world.cycle(), 3)
    assert stopped_by(stopped) == "max_offboard"
    assert world.writes() == []
    assert len(world.agents()) == 12
    expect(await world.cycle(force=True))
    assert [m for m, _, _ in world.writes()].count("DELETE") == 11
    assert list(world.agents()) == [ids[11]]


async def test_a_group_that_reads_empty_stops_the_cycle(world: World) -> None:
    ids = seed(world, 2)
    expect(await world.cycle())
    for oid in ids:
        world.graph.remove_member(world.group, oid)
    world.smartcomm.clear_requests()
    result = expect(await world.cycle(), 3)
    assert stopped_by(result) == "empty_group"
    assert world.writes() == []


async def test_dry_run_reads_both_sides_and_writes_nothing(world: World) -> None:
    ids = seed(world, 3)
    result = expect(await world.cycle(dry_run=True))
    assert world.writes() == []
    assert world.agents() == {}
    # The changes a dry run lists (`+ onboard  <id>` in the command's output).
    assert sorted(c.object_id for c in result.changes if c.action is Action.ONBOARD) == sorted(ids)
    full = await world.cycle(dry_run=True, full=True)
    assert full.planned == {"onboard": 3, "update": 0, "offboard": 0, "relink": 0}
    assert any(r.method == "GET" for r in world.smartcomm.requests)
    assert world.writes() == []


async def test_user_syncs_one_person_by_upn_or_object_id(world: World) -> None:
    ids = seed(world, 3)
    expect(await world.cycle(user="USER1@contoso.com"))
    assert list(world.agents()) == [ids[1]]
    expect(await world.cycle(user=ids[2]))
    assert sorted(world.agents()) == sorted(ids[1:])
    unknown = expect(await world.cycle(user="nobody@contoso.com"), 2)
    assert "nobody@contoso.com" in str(unknown.error)


async def test_full_sync_repairs_drift(world: World) -> None:
    ids = seed(world, 3)
    expect(await world.cycle())
    world.smartcomm.reset()  # the remote lost everything behind our back
    world.smartcomm.add_agent(user_object_id=ids[0], tenant_id=TENANT, phone_number="+14155550000")
    incremental = await world.cycle()
    assert incremental.planned == {"onboard": 0, "update": 0, "offboard": 0, "relink": 0}
    full = expect(await world.cycle(full=True))
    # ids[0] is there with the right number; the list carries no UPN, so its missing UPN cannot be seen.
    assert full.planned == {"onboard": 2, "update": 0, "offboard": 0, "relink": 0}
    assert sorted(world.agents()) == sorted(ids)
    world.smartcomm.clear_requests()
    expect(await world.cycle(full=True))
    assert world.writes() == []


async def test_offboarding_an_agent_already_gone_is_done(world: World) -> None:
    ids = seed(world, 2)
    expect(await world.cycle())
    world.smartcomm.reset()  # the agent vanished remotely
    world.smartcomm.add_agent(user_object_id=ids[1], tenant_id=TENANT, phone_number="+14155550001")
    world.graph.remove_member(world.group, ids[0])
    result = expect(await world.cycle())
    assert result.outcomes == {"offboard": {"already_gone": 1}}
    assert [(m, p) for m, p, _ in world.writes()] == [("DELETE", f"/{ids[0]}")]
    assert world.status()["members"] == {"active": 1, "offboarded": 1}


async def test_full_sync_reports_agents_it_never_managed_and_leaves_them(world: World) -> None:
    seed(world, 1)
    stranger = "0b5c1f5e-2a36-4d3c-9a6a-3c2a1c2b0d11"
    world.smartcomm.add_agent(user_object_id=stranger, tenant_id=TENANT, phone_number="+14155559999")
    result = expect(await world.cycle(full=True))
    assert result.unmanaged == 1
    assert stranger in world.agents()
    assert all(path != f"/{stranger}" for _, path, _ in world.writes())


async def test_a_failed_graph_read_offboards_nobody(world: World) -> None:
    seed(world, 3)
    expect(await world.cycle())
    world.smartcomm.clear_requests()
    # Every Graph read fails: the delta reads of this incremental cycle as much as a full read would.
    world.graph.inject(ScriptedFault(kind="status", status=503, path_contains="/v1.0/", times=100))
    result = expect(await world.cycle(env={"SYNCD_GRAPH__MAX_RETRIES": "1"}), 1)
    assert "503" in str(result.error)
    assert world.writes() == []
    assert len(world.agents()) == 3


async def test_a_write_whose_answer_is_lost_stays_pending_and_is_settled_by_reading_back(
    world: World,
) -> None:
    oid, _ = seed(world, 2)  # two: leaving the only member in scope would trip the empty-group guard
    # Applied, then every answer lost: the outcome is unknown.
    world.smartcomm.inject(ScriptedFault(kind="drop_after", method="POST", path_contains="/agents", times=20))
    first = expect(await world.cycle(env={"SYNCD_SMARTCOMM__MAX_ATTEMPTS": "2"}), 1)
    assert first.outcomes == {"onboard": {"pending": 2}}
    assert world.status()["members"] == {"pending": 2}
    world.smartcomm.clear_requests()
    expect(await world.cycle())
    assert world.writes() == []  # read back, adopted: no second onboarding
    assert world.status()["members"] == {"active": 2}
    world.graph.update_user(oid, account_enabled=False)
    expect(await world.cycle())
    assert [(m, p) for m, p, _ in world.writes()] == [("DELETE", f"/{oid}")]
    assert oid not in world.agents()
