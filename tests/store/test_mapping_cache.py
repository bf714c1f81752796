"""The mapping cache table (`Store.known_mappings`, `remember_mappings`, `prune_mappings`), on SQLite and
PostgreSQL: what is written is read back as it was, a row is replaced whole, rows this syncd cannot read are
misses, and a prune forgets only the people a whole read did not find, once they are enough of them."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from syncd.core.model import Member, Skipped, SkipReason
from syncd.store import Store, StoreError, tables
from syncd.store.mappings import LOOKUP_BATCH, PRUNE_SHARE

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
BIG = 2**63 - 1
"""Fingerprints are signed 64-bit: both ends must survive a round trip."""


def oid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def member(n: int, **changes: object) -> Member:
    values: dict[str, object] = {
        "object_id": oid(n),
        "tenant_id": TENANT,
        "upn": f"u{n}@contoso.com",
        "phone_number": f"+1415555{n:04d}",
        "consistency_id": "d3f107d7-7c95-447d-8785-bf0b0c57c43a",
        "phone_source": "businessPhones",
    }
    return Member(**(values | changes))  # type: ignore[arg-type]


def test_mappings_are_read_back_as_written(store: Store) -> None:
    rows = [
        (oid(1), BIG, member(1)),
        (oid(2), -BIG - 1, member(2, upn=None, consistency_id=None, phone_source="mobilePhone")),
        (
            oid(3),
            0,
            Skipped(oid(3), "u3@contoso.com", SkipReason.INVALID_PHONE, "businessPhones 'x' is not..."),
        ),
        (oid(4), 7, Skipped(oid(4), None, SkipReason.DISABLED, "accountEnabled is false")),
        (oid(5), 8, Skipped(oid(5), "u5@contoso.com", SkipReason.FILTERED, "")),
    ]
    store.remember_mappings(rows)
    assert store.known_mappings([oid(n) for n in range(7)]) == {o: (f, m) for o, f, m in rows}
    assert store.known_mappings([]) == {}
    assert store.count_mappings() == 5


def test_a_row_is_replaced_whole_and_the_last_of_a_repeated_id_wins(store: Store) -> None:
    store.remember_mappings([(oid(1), 1, member(1))])
    skipped = Skipped(oid(1), "u1@contoso.com", SkipReason.NO_PHONE, "businessPhones is empty")
    store.remember_mappings([(oid(1), 2, member(1, phone_number="+14155559999")), (oid(1), 3, skipped)])
    assert store.known_mappings([oid(1)]) == {oid(1): (3, skipped)}
    store.remember_mappings([(oid(1), 4, member(1))])
    assert store.known_mappings([oid(1)]) == {oid(1): (4, member(1))}
    assert store.count_mappings() == 1


def test_lookups_of_more_ids_than_one_statement_takes(store: Store) -> None:
    count = LOOKUP_BATCH * 2 + 3
    store.remember_mappings([(oid(n), n, member(n)) for n in range(0, count, 2)])
    found = store.known_mappings([oid(n) for n in range(count)])
    assert sorted(found) == [oid(n) for n in range(0, count, 2)]
    assert found[oid(count - 1)] == (count - 1, member(count - 1))


def test_rows_this_syncd_cannot_read_are_misses(store: Store) -> None:
    """A skip reason it does not know (written by a newer syncd), a member row without a number."""
    empty = {column.name: None for column in tables.mapping_cache.columns}
    with store.engine.begin() as connection:
        connection.execute(
            insert(tables.mapping_cache),
            [
                empty | {"object_id": oid(1), "fingerprint": 1, "upn": "a", "skip_reason": "from_the_future"},
                empty | {"object_id": oid(2), "fingerprint": 2, "tenant_id": TENANT},
                empty | {"object_id": oid(3), "fingerprint": 3, "phone_number": "+14155550100"},
            ],
        )
    assert store.known_mappings([oid(1), oid(2), oid(3)]) == {}


def test_a_upn_with_a_nul_character_is_not_cached(store: Store) -> None:
    """PostgreSQL text cannot hold NUL: such a user is mapped every time instead of failing the write."""
    store.remember_mappings([(oid(1), 1, member(1, upn="a\x00b@contoso.com")), (oid(2), 2, member(2))])
    assert sorted(store.known_mappings([oid(1), oid(2)])) == [oid(2)]


@pytest.mark.parametrize("stale", [1, 10], ids=["few stale rows", "enough stale rows"])
def test_prune_forgets_the_people_not_read_once_they_are_enough(store: Store, stale: int) -> None:
    read = [oid(n) for n in range(100)]
    gone = [oid(n) for n in range(100, 100 + stale)]
    store.remember_mappings([(o, 1, member(n)) for n, o in enumerate(read + gone)])
    assert store.prune_mappings(set(), 0) == 0  # a read that found nobody forgets nothing
    forgotten = store.prune_mappings(set(read), len(read))
    if stale > len(read) * PRUNE_SHARE:
        assert forgotten == stale
        assert store.count_mappings() == len(read)
        assert store.known_mappings(gone) == {}
    else:
        assert forgotten == 0
        assert store.count_mappings() == len(read) + stale
    assert sorted(store.known_mappings(read)) == sorted(read)


def test_a_database_failure_under_the_bulk_reads_is_a_store_error(store: Store) -> None:
    """`known_mappings`, `users_in` and a full cycle's `load_recorded` read through the DBAPI cursor itself:
    the driver's own errors must still come out as StoreError (the mapping cache turns itself off on one; a
    cycle reports it), never as sqlite3's or psycopg's."""
    store.remember_mappings([(oid(1), 1, member(1))])
    with store.engine.begin() as connection:
        connection.execute(tables.mapping_cache.delete())
        tables.mapping_cache.drop(connection)
        tables.members.drop(connection)
        tables.graph_edges.drop(connection)
    with pytest.raises(StoreError, match="reading cached mappings failed"):
        store.known_mappings([oid(1)])
    with pytest.raises(StoreError, match="loading members failed"):
        store.load_recorded()
    with pytest.raises(StoreError, match="reading group members failed"):
        store.users_in({"a-group"})
