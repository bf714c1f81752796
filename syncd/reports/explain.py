"""`syncd explain`: everything syncd knows about one person, to answer "why is this person (not) an agent?".

`explain_person` reads for one person what a cycle reads for everyone: the user in Graph, the path from each
configured group down through nested groups to the user, each phone source's value and verdict, the
consistency GUID; our record and audit log; the agent SmartCommunicator holds now (and who holds the number
when that is someone else). Then it asks `syncd.reconcile.plan`, with a one-person desired state, what the
next cycle would do. A section that cannot be read (Graph or SmartCommunicator failing) says what failed and
the others are still filled in; `Explanation.errors` lists the failures.

The decisions are pure functions, tested with tables in tests/unit/test_explain.py: `shortest_paths` over a
group adjacency map, `phone_verdicts` per phone source, `classify_query` for the argument, `next_cycle` for
the plan and its wording. `render_text` and `Explanation.to_json` only format.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from syncd.config.settings import GraphSettings, Settings
from syncd.core.model import (
    TEAMS,
    Action,
    Agent,
    AgentFields,
    DesiredState,
    Member,
    MemberStatus,
    Recorded,
    Skipped,
)
from syncd.core.reconcile import Plan, plan
from syncd.core.times import utc_text
from syncd.graph.errors import GraphError
from syncd.graph.mapping import decode_consistency_guid, map_user, raw_phone, teams_e164, to_e164
from syncd.graph.source import GraphSource
from syncd.graph.teams import USER_ASSIGNED, TeamsIndexer
from syncd.smartcomm import AgentNotFound, SmartCommClient, SmartCommError
from syncd.store import OperationRecord, Store

MAX_GROUPS_VISITED = 500
"""Nested groups whose members are listed at most while looking for a person's path (a guard against a
huge or runaway group tree; the search then says it stopped)."""

MAX_PATHS = 5
"""Shortest paths shown per configured group (several when the person is in the group several ways)."""

SHOWN_OPERATIONS = 10
"""Operations shown, newest first."""

OPERATIONS_SEARCHED = 200
"""Operations read back to find the last successful one."""

SUCCESS = frozenset({"ok", "adopted", "already_gone"})

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

QueryKind = Literal["object_id", "upn", "phone", "name"]
NextAction = Literal["onboard", "update", "offboard", "nothing", "wait", "unknown"]


class PersonNotFound(Exception):
    """Nobody we know matches what was asked (in our records, in Graph, among Teams numbers); the message is
    one line for the admin."""


class AmbiguousPerson(PersonNotFound):
    """Several people match (a number two people have had): ask again by object ID."""

    def __init__(self, message: str, candidates: Sequence[tuple[str, str | None]]) -> None:
        super().__init__(message)
        self.candidates = list(candidates)
        """(object ID, UPN if known) of each match."""


# --- the sections --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRef:
    """A group as shown: its object ID and display name (None when Graph did not give one)."""

    id: str
    display_name: str | None = None

    def shown(self) -> str:
        return f"{self.display_name} ({self.id})" if self.display_name else self.id

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "display_name": self.display_name}


@dataclass
class Who:
    """Who the person is, as Graph says (and as we recorded when Graph does not know them)."""

    object_id: str
    upn: str | None = None
    display_name: str | None = None
    account_enabled: bool | None = None
    in_graph: bool | None = None
    """False: Graph has no such user (deleted); None: Graph could not be read."""
    in_records: bool = False
    error: str | None = None


@dataclass
class Membership:
    """Which configured groups make the person a member, and through which nested groups."""

    configured: list[GroupRef] = field(default_factory=list)
    direct_groups: list[GroupRef] = field(default_factory=list)
    """The groups the user is a direct member of (any group, configured or not)."""
    paths: list[list[GroupRef]] = field(default_factory=list)
    """Shortest paths, each from a configured group down to one of the user's direct groups."""
    groups_visited: int = 0
    """Groups whose nested groups were listed."""
    truncated: bool = False
    """The search stopped at MAX_GROUPS_VISITED before it could rule a configured group out."""
    error: str | None = None

    @property
    def member(self) -> bool | None:
        """Whether any configured group holds the person (None: not known, when Graph could not be read or
        the search stopped at MAX_GROUPS_VISITED without finding a path)."""
        if self.paths:
            return True
        return None if self.error is not None or self.truncated else False

    @property
    def member_of(self) -> list[str]:
        """The configured groups that hold the person, in configuration order."""
        through = {path[0].id for path in self.paths}
        return [group.id for group in self.configured if group.id in through]


@dataclass(frozen=True)
class SourceVerdict:
    """One phone source: what it holds and what that normalised to, or why not."""

    source: str
    raw: str | None
    """The value as Graph gives it (Teams: the chosen assignment's number); None when empty."""
    e164: str | None
    problem: str | None
    """Why the source gives no number, when it gives none."""
    chosen: bool = False
    """This source gave the agent's number (the first one with a valid number)."""
    notes: tuple[str, ...] = ()
    """Teams: the user's other assignments and why they do not count; a tie."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "raw": self.raw,
            "e164": self.e164,
            "problem": self.problem,
            "chosen": self.chosen,
            "notes": list(self.notes),
        }


@dataclass
class Phone:
    """The phone source chain for this person, and the overall verdict of the mapping (`map_user`)."""

    chain: list[str] = field(default_factory=list)
    default_region: str = ""
    sources: list[SourceVerdict] = field(default_factory=list)
    in_scope: bool | None = None
    """Whether the mapping takes the person in (None: not known)."""
    number: str | None = None
    source: str | None = None
    skip_reason: str | None = None
    detail: str | None = None
    """The mapping's skip detail."""
    error: str | None = None


@dataclass
class Consistency:
    """The consistency GUID: `onPremisesImmutableId` as Graph gives it and what it decodes to."""

    raw: str | None = None
    guid: str | None = None
    note: str = ""
    error: str | None = None


@dataclass
class RecordSection:
    """Our record of the person and when it last changed; when a write last succeeded."""

    record: Recorded | None = None
    updated_at: float | None = None
    last_success_at: float | None = None


@dataclass
class Remote:
    """The agent SmartCommunicator holds now, and who holds the number we want when it is not ours."""

    agent: Agent | None = None
    number_checked: str | None = None
    """The number looked up by `key_id=phone_number` (it differs from the agent's, or there is none)."""
    number_holder: Agent | None = None
    """The agent holding `number_checked`, when it is another object's."""
    error: str | None = None


@dataclass(frozen=True)
class NextCycle:
    """What the next cycle would do with this person, and why."""

    action: NextAction
    text: str
    """One sentence for the admin."""
    fields: tuple[str, ...] = ()
    """For an update: the fields that would change."""
    waiting_until: float | None = None
    full_cycle: str | None = None
    """What a full cycle (which compares with the agent itself) would do instead, when that differs."""

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "text": self.text,
            "fields": list(self.fields),
            "waiting_until": self.waiting_until,
            "full_cycle": self.full_cycle,
        }


@dataclass
class Explanation:
    """Everything syncd knows about one person, section by section (see the module docstring)."""

    query: str
    who: Who
    membership: Membership
    phone: Phone
    consistency: Consistency
    record: RecordSection
    remote: Remote
    operations: list[OperationRecord]
    next_cycle: NextCycle
    generated_at: float

    @property
    def errors(self) -> list[str]:
        """What could not be read, one message per failed section."""
        found = [
            self.who.error,
            self.membership.error,
            self.phone.error,
            self.consistency.error,
            self.remote.error,
        ]
        return list(dict.fromkeys(error for error in found if error))

    def to_json(self) -> dict[str, Any]:
        """Pure: the `--json` document, with the same sections as the text and stable keys."""
        record = self.record.record
        return {
            "query": self.query,
            "object_id": self.who.object_id,
            "generated_at": self.generated_at,
            "who": {
                "object_id": self.who.object_id,
                "upn": self.who.upn,
                "display_name": self.who.display_name,
                "account_enabled": self.who.account_enabled,
                "in_graph": self.who.in_graph,
                "in_records": self.who.in_records,
                "error": self.who.error,
            },
            "membership": {
                "member": self.membership.member,
                "member_of": self.membership.member_of,
                "configured_groups": [group.to_json() for group in self.membership.configured],
                "direct_groups": [group.to_json() for group in self.membership.direct_groups],
                "paths": [[group.to_json() for group in path] for path in self.membership.paths],
                "groups_visited": self.membership.groups_visited,
                "truncated": self.membership.truncated,
                "error": self.membership.error,
            },
            "phone": {
                "chain": list(self.phone.chain),
                "default_region": self.phone.default_region,
                "sources": [verdict.to_json() for verdict in self.phone.sources],
                "in_scope": self.phone.in_scope,
                "number": self.phone.number,
                "source": self.phone.source,
                "skip_reason": self.phone.skip_reason,
                "detail": self.phone.detail,
                "error": self.phone.error,
            },
            "consistency_guid": {
                "raw": self.consistency.raw,
                "guid": self.consistency.guid,
                "note": self.consistency.note,
                "error": self.consistency.error,
            },
            "record": {
                "found": record is not None,
                "status": record.status.value if record is not None else None,
                "agent": _fields_json(record.agent) if record is not None else None,
                "upn": record.upn if record is not None else None,
                "phone_source": record.phone_source if record is not None else None,
                "skip_reason": record.skip_reason.value
                if record is not None and record.skip_reason is not None
                else None,
                "detail": record.detail if record is not None else None,
                "attempts": record.attempts if record is not None else None,
                "next_attempt_at": record.next_attempt_at if record is not None else None,
                "updated_at": self.record.updated_at,
                "last_success_at": self.record.last_success_at,
            },
            "remote": {
                "agent": _agent_json(self.remote.agent),
                "number_checked": self.remote.number_checked,
                "number_holder": _agent_json(self.remote.number_holder),
                "error": self.remote.error,
            },
            "operations": [
                {
                    "id": op.id,
                    "run_id": op.run_id,
                    "created_at": op.created_at,
                    "settled_at": op.settled_at,
                    "action": op.action.value,
                    "outcome": op.outcome.value,
                    "http_status": op.http_status,
                    "error": op.error,
                }
                for op in self.operations
            ],
            "next_cycle": self.next_cycle.to_json(),
            "errors": self.errors,
        }


def _fields_json(fields: AgentFields | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    return {
        "phone_number": fields.phone_number,
        "upn": fields.upn,
        "consistency_id": fields.consistency_id,
        "tenant_id": fields.tenant_id,
    }


def _agent_json(agent: Agent | None) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {
        "user_object_id": agent.user_object_id,
        "status": agent.status,
        "phone_number": agent.phone_number,
        "upn": agent.upn,
        "consistency_id": agent.consistency_id,
        "tenant_id": agent.tenant_id,
    }


# --- pure decisions ------------------------------------------------------------------------------------


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
        # plan offboards whenever we believe an agent exists, so here syncd manages none (an agent someone
        # else made is never touched).
        return "nothing", (), f"nothing to do: {_out_of_scope(person)}, and syncd manages no agent for them"
    if change.action is Action.ONBOARD:
        wanted = change.desired
        assert wanted is not None  # an onboarding always has the desired fields
        upn = f" {wanted.upn}" if wanted.upn else ""
        return "onboard", (), f"onboard{upn} with {wanted.phone_number} (in scope, no agent yet)"
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
    max_offboard: int,
    remote: Agent | None = None,
    remote_known: bool = False,
    number_holder: Agent | None = None,
    known: bool = True,
    why_unknown: str = "Graph could not be read (see above); a cycle now would fail the same way",
) -> NextCycle:
    """Pure: what the next cycle would do with one person, by `syncd.reconcile.plan` on a one-person
    desired state, and in words.

    `person` is the mapping's verdict (`map_user`) when the person is in a configured group (`member_of`
    lists which), else None. `known` is False when Graph could not be read: then nothing can be said.
    A failed record whose backoff runs past `now` waits (plan's deferral), and the sentence says what
    comes after the wait. With `remote_known`, a full cycle's plan (against `remote`, the agent now) is
    compared too and reported when it differs. An active `number_holder` (another object's agent with the
    number we would send) means the write would fail again: the sentence says so.
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
    # Guards are about a whole cycle; for one person they would only hide the decision.
    options: dict[str, Any] = {"now": now, "max_offboard": max_offboard, "force": True}
    action, fields, text = _decision(
        plan(desired, recorded, **options, only=object_id), object_id, person, record
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
        )
    return NextCycle(action, text, fields, None, full_cycle)


# --- reading -------------------------------------------------------------------------------------------


async def explain_person(
    settings: Settings,
    store: Store,
    who: str,
    *,
    graph_transport: httpx.AsyncBaseTransport | None = None,
    smartcomm_transport: httpx.AsyncBaseTransport | None = None,
) -> Explanation:
    """Everything syncd knows about one person: `who` is an object ID, a UPN (any case) or a phone number.

    Raises PersonNotFound (AmbiguousPerson when several people match a number) with a one-line message,
    ConfigError when [graph] or [smartcomm] is missing, StoreError for the database. Graph and
    SmartCommunicator failures never raise: the section says what failed (`Explanation.errors`).
    """
    graph_settings = settings.require_graph()
    smartcomm_settings = settings.require_smartcomm()
    now = time.time()
    kind, key = classify_query(who, graph_settings.default_region)
    if not key:
        raise PersonNotFound("nothing to look up: give a UPN, an object ID or a phone number")
    async with GraphSource(graph_settings, transport=graph_transport) as source:
        object_id, user, user_error = await _resolve(kind, key, who, graph_settings, store, source)
        found = [
            (r, at)
            for r, at in await asyncio.to_thread(store.find_members, object_id)
            if r.object_id == object_id
        ]
        record, updated_at = found[0] if found else (None, None)
        explanation = _start(who, object_id, user, user_error, record, updated_at, now)
        person: Member | Skipped | None = None
        if user is not None:
            person = await _read_graph(explanation, graph_settings, source, user)
        else:
            reason = user_error or "the user is not in Graph (deleted, or never in this tenant)"
            explanation.membership = Membership(
                configured=[GroupRef(g) for g in graph_settings.group_ids], error=user_error
            )
            explanation.phone = Phone(
                list(graph_settings.phone_chain), graph_settings.default_region, error=user_error
            )
            explanation.consistency = Consistency(note=reason, error=user_error)
    # In a thread: the status page calls this on the daemon's event loop.
    operations = await asyncio.to_thread(store.operations, object_id=object_id, limit=OPERATIONS_SEARCHED)
    explanation.operations = operations[:SHOWN_OPERATIONS]
    explanation.record.last_success_at = next(
        (op.settled_at or op.created_at for op in operations if op.outcome.value in SUCCESS), None
    )
    async with SmartCommClient(smartcomm_settings, transport=smartcomm_transport) as client:
        explanation.remote = await _read_remote(client, object_id, person, record)
    known = user_error is None and explanation.membership.error is None and explanation.phone.error is None
    why_unknown = None
    if known and explanation.membership.member is None:
        known = False
        why_unknown = "the nested-group search stopped before it found the person (see Membership)"
    explanation.next_cycle = next_cycle(
        object_id=object_id,
        person=person,
        configured=graph_settings.group_ids,
        member_of=explanation.membership.member_of,
        record=record,
        now=now,
        max_offboard=settings.sync.max_offboard,
        remote=explanation.remote.agent,
        remote_known=explanation.remote.error is None,
        number_holder=explanation.remote.number_holder,
        known=known,
        **({"why_unknown": why_unknown} if why_unknown else {}),
    )
    return explanation


async def _resolve(
    kind: QueryKind, key: str, asked: str, settings: GraphSettings, store: Store, source: GraphSource
) -> tuple[str, dict[str, Any] | None, str | None]:
    """The one object ID meant, the Graph user (None: not in Graph or not read) and the Graph error."""
    candidates: dict[str, str | None] = {}
    for record, _ in await asyncio.to_thread(store.find_members, key):
        candidates.setdefault(record.object_id, record.upn or (record.agent.upn if record.agent else None))
    user: dict[str, Any] | None = None
    error: str | None = None
    try:
        if kind == "phone":
            if settings.uses_teams:
                for item in await source.teams_assignments(f"telephoneNumber eq '{key}'"):
                    target = item.get("assignmentTargetId")
                    if item.get("assignmentStatus") == USER_ASSIGNED and isinstance(target, str) and target:
                        candidates.setdefault(target.strip().lower(), None)
        else:
            user = await source.get_user(key)
            if user is not None and isinstance(user.get("id"), str):
                upn = user.get("userPrincipalName")
                candidates.setdefault(str(user["id"]).lower(), upn if isinstance(upn, str) else None)
    except GraphError as exc:
        error = f"Graph: could not read the user: {exc}"
    if not candidates:
        if error is not None:
            raise PersonNotFound(f"cannot look up {asked.strip()!r}: not in our records, and {error}")
        if kind == "phone":
            known = "the numbers it pushed" + (" and Teams assignments" if settings.uses_teams else "")
            raise PersonNotFound(
                f"nobody we know has {key}: syncd only knows {known}; look the person up by UPN or object ID"
            )
        raise PersonNotFound(f"no person {asked.strip()!r}: not in Graph and not in our records")
    if len(candidates) > 1:
        listed = ", ".join(f"{oid} ({upn or 'UPN unknown'})" for oid, upn in candidates.items())
        raise AmbiguousPerson(
            f"{asked.strip()!r} matches {len(candidates)} people: {listed}; "
            "run syncd explain with one object ID",
            list(candidates.items()),
        )
    [object_id] = candidates
    if user is None and error is None:
        try:
            user = await source.get_user(object_id)
        except GraphError as exc:
            error = f"Graph: could not read the user: {exc}"
    return object_id, user, error


def _start(
    asked: str,
    object_id: str,
    user: Mapping[str, Any] | None,
    user_error: str | None,
    record: Recorded | None,
    updated_at: float | None,
    now: float,
) -> Explanation:
    who = Who(object_id, in_records=record is not None, error=user_error)
    if user is not None:
        upn, name, enabled = (
            user.get("userPrincipalName"),
            user.get("displayName"),
            user.get("accountEnabled"),
        )
        who.upn = upn if isinstance(upn, str) else None
        who.display_name = name if isinstance(name, str) and name else None
        who.account_enabled = enabled if isinstance(enabled, bool) else None
        who.in_graph = True
    else:
        who.in_graph = None if user_error is not None else False
        if record is not None:
            who.upn = record.upn or (record.agent.upn if record.agent is not None else None)
    return Explanation(
        query=asked,
        who=who,
        membership=Membership(),
        phone=Phone(),
        consistency=Consistency(),
        record=RecordSection(record, updated_at),
        remote=Remote(),
        operations=[],
        next_cycle=NextCycle("unknown", "not worked out"),
        generated_at=now,
    )


async def _read_graph(
    explanation: Explanation, settings: GraphSettings, source: GraphSource, user: Mapping[str, Any]
) -> Member | Skipped | None:
    """Fill the membership, phone and consistency sections from Graph; the mapping's verdict on the user
    (None when the Teams numbers could not be read)."""
    object_id = explanation.who.object_id
    explanation.membership = await _membership(settings, source, object_id)
    explanation.consistency = consistency_of(user)
    phone = Phone(list(settings.phone_chain), settings.default_region)
    teams_items: list[dict[str, Any]] | None = None
    if settings.uses_teams:
        try:
            teams_items = await source.teams_assignments(f"assignmentTargetId eq '{object_id}'")
        except GraphError as exc:
            phone.error = f"Graph: could not read the Teams number assignments: {exc}"
    phone.sources = phone_verdicts(
        user,
        settings.phone_chain,
        default_region=settings.default_region,
        teams_items=teams_items,
        teams_categories=settings.teams_categories,
    )
    explanation.phone = phone
    if phone.error is not None:
        return None
    indexer = TeamsIndexer(settings.teams_categories)
    indexer.add(teams_items or [])
    mapped = map_user(
        dict(user),
        tenant_id=settings.tenant_id,
        phone_sources=settings.phone_chain,
        default_region=settings.default_region,
        teams=indexer.result() if teams_items is not None else None,
    )
    if isinstance(mapped, Member):
        phone.in_scope, phone.number, phone.source = True, mapped.phone_number, mapped.phone_source
    else:
        phone.in_scope, phone.skip_reason, phone.detail = False, mapped.reason.value, mapped.detail
    return mapped


async def _membership(settings: GraphSettings, source: GraphSource, object_id: str) -> Membership:
    """The user's direct groups, the nested group tree under each configured group (breadth first, each
    level only as deep as needed, at most MAX_GROUPS_VISITED groups listed), and the shortest paths."""
    membership = Membership(configured=[GroupRef(g) for g in settings.group_ids])
    names: dict[str, str | None] = {}
    try:
        direct = await source.member_of(object_id)
        membership.direct_groups = [_group_ref(g, names) for g in direct]
        targets = {group.id for group in membership.direct_groups}
        children: dict[str, list[str]] = {}
        for root in settings.group_ids:
            level, seen = [root], {root}
            while level and not targets.intersection(level):
                following: list[str] = []
                for group in level:
                    if group not in children:
                        if membership.groups_visited >= MAX_GROUPS_VISITED:
                            membership.truncated = True
                            break
                        nested = await source.child_groups(group)
                        membership.groups_visited += 1
                        children[group] = [_group_ref(g, names).id for g in nested]
                    following.extend(child for child in children[group] if child not in seen)
                    seen.update(children[group])
                if membership.truncated:
                    break
                level = following
        for root in settings.group_ids:
            if root not in names:
                read = await source.get_group(root)
                names[root] = _display_name(read) if read is not None else None
        membership.configured = [GroupRef(g, names.get(g)) for g in settings.group_ids]
        membership.paths = [
            [GroupRef(g, names.get(g)) for g in path]
            for root in settings.group_ids
            for path in shortest_paths(root, children, targets)
        ]
    except GraphError as exc:
        membership.error = f"Graph: could not read the group memberships: {exc}"
    return membership


def _display_name(group: Mapping[str, Any]) -> str | None:
    name = group.get("displayName")
    return name if isinstance(name, str) and name else None


def _group_ref(group: Mapping[str, Any], names: dict[str, str | None]) -> GroupRef:
    group_id = str(group.get("id") or "").lower()
    name = _display_name(group)
    if name is not None or group_id not in names:
        names[group_id] = name
    return GroupRef(group_id, names[group_id])


async def _read_remote(
    client: SmartCommClient, object_id: str, person: Member | Skipped | None, record: Recorded | None
) -> Remote:
    remote = Remote()
    try:
        try:
            remote.agent = await client.get_agent(object_id)
        except AgentNotFound:
            remote.agent = None
        wanted = person.phone_number if isinstance(person, Member) else None
        if wanted is None and record is not None and record.agent is not None:
            wanted = record.agent.phone_number
        agent = remote.agent
        if wanted is not None and (agent is None or not agent.active or agent.phone_number != wanted):
            remote.number_checked = wanted
            try:
                holder = await client.get_agent(wanted, key_id="phone_number")
            except AgentNotFound:
                holder = None
            if holder is not None and holder.user_object_id.lower() != object_id:
                remote.number_holder = holder
    except SmartCommError as exc:
        remote.error = f"SmartCommunicator: could not read the agent: {exc}"
    return remote


# --- rendering -----------------------------------------------------------------------------------------


def render_text(explanation: Explanation) -> str:
    """Pure: the explanation as text for a terminal, section by section (ends with a newline)."""
    e = explanation
    lines: list[str] = []

    def row(label: str, value: object) -> None:
        lines.append(f"  {label:<17} {value}")

    def fields_rows(label: str, fields: AgentFields) -> None:
        row(label, f"phone {fields.phone_number}")
        row("", f"UPN {fields.upn or '-'}")
        row("", f"consistency GUID {fields.consistency_id or '-'}")
        row("", f"tenant {fields.tenant_id}")

    def section(title: str) -> None:
        if lines:
            lines.append("")
        lines.append(title)

    who = e.who
    section("Who")
    row("object ID", who.object_id)
    row("UPN", who.upn or "-")
    row("display name", who.display_name or "-")
    row("account enabled", _yes_no(who.account_enabled))
    if who.in_graph is False:
        row("in Graph", "no: the user is not in Graph (deleted, or never in this tenant)")
    if who.error:
        row("error", who.error)

    m = e.membership
    section("Membership")
    configured = ", ".join(group.shown() for group in m.configured)
    if m.error:
        row("configured groups", configured)
        row("error", m.error)
    elif m.paths:
        groups = len(m.member_of)
        lines.append(f"  member through {groups} of {len(m.configured)} configured group(s):")
        person = who.upn or who.object_id
        lines.extend(f"    {' > '.join(g.shown() for g in path)} > {person}" for path in m.paths)
    elif who.in_graph:
        if m.truncated:
            lines.append(
                f"  no path found from a configured group ({configured}) within the first "
                f"{m.groups_visited} nested groups searched: membership is not known (a cycle reads the "
                "groups' transitive members and may still find the person)"
            )
        else:
            lines.append(f"  not a member of any configured group ({configured}): this alone means no agent")
        if m.direct_groups:
            row("direct groups", ", ".join(group.shown() for group in m.direct_groups))
    else:
        lines.append("  not in Graph, so in no configured group")

    p = e.phone
    section(f"Phone (sources: {', '.join(p.chain) or '-'}; region {p.default_region or '-'})")
    winner = next((v.source for v in p.sources if v.chosen), None)
    for verdict in p.sources:
        raw = repr(verdict.raw) if verdict.raw is not None else ""
        if verdict.e164 is not None:
            shown = f"{raw} -> {verdict.e164}"
            shown += "   <- chosen" if verdict.chosen else f"   (not used: {winner} comes first)"
        else:
            # to_e164's problems quote the raw value already ("'n/a' is not a phone number").
            problem = verdict.problem or ""
            shown = problem if not raw or problem.startswith(raw) else f"{raw}: {problem}"
        row(verdict.source, shown)
        lines.extend(f"  {'':<17}   {note}" for note in verdict.notes)
    if p.error:
        row("error", p.error)
    elif not p.sources:
        lines.append("  not read: the user is not in Graph")
    if p.in_scope is True:
        row("verdict", f"in scope with {p.number} from {p.source}")
    elif p.in_scope is False:
        row("verdict", f"skipped: {p.skip_reason} ({p.detail})")

    c = e.consistency
    section("Consistency GUID")
    if c.error:
        row("error", c.error)
    else:
        row("immutable ID", repr(c.raw) if c.raw is not None else "-")
        row("GUID", c.guid or "-")
        row("", c.note)

    r = e.record
    section("Our record")
    record = r.record
    if record is None:
        lines.append("  none: syncd has never recorded this person")
    else:
        row("status", f"{record.status.value}   (changed {utc_text(r.updated_at, 'labelled')})")
        if record.skip_reason is not None:
            row("skip reason", record.skip_reason.value)
        if record.agent is None:
            row("agent pushed", "none")
        else:
            fields_rows("agent pushed", record.agent)
        row("number from", record.phone_source or "-")
        row("attempts", record.attempts)
        if record.next_attempt_at is not None:
            row("next retry", utc_text(record.next_attempt_at, "labelled"))
        if record.detail:
            row("detail", record.detail)
        row("last success", utc_text(r.last_success_at, "labelled"))

    rm = e.remote
    section("SmartCommunicator now")
    if rm.error:
        row("error", rm.error)
    if rm.agent is not None:
        row("agent", rm.agent.status)
        fields_rows("", AgentFields.of_agent(rm.agent, None))
    elif not rm.error:
        lines.append("  no agent for this object ID")
    if rm.number_checked is not None:
        holder = rm.number_holder
        if holder is None:
            row("number", f"{rm.number_checked} is held by no other agent")
        else:
            upn = f" ({holder.upn})" if holder.upn else ""
            row(
                "number",
                f"{rm.number_checked} is held by agent {holder.user_object_id}{upn}, {holder.status}",
            )

    section("Last operations")
    if not e.operations:
        lines.append("  none")
    for op in e.operations:
        status = f"HTTP {op.http_status}" if op.http_status is not None else ""
        lines.append(
            f"  {utc_text(op.created_at, 'labelled')}  {op.action.value:<8}  {op.outcome.value:<12}  "
            f"{status:<8}  {op.error or ''}".rstrip()
        )

    n = e.next_cycle
    section("Next cycle")
    lines.append(f"  {n.text}")
    if n.action == "wait":
        lines.append(f"  (syncd sync --user {who.object_id} retries at once)")
    if n.full_cycle:
        lines.append(f"  a full cycle would instead: {n.full_cycle}")
    return "\n".join(lines) + "\n"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")
