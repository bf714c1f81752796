"""Teams numbers as the phone source, end to end: `syncd sync` and `syncd status` against both emulators.

Assertions read what SmartCommunicator received and what the commands printed. The cycle's rules for Teams
numbers (permissions, numbers vanishing) are tested in-process in tests/cycle/test_teams_numbers.py.
"""

from __future__ import annotations

from tests.e2e.conftest import World


def use_teams(world: World, chain: str = '["teams", "businessPhones"]') -> None:
    text = world.config.read_text()
    world.config.write_text(
        text.replace("retry_delay_s = 0\n", f"retry_delay_s = 0\nphone_source = {chain}\n")
    )


def test_a_changed_teams_number_patches_the_agent_and_a_moved_source_writes_nothing(world: World) -> None:
    use_teams(world)
    ada = world.add_user("ada", "+1 415 555 0100")
    bob = world.add_user("bob", "+1 415 555 0101")
    cy = world.add_user("cy", "+1 415 555 0102")
    world.graph.assign_number("+14155550150", ada)
    world.graph.assign_number("+14155550102", cy)  # the same number as in businessPhones

    first = world.run("sync", "--json")
    assert first.code == 0, first.stderr
    assert first.json()["phone_sources"] == {"teams": 2, "businessPhones": 1}
    assert world.agents() == {
        ada: ("+14155550150", "ada@contoso.com"),
        bob: ("+14155550101", "bob@contoso.com"),
        cy: ("+14155550102", "cy@contoso.com"),
    }
    status = world.run("status")
    assert "Agents' numbers from: businessPhones 1, teams 2" in status.stdout

    # Ada gets a new Teams number: exactly one PATCH with it.
    world.graph.unassign_number("+14155550150")
    world.graph.assign_number("+14155550160", ada)
    # Cy loses the Teams assignment; businessPhones holds the same number: nothing to send.
    world.graph.unassign_number("+14155550102")
    world.smartcomm.clear_requests()
    second = world.run("sync", "--json")
    assert second.code == 0, second.stderr
    assert world.writes() == [("PATCH", f"/{ada}", {"phone_number": "+14155550160"})]
    assert second.json()["phone_sources"] == {"businessPhones": 2, "teams": 1}
    status = world.run("status", "--json")
    assert status.json()["phone_sources"] == {"businessPhones": 2, "teams": 1}

    # Ada's Teams number goes away: the fallback number is pushed. (Bob gets his businessPhones number in
    # Teams too, which changes no agent: the tenant's last Teams number vanishing would stop the cycle.)
    world.graph.assign_number("+14155550101", bob)
    world.graph.unassign_number("+14155550160")
    world.smartcomm.clear_requests()
    third = world.run("sync")
    assert third.code == 0, third.stderr
    assert world.writes() == [("PATCH", f"/{ada}", {"phone_number": "+14155550100"})]
    assert "numbers from businessPhones 2, teams 1" in third.stdout
