"""The pure decisions of `syncd explain`: what the argument is, the shortest paths through nested groups,
each phone source's verdict, the consistency GUID, and what the next cycle would do with the person and how
that is said (by `syncd.core.reconcile.plan` on a one-person desired state).

Plain data in, plain data out, tested as tables in tests/unit/test_explain.py; `gathering` reads the data.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from syncd.core.limits import Limit
from syncd.core.model import TEAMS, Action, Agent, DesiredState, Member, MemberStatus, Recorded, Skipped
from syncd.core.reconcile import Plan, plan
from syncd.core.times import utc_text
from syncd.graph.mapping import decode_consistency_guid, raw_phone, teams_e164, to_e164
from syncd.graph.teams import TeamsIndexer
from syncd.reports.explain.model import Consistency, NextAction, NextCycle, QueryKind, SourceVerdict

MAX_PATHS = 5
"""Shortest paths shown per configured group (several when the person is in the group several ways)."""

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def classify_query(text: str, default_region: str) -> tuple[QueryKind, str]:
    """Pure: what the argument is and its normal form: an object ID (a GUID, lower case), a UPN (it has
    "@"), a phone number (anything `to_e164` reads in `default_region`, as E.164) or else a name to try as
    a Graph user key."""
    wanted = text.strip()
    if _GUID.match(wanted):
        return "object_id", wanted.lower()
    if "@" in wanted:
        return "upn", wanted
    phone = to_e164(wanted, default_region) if wanted else None
    if isinstance(phone, str):
        return "phone", phone
    return "name", wanted


def shortest_paths(
    root: str, children: Mapping[str, Sequence[str]], targets: Collection[str], *, max_paths: int = MAX_PATHS
) -> list[list[str]]:
    """Pure: the shortest paths from `root` down `children` (group -> its nested groups) to any of
    `targets`, at most `max_paths`, in the order the adjacency lists give. `[[root]]` when the root is a
    target; `[]` when none is reachable. Cycles and diamonds are safe (each group is reached once per depth).
    """
    if root in targets:
        return [[root]]
    depth = {root: 0}
    parents: dict[str, list[str]] = {}
    level = [root]
    found: list[str] = []
    while level and not found:
        following: list[str] = []
        for group in level:
            for child in children.get(group, ()):
                if child not in depth:
                    depth[child] = depth[group] + 1
                    parents[child] = [group]
                    following.append(child)
                elif depth[child] == depth[group] + 1 and group not in parents[child]:
                    parents[child].append(group)
        found = [group for group in following if group in targets]
        level = following
    paths: list[list[str]] = []

    def walk(group: str, below: list[str]) -> None:
        if len(paths) >= max_paths:
            return
        if group == root:
            paths.append([root, *below])
            return
        for parent in parents[group]:
            walk(parent, [group, *below])

    for target in found:
        walk(target, [])
    return paths


def teams_notes(items: Sequence[object], categories: Sequence[str]) -> list[str]:
    """Pure: for each of a user's Teams assignments that cannot give the number, which and why (the
    reasons the `TeamsIndexer` counts)."""
    notes: list[str] = []
    for item in items:
        indexer = TeamsIndexer(categories)
        indexer.add([item])
        if not indexer.ignored:
            continue
        reason = next(iter(indexer.ignored))
        if isinstance(item, dict):
            number = item.get("telephoneNumber")
            what = ", ".join(
                str(value)
                for value in (
                    item.get("assignmentCategory"),
                    item.get("assignmentStatus"),
                    item.get("activationState"),
                )
                if value
            )
            notes.append(f"{number} ({what}): {reason}")
        else:
            notes.append(f"{item!r}: {reason}")
    return notes


def phone_verdicts(
    user: Mapping[str, object],
    chain: Sequence[str],
    *,
    default_region: str,
    teams_items: Sequence[object] | None = None,
    teams_categories: Sequence[str] = ("primary",),
) -> list[SourceVerdict]:
    """Pure: each source of `chain` for one Graph user: raw value, E.164 or the problem, and which one gives
    the agent's number (the first valid, as in `map_user`). `teams_items` are the user's Teams assignments
    (raw JSON); None when they were not read."""
    verdicts: list[SourceVerdict] = []
    chosen = False
    object_id = str(user.get("id") or "").strip().lower()
    for source in chain:
        notes: tuple[str, ...] = ()
        if source == TEAMS:
            if teams_items is None:
                verdicts.append(SourceVerdict(source, None, None, "not read"))
                continue
            indexer = TeamsIndexer(teams_categories)
            indexer.add(teams_items)
            assigned = indexer.result().get(object_id)
            notes = tuple(teams_notes(teams_items, teams_categories))
            if assigned is not None and assigned.note is not None:
                notes = (*notes, assigned.note)
            if assigned is None:
                verdicts.append(SourceVerdict(source, None, None, "no number assigned", notes=notes))
                continue
            raw: str | None = assigned.number
            phone = teams_e164(assigned.number, default_region)
        else:
            raw = raw_phone(user, source)
            if raw is None:
                verdicts.append(SourceVerdict(source, None, None, "empty"))
                continue
            phone = to_e164(raw, default_region)
        if isinstance(phone, str):
            verdicts.append(SourceVerdict(source, raw, phone, None, chosen=not chosen, notes=notes))
            chosen = True
        else:
            verdicts.append(SourceVerdict(source, raw, None, phone[1], notes=notes))
    return verdicts


def consistency_of(user: Mapping[str, object]) -> Consistency:
    """Pure: the consistency GUID section from a Graph user."""
    value = user.get("onPremisesImmutableId")
    guid = decode_consistency_guid(value)
    raw = value if isinstance(value, str) else (None if value is None else repr(value))
    if guid is not None:
        return Consistency(raw, guid, "sent to SmartCommunicator as consistency_id")
    if value is None:
        return Consistency(None, None, "not set (a cloud-only user): no consistency GUID is sent")
    return Consistency(
        raw, None, "not a base64 GUID (another kind of source anchor): no consistency GUID is sent"
    )


def _out_of_scope(person: Member | Skipped | None) -> str:
    if isinstance(person, Skipped):
        return f"out of scope ({person.reason.value}: {person.detail})"
    return "not in any configured group"


def _decision(
    result: Plan, object_id: str, person: Member | Skipped | None, record: Recorded | None
) -> tuple[NextAction, tuple[str, ...], str]:
    """The action, changed fields and sentence for one person's plan (`plan(..., only=object_id)`)."""
    change = next((c for c in result.changes if c.object_id == object_id), None)
    if change is None:
        if isinstance(person, Member):
            text = "nothing to do: the agent matches Graph"
            if object_id in result.resourced:
                text += (
                    f" (the record notes the number now comes from {person.phone_source}; nothing is sent)"
                )
            return "nothing", (), text
        if object_id in result.kept:
            why = f"{_out_of_scope(person)}, but the person with its consistency GUID waits for this agent"
            return "nothing", (), f"nothing to do: {why} (a relink)"
        # plan offboards whenever we believe an agent exists, so here syncd manages none (an agent someone
        # else made is never touched).
        return "nothing", (), f"nothing to do: {_out_of_scope(person)}, and syncd manages no agent for them"
    if change.action is Action.ONBOARD:
        wanted = change.desired
        assert wanted is not None  # an onboarding always has the desired fields
        upn = f" {wanted.upn}" if wanted.upn else ""
        text = f"onboard{upn} with {wanted.phone_number} (in scope, no agent yet)"
        holder = result.conflicts.get(object_id)
        if holder is not None:
            text += (
                f"; it fails: the consistency GUID {wanted.consistency_id} is the agent of {holder}, who is "
                "in scope too (two people with one anchor): an admin must decide"
            )
        return "onboard", (), text
    if change.action is Action.RELINK:
        held = change.believed
        number = f", number {held.phone_number}" if held is not None else ""
        guid = change.desired.consistency_id if change.desired is not None else None
        text = (
            f"relink: the agent of {change.from_object_id} (consistency GUID {guid}{number}) moves to this "
            "user with its data, in one PATCH (transfer_data true): the same person re-created in Entra; "
            "nothing is offboarded or onboarded"
        )
        return "relink", change.fields, text
    if change.action is Action.UPDATE:
        diffs = ", ".join(
            f"{name} {getattr(change.believed, name)} -> {getattr(change.desired, name)}"
            for name in change.fields
        )
        return "update", change.fields, f"update {diffs}"
    return "offboard", (), f"offboard: {_out_of_scope(person)}"


def next_cycle(
    *,
    object_id: str,
    person: Member | Skipped | None,
    configured: Sequence[str],
    member_of: Collection[str],
    record: Recorded | None,
    now: float,
    max_offboard: Limit | int,
    remote: Agent | None = None,
    remote_known: bool = False,
    number_holder: Agent | None = None,
    known: bool = True,
    why_unknown: str = "Graph could not be read (see above); a cycle now would fail the same way",
    offboard_grace_s: float = 0.0,
    relink: bool = True,
    anchor_holder: Recorded | None = None,
    holder_member: Member | None = None,
) -> NextCycle:
    """Pure: what the next cycle would do with one person, by `syncd.core.reconcile.plan` on a one-person
    desired state, and in words.

    `person` is the mapping's verdict (`map_user`) when the person is in a configured group (`member_of`
    lists which), else None. `known` is False when Graph could not be read: then nothing can be said.
    A failed record whose backoff runs past `now` waits (plan's deferral), and the sentence says what
    comes after the wait. With `remote_known`, a full cycle's plan (against `remote`, the agent now) is
    compared too and reported when it differs. An active `number_holder` (another object's agent with the
    number we would send) means the write would fail again: the sentence says so.

    `offboard_grace_s` (`sync.offboard_grace`): out of scope within it, the offboard is pending and the
    sentence says when it falls due. `anchor_holder`: the record of another object ID whose agent has this
    person's consistency GUID, with `holder_member` its mapping when it is in scope (else None): with
    `relink`, the plan moves that agent here, or reports two people with one anchor.
    """
    if not known:
        return NextCycle("unknown", f"cannot tell: {why_unknown}")
    if not member_of:
        person = None
    members = {object_id: person} if isinstance(person, Member) else {}
    desired = DesiredState(
        members=members,
        skipped={object_id: person} if isinstance(person, Skipped) else {},
        group_counts={group: int(group in member_of) for group in configured},
        group_in_scope={group: int(group in member_of and bool(members)) for group in configured},
    )
    recorded = {object_id: record} if record is not None else {}
    if anchor_holder is not None:
        recorded[anchor_holder.object_id] = anchor_holder
        if holder_member is not None:
            desired.members[anchor_holder.object_id] = holder_member
    # Guards are about a whole cycle; for one person they would only hide the decision.
    options: dict[str, Any] = {
        "now": now,
        "max_offboard": max_offboard,
        "force": True,
        "offboard_grace_s": offboard_grace_s,
        "relink": relink,
    }
    planned = plan(desired, recorded, **options, only=object_id)
    since = planned.leaving.get(object_id)
    if since is not None:
        due = since + offboard_grace_s
        return NextCycle(
            "offboard_pending",
            f"offboard due at {utc_text(due, 'labelled')}: {_out_of_scope(person)} since "
            f"{utc_text(since, 'labelled')}, and sync.offboard_grace keeps the agent until then; coming "
            "back into scope before cancels it with no write, and a user re-created with the same "
            "consistency GUID takes the agent over (a relink)",
            (),
            due,
        )
    action, fields, text = _decision(planned, object_id, person, record)
    if object_id in planned.returned:
        text += " (back in scope within sync.offboard_grace: the pending offboard is cancelled)"
    relink_from = next(
        (c.from_object_id for c in planned.changes if c.action is Action.RELINK and c.object_id == object_id),
        None,
    )
    full_cycle = None
    if remote_known:
        agents = {object_id: remote} if remote is not None else {}
        full = _decision(
            plan(desired, recorded, agents, **options, only=object_id), object_id, person, record
        )
        if full[2] != text:
            why = "the agent differs from our record" if record is not None else "we have no record of them"
            full_cycle = f"{full[2]} ({why})"
    sends_number = action == "onboard" or "phone_number" in fields
    if sends_number and number_holder is not None and number_holder.active:
        holder = number_holder.user_object_id
        text += f"; it fails again while agent {holder} holds the number (an admin must free it)"
    if record is not None and record.status is MemberStatus.PENDING:
        # The engine settles pending operations before it plans anything.
        text = f"first settle the pending write by reading the agent back, then: {text}"
    # Without `only`, plan defers a person whose backoff has not run out: the next scheduled cycle would.
    if object_id in plan(desired, recorded, **options).deferred:
        assert record is not None  # deferral needs a failed record
        failed = f"{record.attempts} failed attempt{'s' if record.attempts != 1 else ''}"
        return NextCycle(
            "wait",
            f"waiting for retry until {utc_text(record.next_attempt_at, 'labelled')} ({failed}); "
            f"then: {text}",
            fields,
            record.next_attempt_at,
            full_cycle,
            relink_from,
        )
    return NextCycle(action, text, fields, None, full_cycle, relink_from)
