"""The state store against real databases: migrations, members, runs, the operations log, key/values,
failures and concurrency, each on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text, update

import migrations
from syncd.core.model import (
    Action,
    AgentFields,
    Change,
    Member,
    MemberStatus,
    Outcome,
    Recorded,
    SkipReason,
)
from syncd.store import (
    HistoryEntry,
    OperationRecord,
    PendingOperation,
    RunRecord,
    Store,
    StoreError,
    UnusableDatabase,
    tables,
)
from syncd.store.repository import migrations_directory
from syncd.store.schema import SCHEMA_HEAD
from syncd.store.tables import metadata
from tests.store.conftest import Database

TENANT = "0b5c4a8e-3f0e-4c11-9a43-6a2d8a2f1c77"
ALICE = AgentFields(TENANT, "+14155550100", "alice@contoso.com", "6f9619ff-8b86-d011-b42d-00c04fc964ff")
ALICE_MOVED = AgentFields(TENANT, "+14155550199", "alice.smith@contoso.com", ALICE.consistency_id)
BOB = AgentFields(TENANT, "+442071838750", "bob@contoso.com", None)


def head_revision() -> str | None:
    return ScriptDirectory(str(migrations_directory())).get_current_head()


def onboard(object_id: str, fields: AgentFields = ALICE) -> Change:
    return Change(Action.ONBOARD, object_id, desired=fields, believed=None, reason="new member")


# migrations


def test_upgrade_from_empty_is_idempotent_and_matches_the_tables(database: Database) -> None:
    with database.open() as store:
        assert store.current_revision() is None
        store.upgrade()
        assert store.current_revision() == head_revision() == SCHEMA_HEAD
        store.upgrade()
        assert store.current_revision() == SCHEMA_HEAD

        with store.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {
                "members",
                "runs",
                "operations",
                "kv",
                "graph_edges",
                "mapping_cache",
                "change_counters",
                "page_memo",
                "alembic_version",
            }
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_the_alembic_command_line_migrates_without_an_ini(database: Database) -> None:
    migrations.main(["-x", f"url={database.url_with_search_path()}", "upgrade", "head"])
    with database.open() as store:
        assert store.current_revision() == SCHEMA_HEAD
        store.upgrade()  # already there: nothing to do
        assert store.load_recorded() == {}


def test_0002_keeps_existing_members_and_records_phone_sources(database: Database) -> None:
    url = database.url_with_search_path()
    migrations.main(["-x", f"url={url}", "upgrade", "0001"])
    with database.open() as store:
        assert store.current_revision() == "0001"
        with store.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO members (object_id, status, agent_active, tenant_id, phone_number, "
                    "attempts, updated_at) VALUES ('old', 'active', :yes, :tenant, '+14155550100', 0, :now)"
                ),
                {"yes": True, "tenant": TENANT, "now": datetime.now(UTC)},
            )
        store.upgrade()
        assert store.current_revision() == head_revision()
        old = store.load_recorded()["old"]
        assert (old.status, old.phone_source) == (MemberStatus.ACTIVE, None)
        store.save_members([Recorded("new", MemberStatus.ACTIVE, BOB, upn=BOB.upn, phone_source="teams")])
        assert store.load_recorded()["new"].phone_source == "teams"
        assert store.count_by_phone_source() == {"teams": 1, "unknown": 1}
    migrations.main(["-x", f"url={url}", "downgrade", "0001"])
    with database.open() as store, store.engine.connect() as connection:
        assert "phone_source" not in {column["name"] for column in inspect(connection).get_columns("members")}
        assert connection.execute(text("SELECT count(*) FROM members")).scalar_one() == 2


def test_offline_mode_renders_the_schema_as_sql(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    migrations.main(["-x", f"url=sqlite:///{tmp_path / 'never.db'}", "upgrade", "head", "--sql"])
    output = capsys.readouterr().out
    assert "CREATE TABLE members" in output
    assert "CREATE INDEX ix_operations_outcome" in output
    assert not (tmp_path / "never.db").exists()


def test_sqlite_connections_use_wal_foreign_keys_a_busy_timeout_and_a_larger_cache(tmp_path: Path) -> None:
    path = tmp_path / "syncd.db"
    with Store(f"sqlite:///{path}") as store:
        store.upgrade()
        with store.engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert pragma("PRAGMA busy_timeout").scalar() == 5000
            assert pragma("PRAGMA wal_autocheckpoint").scalar() == 10_000
            assert pragma("PRAGMA cache_size").scalar() == -16_000  # KiB
    # WAL is a property of the file: any other client sees it.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


def test_an_in_memory_sqlite_store_works_for_quick_tests() -> None:
    with Store("sqlite://") as store:
        store.upgrade()
        record = Recorded("m-1", MemberStatus.ACTIVE, ALICE, upn=ALICE.upn)
        store.save_members([record])
        assert store.load_recorded() == {"m-1": record}


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(StoreError, match="starting operations failed"):
        store.start_operation(4242, onboard("m-1"))
    # One transaction: the member was not marked pending either.
    assert store.load_recorded() == {}
    assert store.operations() == []


# members

EVERY_SHAPE = [
    *(Recorded(f"status-{status.value}", status) for status in MemberStatus),
    *(Recorded(f"agent-{status.value}", status, ALICE, upn=ALICE.upn) for status in MemberStatus),
    *(
        Recorded(
            f"skip-{reason.value}", MemberStatus.SKIPPED, upn=None, skip_reason=reason, detail="phone: n/a"
        )
        for reason in SkipReason
    ),
    Recorded(
        "failed-with-backoff",
        MemberStatus.FAILED,
        BOB,
        upn="bob@contoso.com",
        detail="[409] number held by another agent",
        attempts=3,
        next_attempt_at=1_764_200_000.25,
    ),
    Recorded(
        "agent-without-upn-or-guid", MemberStatus.ACTIVE, AgentFields(TENANT, "+33142685300", None, None)
    ),
    Recorded(
        "unicode-upn",
        MemberStatus.ACTIVE,
        AgentFields(TENANT, "+4930901820", "jürgen.müßig@bücher.example", None),
        upn="jürgen.müßig@bücher.example",
        detail="Zeichen: ü ß 漢字 🙂",
    ),
    Recorded("renamed", MemberStatus.ACTIVE, ALICE, upn="alice.new@contoso.com"),
    Recorded("x" * 64, MemberStatus.OFFBOARDED, upn="longest-id@contoso.com"),
]


def test_every_recorded_shape_round_trips(store: Store) -> None:
    store.save_members(EVERY_SHAPE)
    assert store.load_recorded() == {record.object_id: record for record in EVERY_SHAPE}
    assert store.count_by_status() == dict(Counter(record.status.value for record in EVERY_SHAPE))


def test_member_rows_written_on_the_driver_cursor_hold_what_sqlalchemy_would_write(store: Store) -> None:
    """Member rows are upserted on the DBAPI cursor (`upsert_members`): each column must hold exactly what
    SQLAlchemy writes for the same record (the text of a SQLite timestamp included, which reads, compares
    and orders as text), so rows written either way mix."""
    at = 1_764_200_000.25
    record = Recorded(
        "driver", MemberStatus.ACTIVE, ALICE, upn=ALICE.upn, attempts=2, next_attempt_at=at, left_scope_at=at
    )
    store.save_members([record])
    members = tables.members
    stamp = datetime.fromtimestamp(at, UTC)
    with store.engine.begin() as connection:
        connection.execute(
            insert(members).values(
                object_id="sqlalchemy",
                status="active",
                agent_active=True,
                tenant_id=ALICE.tenant_id,
                phone_number=ALICE.phone_number,
                upn_pushed=ALICE.upn,
                consistency_id=ALICE.consistency_id,
                upn=ALICE.upn,
                attempts=2,
                next_attempt_at=stamp,
                updated_at=stamp,
                left_scope_at=stamp,
            )
        )
        connection.execute(update(members).where(members.c.object_id == "driver").values(updated_at=stamp))
        raw = connection.exec_driver_sql(
            "SELECT object_id, status, agent_active, tenant_id, phone_number, upn_pushed, consistency_id, "
            "upn, attempts, next_attempt_at, updated_at, left_scope_at FROM members ORDER BY object_id"
        ).fetchall()
    by_driver, by_sqlalchemy = raw
    assert by_driver[1:] == by_sqlalchemy[1:]
    assert store.load_recorded(["driver"])["driver"] == record


def test_records_loaded_like_the_desired_members_share_their_strings(store: Store) -> None:
    """`like` only saves memory: the records are equal to those loaded without it, and a value equal to
    the desired one is the desired member's own string (a full cycle at 1M holds both)."""
    store.save_members(EVERY_SHAPE)
    plain = store.load_recorded()
    like = {
        record.object_id: Member(
            "".join(record.object_id),  # equal, not identical
            TENANT,
            record.upn,
            record.agent.phone_number if record.agent else "+14155550100",
            record.agent.consistency_id if record.agent else None,
        )
        for record in EVERY_SHAPE
    }
    for wanted in (None, list(like)):
        shared = store.load_recorded(wanted, like=like)
        assert shared == plain
        for object_id, record in shared.items():
            member = like[object_id]
            assert record.object_id is member.object_id
            assert record.upn is None or record.upn is member.upn
            if record.agent is not None:
                assert record.agent.phone_number is member.phone_number
                assert record.agent.consistency_id is member.consistency_id


def test_saving_replaces_rows_and_clears_a_forgotten_agent(store: Store) -> None:
    store.save_members(
        [
            Recorded("m-1", MemberStatus.ACTIVE, ALICE, upn=ALICE.upn),
            Recorded("m-2", MemberStatus.ACTIVE, BOB),
        ]
    )
    gone = Recorded("m-1", MemberStatus.OFFBOARDED, None, upn=ALICE.upn)
    store.save_members([gone])
    assert store.load_recorded() == {"m-1": gone, "m-2": Recorded("m-2", MemberStatus.ACTIVE, BOB)}


def test_the_last_record_wins_when_an_id_repeats_in_one_call(store: Store) -> None:
    first = Recorded("m-1", MemberStatus.FAILED, attempts=1)
    last = Recorded("m-1", MemberStatus.ACTIVE, ALICE)
    store.save_members([first, last])
    assert store.load_recorded() == {"m-1": last}


def test_saving_nothing_is_fine(store: Store) -> None:
    store.save_members([])
    store.save_members(iter(()))
    assert store.load_recorded() == {}
    assert store.count_by_status() == {}


def test_members_needing_attention_are_the_failed_and_pending_ones_by_id(store: Store) -> None:
    store.save_members(
        [
            Recorded("d", MemberStatus.PENDING, ALICE),
            Recorded("a", MemberStatus.ACTIVE, ALICE),
            Recorded("c", MemberStatus.FAILED, attempts=2, next_attempt_at=1_800_000_000.0),
            Recorded("b", MemberStatus.FAILED, BOB, attempts=1),
            Recorded("e", MemberStatus.SKIPPED, skip_reason=SkipReason.NO_PHONE),
        ]
    )
    assert [record.object_id for record in store.members_needing_attention()] == ["b", "c", "d"]
    assert store.members_needing_attention()[1] == Recorded(
        "c", MemberStatus.FAILED, attempts=2, next_attempt_at=1_800_000_000.0
    )


def test_a_hundred_thousand_members_save_in_one_call(database: Database, store: Store) -> None:
    # How long it takes is measured by bench/store_save.py, not asserted here.
    records = [
        Recorded(
            f"{n:08d}-0000-4000-8000-000000000000",
            MemberStatus.ACTIVE,
            AgentFields(TENANT, f"+1415{n:07d}", f"user{n}@contoso.com", None),
            upn=f"user{n}@contoso.com",
        )
        for n in range(100_000)
    ]
    store.save_members(records)
    assert store.count_by_status() == {"active": 100_000}
    loaded = store.load_recorded()
    assert len(loaded) == 100_000
    assert loaded[records[12345].object_id] == records[12345]


# runs


def test_a_run_goes_from_running_to_finished(store: Store) -> None:
    before = time.time()
    run_id = store.begin_run(trigger="cli", kind="full", dry_run=True)
    (running,) = store.runs()
    assert running == RunRecord(
        id=run_id,
        trigger="cli",
        kind="full",
        dry_run=True,
        started_at=running.started_at,
        ended_at=None,
        outcome="running",
        counts={},
        error=None,
    )
    assert before - 1 <= running.started_at <= time.time() + 1

    store.finish_run(run_id, outcome="failed", counts={"onboard": 3, "failed": 1}, error="[409] conflict")
    (finished,) = store.runs()
    assert finished.outcome == "failed"
    assert finished.counts == {"onboard": 3, "failed": 1}
    assert finished.error == "[409] conflict"
    assert finished.ended_at is not None
    assert finished.started_at <= finished.ended_at <= time.time() + 1


def test_runs_are_listed_newest_first_up_to_the_limit(store: Store) -> None:
    ids = [store.begin_run(trigger="schedule", kind="incremental", dry_run=False) for _ in range(12)]
    assert [run.id for run in store.runs()] == ids[::-1][:10]
    assert [run.id for run in store.runs(limit=3)] == ids[::-1][:3]


def test_interrupting_marks_only_the_runs_still_running(store: Store) -> None:
    done = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    store.finish_run(done, outcome="ok", counts={})
    crashed = [store.begin_run(trigger="schedule", kind="full", dry_run=False) for _ in range(2)]
    assert store.interrupt_running_runs() == 2
    assert store.interrupt_running_runs() == 0
    by_id = {run.id: run for run in store.runs()}
    assert by_id[done].outcome == "ok"
    assert all(by_id[run_id].outcome == "interrupted" for run_id in crashed)
    assert all(by_id[run_id].ended_at is not None for run_id in crashed)


def test_the_last_success_is_the_latest_ok_run_that_was_not_a_dry_run(store: Store) -> None:
    assert store.last_success_at() is None
    ok = store.begin_run(trigger="schedule", kind="incremental", dry_run=False)
    store.finish_run(ok, outcome="ok", counts={})
    (recorded,) = [run.ended_at for run in store.runs() if run.id == ok]
    for outcome, dry_run in (("failed", False), ("error", False), ("guard", False), ("ok", True)):
        later = store.begin_run(trigger="cli", kind="incremental", dry_run=dry_run)
        store.finish_run(later, outcome=outcome, counts={})
    store.begin_run(trigger="schedule", kind="full", dry_run=False)  # still running
    assert store.last_success_at() == recorded


def test_finishing_an_unknown_run_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no run 77"):
        store.finish_run(77, outcome="ok", counts={})


# operations


def test_starting_an_operation_records_it_and_marks_a_new_member_pending(store: Store) -> None:
    run_id = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    before = time.time()
    op_id = store.start_operation(run_id, onboard("m-1"))

    assert store.load_recorded() == {"m-1": Recorded("m-1", MemberStatus.PENDING, None, upn=ALICE.upn)}
    (operation,) = store.operations()
    assert operation == OperationRecord(
        id=op_id,
        run_id=run_id,
        object_id="m-1",
        action=Action.ONBOARD,
        outcome=Outcome.PENDING,
        http_status=None,
        error=None,
        desired=ALICE,
        believed=None,
        created_at=operation.created_at,
        settled_at=None,
    )
    assert before - 1 <= operation.created_at <= time.time() + 1

    settled = Recorded("m-1", MemberStatus.ACTIVE, ALICE, upn=ALICE.upn)
    store.settle_operation(op_id, outcome=Outcome.OK, record=settled, http_status=201)
    assert store.load_recorded() == {"m-1": settled}
    (operation,) = store.operations()
    assert operation.outcome is Outcome.OK
    assert operation.http_status == 201
    assert operation.settled_at is not None
    assert operation.created_at <= operation.settled_at
    assert store.pending_operations() == []


@pytest.mark.parametrize("repeated", [False, True], ids=["one change a person", "a person twice"])
def test_a_batch_of_operations_gets_the_id_of_each_change_in_order(store: Store, repeated: bool) -> None:
    run_id = store.begin_run(trigger="cli", kind="full", dry_run=False)
    people = [f"m-{n:03d}" for n in range(300, 0, -1)]  # not in the order the database would sort them
    if repeated:
        people.insert(150, people[10])
    changes = [onboard(object_id, BOB if n % 2 else ALICE) for n, object_id in enumerate(people)]
    ids = store.start_operations(run_id, changes)
    assert len(set(ids)) == len(changes)
    by_id = {operation.id: operation for operation in store.operations(run_id=run_id, limit=1000)}
    assert [(by_id[op_id].object_id, by_id[op_id].desired) for op_id in ids] == [
        (change.object_id, change.desired) for change in changes
    ]


def test_starting_an_update_keeps_the_believed_agent_until_it_settles(store: Store) -> None:
    store.save_members([Recorded("m-1", MemberStatus.ACTIVE, ALICE, upn=ALICE.upn)])
    run_id = store.begin_run(trigger="schedule", kind="incremental", dry_run=False)
    change = Change(Action.UPDATE, "m-1", desired=ALICE_MOVED, believed=ALICE, fields=("phone_number", "upn"))
    op_id = store.start_operation(run_id, change)
    assert store.load_recorded() == {"m-1": Recorded("m-1", MemberStatus.PENDING, ALICE, upn=ALICE.upn)}

    failed = Recorded(
        "m-1",
        MemberStatus.FAILED,
        ALICE,
        upn=ALICE_MOVED.upn,
        detail="phone number is held by another agent",
        attempts=1,
        next_attempt_at=1_764_203_600.5,
    )
    store.settle_operation(
        op_id, outcome=Outcome.FAILED, record=failed, http_status=400, error="phone number already in use"
    )
    assert store.load_recorded() == {"m-1": failed}
    (operation,) = store.operations(object_id="m-1")
    assert (operation.outcome, operation.http_status, operation.error) == (
        Outcome.FAILED,
        400,
        "phone number already in use",
    )
    assert (operation.desired, operation.believed) == (ALICE_MOVED, ALICE)


def test_settling_an_unknown_operation_changes_nothing(store: Store) -> None:
    store.save_members([Recorded("m-1", MemberStatus.ACTIVE, ALICE)])
    with pytest.raises(StoreError, match="no operation 99"):
        store.settle_operation(99, outcome=Outcome.OK, record=Recorded("m-1", MemberStatus.OFFBOARDED))
    assert store.load_recorded() == {"m-1": Recorded("m-1", MemberStatus.ACTIVE, ALICE)}


def test_operations_left_pending_by_a_crash_are_found_by_the_next_process(database: Database) -> None:
    with database.open() as first:
        first.upgrade()
        run_id = first.begin_run(trigger="schedule", kind="incremental", dry_run=False)
        onboarding = first.start_operation(run_id, onboard("m-1"))
        settled = first.start_operation(run_id, onboard("m-2", BOB))
        first.settle_operation(settled, outcome=Outcome.OK, record=Recorded("m-2", MemberStatus.ACTIVE, BOB))
        offboarding = first.start_operation(
            run_id, Change(Action.OFFBOARD, "m-3", desired=None, believed=ALICE_MOVED)
        )
        # The process dies here: neither the pending operations nor the run are ever settled.

    with database.open() as second:
        second.upgrade()
        assert second.pending_operations() == [
            PendingOperation(onboarding, run_id, "m-1", Action.ONBOARD, desired=ALICE, believed=None),
            PendingOperation(offboarding, run_id, "m-3", Action.OFFBOARD, desired=None, believed=ALICE_MOVED),
        ]
        assert [record.object_id for record in second.members_needing_attention()] == ["m-1", "m-3"]
        assert second.interrupt_running_runs() == 1


def test_operations_filter_by_member_and_run_newest_first(store: Store) -> None:
    first_run = store.begin_run(trigger="cli", kind="full", dry_run=False)
    second_run = store.begin_run(trigger="schedule", kind="incremental", dry_run=False)
    ids = {
        (run_id, object_id): store.start_operation(run_id, onboard(object_id))
        for run_id in (first_run, second_run)
        for object_id in ("m-1", "m-2", "m-3")
    }
    everything = sorted(ids.values(), reverse=True)
    assert [op.id for op in store.operations()] == everything
    assert [op.id for op in store.operations(limit=2)] == everything[:2]
    assert [op.id for op in store.operations(object_id="m-2")] == [
        ids[second_run, "m-2"],
        ids[first_run, "m-2"],
    ]
    assert [op.id for op in store.operations(run_id=first_run)] == [
        ids[first_run, "m-3"],
        ids[first_run, "m-2"],
        ids[first_run, "m-1"],
    ]
    assert [op.id for op in store.operations(object_id="m-1", run_id=second_run)] == [ids[second_run, "m-1"]]
    assert store.operations(object_id="nobody") == []


# key/value


def test_values_are_stored_replaced_and_set_together(store: Store) -> None:
    assert store.get_value("delta:group-1") is None
    store.set_value("delta:group-1", "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=abc")
    store.set_value("delta:group-1", "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=def")
    assert store.get_value("delta:group-1") == "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=def"

    long_value = "ü" * 100_000
    store.set_values({"count:group-1": "42", "count:group-2": "0", "delta:group-1": long_value})
    store.set_values({})
    assert store.get_value("count:group-1") == "42"
    assert store.get_value("count:group-2") == "0"
    assert store.get_value("delta:group-1") == long_value


# failures


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:SECRETPW@127.0.0.1:1/x",
        "postgresql+psycopg://u@127.0.0.1:1/x?password=SECRETPW",
    ],
)
def test_an_unreachable_database_is_a_store_error_that_hides_the_password(url: str) -> None:
    with Store(url) as store:
        assert "SECRETPW" not in repr(store)
        with pytest.raises(StoreError) as raised:
            store.upgrade()
        with pytest.raises(StoreError):
            store.load_recorded()
    message = str(raised.value)
    assert "SECRETPW" not in message
    assert "127.0.0.1:1/x" in message
    assert "***" in message
    assert raised.value.__cause__ is not None


def test_a_sqlite_file_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    with pytest.raises(StoreError, match="not-a-directory is not a folder"):
        Store(f"sqlite:///{tmp_path / 'not-a-directory' / 'syncd.db'}")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://u:SECRETPW@localhost/x", "unsupported database"),
        ("not a url:SECRETPW@", "invalid database URL"),
    ],
)
def test_unusable_urls_are_store_errors_that_hide_the_password(url: str, match: str) -> None:
    with pytest.raises(StoreError, match=match) as raised:
        Store(url)
    assert "SECRETPW" not in str(raised.value)


def test_a_database_newer_than_the_code_is_a_store_error(store: Store) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(
        UnusableDatabase, match=r"this database was written by a newer syncd \(revision 9999\)"
    ):
        store.upgrade()
    assert store.current_revision() == "9999"  # left as it was


# concurrency


def test_replicas_starting_together_migrate_once(database: Database) -> None:
    stores = [database.open() for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def start(store: Store) -> None:
        try:
            barrier.wait(timeout=10)
            store.upgrade()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(store,)) for store in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=50)
    finally:
        for store in stores:
            store.close()
    assert errors == []
    with database.open() as check:
        assert check.current_revision() == SCHEMA_HEAD


def test_two_stores_writing_from_two_threads_do_not_fail(database: Database) -> None:
    with database.open() as setup:
        setup.upgrade()
    stores = [database.open(), database.open()]
    errors: list[BaseException] = []
    rounds = 40

    def work(worker: int, store: Store) -> None:
        try:
            run_id = store.begin_run(trigger=f"worker-{worker}", kind="incremental", dry_run=False)
            for n in range(rounds):
                object_id = f"w{worker}-{n}"
                op_id = store.start_operation(run_id, onboard(object_id))
                store.settle_operation(
                    op_id, outcome=Outcome.OK, record=Recorded(object_id, MemberStatus.ACTIVE, ALICE)
                )
                store.save_members(
                    [Recorded(f"bulk-{worker}-{n}-{k}", MemberStatus.SKIPPED) for k in range(20)]
                )
                store.set_value(f"worker-{worker}", str(n))
                store.load_recorded()
            store.finish_run(run_id, outcome="ok", counts={"onboard": rounds})
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(worker, store)) for worker, store in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=50)
    finally:
        for store in stores:
            store.close()
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    with database.open() as check:
        counts = check.count_by_status()
        assert counts["active"] == 2 * rounds
        assert counts["skipped"] == 2 * rounds * 20
        assert [run.outcome for run in check.runs()] == ["ok", "ok"]
        assert check.get_value("worker-0") == check.get_value("worker-1") == str(rounds - 1)
        assert len(check.operations(limit=1000)) == 2 * rounds


def test_find_members_by_object_id_upn_or_number(database: Database) -> None:
    with database.open() as store:
        store.upgrade()
        store.save_members(
            [
                Recorded("a1", MemberStatus.ACTIVE, ALICE, upn="Alice.New@contoso.com"),
                Recorded("b2", MemberStatus.ACTIVE, BOB, upn=BOB.upn),
                Recorded("c3", MemberStatus.SKIPPED, None, upn="carol@contoso.com"),
            ]
        )
        assert [r.object_id for r, _ in store.find_members("A1")] == ["a1"]
        assert [r.object_id for r, _ in store.find_members("alice.new@CONTOSO.com")] == ["a1"]
        assert [r.object_id for r, _ in store.find_members("alice@contoso.com")] == ["a1"]  # the pushed UPN
        assert [r.object_id for r, _ in store.find_members(" +442071838750 ")] == ["b2"]
        assert [r.object_id for r, _ in store.find_members("carol@contoso.com")] == ["c3"]
        assert store.find_members("nobody@contoso.com") == []
        [(_, changed)] = store.find_members("b2")
        assert abs(changed - time.time()) < 60


# the audit history and its retention

DAY = 86_400.0


def age(store: Store, *, operations: Sequence[int] = (), runs: Sequence[int] = (), at: float) -> None:
    """Pretend rows were written at `at` (epoch seconds)."""
    when = datetime.fromtimestamp(at, UTC)
    o, r = tables.operations, tables.runs
    with store.engine.begin() as connection:
        if operations:
            connection.execute(update(o).where(o.c.id.in_(operations)).values(created_at=when))
        if runs:
            connection.execute(update(r).where(r.c.id.in_(runs)).values(started_at=when))


def settle(store: Store, op_id: int, object_id: str, outcome: Outcome = Outcome.OK, **extra: object) -> None:
    record = Recorded(object_id, MemberStatus.ACTIVE, ALICE, upn=ALICE.upn)
    store.settle_operation(op_id, outcome=outcome, record=record, **extra)  # type: ignore[arg-type]


def history_ids(store: Store, **filters: object) -> list[int]:
    return [entry.operation.id for entry in store.iter_operations(**filters)]  # type: ignore[arg-type]


def row_count(store: Store, table: str) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def test_0003_adds_the_history_indexes_and_keeps_the_rows(database: Database) -> None:
    url = database.url_with_search_path()
    migrations.main(["-x", f"url={url}", "upgrade", "0002"])
    with database.open() as store:
        # The runs and operations tables of 0002: plain INSERTs of their own columns (today's Store writes
        # more of them).
        with store.engine.begin() as connection:
            run_id = connection.execute(
                text(
                    "INSERT INTO runs (trigger, kind, dry_run, started_at, outcome, counts) "
                    "VALUES ('cli', 'incremental', false, CURRENT_TIMESTAMP, 'running', '{}') RETURNING id"
                )
            ).scalar_one()
            connection.execute(
                text(
                    "INSERT INTO operations (run_id, object_id, action, outcome, created_at) "
                    "VALUES (:run_id, 'm-1', 'onboard', 'pending', :now)"
                ),
                {"run_id": run_id, "now": datetime.now(UTC)},
            )
        migrations.main(["-x", f"url={url}", "upgrade", "0003"])
        assert store.current_revision() == "0003"
        with store.engine.connect() as connection:
            inspector = inspect(connection)
            operations = {
                index["name"]: index["column_names"] for index in inspector.get_indexes("operations")
            }
            runs = {index["name"]: index["column_names"] for index in inspector.get_indexes("runs")}
            assert operations["ix_operations_created_at"] == ["created_at"]
            assert runs["ix_runs_started_at"] == ["started_at"]
            assert list(connection.execute(text("SELECT object_id FROM operations")).scalars()) == ["m-1"]
    migrations.main(["-x", f"url={url}", "downgrade", "0002"])
    with database.open() as store, store.engine.connect() as connection:
        inspector = inspect(connection)
        assert "ix_operations_created_at" not in {
            index["name"] for index in inspector.get_indexes("operations")
        }
        assert "ix_runs_started_at" not in {index["name"] for index in inspector.get_indexes("runs")}
        assert store.current_revision() == "0002"
        assert connection.execute(text("SELECT count(*) FROM operations")).scalar_one() == 1


def test_the_history_filters_by_member_time_action_and_outcome_newest_first(store: Store) -> None:
    now = time.time()
    store.save_members([Recorded("m-3", MemberStatus.OFFBOARDED, None, upn="carol.now@contoso.com")])
    run_id = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    onboard_1 = store.start_operation(run_id, onboard("m-1"))
    settle(store, onboard_1, "m-1", http_status=201)
    onboard_2 = store.start_operation(run_id, onboard("m-2", BOB))
    settle(store, onboard_2, "m-2", Outcome.FAILED, http_status=400, error="TN is already registered")
    moved = Change(Action.UPDATE, "m-1", desired=ALICE_MOVED, believed=ALICE, fields=("phone_number", "upn"))
    update_1 = store.start_operation(run_id, moved)
    settle(store, update_1, "m-1", http_status=200)
    gone = Change(
        Action.OFFBOARD, "m-3", desired=None, believed=AgentFields(TENANT, "+14155550123", None, None)
    )
    offboard_3 = store.start_operation(run_id, gone)
    settle(store, offboard_3, "m-3", Outcome.ALREADY_GONE, http_status=404)
    pending_2 = store.start_operation(run_id, onboard("m-2", BOB))
    age(store, operations=[onboard_1, onboard_2], at=now - 10 * DAY)

    everything = [pending_2, offboard_3, update_1, onboard_2, onboard_1]
    assert history_ids(store) == everything
    assert history_ids(store, limit=2) == everything[:2]
    assert history_ids(store, limit=0) == []
    assert history_ids(store, object_ids=["m-1"]) == [update_1, onboard_1]
    assert history_ids(store, object_ids=["m-1", "m-3"]) == [offboard_3, update_1, onboard_1]
    assert history_ids(store, object_ids=[]) == []
    assert history_ids(store, since=now - DAY) == [pending_2, offboard_3, update_1]
    assert history_ids(store, since=now - 11 * DAY) == everything
    assert history_ids(store, actions={Action.ONBOARD}) == [pending_2, onboard_2, onboard_1]
    assert history_ids(store, actions={Action.UPDATE, Action.OFFBOARD}) == [offboard_3, update_1]
    assert history_ids(store, outcomes={Outcome.FAILED, Outcome.PENDING}) == [pending_2, onboard_2]
    assert history_ids(store, outcomes=set()) == []
    assert history_ids(
        store, object_ids=["m-2"], since=now - DAY, actions={Action.ONBOARD}, outcomes={Outcome.PENDING}
    ) == [pending_2]

    by_id = {entry.operation.id: entry for entry in store.iter_operations()}
    assert by_id[update_1].operation.desired == ALICE_MOVED
    assert by_id[update_1].operation.believed == ALICE
    assert by_id[onboard_2].operation.error == "TN is already registered"
    assert by_id[onboard_2].operation.http_status == 400
    assert by_id[pending_2].operation.outcome is Outcome.PENDING
    assert abs(by_id[onboard_1].operation.created_at - (now - 10 * DAY)) < 1
    # The member's UPN as last seen: settling m-3 recorded it from ALICE; never joined by name, by object ID.
    assert by_id[offboard_3] == HistoryEntry(by_id[offboard_3].operation, ALICE.upn)


def test_the_history_streams_page_by_page(database: Database, store: Store) -> None:
    run_id = store.begin_run(trigger="cli", kind="full", dry_run=False)
    now = datetime.now(UTC)
    rows = [
        {
            "run_id": run_id,
            "object_id": f"m-{n % 50}",
            "action": "onboard",
            "outcome": "ok" if n % 7 else "failed",
            "created_at": now,
        }
        for n in range(20_000)
    ]
    with store.engine.begin() as connection:
        connection.execute(insert(tables.operations), rows)

    ids = history_ids(store)
    assert len(ids) == 20_000
    assert ids == sorted(ids, reverse=True)
    assert history_ids(store, page_size=7, limit=30) == ids[:30]
    failed = history_ids(store, outcomes={Outcome.FAILED}, page_size=100)
    assert len(failed) == len([n for n in range(20_000) if n % 7 == 0])
    assert set(failed) < set(ids)

    # Each page is read when the previous one is used up: rows deleted meanwhile (by another process)
    # are not returned, so no page is read ahead and no transaction stays open between pages.
    stream = store.iter_operations(page_size=100)
    first_page = [next(stream).operation.id for _ in range(100)]
    assert first_page == ids[:100]
    with database.open() as other:
        other.prune_history(time.time() + 60, batch_size=5_000)
    assert list(stream) == []


def test_pruning_deletes_old_settled_operations_and_their_runs(store: Store) -> None:
    now = time.time()
    old_run = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    old_ops = [store.start_operation(old_run, onboard(f"old-{n}")) for n in range(7)]
    for n, op_id in enumerate(old_ops):
        settle(store, op_id, f"old-{n}", Outcome.FAILED if n % 2 else Outcome.OK)
    store.finish_run(old_run, outcome="ok", counts={"onboard_ok": 7})
    old_pending_run = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    old_pending = store.start_operation(old_pending_run, onboard("stuck"))
    store.finish_run(old_pending_run, outcome="interrupted", counts={})  # its process died mid-write
    old_empty_run = store.begin_run(trigger="cli", kind="incremental", dry_run=True)
    store.finish_run(old_empty_run, outcome="ok", counts={})
    old_running_run = store.begin_run(trigger="schedule", kind="full", dry_run=False)
    new_run = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    new_op = store.start_operation(new_run, onboard("new"))
    settle(store, new_op, "new")
    store.finish_run(new_run, outcome="ok", counts={"onboard_ok": 1})
    age(
        store,
        operations=[*old_ops, old_pending],
        runs=[old_run, old_pending_run, old_empty_run, old_running_run],
        at=now - 400 * DAY,
    )

    assert store.prune_history(now - 365 * DAY, batch_size=3) == (7, 2)

    assert history_ids(store) == [new_op, old_pending]
    assert sorted(run.id for run in store.runs()) == [old_pending_run, old_running_run, new_run]
    assert [op.id for op in store.pending_operations()] == [old_pending]
    assert store.prune_history(now - 365 * DAY) == (0, 0)  # nothing left to do
    # Members are current state, not history: pruning never touches them.
    assert {f"old-{n}" for n in range(7)} <= set(store.load_recorded())

    # Once settled, the old pending operation goes too, and then its run.
    settle(store, old_pending, "stuck")
    assert store.prune_history(now - 365 * DAY) == (1, 1)
    assert sorted(run.id for run in store.runs()) == [old_running_run, new_run]


def test_pruning_stops_between_batches_when_asked(store: Store) -> None:
    now = time.time()
    run_id = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    store.finish_run(run_id, outcome="ok", counts={})
    old = datetime.fromtimestamp(now - 9 * DAY, UTC)
    rows = [
        {"run_id": run_id, "object_id": f"m-{n}", "action": "update", "outcome": "ok", "created_at": old}
        for n in range(25)
    ]
    with store.engine.begin() as connection:
        connection.execute(insert(tables.operations), rows)
    age(store, runs=[run_id], at=now - 9 * DAY)
    asked: list[int] = []

    def stop_after_two_batches() -> bool:
        asked.append(1)
        return len(asked) > 2

    assert store.prune_history(now - DAY, batch_size=10, should_stop=stop_after_two_batches) == (20, 0)
    assert row_count(store, "operations") == 5
    assert store.prune_history(now - DAY, batch_size=10) == (5, 1)
    assert row_count(store, "operations") == row_count(store, "runs") == 0


def test_group_memberships_are_replaced_changed_and_read_in_batches(store: Store) -> None:
    edges = {(f"g{n % 3}", f"u{n}"): "user" for n in range(1200)} | {("g0", "g1"): "group"}
    assert store.replace_edges(dict(edges)) == 1201
    assert store.count_edges() == 1201
    found = store.memberships([f"u{n}" for n in range(1200)] + ["g1", "nobody"])
    assert len(found) == 1201
    assert found["u4"] == {"g1"}
    assert found["g1"] == {"g0"}
    store.apply_edge_changes([("g2", "u4", "user"), ("g0", "u0", "user")], [("g1", "u4"), ("g9", "u9")])
    assert store.memberships(["u4", "u0"]) == {"u4": {"g2"}, "u0": {"g0"}}
    store.remove_member_edges(["u4", "u5"])
    assert store.memberships(["u4", "u5", "u6"]) == {"u6": {"g0"}}
    # Only the difference is written; a member whose kind changed is replaced.
    edges[("g0", "u3")] = "group"
    del edges[("g0", "u0")]
    edges[("g", "x")] = "user"
    assert store.replace_edges(dict(edges)) == 1201
    assert store.count_edges() == 1201
    assert store.memberships(["u0", "x", "u3"]) == {"x": {"g"}, "u3": {"g0"}}
    assert store.replace_edges({("g", "y"): "user"}) == 1
    assert store.memberships(["x", "y"]) == {"y": {"g"}}


def test_the_users_of_a_tree_are_read_in_batches_of_groups(store: Store) -> None:
    tree = [f"g{n}" for n in range(1200)]  # more groups than one IN (...) takes
    edges = {(group, f"u{n % 700}"): "user" for n, group in enumerate(tree)}
    edges |= {("g0", "g1"): "group", ("g1", "g1199"): "group", ("g1199", "u0"): "user"}
    edges |= {("elsewhere", "x"): "user", ("elsewhere", "g0"): "group"}
    store.replace_edges(edges)
    assert store.users_in(tree) == {f"u{n}" for n in range(700)}  # each once; the nested groups left out
    assert store.users_in(["g1199"]) == {"u0", "u499"}
    assert store.users_in(["elsewhere"]) == {"x", "g0"}  # g0 is not nested in it: not a tree
    assert store.users_in([]) == set()


def test_the_users_of_groups_are_counted_once_each_and_up_to_a_cap(store: Store) -> None:
    edges = {(f"g{n % 3}", f"u{n % 250}"): "user" for n in range(600)}  # u0..u249, most in two groups
    edges |= {("g0", "g1"): "group", ("g2", "g9"): "group", ("elsewhere", "x"): "user"}
    store.replace_edges(edges)
    assert store.count_users_in(["g0", "g1", "g2"]) == 250  # groups are not users; each user once
    assert store.count_users_in(["g0"]) == len({f"u{n % 250}" for n in range(0, 600, 3)})
    assert store.count_users_in(["g0", "g1", "g2"], at_most=7) == 7
    assert store.count_users_in(["g0", "g1", "g2"], at_most=250) == 250
    assert store.count_users_in(["g0", "g1", "g2"], at_most=1000) == 250
    assert store.count_users_in(["elsewhere"], at_most=1) == 1
    assert store.count_users_in(["nothing"], at_most=5) == store.count_users_in(["g0"], at_most=0) == 0


def test_members_are_loaded_by_id_in_batches_and_failures_come_due(store: Store) -> None:
    now = time.time()
    store.save_members(
        [Recorded(f"m-{n}", MemberStatus.ACTIVE, ALICE) for n in range(700)]
        + [
            Recorded("f-due", MemberStatus.FAILED, None, attempts=1, next_attempt_at=now - 1),
            Recorded("f-later", MemberStatus.FAILED, None, attempts=1, next_attempt_at=now + 60),
            Recorded("f-now", MemberStatus.FAILED, None, attempts=1),
        ]
    )
    loaded = store.load_recorded([f"m-{n}" for n in range(0, 700, 2)] + ["unknown"])
    assert sorted(loaded) == sorted(f"m-{n}" for n in range(0, 700, 2))
    assert store.unsettled(now) == (["f-due", "f-now"], ["f-later"])
    store.save_members(
        [
            Recorded("s-1", MemberStatus.SKIPPED, None, skip_reason=SkipReason.NO_PHONE, detail="empty"),
            Recorded("s-2", MemberStatus.SKIPPED, None, skip_reason=SkipReason.NO_PHONE, detail="empty"),
            Recorded("s-3", MemberStatus.SKIPPED, None, skip_reason=SkipReason.DISABLED, detail="off"),
        ]
    )
    assert store.count_by_skip_reason() == {"disabled": 1, "no_phone": 2}
    store.set_values({"a": "1", "b": "2"})
    store.delete_values(["a", "missing"])
    assert store.get_value("a") is None
    assert store.get_value("b") == "2"
