"""Pure handling of Graph delta queries: the stored links, folding delta pages into membership and user
changes, and who is in scope afterwards.

Graph's groups delta (`/groups/delta` with `$select=members`) reports *direct* membership changes of the
groups named in its `$filter` (`members@delta`); its users delta (`/users/delta` with the mapping's
`$select`) reports users whose selected properties changed, tenant-wide (the attributes `graph.filter`
names among them). An incremental cycle tracks each configured group together with every group nested in
it, and each excluded group (`graph.exclude_group_ids`) with its nested groups, keeps their direct
memberships (the store's `graph_edges`), and decides scope from them: a user is in scope while some group
of a configured tree has them as a direct member, and excluded while some group of an excluded tree does. A
group joining or leaving a tracked group changes the tree itself: the cycle then reads everything again
(`GroupChanges.structural`). Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

MAX_FILTER_IDS = 50
"""Group IDs per groups delta `$filter` (`id eq '..' or id eq '..'`): Graph accepts at most 50."""

STATE_VERSION = 1

USER = "user"
GROUP = "group"
_KINDS = {"#microsoft.graph.user": USER, "#microsoft.graph.group": GROUP}


def signature(
    *,
    tenant_id: str,
    group_ids: Sequence[str],
    select: Sequence[str],
    base_url: str,
    mapping: Sequence[str] = (),
) -> str:
    """Pure: what stored delta links answer; links stored under another signature (a changed configuration)
    are not used. `mapping` is whatever else decides how a user maps (the phone chain in order, the default
    region, the excluded groups, the filter): a delta only reports users who changed, so a new mapping must
    read everyone again."""
    question = json.dumps(
        [
            STATE_VERSION,
            tenant_id.lower(),
            sorted(g.lower() for g in group_ids),
            sorted(select),
            base_url,
            list(mapping),
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(question.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DeltaState:
    """The delta links of one configuration: one users link, and per configured group the groups delta
    links of its tree (one per `MAX_FILTER_IDS` tracked groups)."""

    signature: str
    users_link: str
    group_links: dict[str, list[str]]
    trees: dict[str, list[str]] = field(default_factory=dict)
    """Configured group ID -> the IDs (lower case) of the group and every group nested in it."""
    excluded: dict[str, list[str]] = field(default_factory=dict)
    """Excluded group ID (`graph.exclude_group_ids`) -> its tree, as `trees`; its links are in
    `group_links` under its ID too."""
    recheck: list[str] = field(default_factory=list)
    """People (lower-case object IDs) the next delta cycle plans whatever the links report: those a full
    read and its groups delta round disagreed about (`disagreements`)."""

    def to_json(self) -> str:
        document: dict[str, object] = {
            "signature": self.signature,
            "users": self.users_link,
            "groups": self.group_links,
            "trees": self.trees,
            "excluded": self.excluded,
        }
        if self.recheck:
            document["recheck"] = self.recheck
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None, *, expected_signature: str) -> DeltaState | None:
        """Pure: the stored state, or None when there is none, it is unreadable, or it was stored for
        another configuration."""
        if not text:
            return None
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict) or raw.get("signature") != expected_signature:
            return None
        users, groups = raw.get("users"), raw.get("groups")
        if not isinstance(users, str) or not isinstance(groups, dict):
            return None
        links, trees, excluded = _lists(groups), _lists(raw.get("trees", {})), _lists(raw.get("excluded", {}))
        recheck = _lists({"": raw.get("recheck", [])})
        if links is None or trees is None or excluded is None or recheck is None:
            return None
        return cls(expected_signature, users, links, trees, excluded, recheck[""])


def _lists(value: object) -> dict[str, list[str]] | None:
    """Pure: a JSON object of lists of strings, or None for anything else."""
    if not isinstance(value, dict):
        return None
    result: dict[str, list[str]] = {}
    for key, items in value.items():
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            return None
        result[str(key)] = list(items)
    return result


def chunks(ids: Sequence[str], size: int = MAX_FILTER_IDS) -> list[list[str]]:
    """Pure: `ids` in order, in lists of at most `size`."""
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


def id_filter(ids: Iterable[str]) -> str:
    """Pure: the groups delta `$filter` naming these groups."""
    return " or ".join(f"id eq '{group_id}'" for group_id in ids)


@dataclass
class GroupChanges:
    """Direct membership changes folded from groups delta pages."""

    added: dict[tuple[str, str], str] = field(default_factory=dict)
    """(group ID, member ID) -> "user" | "group", in the order reported; a later removal cancels it."""
    removed: dict[tuple[str, str], str] = field(default_factory=dict)
    """(group ID, member ID) -> kind, for memberships that ended; a later addition cancels it."""
    structural: list[str] = field(default_factory=list)
    """What changed the tracked tree itself (a group added to or removed from a tracked group, a tracked
    group deleted): the reason to read everything again."""
    ignored: int = 0
    """Entries of an unusable shape, and members that are neither users nor groups (devices, contacts)."""

    def fold(self, entries: Sequence[Any]) -> None:
        """Fold one page's `value` in; never raises on data."""
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                self.ignored += 1
                continue
            group_id = entry["id"].lower()
            if "@removed" in entry:
                self.structural.append(f"tracked group {group_id} was deleted or left the delta scope")
                continue
            members = entry.get("members@delta")
            if members is None:
                continue  # a property change of the group itself
            if not isinstance(members, list):
                self.ignored += 1
                continue
            for member in members:
                self._fold_member(group_id, member)

    def _fold_member(self, group_id: str, member: object) -> None:
        if not isinstance(member, dict) or not isinstance(member.get("id"), str):
            self.ignored += 1
            return
        odata_type = member.get("@odata.type")
        if not isinstance(odata_type, str) or not odata_type:
            # Without its type a member could be a group: only a full read can tell what changed.
            self.structural.append(f"a member of unknown type joined or left group {group_id}")
            return
        kind = _KINDS.get(odata_type.lower())
        if kind is None:
            self.ignored += 1  # a device, contact or service principal: never an agent
            return
        pair = (group_id, member["id"].lower())
        if "@removed" in member:
            self.added.pop(pair, None)
            self.removed[pair] = kind
        else:
            self.removed.pop(pair, None)
            self.added[pair] = kind

    def edges(self) -> list[tuple[str, str, str]]:
        """Pure: the added memberships as (group ID, member ID, kind)."""
        return [(group_id, member_id, kind) for (group_id, member_id), kind in self.added.items()]

    def members(self) -> set[str]:
        """Pure: every member ID whose membership changed."""
        return {member for _, member in self.added} | {member for _, member in self.removed}


def structural_changes(changes: GroupChanges) -> list[str]:
    """Pure: why the tracked trees changed, if they did: a tracked group deleted, or a group joining or
    leaving a tracked group."""
    reasons = list(changes.structural)
    for verb, pairs in (("added to", changes.added), ("removed from", changes.removed)):
        reasons += [f"group {m} was {verb} group {g}" for (g, m), kind in pairs.items() if kind == GROUP]
    return reasons


@dataclass
class UserChanges:
    """Users folded from users delta pages: the last entry seen per user, and the users deleted."""

    select: tuple[str, ...]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Lower-case object ID -> the user's object as the delta gave it (maybe only the changed fields)."""
    removed: set[str] = field(default_factory=set)
    ignored: int = 0

    def fold(self, entries: Sequence[Any]) -> None:
        """Fold one page's `value` in; never raises on data."""
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                self.ignored += 1
                continue
            object_id = entry["id"].lower()
            if "@removed" in entry:
                self.entries.pop(object_id, None)
                self.removed.add(object_id)
                continue
            self.removed.discard(object_id)
            previous = self.entries.get(object_id)
            # Graph may give only the changed properties: later entries add to earlier ones.
            self.entries[object_id] = entry if previous is None else previous | entry

    def complete(self, object_id: str) -> dict[str, Any] | None:
        """Pure: the user's delta entry when it holds every selected field (usable without another read)."""
        entry = self.entries.get(object_id)
        if entry is None or any(name not in entry for name in self.select):
            return None
        return entry


def disagreements(tracked: Iterable[str], read: Iterable[str], in_scope: Iterable[str]) -> list[str]:
    """Pure: the people a full read and the groups delta round of the same cycle disagree about (object IDs,
    lower case, sorted): direct user members of a tracked group (as the delta gave them) that the read did
    not return at all, and people the read has in scope whom no tracked group has as a direct member.

    The read's member lists are advanced queries (`ConsistencyLevel: eventual`), which lag writes; the delta
    does not. A write the read missed but the delta round already counted would never be reported by a later
    delta, so the next cycle plans these people again from the delta's memberships.
    """
    # A full read holds everyone: no lower-case copy of an ID that is lower case already (Graph's are), and
    # no set of the people in scope (40 MB at 100,000 people, at the peak of an initial sync).
    tracked_ids = {i if i.islower() else i.lower() for i in tracked}
    found = tracked_ids - {i if i.islower() else i.lower() for i in read}
    found.update(lower for i in in_scope if (lower := i if i.islower() else i.lower()) not in tracked_ids)
    return sorted(found)


def _user_groups_in(tree: Collection[str], edges: Mapping[tuple[str, str], str]) -> dict[str, set[str]]:
    """Pure: the groups of `tree` each user gains or loses by `edges` (a `GroupChanges` side: (group ID,
    member ID) -> member kind), by user."""
    found: dict[str, set[str]] = {}
    for (group_id, member_id), kind in edges.items():
        if kind == USER and group_id in tree:
            found.setdefault(member_id, set()).add(group_id)
    return found


def users_leaving_at_most(tree: Collection[str], changes: GroupChanges) -> int:
    """Pure: how many users at most `changes` take out of the groups of `tree`: the users removed from one of
    them. `users_after` from a stored count capped at one more than this is positive exactly when the true
    count after the changes is (those users are the most the tree can lose), so the count need not be exact
    to tell whether the tree emptied."""
    return len(_user_groups_in(tree, changes.removed))


def users_after(
    tree: Collection[str],
    stored_count: int,
    stored: Mapping[str, Collection[str]],
    changes: GroupChanges,
) -> int:
    """Pure: how many distinct users are direct members of the groups of `tree` once `changes` are applied,
    from `stored_count` (before) and the `stored` memberships of every user the changes touch. With a
    `stored_count` capped at `users_leaving_at_most` + 1 or more, the result is a lower bound that is zero
    only when the true count is."""
    removed_from = _user_groups_in(tree, changes.removed)
    added_to = _user_groups_in(tree, changes.added)
    lost = gained = 0
    for member_id in removed_from.keys() | added_to.keys():
        before = {g for g in stored.get(member_id, ()) if g in tree}
        after = (before - removed_from.get(member_id, set())) | added_to.get(member_id, set())
        lost += bool(before) and not after
        gained += not before and bool(after)
    return stored_count - lost + gained


def memberships_after(
    candidates: Iterable[str],
    stored: Mapping[str, Collection[str]],
    changes: GroupChanges,
    deleted: Collection[str],
) -> dict[str, set[str]]:
    """Pure: the tracked groups each of `candidates` is a direct member of once `changes` are applied to the
    `stored` memberships (member ID -> group IDs); users in `deleted` and people left in no tracked group
    are left out."""
    added: dict[str, set[str]] = {}
    for group_id, member_id in changes.added:
        added.setdefault(member_id, set()).add(group_id)
    removed: dict[str, set[str]] = {}
    for group_id, member_id in changes.removed:
        removed.setdefault(member_id, set()).add(group_id)
    result: dict[str, set[str]] = {}
    for member_id in candidates:
        if member_id in deleted:
            continue
        groups = (set(stored.get(member_id, ())) - removed.get(member_id, set())) | added.get(
            member_id, set()
        )
        if groups:
            result[member_id] = groups
    return result


def scope_after(
    memberships: Mapping[str, Collection[str]],
    *,
    trees: Mapping[str, Collection[str]],
    excluded: Mapping[str, Collection[str]] = MappingProxyType({}),
) -> tuple[set[str], dict[str, str]]:
    """Pure: who of `memberships` (member ID -> their direct tracked groups) is in a configured group's tree
    (`trees`), and of those, who is also in an excluded group's tree (`excluded`), with that excluded
    group's ID (the first in configuration order)."""
    included = {group for tree in trees.values() for group in tree}
    members = {member for member, groups in memberships.items() if any(g in included for g in groups)}
    held: dict[str, str] = {}
    for member in members:
        groups = memberships[member]
        root = next((root for root, tree in excluded.items() if any(g in groups for g in tree)), None)
        if root is not None:
            held[member] = root
    return members, held
