"""Pure checks of stored memberships against a full read (`syncd.graph.repair`), with plain data."""

from __future__ import annotations

import pytest

from syncd.graph.delta import USER, GroupChanges, memberships_after
from syncd.graph.repair import (
    REPAIR_CAP,
    REPAIR_FLOOR,
    disagreeing,
    holds_after,
    repair_limit,
    repaired,
    roots_holding,
    still_disagreeing,
)

TREES = {"top": ["top", "sales", "emea"], "contractors": ["contractors", "temps"]}


@pytest.mark.parametrize(
    ("people", "limit"),
    [(0, REPAIR_FLOOR), (4_999, REPAIR_FLOOR), (20_000, 200), (50_000, REPAIR_CAP), (1_000_000, REPAIR_CAP)],
)
def test_the_repair_limit_is_one_percent_of_the_read_between_its_floor_and_its_cap(
    people: int, limit: int
) -> None:
    assert repair_limit(people) == limit


def test_holds_after_says_whether_a_tree_holds_each_touched_person_once_the_changes_are_applied() -> None:
    after = {"ann": {"emea"}, "bob": {"temps"}}
    assert holds_after(TREES["top"], ["ann", "bob", "cy"], after) == {"ann": True, "bob": False, "cy": False}
    assert holds_after(TREES["contractors"], ["ann", "bob"], after) == {"ann": False, "bob": True}


def test_nobody_is_disagreed_about_when_the_memberships_and_the_read_agree() -> None:
    assert disagreeing({"ann", "bob"}, {"ann", "bob"}, {}) == set()
    assert disagreeing([], set(), {}) == set()


def test_people_only_the_memberships_or_only_the_read_hold_are_disagreed_about() -> None:
    # dan: stored but not read (a bogus membership, or a leave the read lags); eve: read but not stored.
    assert disagreeing({"ann", "dan"}, {"ann", "eve"}, {}) == {"dan", "eve"}


def test_this_cycles_changes_override_the_stored_memberships() -> None:
    touched = {"joiner": True, "leaver": False, "mover": True, "gone": False}
    stored = {"ann", "leaver", "mover", "gone"}
    # The read agrees with the changes: nobody to repair.
    assert disagreeing(stored, {"ann", "joiner", "mover"}, touched) == set()
    # The read lags them: the joiner and the leaver are disagreed about (read again, then rechecked).
    assert disagreeing(stored, {"ann", "leaver", "mover"}, touched) == {"joiner", "leaver"}


def test_the_check_works_with_memberships_after_on_plain_changes() -> None:
    changes = GroupChanges()
    changes.added[("sales", "joiner")] = USER
    changes.removed[("top", "leaver")] = USER
    changes.removed[("top", "mover")] = USER
    changes.added[("emea", "mover")] = USER
    touched = {"joiner", "leaver", "mover", "deleted"}
    stored = {"leaver": {"top"}, "mover": {"top"}, "deleted": {"top"}}
    after = memberships_after(touched, stored, changes, {"deleted"})
    holds = holds_after(TREES["top"], touched, after)
    assert holds == {"joiner": True, "leaver": False, "mover": True, "deleted": False}
    assert disagreeing({"ann", "leaver", "mover", "deleted"}, {"ann", "joiner", "mover"}, holds) == set()


def test_roots_holding_names_every_tree_with_one_of_the_groups() -> None:
    assert roots_holding({"emea", "temps"}, TREES) == {"top", "contractors"}
    assert roots_holding({"elsewhere"}, TREES) == set()
    assert roots_holding(set(), TREES) == set()


def test_people_whose_groups_still_disagree_with_the_read_are_rechecked() -> None:
    read = {"top": {"ann", "leaver"}, "contractors": {"held"}}
    found = {
        "ann": {"sales"},  # agrees with the read: repaired, not rechecked
        "joiner": {"top"},  # the read lags a join
        "held": {"top"},  # the read shows an exclusion Graph no longer has
    }
    people = ["ann", "joiner", "leaver", "held"]  # leaver: no groups now, the read still has them
    assert still_disagreeing(found, people, trees=TREES, read=read) == ["held", "joiner", "leaver"]


def test_repaired_replaces_the_memberships_of_the_people_read_again_and_keeps_the_other_changes() -> None:
    changes = GroupChanges()
    changes.added[("sales", "joiner")] = USER
    changes.removed[("top", "leaver")] = USER
    changes.added[("top", "ann")] = USER  # a change about someone read again: Graph's answer wins
    before = {"ann": {"emea", "top"}, "dan": {"sales"}}
    found = {"ann": {"sales"}, "eve": {"top", "temps"}}
    result = repaired(changes, before, found, {"ann", "dan", "eve"})
    assert result.added == {
        ("sales", "joiner"): USER,
        ("sales", "ann"): USER,
        ("temps", "eve"): USER,
        ("top", "eve"): USER,
    }
    assert result.removed == {
        ("top", "leaver"): USER,
        ("emea", "ann"): USER,
        ("top", "ann"): USER,
        ("sales", "dan"): USER,
    }
    assert changes.added == {("sales", "joiner"): USER, ("top", "ann"): USER}  # not changed in place


def test_a_membership_graph_still_has_is_removed_and_added_so_a_wrong_kind_is_written_again() -> None:
    result = repaired(GroupChanges(), {"ann": {"top"}}, {"ann": {"top"}}, {"ann"})
    assert (result.added, result.removed) == ({("top", "ann"): USER}, {("top", "ann"): USER})
