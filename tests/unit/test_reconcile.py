"""The pure plan: table-driven cases, the guards, settle, and convergence properties (hypothesis)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.core.model import (
    Action,
    Agent,
    AgentFields,
    DesiredState,
    Member,
    MemberStatus,
    Outcome,
    Recorded,
    Skipped,
    SkipReason,
)
from syncd.core.reconcile import changed_fields, plan
from syncd.core.settle import retry_delay_s, settle, settle_moved_from

SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
"""Health checks these property tests do without (too_slow: a timing check; see tests/conftest.py)."""

T = "tenant"
G1, G2 = "group-1", "group-2"
NOW = 1_000_000.0


def member(oid: str, phone: str = "+14155550100", upn: str | None = None, guid: str | None = None) -> Member:
    return Member(oid, T, upn or f"{oid}@x.com", phone, guid)


def desired(
    *members: Member, skipped: tuple[Skipped, ...] = (), counts: dict[str, int] | None = None
) -> DesiredState:
    return DesiredState(
        members={m.object_id: m for m in members},
        skipped={s.object_id: s for s in skipped},
        group_counts=counts if counts is not None else {G1: len(members) + len(skipped)},
    )


def active(m: Member, **changes: object) -> Recorded:
    agent = dataclasses.replace(AgentFields.of(m), **changes)  # type: ignore[arg-type]
    return Recorded(m.object_id, MemberStatus.ACTIVE, agent, upn=m.upn)


def actions(result: object) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.action.value, c.object_id, c.fields) for c in result.changes]  # type: ignore[attr-defined]


A, B, C = member("a"), member("b", "+14155550101"), member("c", "+14155550102")


@pytest.mark.parametrize(
    ("state", "records", "expected", "unchanged"),
    [
        pytest.param(desired(A), {}, [("onboard", "a", ())], 0, id="new-member"),
        pytest.param(desired(A), {"a": active(A)}, [], 1, id="unchanged"),
        pytest.param(
            desired(A),
            {"a": active(A, phone_number="+1999")},
            [("update", "a", ("phone_number",))],
            0,
            id="phone-changed",
        ),
        pytest.param(
            desired(A), {"a": active(A, upn="old@x.com")}, [("update", "a", ("upn",))], 0, id="upn-renamed"
        ),
        pytest.param(
            desired(member("a", guid="g2")),
            {"a": active(member("a", guid="g1"))},
            [("update", "a", ("consistency_id",))],
            0,
            id="guid-changed",
        ),
        pytest.param(
            desired(member("a")), {"a": active(member("a", guid="g1"))}, [], 1, id="guid-gone-is-not-cleared"
        ),
        pytest.param(desired(), {"a": active(A)}, [("offboard", "a", ())], 0, id="left-groups"),
        pytest.param(
            desired(skipped=(Skipped("a", "a@x.com", SkipReason.NO_PHONE, "businessPhones is empty"),)),
            {"a": active(A)},
            [("offboard", "a", ())],
            0,
            id="lost-phone-leaves-scope",
        ),
        pytest.param(
            desired(A),
            {"a": Recorded("a", MemberStatus.OFFBOARDED)},
            [("onboard", "a", ())],
            0,
            id="came-back",
        ),
        pytest.param(
            desired(A),
            {"a": Recorded("a", MemberStatus.SKIPPED, skip_reason=SkipReason.NO_PHONE)},
            [("onboard", "a", ())],
            0,
            id="skipped-now-has-phone",
        ),
        pytest.param(desired(), {"a": Recorded("a", MemberStatus.SKIPPED)}, [], 0, id="skipped-left-quietly"),
        pytest.param(
            desired(A),
            {"a": Recorded("a", MemberStatus.FAILED, None, attempts=2, next_attempt_at=NOW + 5)},
            [],
            0,
            id="failed-waits-for-backoff",
        ),
        pytest.param(
            desired(A),
            {"a": Recorded("a", MemberStatus.FAILED, None, attempts=2, next_attempt_at=NOW - 1)},
            [("onboard", "a", ())],
            0,
            id="failed-retried-after-backoff",
        ),
        pytest.param(
            desired(A, B, C),
            {"b": active(B), "c": active(C, phone_number="+1")},
            [("onboard", "a", ()), ("update", "c", ("phone_number",))],
            1,
            id="mixed",
        ),
    ],
)
def test_plan_table(
    state: DesiredState, records: dict[str, Recorded], expected: list[object], unchanged: int
) -> None:
    result = plan(state, records, now=NOW, max_offboard=25)
    assert actions(result) == expected
    assert result.unchanged == unchanged
    assert result.stop is None


def test_deferred_people_are_listed_and_only_retries_them_now() -> None:
    records = {"a": Recorded("a", MemberStatus.FAILED, None, attempts=1, next_attempt_at=NOW + 60)}
    assert plan(desired(A), records, now=NOW, max_offboard=25).deferred == ["a"]
    assert actions(plan(desired(A), records, now=NOW, max_offboard=25, only="a")) == [("onboard", "a", ())]


def test_only_plans_one_person() -> None:
    result = plan(desired(A, B), {}, now=NOW, max_offboard=25, only="b")
    assert actions(result) == [("onboard", "b", ())]


def test_deletion_guard_stops_unless_forced() -> None:
    records = {m.object_id: active(m) for m in (A, B, C)}
    stopped = plan(desired(counts={G1: 5}), records, now=NOW, max_offboard=2)
    assert stopped.stop is not None
    assert stopped.stop.guard == "max_offboard"
    assert "3 offboardings exceed sync.max_offboard = 2" in stopped.stop.message
    forced = plan(desired(counts={G1: 5}), records, now=NOW, max_offboard=2, force=True)
    assert forced.stop is None
    assert forced.count(Action.OFFBOARD) == 3
    assert plan(desired(counts={G1: 5}), records, now=NOW, max_offboard=3).stop is None


def test_empty_group_guard() -> None:
    records = {"a": active(A)}
    state = desired(counts={G1: 0, G2: 4})
    stopped = plan(state, records, now=NOW, max_offboard=25, previous_in_scope={G1: 1, G2: 4})
    assert stopped.stop is not None
    assert stopped.stop.guard == "empty_group"
    assert G1 in stopped.stop.message
    assert plan(state, records, now=NOW, max_offboard=25, previous_in_scope={G1: 0}).stop is None
    assert plan(state, records, now=NOW, max_offboard=25, previous_in_scope={G1: 1}, force=True).stop is None


def test_full_cycle_repairs_drift_and_reports_unmanaged() -> None:
    remote = {
        "a": Agent("a", T, "+19999999999", "active"),  # managed, number drifted
        "b": Agent("b", T, B.phone_number, "offboarded"),  # managed, gone remotely: onboard again
        "x": Agent("x", T, "+14155550999", "active"),  # never managed: reported only
        "gone": Agent("gone", T, "+14155550998", "offboarded"),
    }
    records = {
        "a": active(A),
        "b": active(B),
        "gone": Recorded("gone", MemberStatus.ACTIVE, AgentFields(T, "+1", None, None)),
    }
    result = plan(desired(A, B), records, remote, now=NOW, max_offboard=25)
    assert actions(result) == [("update", "a", ("phone_number",)), ("onboard", "b", ())]
    assert [agent.user_object_id for agent in result.unmanaged] == ["x"]
    assert result.forgotten == ["gone"]


def test_a_full_cycle_finds_records_and_agents_of_nobody_in_scope_whatever_their_count() -> None:
    # The plan looks for records and agents that are not members only when fewer than all of them were met
    # among the members: one more (or one fewer) of either changes what it must find.
    in_step = {
        "a": Agent("a", T, A.phone_number, "active", A.upn, A.consistency_id),
        "b": Agent("b", T, B.phone_number, "active", B.upn, B.consistency_id),
    }
    records = {"a": active(A), "b": active(B)}
    everyone = plan(desired(A, B), records, in_step, now=NOW, max_offboard=25)
    assert (everyone.changes, everyone.unmanaged, everyone.forgotten, everyone.unchanged) == ([], [], [], 2)
    stranger = in_step | {"x": Agent("x", T, "+14155550999", "active")}
    found = plan(desired(A, B), records, stranger, now=NOW, max_offboard=25)
    assert [agent.user_object_id for agent in found.unmanaged] == ["x"]
    leaver = plan(desired(A), records, in_step, now=NOW, max_offboard=25)
    assert actions(leaver) == [("offboard", "b", ())]
    assert leaver.unmanaged == []  # b's agent is ours: offboarded, not reported
    # As many records as members, but not the same people: c is found although the counts match.
    swapped = {"a": active(A), "c": active(C)}
    remote = in_step | {"c": Agent("c", T, C.phone_number, "active", C.upn, C.consistency_id)}
    result = plan(desired(A, B), swapped, remote, now=NOW, max_offboard=25)
    assert (actions(result), result.unchanged) == ([("offboard", "c", ())], 2)


def test_full_cycle_adopts_existing_agents_of_members() -> None:
    remote = {"a": Agent("a", T, A.phone_number, "active")}
    result = plan(desired(A), {}, remote, now=NOW, max_offboard=25)
    # The list has no UPN: adoption patches it once, and sends no POST.
    assert actions(result) == [("update", "a", ("upn",))]


def test_changed_fields_never_clears() -> None:
    believed = AgentFields(T, "+1", "u@x.com", "g")
    assert changed_fields(believed, AgentFields(T, "+1", None, None)) == ()
    assert changed_fields(believed, AgentFields("t2", "+2", "v@x.com", "h")) == (
        "phone_number",
        "upn",
        "consistency_id",
        "tenant_id",
    )


@pytest.mark.parametrize(("attempts", "delay"), [(1, 60.0), (2, 120.0), (3, 240.0), (10, 3600.0)])
def test_retry_delay_doubles_to_a_cap(attempts: int, delay: float) -> None:
    assert retry_delay_s(attempts, initial_s=60.0, max_s=3600.0) == delay


def test_settle_outcomes() -> None:
    onboard = plan(desired(A), {}, now=NOW, max_offboard=25).changes[0]
    ok = settle(onboard, Outcome.OK, None, now=NOW, upn=A.upn)
    assert ok == Recorded("a", MemberStatus.ACTIVE, AgentFields.of(A), upn=A.upn)
    failed = settle(onboard, Outcome.FAILED, None, now=NOW, upn=A.upn, error="conflict", retry_initial_s=10)
    assert (failed.status, failed.agent, failed.attempts, failed.next_attempt_at, failed.detail) == (
        MemberStatus.FAILED,
        None,
        1,
        NOW + 10,
        "conflict",
    )
    again = settle(onboard, Outcome.FAILED, failed, now=NOW, upn=A.upn, error="conflict", retry_initial_s=10)
    assert (again.attempts, again.next_attempt_at) == (2, NOW + 20)
    systemic = settle(onboard, Outcome.FAILED, failed, now=NOW, upn=A.upn, error="down", backoff=False)
    assert systemic.next_attempt_at is None
    offboard = plan(desired(), {"a": active(A)}, now=NOW, max_offboard=25).changes[0]
    assert (
        settle(offboard, Outcome.ALREADY_GONE, active(A), now=NOW, upn=A.upn).status
        is MemberStatus.OFFBOARDED
    )
    adopted = settle(
        onboard, Outcome.ADOPTED, None, now=NOW, upn=A.upn, agent=AgentFields(T, "+1", "z", None)
    )
    assert adopted.agent == AgentFields(T, "+1", "z", None)


# -- properties ----------------------------------------------------------------------------------------------

ids = st.sampled_from([f"u{i}" for i in range(12)])
phones = st.sampled_from(["+14155550100", "+14155550101", "+442079460958", "+4930901820"])
upns = st.sampled_from(["a@x.com", "b@x.com", "c@x.com"])
guids = st.one_of(st.none(), st.sampled_from(["g1", "g2"]))
members = st.builds(lambda oid, p, u, g: Member(oid, T, u, p, g), ids, phones, upns, guids)
fields = st.builds(AgentFields, st.just(T), phones, st.one_of(st.none(), upns), guids)
records = st.builds(
    lambda oid, status, agent: Recorded(
        oid, status, agent if status is not MemberStatus.OFFBOARDED else None
    ),
    ids,
    st.sampled_from(
        [MemberStatus.ACTIVE, MemberStatus.OFFBOARDED, MemberStatus.SKIPPED, MemberStatus.FAILED]
    ),
    st.one_of(st.none(), fields),
)


def apply_all(result: object, recorded: dict[str, Recorded], state: DesiredState) -> dict[str, Recorded]:
    after = dict(recorded)
    for change in result.changes:  # type: ignore[attr-defined]
        upn = state.members[change.object_id].upn if change.object_id in state.members else None
        after[change.object_id] = settle(change, Outcome.OK, after.get(change.object_id), now=NOW, upn=upn)
        if change.from_object_id is not None:
            moved = settle_moved_from(change, True, after.get(change.from_object_id))
            assert moved is not None
            after[change.from_object_id] = moved
    return after


@settings(max_examples=300, database=None, suppress_health_check=SUPPRESSED)
@given(st.lists(members, max_size=8), st.lists(records, max_size=8))
def test_applying_a_plan_converges_and_planning_again_is_a_no_op(
    wanted: list[Member], history: list[Recorded]
) -> None:
    state = desired(*{m.object_id: m for m in wanted}.values())
    recorded = {r.object_id: r for r in history}
    first = plan(state, recorded, now=NOW, max_offboard=100)
    after = apply_all(first, recorded, state)
    for object_id, m in state.members.items():
        agent = after[object_id].agent
        assert agent is not None
        assert changed_fields(agent, AgentFields.of(m)) == ()
    assert all(r.agent is None for oid, r in after.items() if oid not in state.members)
    second = plan(state, after, now=NOW, max_offboard=100)
    assert second.changes == []
    assert second.unchanged == len(state.members)


@settings(max_examples=200, database=None, suppress_health_check=SUPPRESSED)
@given(st.lists(members, max_size=8), st.lists(records, max_size=8), st.integers(min_value=0, max_value=5))
def test_guard_never_lets_more_offboards_through(
    wanted: list[Member], history: list[Recorded], limit: int
) -> None:
    state = desired(*{m.object_id: m for m in wanted}.values())
    result = plan(state, {r.object_id: r for r in history}, now=NOW, max_offboard=limit)
    assert result.stop is not None or result.count(Action.OFFBOARD) <= limit


def test_a_group_whose_members_all_fall_out_of_scope_stops_the_cycle() -> None:
    # Graph's "limited information" answer: the users are read, but none has a phone any more.
    records = {m.object_id: active(m) for m in (A, B)}
    skipped = tuple(
        Skipped(m.object_id, m.upn, SkipReason.NO_PHONE, "businessPhones is empty") for m in (A, B)
    )
    state = DesiredState(
        members={}, skipped={s.object_id: s for s in skipped}, group_counts={G1: 2}, group_in_scope={G1: 0}
    )
    stopped = plan(state, records, now=NOW, max_offboard=25, previous_in_scope={G1: 2})
    assert stopped.stop is not None
    assert stopped.stop.guard == "empty_group"


def test_an_unchanged_agent_whose_number_comes_from_another_source_is_resourced() -> None:
    from_teams = dataclasses.replace(A, phone_source="teams")
    recorded = {
        "a": dataclasses.replace(active(A), phone_source="businessPhones"),
        "b": dataclasses.replace(active(B), phone_source="businessPhones"),
    }
    same_source_b = dataclasses.replace(B, phone_source="businessPhones")
    result = plan(desired(from_teams, same_source_b), recorded, now=NOW, max_offboard=10)
    assert (result.changes, result.unchanged, result.resourced) == ([], 2, ["a"])


def test_a_new_number_from_a_new_source_is_an_update_not_a_resourcing() -> None:
    moved = dataclasses.replace(A, phone_number="+14155550199", phone_source="teams")
    recorded = {"a": dataclasses.replace(active(A), phone_source="businessPhones")}
    result = plan(desired(moved), recorded, now=NOW, max_offboard=10)
    assert actions(result) == [("update", "a", ("phone_number",))]
    assert result.resourced == []


def test_settle_records_where_the_number_came_from() -> None:
    wanted = AgentFields.of(A)
    onboard = plan(desired(A), {}, now=NOW, max_offboard=10).changes[0]
    done = settle(onboard, Outcome.OK, None, now=NOW, upn=A.upn, phone_source="teams")
    assert (done.status, done.agent, done.phone_source) == (MemberStatus.ACTIVE, wanted, "teams")
    # Adopted with another number than the desired one: that number did not come from the source.
    other = dataclasses.replace(wanted, phone_number="+14155550111")
    adopted = settle(onboard, Outcome.ADOPTED, None, now=NOW, upn=A.upn, agent=other, phone_source="teams")
    assert (adopted.agent, adopted.phone_source) == (other, None)
    # A failure keeps the previous belief and its source.
    previous = dataclasses.replace(active(A, phone_number="+1999"), phone_source="mobilePhone")
    update = plan(desired(A), {"a": previous}, now=NOW, max_offboard=10).changes[0]
    failed = settle(update, Outcome.FAILED, previous, now=NOW, upn=A.upn, error="x", phone_source="teams")
    assert (failed.status, failed.agent, failed.phone_source) == (
        MemberStatus.FAILED,
        previous.agent,
        "mobilePhone",
    )


def teams_state(*members: Member, numbers: int | None) -> DesiredState:
    state = desired(*members)
    state.teams_numbers = numbers
    return state


def test_an_empty_teams_read_stops_the_cycle_when_agents_have_teams_numbers() -> None:
    on_teams = {m.object_id: dataclasses.replace(active(m), phone_source="teams") for m in (A, B)}
    # Graph listed no Teams number: everyone falls back to businessPhones (same numbers here).
    fallback = [dataclasses.replace(m, phone_source="businessPhones") for m in (A, B)]
    stopped = plan(teams_state(*fallback, numbers=0), on_teams, now=NOW, max_offboard=10)
    assert stopped.stop is not None
    assert stopped.stop.guard == "teams_numbers"
    assert "no Teams number" in stopped.stop.message
    assert (
        plan(teams_state(*fallback, numbers=0), on_teams, now=NOW, max_offboard=10, force=True).stop is None
    )
    # No agent has a Teams number yet (or teams is not a source at all): nothing to protect.
    assert plan(teams_state(*fallback, numbers=0), {}, now=NOW, max_offboard=10).stop is None
    assert plan(teams_state(*fallback, numbers=None), on_teams, now=NOW, max_offboard=10).stop is None


def test_more_agents_leaving_their_teams_numbers_than_max_offboard_stops_the_cycle() -> None:
    people = [member(f"p{i}", f"+1415555{i:04d}") for i in range(4)]
    recorded = {m.object_id: dataclasses.replace(active(m), phone_source="teams") for m in people}
    # Three renumbered from mobilePhone, one kept on Teams; a fifth person joins (not counted).
    moved = [
        dataclasses.replace(m, phone_number=f"+1415556{i:04d}", phone_source="mobilePhone")
        for i, m in enumerate(people[:3])
    ]
    kept = dataclasses.replace(people[3], phone_source="teams")
    state = teams_state(*moved, kept, member("new", "+14155559999"), numbers=1)
    stopped = plan(state, recorded, now=NOW, max_offboard=2)
    assert stopped.stop is not None
    assert stopped.stop.guard == "teams_numbers"
    assert stopped.stop.message.startswith("3 agents would lose the number they have from Teams")
    assert plan(state, recorded, now=NOW, max_offboard=3).stop is None
    # A person who left scope counts too; a Teams number that changes to another Teams number does not.
    renumbered_in_teams = dataclasses.replace(people[0], phone_number="+14155557777", phone_source="teams")
    state = teams_state(renumbered_in_teams, *people[1:3], numbers=3)
    result = plan(state, recorded, now=NOW, max_offboard=1)
    assert actions(result)[0] == ("update", "p0", ("phone_number",))
    assert result.count(Action.OFFBOARD) == 1  # p3 left
    assert result.stop is None
