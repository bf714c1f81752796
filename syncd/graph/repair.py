"""Pure checks of the stored direct memberships against a full read, for a full cycle that follows its delta
links instead of restarting tracking.

A full cycle with usable links folds the changes they report onto the stored memberships (`graph_edges`)
and reads every member as always. For each tracked tree (each configured group's and each excluded group's)
it then compares who the stored memberships put in the tree with who the read returned (`disagreeing`).
The people they disagree about are read one by one (their direct groups, `GET /users/{id}/memberOf`), and
their stored memberships replaced by what Graph says (`repaired`); those whose memberships still disagree
with the read afterwards are the read's lag, planned again by the next cycle (`still_disagreeing`). More
disagreements than `repair_limit` and the cycle restarts tracking instead. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Set

from syncd.graph.delta import USER, GroupChanges

REPAIR_SHARE = 0.01
"""Repair one by one at most this share of the people read (reading one person's groups costs about as much
CPU as starting tracking does per 100 stored memberships: docs/graph-source.md) ..."""
REPAIR_FLOOR = 50
"""... but never fewer than this many people (a small tenant is not started over for a few lagging joiners)
..."""
REPAIR_CAP = 500
"""... nor more: that bounds the requests, and so many stored memberships gone wrong say something is wrong
at large, which a start of tracking answers best."""


def repair_limit(people_read: int) -> int:
    """Pure: how many disagreeing people a full cycle repairs one by one (1% of the people it read, at least
    `REPAIR_FLOOR`, at most `REPAIR_CAP`); more than that and it restarts tracking."""
    return min(REPAIR_CAP, max(REPAIR_FLOOR, int(people_read * REPAIR_SHARE)))


def holds_after(
    tree: Collection[str], touched: Iterable[str], after: Mapping[str, Collection[str]]
) -> dict[str, bool]:
    """Pure: for each person this cycle's changes touched, whether a group of `tree` has them as a direct
    member once the changes are applied (`after`: their tracked groups then, as `memberships_after` gives
    them; absent: none)."""
    groups = set(tree)
    return {person: not groups.isdisjoint(after.get(person, ())) for person in touched}


def disagreeing(stored: Set[str], read: Set[str], touched: Mapping[str, bool]) -> set[str]:
    """Pure: the people one tree's stored memberships and the read disagree about (lower-case object IDs).

    `stored`: the users the stored memberships put in the tree *before* this cycle's changes; `touched`: the
    people those changes touched, with whether the tree holds them afterwards (`holds_after`), which
    overrides `stored`; `read`: who the read of the tree returned. Someone is disagreed about when the
    memberships (after the changes) put them in the tree and the read did not return them, or the other
    way round. Set operations only: no Python loop over the tree's members.
    """
    expected = set(stored)
    expected.difference_update(touched)
    expected.update(person for person, inside in touched.items() if inside)
    expected.symmetric_difference_update(read)
    return expected


def roots_holding(groups: Collection[str], trees: Mapping[str, Collection[str]]) -> set[str]:
    """Pure: the roots (configured or excluded group IDs) whose tree has one of `groups`."""
    return {root for root, tree in trees.items() if not set(tree).isdisjoint(groups)}


def still_disagreeing(
    found: Mapping[str, Collection[str]],
    people: Iterable[str],
    *,
    trees: Mapping[str, Collection[str]],
    read: Mapping[str, Set[str]],
) -> list[str]:
    """Pure: of `people` (those read again one by one), the ones whose direct groups as Graph gave them
    (`found`; absent: none) still put them in other trees than the read returned them in (sorted). The read
    is an advanced query that lags writes; the next cycle plans them from the memberships."""
    return sorted(
        person
        for person in people
        if roots_holding(found.get(person, ()), trees)
        != {root for root in trees if person in read.get(root, ())}
    )


def repaired(
    changes: GroupChanges,
    before: Mapping[str, Collection[str]],
    found: Mapping[str, Collection[str]],
    people: Collection[str],
) -> GroupChanges:
    """Pure: the membership changes to store: this cycle's `changes`, with the memberships of each of `people`
    replaced by what Graph gave (`found`: their tracked groups; absent: none). `before`: their stored
    memberships (before the changes), all removed; the store removes before it adds, so a pair in both is
    written again (a row stored with the wrong kind is mended too)."""
    result = GroupChanges(
        added={pair: kind for pair, kind in changes.added.items() if pair[1] not in people},
        removed={pair: kind for pair, kind in changes.removed.items() if pair[1] not in people},
    )
    for person in people:
        for group_id in sorted(before.get(person, ())):
            result.removed[(group_id, person)] = USER
        for group_id in sorted(found.get(person, ())):
            result.added[(group_id, person)] = USER
    return result
