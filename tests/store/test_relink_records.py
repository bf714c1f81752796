"""What the store keeps for relinks and the offboarding grace, on SQLite and PostgreSQL: the old object ID of
a relink's operation (found from either object ID by the history), both records settled in one
transaction, agents by consistency GUID, and the people whose offboard waits out the grace. Migration 0005
adds the two columns and keeps the rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import inspect, text

import migrations
from syncd.core.model import Action, AgentFields, Change, MemberStatus, Outcome, Recorded
from syncd.core.settle import settle_moved_from
from syncd.store import Settlement, Store
from tests.store.conftest import Database

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
GUID = "1f6d0b2e-3c4a-4e5f-8a9b-0c1d2e3f4a5b"
AGENT = AgentFields(TENANT, "+14155550001", "alice@contoso.com", GUID)


def relink_change() -> Change:
    return Change(
        Action.RELINK,
        "new-1",
        AGENT,
        AGENT,
        ("user_object_id",),
        from_object_id="old-1",
    )


def test_a_relink_is_recorded_with_both_object_ids_and_settles_both_records(store: Store) -> None:
    store.save_members([Recorded("old-1", MemberStatus.ACTIVE, AGENT, upn="alice@contoso.com")])
    run_id = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    change = relink_change()
    op_id = store.start_operation(run_id, change)
    [pending] = store.pending_operations()
    assert (pending.action, pending.object_id, pending.from_object_id) == (Action.RELINK, "new-1", "old-1")

    moved = settle_moved_from(change, True, store.load_recorded(["old-1"])["old-1"])
    assert moved is not None
    new = Recorded("new-1", MemberStatus.ACTIVE, AGENT, upn="alice@contoso.com")
    store.settle_operations([Settlement(op_id, Outcome.OK, new, also=(moved,))])
    records = store.load_recorded(["old-1", "new-1"])
    assert records["new-1"].agent == AGENT
    assert (records["old-1"].status, records["old-1"].agent) == (MemberStatus.OFFBOARDED, None)
    assert records["old-1"].detail == "agent moved to new-1 (relinked: the user was re-created in Entra)"
    for who in ("old-1", "new-1"):
        [entry] = store.iter_operations(object_ids=[who])
        assert (entry.operation.from_object_id, entry.operation.outcome) == ("old-1", Outcome.OK)
        [operation] = store.operations(object_id=who)
        assert operation.id == op_id
    assert store.anchor_holders([GUID]) == {GUID: ["new-1"]}


def test_agents_are_found_by_consistency_guid(store: Store) -> None:
    other = AgentFields(TENANT, "+14155550002", "bob@contoso.com", None)
    store.save_members(
        [
            Recorded("a", MemberStatus.ACTIVE, AGENT),
            Recorded("b", MemberStatus.ACTIVE, other),
            Recorded("c", MemberStatus.OFFBOARDED, None),
        ]
    )
    assert store.anchor_holders([GUID, "00000000-0000-0000-0000-000000000000"]) == {GUID: ["a"]}
    assert store.anchor_holders([]) == {}


def test_people_leaving_scope_and_their_offboards_due(store: Store) -> None:
    now = time.time()
    store.save_members(
        [
            Recorded("early", MemberStatus.ACTIVE, AGENT, upn="a@x.com", left_scope_at=now - 7200),
            Recorded("late", MemberStatus.ACTIVE, AGENT, left_scope_at=now - 60),
            Recorded("staying", MemberStatus.ACTIVE, AGENT),
            # No agent left: nothing to wait for, whatever the column said.
            Recorded("gone", MemberStatus.OFFBOARDED, None, left_scope_at=now - 9000),
        ]
    )
    assert [m.object_id for m in store.members_leaving()] == ["early", "late"]
    assert store.members_leaving()[0].left_scope_at is not None
    assert store.offboards_due(now - 3600) == ["early"]
    assert store.offboards_due(now) == ["early", "late"]


def test_0005_adds_the_relink_columns_and_keeps_the_rows(database: Database) -> None:
    url = database.url_with_search_path()
    migrations.main(["-x", f"url={url}", "upgrade", "0006"])
    with database.open() as store:
        run_id = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
        with store.engine.begin() as connection:  # the 0004 columns only
            connection.execute(
                text(
                    "INSERT INTO operations (run_id, object_id, action, outcome, created_at) "
                    "VALUES (:run_id, 'm-1', 'onboard', 'ok', :now)"
                ),
                {"run_id": run_id, "now": datetime.now(UTC)},
            )
        migrations.main(["-x", f"url={url}", "upgrade", "0007"])
        with store.engine.connect() as connection:
            inspector = inspect(connection)
            assert "from_object_id" in {c["name"] for c in inspector.get_columns("operations")}
            assert "left_scope_at" in {c["name"] for c in inspector.get_columns("members")}
        [operation] = store.operations()
        assert (operation.object_id, operation.from_object_id) == ("m-1", None)
    migrations.main(["-x", f"url={url}", "downgrade", "0006"])
    with database.open() as store, store.engine.connect() as connection:
        assert "from_object_id" not in {c["name"] for c in inspect(connection).get_columns("operations")}
        assert connection.execute(text("SELECT count(*) FROM operations")).scalar_one() == 1
