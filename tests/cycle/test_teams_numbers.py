"""Teams numbers as the phone source, in-process against both emulators (tests/e2e/test_teams_numbers.py).

Assertions read what SmartCommunicator received, the cycle's result and the store's status document.
"""

from __future__ import annotations

from syncd.emulators.graph import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, GRAPH_ROLES
from tests.cycle.conftest import World, expect, stopped_by


def use_teams(world: World, chain: str = '["teams", "businessPhones"]') -> None:
    text = world.config.read_text()
    world.config.write_text(
        text.replace("retry_delay_s = 0\n", f"retry_delay_s = 0\nphone_source = {chain}\n")
    )


async def test_a_changed_teams_number_patches_the_agent_and_a_moved_source_writes_nothing(
    world: World,
) -> None:
    use_teams(world)
    ada = world.add_user("ada", "+1 415 555 0100")
    bob = world.add_user("bob", "+1 415 555 0101")
    cy = world.add_user("cy", "+1 415 555 0102")
    world.graph.assign_number("+14155550150", ada)
    world.graph.assign_number("+14155550102", cy)  # the same number as in businessPhones

    first = expect(await world.cycle())
    assert first.phone_sources == {"teams": 2, "businessPhones": 1}
    assert world.agents() == {
        ada: ("+14155550150", "ada@contoso.com"),
        bob: ("+14155550101", "bob@contoso.com"),
        cy: ("+14155550102", "cy@contoso.com"),
    }
    assert world.status()["phone_sources"] == {"businessPhones": 1, "teams": 2}

    # Ada gets a new Teams number: exactly one PATCH with it.
    world.graph.unassign_number("+14155550150")
    world.graph.assign_number("+14155550160", ada)
    # Cy loses the Teams assignment; businessPhones holds the same number: nothing to send.
    world.graph.unassign_number("+14155550102")
    world.smartcomm.clear_requests()
    second = expect(await world.cycle())
    assert world.writes() == [("PATCH", f"/{ada}", {"phone_number": "+14155550160"})]
    assert second.phone_sources == {"businessPhones": 2, "teams": 1}
    assert world.status()["phone_sources"] == {"businessPhones": 2, "teams": 1}

    # Ada's Teams number goes away: the fallback number is pushed. (Bob gets his businessPhones number in
    # Teams too, which changes no agent: the tenant's last Teams number vanishing would stop the cycle.)
    world.graph.assign_number("+14155550101", bob)
    world.graph.unassign_number("+14155550160")
    world.smartcomm.clear_requests()
    third = expect(await world.cycle())
    assert world.writes() == [("PATCH", f"/{ada}", {"phone_number": "+14155550100"})]
    assert third.phone_sources == {"businessPhones": 2, "teams": 1}


async def test_a_missing_teams_permission_stops_the_cycle_with_exit_2_and_changes_nothing(
    world: World,
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 010{i}") for i in range(3)]
    expect(await world.cycle())
    use_teams(world, '"teams"')
    world.graph.register_app(DEFAULT_CLIENT_ID, secret=DEFAULT_CLIENT_SECRET, roles=GRAPH_ROLES)
    world.smartcomm.clear_requests()
    result = expect(await world.cycle(), 2)
    assert "TeamsTelephoneNumber.Read.All" in str(result.error)
    assert world.writes() == []
    assert sorted(world.agents()) == sorted(ids)


async def test_teams_numbers_vanishing_stop_the_cycle_instead_of_renumbering_everyone(world: World) -> None:
    use_teams(world)
    ids = [world.add_user(f"user{i}", f"+1 415 555 010{i}") for i in range(3)]
    for i, user_id in enumerate(ids):
        world.graph.assign_number(f"+1415555020{i}", user_id)
    expect(await world.cycle())
    assert {phone for phone, _ in world.agents().values()} == {f"+1415555020{i}" for i in range(3)}

    # Graph answers 200 with no assignment at all (an outage, a re-provisioning): no write, exit 3.
    for i in range(3):
        world.graph.unassign_number(f"+1415555020{i}")
    world.smartcomm.clear_requests()
    stopped = expect(await world.cycle(), 3)
    assert stopped_by(stopped) == "teams_numbers"
    assert world.writes() == []

    # The admin confirms: --force renumbers from businessPhones.
    expect(await world.cycle(force=True))
    assert sorted(str(body) for _, _, body in world.writes()) == [
        str({"phone_number": f"+1415555010{i}"}) for i in range(3)
    ]
