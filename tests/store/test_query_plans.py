"""The queries an incremental cycle runs whatever the tenant's size find their rows through an index, never
by reading the whole members table (SQLite's query plans; a full scan made an incremental cycle at a
million members cost seconds). The answers are checked too, on both backends."""

from __future__ import annotations

import time
from pathlib import Path

from syncd.core.model import AgentFields, MemberStatus, Recorded
from syncd.store import Store
from syncd.store.members import anchors_query, offboards_due_query

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _members(store: Store, now: float) -> None:
    store.save_members(
        [
            Recorded(
                f"oid-{n:03d}",
                MemberStatus.ACTIVE,
                AgentFields(TENANT, f"+1415555{n:04d}", f"u{n}@contoso.com", f"guid-{n % 50:03d}"),
                upn=f"u{n}@contoso.com",
                left_scope_at=now - 3600 if n % 10 == 0 else None,
            )
            for n in range(200)
        ]
        + [Recorded("gone", MemberStatus.OFFBOARDED, None, upn="gone@contoso.com")]
    )


def _plan(store: Store, query: object) -> str:
    with store.engine.connect() as connection:
        compiled = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    return " | ".join(str(row[-1]) for row in rows)


def test_anchor_holders_and_offboards_due_answer(store: Store) -> None:
    now = time.time()
    _members(store, now)
    holders = store.anchor_holders({"guid-007", "guid-049", "nobody"})
    assert holders == {
        "guid-007": ["oid-007", "oid-057", "oid-107", "oid-157"],
        "guid-049": ["oid-049", "oid-099", "oid-149", "oid-199"],
    }
    assert store.offboards_due(now) == [f"oid-{n:03d}" for n in range(0, 200, 10)]
    assert store.offboards_due(now - 7200) == []


def test_sqlite_finds_them_through_an_index(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'syncd.db'}") as store:
        store.upgrade()
        _members(store, time.time())
        anchors = anchors_query(["guid-007", "guid-049"])
        due = offboards_due_query(time.time())
        assert "USING INDEX ix_members_consistency_id" in _plan(store, anchors)
        assert "USING INDEX ix_members_left_scope_at" in _plan(store, due)
        for plan in (_plan(store, anchors), _plan(store, due)):
            assert "SCAN members" not in plan
