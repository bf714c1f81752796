"""Incremental sync cycles on Graph delta queries, in-process against both emulators (moved from
tests/e2e/test_delta.py).

The first incremental cycle reads the groups in full and starts tracking (nested groups, an initial groups
delta round, a users delta link); later ones read only what changed: one groups delta request per
configured group and one users delta request, never a transitiveMembers page. Structural changes (a group
joining or leaving a configured group's tree) and expired delta links fall back to a full read.

Each test asserts what the emulators received: which Graph requests (from the Graph emulator's request
log: the Graph API only, logins excluded) and which writes SmartCommunicator got, plus the cycle result's
`graph_read` and `graph_read_reason` (the keys of `syncd sync --json`). The tests marked with a `backend`
parameter run on SQLite and on PostgreSQL (skipped unless SYNCD_TEST_POSTGRES_URL is set, see
tests/postgres.py).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections import Counter

import pytest

from syncd.core.model import Action
from syncd.cycle.engine import CycleResult
from syncd.emulators.smartcomm import Faults, ScriptedFault
from syncd.emulators.smartcomm import RecordedRequest as SmartCommRequest
from tests.cycle.conftest import World, expect, stopped_by
from tests.observed import assert_no_change_cycle, graph_api, kind, option

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
"""Overrides conftest's `backend` fixture for one test: it runs on both databases."""

FULL_KINDS = frozenset({"members", "nested", "groups_delta_start", "users_delta_latest"})
"""Request kinds only a full read (or the start of tracking) sends."""


# --- what Graph received -----------------------------------------------------------------------------


def graph_kinds(world: World) -> list[str]:
    return sorted(kind(r) for r in graph_api(world))


def assert_delta_only(world: World) -> list[str]:
    """The cycle read changes only: no transitiveMembers page, no new tracking; returns the kinds."""
    kinds = graph_kinds(world)
    assert not FULL_KINDS & set(kinds), kinds
    assert kinds.count("groups_delta") == 1, kinds  # one configured group: one groups delta request
    assert kinds.count("users_delta") == 1, kinds
    return kinds


def agents_list_reads(world: World) -> list[SmartCommRequest]:
    """GETs of SmartCommunicator's whole agents list (a full cycle's remote read)."""
    return [r for r in world.smartcomm.requests if r.method == "GET" and r.path.endswith("/agents")]


# --- running cycles ----------------------------------------------------------------------------------


async def sync(
    world: World,
    *,
    full: bool = False,
    dry_run: bool = False,
    force: bool = False,
    user: str | None = None,
    code: int = 0,
    env: dict[str, str] | None = None,
) -> CycleResult:
    """One cycle, as `syncd sync [--full] [--dry-run] [--force] [--user U]`; checks the exit code."""
    return expect(await world.cycle(full=full, dry_run=dry_run, force=force, user=user, env=env), code)


def assert_read(result: CycleResult, read: str, reason: str | None = None) -> None:
    report = result.to_json()
    assert result.graph_read == read, report
    if read == "delta":
        assert result.graph_read_reason is None, report
    else:
        assert isinstance(result.graph_read_reason, str), report
        if reason is not None:
            assert reason in result.graph_read_reason.lower(), report


def clear(world: World) -> None:
    world.graph.clear_requests()
    world.smartcomm.clear_requests()


async def start_tracking(world: World, env: dict[str, str] | None = None) -> CycleResult:
    """The first real cycle: a full read that starts tracking; both request logs are cleared after it."""
    report = await sync(world, env=env)
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


def outsider(world: World, name: str, phone: str) -> str:
    """A directory user in no group."""
    object_id = world.graph.add_user(upn=f"{name}@contoso.com", business_phones=[phone])
    world.users[f"{name}@contoso.com"] = object_id
    return object_id


def onboarded(object_id: str, phone: str, upn: str) -> tuple[str, str, object]:
    return (
        "POST",
        "/",
        {"user_object_id": object_id, "tenant_id": TENANT, "phone_number": phone, "upn": upn},
    )


def immutable_id(guid: str) -> str:
    """Entra's onPremisesImmutableId for a consistency GUID (base64 of its little-endian bytes)."""
    return base64.b64encode(uuid.UUID(guid).bytes_le).decode()


# --- starting and keeping up tracking ----------------------------------------------------------------


@BOTH
async def test_first_cycle_reads_in_full_and_starts_tracking_then_no_change_cycles_send_two_requests(
    world: World,
) -> None:
    direct = seed(world, 2)
    nested = nest(world, world.group, "Sales")
    deep = seed(world, 1, start=2, group=nested)

    first = await sync(world)
    assert_read(first, "full", "no delta state")
    assert first.outcomes == {"onboard": {"ok": 3}}
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
        report = await sync(world)
        assert_read(report, "delta")
        assert_no_change_cycle(world)
        assert world.writes() == []
        assert agents_list_reads(world) == []
        assert report.planned == {"onboard": 0, "update": 0, "offboard": 0, "relink": 0}


async def test_dry_run_and_single_user_cycles_store_no_delta_state(world: World) -> None:
    ids = seed(world, 3)
    assert_read(await sync(world, dry_run=True), "full")  # reads everything, tracks nothing
    assert world.writes() == []
    await sync(world, user=ids[0])
    assert [m for m, _, _ in world.writes()] == ["POST"]
    clear(world)
    report = await sync(world)
    assert_read(report, "full", "no delta state")
    assert "members" in graph_kinds(world)
    assert sorted(body["user_object_id"] for _, _, body in world.writes()) == sorted(ids[1:])  # type: ignore[index]
    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)


async def test_adding_a_configured_group_restarts_tracking_with_one_delta_request_per_group(
    world: World,
) -> None:
    seed(world, 2)
    await start_tracking(world)
    second = world.graph.add_group(display_name="Support")
    [support] = seed(world, 1, start=5, group=second)
    env = {"SYNCD_GRAPH__GROUP_IDS": f"{world.group},{second}"}
    report = await sync(world, env=env)
    assert_read(report, "full")
    assert world.writes() == [onboarded(support, "+14155550005", "user5@contoso.com")]
    clear(world)
    assert_read(await sync(world, env=env), "delta")
    assert_no_change_cycle(world, groups=2)
    assert world.writes() == []


async def test_a_member_of_two_configured_groups_leaves_only_with_the_last_one(world: World) -> None:
    second = world.graph.add_group(display_name="Support")
    env = {"SYNCD_GRAPH__GROUP_IDS": f"{world.group},{second}"}
    seed(world, 1)
    seed(world, 1, start=1, group=second)
    both = world.add_user("both", "+1 415 555 0100")
    world.graph.add_member(second, both)
    await start_tracking(world, env)

    world.graph.remove_member(world.group, both)
    assert_read(await sync(world, env=env), "delta")
    assert not FULL_KINDS & set(graph_kinds(world))
    assert world.writes() == []  # still in through Support
    world.graph.remove_member(second, both)
    clear(world)
    assert_read(await sync(world, env=env), "delta")
    kinds = graph_kinds(world)
    assert not FULL_KINDS & set(kinds), kinds
    assert (kinds.count("groups_delta"), kinds.count("users_delta")) == (2, 1), kinds
    assert world.writes() == [("DELETE", f"/{both}", None)]


async def test_a_changed_default_region_restarts_tracking(world: World) -> None:
    seed(world, 2)
    local = world.add_user("local", "020 7946 0018")  # a national number: valid in GB, not in US
    world.smartcomm.register_numbers(["+442079460018"])  # the registry takes it in E.164
    first = await start_tracking(world)
    assert first.skipped == {"invalid_phone": 1}

    gb = {"SYNCD_GRAPH__DEFAULT_REGION": "GB"}
    report = await sync(world, env=gb)
    # Nothing changed in the directory, so no delta would ever show this person's number changing.
    assert world.writes() == [onboarded(local, "+442079460018", "local@contoso.com")], report
    assert_read(report, "full")
    clear(world)
    assert_read(await sync(world, env=gb), "delta")
    assert_no_change_cycle(world)


async def test_a_changed_phone_source_restarts_tracking(world: World) -> None:
    ids = seed(world, 2)
    world.graph.update_user(ids[0], mobile_phone="+1 415 555 0900")
    await start_tracking(world)

    mobile_first = {"SYNCD_GRAPH__PHONE_SOURCE": "mobilePhone,businessPhones"}
    report = await sync(world, env=mobile_first)
    assert_read(report, "full")
    assert world.writes() == [("PATCH", f"/{ids[0]}", {"phone_number": "+14155550900"})]
    clear(world)
    assert_read(await sync(world, env=mobile_first), "delta")
    assert_no_change_cycle(world)
    world.graph.update_user(ids[1], mobile_phone="+1 415 555 0901")  # watched by the new links
    clear(world)
    assert_read(await sync(world, env=mobile_first), "delta")
    assert world.writes() == [("PATCH", f"/{ids[1]}", {"phone_number": "+14155550901"})]


# --- changes found by delta --------------------------------------------------------------------------


@BOTH
async def test_a_phone_change_sends_exactly_one_patch(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[1], business_phones=["+1 415 555 0199"])
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert world.writes() == [("PATCH", f"/{ids[1]}", {"phone_number": "+14155550199"})]
    assert report.outcomes == {"update": {"ok": 1}}
    assert world.agents()[ids[1]] == ("+14155550199", "user1@contoso.com")
    clear(world)
    await sync(world)
    assert_no_change_cycle(world)
    assert world.writes() == []


async def test_upn_and_consistency_guid_changes_patch_those_fields(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    guid = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38"
    world.graph.update_user(ids[0], upn="renamed@contoso.com")
    world.graph.update_user(ids[2], on_premises_immutable_id=immutable_id(guid))
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [
            ("PATCH", f"/{ids[0]}", {"upn": "renamed@contoso.com"}),
            ("PATCH", f"/{ids[2]}", {"consistency_id": guid}),
        ],
        key=str,
    )
    assert world.agents()[ids[0]] == ("+14155550000", "renamed@contoso.com")


async def test_users_added_to_the_top_group_are_onboarded(world: World) -> None:
    seed(world, 2)
    existing = outsider(world, "existing", "+1 415 555 0110")  # in the directory before tracking began
    await start_tracking(world)
    world.graph.add_member(world.group, existing)
    newcomer = world.add_user("newcomer", "+1 415 555 0111")  # created and added after
    report = await sync(world)
    assert_read(report, "delta")
    kinds = assert_delta_only(world)
    # Besides the two delta requests, only single users this cycle onboards may be read.
    assert set(kinds) - {"groups_delta", "users_delta"} <= {f"user:{existing}", f"user:{newcomer}"}
    assert sorted(world.writes(), key=str) == sorted(
        [
            onboarded(existing, "+14155550110", "existing@contoso.com"),
            onboarded(newcomer, "+14155550111", "newcomer@contoso.com"),
        ],
        key=str,
    )
    assert report.outcomes == {"onboard": {"ok": 2}}


async def test_users_added_anywhere_in_a_nested_tree_are_onboarded(world: World) -> None:
    seed(world, 1)
    sales = nest(world, world.group, "Sales")
    emea = nest(world, sales, "Sales EMEA")
    seed(world, 1, start=1, group=emea)
    existing = outsider(world, "existing", "+1 415 555 0120")
    await start_tracking(world)
    world.graph.add_member(emea, existing)  # two levels down
    newcomer = world.add_user("newcomer", "+1 415 555 0121", group=sales)
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [
            onboarded(existing, "+14155550120", "existing@contoso.com"),
            onboarded(newcomer, "+14155550121", "newcomer@contoso.com"),
        ],
        key=str,
    )


async def test_members_skipped_when_tracking_began_are_onboarded_when_they_come_into_scope(
    world: World,
) -> None:
    seed(world, 1)
    nophone = world.add_user("nophone", "")
    disabled = world.add_user("disabled", "+1 415 555 0130", account_enabled=False)
    first = await start_tracking(world)
    assert first.skipped == {"no_phone": 1, "disabled": 1}
    world.graph.update_user(nophone, business_phones=["+1 415 555 0131"])
    world.graph.update_user(disabled, account_enabled=True)
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [
            onboarded(nophone, "+14155550131", "nophone@contoso.com"),
            onboarded(disabled, "+14155550130", "disabled@contoso.com"),
        ],
        key=str,
    )


async def test_leaving_a_nested_group_while_still_a_direct_member_writes_nothing(world: World) -> None:
    ids = seed(world, 2)
    sales = nest(world, world.group, "Sales")
    world.graph.add_member(sales, ids[0])  # two paths: direct and through Sales
    await start_tracking(world)

    world.graph.remove_member(sales, ids[0])
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert world.writes() == []
    assert report.planned == {"onboard": 0, "update": 0, "offboard": 0, "relink": 0}

    # The other way round: out of the top group, still in through Sales.
    world.graph.add_member(sales, ids[1])
    world.graph.remove_member(world.group, ids[1])
    clear(world)
    assert_read(await sync(world), "delta")
    assert_delta_only(world)
    assert world.writes() == []
    assert sorted(world.agents()) == sorted(ids)


async def test_leaving_the_only_path_offboards(world: World) -> None:
    direct = seed(world, 2)
    sales = nest(world, world.group, "Sales")
    through_sales = seed(world, 2, start=2, group=sales)
    both = world.add_user("both", "+1 415 555 0140")
    world.graph.add_member(sales, both)
    await start_tracking(world)

    world.graph.remove_member(world.group, direct[0])
    world.graph.remove_member(sales, through_sales[0])
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [("DELETE", f"/{direct[0]}", None), ("DELETE", f"/{through_sales[0]}", None)], key=str
    )
    assert report.outcomes == {"offboard": {"ok": 2}}

    # The last of two paths gone: now it offboards.
    world.graph.remove_member(world.group, both)
    clear(world)
    assert_read(await sync(world), "delta")
    assert world.writes() == []  # still in through Sales
    world.graph.remove_member(sales, both)
    clear(world)
    assert_read(await sync(world), "delta")
    assert_delta_only(world)
    assert world.writes() == [("DELETE", f"/{both}", None)]
    assert sorted(world.agents()) == sorted([direct[1], through_sales[1]])


async def test_users_deleted_from_the_directory_are_offboarded(world: World) -> None:
    ids = seed(world, 3)
    sales = nest(world, world.group, "Sales")
    [nested] = seed(world, 1, start=3, group=sales)
    await start_tracking(world)
    world.graph.delete_user(ids[2])
    world.graph.delete_user(nested)
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [("DELETE", f"/{ids[2]}", None), ("DELETE", f"/{nested}", None)], key=str
    )
    assert sorted(world.agents()) == sorted(ids[:2])


async def test_disabled_users_and_removed_phones_are_offboarded(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[0], account_enabled=False)
    world.graph.update_user(ids[1], business_phones=[])
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [("DELETE", f"/{ids[0]}", None), ("DELETE", f"/{ids[1]}", None)], key=str
    )
    assert report.outcomes == {"offboard": {"ok": 2}}
    assert list(world.agents()) == [ids[2]]


async def test_changes_to_people_outside_the_groups_send_nothing(world: World) -> None:
    seed(world, 2)
    stranger = outsider(world, "stranger", "+1 415 555 0150")
    await start_tracking(world)
    world.graph.update_user(stranger, business_phones=["+1 415 555 0151"], upn="stranger2@contoso.com")
    outsider(world, "newhire", "+1 415 555 0152")  # new in the directory, in no group
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert world.writes() == []
    assert report.planned == {"onboard": 0, "update": 0, "offboard": 0, "relink": 0}
    assert stranger not in world.agents()


async def test_a_member_leaving_and_changing_at_once_is_only_offboarded(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[0], business_phones=["+1 415 555 0134"], upn="moved@contoso.com")
    world.graph.remove_member(world.group, ids[0])
    joining_disabled = outsider(world, "joiner", "+1 415 555 0135")
    world.graph.update_user(joining_disabled, account_enabled=False)
    world.graph.add_member(world.group, joining_disabled)
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert world.writes() == [("DELETE", f"/{ids[0]}", None)]
    assert report.skipped == {"disabled": 1}


async def test_a_member_added_out_of_scope_is_onboarded_when_they_come_into_scope(world: World) -> None:
    seed(world, 2)
    await start_tracking(world)
    nophone = world.add_user("nophone", "")
    disabled = world.add_user("disabled", "+1 415 555 0132", account_enabled=False)
    report = await sync(world)
    assert report.skipped == {"no_phone": 1, "disabled": 1}
    assert world.writes() == []

    world.graph.update_user(nophone, business_phones=["+1 415 555 0133"])
    world.graph.update_user(disabled, account_enabled=True)
    clear(world)
    assert_read(await sync(world), "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [
            onboarded(nophone, "+14155550133", "nophone@contoso.com"),
            onboarded(disabled, "+14155550132", "disabled@contoso.com"),
        ],
        key=str,
    )


async def test_changes_spanning_several_delta_pages_are_all_applied(world: World) -> None:
    world.graph.page_cap = 2  # every answer in pages of two (reset() restores it)
    ids = seed(world, 6)
    await start_tracking(world)
    for i, oid in enumerate(ids[:5]):
        world.graph.update_user(oid, business_phones=[f"+1 415 555 02{i:02d}"])
    newcomers = seed(world, 3, start=10)
    report = await sync(world)
    assert_read(report, "delta")
    kinds = graph_kinds(world)
    assert not FULL_KINDS & set(kinds), kinds
    assert {"groups_delta_page", "users_delta_page"} <= set(kinds), kinds
    assert sorted(world.writes(), key=str) == sorted(
        [("PATCH", f"/{oid}", {"phone_number": f"+141555502{i:02d}"}) for i, oid in enumerate(ids[:5])]
        + [
            onboarded(oid, f"+141555500{10 + i}", f"user{10 + i}@contoso.com")
            for i, oid in enumerate(newcomers)
        ],
        key=str,
    )
    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)
    assert world.writes() == []


async def test_a_former_member_is_an_outsider_until_they_rejoin(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.remove_member(world.group, ids[0])
    world.graph.remove_member(world.group, ids[1])
    world.graph.add_member(world.group, ids[1])  # out and back in between two cycles: no net change
    await sync(world)
    assert world.writes() == [("DELETE", f"/{ids[0]}", None)]

    world.graph.update_user(ids[0], business_phones=["+1 415 555 0109"])
    clear(world)
    assert_read(await sync(world), "delta")
    assert world.writes() == []  # no longer a member: their new number matters to nobody

    world.graph.add_member(world.group, ids[0])
    clear(world)
    assert_read(await sync(world), "delta")
    assert_delta_only(world)
    assert world.writes() == [onboarded(ids[0], "+14155550109", "user0@contoso.com")]
    assert sorted(world.agents()) == sorted(ids)


async def test_teams_numbers_as_a_source_read_in_full_every_cycle(world: World) -> None:
    text = world.config.read_text()
    world.config.write_text(
        text.replace("retry_delay_s = 0\n", 'retry_delay_s = 0\nphone_source = ["teams", "businessPhones"]\n')
    )
    ids = seed(world, 2)
    world.graph.assign_number("+14155550150", ids[0])
    assert_read(await sync(world), "full", "teams")
    assert world.agents()[ids[0]] == ("+14155550150", "user0@contoso.com")
    world.graph.unassign_number("+14155550150")  # Graph has no delta query for number assignments
    world.graph.assign_number("+14155550160", ids[0])
    clear(world)
    report = await sync(world)
    assert_read(report, "full", "teams")
    assert "members" in graph_kinds(world)
    assert world.writes() == [("PATCH", f"/{ids[0]}", {"phone_number": "+14155550160"})]


async def test_a_full_cycle_that_tracks_nothing_still_records_when_it_ran(world: World) -> None:
    text = world.config.read_text()
    world.config.write_text(
        text.replace("retry_delay_s = 0\n", 'retry_delay_s = 0\nphone_source = ["teams", "businessPhones"]\n')
    )
    seed(world, 1)
    assert_read(await sync(world, full=True), "full", "full cycle")
    # The daemon schedules the next full cycle from this value, whether or not the cycle tracks changes.
    assert world.store.get_value("last_full_cycle_at") is not None
    assert world.store.get_value("graph_delta") is None


# --- structural changes and expired links: full fallback ---------------------------------------------


async def test_a_nested_group_joining_the_tree_falls_back_to_a_full_read_and_is_tracked_after(
    world: World,
) -> None:
    seed(world, 2)
    support = world.graph.add_group(display_name="Support")  # outside the tree while tracking starts
    members = seed(world, 2, start=2, group=support)
    await start_tracking(world)

    world.graph.add_member(world.group, support)
    report = await sync(world)
    assert_read(report, "full", "nested group")
    assert "members" in graph_kinds(world)
    assert sorted(world.writes(), key=str) == sorted(
        [
            onboarded(members[0], "+14155550002", "user2@contoso.com"),
            onboarded(members[1], "+14155550003", "user3@contoso.com"),
        ],
        key=str,
    )

    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)
    assert world.writes() == []

    # Support is tracked now: someone joining it is seen by delta.
    newcomer = world.add_user("newcomer", "+1 415 555 0160", group=support)
    clear(world)
    assert_read(await sync(world), "delta")
    assert_delta_only(world)
    assert world.writes() == [onboarded(newcomer, "+14155550160", "newcomer@contoso.com")]


async def test_a_nested_group_leaving_the_tree_offboards_its_members_within_max_offboard(
    world: World,
) -> None:
    direct = seed(world, 1)
    sales = nest(world, world.group, "Sales")
    leaving = seed(world, 3, start=1, group=sales)
    both = world.add_user("both", "+1 415 555 0170")
    world.graph.add_member(sales, both)
    env = {"SYNCD_SYNC__MAX_OFFBOARD": "2"}
    await start_tracking(world, env)

    world.graph.remove_member(world.group, sales)
    stopped = await sync(world, code=3, env=env)
    assert_read(stopped, "full", "nested group")
    assert stopped_by(stopped) == "max_offboard"
    assert stopped.planned == {"onboard": 0, "update": 0, "offboard": 3, "relink": 0}
    assert world.writes() == []

    forced = await sync(world, force=True, env=env)
    assert forced.outcomes == {"offboard": {"ok": 3}}
    assert sorted(world.writes(), key=str) == sorted(
        [("DELETE", f"/{oid}", None) for oid in leaving], key=str
    )
    assert sorted(world.agents()) == sorted([*direct, both])

    # Sales is out of the tree: its changes no longer matter, and nothing is read in full.
    world.add_user("late", "+1 415 555 0171", group=sales)
    clear(world)
    assert_read(await sync(world, env=env), "delta")
    assert_delta_only(world)
    assert world.writes() == []


async def test_structural_changes_deeper_in_the_tree_fall_back_to_a_full_read(world: World) -> None:
    seed(world, 1)
    sales = nest(world, world.group, "Sales")
    seed(world, 1, start=1, group=sales)
    emea = world.graph.add_group(display_name="Sales EMEA")  # outside the tree while tracking starts
    [in_emea] = seed(world, 1, start=2, group=emea)
    await start_tracking(world)

    world.graph.add_member(sales, emea)  # a group joins a nested group, not the configured one
    joined = await sync(world)
    assert_read(joined, "full", "nested group")
    assert world.writes() == [onboarded(in_emea, "+14155550002", "user2@contoso.com")]

    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)

    world.graph.delete_group(emea)  # deleted: it leaves Sales
    clear(world)
    left = await sync(world)
    assert_read(left, "full", "nested group")
    assert world.writes() == [("DELETE", f"/{in_emea}", None)]
    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)
    assert world.writes() == []


@BOTH
async def test_expired_delta_links_fall_back_to_a_full_read_then_delta_again(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[0], business_phones=["+1 415 555 0180"])
    world.graph.remove_member(world.group, ids[1])
    newcomer = world.add_user("newcomer", "+1 415 555 0181")
    world.graph.expire_delta_links()

    report = await sync(world)
    assert_read(report, "full", "expired")
    assert any(kind(r) in {"groups_delta", "users_delta"} and r.status == 410 for r in graph_api(world))
    assert "members" in graph_kinds(world)
    assert sorted(world.writes(), key=str) == sorted(
        [
            ("PATCH", f"/{ids[0]}", {"phone_number": "+14155550180"}),
            ("DELETE", f"/{ids[1]}", None),
            onboarded(newcomer, "+14155550181", "newcomer@contoso.com"),
        ],
        key=str,
    )

    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)
    world.graph.update_user(ids[2], business_phones=["+1 415 555 0182"])
    clear(world)
    assert_read(await sync(world), "delta")
    assert world.writes() == [("PATCH", f"/{ids[2]}", {"phone_number": "+14155550182"})]


async def test_full_reads_everything_and_restarts_tracking(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[0], business_phones=["+1 415 555 0190"])
    world.graph.expire_delta_links()  # a full cycle whose links expired starts tracking again

    report = await sync(world, full=True)
    assert_read(report, "full", "full cycle (tracking restarted: a delta link expired")
    kinds = graph_kinds(world)
    assert "members" in kinds
    assert set(kinds) >= FULL_KINDS, kinds
    assert len(agents_list_reads(world)) >= 1
    assert world.writes() == [("PATCH", f"/{ids[0]}", {"phone_number": "+14155550190"})]

    # Tracking restarted from the full cycle: the next incremental cycle reads deltas, none expired.
    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)
    assert world.writes() == []

    # And --full again reads everything with live links (following them: tests/cycle/test_delta_full.py).
    clear(world)
    again = await sync(world, full=True)
    assert again.graph_read_reason == "full cycle"
    assert "members" in graph_kinds(world)
    assert len(agents_list_reads(world)) >= 1


async def test_a_full_read_lagging_its_delta_round_converges_on_the_next_cycle(world: World) -> None:
    """Graph's member read is an advanced query (`ConsistencyLevel: eventual`), which lags writes; its delta
    queries do not. A full cycle whose read misses a joiner and still shows a leaver, while the delta round it
    starts tracking with already counts both, leaves them to the next cycle, which plans them from the
    delta's memberships: no later delta would ever report those changes again. (Its links expired, so it
    starts tracking; one that follows its links: tests/cycle/test_delta_full.py.)"""
    world.graph.clock = world.clock
    world.graph.eventual_lag_s = 30.0
    stays, leaver = seed(world, 2)
    world.clock.advance(60)  # the index has caught up with the seeding
    await start_tracking(world)
    world.graph.remove_member(world.group, leaver)
    joiner = world.add_user("joiner", "+1 415 555 0100")
    world.graph.expire_delta_links()

    raced = await sync(world, full=True)  # at once: the read sees the groups as they were 30 s ago
    assert_read(raced, "full", "tracking restarted")
    assert set(graph_kinds(world)) >= FULL_KINDS
    assert world.writes() == []
    assert sorted(world.agents()) == sorted([stays, leaver])

    clear(world)
    caught_up = await sync(world)  # at once again: the lag has not passed, the delta's memberships decide
    assert_read(caught_up, "delta")
    assert sorted(world.writes(), key=str) == sorted(
        [onboarded(joiner, "+14155550100", "joiner@contoso.com"), ("DELETE", f"/{leaver}", None)], key=str
    )
    assert sorted(world.agents()) == sorted([stays, joiner])
    clear(world)
    assert_read(await sync(world), "delta")
    assert_no_change_cycle(world)
    assert world.writes() == []


# --- guards, dry runs, failures and retries lose no change ----------------------------------------------


@BOTH
async def test_a_guard_stop_does_not_advance_the_links_and_force_applies(world: World) -> None:
    ids = seed(world, 4)
    env = {"SYNCD_SYNC__MAX_OFFBOARD": "1"}
    await start_tracking(world, env)
    world.graph.remove_member(world.group, ids[0])
    world.graph.remove_member(world.group, ids[1])

    for _ in range(2):  # stopped twice: the second cycle sees the same changes again
        stopped = await sync(world, code=3, env=env)
        assert_read(stopped, "delta")
        assert stopped_by(stopped) == "max_offboard"
        assert stopped.planned == {"onboard": 0, "update": 0, "offboard": 2, "relink": 0}
        assert world.writes() == []
    assert not FULL_KINDS & set(graph_kinds(world))

    forced = await sync(world, force=True, env=env)
    assert forced.outcomes == {"offboard": {"ok": 2}}
    assert sorted(world.writes(), key=str) == sorted(
        [("DELETE", f"/{ids[0]}", None), ("DELETE", f"/{ids[1]}", None)], key=str
    )
    clear(world)
    assert_read(await sync(world, env=env), "delta")
    assert_no_change_cycle(world)
    assert world.writes() == []
    assert sorted(world.agents()) == sorted(ids[2:])


async def test_a_dry_run_does_not_advance_the_links(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[0], business_phones=["+1 415 555 0195"])
    newcomer = world.add_user("newcomer", "+1 415 555 0196")

    dry = await sync(world, dry_run=True)
    # The changes a dry run lists (`+ onboard  <id>` in the command's output).
    assert (Action.ONBOARD, newcomer) in [(c.action, c.object_id) for c in dry.changes]
    again = await sync(world, dry_run=True)
    assert again.planned == {"onboard": 1, "update": 1, "offboard": 0, "relink": 0}
    full = await sync(world, dry_run=True, full=True)
    assert full.planned == {"onboard": 1, "update": 1, "offboard": 0, "relink": 0}
    assert world.writes() == []

    clear(world)
    report = await sync(world)
    assert_read(report, "delta")
    assert sorted(world.writes(), key=str) == sorted(
        [
            ("PATCH", f"/{ids[0]}", {"phone_number": "+14155550195"}),
            onboarded(newcomer, "+14155550196", "newcomer@contoso.com"),
        ],
        key=str,
    )
    assert_delta_only(world)


async def test_a_failed_write_is_retried_by_a_later_delta_cycle_once_its_backoff_runs_out(
    world: World,
) -> None:
    seed(world, 2)
    retry_s = 6.0
    env = {"SYNCD_SYNC__RETRY_INITIAL": f"{retry_s:g}s"}
    await start_tracking(world, env)
    newcomer = world.add_user("newcomer", "+1 415 555 0197")
    # One onboarding refused with a per-person error; SmartCommunicator accepts it afterwards.
    world.smartcomm.inject(ScriptedFault(kind="status", status=400, method="POST", path_contains="/agents"))

    failed = await sync(world, code=1, env=env)
    failed_at = world.clock.now
    assert_read(failed, "delta")
    assert failed.outcomes == {"onboard": {"failed": 1}}
    assert [f.object_id for f in failed.failures] == [newcomer]
    assert newcomer not in world.agents()

    clear(world)
    world.clock.advance(retry_s - 1)  # a second before the backoff runs out
    waiting = await sync(world, code=1, env=env)
    assert world.writes() == []  # still waiting: nothing sent for them
    # Someone waiting for a retry is not converged: exit 1, as in any cycle (README, exit codes).
    assert (waiting.exit_code, waiting.deferred) == (1, 1)

    world.clock.now = failed_at + retry_s + 1  # a second after
    clear(world)
    retried = await sync(world, env=env)
    assert_read(retried, "delta")
    assert_delta_only(world)
    assert world.writes() == [onboarded(newcomer, "+14155550197", "newcomer@contoso.com")]
    assert newcomer in world.agents()


async def test_a_single_user_cycle_does_not_advance_the_links(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[0], business_phones=["+1 415 555 0191"])
    world.graph.update_user(ids[1], business_phones=["+1 415 555 0192"])
    await sync(world, user=ids[0])
    assert world.writes() == [("PATCH", f"/{ids[0]}", {"phone_number": "+14155550191"})]
    world.smartcomm.clear_requests()
    clear(world)
    assert_read(await sync(world), "delta")
    assert_delta_only(world)
    assert world.writes() == [("PATCH", f"/{ids[1]}", {"phone_number": "+14155550192"})]


async def test_a_group_emptied_between_delta_cycles_stops_the_cycle(world: World) -> None:
    ids = seed(world, 2)
    await start_tracking(world)
    for oid in ids:
        world.graph.remove_member(world.group, oid)
    stopped = await sync(world, code=3)
    assert stopped_by(stopped) == "empty_group"
    assert world.writes() == []
    forced = await sync(world, force=True)
    assert forced.outcomes == {"offboard": {"ok": 2}}
    assert sorted(world.writes(), key=str) == sorted([("DELETE", f"/{oid}", None) for oid in ids], key=str)


async def test_members_leaving_a_big_group_do_not_read_as_an_emptied_group(world: World) -> None:
    # The tree's users are counted only one past those who may have left (3 here, of 5): enough to know
    # it is not empty; one who leaves the group but stays in its nested group is not gone.
    ids = seed(world, 5)
    nested = nest(world, world.group, "nested")
    world.graph.add_member(nested, ids[0])
    await start_tracking(world)
    world.graph.remove_member(world.group, ids[0])
    world.graph.remove_member(world.group, ids[1])
    report = await sync(world)
    assert_read(report, "delta")
    assert stopped_by(report) is None
    assert report.outcomes == {"offboard": {"ok": 1}}
    assert world.writes() == [("DELETE", f"/{ids[1]}", None)]
    assert sorted(world.agents()) == sorted([ids[0], *ids[2:]])


async def test_a_failed_graph_read_loses_no_change(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[0], business_phones=["+1 415 555 0198"])
    world.graph.remove_member(world.group, ids[1])
    # The users delta answers 503 to every attempt of one cycle (one retry allowed): the cycle fails.
    world.graph.inject(ScriptedFault(kind="status", status=503, path_contains="users/delta", times=2))
    env = {"SYNCD_GRAPH__MAX_RETRIES": "1"}
    failed = await sync(world, code=1, env=env)
    assert "503" in str(failed.error)
    assert [r.status for r in graph_api(world) if kind(r) == "users_delta"] == [503, 503]
    assert world.writes() == []

    clear(world)
    report = await sync(world, env=env)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [("PATCH", f"/{ids[0]}", {"phone_number": "+14155550198"}), ("DELETE", f"/{ids[1]}", None)], key=str
    )


async def test_a_smartcomm_outage_in_a_delta_cycle_is_caught_up_by_the_next(world: World) -> None:
    ids = seed(world, 3)
    await start_tracking(world)
    world.graph.update_user(ids[0], business_phones=["+1 415 555 0199"])
    newcomer = world.add_user("newcomer", "+1 415 555 0189")
    world.smartcomm.faults = Faults(error_rate=1.0)  # every agents request answers 503; logins still work
    failed = await sync(world, code=1, env={"SYNCD_SMARTCOMM__MAX_ATTEMPTS": "1"})
    assert failed.error
    assert newcomer not in world.agents()
    assert world.agents()[ids[0]][0] == "+14155550000"

    world.smartcomm.faults = Faults()
    clear(world)
    report = await sync(world)
    assert_read(report, "delta")
    assert_delta_only(world)
    assert sorted(world.writes(), key=str) == sorted(
        [
            ("PATCH", f"/{ids[0]}", {"phone_number": "+14155550199"}),
            onboarded(newcomer, "+14155550189", "newcomer@contoso.com"),
        ],
        key=str,
    )
