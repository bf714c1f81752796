"""The pure decisions of `syncd explain`: what the argument is, paths through nested groups, each phone
source's verdict, the consistency GUID, what the next cycle would do and how it is said, and the
formatting of an explanation. Plain data in, plain data out, as parametrised tables."""

from __future__ import annotations

from typing import Any, ClassVar, Self, cast

import pytest

from syncd.config.settings import Settings
from syncd.core.model import Agent, AgentFields, Member, MemberStatus, Recorded, Skipped, SkipReason
from syncd.graph.mapping import map_user
from syncd.graph.teams import TeamsIndexer
from syncd.reports.explain import (
    AmbiguousPerson,
    Consistency,
    Explanation,
    Filter,
    GroupRef,
    Membership,
    NextCycle,
    PersonNotFound,
    Phone,
    RecordSection,
    Remote,
    SourceVerdict,
    Who,
    classify_query,
    consistency_of,
    explain_person,
    gathering,
    next_cycle,
    phone_verdicts,
    render_text,
    shortest_paths,
    teams_notes,
)
from syncd.store import Store

OID = "4d90f551-8568-4935-821b-8cb9fa50ecd7"
OTHER = "e2f19e0a-0490-41f4-8509-44a3390ae0b6"
TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
GROUP, SECOND = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "kind", "key"),
    [
        (f"  {OID.upper()} ", "object_id", OID),
        ("Ada.Lovelace@Contoso.com", "upn", "Ada.Lovelace@Contoso.com"),
        ("(415) 555-0100", "phone", "+14155550100"),
        ("+44 20 7946 0958", "phone", "+442079460958"),
        ("tel:+1-415-555-0100", "phone", "+14155550100"),
        ("12345", "name", "12345"),
        ("ada", "name", "ada"),
        ("   ", "name", ""),
    ],
)
def test_classify_query(text: str, kind: str, key: str) -> None:
    assert classify_query(text, "US") == (kind, key)


TREE = {
    "top": ["a", "b"],
    "a": ["c"],
    "b": ["c", "d"],
    "c": ["top", "e"],  # a cycle back to the top
    "d": [],
    "e": ["f"],
}


@pytest.mark.parametrize(
    ("root", "targets", "max_paths", "expected"),
    [
        ("top", {"top"}, 5, [["top"]]),  # a direct member of the configured group
        ("top", {"a"}, 5, [["top", "a"]]),
        ("top", {"d"}, 5, [["top", "b", "d"]]),
        ("top", {"c"}, 5, [["top", "a", "c"], ["top", "b", "c"]]),  # a diamond: both ways
        ("top", {"c"}, 1, [["top", "a", "c"]]),
        ("top", {"a", "f"}, 5, [["top", "a"]]),  # only the shortest
        ("top", {"a", "d"}, 5, [["top", "a"]]),
        ("top", {"b", "a"}, 5, [["top", "a"], ["top", "b"]]),  # two at the same depth, in tree order
        ("top", {"f"}, 5, [["top", "a", "c", "e", "f"], ["top", "b", "c", "e", "f"]]),
        ("top", {"nowhere"}, 5, []),
        ("d", {"top"}, 5, []),  # not reachable downwards
        ("unknown", {"a"}, 5, []),  # a group whose children were never read
        ("c", {"b"}, 5, [["c", "top", "b"]]),  # through the cycle, once
    ],
)
def test_shortest_paths(root: str, targets: set[str], max_paths: int, expected: list[list[str]]) -> None:
    assert shortest_paths(root, TREE, targets, max_paths=max_paths) == expected


def assignment(number: str, **changes: Any) -> dict[str, Any]:
    return {
        "telephoneNumber": number,
        "assignmentTargetId": OID,
        "assignmentStatus": "userAssigned",
        "assignmentCategory": "primary",
        "activationState": "activated",
    } | changes


def user(**fields: Any) -> dict[str, Any]:
    return {"id": OID, "userPrincipalName": "ada@contoso.com", "accountEnabled": True} | fields


# (user fields, chain, teams items, expected (source, raw, e164, problem, chosen, notes) per source)
PHONE_CASES: list[
    tuple[str, dict[str, Any], list[str], list[dict[str, Any]] | None, list[tuple[Any, ...]]]
] = [
    (
        "first valid wins, later ones shown",
        {"businessPhones": ["+1 415 555 0100"], "mobilePhone": "415.555.0101"},
        ["businessPhones", "mobilePhone"],
        None,
        [
            ("businessPhones", "+1 415 555 0100", "+14155550100", None, True, ()),
            ("mobilePhone", "415.555.0101", "+14155550101", None, False, ()),
        ],
    ),
    (
        "invalid then valid",
        {"businessPhones": ["n/a"], "mobilePhone": "+1 415 555 0101"},
        ["businessPhones", "mobilePhone"],
        None,
        [
            ("businessPhones", "n/a", None, "'n/a' is not a phone number", False, ()),
            ("mobilePhone", "+1 415 555 0101", "+14155550101", None, True, ()),
        ],
    ),
    (
        "all empty",
        {"businessPhones": [" "], "mobilePhone": None},
        ["businessPhones", "mobilePhone"],
        None,
        [
            ("businessPhones", None, None, "empty", False, ()),
            ("mobilePhone", None, None, "empty", False, ()),
        ],
    ),
    (
        "an extension attribute, short name",
        {"onPremisesExtensionAttributes": {"extensionAttribute3": "+1 415 555 0102 x12"}},
        ["extensionAttribute3"],
        None,
        [
            (
                "extensionAttribute3",
                "+1 415 555 0102 x12",
                None,
                "'+1 415 555 0102 x12' has an extension",
                False,
                (),
            )
        ],
    ),
    (
        "teams first, with the assignments that do not count",
        {"businessPhones": ["+1 415 555 0100"]},
        ["teams", "businessPhones"],
        [
            assignment("+14155550199"),
            assignment("+14155550198", assignmentCategory="alternate"),
            assignment("+14155550197", activationState="assignmentPending"),
        ],
        [
            (
                "teams",
                "+14155550199",
                "+14155550199",
                None,
                True,
                (
                    "+14155550198 (alternate, userAssigned, activated): category not configured",
                    "+14155550197 (primary, userAssigned, assignmentPending): not activated",
                ),
            ),
            ("businessPhones", "+1 415 555 0100", "+14155550100", None, False, ()),
        ],
    ),
    (
        "no teams number",
        {"businessPhones": ["+1 415 555 0100"]},
        ["teams", "businessPhones"],
        [],
        [
            ("teams", None, None, "no number assigned", False, ()),
            ("businessPhones", "+1 415 555 0100", "+14155550100", None, True, ()),
        ],
    ),
    (
        "a direct routing extension falls through",
        {"mobilePhone": "+1 415 555 0101"},
        ["teams", "mobilePhone"],
        [assignment("+14155550198;ext=12")],
        [
            ("teams", "+14155550198;ext=12", None, "'+14155550198;ext=12' has an extension", False, ()),
            ("mobilePhone", "+1 415 555 0101", "+14155550101", None, True, ()),
        ],
    ),
    (
        "a tie is noted",
        {},
        ["teams"],
        [assignment("+14155550131"), assignment("+14155550130")],
        [
            (
                "teams",
                "+14155550130",
                "+14155550130",
                None,
                True,
                (
                    "2 primary Teams numbers (+14155550130, +14155550131): chose +14155550130, the lowest; "
                    "leave one assignment of that category in Teams",
                ),
            )
        ],
    ),
    (
        "teams digits without a plus",
        {},
        ["teams"],
        [assignment("442079460958")],
        [("teams", "442079460958", "+442079460958", None, True, ())],
    ),
    ("teams not read", {}, ["teams"], None, [("teams", None, None, "not read", False, ())]),
]


@pytest.mark.parametrize(
    ("fields", "chain", "items", "expected"), [c[1:] for c in PHONE_CASES], ids=[c[0] for c in PHONE_CASES]
)
def test_phone_verdicts(
    fields: dict[str, Any],
    chain: list[str],
    items: list[dict[str, Any]] | None,
    expected: list[tuple[Any, ...]],
) -> None:
    verdicts = phone_verdicts(user(**fields), chain, default_region="US", teams_items=items)
    assert [(v.source, v.raw, v.e164, v.problem, v.chosen, v.notes) for v in verdicts] == expected
    # The chosen source is the one the mapping (and so a cycle) takes.
    if items is not None or "teams" not in chain:
        indexer = TeamsIndexer(["primary"])
        indexer.add(items or [])
        mapped = map_user(
            user(**fields), tenant_id=TENANT, phone_sources=chain, default_region="US", teams=indexer.result()
        )
        chosen = [v for v in verdicts if v.chosen]
        if isinstance(mapped, Member):
            assert [(v.source, v.e164) for v in chosen] == [(mapped.phone_source, mapped.phone_number)]
        else:
            assert chosen == []


def test_teams_notes_say_why_each_assignment_does_not_count() -> None:
    items: list[object] = [
        assignment("+14155550100"),
        assignment("+14155550101", assignmentStatus="voiceApplicationAssigned"),
        assignment("+14155550102", assignmentCategory="private"),
        assignment("+14155550103", activationState="assignmentFailed"),
        "garbage",
    ]
    assert teams_notes(items, ["primary", "alternate"]) == [
        "+14155550101 (primary, voiceApplicationAssigned, activated): not assigned to a user",
        "+14155550102 (private, userAssigned, activated): category not configured",
        "+14155550103 (primary, userAssigned, assignmentFailed): not activated",
        "'garbage': not an object",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "AAECAwQFBgcICQoLDA0ODw==",
            Consistency(
                "AAECAwQFBgcICQoLDA0ODw==",
                "03020100-0504-0706-0809-0a0b0c0d0e0f",
                "sent to SmartCommunicator as consistency_id",
            ),
        ),
        (None, Consistency(None, None, "not set (a cloud-only user): no consistency GUID is sent")),
        (
            "c2FtQGNvbnRvc28=",
            Consistency(
                "c2FtQGNvbnRvc28=",
                None,
                "not a base64 GUID (another kind of source anchor): no consistency GUID is sent",
            ),
        ),
        (
            42,
            Consistency(
                "42", None, "not a base64 GUID (another kind of source anchor): no consistency GUID is sent"
            ),
        ),
    ],
)
def test_consistency_of(value: object, expected: Consistency) -> None:
    assert consistency_of(user(onPremisesImmutableId=value)) == expected


MEMBER = Member(OID, TENANT, "ada@contoso.com", "+14155550100", None, "businessPhones")
PUSHED = AgentFields(TENANT, "+14155550100", "ada@contoso.com", None)
ACTIVE = Recorded(OID, MemberStatus.ACTIVE, PUSHED, upn="ada@contoso.com", phone_source="businessPhones")
NO_PHONE = Skipped(OID, "ada@contoso.com", SkipReason.NO_PHONE, "businessPhones is empty")
FAILED = Recorded(
    OID,
    MemberStatus.FAILED,
    None,
    upn="ada@contoso.com",
    detail="TN is already registered with a different Azure Object ID",
    attempts=2,
    next_attempt_at=NOW + 120,
)
HOLDER = Agent(OTHER, TENANT, "+14155550100", "active")

# (name, person, in configured groups, record, extra keywords, expected action, text, fields, waiting_until)
NEXT_CASES: list[tuple[Any, ...]] = [
    (
        "new member",
        MEMBER,
        [GROUP],
        None,
        {},
        "onboard",
        "onboard ada@contoso.com with +14155550100 (in scope, no agent yet)",
        (),
        None,
    ),
    (
        "up to date",
        MEMBER,
        [GROUP],
        ACTIVE,
        {},
        "nothing",
        "nothing to do: the agent matches Graph",
        (),
        None,
    ),
    (
        "new number",
        Member(OID, TENANT, "ada@contoso.com", "+14155550199", None, "businessPhones"),
        [GROUP],
        ACTIVE,
        {},
        "update",
        "update phone_number +14155550100 -> +14155550199",
        ("phone_number",),
        None,
    ),
    (
        "renamed and a new number",
        Member(OID, TENANT, "ada.l@contoso.com", "+14155550199", None, "businessPhones"),
        [SECOND],
        ACTIVE,
        {},
        "update",
        "update phone_number +14155550100 -> +14155550199, upn ada@contoso.com -> ada.l@contoso.com",
        ("phone_number", "upn"),
        None,
    ),
    (
        "number moved to another source",
        Member(OID, TENANT, "ada@contoso.com", "+14155550100", None, "teams"),
        [GROUP],
        ACTIVE,
        {},
        "nothing",
        "nothing to do: the agent matches Graph "
        "(the record notes the number now comes from teams; nothing is sent)",
        (),
        None,
    ),
    (
        "left the groups",
        MEMBER,
        [],
        ACTIVE,
        {},
        "offboard",
        "offboard: not in any configured group",
        (),
        None,
    ),
    ("gone from Graph", None, [], ACTIVE, {}, "offboard", "offboard: not in any configured group", (), None),
    (
        "lost the phone",
        NO_PHONE,
        [GROUP],
        ACTIVE,
        {},
        "offboard",
        "offboard: out of scope (no_phone: businessPhones is empty)",
        (),
        None,
    ),
    (
        "skipped, no agent",
        NO_PHONE,
        [GROUP],
        Recorded(OID, MemberStatus.SKIPPED, skip_reason=SkipReason.NO_PHONE),
        {},
        "nothing",
        "nothing to do: out of scope (no_phone: businessPhones is empty), "
        "and syncd manages no agent for them",
        (),
        None,
    ),
    (
        "outsider",
        MEMBER,
        [],
        None,
        {},
        "nothing",
        "nothing to do: not in any configured group, and syncd manages no agent for them",
        (),
        None,
    ),
    (
        "conflict, waiting",
        MEMBER,
        [GROUP],
        FAILED,
        {"number_holder": HOLDER, "remote": None, "remote_known": True},
        "wait",
        "waiting for retry until 2027-01-15 08:02:00 UTC (2 failed attempts); then: onboard ada@contoso.com "
        f"with +14155550100 (in scope, no agent yet); it fails again while agent {OTHER} holds the number "
        "(an admin must free it)",
        (),
        NOW + 120,
    ),
    (
        "backoff over",
        MEMBER,
        [GROUP],
        Recorded(OID, MemberStatus.FAILED, None, attempts=1, next_attempt_at=NOW - 1),
        {"number_holder": Agent(OTHER, TENANT, "+14155550100", "offboarded")},
        "onboard",
        "onboard ada@contoso.com with +14155550100 (in scope, no agent yet)",
        (),
        None,
    ),
    (
        "pending write",
        MEMBER,
        [GROUP],
        Recorded(OID, MemberStatus.PENDING, PUSHED, phone_source="businessPhones"),
        {},
        "nothing",
        "first settle the pending write by reading the agent back, "
        "then: nothing to do: the agent matches Graph",
        (),
        None,
    ),
    ("graph unread", MEMBER, [GROUP], ACTIVE, {"known": False}, "unknown", None, (), None),
]


@pytest.mark.parametrize(
    ("person", "member_of", "record", "extra", "action", "text", "fields", "until"),
    [c[1:] for c in NEXT_CASES],
    ids=[c[0] for c in NEXT_CASES],
)
def test_next_cycle(
    person: Member | Skipped | None,
    member_of: list[str],
    record: Recorded | None,
    extra: dict[str, Any],
    action: str,
    text: str | None,
    fields: tuple[str, ...],
    until: float | None,
) -> None:
    result = next_cycle(
        object_id=OID,
        person=person,
        configured=[GROUP, SECOND],
        member_of=member_of,
        record=record,
        now=NOW,
        max_offboard=0,  # guards never hide one person's decision
        **extra,
    )
    assert (result.action, result.fields, result.waiting_until) == (action, fields, until)
    if text is not None:
        assert result.text == text
    else:
        assert result.text.startswith("cannot tell: Graph could not be read")
    assert result.full_cycle is None


@pytest.mark.parametrize(
    ("remote", "record", "expected"),
    [
        (Agent(OID, TENANT, "+14155550100", "active", "ada@contoso.com"), ACTIVE, None),
        (
            None,
            ACTIVE,
            "onboard ada@contoso.com with +14155550100 (in scope, no agent yet) "
            "(the agent differs from our record)",
        ),
        (
            Agent(OID, TENANT, "+14155550000", "active"),
            ACTIVE,
            "update phone_number +14155550000 -> +14155550100 (the agent differs from our record)",
        ),
        (
            Agent(OID, TENANT, "+14155550100", "orphaned"),
            ACTIVE,
            "onboard ada@contoso.com with +14155550100 (in scope, no agent yet) "
            "(the agent differs from our record)",
        ),
    ],
    ids=["same", "gone", "drifted", "offboarded"],
)
def test_next_cycle_reports_what_a_full_cycle_would_repair(
    remote: Agent | None, record: Recorded, expected: str | None
) -> None:
    result = next_cycle(
        object_id=OID,
        person=MEMBER,
        configured=[GROUP],
        member_of=[GROUP],
        record=record,
        now=NOW,
        max_offboard=25,
        remote=remote,
        remote_known=True,
    )
    assert result.action == "nothing"
    assert result.full_cycle == expected


def explanation(**changes: Any) -> Explanation:
    values: dict[str, Any] = {
        "query": "ada@contoso.com",
        "who": Who(OID, "ada@contoso.com", None, True, True, True),
        "membership": Membership([GroupRef(GROUP, "Agents")], paths=[[GroupRef(GROUP, "Agents")]]),
        "phone": Phone(
            ["businessPhones"],
            "US",
            [SourceVerdict("businessPhones", "+1 415 555 0100", "+14155550100", None, True)],
            True,
            "+14155550100",
            "businessPhones",
        ),
        "consistency": Consistency(None, None, "not set"),
        "record": RecordSection(ACTIVE, NOW, NOW),
        "remote": Remote(Agent(OID, TENANT, "+14155550100", "active", "ada@contoso.com")),
        "operations": [],
        "next_cycle": NextCycle("nothing", "nothing to do: the agent matches Graph"),
        "generated_at": NOW,
    }
    return Explanation(**(values | changes))


def test_render_text_sections_in_order() -> None:
    text = render_text(explanation())
    titles = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert titles == [
        "Who",
        "Membership",
        "Phone (sources: businessPhones; region US)",
        "Consistency GUID",
        "Our record",
        "SmartCommunicator now",
        "Last operations",
        "Next cycle",
    ]
    assert f"    Agents ({GROUP}) > ada@contoso.com\n" in text
    assert "  businessPhones    '+1 415 555 0100' -> +14155550100   <- chosen\n" in text
    assert text.endswith("Next cycle\n  nothing to do: the agent matches Graph\n")


MANAGERS = "33333333-3333-4333-8333-333333333333"
LEADS = "44444444-4444-4444-8444-444444444444"


def test_an_excluded_person_is_shown_with_the_path_through_the_excluded_group() -> None:
    membership = Membership(
        [GroupRef(GROUP, "Agents")],
        paths=[[GroupRef(GROUP, "Agents"), GroupRef(MANAGERS, "Managers"), GroupRef(LEADS, "Team leads")]],
        excluded=[GroupRef(MANAGERS, "Managers")],
        excluded_paths=[[GroupRef(MANAGERS, "Managers"), GroupRef(LEADS, "Team leads")]],
    )
    assert membership.excluded_by == GroupRef(MANAGERS, "Managers")
    detail = f"member of excluded group Managers ({MANAGERS})"
    skipped = Phone(["businessPhones"], "US", [], False, skip_reason="excluded_group", detail=detail)
    text = render_text(explanation(membership=membership, phone=skipped))
    assert (
        "  excluded through 1 of 1 excluded group(s) (graph.exclude_group_ids):\n"
        f"    Managers ({MANAGERS}) > Team leads ({LEADS}) > ada@contoso.com\n"
    ) in text
    assert (
        f"  verdict           skipped: excluded_group (member of excluded group Managers ({MANAGERS}))"
        in text
    )
    document = explanation(membership=membership).to_json()["membership"]
    assert document["excluded_by"] == {"id": MANAGERS, "display_name": "Managers"}
    assert document["excluded_groups"] == [{"id": MANAGERS, "display_name": "Managers"}]
    assert [[g["id"] for g in path] for path in document["excluded_paths"]] == [[MANAGERS, LEADS]]


def test_a_person_in_no_excluded_group_says_so_and_has_no_excluded_by() -> None:
    membership = Membership(
        [GroupRef(GROUP, "Agents")],
        paths=[[GroupRef(GROUP, "Agents")]],
        excluded=[GroupRef(MANAGERS, "Managers")],
    )
    assert membership.excluded_by is None
    assert f"  excluded groups   in none of Managers ({MANAGERS})\n" in render_text(
        explanation(membership=membership)
    )
    assert explanation(membership=membership).to_json()["membership"]["excluded_by"] is None


def test_the_filter_section_shows_the_expression_and_the_clause_that_failed() -> None:
    failed = "usageLocation in ('US', 'CA') is false: usageLocation is 'DE'"
    filtered = explanation(filter=Filter("usageLocation in ('US', 'CA')", False, failed))
    text = render_text(filtered)
    titles = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert titles.index("Filter (graph.filter)") == titles.index("Membership") + 1
    assert "Filter (graph.filter)\n  expression        usageLocation in ('US', 'CA')\n" in text
    assert f"  result            fails: {failed}\n" in text
    assert filtered.to_json()["filter"] == {
        "expression": "usageLocation in ('US', 'CA')",
        "passed": False,
        "failed_clause": failed,
    }
    assert "  result            passes\n" in render_text(explanation(filter=Filter("city eq 'x'", True)))
    assert "not evaluated" in render_text(explanation(filter=Filter("city eq 'x'")))
    # Without a filter there is no section, and the JSON says so.
    assert "Filter (graph.filter)" not in render_text(explanation())
    assert explanation().to_json()["filter"] == {"expression": None, "passed": None, "failed_clause": None}


def test_failed_sections_say_what_failed_and_are_listed_in_errors() -> None:
    failed = explanation(
        membership=Membership([GroupRef(GROUP)], error="Graph: could not read the group memberships: boom"),
        remote=Remote(error="SmartCommunicator: could not read the agent: [HTTP 503] unavailable"),
        next_cycle=NextCycle("unknown", "cannot tell: Graph could not be read (see above)"),
    )
    assert failed.errors == [
        "Graph: could not read the group memberships: boom",
        "SmartCommunicator: could not read the agent: [HTTP 503] unavailable",
    ]
    text = render_text(failed)
    assert "Membership\n  configured groups " + GROUP + "\n  error             Graph: could not read" in text
    assert "SmartCommunicator now\n  error             SmartCommunicator: could not read the agent:" in text
    document = failed.to_json()
    assert document["membership"]["member"] is None
    assert document["remote"]["error"].startswith("SmartCommunicator: could not read the agent")
    assert document["errors"] == failed.errors
    assert explanation().errors == []


def test_an_agent_we_have_no_record_of_is_adopted_by_the_next_cycle() -> None:
    result = next_cycle(
        object_id=OID,
        person=MEMBER,
        configured=[GROUP],
        member_of=[GROUP],
        record=None,
        now=NOW,
        max_offboard=25,
        remote=Agent(OID, TENANT, "+14155550100", "active", "ada@contoso.com"),
        remote_known=True,
    )
    # An incremental cycle onboards (and adopts the agent on "already exists"); a full one sees it.
    assert result.action == "onboard"
    assert result.full_cycle == "nothing to do: the agent matches Graph (we have no record of them)"


def test_a_wait_says_how_to_retry_now() -> None:
    waiting = NextCycle("wait", "waiting for retry until ...", waiting_until=NOW + 60)
    assert render_text(explanation(next_cycle=waiting)).endswith(
        f"Next cycle\n  waiting for retry until ...\n  (syncd sync --user {OID} retries at once)\n"
    )


def test_a_truncated_group_search_without_a_path_is_not_taken_for_out_of_scope() -> None:
    searched = Membership([GroupRef(GROUP)], groups_visited=500, truncated=True)
    assert searched.member is None
    assert Membership([GroupRef(GROUP)], groups_visited=3).member is False
    found = Membership([GroupRef(GROUP)], paths=[[GroupRef(GROUP)]], groups_visited=500, truncated=True)
    assert found.member is True
    text = render_text(explanation(membership=searched))
    assert "within the first 500 nested groups searched: membership is not known" in text
    assert "this alone means no agent" not in text
    verdict = next_cycle(
        object_id=OID,
        person=None,
        configured=[GROUP],
        member_of=[],
        record=None,
        now=NOW,
        max_offboard=25,
        known=False,
        why_unknown="the nested-group search stopped before it found the person (see Membership)",
    )
    assert (verdict.action, verdict.text) == (
        "unknown",
        "cannot tell: the nested-group search stopped before it found the person (see Membership)",
    )


# remote text in the terminal, and what is asked in Graph paths

EVIL_UPN = "\x1b[31mevil\x1b[0m@contoso.com"
SHOWN_UPN = "\\x1b[31mevil\\x1b[0m@contoso.com"


def test_render_text_shows_control_characters_and_bidi_overrides_as_escapes() -> None:
    holder = Agent(OTHER, TENANT, "+14155550100", "active", "\x9b2Jholder@contoso.com")
    hostile = explanation(
        who=Who(OID, EVIL_UPN, "Ada \x1b]0;pwned\x07Lovelace\u202e", True, True, True),
        membership=Membership(
            [GroupRef(GROUP, "Agents\r\x1b[2K")], paths=[[GroupRef(GROUP, "Agents\r\x1b[2K")]]
        ),
        phone=Phone(
            ["businessPhones"],
            "US",
            [SourceVerdict("businessPhones", "\x1b[8m+1 415 555 0100", None, "is not a phone number")],
            False,
            None,
            None,
            skip_reason="invalid_phone",
            detail="businessPhones '\x1b[8m...' is not a phone number\nfake line",
        ),
        remote=Remote(
            Agent(OID, TENANT, "+14155550199", "active", EVIL_UPN),
            number_checked="+14155550100",
            number_holder=holder,
        ),
    )
    text = render_text(hostile)
    assert not {"\x1b", "\x07", "\x9b", "\r", "\u202e"} & set(text)
    assert "\n  fake line" not in text
    assert f"  UPN               {SHOWN_UPN}\n" in text
    assert "  display name      Ada \\x1b]0;pwned\\x07Lovelace\\u202e\n" in text
    assert f"    Agents\\x0d\\x1b[2K ({GROUP}) > {SHOWN_UPN}\n" in text
    assert "is not a phone number\\x0afake line" in text
    assert f"                    UPN {SHOWN_UPN}\n" in text
    assert f"is held by agent {OTHER} (\\x9b2Jholder@contoso.com), active" in text
    # The JSON keeps every character (json.dumps escapes them).
    assert hostile.to_json()["who"]["upn"] == EVIL_UPN


class RecordingSource:
    """A GraphSource that records the reads asked of it and finds nobody."""

    reads: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, settings: object, *, transport: object = None) -> None:
        pass

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def get_user(self, key: str) -> dict[str, Any] | None:
        self.reads.append(("get_user", key))
        return None

    async def teams_assignments(self, odata_filter: str) -> list[dict[str, Any]]:
        self.reads.append(("teams_assignments", odata_filter))
        return []


class RecordsStore:
    """What explain reads of a store before Graph: the members matching the text asked."""

    def __init__(self, *records: Recorded) -> None:
        self.records = records

    def find_members(self, text: str) -> list[tuple[Recorded, float]]:
        return [(record, NOW) for record in self.records]


def settings() -> Settings:
    return Settings.model_validate(
        {
            "graph": {
                "tenant_id": TENANT,
                "client_id": "11111111-2222-4333-8444-555555555555",
                "client_secret": "x" * 40,
                "group_ids": [GROUP],
            },
            "smartcomm": {
                "base_url": "https://smartcomm.invalid",
                "customer_id": 1,
                "username": "syncd",
                "password": "x" * 20,
            },
        }
    )


@pytest.mark.parametrize("query", ["../../groups", "..", ".", "users?$top=999", "12345", "ada"])
async def test_a_query_that_is_no_upn_object_id_or_number_is_refused_before_graph_is_read(
    query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gathering, "GraphSource", RecordingSource)
    monkeypatch.setattr(RecordingSource, "reads", [])
    with pytest.raises(PersonNotFound) as refused:
        await explain_person(settings(), cast(Store, RecordsStore()), query)
    assert RecordingSource.reads == []
    assert str(refused.value) == (
        f"{query!r} is not a UPN (name@domain), an object ID (a GUID) or a phone number: "
        "syncd explain looks people up by these only"
    )


async def test_several_people_matching_a_number_are_listed_with_escapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gathering, "GraphSource", RecordingSource)
    store = RecordsStore(
        Recorded(OID, MemberStatus.ACTIVE, PUSHED, upn=EVIL_UPN),
        Recorded(OTHER, MemberStatus.ACTIVE, PUSHED, upn="bob@contoso.com"),
    )
    with pytest.raises(AmbiguousPerson) as ambiguous:
        await explain_person(settings(), cast(Store, store), "+1 415 555 0100")
    message = str(ambiguous.value)
    assert "\x1b" not in message
    assert f"{OID} ({SHOWN_UPN}), {OTHER} (bob@contoso.com)" in message
    assert ambiguous.value.candidates == [(OID, EVIL_UPN), (OTHER, "bob@contoso.com")]  # exact, for links
