"""`syncd.cycle.recovery.settlements`, pure: how the writes a crash left pending are settled from what was
read back, in the order they were recorded, and which stay pending when a read is missing."""

from __future__ import annotations

from syncd.core.model import Action, AgentFields, MemberStatus, Outcome, Recorded
from syncd.cycle.recovery import INTERRUPTED, ReadBack, settlements
from syncd.store import PendingOperation

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
NOW = 1_800_000_000.0


def fields(phone: str, upn: str | None = None) -> AgentFields:
    return AgentFields(TENANT, phone, upn, None)


def op(
    op_id: int,
    action: Action,
    object_id: str,
    desired: AgentFields | None = None,
    believed: AgentFields | None = None,
    from_object_id: str | None = None,
) -> PendingOperation:
    return PendingOperation(op_id, 1, object_id, action, desired, believed, from_object_id)


def test_a_write_the_service_shows_applied_is_settled_ok_with_what_it_holds() -> None:
    wanted = fields("+14155550100")
    held = fields("+14155550100", "ada@contoso.com")
    [done] = settlements([op(1, Action.ONBOARD, "ada", wanted)], {1: ReadBack(held)}, {}, now=NOW)
    assert (done.op_id, done.outcome, done.error) == (1, Outcome.OK, None)
    assert (done.record.status, done.record.agent) == (MemberStatus.ACTIVE, held)


def test_a_write_the_service_does_not_show_is_settled_failed_believing_the_service() -> None:
    before = Recorded("bob", MemberStatus.ACTIVE, fields("+14155550101"), upn="bob@contoso.com")
    update = op(2, Action.UPDATE, "bob", fields("+14155550199"), before.agent)
    [done] = settlements([update], {2: ReadBack(before.agent)}, {"bob": before}, now=NOW)
    assert (done.outcome, done.error) == (Outcome.FAILED, INTERRUPTED)
    assert done.record == Recorded(
        "bob", MemberStatus.FAILED, before.agent, upn="bob@contoso.com", detail=INTERRUPTED, attempts=0
    )


def test_an_offboarding_is_done_when_no_agent_is_left() -> None:
    before = Recorded("cy", MemberStatus.ACTIVE, fields("+14155550102"), upn="cy@contoso.com")
    gone, kept = settlements(
        [op(3, Action.OFFBOARD, "cy", believed=before.agent), op(4, Action.OFFBOARD, "di")],
        {3: ReadBack(None), 4: ReadBack(fields("+14155550103"))},
        {"cy": before},
        now=NOW,
    )
    assert (gone.outcome, gone.record.status, gone.record.agent) == (
        Outcome.OK,
        MemberStatus.OFFBOARDED,
        None,
    )
    assert (kept.outcome, kept.record.agent) == (Outcome.FAILED, fields("+14155550103"))


def test_a_write_not_read_back_stays_pending_and_holds_back_the_later_ones_of_its_people() -> None:
    pending = [
        op(1, Action.ONBOARD, "ada", fields("+14155550100")),
        op(2, Action.ONBOARD, "bob", fields("+14155550101")),  # its read failed
        op(3, Action.UPDATE, "bob", fields("+14155550111")),  # read, but must wait for op 2
        op(4, Action.RELINK, "eve", fields("+14155550101"), from_object_id="bob"),  # moves bob's: waits too
        op(5, Action.ONBOARD, "cy", fields("+14155550102")),
    ]
    reads = {
        1: ReadBack(fields("+14155550100")),
        3: ReadBack(fields("+14155550111")),
        4: ReadBack(fields("+14155550101")),
        5: ReadBack(fields("+14155550102")),
    }
    assert [s.op_id for s in settlements(pending, reads, {}, now=NOW)] == [1, 5]


def test_each_write_is_settled_from_the_records_the_earlier_ones_left() -> None:
    moved = fields("+14155550100", "ada@contoso.com")
    pending = [
        # Ada's agent moved from "old" to "new"; then "old" was onboarded again, and that answer was lost too.
        op(1, Action.RELINK, "new", moved, believed=moved, from_object_id="old"),
        op(2, Action.ONBOARD, "old", fields("+14155550100")),
    ]
    relinked, onboarded = settlements(pending, {1: ReadBack(moved), 2: ReadBack(None)}, {}, now=NOW)
    [left] = relinked.also
    assert (left.object_id, left.status, left.upn) == ("old", MemberStatus.OFFBOARDED, "ada@contoso.com")
    # The second sees the first's record of "old" (the UPN it left), not the empty one read at the start.
    assert (onboarded.outcome, onboarded.record.upn) == (Outcome.FAILED, "ada@contoso.com")


def test_a_relink_the_service_did_not_apply_keeps_or_corrects_the_record_it_moved_from() -> None:
    agent = fields("+14155550100", "ada@contoso.com")
    before = Recorded("old", MemberStatus.ACTIVE, agent, upn="ada@contoso.com")
    relink = op(1, Action.RELINK, "new", agent, believed=agent, from_object_id="old")

    [kept] = settlements([relink], {1: ReadBack(None, still=agent)}, {"old": before}, now=NOW)
    assert (kept.outcome, kept.also) == (Outcome.FAILED, ())  # "old" keeps its agent: its record stays

    other = fields("+14155550177", "ada@contoso.com")
    [corrected] = settlements([relink], {1: ReadBack(None, still=other)}, {"old": before}, now=NOW)
    assert [(r.object_id, r.status, r.agent) for r in corrected.also] == [("old", MemberStatus.ACTIVE, other)]

    [vanished] = settlements([relink], {1: ReadBack(None, still=None)}, {"old": before}, now=NOW)
    assert [(r.object_id, r.status, r.agent) for r in vanished.also] == [
        ("old", MemberStatus.OFFBOARDED, None)
    ]
