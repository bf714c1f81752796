"""Pure Graph delta handling: stored links, folding delta pages, structural changes, scope afterwards."""

from __future__ import annotations

import json

import pytest

from syncd.graph.delta import (
    DeltaState,
    GroupChanges,
    UserChanges,
    chunks,
    disagreements,
    id_filter,
    memberships_after,
    scope_after,
    signature,
    structural_changes,
    users_after,
    users_leaving_at_most,
)

USER = "#microsoft.graph.user"
GROUP = "#microsoft.graph.group"
SIG = signature(tenant_id="T", group_ids=["G1"], select=["id", "businessPhones"], base_url="https://g/v1.0")


def member(object_id: str, odata_type: str = USER, *, removed: bool = False) -> dict[str, object]:
    entry: dict[str, object] = {"@odata.type": odata_type, "id": object_id}
    if removed:
        entry["@removed"] = {"reason": "deleted"}
    return entry


def test_the_state_round_trips_and_is_refused_for_another_configuration() -> None:
    state = DeltaState(SIG, "https://g/users/delta?$deltatoken=u", {"G1": ["https://g/groups/delta?t=1"]})
    assert DeltaState.from_json(state.to_json(), expected_signature=SIG) == state
    other = signature(
        tenant_id="T", group_ids=["G2"], select=["id", "businessPhones"], base_url="https://g/v1.0"
    )
    assert DeltaState.from_json(state.to_json(), expected_signature=other) is None


@pytest.mark.parametrize("text", [None, "", "not json", "[]", '{"signature": "x"}', '{"users": 1}'])
def test_unreadable_state_is_none(text: str | None) -> None:
    assert DeltaState.from_json(text, expected_signature=SIG) is None


def test_the_signature_ignores_order_and_case_of_group_ids_but_not_the_select() -> None:
    base = dict(tenant_id="T", select=["id", "mobilePhone"], base_url="https://g/v1.0")
    assert signature(group_ids=["A", "b"], **base) == signature(group_ids=["B", "a"], **base)  # type: ignore[arg-type]
    assert signature(group_ids=["A"], **base) != signature(  # type: ignore[arg-type]
        tenant_id="T", group_ids=["A"], select=["id", "businessPhones"], base_url="https://g/v1.0"
    )


def test_chunks_and_filter() -> None:
    ids = [f"g{n}" for n in range(120)]
    assert [len(c) for c in chunks(ids)] == [50, 50, 20]
    assert id_filter(["a", "b"]) == "id eq 'a' or id eq 'b'"


def test_group_pages_fold_into_added_and_removed_memberships() -> None:
    changes = GroupChanges()
    changes.fold([{"id": "G1", "members@delta": [member("U1"), member("U2", removed=True)]}])
    changes.fold([{"id": "g1", "members@delta": [member("u3")]}, {"id": "g2", "displayName": "renamed"}])
    assert changes.edges() == [("g1", "u1", "user"), ("g1", "u3", "user")]
    assert changes.removed == {("g1", "u2"): "user"}
    assert changes.members() == {"u1", "u2", "u3"}
    assert structural_changes(changes) == []


def test_a_later_entry_for_the_same_membership_wins() -> None:
    changes = GroupChanges()
    changes.fold([{"id": "g", "members@delta": [member("u1"), member("u2", removed=True)]}])
    changes.fold([{"id": "g", "members@delta": [member("u1", removed=True), member("u2")]}])
    assert changes.edges() == [("g", "u2", "user")]
    assert changes.removed == {("g", "u1"): "user"}


def test_devices_and_bad_entries_are_counted_not_raised() -> None:
    changes = GroupChanges()
    changes.fold(
        [
            "junk",
            {"no": "id"},
            {"id": "g", "members@delta": "not a list"},
            {"id": "g", "members@delta": [member("d1", "#microsoft.graph.device"), {"id": 7}, None]},
        ]
    )
    assert changes.ignored == 6
    assert changes.edges() == []
    assert changes.removed == {}


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([{"id": "g", "members@delta": [member("n1", GROUP)]}], "group n1 was added to group g"),
        (
            [{"id": "g", "members@delta": [member("n1", GROUP, removed=True)]}],
            "group n1 was removed from group g",
        ),
        ([{"id": "n1", "@removed": {"reason": "changed"}}], "tracked group n1 was deleted"),
        (
            [{"id": "g", "members@delta": [{"id": "x", "@removed": {"reason": "deleted"}}]}],
            "a member of unknown",
        ),
    ],
)
def test_a_change_of_the_tree_is_structural(entries: list[object], reason: str) -> None:
    changes = GroupChanges()
    changes.fold(entries)
    reasons = structural_changes(changes)
    assert len(reasons) == 1
    assert reasons[0].startswith(reason)


def test_user_pages_merge_partial_entries_and_track_deletions() -> None:
    users = UserChanges(("id", "userPrincipalName", "businessPhones"))
    users.fold(
        [{"id": "U1", "businessPhones": ["+1 415 555 0100"]}, {"id": "u2", "@removed": {"reason": "x"}}]
    )
    assert users.complete("u1") is None  # the UPN was not given: read the user
    users.fold([{"id": "u1", "userPrincipalName": "a@contoso.com"}, 5])
    assert users.complete("u1") == {
        "id": "u1",
        "businessPhones": ["+1 415 555 0100"],
        "userPrincipalName": "a@contoso.com",
    }
    assert users.removed == {"u2"}
    assert users.ignored == 1
    users.fold([{"id": "u2", "userPrincipalName": "b@contoso.com"}])  # restored
    assert users.removed == set()


def test_scope_after_the_changes() -> None:
    stored = {"u1": {"g"}, "u2": {"g", "n"}, "u3": {"n"}, "u5": {"g"}}
    changes = GroupChanges()
    changes.fold(
        [
            {"id": "g", "members@delta": [member("u1", removed=True), member("u2", removed=True)]},
            {"id": "n", "members@delta": [member("u3", removed=True), member("u4")]},
        ]
    )
    # u1: removed from its only group; u2: still in n; u3: gone; u4: new; u5: deleted; u6: never a member
    after = memberships_after(["u1", "u2", "u3", "u4", "u5", "u6"], stored, changes, {"u5"})
    assert after == {"u2": {"n"}, "u4": {"n"}}
    assert scope_after(after, trees={"G": ["g", "n"]}) == ({"u2", "u4"}, {})


def test_scope_after_with_excluded_trees_nested_and_overlapping() -> None:
    # Configured tree S = s > t; excluded tree M = m > lead, and m is nested in s too (overlap); excluded
    # tree X = x. Memberships are the direct tracked groups of each person after the changes.
    trees = {"S": ["s", "t", "m", "lead"]}
    excluded = {"M": ["m", "lead"], "X": ["x"]}
    memberships = {
        "agent": {"t"},  # in scope
        "manager": {"m"},  # in scope through s > m, and excluded by M
        "lead": {"t", "lead"},  # in scope through t, excluded by M through m > lead
        "both": {"s", "x", "lead"},  # excluded by M and by X: the first in configuration order names it
        "outsider": {"x"},  # only in an excluded tree: not a member at all
    }
    members, held = scope_after(memberships, trees=trees, excluded=excluded)
    assert members == {"agent", "manager", "lead", "both"}
    assert held == {"manager": "M", "lead": "M", "both": "M"}


def test_memberships_after_an_excluded_group_gains_and_loses_members() -> None:
    stored = {"u1": {"s"}, "u2": {"s", "m"}}
    changes = GroupChanges()
    changes.fold([{"id": "m", "members@delta": [member("u1"), member("u2", removed=True)]}])
    after = memberships_after(["u1", "u2"], stored, changes, set())
    assert after == {"u1": {"s", "m"}, "u2": {"s"}}
    assert scope_after(after, trees={"S": ["s"]}, excluded={"M": ["m"]}) == ({"u1", "u2"}, {"u1": "M"})


def test_users_left_in_a_tree_after_the_changes() -> None:
    tree = {"g", "n"}
    stored = {"u1": {"g"}, "u2": {"g", "n"}, "u3": {"n", "other"}}
    changes = GroupChanges()
    changes.fold(
        [
            {"id": "g", "members@delta": [member("u1", removed=True), member("u2", removed=True)]},
            {"id": "n", "members@delta": [member("u3", removed=True), member("u4"), member("x", GROUP)]},
            {"id": "other", "members@delta": [member("u5")]},
        ]
    )
    # 3 users before; u1 and u3 leave the tree, u2 stays through n, u4 joins, u5 joins another tree
    assert users_after(tree, 3, stored, changes) == 2


def test_a_tree_emptied_by_the_changes_has_no_users_left() -> None:
    changes = GroupChanges()
    changes.fold([{"id": "g", "members@delta": [member("u1", removed=True), member("u2", removed=True)]}])
    assert users_after({"g"}, 2, {"u1": {"g"}, "u2": {"g"}}, changes) == 0
    capped = min(2, users_leaving_at_most({"g"}, changes) + 1)
    assert users_after({"g"}, capped, {"u1": {"g"}, "u2": {"g"}}, changes) == 0


def test_a_count_capped_past_the_users_who_may_leave_tells_exactly_whether_a_tree_empties() -> None:
    tree = {"g", "n"}
    stored = {"u1": {"g"}, "u2": {"g", "n"}, "u3": {"n"}}
    changes = GroupChanges()
    changes.fold(
        [
            {"id": "g", "members@delta": [member("u1", removed=True), member("u2", removed=True)]},
            {"id": "n", "members@delta": [member("u3", removed=True), member("x", GROUP, removed=True)]},
            {"id": "other", "members@delta": [member("u4", removed=True)]},
        ]
    )
    leaving = users_leaving_at_most(tree, changes)
    assert leaving == 3  # u1, u2, u3: u4 left another tree, x is a group
    # However many users the tree had, a count capped at leaving + 1 is positive afterwards exactly
    # when the true one is.
    for true_count in range(3, 2000, 7):
        capped = min(true_count, leaving + 1)
        after_true = users_after(tree, true_count, stored, changes)
        after_capped = users_after(tree, capped, stored, changes)
        assert (after_capped > 0) == (after_true > 0)
        assert 0 <= after_capped <= after_true
    assert users_after(tree, min(3, leaving + 1), stored, changes) == 1  # u2 stays, through n
    assert users_leaving_at_most({"n"}, changes) == 1
    assert users_leaving_at_most({"elsewhere"}, changes) == 0


def test_the_state_keeps_the_trees() -> None:
    state = DeltaState(SIG, "u", {"G1": ["l"], "X1": ["k"]}, {"G1": ["g1", "n1"]}, {"X1": ["x1", "y1"]})
    restored = DeltaState.from_json(state.to_json(), expected_signature=SIG)
    assert restored is not None
    assert restored.trees == {"G1": ["g1", "n1"]}
    assert restored.excluded == {"X1": ["x1", "y1"]}
    assert restored.group_links == {"G1": ["l"], "X1": ["k"]}


def test_a_state_stored_before_excluded_groups_existed_reads_with_none() -> None:
    stored = json.dumps({"signature": SIG, "users": "u", "groups": {"G1": ["l"]}, "trees": {"G1": ["g1"]}})
    restored = DeltaState.from_json(stored, expected_signature=SIG)
    assert restored is not None
    assert restored.excluded == {}


def test_the_signature_changes_with_the_mapping_in_order() -> None:
    base = {"tenant_id": "T", "group_ids": ["A"], "select": ["id"], "base_url": "https://g/v1.0"}
    one = signature(**base, mapping=["businessPhones", "mobilePhone", "region=US"])  # type: ignore[arg-type]
    assert one != signature(**base, mapping=["mobilePhone", "businessPhones", "region=US"])  # type: ignore[arg-type]
    assert one != signature(**base, mapping=["businessPhones", "mobilePhone", "region=GB"])  # type: ignore[arg-type]


def test_the_state_keeps_whom_to_recheck_and_reads_older_states_without() -> None:
    state = DeltaState(SIG, "u", {"G1": ["g"]}, {"G1": ["g1"]}, recheck=["a", "b"])
    assert DeltaState.from_json(state.to_json(), expected_signature=SIG) == state
    plain = DeltaState(SIG, "u", {"G1": ["g"]})
    assert "recheck" not in plain.to_json()
    assert DeltaState.from_json(plain.to_json(), expected_signature=SIG) == plain
    broken = plain.to_json()[:-1] + ',"recheck":[1]}'
    assert DeltaState.from_json(broken, expected_signature=SIG) is None


@pytest.mark.parametrize(
    ("tracked", "read", "in_scope", "expected"),
    [
        (["A", "b"], ["a", "B"], ["a"], []),  # agree (case aside); b read but skipped
        (["a", "joiner"], ["a"], ["a"], ["joiner"]),  # the read lags a join the delta saw
        (["a"], ["a", "leaver"], ["a", "leaver"], ["leaver"]),  # the read lags a leave the delta saw
        (["a"], ["a", "x"], ["a"], []),  # read, out of scope, in no tracked group: nothing to plan
        (["a", "Joiner"], ["A", "Leaver"], ["A", "Leaver"], ["joiner", "leaver"]),  # named in lower case
        ([], [], [], []),
    ],
)
def test_people_a_full_read_and_its_delta_round_disagree_about(
    tracked: list[str], read: list[str], in_scope: list[str], expected: list[str]
) -> None:
    assert disagreements(tracked, read, in_scope) == expected
