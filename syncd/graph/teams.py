"""Teams number assignments, indexed by user: which assignment gives a user's Teams number.

Graph's `admin/teams/telephoneNumberManagement/numberAssignments` lists every number of the tenant with its
target (`assignmentTargetId`, a user's or resource account's object ID), status and category. The reader
(`syncd.graph.source`) asks for user assignments only and feeds the raw JSON pages to a `TeamsIndexer`;
the mapping then looks each member up by object ID. Pure and lenient: an item of the wrong shape is
counted and ignored, never raised.

A user's number is the assignment of the best-ranked configured category (`graph.teams_categories`, by
default primary only). Two assignments of the same rank are a tie, resolved deterministically (the lowest
number as text) and reported on the chosen entry's `note`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from syncd.core.model import TEAMS, Member

USER_ASSIGNED = "userAssigned"
NOT_LIVE = frozenset({"assignmentPending", "assignmentFailed"})
"""Activation states of a number that is not (yet, or ever) working for its user."""


@dataclass(frozen=True, slots=True)
class TeamsNumber:
    """The Teams number chosen for one user."""

    number: str
    """`telephoneNumber` as Graph gives it (normally E.164; Direct Routing numbers may carry ";ext=")."""
    category: str
    """`assignmentCategory`: primary, private or alternate."""
    note: str | None = None
    """Set when the number was chosen among several of the same category: what was chosen and how."""


def assignment_filter(categories: Sequence[str]) -> str:
    """Pure: the `$filter` for user assignments of the configured categories.

    One category is filtered by Graph; several are filtered here (the documented filter examples use `eq`
    and `and` only, so no `or` is sent).
    """
    clause = f"assignmentStatus eq '{USER_ASSIGNED}'"
    if len(categories) == 1:
        clause += f" and assignmentCategory eq '{categories[0]}'"
    return clause


class TeamsIndexer:
    """Collects assignment pages; `result()` gives the chosen number per user object ID (lower case)."""

    def __init__(self, categories: Sequence[str]) -> None:
        self._rank = {category: rank for rank, category in enumerate(categories)}
        self._candidates: dict[str, list[tuple[int, str, str]]] = {}
        self.read = 0
        """Assignments read."""
        self.ignored: Counter[str] = Counter()
        """Assignments not used, by reason."""

    def add(self, items: Iterable[object]) -> None:
        """One page's `value` items (parsed JSON, any shape)."""
        rank_of = self._rank
        candidates = self._candidates
        for item in items:
            self.read += 1
            if not isinstance(item, dict):
                self.ignored["not an object"] += 1
                continue
            if item.get("assignmentStatus") != USER_ASSIGNED:
                self.ignored["not assigned to a user"] += 1
                continue
            category = item.get("assignmentCategory")
            rank = rank_of.get(category) if isinstance(category, str) else None
            if rank is None or not isinstance(category, str):
                self.ignored["category not configured"] += 1
                continue
            state = item.get("activationState")
            if isinstance(state, str) and state in NOT_LIVE:
                self.ignored["not activated"] += 1
                continue
            target, number = item.get("assignmentTargetId"), item.get("telephoneNumber")
            if not isinstance(target, str) or not target.strip():
                self.ignored["no target"] += 1
                continue
            if not isinstance(number, str) or not number.strip():
                self.ignored["no number"] += 1
                continue
            candidates.setdefault(target.strip().lower(), []).append((rank, number, category))

    def result(self) -> dict[str, TeamsNumber]:
        """The chosen number per user; ties of the best rank resolved by the lowest number (as text)."""
        chosen: dict[str, TeamsNumber] = {}
        for target, listed in self._candidates.items():
            if len(listed) == 1:
                _, number, category = listed[0]
                chosen[target] = TeamsNumber(number, category)
                continue
            # The same assignment listed twice (paging over a changing list) is one, not a tie.
            options = sorted(set(listed))
            best_rank, number, category = options[0]
            tied = [other for rank, other, _ in options if rank == best_rank]
            note = None
            if len(tied) > 1:
                note = (
                    f"{len(tied)} {category} Teams numbers ({', '.join(tied)}): chose {number}, the lowest; "
                    "leave one assignment of that category in Teams"
                )
            chosen[target] = TeamsNumber(number, category, note)
        return chosen


def ambiguous(members: Mapping[str, Member], teams: Mapping[str, TeamsNumber]) -> dict[str, str]:
    """Pure: the members whose Teams number was chosen among tied assignments (`TeamsNumber.note`), with
    how, by object ID."""
    found: dict[str, str] = {}
    for object_id, member in members.items():
        if member.phone_source != TEAMS:
            continue
        assigned = teams.get(object_id.lower())
        if assigned is not None and assigned.note is not None:
            found[object_id] = assigned.note
    return found
