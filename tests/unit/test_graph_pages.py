"""`syncd.graph.pages.lower_ids` on plain data: the object IDs a full read collects from a mapped page are
lower case whatever Graph sent, the very strings when they already are, and never empty."""

from __future__ import annotations

from syncd.core.model import Member, Skipped, SkipReason
from syncd.graph.pages import lower_ids

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"


def member(object_id: str) -> Member:
    return Member(object_id, TENANT, None, "+14155550100", None)


def test_a_page_of_lower_case_ids_gives_the_same_strings() -> None:
    page = [member("3f2a-b1"), Skipped("9c1d-e2", None, SkipReason.NO_PHONE, "")]
    ids = lower_ids(page)
    assert ids == ["3f2a-b1", "9c1d-e2"]
    assert all(got is item.object_id for got, item in zip(ids, page, strict=True))


def test_upper_case_digits_only_and_empty_ids_are_handled() -> None:
    page = [
        member("3F2A-B1"),
        member("1234-5678"),  # no letter: not `islower`, still its own lower case
        Skipped("", None, SkipReason.INVALID_RECORD, "no id"),
        member("9c1d-e2"),
    ]
    assert lower_ids(page) == ["3f2a-b1", "1234-5678", "9c1d-e2"]
    assert lower_ids([]) == []
