"""Reading desired state for a cycle: everything (a full read), or only what changed (Graph delta).

A full read is `GraphSource.read()`: every transitive user member of every configured group (and of every
excluded group). When the cycle may track changes (not a dry run, not `--user`, no Teams numbers in the
phone chain), the read keeps tracking going, in one of two ways:

- **Following the stored links** (links stored for this configuration): the groups delta of each tracked
  tree and the users delta, as an incremental cycle reads them (their deleted users only: the read maps
  everyone). After the read, the stored direct memberships with these changes on top are checked against
  it, tree by tree (configured and excluded: `syncd.graph.repair`). The people the two disagree about are
  read again one by one (their direct groups, `GET /users/{id}/memberOf`, a standard query that does not
  lag as the read may) and their stored memberships become what Graph says; those who still disagree with
  the read are the read's lag, planned again by the next cycle (`DeltaState.recheck`). More disagreements
  than `repair_limit` and tracking restarts after the read instead (the users link followed before the
  read is kept).
- **Starting tracking** (the first cycle, a changed configuration, or a link that cannot be followed: a
  structural change, an expired link, any other failure): the nested groups of each configured and each
  excluded group, an initial groups delta round over that tree (its direct memberships go to the store's
  `graph_edges`) and a users delta link for the tenant's current state.

Stored links are followed, and a starting users delta link is taken, *before* the members are read, so a
change made during the read is reported again by the next delta instead of being lost. The groups of a
tracking that starts are read alongside the member read instead (their delta round is a snapshot whose link
reports every later change). Either way the member read is an advanced query, which may lag writes the delta
already saw, and may see a change the snapshot did not: people the two disagree about, in either direction,
are planned again by the next cycle from the tracked memberships (`DeltaState.recheck`).

An incremental read follows the stored links: the groups delta of each configured and excluded group's tree
and the tenant's users delta (which selects the attributes `graph.filter` names, so a user whose filtered
attribute changed is planned again). Only people whose membership or selected fields changed, people whose
failed write is due for a retry, people the last full read left to recheck and people whose offboarding
grace (`sync.offboard_grace`) has run out are mapped and planned; their fields come from the users delta
when it gave them all, else from `GET /users/{id}`. With relinking on, a changed person's consistency GUID
held by the agent of someone not among them brings that someone in too (read the same way), so that the
plan knows whether the holder is still in scope. A structural change (a group joining or leaving a tracked
tree) or a link Graph no longer takes (410) falls back to a full read that starts tracking, in the same
cycle.

The new links are handed back to the engine, which stores them only when the cycle ends without an error or
a guard stop: a cycle that did not apply its changes reads them again next time. So are the membership
changes of a delta read or of a full read that followed its links (stored after the guards passed); a full
read that starts tracking stores its memberships at once, after forgetting the old links.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, replace

import structlog

from syncd.config.settings import GraphSettings
from syncd.core.model import DesiredState, Member, Skipped
from syncd.graph.delta import (
    USER,
    DeltaState,
    GroupChanges,
    UserChanges,
    chunks,
    disagreements,
    memberships_after,
    scope_after,
    signature,
    structural_changes,
    users_after,
    users_leaving_at_most,
)
from syncd.graph.errors import DeltaExpired, GraphError
from syncd.graph.repair import disagreeing, holds_after, repair_limit, repaired, still_disagreeing
from syncd.graph.source import GraphSource
from syncd.store import Store

log = structlog.get_logger("syncd.desired")

DELTA_KEY = "graph_delta"
"""The kv key of the stored `DeltaState`."""

FULL, DELTA = "full", "delta"


@dataclass
class Read:
    """Desired state as one cycle read it."""

    desired: DesiredState
    kind: str
    """FULL (everything was read) or DELTA (only changes)."""
    reason: str | None
    """Why a full read was done (None for a delta read)."""
    subset: set[str] | None = None
    """A delta read: the object IDs to plan (everyone else is unchanged); None for a full read."""
    state: DeltaState | None = None
    """The links to store if the cycle ends well; None: store nothing (and, after a full read that could not
    start tracking, the next cycle reads everything again)."""
    changes: GroupChanges | None = None
    """A delta read, or a full read that followed its links: the membership changes to store."""
    deleted: set[str] | None = None
    """A delta read, or a full read that followed its links: users deleted from the directory (their
    memberships are forgotten)."""
    waiting: int = 0
    """A delta read: people outside `subset` whose failed write waits out its backoff (not converged)."""


def state_signature(settings: GraphSettings, source: GraphSource) -> str:
    # The excluded groups and the filter are named only when set: configurations without them keep the
    # signature (and the links) they had before these settings existed.
    scope = [f"exclude={','.join(sorted(settings.exclude_group_ids))}"] if settings.exclude_group_ids else []
    if settings.filter.strip():
        scope.append(f"filter={settings.filter.strip()}")
    return signature(
        tenant_id=settings.tenant_id,
        group_ids=settings.group_ids,
        select=source.select,
        base_url=settings.base_url,
        mapping=[*settings.phone_chain, f"region={settings.default_region}", *scope],
    )


async def read_desired(
    source: GraphSource,
    settings: GraphSettings,
    store: Store,
    *,
    full: bool,
    track: bool,
    now: float,
    offboard_grace_s: float = 0.0,
    relink: bool = True,
) -> Read:
    """Desired state for one cycle (see the module docstring). Raises `GraphError` for a failed read; never
    returns fewer members because of one."""
    if settings.uses_teams or not track:
        if full:
            reason = "full cycle"
        elif settings.uses_teams:
            reason = _TEAMS_REASON
        else:
            reason = "a dry run or --user cycle reads everything and tracks nothing"
        return Read(await source.read(), FULL, reason)
    expected = state_signature(settings, source)
    stored = DeltaState.from_json(store.get_value(DELTA_KEY), expected_signature=expected)
    if stored is None:
        reason = (
            "full cycle" if full else "no delta state stored yet (first cycle, or the configuration changed)"
        )
        return await _read_everything(source, settings, store, expected, reason)
    try:
        if full:
            followed = await _follow(source, settings, stored)
        else:
            return await _read_changes(
                source,
                settings,
                store,
                stored,
                now=now,
                offboard_grace_s=offboard_grace_s,
                relink=relink,
            )
    except (DeltaExpired, _Structural) as exc:
        why = _why(exc)
    except GraphError as exc:
        if not full:
            raise
        why = f"the delta links could not be followed: {exc}"
    else:
        return await _read_and_repair(source, settings, store, stored, followed)
    log.info("graph.delta_fallback", reason=why)
    return await _read_everything(source, settings, store, expected, _restarted(full, why))


_TEAMS_REASON = "teams is in graph.phone_source: Graph has no delta query for Teams number assignments"


class _Structural(Exception):
    """The tracked tree changed: read everything."""


def _why(exc: DeltaExpired | _Structural) -> str:
    if isinstance(exc, DeltaExpired):
        return f"a delta link expired: {exc.message}"
    return f"nested group changed: {exc}"


def _restarted(full: bool, why: str) -> str:
    """The reason of a full read that restarts tracking because of `why`."""
    return f"full cycle (tracking restarted: {why})" if full else why


@dataclass
class _Followed:
    """What the stored links reported."""

    changes: GroupChanges
    group_links: dict[str, list[str]]
    users: UserChanges
    users_link: str


async def _follow(source: GraphSource, settings: GraphSettings, stored: DeltaState) -> _Followed:
    """The changes since the stored links: the groups delta of each tracked tree, then the users delta.
    Raises `DeltaExpired` for a link Graph no longer takes (or none stored), `_Structural` for a tree that
    changed."""
    changes = GroupChanges()
    group_links: dict[str, list[str]] = {}
    for group_id in [*settings.group_ids, *settings.exclude_group_ids]:
        links = stored.group_links.get(group_id)
        if not links:
            raise DeltaExpired(f"no delta link stored for group {group_id}")
        group_links[group_id] = [await source.group_delta(changes.fold, link=link) for link in links]
    reasons = structural_changes(changes)
    if reasons:
        raise _Structural(reasons[0])
    users = UserChanges(source.select)
    users_link = await source.users_delta(users.fold, link=stored.users_link)
    return _Followed(changes, group_links, users, users_link)


async def _read_everything(
    source: GraphSource, settings: GraphSettings, store: Store, expected: str, reason: str
) -> Read:
    """A full read that starts tracking; if tracking fails, the read still happens (and says why).

    The users delta link is taken first (one request), so a property changed during the read is reported by
    it. The groups are tracked (`_start_groups`) alongside the member read: the groups delta round is a
    snapshot taken at its first page, its link reports every change made after it, and whatever the read
    and that snapshot disagree about, in either direction, is planned again by the next cycle from the
    tracked memberships (`_lagging`, `DeltaState.recheck`); so it does not matter which of the two saw a
    membership change made while both were under way. If the read fails, tracking is cancelled
    (memberships it already stored go without links: the next cycle starts again)."""
    tracking: asyncio.Task[tuple[DeltaState | None, set[str]]] | None = None
    try:
        users_link = await source.users_delta(lambda _page: None)
    except GraphError as exc:
        _delta_unavailable(exc)
    else:
        tracking = asyncio.create_task(_start_tracking(source, settings, store, expected, users_link))
    try:
        desired = await source.read()
    except BaseException:
        if tracking is not None:
            tracking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # the read's error is the one told
                await tracking
        raise
    state, tracked = await tracking if tracking is not None else (None, set[str]())
    if state is not None:
        state = _lagging(state, tracked, desired)
    return Read(desired, FULL, reason, state=state)


def _delta_unavailable(exc: GraphError) -> None:
    """Log that tracking could not start: the member read raises its own, clearer error if Graph is really
    failing; if it does not, this cycle simply cannot track changes and the next one reads everything
    again."""
    log.warning("graph.delta_unavailable", error=str(exc), error_type=type(exc).__name__)


async def _start_tracking(
    source: GraphSource, settings: GraphSettings, store: Store, expected: str, users_link: str
) -> tuple[DeltaState | None, set[str]]:
    """Start tracking the groups (`_start_groups`) and store the memberships at once (`_store_start`); the
    links (None when Graph refused, logged) and the tracked user members.

    The memberships are stored as soon as the round ends (and the old links forgotten first, so no stored
    link ever goes with other memberships): holding them until the end of the cycle would add a copy of the
    whole tree to the cycle's peak memory. If this cycle then stops, the next one simply reads everything
    again."""
    collected = GroupChanges()
    try:
        group_links, trees, excluded = await _start_groups(source, settings, collected)
    except GraphError as exc:
        _delta_unavailable(exc)
        return None, set()
    state = DeltaState(expected, users_link, group_links, trees, excluded)
    return state, _store_start(store, state, collected)


async def _start_groups(
    source: GraphSource, settings: GraphSettings, collected: GroupChanges
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    """Start tracking the groups: the tree of each configured and excluded group (its nested groups) and an
    initial groups delta round over it, folded into `collected`; the links, the configured trees and the
    excluded trees."""
    group_links: dict[str, list[str]] = {}
    trees: dict[str, list[str]] = {}
    excluded: dict[str, list[str]] = {}
    for group_id in [*settings.group_ids, *settings.exclude_group_ids]:
        tree = list(dict.fromkeys([group_id.lower(), *await source.nested_groups(group_id)]))
        group_links[group_id] = [await source.group_delta(collected.fold, ids=ids) for ids in chunks(tree)]
        (trees if group_id in settings.group_ids else excluded)[group_id] = tree
    return group_links, trees, excluded


def _store_start(store: Store, state: DeltaState, collected: GroupChanges) -> set[str]:
    """Store the memberships tracking starts with, forgetting the old links first; returns the user members
    of the configured trees (taken first: storing the memberships consumes them; only the configured trees,
    as the read does not return who is only in an excluded group)."""
    configured = {group for tree in state.trees.values() for group in tree}
    tracked = {
        member for (group, member), kind in collected.added.items() if kind == USER and group in configured
    }
    store.delete_values([DELTA_KEY])
    store.replace_edges(collected.added)
    return tracked


def _lagging(state: DeltaState, tracked: set[str], desired: DesiredState) -> DeltaState:
    """`state` with the people the read and the memberships tracking started with disagree about."""
    recheck = disagreements(tracked, [*desired.members, *desired.skipped], desired.members)
    if not recheck:
        return state
    log.info("graph.read_lags_delta", recheck=len(recheck))
    return replace(state, recheck=recheck)


async def _read_and_repair(
    source: GraphSource, settings: GraphSettings, store: Store, stored: DeltaState, followed: _Followed
) -> Read:
    """The full read after following the links, and the check of the stored memberships against it (the
    module docstring): the repaired memberships and the new links go to the engine with the read."""
    read_ids: dict[str, set[str]] = {}
    desired = await source.read(member_ids=read_ids)
    trees = {**stored.trees, **stored.excluded}
    changes, deleted = followed.changes, followed.users.removed
    touched = changes.members() | deleted
    after = memberships_after(touched, store.memberships(touched), changes, deleted)
    wrong: set[str] = set()
    for root, tree in trees.items():
        holds = holds_after(tree, touched, after)
        wrong |= disagreeing(store.users_in(tree), read_ids.get(root, set()), holds)
    state = DeltaState(
        stored.signature, followed.users_link, followed.group_links, stored.trees, stored.excluded
    )
    limit = repair_limit(len(desired.members) + len(desired.skipped))
    why = None
    found: dict[str, set[str]] = {}
    if len(wrong) > limit:
        why = f"{len(wrong)} people's stored memberships disagree with the read, over {limit}"
    else:
        try:
            found = await source.direct_groups(sorted(wrong))
        except GraphError as exc:
            why = f"the groups of the people to repair could not be read: {exc}"
    if why is not None:
        del read_ids, after
        log.info("graph.delta_fallback", reason=why)
        return await _restart_after_read(source, settings, store, state, desired, why)
    tracked = {group for tree in trees.values() for group in tree}
    found = {person: groups & tracked for person, groups in found.items()}
    before = store.memberships(wrong)
    # People whose memberships (this cycle's changes on top) differ from what Graph says now: drift, or a
    # change made while the members were read (the next delta reports it again, harmlessly).
    current = memberships_after(wrong, before, changes, deleted)
    differ = sum(current.get(person, set()) != found.get(person, set()) for person in wrong)
    recheck = still_disagreeing(found, wrong, trees=trees, read=read_ids)
    log.info(
        "graph.memberships_checked",
        membership_changes=len(changes.added) + len(changes.removed),
        users_deleted=len(deleted),
        disagreeing=len(wrong),
        repaired=differ,
        recheck=len(recheck),
    )
    return Read(
        desired,
        FULL,
        "full cycle",
        state=replace(state, recheck=recheck),
        changes=repaired(changes, before, found, wrong),
        deleted=deleted - wrong,
    )


async def _restart_after_read(
    source: GraphSource,
    settings: GraphSettings,
    store: Store,
    state: DeltaState,
    desired: DesiredState,
    why: str,
) -> Read:
    """Start tracking the groups again after the read (keeping the users link followed before it): a group
    change made since the read is in the new memberships, and planned again by the next cycle if the read
    missed it (`DeltaState.recheck`)."""
    reason = _restarted(True, why)
    collected = GroupChanges()
    try:
        group_links, trees, excluded = await _start_groups(source, settings, collected)
    except GraphError as exc:
        _delta_unavailable(exc)
        store.delete_values([DELTA_KEY])  # the stored memberships are wrong: the next cycle starts again
        return Read(desired, FULL, reason)
    state = replace(state, group_links=group_links, trees=trees, excluded=excluded)
    tracked = _store_start(store, state, collected)
    del collected
    return Read(desired, FULL, reason, state=_lagging(state, tracked, desired))


async def _read_changes(
    source: GraphSource,
    settings: GraphSettings,
    store: Store,
    stored: DeltaState,
    *,
    now: float,
    offboard_grace_s: float,
    relink: bool,
) -> Read:
    followed = await _follow(source, settings, stored)
    changes, users = followed.changes, followed.users
    touched = changes.members() | set(users.entries) | users.removed | set(stored.recheck)
    due, waiting = store.unsettled(now)
    candidates = touched | set(due) | set(store.offboards_due(now - offboard_grace_s))
    stored_memberships = store.memberships(candidates)
    after = memberships_after(candidates, stored_memberships, changes, users.removed)
    in_scope, excluded = scope_after(after, trees=stored.trees, excluded=stored.excluded)
    # The empty-group guard: a configured group whose tree loses its last user member reads as empty. Only
    # whether it emptied matters, so the stored users are counted no further than one past those who may
    # have left (an exact count of a million memberships took SQLite 3 s).
    counts: dict[str, int] = {}
    for group_id, tree in stored.trees.items():
        members_of_tree = set(tree)
        if any(g in members_of_tree for g, _ in changes.removed):
            before = store.count_users_in(tree, at_most=users_leaving_at_most(members_of_tree, changes) + 1)
            counts[group_id] = users_after(members_of_tree, before, stored_memberships, changes)
    members: dict[str, Member] = {}
    skipped: dict[str, Skipped] = {}
    one_by_one = await _map_users(source, users, in_scope, excluded, members, skipped)
    if relink:
        # Whoever holds the consistency GUID of a changed person is planned too: the plan relinks only
        # from a holder it knows to be out of scope.
        anchors = {member.consistency_id for member in members.values() if member.consistency_id}
        holders = store.anchor_holders(anchors) if anchors else {}
        extra = {oid for held in holders.values() for oid in held} - candidates
        if extra:
            candidates |= extra
            extra_after = memberships_after(extra, store.memberships(extra), changes, users.removed)
            extra_scope, extra_excluded = scope_after(
                extra_after, trees=stored.trees, excluded=stored.excluded
            )
            one_by_one += await _map_users(source, users, extra_scope, extra_excluded, members, skipped)
    log.info(
        "graph.delta_read",
        membership_changes=len(changes.added) + len(changes.removed),
        users_changed=len(users.entries),
        users_deleted=len(users.removed),
        rechecked=len(stored.recheck),
        planned=len(candidates),
        in_scope=len(members),
        read_one_by_one=one_by_one,
    )
    desired = DesiredState(members=members, skipped=skipped, group_counts=counts, group_in_scope=counts)
    return Read(
        desired,
        DELTA,
        None,
        subset=candidates,
        waiting=len(set(waiting) - touched),
        state=DeltaState(
            stored.signature, followed.users_link, followed.group_links, stored.trees, stored.excluded
        ),
        changes=changes,
        deleted=users.removed,
    )


async def _map_users(
    source: GraphSource,
    users: UserChanges,
    object_ids: set[str],
    excluded: Mapping[str, str],
    members: dict[str, Member],
    skipped: dict[str, Skipped],
) -> int:
    """Map `object_ids` into `members` or `skipped`: from the users delta when it gave every field, else
    read one by one (users Graph no longer has are left out: out of scope); how many were read one by
    one."""
    complete = {oid: entry for oid in object_ids if (entry := users.complete(oid)) is not None}
    fetched = await source.get_users([oid for oid in sorted(object_ids) if oid not in complete])
    for object_id, raw in [*complete.items(), *fetched.items()]:
        item = source.map(raw, excluded_by=excluded.get(object_id))
        if isinstance(item, Member):
            members[item.object_id] = item
        elif item.object_id:
            skipped[item.object_id] = item
    return len(object_ids) - len(complete)
