"""The store's files and locks: the folder it may create, owner-only files, the migration lock (one key per
schema, never the leader's; a bounded wait, whatever path spells the database), and read-only stores, which
never migrate nor write."""

from __future__ import annotations

import fcntl
import stat
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect

import migrations
from syncd.service.leader import lock_key
from syncd.store import Store, StoreError, UnusableDatabase
from syncd.store.repository import migration_lock_key
from tests import postgres
from tests.store.conftest import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def schema_of(database: Database) -> str:
    assert database.schema is not None
    return database.schema


# folders and modes


def test_a_missing_folder_is_refused_naming_database_url_and_is_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    url = f"sqlite:///{missing / 'x.db'}"
    with pytest.raises(UnusableDatabase) as refused:
        Store(url)
    assert str(refused.value).startswith(f"database.url = {url}: the folder {missing} does not exist")
    assert not missing.parent.exists()


def test_only_the_default_data_folder_is_created_and_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Store("sqlite:///data/syncd.db") as store:  # the default database.url
        store.upgrade()
    assert mode(tmp_path / "data") == 0o700
    with pytest.raises(UnusableDatabase, match=r"the folder .*/other does not exist"):
        Store("sqlite:///other/syncd.db")


def test_the_database_its_wal_and_shm_files_and_its_migration_lock_are_owner_only(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'syncd.db'}") as store:
        store.upgrade()
        store.set_value("k", "v")  # the pooled connection stays open: the -wal and -shm files exist
        assert {path.name: mode(path) for path in tmp_path.iterdir()} == dict.fromkeys(
            ["syncd.db", "syncd.db-wal", "syncd.db-shm", "syncd.db.migrate-lock"], 0o600
        )


# the migration lock


def test_migration_lock_keys_are_per_schema_and_never_a_leaders_key() -> None:
    schemas = ["public", "syncd", "syncd_test_0123456789ab", "tenant-b"]
    migration_keys = {migration_lock_key(schema) for schema in schemas}
    assert len(migration_keys) == len(schemas)
    assert migration_keys.isdisjoint({lock_key(schema) for schema in schemas})
    assert all(0 <= key < 2**62 for key in migration_keys)


def test_upgrade_waits_for_another_migration_at_most_its_timeout(database: Database) -> None:
    with database.open() as store:
        if database.backend == "sqlite":
            assert database.path is not None
            # Held through a symlink's target: any spelling of the path finds the same lock.
            link = database.path.with_name("link.db")
            link.symlink_to(database.path)
            holder = (database.path.parent / "syncd.db.migrate-lock").open("a+")
            fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
            waiting = Store(f"sqlite:///{link}")
            expected = "waiting for the migration lock .*syncd.db.migrate-lock"
        else:
            holder = psycopg.connect(libpq(database.url))  # a transaction stays open: the xact lock is held
            holder.execute("SELECT pg_advisory_xact_lock(%s)", [migration_lock_key(schema_of(database))])
            waiting = database.open()
            expected = f"waiting for the migration lock of schema {schema_of(database)}"
        try:
            began = time.monotonic()
            with pytest.raises(StoreError, match=f"timed out after 0.5 s {expected}"):
                waiting.upgrade(timeout_s=0.5)
            assert time.monotonic() - began < 5
        finally:
            holder.close()
            waiting.close()
        store.upgrade()  # the lock released: it migrates
        assert store.current_revision() == "0005"


def test_migrating_never_waits_for_a_leaders_lock() -> None:
    with postgres.fresh_schema() as (schema, server_url):
        holder = psycopg.connect(libpq(server_url), autocommit=True)
        errors: list[BaseException] = []
        try:
            # The leader's lock of this schema, and of `public` (the key migrations took in every schema).
            for locked in (schema, "public"):
                holder.execute("SELECT pg_advisory_lock(%s)", [lock_key(locked)])

            def migrate() -> None:
                try:
                    with Store(postgres.url_with_search_path(server_url, schema)) as store:
                        store.upgrade()
                except BaseException as exc:  # reported by the test's thread
                    errors.append(exc)

            thread = threading.Thread(target=migrate, daemon=True)
            thread.start()
            thread.join(timeout=15)
            assert not thread.is_alive(), "migrating waited for a leader's lock"
        finally:
            holder.close()  # the locks go with the session: an old build's migration ends too
        assert errors == []


# read-only stores


def test_a_read_only_store_never_migrates_and_says_what_to_do(database: Database) -> None:
    migrations.main(["-x", f"url={database.url_with_search_path()}", "upgrade", "0003"])
    with Store(database.url, connect_args=database.connect_args, read_only=True) as reader:
        with pytest.raises(UnusableDatabase) as behind:
            reader.check_schema()
        assert "the database's schema is at revision 0003, behind this syncd's 0005" in str(behind.value)
        assert "`syncd db upgrade`" in str(behind.value)
        with pytest.raises(StoreError, match="open read-only: it is never migrated"):
            reader.upgrade()
        assert reader.current_revision() == "0003"
    with database.open() as store:
        store.upgrade()
        store.set_value("k", "v")
        with store.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with Store(database.url, connect_args=database.connect_args, read_only=True) as reader:
        newer = "this database was written by a newer syncd \\(revision 9999\\); upgrade syncd"
        with pytest.raises(UnusableDatabase, match=newer):
            reader.check_schema()


def test_a_read_only_store_reads_and_refuses_to_write(database: Database) -> None:
    with database.open() as store:
        store.upgrade()
        store.set_value("k", "v")
    with Store(database.url, connect_args=database.connect_args, read_only=True) as reader:
        reader.check_schema()
        assert reader.get_value("k") == "v"
        with pytest.raises(StoreError):
            reader.set_value("k", "w")
        assert reader.get_value("k") == "v"


def test_a_database_never_created_reads_as_empty_and_is_not_created(database: Database) -> None:
    with Store(database.url, connect_args=database.connect_args, read_only=True) as reader:
        reader.check_schema()
        assert reader.runs() == []
        assert reader.count_by_status() == {}
    if database.path is not None:
        assert not database.path.exists()
    else:
        with psycopg.connect(libpq(postgres.require_url())) as connection:
            found = connection.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [database.schema]
            ).fetchone()
        assert found == (0,)


def test_a_read_only_sqlite_store_takes_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "syncd.db"
    with Store(f"sqlite:///{path}") as store:
        store.upgrade()
    (tmp_path / "syncd.db.migrate-lock").unlink()
    with Store(f"sqlite:///{path}", read_only=True) as reader:
        reader.check_schema()
        with reader.engine.connect() as connection:
            assert "members" in inspect(connection).get_table_names()
    # SQLite's own -wal and -shm files may appear (a WAL reader makes them where it may), owner-only.
    assert {p.name: mode(p) for p in tmp_path.iterdir() if "lock" in p.name or p.name == "syncd.db"} == {
        "syncd.db": 0o600
    }
    assert all(mode(p) == 0o600 for p in tmp_path.iterdir())
