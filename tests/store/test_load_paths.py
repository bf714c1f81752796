"""`Store.load_recorded` reads a full load straight from the DBAPI driver's rows and a subset through
SQLAlchemy's: both must decode every shape of record the same, on both backends."""

from __future__ import annotations

from syncd.core.model import MemberStatus, SkipReason
from syncd.store import Store
from tests.store.test_repository import EVERY_SHAPE


def test_a_full_load_and_a_subset_load_read_every_shape_alike(store: Store) -> None:
    store.save_members(EVERY_SHAPE)
    everyone = store.load_recorded()
    some = store.load_recorded([record.object_id for record in EVERY_SHAPE])
    assert everyone == some == {record.object_id: record for record in EVERY_SHAPE}
    failed = everyone["failed-with-backoff"]
    assert failed.next_attempt_at == 1_764_200_000.25  # the driver's text (SQLite) or datetime (PostgreSQL)
    # StrEnums equal their text: check the types too, a raw string from the driver would compare equal.
    for record in everyone.values():
        assert type(record.status) is MemberStatus
        assert record.skip_reason is None or type(record.skip_reason) is SkipReason
