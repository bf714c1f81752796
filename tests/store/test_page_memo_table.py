"""The page memo table (`Store.stored_page`, `store_page`, `trim_pages`), on SQLite and PostgreSQL: a page
is read back as it was written only for its own place, body digest and mapping inputs; a place is replaced
whole; a row this syncd cannot read is a miss; a trim forgets the places a whole read did not reach."""

from __future__ import annotations

from sqlalchemy import update

from syncd.core.model import Member, Skipped, SkipReason
from syncd.store import Store, tables
from syncd.store.pages import decode_page, encode_page

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
DIGEST = "0f" * 16
INPUTS = "a1" * 16

ADA = Member(
    "a1", TENANT, "ada@contoso.com", "+14155550100", "d3f107d7-7c95-447d-8785-bf0b0c57c43a", "businessPhones"
)
BOB = Member("b2", TENANT, None, "+14155550101", None, None)
CY = Skipped("c3", "cy@contoso.com", SkipReason.INVALID_PHONE, "businessPhones 'x\x00y' is not a number")
NOID = Skipped("", None, SkipReason.INVALID_RECORD, "no id")
ODD = Member("d4", TENANT, "ünïcødé@contoso.com", "+14155550102", None, "mobilePhone")


def test_a_page_is_read_back_as_written_for_its_place_body_and_inputs_only(store: Store) -> None:
    page = [ADA, BOB, CY, NOID, ODD]
    assert store.store_page("g1", 1, DIGEST, INPUTS, page, "https://graph.microsoft.com/v1.0/next")
    assert store.stored_page("g1", 1, DIGEST, INPUTS) == (page, "https://graph.microsoft.com/v1.0/next")
    assert store.stored_page("g1", 2, DIGEST, INPUTS) is None
    assert store.stored_page("g2", 1, DIGEST, INPUTS) is None
    assert store.stored_page("g1", 1, "00" * 16, INPUTS) is None
    assert store.stored_page("g1", 1, DIGEST, "00" * 16) is None

    store.store_page("g1", 1, "00" * 16, INPUTS, [BOB], None)  # the place is replaced whole
    assert store.stored_page("g1", 1, DIGEST, INPUTS) is None
    assert store.stored_page("g1", 1, "00" * 16, INPUTS) == ([BOB], None)
    assert store.count_pages() == 1


def test_a_row_this_syncd_cannot_read_is_a_miss(store: Store) -> None:
    store.store_page("g1", 1, DIGEST, INPUTS, [ADA], None)
    for unreadable in (
        "not json",
        '{"v": 2, "t": [], "s": [], "m": []}',
        '{"v": 1, "t": [], "s": [], "m": [[1]]}',
    ):
        with store.engine.begin() as connection:
            connection.execute(update(tables.page_memo).values(mapped=unreadable))
        assert store.stored_page("g1", 1, DIGEST, INPUTS) is None


def test_a_trim_forgets_the_places_a_whole_read_did_not_reach(store: Store) -> None:
    for group_id, pages in (("g1", 3), ("g2", 2), ("gone", 1)):
        for number in range(1, pages + 1):
            store.store_page(group_id, number, DIGEST, INPUTS, [ADA], None)
    assert store.count_pages() == 6
    assert store.trim_pages({"g1": 2, "g2": 2}) == 2  # g1's third page, and the group no longer read
    assert store.stored_page("g1", 2, DIGEST, INPUTS) is not None
    assert store.stored_page("g1", 3, DIGEST, INPUTS) is None
    assert store.stored_page("gone", 1, DIGEST, INPUTS) is None
    assert store.trim_pages({"g1": 2, "g2": 2}) == 0
    assert store.trim_pages({}) == 4  # a read of no group: nothing is kept


def test_the_encoding_keeps_every_field_and_shares_tenant_and_source_strings() -> None:
    page = [ADA, BOB, CY, NOID, ODD, ADA]
    text = encode_page(page)
    assert text.count(TENANT) == 1
    assert "\x00" not in text  # escaped: PostgreSQL text holds it
    decoded = decode_page(text)
    assert decoded == page
    assert decoded is not None
    first, second = decoded[0], decoded[1]
    assert isinstance(first, Member)
    assert isinstance(second, Member)
    assert first.tenant_id is second.tenant_id
    assert decode_page(encode_page([])) == []
