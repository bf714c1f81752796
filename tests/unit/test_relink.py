"""Relinking and the offboarding grace period, the pure parts: the plan (tables), the relink guard at its
boundary, settling both records, the PATCH a relink sends, and how a relink or a pending offboard is shown
(the dry run's line, the history row, `explain`'s next cycle, the notification, the metrics, the status
page)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from prometheus_client import generate_latest

from syncd.core.model import (
    Action,
    AgentFields,
    Change,
    DesiredState,
    Member,
    MemberStatus,
    Outcome,
    Recorded,
    Skipped,
    SkipReason,
)
from syncd.core.reconcile import Plan, plan
from syncd.core.settle import settle, settle_moved_from
from syncd.cycle.apply import relink_key, relink_patch
from syncd.cycle.engine import CycleResult
from syncd.cycle.relink import RelinkResult
from syncd.reports.explain.verdicts import next_cycle
from syncd.reports.history import history_row
from syncd.reports.summary import describe_change, print_relink, print_result
from syncd.service.metrics import Metrics
from syncd.service.notify.events import (
    NotifyState,
    cycle_facts,
    json_payload,
    operations_of_counts,
    transition,
)
from syncd.service.statuspage import (
    DaemonState,
    PendingOffboardRow,
    RelinkRow,
    RunRow,
    StatusData,
    health,
    render_status_page,
)
from syncd.store import HistoryEntry, OperationRecord

T = "tenant"
G1 = "group-1"
NOW = 1_800_000_000.0
HOUR = 3600.0
GUID = "g-alice"


def member(oid: str, phone: str = "+14155550100", guid: str | None = GUID) -> Member:
    """Alice (the one person with GUID, under her object IDs old and new) or someone else."""
    return Member(oid, T, "alice@x.com" if guid == GUID else f"{oid}@x.com", phone, guid)


def desired(*members: Member, skipped: tuple[Skipped, ...] = ()) -> DesiredState:
    return DesiredState(
        members={m.object_id: m for m in members},
        skipped={s.object_id: s for s in skipped},
        group_counts={G1: len(members) + len(skipped)},
    )


def active(m: Member, **changes: object) -> Recorded:
    return Recorded(m.object_id, MemberStatus.ACTIVE, AgentFields.of(m), upn=m.upn, **changes)  # type: ignore[arg-type]


OLD, NEW = member("old"), member("new")
BOB = member("bob", "+14155550101", guid=None)


def actions(result: Plan) -> list[tuple[str, str, str | None]]:
    return [(c.action.value, c.object_id, c.from_object_id) for c in result.changes]


# -- the plan --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "records", "options", "expected"),
    [
        pytest.param(
            desired(NEW, BOB),
            {"old": active(OLD), "bob": active(BOB)},
            {},
            [("relink", "new", "old")],
            id="holder-gone-relinks",
        ),
        pytest.param(
            desired(NEW, BOB),
            {"old": active(OLD), "bob": active(BOB)},
            {"subset": {"new", "old"}},
            [("relink", "new", "old")],
            id="delta-with-the-holder-read",
        ),
        pytest.param(
            desired(NEW),
            {"old": active(OLD)},
            {"subset": {"new"}},
            [("onboard", "new", None)],
            id="delta-without-the-holder-read-does-not-guess",
        ),
        pytest.param(
            desired(NEW, OLD),
            {"old": active(OLD)},
            {},
            [("onboard", "new", None)],
            id="holder-in-scope-is-a-conflict",
        ),
        pytest.param(
            desired(NEW, BOB),
            {"old": active(OLD), "bob": active(BOB)},
            {"relink": False},
            [("onboard", "new", None), ("offboard", "old", None)],
            id="relink-off-is-todays-behaviour",
        ),
        pytest.param(
            desired(NEW, BOB),
            {"old": active(OLD), "bob": active(BOB), "new": Recorded("new", MemberStatus.FAILED, None)},
            {},
            [("relink", "new", "old")],
            id="a-failed-new-person-due-for-retry",
        ),
        pytest.param(
            desired(NEW, BOB),
            {"old": active(OLD), "bob": active(BOB)},
            {"offboard_grace_s": HOUR},
            [("relink", "new", "old")],
            id="grace-does-not-delay-a-relink",
        ),
        pytest.param(
            desired(member("new2", "+14155550109"), NEW, BOB),
            {"old": active(OLD), "bob": active(BOB)},
            {},
            [("onboard", "new", None), ("onboard", "new2", None), ("offboard", "old", None)],
            id="two-claimants-choose-nobody",
        ),
        pytest.param(
            desired(NEW, BOB),
            {"old": replace(active(OLD), agent=None, status=MemberStatus.OFFBOARDED), "bob": active(BOB)},
            {},
            [("onboard", "new", None)],
            id="an-offboarded-holder-has-nothing-to-move",
        ),
    ],
)
def test_plan_relinks(
    state: DesiredState, records: dict[str, Recorded], options: dict[str, object], expected: list[object]
) -> None:
    result = plan(state, records, now=NOW, max_offboard=25, **options)  # type: ignore[arg-type]
    assert sorted(actions(result)) == sorted(expected)  # type: ignore[type-var]


def test_a_relink_sends_the_new_object_id_and_names_the_old() -> None:
    [change] = plan(desired(NEW), {"old": active(OLD)}, now=NOW, max_offboard=25).changes
    assert change.action is Action.RELINK
    assert (change.object_id, change.from_object_id, change.believed) == ("new", "old", AgentFields.of(OLD))
    assert change.fields == ("user_object_id",)  # the same person: only the object ID changes
    assert relink_key(change) == (GUID, "consistency_id")
    assert relink_patch(change).to_json() == {
        "phone_number": "+14155550100",
        "upn": "alice@x.com",
        "user_object_id": "new",
        "transfer_data": True,
    }


def test_a_relink_without_an_anchor_is_addressed_by_the_old_object_id() -> None:
    held = AgentFields(T, "+14155550100", "bob@x.com", None)
    change = Change(
        Action.RELINK, "new", held, held, ("user_object_id",), from_object_id="old", transfer_data=False
    )
    assert relink_key(change) == ("old", "user_object_id")
    assert relink_patch(change).to_json()["transfer_data"] is False


def test_the_holder_in_scope_is_reported_on_the_onboarding() -> None:
    result = plan(desired(NEW, OLD), {"old": active(OLD)}, now=NOW, max_offboard=25)
    assert result.conflicts == {"new": "old"}
    [onboard] = result.changes
    assert "is also that of old, who is in scope too: not relinked" in onboard.reason


def test_a_holder_waits_while_its_claimant_waits_out_a_backoff() -> None:
    waiting = Recorded("new", MemberStatus.FAILED, None, attempts=1, next_attempt_at=NOW + 60)
    result = plan(desired(NEW), {"old": active(OLD), "new": waiting}, now=NOW, max_offboard=25)
    assert (result.changes, result.deferred, result.kept) == ([], ["new"], ["old"])
    only_old = plan(desired(NEW), {"old": active(OLD)}, now=NOW, max_offboard=25, only="old")
    assert (only_old.changes, only_old.kept) == ([], ["old"])  # its relink belongs to the new person


@pytest.mark.parametrize(("relinks", "limit", "stops"), [(3, 3, False), (3, 2, True), (1, 0, True)])
def test_the_relink_guard_at_its_boundary(relinks: int, limit: int, stops: bool) -> None:
    olds = [member(f"old{i}", f"+1415555020{i}", f"g{i}") for i in range(relinks)]
    news = [member(f"new{i}", f"+1415555020{i}", f"g{i}") for i in range(relinks)]
    records = {m.object_id: active(m) for m in olds}
    result = plan(
        desired(*news, BOB), records | {"bob": active(BOB)}, now=NOW, max_offboard=25, max_relink=limit
    )
    assert result.count(Action.RELINK) == relinks
    assert (result.stop is not None) is stops
    if stops:
        assert result.stop is not None
        assert result.stop.guard == "max_relink"
        assert result.stop.message.startswith(f"{relinks} relinks exceed sync.max_relink = {limit};")
    forced = plan(desired(*news, BOB), records, now=NOW, max_offboard=25, max_relink=limit, force=True)
    assert forced.stop is None


# -- the offboarding grace -------------------------------------------------------------------------


def test_leaving_scope_starts_the_grace_and_its_end_offboards() -> None:
    records = {"bob": active(BOB), "a": active(member("a", guid=None))}
    state = desired(member("a", guid=None))
    first = plan(state, records, now=NOW, max_offboard=25, offboard_grace_s=HOUR)
    assert (first.changes, first.leaving) == ([], {"bob": NOW})
    marked = records | {"bob": replace(records["bob"], left_scope_at=NOW)}
    later = plan(state, marked, now=NOW + HOUR - 1, max_offboard=25, offboard_grace_s=HOUR)
    assert (later.changes, later.leaving) == ([], {"bob": NOW})
    due = plan(state, marked, now=NOW + HOUR, max_offboard=25, offboard_grace_s=HOUR)
    assert actions(due) == [("offboard", "bob", None)]
    assert due.changes[0].reason == "left scope, and the grace period has passed"
    no_grace = plan(state, records, now=NOW, max_offboard=25)
    assert actions(no_grace) == [("offboard", "bob", None)]


def test_coming_back_within_the_grace_cancels_with_no_write() -> None:
    back = plan(
        desired(BOB),
        {"bob": active(BOB, left_scope_at=NOW - 60)},
        now=NOW,
        max_offboard=25,
        offboard_grace_s=HOUR,
    )
    assert (back.changes, back.returned, back.unchanged) == ([], ["bob"], 1)


def test_a_skipped_person_waits_out_the_grace_too() -> None:
    gone = Skipped("bob", "bob@x.com", SkipReason.NO_PHONE, "businessPhones is empty")
    result = plan(
        desired(member("a", guid=None), skipped=(gone,)),
        {"bob": active(BOB), "a": active(member("a", guid=None))},
        now=NOW,
        max_offboard=25,
        offboard_grace_s=HOUR,
    )
    assert (result.changes, list(result.leaving)) == ([], ["bob"])


def test_max_offboard_counts_offboards_when_they_fall_due() -> None:
    people = [member(f"p{i}", f"+1415555030{i}", None) for i in range(3)]
    stay = member("stay", "+14155550399", None)
    records = {m.object_id: active(m, left_scope_at=NOW) for m in people} | {"stay": active(stay)}
    options = {"max_offboard": 2, "offboard_grace_s": HOUR}
    assert plan(desired(stay), records, now=NOW + 60, **options).stop is None  # type: ignore[arg-type]
    due = plan(desired(stay), records, now=NOW + HOUR, **options)  # type: ignore[arg-type]
    assert due.stop is not None
    assert due.stop.guard == "max_offboard"


# -- settling --------------------------------------------------------------------------------------


def test_settling_a_relink_changes_both_records() -> None:
    [change] = plan(desired(NEW), {"old": active(OLD)}, now=NOW, max_offboard=25).changes
    done = settle(change, Outcome.OK, None, now=NOW, upn="alice@x.com")
    assert (done.status, done.agent) == (MemberStatus.ACTIVE, AgentFields.of(NEW))
    moved = settle_moved_from(change, True, active(OLD))
    assert moved == Recorded(
        "old",
        MemberStatus.OFFBOARDED,
        None,
        upn="alice@x.com",
        detail="agent moved to new (relinked: the user was re-created in Entra)",
    )
    failed = settle(change, Outcome.FAILED, None, now=NOW, upn="alice@x.com", error="no")
    assert (failed.status, failed.agent) == (MemberStatus.FAILED, None)  # the old agent is not this person's
    # Not applied: the old record stays, and a pending offboard is cancelled so it waits for the retry.
    assert settle_moved_from(change, False, active(OLD)) is None
    kept = settle_moved_from(change, False, active(OLD, left_scope_at=NOW))
    assert kept == active(OLD)


def test_a_failed_offboard_keeps_when_the_grace_began() -> None:
    change = Change(Action.OFFBOARD, "bob", None, AgentFields.of(BOB))
    failed = settle(change, Outcome.FAILED, active(BOB, left_scope_at=NOW), now=NOW + HOUR, upn=None)
    assert failed.left_scope_at == NOW


# -- how it is shown -------------------------------------------------------------------------------


def test_the_dry_run_line_and_the_history_row_name_both_object_ids() -> None:
    [change] = plan(desired(NEW), {"old": active(OLD)}, now=NOW, max_offboard=25).changes
    assert describe_change(change) == "> relink   old -> new  alice@x.com +14155550100"
    without = replace(change, transfer_data=False)
    assert describe_change(without).endswith("(without its data)")
    operation = OperationRecord(
        id=5,
        run_id=2,
        object_id="new",
        action=Action.RELINK,
        outcome=Outcome.OK,
        http_status=None,
        error=None,
        desired=change.desired,
        believed=change.believed,
        created_at=NOW,
        settled_at=NOW,
        from_object_id="old",
    )
    row = history_row(HistoryEntry(operation, "alice@x.com"))
    assert (row["action"], row["object_id"]) == ("relink", "new")
    assert row["changed"] == {"user_object_id": {"from": "old", "to": "new"}}


def explain_next(**options: object) -> object:
    defaults: dict[str, object] = {
        "object_id": "new",
        "person": NEW,
        "configured": [G1],
        "member_of": [G1],
        "record": None,
        "now": NOW,
        "max_offboard": 25,
    }
    return next_cycle(**(defaults | options))  # type: ignore[arg-type]


def test_explain_says_when_a_pending_offboard_falls_due() -> None:
    verdict = explain_next(
        object_id="bob",
        person=None,
        member_of=[],
        record=active(BOB, left_scope_at=NOW - 600),
        offboard_grace_s=HOUR,
    )
    assert verdict.action == "offboard_pending"  # type: ignore[attr-defined]
    assert verdict.waiting_until == NOW - 600 + HOUR  # type: ignore[attr-defined]
    assert verdict.text.startswith("offboard due at 2027-01-15 08:50:00 UTC: not in any configured group")  # type: ignore[attr-defined]


def test_explain_predicts_the_relink_or_the_conflict() -> None:
    relink = explain_next(anchor_holder=active(OLD))
    assert (relink.action, relink.relink_from) == ("relink", "old")  # type: ignore[attr-defined]
    assert "relink: the agent of old (consistency GUID g-alice, number +14155550100) moves" in relink.text  # type: ignore[attr-defined]
    clash = explain_next(anchor_holder=active(OLD), holder_member=OLD)
    assert clash.action == "onboard"  # type: ignore[attr-defined]
    assert "who is in scope too (two people with one anchor)" in clash.text  # type: ignore[attr-defined]
    off = explain_next(anchor_holder=active(OLD), relink=False)
    assert off.action == "onboard"  # type: ignore[attr-defined]


def test_a_cycle_that_relinked_sends_one_relinked_event() -> None:
    result = CycleResult(run_id=9, kind="incremental", dry_run=False, duration_s=1.0)
    result.planned = {"onboard": 0, "update": 0, "offboard": 0, "relink": 2}
    result.relinked = [("old1", "new1", "a@x.com"), ("old2", "new2", None)]
    _state, events = transition(NotifyState(), cycle_facts(result, now=NOW))
    [event] = events
    assert event.kind == "relinked"
    assert event.fact("relinked") == 2
    assert event.details == (("a@x.com", "old1 -> new1"), ("new2", "old2 -> new2"))
    assert json_payload(event, host="h")["event"] == "relinked"
    quiet = CycleResult(run_id=10, kind="incremental", dry_run=False)
    assert transition(NotifyState(), cycle_facts(quiet, now=NOW))[1] == ()


def test_metrics_count_relinks_and_pending_offboards() -> None:
    metrics = Metrics()
    result = CycleResult(run_id=9, kind="incremental", dry_run=False)
    result.planned = {"onboard": 0, "update": 0, "offboard": 0, "relink": 1}
    result.outcomes = {"relink": {"ok": 1}}
    result.offboard_pending = {"bob": NOW + HOUR, "carol": NOW + HOUR}
    metrics.observe(result, "ok", {"active": 3})
    text = generate_latest(metrics.registry).decode()
    assert 'syncd_operations_total{action="relink",outcome="ok"} 1.0' in text
    assert "syncd_offboard_pending 2.0" in text


def test_the_status_page_lists_pending_offboards_and_relinks() -> None:
    data = StatusData(
        daemon=DaemonState(started_at=NOW),
        runs=[
            RunRow(2, "cli", "relink", False, NOW + 10, NOW + 11, "ok", {"relink_ok": 1}),
            RunRow(1, "schedule", "incremental", False, NOW, NOW + 1, "guard", {}),
        ],
        offboard_pending=[PendingOffboardRow("bob", "bob@x.com", NOW, NOW + HOUR)],
        relinks=[RelinkRow(NOW + 10, "old", "new", "<alice>@x.com", "ok", 2)],
    )
    page = render_status_page(data, now=NOW + 20)
    assert 'id="offboard-pending-count">1<' in page
    assert "2027-01-15 09:00:00" in page  # due at
    assert 'data-object-id="new" data-from-object-id="old"' in page
    assert "&lt;alice&gt;@x.com" in page
    assert health(data).state == "guard"  # a relink by hand is no cycle: the guard stop still shows
    assert "relink" in render_status_page(replace(data, relinks=[]), now=NOW + 20)  # the chart's legend


def test_status_data_reads_the_documents_new_parts() -> None:
    document = {
        "offboard_pending": [{"object_id": "bob", "upn": None, "left_scope_at": NOW, "due_at": NOW + HOUR}],
        "relinks": [
            {"at": NOW, "run_id": 3, "from_object_id": "old", "object_id": "new", "upn": "a", "outcome": "ok"}
        ],
    }
    data = StatusData.from_document(document, DaemonState(started_at=NOW))
    assert data.offboard_pending == [PendingOffboardRow("bob", None, NOW, NOW + HOUR)]
    assert data.relinks == [RelinkRow(NOW, "old", "new", "a", "ok", 3)]


def test_what_syncd_relink_prints() -> None:
    before = AgentFields(T, "+14155550100", "bob@x.com", None)
    planned = RelinkResult("old", "new", dry_run=True, transfer_data=False, outcome="planned", key="old")
    planned.key_id, planned.before, planned.message = "user_object_id", before, "would move it; nothing sent"
    planned.body = {"user_object_id": "new", "transfer_data": False}
    out = io.StringIO()
    print_relink(planned, out)
    assert out.getvalue().splitlines() == [
        "syncd relink (dry run): would move it; nothing sent",
        '  PATCH .../agents/old?key_id=user_object_id  user_object_id="new", transfer_data=false',
        "  transfer_data false: the agent keeps its object ID's data behind (--no-transfer-data)",
        "  agent of old: +14155550100  bob@x.com  -",
    ]
    refused = RelinkResult("old", "new", dry_run=False, transfer_data=True, exit_code=2)
    refused.message = "OLD old (\x1b[2Jbob@x.com) is still in scope"
    out = io.StringIO()
    print_relink(refused, out)
    assert out.getvalue() == "syncd relink: nothing sent: OLD old (\\x1b[2Jbob@x.com) is still in scope\n"
    assert refused.to_json()["outcome"] == "refused"


def test_the_sync_summary_shows_pending_offboards_and_relinks() -> None:
    result = CycleResult(run_id=3, kind="incremental", dry_run=False)
    result.offboard_pending = {"bob": NOW + HOUR, "carol": NOW}
    result.relinked = [("old", "new", "alice@x.com")]
    out = io.StringIO()
    print_result(result, out)
    text = out.getvalue()
    assert "  offboard pending 2 (out of scope, within sync.offboard_grace; the first falls due " in text
    assert "2027-01-15 08:00:00 UTC)" in text
    assert "  relinked   old -> new  alice@x.com" in text
    document = result.to_json()
    assert document["relinked"] == [{"from_object_id": "old", "object_id": "new", "upn": "alice@x.com"}]
    assert document["offboard_pending"][0] == {"object_id": "bob", "due_at": NOW + HOUR}
    counts = result.counts()
    assert counts["offboards_pending"] == 2
    assert operations_of_counts(counts) == {}  # waiting is no operation
