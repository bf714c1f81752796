"""The guards' limits and the max_update guard, as pure logic: the forms of a limit (count, percentage, both)
and their strict parsing, what a limit allows for a number of managed agents, the max_update guard at its
boundary with its message, and the settings that shape desired state named when they changed."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from syncd.config.limits import parse_limit
from syncd.config.loader import ConfigError, load_settings
from syncd.config.settings import Settings
from syncd.config.shaping import SHAPING_SETTINGS, shaping_values
from syncd.core.limits import NO_LIMIT, Allowance, Limit, allowed_count
from syncd.core.model import AgentFields, DesiredState, Member, MemberStatus, Recorded
from syncd.core.reconcile import plan
from syncd.core.setting_changes import SettingChange, changed_settings, describe_changes

T = "tenant"
NOW = 1_000_000.0
GROUP = "group-1"
REGION = SettingChange("graph.default_region", "NO", "DK")


def limit(count: int | None = None, percent: str | None = None) -> Limit:
    return Limit(count, None if percent is None else Decimal(percent))


# --- the forms of a limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "zero_is_off", "expected"),
    [
        (25, False, limit(25)),
        (0, False, limit(0)),
        (0, True, NO_LIMIT),
        ("10%", False, limit(percent="10")),
        (" 2.5 % ", True, limit(percent="2.5")),
        ("100%", False, limit(percent="100")),
        ([200, "10%"], False, limit(200, "10")),
        (["5%", 500], True, limit(500, "5")),
    ],
)
def test_the_forms_of_a_limit(value: object, zero_is_off: bool, expected: Limit) -> None:
    assert parse_limit(value, zero_is_off=zero_is_off) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "must be greater than or equal to 0"),
        (
            True,
            'must be a whole number, a percentage such as "10%" or a list of both such as [200, "10%"], not',
        ),
        ("10", "a percentage is a number and %"),
        ("ten%", "a percentage is a number and %"),
        ("-5%", "a percentage is a number and %"),
        ("0%", "a percentage must be more than 0%"),
        ("100.5%", "a percentage must be at most 100%"),
        ("1.125%", "a percentage has at most two decimals"),
        ([], "a list gives one whole number and one percentage"),
        ([200, 300], "a list gives one whole number and one percentage"),
        (["5%", "10%"], "a list gives one whole number and one percentage"),
        ([200, "10%", 5], "a list gives one whole number and one percentage"),
        ([True, "10%"], "a list gives one whole number and one percentage"),
        ([0, "10%"], "in a list the whole number must be at least 1"),
        (2.5, "must be a whole number, a percentage"),
    ],
)
def test_a_bad_limit_says_what_is_accepted(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_limit(value, zero_is_off=False)


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ('max_update = "25"', "sync.max_update", "not a string (write it without quotes)"),
        ("max_update = 2.5", "sync.max_update", "not a decimal number"),
        ("max_update = true", "sync.max_update", "not true/false"),
        ('max_offboard = "0%"', "sync.max_offboard", "a percentage must be more than 0%"),
        ('max_offboard = "150%"', "sync.max_offboard", "a percentage must be at most 100%"),
        ("max_offboard = [10, 20]", "sync.max_offboard", "a list gives one whole number and one percentage"),
        ("max_offboard = {count = 10}", "sync.max_offboard", "not a table"),
    ],
)
def test_a_bad_limit_in_the_file_names_its_key(tmp_path: Path, line: str, key: str, message: str) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(f"[sync]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(config, {})
    ((named, text),) = error.value.problems
    assert named == key
    assert message in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25", limit(25)),
        ("10%", limit(percent="10")),
        ("200,10%", limit(200, "10")),
        ('[200, "10%"]', limit(200, "10")),
    ],
)
def test_the_environment_spells_a_limit_without_quotes(text: str, expected: Limit) -> None:
    settings = load_settings(None, {"SYNCD_SYNC__MAX_OFFBOARD": text, "SYNCD_SYNC__MAX_UPDATE": text})
    assert (settings.sync.max_offboard, settings.sync.max_update) == (expected, expected)


@pytest.mark.parametrize("text", ["ten", "25.0", "[200, 10%]", "200,10%,5", "0%"])
def test_a_bad_limit_in_the_environment_names_its_key_and_variable(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"SYNCD_SYNC__MAX_UPDATE": text})
    ((named, message),) = error.value.problems
    assert named == "sync.max_update"
    assert message.endswith("(from SYNCD_SYNC__MAX_UPDATE)")


def test_the_defaults_and_what_max_update_0_means() -> None:
    defaults = Settings().sync
    assert (defaults.max_offboard, defaults.max_update) == (limit(25), limit(500))
    assert load_settings(None, {"SYNCD_SYNC__MAX_UPDATE": "0"}).sync.max_update.off
    assert load_settings(None, {"SYNCD_SYNC__MAX_OFFBOARD": "0"}).sync.max_offboard == limit(0)
    assert defaults.model_dump(include={"max_offboard", "max_update"}) == {
        "max_offboard": 25,
        "max_update": 500,
    }


# --- what a limit allows ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("the_limit", "managed", "allowed"),
    [
        (limit(25), 1000, 25),
        (limit(0), 1000, 0),
        (NO_LIMIT, 1000, None),
        (limit(percent="10"), 25, 2),  # 2.5 rounds down: more than 10% of 25 is 3 or more
        (limit(percent="10"), 30, 3),
        (limit(percent="10"), 0, 0),
        (limit(percent="2.5"), 1000, 25),
        (limit(percent="100"), 7, 7),
        (limit(200, "10"), 1000, 100),  # both: the smaller wins
        (limit(200, "10"), 5000, 200),
    ],
)
def test_what_a_limit_allows(the_limit: Limit, managed: int, allowed: int | None) -> None:
    assert allowed_count(the_limit, managed) == allowed


@pytest.mark.parametrize(
    ("the_limit", "text"),
    [
        (limit(25), "sync.max_update = 25"),
        (limit(percent="10"), 'sync.max_update = "10%" (4 of the 40 managed agents)'),
        (
            limit(200, "10"),
            'sync.max_update = [200, "10%"] (4: the smaller of 200 and 10% of the 40 managed agents)',
        ),
    ],
)
def test_a_limit_in_a_message(the_limit: Limit, text: str) -> None:
    assert Allowance("sync.max_update", the_limit, 40).describe() == text


# --- the max_update guard ---------------------------------------------------------------------------------


def people(count: int, prefix: str = "+4722") -> list[Member]:
    return [Member(f"u{i:03d}", T, f"u{i:03d}@x.com", f"{prefix}{i:06d}", None) for i in range(count)]


def state(members: list[Member]) -> DesiredState:
    return DesiredState(
        members={m.object_id: m for m in members}, skipped={}, group_counts={GROUP: len(members)}
    )


def recorded(members: list[Member], **fields: str) -> dict[str, Recorded]:
    records = {}
    for m in members:
        agent = AgentFields(T, fields.get("phone_number", m.phone_number), fields.get("upn", m.upn), None)
        records[m.object_id] = Recorded(m.object_id, MemberStatus.ACTIVE, agent, upn=m.upn)
    return records


def renumbered(count: int) -> tuple[DesiredState, dict[str, Recorded]]:
    """`count` agents recorded with +47 numbers that Graph now gives as +45 (another default region)."""
    before, after = people(count, "+4722"), people(count, "+4522")
    return state(after), recorded(before)


@pytest.mark.parametrize(("updates", "stops"), [(9, False), (10, False), (11, True)])
def test_max_update_at_its_boundary(updates: int, stops: bool) -> None:
    wanted, records = renumbered(updates)
    result = plan(wanted, records, now=NOW, max_offboard=25, max_update=10)
    assert len(result.changes) == updates
    assert (result.stop is not None) == stops
    if stops:
        assert result.stop is not None
        assert result.stop.guard == "max_update"
    forced = plan(wanted, records, now=NOW, max_offboard=25, max_update=10, force=True)
    assert forced.stop is None
    assert len(forced.changes) == updates


def test_max_update_says_how_many_of_each_field_and_shows_three() -> None:
    members = people(5)
    records = recorded(members[:3], phone_number="+4799999999") | recorded(members[3:], upn="old@x.com")
    result = plan(state(members), records, now=NOW, max_offboard=25, max_update=4)
    assert result.stop is not None
    message = result.stop.message
    assert message.startswith("5 updates exceed sync.max_update = 4; nothing was changed. ")
    assert "Changed fields: phone number 3, UPN 2, consistency GUID 0. " in message
    assert "tenant" not in message  # shown only when a tenant changes
    examples = message.split("For example: ")[1].split(". Check")[0].split("; ")
    assert examples == [
        "u000 (u000@x.com): phone number +4799999999 -> +4722000000",
        "u001 (u001@x.com): phone number +4799999999 -> +4722000001",
        "u002 (u002@x.com): phone number +4799999999 -> +4722000002",
    ]
    assert "run once with --force or raise sync.max_update" in message


def test_max_update_0_is_off_and_other_guards_come_first() -> None:
    wanted, records = renumbered(600)
    assert plan(wanted, records, now=NOW, max_offboard=25, max_update=NO_LIMIT).stop is None
    assert plan(wanted, records, now=NOW, max_offboard=25).stop is None  # the plan's own default: off
    # Offboardings and updates together: the offboarding guard speaks first.
    leaving = recorded(people(30, "+4640"))
    leaving = {f"gone-{oid}": Recorded(f"gone-{oid}", r.status, r.agent) for oid, r in leaving.items()}
    both = plan(wanted, records | leaving, now=NOW, max_offboard=25, max_update=10)
    assert both.stop is not None
    assert both.stop.guard == "max_offboard"


@pytest.mark.parametrize(
    ("max_update", "managed", "updates", "stops"),
    [
        (limit(percent="5"), 200, 10, False),  # 5% of 200 = 10: exactly the limit passes
        (limit(percent="5"), 200, 11, True),
        (limit(8, "5"), 200, 9, True),  # both forms: 8 < 10, the smaller wins
        (limit(8, "5"), 100, 6, True),  # 5 < 8
        (limit(8, "5"), 100, 5, False),
    ],
)
def test_a_percentage_limit_is_of_the_managed_agents(
    max_update: Limit, managed: int, updates: int, stops: bool
) -> None:
    wanted, records = renumbered(updates)
    result = plan(wanted, records, now=NOW, max_offboard=25, max_update=max_update, managed=managed)
    assert (result.stop is not None) == stops


def test_a_percentage_of_the_recorded_agents_when_the_count_is_not_given() -> None:
    wanted, records = renumbered(20)  # 20 managed, "10%" allows 2
    result = plan(wanted, records, now=NOW, max_offboard=25, max_update=limit(percent="10"))
    assert result.stop is not None
    assert result.stop.message.startswith(
        '20 updates exceed sync.max_update = "10%" (2 of the 20 managed agents)'
    )


def test_max_offboard_takes_a_percentage_too() -> None:
    members = people(20)
    records = recorded(members)
    stays = state(members[:17])  # 3 leave: more than 10% of 20
    stopped = plan(stays, records, now=NOW, max_offboard=limit(percent="10"))
    assert stopped.stop is not None
    assert stopped.stop.guard == "max_offboard"
    assert 'sync.max_offboard = "10%" (2 of the 20 managed agents)' in stopped.stop.message
    assert plan(state(members[:18]), records, now=NOW, max_offboard=limit(percent="10")).stop is None


# --- a changed setting is named ----------------------------------------------------------------------------


def test_a_guard_stop_names_the_settings_that_changed() -> None:
    wanted, records = renumbered(11)
    result = plan(wanted, records, now=NOW, max_offboard=25, max_update=10, changed_settings=[REGION])
    assert result.stop is not None
    assert result.stop.message.endswith(
        'Settings that shape desired state changed since the last cycle: graph.default_region "NO" -> "DK"; '
        "if that was not meant, undo it instead."
    )
    assert (
        plan(wanted, records, now=NOW, max_offboard=25, max_update=11, changed_settings=[REGION]).stop is None
    )


@pytest.mark.parametrize(
    ("before", "after", "changes"),
    [
        (None, {"graph.default_region": "DK"}, ()),  # nothing to compare with yet
        ({}, {"graph.default_region": "DK"}, ()),
        ({"graph.default_region": "DK"}, {"graph.default_region": "DK"}, ()),
        ({"graph.default_region": "NO"}, {"graph.default_region": "DK"}, (REGION,)),
        # A setting this syncd did not compare before (an upgrade added it) is no change.
        ({"graph.default_region": "NO"}, {"graph.default_region": "NO", "sync.relink": "auto"}, ()),
        (
            {"graph.phone_source": ["businessPhones"], "graph.default_region": "NO"},
            {"graph.phone_source": ["teams", "businessPhones"], "graph.default_region": "DK"},
            (SettingChange("graph.phone_source", ["businessPhones"], ["teams", "businessPhones"]), REGION),
        ),
    ],
)
def test_which_settings_changed(
    before: dict[str, object] | None, after: dict[str, object], changes: tuple[SettingChange, ...]
) -> None:
    assert changed_settings(before, after) == changes


def test_changes_in_words() -> None:
    sources = SettingChange("graph.phone_source", ["businessPhones"], ["teams", "businessPhones"])
    assert describe_changes([REGION, sources]) == (
        'graph.default_region "NO" -> "DK"; '
        'graph.phone_source ["businessPhones"] -> ["teams", "businessPhones"]'
    )
    long = SettingChange("graph.group_ids", ["g" * 200], [])
    assert len(long.describe()) < 150
    assert "..." in long.describe()


GRAPH = {
    "SYNCD_GRAPH__TENANT_ID": "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0",
    "SYNCD_GRAPH__CLIENT_ID": "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31",
    "SYNCD_GRAPH__CLIENT_SECRET": "secret",
    "SYNCD_GRAPH__GROUP_IDS": "1e2feb89-414c-443c-9027-c4d1c386bbc4,0d1e2f3a-0000-4000-8000-000000000001",
}


def test_the_values_compared_are_the_settings_in_effect() -> None:
    values = shaping_values(load_settings(None, GRAPH))
    assert list(values) == list(SHAPING_SETTINGS)
    assert values == {
        "graph.group_ids": ["0d1e2f3a-0000-4000-8000-000000000001", "1e2feb89-414c-443c-9027-c4d1c386bbc4"],
        "graph.exclude_group_ids": [],
        "graph.filter": "",
        "graph.phone_source": ["businessPhones"],
        "graph.default_region": "US",
        "graph.teams_categories": ["primary"],
    }
    # The older phone_attribute and the same chain as phone_source compare equal; reordered groups too.
    older = load_settings(None, GRAPH | {"SYNCD_GRAPH__PHONE_ATTRIBUTE": "mobilePhone"})
    newer = load_settings(
        None,
        GRAPH
        | {
            "SYNCD_GRAPH__PHONE_SOURCE": "mobilePhone",
            "SYNCD_GRAPH__GROUP_IDS": ",".join(reversed(GRAPH["SYNCD_GRAPH__GROUP_IDS"].split(","))),
        },
    )
    assert changed_settings(shaping_values(older), shaping_values(newer)) == ()
    assert shaping_values(Settings())["graph.default_region"] is None  # no [graph] section
