"""A daemon's full cycles keep the records they loaded while the members table's change counter stays put
(`Engine._load_recorded`, `Store.members_version`), on both backends, in-process against both emulators.

What matters is that a kept record never hides a write: the cycle's own writes and a row changed behind the
daemon's back (another replica, an administrator's SQL) both make the next full cycle load the records
again, and it plans from the rows as they are.
"""

from __future__ import annotations

import structlog
from sqlalchemy import text

from tests.cycle.conftest import World, expect
from tests.cycle.test_delta_full import BOTH


async def full_cycle(world: World) -> tuple[dict[str, int], bool]:
    """One full cycle in the world's engine (a daemon's next one): its counts and whether it kept the records
    the last one loaded."""
    with structlog.testing.capture_logs() as logs:
        result = expect(await world.cycle(full=True))
    return result.counts(), any(event["event"] == "store.records_reused" for event in logs)


@BOTH
async def test_records_are_kept_while_nobody_writes_members_and_loaded_again_after_any_write(
    world: World,
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(3)]
    onboarded, kept = await full_cycle(world)
    assert (onboarded["onboard_ok"], kept) == (3, False)
    world.smartcomm.clear_requests()
    after_writes, kept = await full_cycle(world)  # the first cycle's writes moved the counter on
    assert (after_writes["unchanged"], kept) == (3, False)
    again, kept = await full_cycle(world)
    assert (again["unchanged"], kept) == (3, True)
    assert world.writes() == []

    # Another writer forgets a person (their agent stays): the next full cycle must not plan from the
    # records it kept, which still hold them; it finds the agent, takes it on again and records it.
    version = world.store.members_version()
    with world.store.engine.begin() as connection:
        connection.execute(text("DELETE FROM members WHERE object_id = :id"), {"id": ids[0]})
    assert world.store.members_version() == version + 1
    world.smartcomm.clear_requests()
    adopted, kept = await full_cycle(world)
    assert kept is False
    assert (adopted["unchanged"], adopted["planned_update"]) == (2, 1)
    assert world.writes() == [("PATCH", f"/{ids[0]}", {"upn": "user0@contoso.com"})]
    assert world.store.load_recorded()[ids[0]].agent is not None

    # A row updated behind our back, the same: here another writer recorded the agent as gone.
    await full_cycle(world)
    assert (await full_cycle(world))[1] is True
    with world.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE members SET status = 'offboarded', agent_active = :no WHERE object_id = :id"),
            {"no": False, "id": ids[1]},
        )
    world.smartcomm.clear_requests()
    taken_on, kept = await full_cycle(world)
    assert kept is False
    assert taken_on["planned_update"] == 1
    assert world.writes() == [("PATCH", f"/{ids[1]}", {"upn": "user1@contoso.com"})]
    assert world.store.load_recorded()[ids[1]].agent is not None


async def test_a_dry_run_keeps_the_records_and_a_new_engine_loads_them(world: World) -> None:
    [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(2)]
    await full_cycle(world)
    await full_cycle(world)
    with structlog.testing.capture_logs() as logs:
        expect(await world.cycle(full=True, dry_run=True))
    assert any(event["event"] == "store.records_reused" for event in logs)
    await world.aclose()  # a fresh process keeps nothing
    assert (await full_cycle(world))[1] is False
