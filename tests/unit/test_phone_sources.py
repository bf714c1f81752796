"""The phone source chain (graph.phone_source): Teams number assignments, attributes, fallback rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config.loader import ConfigError, load_settings
from syncd.core.model import Member, Skipped, SkipReason
from syncd.graph.mapping import map_user, select_fields
from syncd.graph.teams import TeamsIndexer, TeamsNumber, assignment_filter

TENANT = "11111111-2222-3333-4444-555555555555"
OBJECT_ID = "0b9e3d6a-7c4f-4a8e-9d2b-1f6e5c4b3a29"
CHAIN = ("teams", "businessPhones", "mobilePhone")


def user(business: list[object] | None = None, mobile: object = None) -> dict[str, object]:
    return {
        "id": OBJECT_ID,
        "userPrincipalName": "ada@contoso.com",
        "accountEnabled": True,
        "businessPhones": business if business is not None else [],
        "mobilePhone": mobile,
    }


def mapped(
    record: dict[str, object], teams: dict[str, TeamsNumber] | None, chain: tuple[str, ...] = CHAIN
) -> Member | Skipped:
    return map_user(record, tenant_id=TENANT, phone_sources=chain, default_region="US", teams=teams)


def teams_of(number: str, category: str = "primary") -> dict[str, TeamsNumber]:
    return {OBJECT_ID: TeamsNumber(number, category)}


def assignment(
    target: object,
    number: object,
    *,
    category: str = "primary",
    status: str = "userAssigned",
    state: str = "activated",
) -> dict[str, object]:
    return {
        "id": f"a-{number}",
        "telephoneNumber": number,
        "assignmentTargetId": target,
        "assignmentCategory": category,
        "assignmentStatus": status,
        "activationState": state,
        "numberType": "operatorConnect",
    }


# --- the chain ------------------------------------------------------------------------------------------


def test_the_teams_number_wins_over_the_attributes() -> None:
    member = mapped(user(["+1 415 555 0100"], "+1 415 555 0199"), teams_of("+14155550123"))
    assert isinstance(member, Member)
    assert (member.phone_number, member.phone_source) == ("+14155550123", "teams")


def test_no_teams_number_falls_back_to_business_phones() -> None:
    member = mapped(user(["(415) 555-0100"], "+1 415 555 0199"), {})
    assert isinstance(member, Member)
    assert (member.phone_number, member.phone_source) == ("+14155550100", "businessPhones")


def test_an_invalid_teams_number_falls_back_to_the_next_valid_source() -> None:
    # Direct Routing line URIs may carry an extension: not a number an agent can have.
    member = mapped(user([], "+1 415 555 0199"), teams_of("+14155550100;ext=123"))
    assert isinstance(member, Member)
    assert (member.phone_number, member.phone_source) == ("+14155550199", "mobilePhone")


def test_teams_numbers_without_the_plus_are_read_as_international() -> None:
    member = mapped(user(), teams_of("442079460000"))
    assert isinstance(member, Member)
    assert member.phone_number == "+442079460000"
    # A valid number of the default region is read as such.
    member = mapped(user(), teams_of("14155550123"))
    assert isinstance(member, Member)
    assert member.phone_number == "+14155550123"


def test_every_source_empty_is_no_phone_and_says_what_each_held() -> None:
    skipped = mapped(user([], None), {})
    assert skipped == Skipped(
        OBJECT_ID,
        "ada@contoso.com",
        SkipReason.NO_PHONE,
        "teams has no number assigned; businessPhones is empty; mobilePhone is empty",
    )


def test_an_invalid_source_and_nothing_valid_is_invalid_phone() -> None:
    skipped = mapped(user(["n/a"], None), teams_of("+1 555"))
    assert isinstance(skipped, Skipped)
    assert skipped.reason is SkipReason.INVALID_PHONE
    assert skipped.detail.startswith("teams '+1 555' is ")
    assert "businessPhones 'n/a' is not a phone number" in skipped.detail
    assert skipped.detail.endswith("mobilePhone is empty")


def test_the_order_of_the_chain_decides() -> None:
    record = user(["+1 415 555 0100"], "+1 415 555 0199")
    member = mapped(record, teams_of("+14155550123"), ("mobilePhone", "teams"))
    assert isinstance(member, Member)
    assert (member.phone_number, member.phone_source) == ("+14155550199", "mobilePhone")


def test_teams_alone_without_an_assignment_is_skipped() -> None:
    skipped = mapped(user(["+1 415 555 0100"]), {}, ("teams",))
    assert isinstance(skipped, Skipped)
    assert (skipped.reason, skipped.detail) == (SkipReason.NO_PHONE, "teams has no number assigned")


def test_the_teams_lookup_ignores_the_case_of_the_object_id() -> None:
    record = user() | {"id": OBJECT_ID.upper()}
    member = mapped(record, teams_of("+14155550123"))
    assert isinstance(member, Member)
    assert member.phone_source == "teams"


def test_a_single_attribute_keeps_its_old_details() -> None:
    skipped = map_user(user([]), tenant_id=TENANT, phone_sources="businessPhones", default_region="US")
    assert isinstance(skipped, Skipped)
    assert skipped.detail == "businessPhones is empty"


@pytest.mark.parametrize(
    ("chain", "phone_fields"),
    [
        (("teams",), []),
        (("teams", "businessPhones", "mobilePhone"), ["businessPhones", "mobilePhone"]),
        (("extensionAttribute3", "extensionattribute5"), ["onPremisesExtensionAttributes"]),
    ],
)
def test_select_fields_for_a_chain(chain: tuple[str, ...], phone_fields: list[str]) -> None:
    base = ["id", "userPrincipalName", "accountEnabled", "onPremisesImmutableId"]
    assert select_fields(chain) == base + phone_fields


# --- choosing among a user's assignments -----------------------------------------------------------------


def test_one_assignment_per_user() -> None:
    indexer = TeamsIndexer(["primary"])
    indexer.add([assignment(OBJECT_ID.upper(), "+14155550123"), assignment("other", "+14155550124")])
    assert indexer.result() == {
        OBJECT_ID: TeamsNumber("+14155550123", "primary"),
        "other": TeamsNumber("+14155550124", "primary"),
    }
    assert indexer.read == 2


def test_the_primary_assignment_wins_over_an_alternate_whatever_the_order() -> None:
    indexer = TeamsIndexer(["primary", "alternate"])
    indexer.add([assignment(OBJECT_ID, "+14155550100", category="alternate")])
    indexer.add([assignment(OBJECT_ID, "+14155550199")])
    assert indexer.result() == {OBJECT_ID: TeamsNumber("+14155550199", "primary")}


def test_categories_not_configured_are_ignored() -> None:
    indexer = TeamsIndexer(["primary"])
    indexer.add([assignment(OBJECT_ID, "+14155550100", category="private")])
    assert indexer.result() == {}
    assert indexer.ignored == {"category not configured": 1}


def test_a_tie_is_resolved_by_the_lowest_number_and_reported() -> None:
    indexer = TeamsIndexer(["primary"])
    indexer.add([assignment(OBJECT_ID, "+14155550199"), assignment(OBJECT_ID, "+14155550100")])
    chosen = indexer.result()[OBJECT_ID]
    assert chosen.number == "+14155550100"
    assert chosen.note is not None
    assert "2 primary Teams numbers (+14155550100, +14155550199): chose +14155550100" in chosen.note
    # The same data in the other order gives the same answer.
    again = TeamsIndexer(["primary"])
    again.add([assignment(OBJECT_ID, "+14155550100"), assignment(OBJECT_ID, "+14155550199")])
    assert again.result()[OBJECT_ID] == chosen


def test_unusable_assignments_are_counted_not_raised() -> None:
    indexer = TeamsIndexer(["primary"])
    indexer.add(
        [
            "garbage",
            assignment(OBJECT_ID, "+14155550100", status="voiceApplicationAssigned"),
            assignment(OBJECT_ID, "+14155550101", state="assignmentPending"),
            assignment(OBJECT_ID, "+14155550102", state="assignmentFailed"),
            assignment(None, "+14155550103"),
            assignment(OBJECT_ID, 14155550104),
            assignment(OBJECT_ID, "+14155550105", state="updatePending"),
            assignment(OBJECT_ID, "+14155550106") | {"assignmentCategory": ["primary"]},
            assignment(OBJECT_ID, "+14155550107") | {"activationState": {"state": "activated"}},
        ]
    )
    chosen = indexer.result()[OBJECT_ID]
    assert (chosen.number, chosen.category) == ("+14155550105", "primary")
    assert chosen.note is not None  # tied with the one whose activation state is unreadable
    assert indexer.ignored == {
        "not an object": 1,
        "not assigned to a user": 1,
        "not activated": 2,
        "no target": 1,
        "no number": 1,
        "category not configured": 1,
    }


def test_the_filter_asks_graph_for_user_assignments() -> None:
    assert (
        assignment_filter(["primary"])
        == "assignmentStatus eq 'userAssigned' and assignmentCategory eq 'primary'"
    )
    assert assignment_filter(["primary", "alternate"]) == "assignmentStatus eq 'userAssigned'"


# --- configuration ----------------------------------------------------------------------------------------

GRAPH = """
[graph]
tenant_id = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
client_id = "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31"
client_secret = "graph-secret"
group_ids = ["0b5c1f5e-2a36-4d3c-9a6a-3c2a1c2b0d11"]
"""


def load(tmp_path: Path, extra: str, env: dict[str, str] | None = None) -> tuple[tuple[str, ...], list[str]]:
    path = tmp_path / "syncd.toml"
    path.write_text(GRAPH + extra)
    graph = load_settings(path, env or {}).require_graph()
    return graph.phone_chain, graph.teams_categories


def config_error(tmp_path: Path, extra: str) -> ConfigError:
    path = tmp_path / "syncd.toml"
    path.write_text(GRAPH + extra)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    return caught.value


@pytest.mark.parametrize(
    ("extra", "chain"),
    [
        ("", ("businessPhones",)),
        ('phone_attribute = "mobilephone"\n', ("mobilePhone",)),
        ('phone_source = "Teams"\n', ("teams",)),
        (
            'phone_source = ["teams", "businessPhones", "extensionAttribute2"]\n',
            ("teams", "businessPhones", "onPremisesExtensionAttributes.extensionAttribute2"),
        ),
    ],
)
def test_the_chain_from_the_file(tmp_path: Path, extra: str, chain: tuple[str, ...]) -> None:
    assert load(tmp_path, extra) == (chain, ["primary"])


def test_the_chain_from_the_environment(tmp_path: Path) -> None:
    env = {
        "SYNCD_GRAPH__PHONE_SOURCE": "teams, mobilePhone",
        "SYNCD_GRAPH__TEAMS_CATEGORIES": "Primary,alternate",
    }
    assert load(tmp_path, "", env) == (("teams", "mobilePhone"), ["primary", "alternate"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            'phone_source = ["teams"]\nphone_attribute = "mobilePhone"\n',
            "graph.phone_source: give phone_source or the older phone_attribute, not both",
        ),
        ('phone_source = ["teams", "TEAMS"]\n', "graph.phone_source: lists teams more than once"),
        (
            'phone_source = ["homePhone"]\n',
            "graph.phone_source: unknown phone source 'homePhone': choose teams or one of",
        ),
        ('teams_categories = ["shared"]\n', "graph.teams_categories: choose one or more of primary"),
        ("teams_categories = []\n", "graph.teams_categories: choose one or more of primary"),
        ("teams_page_size = 1001\n", "graph.teams_page_size: "),
    ],
)
def test_bad_chains_name_their_key(tmp_path: Path, extra: str, message: str) -> None:
    assert str(config_error(tmp_path, extra)).startswith(message)


@given(
    st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(
                    [
                        "telephoneNumber",
                        "assignmentTargetId",
                        "assignmentCategory",
                        "assignmentStatus",
                        "activationState",
                    ]
                ),
                st.sampled_from(
                    ["userAssigned", "primary", "alternate", "activated", "assignmentPending", "+14155550100"]
                )
                | st.just(OBJECT_ID)
                | st.recursive(
                    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
                    max_leaves=4,
                ),
            ),
            st.sampled_from([None, 1, "x", [], {}]),
        ),
        max_size=8,
    )
)
def test_any_assignment_page_is_indexed_without_raising(items: list[object]) -> None:
    indexer = TeamsIndexer(["primary", "alternate"])
    indexer.add(items)
    chosen = indexer.result()
    assert indexer.read == len(items)
    assert sum(indexer.ignored.values()) + sum(1 for _ in chosen) <= len(items)
    for number in chosen.values():
        # Whatever came in, what comes out can be mapped: a number is text, never raised on.
        result = map_user(
            user(), tenant_id=TENANT, phone_sources=("teams",), default_region="US", teams={OBJECT_ID: number}
        )
        assert isinstance(result, Member | Skipped)


def test_the_same_assignment_listed_twice_is_not_a_tie() -> None:
    indexer = TeamsIndexer(["primary"])
    indexer.add([assignment(OBJECT_ID, "+14155550100")])
    indexer.add([assignment(OBJECT_ID, "+14155550100")])  # a page boundary that moved
    assert indexer.result() == {OBJECT_ID: TeamsNumber("+14155550100", "primary")}
