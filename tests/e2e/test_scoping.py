"""Scoping through the real `syncd` command with the defaults a user gets (the default SQLite path
`data/syncd.db`, the default `[sync]` settings): `graph.exclude_group_ids` and `graph.filter` in `syncd sync`,
`syncd explain` and `syncd status`, a filtered attribute changed between two delta cycles, and the exit-2
errors of a filter that cannot be used.

Each test asserts what SmartCommunicator received, the exit code and what the command printed. The cases
(nesting, overlap, guards) are tested in-process in tests/cycle/test_scoping.py.
"""

from __future__ import annotations

import re

from tests.e2e.conftest import World

FILTER = "employeeType eq 'Employee' and usageLocation in ('US', 'CA')"


def with_defaults(world: World, scope: str) -> None:
    """The config file without a database URL or [sync] settings (the defaults), with `scope` in [graph]."""
    text = world.config.read_text()
    text = re.sub(r"^\[database\]\nurl = .*\n", "", text, flags=re.M)
    text = re.sub(r"^\[sync\]\n(?:[a-z_]+ = .*\n)*", "", text, flags=re.M)
    world.config.write_text(text.replace("retry_delay_s = 0\n", f"retry_delay_s = 0\n{scope}\n"))


def section(output: str, title: str) -> str:
    start = output.index(f"\n{title}") + 1
    end = output.find("\n\n", start)
    return output[start : end if end != -1 else None]


def test_excluded_groups_and_the_filter_through_the_command_with_the_defaults(world: World) -> None:
    managers = world.graph.add_group(display_name="Managers")
    world.graph.add_member(world.group, managers)  # nested in the configured group, and excluded
    ada = world.add_user("ada", "+1 415 555 0301", employee_type="Employee", usage_location="US")
    bea = world.add_user("bea", "+1 415 555 0302", employee_type="Employee", usage_location="DE")
    cid = world.add_user(
        "cid", "+1 415 555 0303", group=managers, employee_type="Employee", usage_location="CA"
    )
    dan = world.add_user("dan", "+1 415 555 0304", employee_type="Contractor", usage_location="CA")
    with_defaults(world, f'exclude_group_ids = ["{managers}"]\nfilter = "{FILTER}"')

    first = world.run("sync", "--json")
    assert first.code == 0, first.stderr
    assert (world.config.parent / "data" / "syncd.db").is_file()  # the default database.url
    assert list(world.agents()) == [ada]
    assert first.json()["skipped"] == {"excluded_group": 1, "filtered": 2}

    explained = world.run("explain", "bea@contoso.com")
    assert explained.code == 0, explained.stderr
    failed = "usageLocation in ('US', 'CA') is false: usageLocation is 'DE'"
    assert section(explained.stdout, "Filter (graph.filter)") == (
        f"Filter (graph.filter)\n  expression        {FILTER}\n  result            fails: {failed}"
    )
    assert f"  verdict           skipped: filtered (graph.filter: {failed})" in explained.stdout

    explained = world.run("explain", cid)
    assert (
        "  excluded through 1 of 1 excluded group(s) (graph.exclude_group_ids):\n"
        f"    Managers ({managers}) > cid@contoso.com\n"
    ) in explained.stdout
    assert f"skipped: excluded_group (member of excluded group Managers ({managers}))" in explained.stdout

    status = world.run("status", "--json")
    assert status.json()["skipped"] == {"excluded_group": 1, "filtered": 2}

    # bea moves to Canada and dan becomes an employee: the next (delta) cycle sees both.
    world.graph.update_user(bea, usage_location="CA")
    world.graph.update_user(dan, employee_type="Employee")
    world.smartcomm.clear_requests()
    second = world.run("sync")
    assert second.code == 0, second.stderr
    assert "graph      read the changes only (delta)" in second.stdout
    assert sorted(world.agents()) == sorted([ada, bea, dan])
    assert [method for method, _, _ in world.writes()] == ["POST", "POST"]


def test_a_filter_that_cannot_be_used_exits_2_naming_the_key_and_the_column(world: World) -> None:
    with_defaults(world, "filter = \"department equals 'Support'\"")
    result = world.run("sync")
    assert result.code == 2
    assert (
        'graph.filter: syntax error at column 12: expected "eq", "ne", "in" or "/", found \'equals\''
        in result.stderr
    )
    assert "Traceback" not in result.stderr + result.stdout
    unknown = world.run("sync", env={"SYNCD_GRAPH__FILTER": "dept eq 'Support'"})
    assert unknown.code == 2
    assert "graph.filter: unknown attribute 'dept' at column 1; the known attributes are accountEnabled" in (
        unknown.stderr
    )
    assert "onPremisesExtensionAttributes/extensionAttribute1..15" in unknown.stderr
    assert world.writes() == []
