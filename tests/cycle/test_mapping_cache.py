"""The mapping cache of full reads, in-process against both emulators: a changed field is never skipped by the
fingerprint (every change made in Graph reaches SmartCommunicator or the recorded skip reasons), a changed
mapping setting maps everyone again, unchanged users come from the cache (the `graph.group_read` log counts
them), and cycles that must leave no trace (dry runs, `--user`) write no cache row.

A fresh process has parsed no phone text yet; the tests start one by forgetting the texts `to_e164`
remembers (`forget_phones`), and empty the page memo, which would otherwise take unchanged pages whole.
Without that, users whose phone text the process parsed before are mapped without a lookup, as a daemon's
next full cycle does (also tested). Every test runs with SQLite and with
PostgreSQL (skipped unless SYNCD_TEST_POSTGRES_URL is set, see tests/postgres.py).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
import structlog

from syncd.core.model import MemberStatus, SkipReason
from syncd.cycle.engine import CycleResult
from syncd.graph.mapping import forget_phones
from tests.cycle.conftest import World, expect
from tests.registry import register_phones


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides tests/cycle/conftest.py's: every test here runs on both databases."""
    return str(request.param)


def anchor(guid: str) -> str:
    """The onPremisesImmutableId of a consistency GUID (base64 of its bytes in .NET order)."""
    return base64.b64encode(uuid.UUID(guid).bytes_le).decode()


async def full_cycle(
    world: World, *, fresh: bool = True, code: int = 0, **options: Any
) -> tuple[CycleResult, dict[str, int]]:
    """A full cycle (in a fresh process unless `fresh` is false), and how many users its read mapped and
    took from the cache (summed over the `graph.group_read` events).

    A fresh process here also finds no stored page (`syncd.graph.page_memo`), as when every page shifted
    (someone joined near the start of the group): each page is mapped through the mapping cache."""
    if fresh:
        forget_phones()
        await world.aclose()  # a new engine: no page kept in memory from an earlier read
        world.store.trim_pages({})  # nor in the store
    with structlog.testing.capture_logs() as logs:
        result = expect(await world.cycle(full=True, **options), code)
    reads = [event for event in logs if event["event"] == "graph.group_read"]
    assert reads
    return result, {key: sum(event[key] for event in reads) for key in ("mapped", "from_cache")}


def skip_reason(world: World, object_id: str) -> SkipReason | None:
    record = world.store.load_recorded({object_id})[object_id]
    return record.skip_reason if record.status is MemberStatus.SKIPPED else None


def consistency_id(world: World, object_id: str) -> object:
    [agent] = [a for a in world.smartcomm.agents() if a["user_object_id"] == object_id]
    return agent["consistency_id"]


GUIDS = [
    "d3f107d7-7c95-447d-8785-bf0b0c57c43a",
    "4a1c5e2b-8f3d-4c6a-9b7e-1d2f3a4b5c6d",
    "a2b4c6d8-e0f1-4a3b-8c5d-7e9f0a1b2c3d",
]
FILTER = {"SYNCD_GRAPH__FILTER": "employeeType ne 'Contractor'"}


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh process", "daemon"])
async def test_a_changed_field_is_never_skipped_by_the_fingerprint(world: World, fresh: bool) -> None:
    excluded_group = world.graph.add_group(display_name="No agents")
    env = FILTER | {"SYNCD_GRAPH__EXCLUDE_GROUP_IDS": excluded_group}
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(9)]
    world.graph.update_user(ids[3], on_premises_immutable_id=anchor(GUIDS[0]))
    _, first = await full_cycle(world, env=env)
    assert first == {"mapped": 9, "from_cache": 0}
    assert world.store.count_mappings() == 9

    world.graph.update_user(ids[0], business_phones=["+1 415 555 0100"])
    world.graph.update_user(ids[1], upn="renamed@contoso.com")
    world.graph.update_user(ids[2], account_enabled=False)
    world.graph.update_user(ids[3], on_premises_immutable_id=anchor(GUIDS[1]))
    world.graph.update_user(ids[4], employee_type="Contractor")  # fails graph.filter
    world.graph.add_member(excluded_group, ids[5])
    world.graph.update_user(ids[6], business_phones=["+1 415 555 0006", "+1 415 555 0199"])  # 2nd: unread
    world.smartcomm.clear_requests()
    result, second = await full_cycle(world, fresh=fresh, env=env)

    assert sorted(world.writes(), key=str) == sorted(
        [
            ("PATCH", f"/{ids[0]}", {"phone_number": "+14155550100"}),
            ("PATCH", f"/{ids[1]}", {"upn": "renamed@contoso.com"}),
            ("DELETE", f"/{ids[2]}", None),
            ("PATCH", f"/{ids[3]}", {"consistency_id": GUIDS[1]}),
            ("DELETE", f"/{ids[4]}", None),
            ("DELETE", f"/{ids[5]}", None),
        ],
        key=str,
    )
    assert world.agents()[ids[0]] == ("+14155550100", "user0@contoso.com")
    assert world.agents()[ids[1]] == ("+14155550001", "renamed@contoso.com")
    assert consistency_id(world, ids[3]) == GUIDS[1]
    assert result.skipped == {"disabled": 1, "filtered": 1, "excluded_group": 1}
    if fresh:
        # The 7 changed users are mapped; the 2 others come from the cache.
        assert second == {"mapped": 7, "from_cache": 2}
    else:
        # The daemon has parsed every phone text but user0's new one: only user0 is looked up (a miss).
        assert second == {"mapped": 9, "from_cache": 0}

    # The next fresh process finds every change cached: nothing left to write, and the people offboarded
    # are recorded with their skip reason.
    world.smartcomm.clear_requests()
    _, third = await full_cycle(world, env=env)
    assert world.writes() == []
    assert [skip_reason(world, oid) for oid in ids[2:6]] == [
        SkipReason.DISABLED,
        None,
        SkipReason.FILTERED,
        SkipReason.EXCLUDED_GROUP,
    ]
    if fresh:
        assert third == {"mapped": 0, "from_cache": 9}
    else:
        # user1..user6 were mapped without a lookup by the daemon: their rows are written now.
        assert third == {"mapped": 6, "from_cache": 3}


async def test_unchanged_users_come_from_the_cache_and_a_daemon_maps_them_without_a_lookup(
    world: World,
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(5)]
    nophone = world.add_user("nophone", "")
    await full_cycle(world)
    world.smartcomm.clear_requests()

    result, fresh = await full_cycle(world)
    assert fresh == {
        "mapped": 1,
        "from_cache": 5,
    }  # nobody without a phone text is looked up: mapping is cheap
    assert world.writes() == []
    assert result.unchanged == 5
    assert skip_reason(world, nophone) is SkipReason.NO_PHONE

    # The same process again (a daemon), its page changed by a newcomer: the cached members' phone texts
    # are known, nobody is looked up but the newcomer (a miss).
    newcomer = world.add_user("newcomer", "+1 415 555 0042")
    _, daemon = await full_cycle(world, fresh=False)
    assert daemon == {"mapped": 7, "from_cache": 0}
    assert [(method, path) for method, path, _ in world.writes()] == [("POST", "/")]
    assert sorted(world.agents()) == sorted([*ids, newcomer])


async def test_a_changed_mapping_setting_maps_everyone_again(world: World) -> None:
    """The default region and the phone source chain are inputs of every fingerprint."""
    ada = world.add_user("ada", "020 7183 8750", mobile_phone="+1 415 555 0100")  # a London number, national
    others = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(3)]
    await full_cycle(world)
    assert skip_reason(world, ada) is SkipReason.INVALID_PHONE  # read with region US
    register_phones(world.smartcomm, "+44 20 7183 8750")  # the customer registers it for 10DLC

    world.smartcomm.clear_requests()
    _, region = await full_cycle(world, env={"SYNCD_GRAPH__DEFAULT_REGION": "GB"})
    assert region == {"mapped": 4, "from_cache": 0}
    assert [m for m, _, _ in world.writes()] == ["POST"]
    assert world.agents()[ada] == ("+442071838750", "ada@contoso.com")

    text = world.config.read_text()
    world.config.write_text(
        text.replace(
            "retry_delay_s = 0\n", 'retry_delay_s = 0\nphone_source = ["mobilePhone", "businessPhones"]\n'
        )
    )
    world.smartcomm.clear_requests()
    _, chain = await full_cycle(world, env={"SYNCD_GRAPH__DEFAULT_REGION": "GB"})
    assert chain == {"mapped": 4, "from_cache": 0}
    assert world.writes() == [("PATCH", f"/{ada}", {"phone_number": "+14155550100"})]
    assert {oid: phone for oid, (phone, _) in world.agents().items() if oid in others} == {
        oid: f"+1415555000{i}" for i, oid in enumerate(others)
    }


async def test_dry_runs_and_single_user_cycles_write_no_cache_row(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(4)]
    for options in ({"dry_run": True}, {"user": ids[0]}):
        await full_cycle(world, **options)
        assert world.store.count_mappings() == 0
        assert world.store.count_pages() == 0  # nor a page (syncd.graph.page_memo)
    await full_cycle(world)
    assert world.store.count_mappings() == 4
    assert world.store.count_pages() == 1
    cached = world.store.known_mappings(ids)

    # A dry run takes what is cached, and maps and reports what changed, but remembers none of it.
    world.graph.update_user(ids[1], business_phones=["+1 415 555 0101"])
    result, dry = await full_cycle(world, dry_run=True)
    assert dry == {"mapped": 1, "from_cache": 3}
    assert [(c.action.value, c.object_id) for c in result.changes] == [("update", ids[1])]
    assert world.store.known_mappings(ids) == cached
    _, real = await full_cycle(world)
    assert real == {"mapped": 1, "from_cache": 3}
    assert world.store.known_mappings([ids[1]])[ids[1]][1].phone_number == "+14155550101"  # type: ignore[union-attr]


async def test_people_a_full_read_no_longer_finds_are_forgotten(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(5)]
    await full_cycle(world)
    assert world.store.count_mappings() == 5
    for object_id in ids[:2]:
        world.graph.remove_member(world.group, object_id)
    await full_cycle(world)
    assert sorted(world.store.known_mappings(ids)) == sorted(ids[2:])


async def test_with_teams_in_the_phone_chain_nothing_is_cached(world: World) -> None:
    """Teams numbers come from another read than the user object: the fingerprint cannot cover them."""
    text = world.config.read_text()
    world.config.write_text(
        text.replace("retry_delay_s = 0\n", 'retry_delay_s = 0\nphone_source = ["teams", "businessPhones"]\n')
    )
    ada = world.add_user("ada", "+1 415 555 0100")
    world.graph.assign_number("+14155550150", ada)
    forget_phones()
    with structlog.testing.capture_logs() as logs:
        expect(await world.cycle(full=True))
    assert world.agents() == {ada: ("+14155550150", "ada@contoso.com")}
    assert world.store.count_mappings() == 0
    assert world.store.count_pages() == 0
    [read] = [event for event in logs if event["event"] == "graph.group_read"]
    assert "from_cache" not in read
    assert "pages_from_store" not in read
