"""Scope beyond "member of a group, with a phone", in-process against both emulators: excluded groups
(`graph.exclude_group_ids`, nested and overlapping, in full and delta cycles) and `graph.filter` (what Graph
is asked to `$select`, who is filtered with which clause, a changed attribute in a delta cycle, a changed
filter under the guards), and where the two new out-of-scope reasons show (the cycle's counts, the status
document and page, the metrics).

Each test asserts what the emulators received: the Graph requests (`tests/observed.py`) and the writes
SmartCommunicator got.
"""

from __future__ import annotations

import time

import pytest

from syncd.core.model import MemberStatus, SkipReason
from syncd.cycle.engine import CycleResult
from syncd.service.metrics import Metrics
from syncd.service.statuspage import DaemonState, StatusData, render_status_page
from tests.cycle.conftest import World, expect, stopped_by
from tests.observed import graph_api, kind, option

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
BASE_SELECT = ["id", "userPrincipalName", "accountEnabled", "onPremisesImmutableId", "businessPhones"]
STAFF = "employeeType eq 'Employee' and usageLocation in ('US', 'CA')"
BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
"""Overrides conftest's `backend` fixture for one test: it runs on both databases."""


async def sync(
    world: World, env: dict[str, str], *, full: bool = False, force: bool = False, code: int = 0
) -> CycleResult:
    return expect(await world.cycle(full=full, force=force, env=env), code)


def clear(world: World) -> None:
    world.graph.clear_requests()
    world.smartcomm.clear_requests()


def posted(world: World) -> list[str]:
    return sorted(str(body["user_object_id"]) for method, _, body in world.writes() if method == "POST")  # type: ignore[index]


def deleted(world: World) -> list[str]:
    return sorted(path.strip("/") for method, path, _ in world.writes() if method == "DELETE")


def recorded(world: World, object_id: str) -> tuple[MemberStatus, SkipReason | None, str | None]:
    record = world.store.load_recorded({object_id})[object_id]
    return record.status, record.skip_reason, record.detail


# --- excluded groups -----------------------------------------------------------------------------------


@pytest.fixture
def org(world: World) -> dict[str, str]:
    """The configured group S (world.group) holds agents directly and through the nested group T; the
    excluded group M (managers) is nested in S as well (overlap) and holds L (team leads) in turn; the
    excluded group X is outside S. People: a1 (S), a2 (T), m1 (S and M), l1 (L only: in S's tree through
    M), x1 (T and X), o1 (X only: in no configured group)."""
    graph = world.graph
    t = graph.add_group(display_name="Support tier 2")
    m = graph.add_group(display_name="Managers")
    lead = graph.add_group(display_name="Team leads")
    x = graph.add_group(display_name="No agents")
    graph.add_member(world.group, t)
    graph.add_member(world.group, m)
    graph.add_member(m, lead)
    people = {
        "a1": world.add_user("a1", "+1 415 555 0101"),
        "a2": world.add_user("a2", "+1 415 555 0102", group=t),
        "m1": world.add_user("m1", "+1 415 555 0103"),
        "l1": world.add_user("l1", "+1 415 555 0104", group=lead),
        "x1": world.add_user("x1", "+1 415 555 0105", group=t),
        "o1": world.add_user("o1", "+1 415 555 0106", group=x),
    }
    graph.add_member(m, people["m1"])
    graph.add_member(x, people["x1"])
    return people | {"T": t, "M": m, "L": lead, "X": x}


def excluding(org: dict[str, str]) -> dict[str, str]:
    return {"SYNCD_GRAPH__EXCLUDE_GROUP_IDS": f"{org['M']},{org['X']}"}


async def test_members_of_excluded_groups_are_never_agents_nested_or_overlapping(
    world: World, org: dict[str, str]
) -> None:
    report = await sync(world, excluding(org))
    assert report.graph_read == "full"
    assert posted(world) == sorted([org["a1"], org["a2"]])
    assert report.skipped == {"excluded_group": 3}
    assert recorded(world, org["m1"]) == (
        MemberStatus.SKIPPED,
        SkipReason.EXCLUDED_GROUP,
        f"member of excluded group {org['M']}",
    )
    assert recorded(world, org["l1"])[2] == f"member of excluded group {org['M']}"  # through M > L
    assert recorded(world, org["x1"])[2] == f"member of excluded group {org['X']}"
    assert org["o1"] not in world.store.load_recorded({org["o1"]})  # in no configured group at all
    # Graph was asked for the excluded groups' user members (their IDs only) and tracks their trees too.
    requests = graph_api(world)
    excluded_reads = [r for r in requests if kind(r) == "members" and option(r, "select") == "id"]
    assert sorted(r.path.split("/")[3] for r in excluded_reads) == sorted([org["M"], org["X"]])
    nested = sorted(r.path.split("/")[3] for r in requests if kind(r) == "nested")
    assert nested == sorted([world.group, org["M"], org["X"]])
    assert world.status()["skipped"] == {"excluded_group": 3}


@BOTH
async def test_delta_cycles_track_the_excluded_groups_like_the_configured_ones(
    world: World, org: dict[str, str]
) -> None:
    env = excluding(org)
    await sync(world, env)
    clear(world)
    graph = world.graph
    graph.add_member(org["L"], org["a2"])  # a2 joins a group nested in an excluded one
    graph.remove_member(org["M"], org["m1"])  # m1 is no longer a manager (still in S directly)
    graph.remove_member(org["X"], org["x1"])  # x1 leaves the other excluded group
    graph.add_member(org["X"], org["a1"])  # ... and a1 joins it
    report = await sync(world, env)
    assert report.graph_read == "delta", report.graph_read_reason
    kinds = sorted(kind(r) for r in graph_api(world))
    # One groups delta request per tracked tree (S, M, X), one users delta; no member pages.
    assert [k for k in kinds if not k.startswith("user:")] == ["groups_delta"] * 3 + ["users_delta"]
    assert deleted(world) == sorted([org["a1"], org["a2"]])
    assert posted(world) == sorted([org["m1"], org["x1"]])
    assert report.skipped == {"excluded_group": 2}
    assert recorded(world, org["a1"])[0] is MemberStatus.OFFBOARDED
    # A full cycle reads the same scope: nothing to repair; it records why the offboarded are out of scope.
    clear(world)
    full = await sync(world, env, full=True)
    assert world.writes() == []
    assert full.skipped == {"excluded_group": 3}  # a1, a2 and l1
    assert recorded(world, org["a1"]) == (
        MemberStatus.SKIPPED,
        SkipReason.EXCLUDED_GROUP,
        f"member of excluded group {org['X']}",
    )


async def test_a_group_nested_into_an_excluded_group_reads_everything_again(
    world: World, org: dict[str, str]
) -> None:
    env = excluding(org)
    await sync(world, env)
    clear(world)
    newcomers = world.graph.add_group(display_name="New managers")
    world.graph.add_member(newcomers, org["a1"])
    world.graph.add_member(org["M"], newcomers)  # the excluded tree itself changes
    report = await sync(world, env)
    assert report.graph_read == "full"
    assert "nested group changed" in (report.graph_read_reason or "")
    assert deleted(world) == [org["a1"]]


async def test_excluding_a_group_later_reads_everything_and_offboards_its_members(
    world: World, org: dict[str, str]
) -> None:
    await sync(world, {})
    assert len(world.agents()) == 5  # everyone in S's tree
    clear(world)
    report = await sync(world, {"SYNCD_GRAPH__EXCLUDE_GROUP_IDS": org["M"]})
    assert report.graph_read == "full"
    assert "configuration changed" in (report.graph_read_reason or "")
    assert deleted(world) == sorted([org["m1"], org["l1"]])


async def test_a_missing_excluded_group_is_a_configuration_error(world: World) -> None:
    await sync(world, {})
    missing = "6f1c9a52-2b1e-4c1d-9e55-0d3b1a2c4e11"
    report = await sync(world, {"SYNCD_GRAPH__EXCLUDE_GROUP_IDS": missing}, code=2)
    assert "graph.exclude_group_ids" in (report.error or "")
    assert missing in (report.error or "")
    assert world.writes() == []


# --- graph.filter --------------------------------------------------------------------------------------


@pytest.fixture
def staff(world: World) -> dict[str, str]:
    return {
        "us": world.add_user("us", "+1 415 555 0201", employee_type="Employee", usage_location="US"),
        "ca": world.add_user("ca", "+1 415 555 0202", employee_type="employee", usage_location="ca"),
        "de": world.add_user("de", "+1 415 555 0203", employee_type="Employee", usage_location="DE"),
        "contractor": world.add_user(
            "contractor", "+1 415 555 0204", employee_type="Contractor", usage_location="US"
        ),
        "unset": world.add_user("unset", "+1 415 555 0205"),
    }


async def test_graph_is_asked_to_select_only_what_the_filter_names(
    world: World, staff: dict[str, str]
) -> None:
    await sync(world, {"SYNCD_GRAPH__FILTER": STAFF})
    requests = graph_api(world)
    member_pages = [r for r in requests if kind(r) == "members"]
    users_latest = [r for r in requests if kind(r) == "users_delta_latest"]
    assert member_pages
    assert users_latest
    for request in [*member_pages, *users_latest]:
        assert (option(request, "select") or "").split(",") == [*BASE_SELECT, "employeeType", "usageLocation"]
    # The filter is evaluated by syncd: Graph is never sent a $filter for users.
    assert not [r for r in requests if kind(r) in ("members", "users_delta_latest") and option(r, "filter")]


async def test_without_a_filter_no_profile_attribute_is_selected(world: World, staff: dict[str, str]) -> None:
    await sync(world, {})
    for request in graph_api(world):
        if kind(request) in ("members", "users_delta_latest"):
            assert (option(request, "select") or "").split(",") == BASE_SELECT


async def test_an_extension_attribute_filter_selects_the_extension_attributes_object(world: World) -> None:
    keep = world.add_user("keep", "+1 415 555 0211")
    drop = world.add_user("drop", "+1 415 555 0212", extension_attributes={"extensionAttribute7": "NoAgent"})
    expression = "onPremisesExtensionAttributes/extensionAttribute7 ne 'noagent'"
    report = await sync(world, {"SYNCD_GRAPH__FILTER": expression})
    assert posted(world) == [keep]
    assert report.skipped == {"filtered": 1}
    pages = [r for r in graph_api(world) if kind(r) == "members"]
    assert [(option(r, "select") or "").split(",") for r in pages] == [
        [*BASE_SELECT, "onPremisesExtensionAttributes"]
    ]
    assert recorded(world, drop)[2] == (
        "graph.filter: onPremisesExtensionAttributes/extensionAttribute7 ne 'noagent' is false: "
        "onPremisesExtensionAttributes/extensionAttribute7 is 'NoAgent'"
    )


async def test_filtered_users_are_recorded_with_the_clause_that_failed(
    world: World, staff: dict[str, str]
) -> None:
    report = await sync(world, {"SYNCD_GRAPH__FILTER": STAFF})
    assert posted(world) == sorted([staff["us"], staff["ca"]])  # strings compare case-insensitively
    assert report.skipped == {"filtered": 3}
    assert recorded(world, staff["de"]) == (
        MemberStatus.SKIPPED,
        SkipReason.FILTERED,
        "graph.filter: usageLocation in ('US', 'CA') is false: usageLocation is 'DE'",
    )
    assert recorded(world, staff["contractor"])[2] == (
        "graph.filter: employeeType eq 'Employee' is false: employeeType is 'Contractor'"
    )
    assert (
        recorded(world, staff["unset"])[2]
        == "graph.filter: employeeType eq 'Employee' is false: employeeType is null"
    )


@BOTH
async def test_a_changed_filtered_attribute_is_evaluated_again_by_the_next_delta_cycle(
    world: World, staff: dict[str, str]
) -> None:
    env = {"SYNCD_GRAPH__FILTER": STAFF}
    await sync(world, env)
    clear(world)
    world.graph.update_user(staff["us"], usage_location="GB")  # leaves scope
    world.graph.update_user(staff["contractor"], employee_type="Employee")  # joins it
    world.graph.update_user(staff["de"], city="Berlin")  # an attribute the filter does not read
    report = await sync(world, env)
    assert report.graph_read == "delta", report.graph_read_reason
    assert deleted(world) == [staff["us"]]
    assert posted(world) == [staff["contractor"]]
    assert [k for k in sorted(kind(r) for r in graph_api(world)) if not k.startswith("user:")] == [
        "groups_delta",
        "users_delta",
    ]
    # The users delta reported only the two whose selected attributes changed: one of them is filtered now.
    assert report.skipped == {"filtered": 1}


async def test_a_changed_filter_reads_everything_again(world: World, staff: dict[str, str]) -> None:
    await sync(world, {"SYNCD_GRAPH__FILTER": STAFF})
    clear(world)
    report = await sync(world, {"SYNCD_GRAPH__FILTER": "usageLocation in ('US', 'CA', 'DE')"})
    assert report.graph_read == "full"
    assert "configuration changed" in (report.graph_read_reason or "")
    assert posted(world) == sorted([staff["de"], staff["contractor"]])


# --- a filter change under the guards --------------------------------------------------------------------


async def test_a_filter_that_drops_everyone_stops_like_an_emptied_group(
    world: World, staff: dict[str, str]
) -> None:
    await sync(world, {})
    assert len(world.agents()) == 5
    clear(world)
    nobody = {"SYNCD_GRAPH__FILTER": "department eq 'Nobody'"}
    report = await sync(world, nobody, code=3)
    assert stopped_by(report) == "empty_group"
    assert report.planned["offboard"] == 5
    assert world.writes() == []
    # The stop names the setting that changed since the last cycle.
    assert "graph.filter" in (report.stopped_by.message if report.stopped_by else "")
    # max_offboard stops it as well, when the group still has someone in scope.
    one_left = {"SYNCD_GRAPH__FILTER": "usageLocation eq 'DE'", "SYNCD_SYNC__MAX_OFFBOARD": "3"}
    report = await sync(world, one_left, code=3)
    assert stopped_by(report) == "max_offboard"
    message = report.stopped_by.message if report.stopped_by else ""
    assert "4 offboardings exceed sync.max_offboard = 3" in message
    assert "graph.filter" in message
    assert "usageLocation eq 'DE'" in message
    assert world.writes() == []
    # An admin who means it passes the guard once.
    await sync(world, one_left, force=True)
    assert len(deleted(world)) == 4
    assert list(world.agents()) == [staff["de"]]


async def test_a_filter_dropping_no_more_than_max_offboard_goes_through(
    world: World, staff: dict[str, str]
) -> None:
    await sync(world, {})
    clear(world)
    report = await sync(world, {"SYNCD_GRAPH__FILTER": STAFF, "SYNCD_SYNC__MAX_OFFBOARD": "3"})
    assert stopped_by(report) is None
    assert deleted(world) == sorted([staff["de"], staff["contractor"], staff["unset"]])


# --- where the reasons show ------------------------------------------------------------------------------


async def test_the_new_reasons_show_in_the_counts_the_status_page_and_the_metrics(
    world: World, org: dict[str, str]
) -> None:
    world.graph.update_user(org["a2"], department="Sales")
    env = excluding(org) | {"SYNCD_GRAPH__FILTER": "department ne 'Sales'"}
    report = await sync(world, env)
    assert report.skipped == {"excluded_group": 3, "filtered": 1}
    assert report.to_json()["skipped"] == {"excluded_group": 3, "filtered": 1}
    document = world.status()
    assert document["skipped"] == {"excluded_group": 3, "filtered": 1}
    page = render_status_page(
        StatusData.from_document(document, DaemonState(started_at=time.time(), skipped=document["skipped"])),
        now=time.time(),
    )
    assert 'data-reason="excluded_group" data-count="3"' in page
    assert 'data-reason="filtered" data-count="1"' in page
    metrics = Metrics()
    metrics.observe(report, "ok", world.store.count_by_status())
    exposed = metrics.render().decode()
    assert 'syncd_skipped_users{reason="excluded_group"} 3.0' in exposed
    assert 'syncd_skipped_users{reason="filtered"} 1.0' in exposed
