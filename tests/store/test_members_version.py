"""The members table's change counter (`Store.members_version`, migration 0010's triggers), on both backends:
it moves on with every committed change of member rows, whoever makes it, and with nothing else; a daemon
keeps the records it loaded on the strength of it (`Engine._load_recorded`)."""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy import text

import migrations
from syncd.core.model import AgentFields, MemberStatus, Recorded
from syncd.store import Store
from tests import postgres
from tests.store.conftest import Database

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"


def record(object_id: str, phone: str = "+14155550100") -> Recorded:
    agent = AgentFields(TENANT, phone, f"{object_id}@contoso.com", None)
    return Recorded(object_id, MemberStatus.ACTIVE, agent, upn=agent.upn)


def test_the_counter_moves_with_each_committed_change_of_members_and_nothing_else(store: Store) -> None:
    start = store.members_version()
    store.save_members([record("a"), record("b")])
    saved = store.members_version()
    assert saved > start
    # Reads, and writes to other tables, leave it.
    store.load_recorded()
    store.set_value("k", "v")
    store.replace_edges({("g", "a"): "user"})
    assert store.members_version() == saved
    # Any writer's SQL moves it: update, delete, insert.
    for statement in (
        "UPDATE members SET upn = 'renamed' WHERE object_id = 'a'",
        "DELETE FROM members WHERE object_id = 'b'",
    ):
        before = store.members_version()
        with store.engine.begin() as connection:
            connection.execute(text(statement))
        assert store.members_version() > before, statement
    before = store.members_version()
    store.save_members([record("c")])
    assert store.members_version() > before
    # An UPDATE that matches no row changes nothing, and a rolled back change is no change.
    before = store.members_version()
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE members SET upn = 'x' WHERE object_id = 'nobody'"))
    with store.engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("DELETE FROM members"))
        transaction.rollback()
    assert store.members_version() == before
    assert sorted(store.load_recorded()) == ["a", "c"]


def test_postgresql_moves_it_once_per_transaction_and_for_any_search_path() -> None:
    with postgres.fresh_schema() as (schema, url):
        database = Database(
            "postgresql", url, connect_args={"options": f"-csearch_path={schema}"}, schema=schema
        )
        _once_per_transaction(database)


def _once_per_transaction(database: Database) -> None:
    with database.open() as store:
        store.upgrade()
        before = store.members_version()
        with store.engine.begin() as connection:  # many rows, several statements, one transaction
            for number in range(3):
                store_rows = [{"id": f"p{number}-{i}"} for i in range(50)]
                connection.execute(
                    text(
                        "INSERT INTO members (object_id, status, agent_active, attempts, updated_at) "
                        "VALUES (:id, 'skipped', false, 0, now())"
                    ),
                    store_rows,
                )
        assert store.members_version() == before + 1
        # An administrator's session with the default search_path, naming the schema.
        assert database.schema is not None
        libpq = database.url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(libpq) as admin:
            admin.execute(
                sql.SQL("UPDATE {} SET upn = 'x' WHERE object_id = 'p0-0'").format(
                    sql.Identifier(database.schema, "members")
                )
            )
        assert store.members_version() == before + 2
        with store.engine.begin() as connection:
            connection.execute(text("TRUNCATE members"))
        assert store.members_version() == before + 3
        assert store.load_recorded() == {}


def test_the_migration_goes_down_and_up_again(database: Database) -> None:
    url = database.url_with_search_path()
    migrations.main(["-x", f"url={url}", "upgrade", "head"])
    migrations.main(["-x", f"url={url}", "downgrade", "0009"])
    with database.open() as store, store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM members")).scalar_one() == 0
    migrations.main(["-x", f"url={url}", "upgrade", "head"])
    with database.open() as store:
        store.save_members([record("a")])
        assert store.members_version() == 1
