"""The reading behind `syncd explain`: for one person, the user, groups (configured and excluded) and Teams
numbers in Graph with the result of `graph.filter`, our record and audit log in the store, and the agent in
SmartCommunicator, gathered into an `Explanation`.

Graph and SmartCommunicator failures never raise: the section that could not be read says what failed and
the others are still filled in. The decisions on what was read are `verdicts`.

What is asked only reaches Graph as a UPN, an object ID or a number (anything else is refused before a
request, `QueryNotUnderstood`); keys in paths are percent-encoded by msgraph-sdk's URL templates, and
values in a `$filter` are quoted as OData strings (`odata_string`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from syncd.config.settings import GraphSettings, Settings
from syncd.core.model import Member, Recorded, Skipped
from syncd.core.text import printable
from syncd.graph.errors import GraphError
from syncd.graph.mapping import map_user
from syncd.graph.source import GraphSource
from syncd.graph.teams import USER_ASSIGNED, TeamsIndexer
from syncd.reports.explain.model import (
    AmbiguousPerson,
    Consistency,
    Explanation,
    Filter,
    GroupRef,
    Membership,
    NextCycle,
    PersonNotFound,
    Phone,
    QueryKind,
    QueryNotUnderstood,
    RecordSection,
    Remote,
    Who,
)
from syncd.reports.explain.verdicts import (
    classify_query,
    consistency_of,
    next_cycle,
    phone_verdicts,
    shortest_paths,
)
from syncd.smartcomm import AgentNotFound, SmartCommClient, SmartCommError
from syncd.store import Store

MAX_GROUPS_VISITED = 500
"""Nested groups whose members are listed at most while looking for a person's path (a guard against a
huge or runaway group tree; the search then says it stopped)."""

SHOWN_OPERATIONS = 10
"""Operations shown, newest first."""

OPERATIONS_SEARCHED = 200
"""Operations read back to find the last successful one."""

SUCCESS = frozenset({"ok", "adopted", "already_gone"})


def odata_string(value: str) -> str:
    """Pure: `value` as an OData string literal: in single quotes, a quote inside doubled."""
    return "'" + value.replace("'", "''") + "'"


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
    if kind == "name":
        # Graph addresses a user by object ID or UPN only; anything else would just be put in a path.
        raise QueryNotUnderstood(
            f"{key!r} is not a UPN (name@domain), an object ID (a GUID) or a phone number: "
            "syncd explain looks people up by these only"
        )
    holder: tuple[Recorded, Member | None] | None = None
    async with GraphSource(graph_settings, transport=graph_transport) as source:
        object_id, user, user_error = await _resolve(kind, key, who, graph_settings, store, source)
        found = [
            (r, at)
            for r, at in await asyncio.to_thread(store.find_members, object_id)
            if r.object_id == object_id
        ]
        record, updated_at = found[0] if found else (None, None)
        explanation = _start(who, object_id, user, user_error, record, updated_at, now)
        explanation.filter = Filter(graph_settings.filter.strip())
        person: Member | Skipped | None = None
        if user is not None:
            person = await _read_graph(explanation, graph_settings, source, user)
            holder = await _anchor_holder(graph_settings, source, store, person, record)
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
        offboard_grace_s=settings.sync.offboard_grace_s,
        relink=settings.sync.relink == "auto",
        anchor_holder=holder[0] if holder is not None else None,
        holder_member=holder[1] if holder is not None else None,
    )
    return explanation


async def _anchor_holder(
    settings: GraphSettings,
    source: GraphSource,
    store: Store,
    person: Member | Skipped | None,
    record: Recorded | None,
) -> tuple[Recorded, Member | None] | None:
    """For a person in scope without an agent: the record of another object ID whose agent has their
    consistency GUID, with its mapping when it is in scope (None: out of scope, so a cycle relinks); None
    when there is no such holder, or whether it is in scope cannot be read (the explanation then says what
    a plain onboarding would do)."""
    if not isinstance(person, Member) or person.consistency_id is None:
        return None
    if record is not None and record.agent is not None:
        return None
    guid = person.consistency_id
    held = (await asyncio.to_thread(store.anchor_holders, [guid])).get(guid, [])
    others = [object_id for object_id in held if object_id != person.object_id]
    if len(others) != 1:
        return None
    [other] = others
    found = (await asyncio.to_thread(store.load_recorded, [other])).get(other)
    if found is None:
        return None
    try:
        user = await source.get_user(other)
        if user is None:
            return found, None  # deleted from the directory: out of scope
        membership = await _membership(settings, source, other)
        if membership.member is None:
            return None
        if not membership.member:
            return found, None
        teams = None
        if settings.uses_teams:
            indexer = TeamsIndexer(settings.teams_categories)
            indexer.add(await source.teams_assignments(f"assignmentTargetId eq {odata_string(other)}"))
            teams = indexer.result()
    except GraphError:
        return None
    mapped = map_user(
        dict(user),
        tenant_id=settings.tenant_id,
        phone_sources=settings.phone_chain,
        default_region=settings.default_region,
        teams=teams,
    )
    return found, mapped if isinstance(mapped, Member) else None


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
                for item in await source.teams_assignments(f"telephoneNumber eq {odata_string(key)}"):
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
            raise PersonNotFound(
                f"cannot look up {asked.strip()!r}: not in our records, and {printable(error)}"
            )
        if kind == "phone":
            known = "the numbers it pushed" + (" and Teams assignments" if settings.uses_teams else "")
            raise PersonNotFound(
                f"nobody we know has {key}: syncd only knows {known}; look the person up by UPN or object ID"
            )
        raise PersonNotFound(f"no person {asked.strip()!r}: not in Graph and not in our records")
    if len(candidates) > 1:
        listed = printable(", ".join(f"{oid} ({upn or 'UPN unknown'})" for oid, upn in candidates.items()))
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
            teams_items = await source.teams_assignments(f"assignmentTargetId eq {odata_string(object_id)}")
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
    excluded_by = explanation.membership.excluded_by
    scope_filter = settings.scope_filter
    if scope_filter is not None:
        failed = scope_filter.failing(user)
        explanation.filter = Filter(settings.filter.strip(), failed is None, failed)
    mapped = map_user(
        dict(user),
        tenant_id=settings.tenant_id,
        phone_sources=settings.phone_chain,
        default_region=settings.default_region,
        teams=indexer.result() if teams_items is not None else None,
        excluded_by=excluded_by.shown() if excluded_by is not None else None,
        scope_filter=scope_filter,
    )
    if isinstance(mapped, Member):
        phone.in_scope, phone.number, phone.source = True, mapped.phone_number, mapped.phone_source
    else:
        phone.in_scope, phone.skip_reason, phone.detail = False, mapped.reason.value, mapped.detail
    return mapped


async def _membership(settings: GraphSettings, source: GraphSource, object_id: str) -> Membership:
    """The user's direct groups, the nested group tree under each configured and each excluded group
    (breadth first, each level only as deep as needed, at most MAX_GROUPS_VISITED groups listed), and the
    shortest paths."""
    membership = Membership(
        configured=[GroupRef(g) for g in settings.group_ids],
        excluded=[GroupRef(g) for g in settings.exclude_group_ids],
    )
    roots = [*settings.group_ids, *settings.exclude_group_ids]
    names: dict[str, str | None] = {}
    try:
        direct = await source.member_of(object_id)
        membership.direct_groups = [_group_ref(g, names) for g in direct]
        targets = {group.id for group in membership.direct_groups}
        children: dict[str, list[str]] = {}
        for root in roots:
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
        for root in roots:
            if root not in names:
                read = await source.get_group(root)
                names[root] = _display_name(read) if read is not None else None
        membership.configured = [GroupRef(g, names.get(g)) for g in settings.group_ids]
        membership.excluded = [GroupRef(g, names.get(g)) for g in settings.exclude_group_ids]
        membership.paths = [
            [GroupRef(g, names.get(g)) for g in path]
            for root in settings.group_ids
            for path in shortest_paths(root, children, targets)
        ]
        membership.excluded_paths = [
            [GroupRef(g, names.get(g)) for g in path]
            for root in settings.exclude_group_ids
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
