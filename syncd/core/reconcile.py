"""Pure decisions of a sync cycle: what to change and whether it is safe.

`plan` compares desired state (Graph) with what we believe SmartCommunicator holds (our records, or in a
full cycle the remote agents list) and lists the writes that converge them; `syncd/core/settle.py` says
what we know after each. Neither does I/O, so any cycle, after any crash, plans the same way from the same
inputs (level-triggered).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from syncd.core.limits import DEFAULT_MAX_RELINK, NO_LIMIT, Allowance, Limit
from syncd.core.model import (
    TEAMS,
    Action,
    Agent,
    AgentFields,
    Change,
    DesiredState,
    Member,
    MemberStatus,
    Recorded,
    Skipped,
)
from syncd.core.setting_changes import SettingChange, describe_changes

COMPARED_FIELDS = ("phone_number", "upn", "consistency_id", "tenant_id")
"""Agent fields we push and compare, in the order they are reported."""

Guard = Literal["max_offboard", "max_update", "max_relink", "empty_group", "teams_numbers"]

FIELD_LABELS = {
    "phone_number": "phone number",
    "upn": "UPN",
    "consistency_id": "consistency GUID",
    "tenant_id": "tenant",
}
"""How the max_update guard names the fields an update changes."""
UPDATE_EXAMPLES = 3
"""Updates the max_update guard's message shows."""


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
    leaving: dict[str, float] = field(default_factory=dict)
    """Out of scope while `sync.offboard_grace` runs: object ID -> when a cycle first found them out of
    scope (epoch seconds); their agent stays, and the offboard falls due once the grace has passed."""
    returned: list[str] = field(default_factory=list)
    """Back in scope within the grace period: their pending offboard is cancelled; only the record changes
    (nothing is sent unless their fields changed too)."""
    kept: list[str] = field(default_factory=list)
    """Out of scope, yet their agent stays: the in-scope person with its consistency GUID waits for the
    relink (a retry backoff, or not planned in this cycle)."""
    conflicts: dict[str, str] = field(default_factory=dict)
    """New in scope with the consistency GUID of another object's agent whose person is in scope too (two
    live people with one anchor): new object ID -> the holder. Never relinked."""
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


def _in_step(member: Member, record: Recorded, agent: Agent | None) -> bool:
    """Whether a person in scope all along, not failed, with an active agent needs nothing: every field
    `changed_fields` compares equal to `_believed`'s, decided without building them (a full cycle's common
    case)."""
    if agent is None or agent.status != "active" or record.left_scope_at is not None:
        return False
    # A failed one may wait out a backoff: the slow path decides. Member's tenant and number are never None.
    if record.status is MemberStatus.FAILED or (member.phone_number, member.tenant_id) != (
        agent.phone_number,
        agent.tenant_id,
    ):
        return False
    if member.consistency_id is not None and member.consistency_id != agent.consistency_id:
        return False
    pushed = record.agent.upn if record.agent is not None else None
    return member.upn is None or member.upn == (agent.upn or pushed)


def _has_agent(object_id: str, recorded: Mapping[str, Recorded], remote: Mapping[str, Agent] | None) -> bool:
    """Whether `_believed` would find an agent (without building its fields, nor looking up our record when
    the agents list says it: a full cycle asks for each of a million people)."""
    if remote is None:
        record = recorded.get(object_id)
        return record is not None and record.agent is not None
    agent = remote.get(object_id)
    return agent is not None and agent.active


def _records_left(
    members: Mapping[str, Member], recorded: Mapping[str, Recorded], found: Sequence[int]
) -> Iterator[tuple[str, None]]:
    """The recorded people who are not members, looked for only if fewer than all records were found among
    the members (`found[0]`, counted by the plan as it went through them, before this runs)."""
    if found[0] < len(recorded):
        yield from ((object_id, None) for object_id in recorded if object_id not in members)


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
    max_offboard: Limit | int,
    max_update: Limit | int = NO_LIMIT,
    managed: int | None = None,
    force: bool = False,
    previous_in_scope: Mapping[str, int] | None = None,
    only: str | None = None,
    subset: Collection[str] | None = None,
    changed_settings: Sequence[SettingChange] = (),
    max_relink: Limit | int = DEFAULT_MAX_RELINK,
    relink: bool = True,
    offboard_grace_s: float = 0.0,
) -> Plan:
    """Pure: the writes that make SmartCommunicator match `desired`.

    - new member -> onboard; changed phone, UPN, consistency GUID or tenant -> update (those fields only);
      member who left scope (gone from the groups, or now skipped) -> offboard; the rest -> nothing.
    - relink (unless `relink` is False): a new member without an agent whose consistency GUID is held by
      the agent of an object ID that is out of scope (the same person re-created in Entra) gets that agent
      moved to them: one relink change instead of an offboard and an onboard. When the holder is in scope
      too, nothing moves (`Plan.conflicts`): the onboarding goes ahead and fails naming both.
    - `offboard_grace_s`: a member out of scope is offboarded only once they have been out that long
      (`Recorded.left_scope_at`, `Plan.leaving`); coming back before cancels it (`Plan.returned`).
    - `remote` (a full cycle) replaces our beliefs for managed agents, repairing drift; active agents we never
      managed are reported in `unmanaged`.
    - people whose last attempt failed wait until `next_attempt_at` (`only` retries its person at once).
    - guards, unless `force`: more offboards than `max_offboard` (counted when they fall due), more relinks
      than `max_relink`, a configured group that reads as empty although it had members in scope last time
      (`previous_in_scope`), agents losing their Teams numbers (none read at all, or more than
      `max_offboard` moving off them), or more updates than `max_update` stop the plan (`Plan.stop`). A
      limit's percentage is of `managed`, the agents we manage (default: those `recorded` believes exist).
      A stop's message names `changed_settings`, the settings shaping desired state that changed since the
      last cycle.
    - `only`: plan for that one object ID.
    - `subset`: plan for these object IDs only (an incremental cycle: everyone else is unchanged), with
      `desired` and `recorded` holding them; `unchanged` then counts among them only. A holder of a
      consistency GUID outside `subset` was not read, so nobody is relinked from it.
    """
    result = Plan(skipped=list(desired.skipped.values()))
    members = desired.members
    candidates: Iterable[tuple[str, Member | None]]
    # Of the members planned: how many have a record, and an agent in `remote`. When all records (agents) are
    # members', nobody else needs looking for among them (a full cycle: a million lookups each).
    found = [0, 0]
    if only is not None or subset is not None:
        candidates = [(oid, members.get(oid)) for oid in (sorted(subset or ()) if only is None else [only])]
    else:  # the members, then the recorded who are not (no list of both: a million people each)
        candidates = itertools.chain(members.items(), _records_left(members, recorded, found))
    claims = _claims(desired, recorded, remote, now=now, subset=subset, only=only)
    result.conflicts = claims.conflicts
    relinks = claims.relinks if relink else {}
    moving = {old: new for new, old in relinks.items()}
    kept = claims.kept if relink else set()
    for object_id, member in candidates:
        record = recorded.get(object_id)
        agent = remote.get(object_id) if remote is not None else None
        if member is not None:
            found[0] += record is not None
            found[1] += agent is not None
        if (
            remote is not None
            and member is not None
            and record is not None
            and _in_step(member, record, agent)
            and object_id not in moving
            and object_id not in kept
        ):
            result.unchanged += 1  # what the slow path below concludes for them
            if record.agent is not None and member.phone_source != record.phone_source:
                result.resourced.append(object_id)
            continue
        if object_id in moving:
            if only is not None and only != moving[object_id]:
                result.kept.append(object_id)  # its relink is not planned here (`only` another person)
            continue  # its agent moves to the re-created user: the relink change covers it
        if object_id in kept:
            result.kept.append(object_id)
            continue
        if member is not None and record is not None and record.left_scope_at is not None:
            result.returned.append(object_id)
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
            since = record.left_scope_at if record is not None and record.left_scope_at is not None else now
            if offboard_grace_s > 0 and now < since + offboard_grace_s:
                result.leaving[object_id] = since
                continue
            reason = "left scope" if offboard_grace_s <= 0 else "left scope, and the grace period has passed"
            result.changes.append(Change(Action.OFFBOARD, object_id, None, believed, reason=reason))
            continue
        wanted = AgentFields.of(member)
        if believed is None:
            old = relinks.get(object_id)
            if old is not None:
                result.changes.append(_relink_change(object_id, wanted, old, recorded, remote))
                continue
            reason = "new in scope"
            holder = claims.conflicts.get(object_id)
            if holder is not None:
                reason += (
                    f"; its consistency GUID {wanted.consistency_id} is also that of {holder}, who is in "
                    "scope too: not relinked"
                )
            result.changes.append(Change(Action.ONBOARD, object_id, wanted, None, reason=reason))
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
    if remote is not None and found[1] < len(remote):
        result.unmanaged = [
            agent
            for object_id, agent in remote.items()
            if agent.active and object_id not in members and not _managed(recorded.get(object_id))
        ]
    if not force:
        if managed is None:
            managed = sum(1 for record in recorded.values() if record.agent is not None)
        offboards = Allowance("sync.max_offboard", Limit.of(max_offboard), managed)
        updates = Allowance("sync.max_update", Limit.of(max_update), managed)
        relink_allowance = Allowance("sync.max_relink", Limit.of(max_relink), managed)
        result.stop = _named(
            _guard(result, desired, offboards, previous_in_scope or {})
            or _relink_guard(result, relink_allowance)
            or _teams_guard(result, desired, recorded, offboards)
            or _update_guard(result, updates),
            changed_settings,
        )
    return result


def _named(stop: GuardStop | None, changed: Sequence[SettingChange]) -> GuardStop | None:
    """`stop` with the settings that changed since the last cycle named in its message."""
    if stop is None or not changed:
        return stop
    return GuardStop(
        stop.guard,
        f"{stop.message} Settings that shape desired state changed since the last cycle: "
        f"{describe_changes(changed)}; if that was not meant, undo it instead.",
    )


def _update_guard(result: Plan, allowance: Allowance) -> GuardStop | None:
    """A changed default region or phone source, or a bulk rename in the directory, must not PATCH every
    agent in one cycle unasked."""
    updates = [change for change in result.changes if change.action is Action.UPDATE]
    if not allowance.exceeded_by(len(updates)):
        return None
    by_field = Counter(name for change in updates for name in change.fields)
    counts = ", ".join(
        f"{FIELD_LABELS[name]} {by_field[name]}"
        for name in COMPARED_FIELDS
        if by_field[name] or name != "tenant_id"
    )
    examples = "; ".join(_example(change) for change in updates[:UPDATE_EXAMPLES])
    return GuardStop(
        "max_update",
        f"{len(updates)} updates exceed {allowance.describe()}; nothing was changed. Changed fields: "
        f"{counts}. For example: {examples}. Check the directory and the settings that shape the agents "
        "(graph.default_region, graph.phone_source); if this is intended, run once with --force or raise "
        "sync.max_update.",
    )


def _example(change: Change) -> str:
    """Pure: one update for a guard's message: "<object ID> (<UPN>): phone number +4722... -> +4522..."."""
    upn = next((fields.upn for fields in (change.desired, change.believed) if fields and fields.upn), None)
    before, after = change.believed, change.desired
    fields = ", ".join(
        f"{FIELD_LABELS[name]} {getattr(before, name, None)} -> {getattr(after, name, None)}"
        for name in change.fields
    )
    return f"{change.object_id}{f' ({upn})' if upn else ''}: {fields}"


@dataclass
class _Claims:
    """Consistency GUIDs held by one object's agent and wanted by another person in scope."""

    relinks: dict[str, str] = field(default_factory=dict)
    """New object ID -> the out-of-scope object ID whose agent moves to it."""
    kept: set[str] = field(default_factory=set)
    """Out-of-scope holders whose claimant waits (a retry backoff)."""
    conflicts: dict[str, str] = field(default_factory=dict)
    """New object ID -> a holder who is in scope too."""


def _claims(
    desired: DesiredState,
    recorded: Mapping[str, Recorded],
    remote: Mapping[str, Agent] | None,
    *,
    now: float,
    subset: Collection[str] | None,
    only: str | None,
) -> _Claims:
    """Pure: who would take over whose agent by the consistency GUID (see `plan`)."""
    claims = _Claims()
    claimants: dict[str, list[str]] = {}
    for object_id, member in desired.members.items():
        if member.consistency_id is not None and not _has_agent(object_id, recorded, remote):
            claimants.setdefault(member.consistency_id, []).append(object_id)
    if not claimants:
        return claims
    holders: dict[str, list[str]] = {}
    for object_id, record in recorded.items():
        if record.agent is None and remote is None:
            continue
        believed = _believed(object_id, record, remote)
        if believed is not None and believed.consistency_id in claimants:
            holders.setdefault(believed.consistency_id, []).append(object_id)
    for anchor, news in claimants.items():
        olds = [old for old in holders.get(anchor, ()) if old not in news]
        if len(olds) != 1:
            continue  # nobody holds it (an onboarding as usual), or our records disagree: no guess
        [old] = olds
        if old in desired.members:
            claims.conflicts.update(dict.fromkeys(news, old))
        elif subset is not None and old not in subset:
            continue  # not read in this cycle: whether it is in scope is not known
        elif len(news) > 1:
            continue  # several people claim one anchor: nobody is chosen (onboarding fails on it)
        elif _waiting(recorded.get(news[0]), now) and only is None:
            claims.kept.add(old)
        else:
            claims.relinks[news[0]] = old
    return claims


def _relink_change(
    object_id: str,
    wanted: AgentFields,
    old: str,
    recorded: Mapping[str, Recorded],
    remote: Mapping[str, Agent] | None,
) -> Change:
    believed = _believed(old, recorded.get(old), remote)
    assert believed is not None  # a holder has an agent
    return Change(
        Action.RELINK,
        object_id,
        wanted,
        believed,
        ("user_object_id", *changed_fields(believed, wanted)),
        reason=f"re-created in Entra: the agent of {old} (consistency GUID {wanted.consistency_id}) "
        "moves here",
        from_object_id=old,
    )


def _leaves_teams(change: Change, desired: DesiredState, recorded: Mapping[str, Recorded]) -> bool:
    """Whether `change` takes away an agent's number that came from Teams (offboarding, or renumbering
    from another source)."""
    record = recorded.get(change.object_id)
    if record is None or record.phone_source != TEAMS:
        return False
    if change.action is Action.OFFBOARD:
        return True
    member = desired.members.get(change.object_id)
    return (
        change.action is Action.UPDATE
        and "phone_number" in change.fields
        and (member is None or member.phone_source != TEAMS)
    )


def _teams_guard(
    result: Plan, desired: DesiredState, recorded: Mapping[str, Recorded], max_offboard: Allowance
) -> GuardStop | None:
    """A Teams read that comes back empty or short (an outage, a re-provisioning, numbers stuck pending)
    must not renumber or offboard the agents whose numbers came from Teams."""
    if desired.teams_numbers is None:
        return None  # teams is not a phone source
    from_teams = [
        object_id
        for object_id, record in recorded.items()
        if record.agent is not None and record.phone_source == TEAMS
    ]
    if desired.teams_numbers == 0 and from_teams:
        return GuardStop(
            "teams_numbers",
            f"Graph listed no Teams number assigned to a user, but {len(from_teams)} agents have their "
            "number from Teams; nothing was changed. Check the Teams number assignments (and the app's "
            "TeamsTelephoneNumber.Read.All permission); if they really are gone, run with --force.",
        )
    leaving = [change for change in result.changes if _leaves_teams(change, desired, recorded)]
    if max_offboard.exceeded_by(len(leaving)):
        return GuardStop(
            "teams_numbers",
            f"{len(leaving)} agents would lose the number they have from Teams (renumbered from another "
            f"source or offboarded), more than {max_offboard.describe()}; nothing was changed. "
            f"Check the Teams number assignments (Graph listed {desired.teams_numbers} users with one); "
            "if this is intended, run once with --force.",
        )
    return None


def _guard(
    result: Plan, desired: DesiredState, max_offboard: Allowance, previous: Mapping[str, int]
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
    if max_offboard.exceeded_by(offboards):
        return GuardStop(
            "max_offboard",
            f"{offboards} offboardings exceed {max_offboard.describe()}; nothing was changed. "
            "Check the groups; if this is intended, run once with --force or raise sync.max_offboard.",
        )
    return None


def _relink_guard(result: Plan, max_relink: Allowance) -> GuardStop | None:
    relinks = result.count(Action.RELINK)
    if max_relink.exceeded_by(relinks):
        return GuardStop(
            "max_relink",
            f"{relinks} relinks exceed {max_relink.describe()}; nothing was changed. Each moves an "
            "agent and its data to a new object ID with the same consistency GUID (a user re-created in "
            "Entra): this many at once suggests a forest migration or an Entra Connect change. Check the "
            "directory; if this is intended, run once with --force or raise sync.max_relink.",
        )
    return None
