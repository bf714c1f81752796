"""Pure decisions of a sync cycle: what to change, whether it is safe, and what we know afterwards.

`plan` compares desired state (Graph) with what we believe SmartCommunicator holds (our records, or in a
full cycle the remote agents list) and lists the writes that converge them; `settle` turns one write's
outcome into the new record. Neither does I/O, so any cycle, after any crash, plans the same way from
the same inputs (level-triggered).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from syncd.model import (
    Action,
    Agent,
    AgentFields,
    Change,
    DesiredState,
    MemberStatus,
    Outcome,
    Recorded,
    Skipped,
)

COMPARED_FIELDS = ("phone_number", "upn", "consistency_id", "tenant_id")
"""Agent fields we push and compare, in the order they are reported."""

Guard = Literal["max_offboard", "empty_group"]


@dataclass(frozen=True)
class GuardStop:
    """Why a cycle was stopped before changing anything."""

    guard: Guard
    message: str


@dataclass
class Plan:
    """The writes of one cycle, plus what was left alone and why."""

    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    deferred: list[str] = field(default_factory=list)
    """Object IDs whose last attempt failed and whose backoff has not run out."""
    skipped: list[Skipped] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    """Full cycle: agents we recorded that are already gone remotely and left scope (no call needed)."""
    unmanaged: list[Agent] = field(default_factory=list)
    """Full cycle: active remote agents we never managed; reported, never touched."""
    resourced: list[str] = field(default_factory=list)
    """Unchanged agents whose number now comes from another phone source: the record changes, nothing is
    sent."""
    stop: GuardStop | None = None

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action is action)


def changed_fields(believed: AgentFields, desired: AgentFields) -> tuple[str, ...]:
    """Pure: the fields to PATCH so that `believed` becomes `desired`.

    A field Graph no longer gives (None) is left as it is: the API has no way to clear a field.
    """
    return tuple(
        name
        for name in COMPARED_FIELDS
        if getattr(desired, name) is not None and getattr(desired, name) != getattr(believed, name)
    )


def _managed(record: Recorded | None) -> bool:
    return record is not None and (
        record.agent is not None
        or record.status in (MemberStatus.ACTIVE, MemberStatus.PENDING, MemberStatus.FAILED)
    )


def _believed(
    object_id: str, record: Recorded | None, remote: Mapping[str, Agent] | None
) -> AgentFields | None:
    """What we take SmartCommunicator to hold for `object_id`."""
    if remote is None:
        return record.agent if record is not None else None
    agent = remote.get(object_id)
    if agent is None or not agent.active:
        return None
    # The agents list carries no UPN: keep believing the one we pushed.
    upn = record.agent.upn if record is not None and record.agent is not None else None
    return AgentFields.of_agent(agent, upn)


def _waiting(record: Recorded | None, now: float) -> bool:
    return (
        record is not None
        and record.status is MemberStatus.FAILED
        and record.next_attempt_at is not None
        and now < record.next_attempt_at
    )


def plan(
    desired: DesiredState,
    recorded: Mapping[str, Recorded],
    remote: Mapping[str, Agent] | None = None,
    *,
    now: float,
    max_offboard: int,
    force: bool = False,
    previous_in_scope: Mapping[str, int] | None = None,
    only: str | None = None,
) -> Plan:
    """Pure: the writes that make SmartCommunicator match `desired`.

    - new member -> onboard; changed phone, UPN, consistency GUID or tenant -> update (those fields only);
      member who left scope (gone from the groups, or now skipped) -> offboard; the rest -> nothing.
    - `remote` (a full cycle) replaces our beliefs for managed agents, repairing drift; active agents we never
      managed are reported in `unmanaged`.
    - people whose last attempt failed wait until `next_attempt_at` (`only` retries its person at once).
    - guards, unless `force`: more offboards than `max_offboard`, or a configured group that reads as empty
      although it had members in scope last time (`previous_in_scope`), stop the plan (`Plan.stop`).
    - `only`: plan for that one object ID.
    """
    result = Plan(skipped=list(desired.skipped.values()))
    members = desired.members
    candidates = [only] if only is not None else list(dict.fromkeys([*members, *recorded]))
    for object_id in candidates:
        record = recorded.get(object_id)
        member = members.get(object_id)
        believed = _believed(object_id, record, remote)
        if member is None and believed is None:
            if remote is not None and record is not None and record.agent is not None:
                result.forgotten.append(object_id)
            continue
        if _waiting(record, now) and only is None:
            result.deferred.append(object_id)
            continue
        if member is None:
            if remote is not None and not _managed(record):
                continue  # an agent someone else made: reported below, never touched
            result.changes.append(Change(Action.OFFBOARD, object_id, None, believed, reason="left scope"))
            continue
        wanted = AgentFields.of(member)
        if believed is None:
            result.changes.append(Change(Action.ONBOARD, object_id, wanted, None, reason="new in scope"))
            continue
        fields = changed_fields(believed, wanted)
        if fields:
            result.changes.append(
                Change(
                    Action.UPDATE, object_id, wanted, believed, fields, reason="changed: " + ", ".join(fields)
                )
            )
        else:
            result.unchanged += 1
            if record is not None and record.agent is not None and member.phone_source != record.phone_source:
                result.resourced.append(object_id)
    if remote is not None:
        result.unmanaged = [
            agent
            for object_id, agent in remote.items()
            if agent.active and object_id not in members and not _managed(recorded.get(object_id))
        ]
    if not force:
        result.stop = _guard(result, desired, max_offboard, previous_in_scope or {})
    return result


def _guard(
    result: Plan, desired: DesiredState, max_offboard: int, previous: Mapping[str, int]
) -> GuardStop | None:
    # In scope, not merely read: a group whose users all come back without phones (Graph's "limited
    # information" answer when User.Read.All is missing) is as suspicious as an empty one.
    emptied = [
        group
        for group, count in desired.group_counts.items()
        if desired.group_in_scope.get(group, count) == 0 and previous.get(group, 0) > 0
    ]
    if emptied:
        return GuardStop(
            "empty_group",
            f"configured group(s) {', '.join(emptied)} have nobody in scope but had members in scope last "
            "time; nothing was changed. Check the group and the app's permissions in Entra; if it really is "
            "empty now, run with --force.",
        )
    offboards = result.count(Action.OFFBOARD)
    if offboards > max_offboard:
        return GuardStop(
            "max_offboard",
            f"{offboards} offboardings exceed sync.max_offboard = {max_offboard}; nothing was changed. "
            "Check the groups; if this is intended, run once with --force or raise sync.max_offboard.",
        )
    return None


def retry_delay_s(attempts: int, *, initial_s: float, max_s: float) -> float:
    """Pure: how long a person waits after `attempts` consecutive failures (doubling, capped)."""
    return float(min(max_s, initial_s * 2.0 ** max(attempts - 1, 0)))


def settle(
    change: Change,
    outcome: Outcome,
    previous: Recorded | None,
    *,
    now: float,
    upn: str | None,
    error: str | None = None,
    agent: AgentFields | None = None,
    retry_initial_s: float = 60.0,
    retry_max_s: float = 21600.0,
    backoff: bool = True,
    phone_source: str | None = None,
) -> Recorded:
    """Pure: the record after `change` ended with `outcome`.

    `agent` is what the service now holds when the caller read it back (adoption); otherwise the desired
    fields are taken as written, with `phone_source` as where the desired number came from. A failure keeps
    the previous belief (and its source) and, with `backoff`, schedules the next attempt (doubling from
    `retry_initial_s` up to `retry_max_s`); systemic failures pass backoff=False.
    """
    if outcome in (Outcome.OK, Outcome.ADOPTED, Outcome.ALREADY_GONE):
        if change.action is Action.OFFBOARD:
            return Recorded(change.object_id, MemberStatus.OFFBOARDED, None, upn=upn)
        held = agent or change.desired
        # A read-back number that is not the desired one did not come from the source.
        same = (
            held is not None
            and change.desired is not None
            and held.phone_number == change.desired.phone_number
        )
        return Recorded(
            change.object_id, MemberStatus.ACTIVE, held, upn=upn, phone_source=phone_source if same else None
        )
    believed = agent if agent is not None else (previous.agent if previous is not None else change.believed)
    attempts = (previous.attempts if previous is not None else 0) + 1
    kept_source = previous.phone_source if previous is not None and believed == previous.agent else None
    return Recorded(
        change.object_id,
        MemberStatus.FAILED,
        believed,
        upn=upn,
        detail=error,
        attempts=attempts,
        next_attempt_at=now + retry_delay_s(attempts, initial_s=retry_initial_s, max_s=retry_max_s)
        if backoff
        else None,
        phone_source=kept_source,
    )
