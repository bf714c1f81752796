"""Guards on mass changes other than offboarding, in-process against both emulators: `sync.max_update` at its
boundary and with `--force`, the percentage forms of the limits (of the agents we manage, read from the
store even in a delta cycle), and a setting that shapes desired state named by the first cycle after it
changed (a `graph.default_region` that would renumber everyone, stopped by max_update).

Each test checks what SmartCommunicator received (the emulator's request log) and the cycle's result, as
`syncd sync --json` would print it. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import io

import pytest
from markupsafe import escape

from syncd.cycle.engine import CycleResult
from syncd.reports.summary import print_result
from syncd.service.statuspage import DaemonState, StatusData, render_status_page
from tests.cycle.conftest import World, expect, stopped_by


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides tests/cycle/conftest.py's: every test here runs on both databases."""
    return str(request.param)


NORWAY = {"SYNCD_GRAPH__DEFAULT_REGION": "NO"}
"""Numbers written "22 12 34 5N" are Norwegian (+47...) with this region and Danish (+45...) with DK."""


def seed(world: World, count: int) -> list[str]:
    return [world.add_user(f"user{i}", f"+47 22 12 34 {i:02d}") for i in range(count)]


def renumber(world: World, ids: list[str], prefix: str) -> None:
    for i, oid in enumerate(ids):
        world.graph.update_user(oid, business_phones=[f"{prefix} {i:02d}"])


def patches(world: World) -> list[str]:
    return [path.lstrip("/") for method, path, _ in world.writes() if method == "PATCH"]


async def test_max_update_passes_at_its_limit_stops_one_above_and_force_passes(world: World) -> None:
    ids = seed(world, 6)
    expect(await world.cycle())
    renumber(world, ids, "+47 22 99 34")
    world.smartcomm.clear_requests()

    stopped = expect(await world.cycle(env={"SYNCD_SYNC__MAX_UPDATE": "5"}), 3)
    assert stopped_by(stopped) == "max_update"
    assert world.writes() == []  # nothing at all was sent
    report = stopped.to_json()
    assert (report["stopped_by"], report["planned"]["update"]) == ("max_update", 6)
    reason = str(report["stop_reason"])
    assert reason.startswith("6 updates exceed sync.max_update = 5; nothing was changed.")
    assert "Changed fields: phone number 6, UPN 0, consistency GUID 0." in reason
    assert reason.count(": phone number +4722123400 -> +4722993400") == 1  # the first of three examples
    assert len(reason.split("For example: ")[1].split(". Check")[0].split("; ")) == 3

    # Exactly the limit passes; the links did not move on after the stop, so the same six are planned.
    passed = expect(await world.cycle(env={"SYNCD_SYNC__MAX_UPDATE": "6"}))
    assert passed.outcomes == {"update": {"ok": 6}}
    assert sorted(patches(world)) == sorted(ids)
    assert {phone for phone, _ in world.agents().values()} == {f"+47229934{i:02d}" for i in range(6)}

    renumber(world, ids, "+47 22 77 34")
    world.smartcomm.clear_requests()
    forced = expect(await world.cycle(force=True, env={"SYNCD_SYNC__MAX_UPDATE": "5"}))
    assert stopped_by(forced) is None
    assert sorted(patches(world)) == sorted(ids)


async def test_a_percentage_is_of_the_agents_we_manage_even_in_a_delta_cycle(world: World) -> None:
    ids = seed(world, 10)
    expect(await world.cycle())
    renumber(world, ids[:5], "+47 22 99 34")
    world.smartcomm.clear_requests()
    # A delta cycle plans the five changed people only; the 50% is of the ten agents we manage: 5 pass.
    passed = expect(await world.cycle(env={"SYNCD_SYNC__MAX_UPDATE": "50%"}))
    assert passed.graph_read == "delta"
    assert sorted(patches(world)) == sorted(ids[:5])

    renumber(world, ids[:6], "+47 22 88 34")
    world.smartcomm.clear_requests()
    stopped = expect(await world.cycle(env={"SYNCD_SYNC__MAX_UPDATE": "50%"}), 3)
    assert stopped_by(stopped) == "max_update"
    assert 'sync.max_update = "50%" (5 of the 10 managed agents)' in str(stopped.to_json()["stop_reason"])
    assert world.writes() == []
    # Both forms: the smaller wins (3 of [3, "50%"] is below 50% of 10).
    both = expect(await world.cycle(env={"SYNCD_SYNC__MAX_UPDATE": '[3, "90%"]'}), 3)
    assert 'sync.max_update = [3, "90%"] (3: the smaller of 3 and 90% of the 10 managed agents)' in str(
        both.to_json()["stop_reason"]
    )
    assert world.writes() == []
    expect(await world.cycle(env={"SYNCD_SYNC__MAX_UPDATE": '[6, "90%"]'}))
    assert sorted(patches(world)) == sorted(ids[:6])


async def test_max_offboard_as_a_percentage(world: World) -> None:
    ids = seed(world, 10)
    expect(await world.cycle())
    for oid in ids[:3]:
        world.graph.remove_member(world.group, oid)
    world.smartcomm.clear_requests()
    stopped = expect(await world.cycle(env={"SYNCD_SYNC__MAX_OFFBOARD": "20%"}), 3)
    assert stopped_by(stopped) == "max_offboard"
    assert '3 offboardings exceed sync.max_offboard = "20%" (2 of the 10 managed agents)' in str(
        stopped.to_json()["stop_reason"]
    )
    assert world.writes() == []
    expect(await world.cycle(env={"SYNCD_SYNC__MAX_OFFBOARD": "30%"}))
    assert sorted(path.lstrip("/") for m, path, _ in world.writes() if m == "DELETE") == sorted(ids[:3])


async def test_a_default_region_that_would_renumber_everyone_is_stopped_and_named(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"22 12 34 {i:02d}") for i in range(5)]
    # National numbers: which country they are in depends on graph.default_region. The account has both
    # forms registered (tests/registry.py registers only numbers that are valid without a region).
    world.smartcomm.register_numbers([f"+{cc}221234{i:02d}" for cc in ("47", "45") for i in range(5)])
    onboarded = expect(await world.cycle(env=NORWAY | {"SYNCD_SYNC__MAX_UPDATE": "3"}))
    assert onboarded.settings_changed == ()  # the first cycle has nothing to compare with
    assert {phone for phone, _ in world.agents().values()} == {f"+47221234{i:02d}" for i in range(5)}
    world.smartcomm.clear_requests()

    denmark = {"SYNCD_GRAPH__DEFAULT_REGION": "DK", "SYNCD_SYNC__MAX_UPDATE": "3"}
    dry = expect(await world.cycle(dry_run=True, env=denmark), 3)  # a dry run shows the stop too
    assert stopped_by(dry) == "max_update"
    assert [change.key for change in dry.settings_changed] == ["graph.default_region"]
    stopped = expect(await world.cycle(env=denmark), 3)
    assert stopped_by(stopped) == "max_update"
    assert world.writes() == []
    report = stopped.to_json()
    assert report["settings_changed"] == [{"key": "graph.default_region", "from": "NO", "to": "DK"}]
    reason = str(report["stop_reason"])
    assert reason.startswith("5 updates exceed sync.max_update = 3; nothing was changed.")
    assert "Changed fields: phone number 5, UPN 0, consistency GUID 0." in reason
    assert (
        'Settings that shape desired state changed since the last cycle: graph.default_region "NO" -> "DK"'
        in (reason)
    )
    # The summary `syncd sync` prints, `syncd status` and the status page say so too.
    printed = summary(stopped)
    assert 'settings   changed since the last cycle: graph.default_region "NO" -> "DK"' in printed
    assert "STOPPED by the max_update guard: 5 updates exceed sync.max_update = 3" in printed
    assert world.status()["runs"][0]["settings_changed"] == report["settings_changed"]
    assert 'settings changed since the last cycle: graph.default_region "NO" -> "DK"' in world.status_text()
    page = render_status_page(
        StatusData.from_document(world.status(), DaemonState(started_at=0.0)), now=world.clock()
    )
    assert '<p id="settings-changed">Run ' in page
    assert str(escape('graph.default_region "NO" -> "DK"')) in page  # as the template escapes it

    # A guard stop applied nothing: the next cycle still names the change, and --force applies it.
    forced = expect(await world.cycle(force=True, env=denmark))
    assert [change.key for change in forced.settings_changed] == ["graph.default_region"]
    assert sorted(patches(world)) == sorted(ids)
    assert {phone for phone, _ in world.agents().values()} == {f"+45221234{i:02d}" for i in range(5)}
    after = expect(await world.cycle(env=denmark))
    assert after.settings_changed == ()
    assert world.status()["runs"][0]["settings_changed"] == []


async def test_a_changed_setting_is_named_by_a_cycle_no_guard_stops(world: World) -> None:
    seed(world, 2)
    expect(await world.cycle())
    one_user = expect(
        await world.cycle(
            user="user0@contoso.com", env={"SYNCD_GRAPH__PHONE_SOURCE": "mobilePhone,businessPhones"}
        )
    )
    assert [change.key for change in one_user.settings_changed] == ["graph.phone_source"]
    changed = expect(await world.cycle(env={"SYNCD_GRAPH__PHONE_SOURCE": "mobilePhone,businessPhones"}))
    assert [change.to_json() for change in changed.settings_changed] == [
        {"key": "graph.phone_source", "from": ["businessPhones"], "to": ["mobilePhone", "businessPhones"]}
    ]
    assert 'settings   changed since the last cycle: graph.phone_source ["businessPhones"] -> ' in summary(
        changed
    )
    assert (
        expect(
            await world.cycle(env={"SYNCD_GRAPH__PHONE_SOURCE": "mobilePhone,businessPhones"})
        ).settings_changed
        == ()
    )


def summary(result: CycleResult) -> str:
    """What `syncd sync` prints for `result`."""
    out = io.StringIO()
    print_result(result, out)
    return out.getvalue()
