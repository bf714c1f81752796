"""The plan's fast path for people in step (`reconcile._in_step`) decides exactly what its slow path does:
over generated people (fields equal or not, None or not, agents active or not, records failed, waiting,
leaving), a plan with the fast path equals a plan built by the slow path alone."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core import reconcile
from syncd.core.model import Agent, AgentFields, DesiredState, Member, MemberStatus, Recorded
from syncd.core.reconcile import plan

NOW = 1_800_000_000.0
TEXT = st.sampled_from(["a", "b"])
MAYBE = st.none() | TEXT
SOURCE = st.sampled_from(["businessPhones", "mobilePhone"])


@st.composite
def in_step(draw: st.DrawFn, object_id: str) -> tuple[Member, Recorded, Agent]:
    """A person whose agent matches them, with perhaps one thing off (a field, the status, the record)."""
    member = Member(object_id, "t", draw(MAYBE), "+1", draw(MAYBE), draw(SOURCE))
    pushed = draw(MAYBE)
    record = Recorded(
        object_id,
        draw(st.sampled_from(list(MemberStatus))),
        AgentFields("t", "+1", pushed, member.consistency_id) if draw(st.booleans()) else None,
        member.upn,
        next_attempt_at=draw(st.sampled_from([None, NOW - 10, NOW + 10])),
        phone_source=draw(st.none() | SOURCE),
        left_scope_at=draw(st.sampled_from([None, None, NOW - 10])),
    )
    agent = Agent(
        object_id, "t", "+1", "active", draw(st.sampled_from([None, member.upn])), member.consistency_id
    )
    off = draw(st.sampled_from(["nothing", "nothing", "phone", "tenant", "guid", "upn", "status"]))
    changed = {
        "nothing": {},
        "phone": {"phone_number": "+2"},
        "tenant": {"tenant_id": "u"},
        "guid": {"consistency_id": draw(MAYBE)},
        "upn": {"upn": draw(MAYBE)},
        "status": {"status": "offboarded"},
    }[off]
    return member, record, dataclasses.replace(agent, **changed)  # type: ignore[arg-type]


@st.composite
def person(draw: st.DrawFn, index: int) -> tuple[Member | None, Recorded | None, Agent | None]:
    object_id = f"{index:08d}-0000-4000-8000-000000000000"
    if draw(st.booleans()):
        return draw(in_step(object_id))
    member = (
        Member(object_id, draw(TEXT), draw(MAYBE), draw(TEXT), draw(MAYBE), draw(SOURCE))
        if draw(st.booleans()) or index == 0
        else None
    )
    record = None
    if draw(st.booleans()):
        agent_fields = (
            AgentFields(draw(TEXT), draw(TEXT), draw(MAYBE), draw(MAYBE)) if draw(st.booleans()) else None
        )
        record = Recorded(
            object_id,
            draw(st.sampled_from(list(MemberStatus))),
            agent_fields,
            draw(MAYBE),
            next_attempt_at=draw(st.sampled_from([None, NOW - 10, NOW + 10])),
            phone_source=draw(st.none() | SOURCE),
            left_scope_at=draw(st.sampled_from([None, NOW - 10])),
        )
    agent = (
        Agent(
            object_id,
            draw(TEXT),
            draw(TEXT),
            draw(st.sampled_from(["active", "offboarded"])),
            draw(MAYBE),
            draw(MAYBE),
        )
        if draw(st.booleans())
        else None
    )
    return member, record, agent


@st.composite
def people(draw: st.DrawFn) -> list[tuple[Member | None, Recorded | None, Agent | None]]:
    return [draw(person(index)) for index in range(draw(st.integers(min_value=1, max_value=6)))]


@settings(max_examples=400, deadline=None)
@given(people())
def test_the_fast_path_plans_what_the_slow_path_plans(
    crowd: list[tuple[Member | None, Recorded | None, Agent | None]],
) -> None:
    members = {m.object_id: m for m, _, _ in crowd if m is not None}
    recorded = {r.object_id: r for _, r, _ in crowd if r is not None}
    remote = {a.user_object_id: a for _, _, a in crowd if a is not None}
    desired = DesiredState(members=members, skipped={}, group_counts={"g": len(members)})
    options = {"now": NOW, "max_offboard": 100, "force": True, "offboard_grace_s": 60.0}
    fast = plan(desired, recorded, remote, **options)  # type: ignore[arg-type]
    original = reconcile._in_step
    reconcile._in_step = lambda member, record, agent: False  # type: ignore[assignment]
    try:
        slow = plan(desired, recorded, remote, **options)  # type: ignore[arg-type]
    finally:
        reconcile._in_step = original
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
