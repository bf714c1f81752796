"""The database's files through the real `syncd` command: read-only commands on a read-only database (they
never migrate: a schema behind is exit 2), a database written by a newer syncd (exit 2), a missing folder
(exit 2, nothing created), and the emulators' state files (owner-only)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import migrations
from syncd.emulators.server import TestCA
from syncd.store import Store
from tests.e2e.conftest import Result, World, clean_env

NO_FILE_OVERRIDE = "-dac_override,-dac_read_search,-fowner,-linux_immutable"
"""Capabilities root drops so that file modes apply to it as to its files' owner."""


def bound_by_modes() -> list[str]:
    """A command prefix so that file modes bind the process: as root (the suite's CI), it runs without the
    capabilities that let root write a read-only file or folder."""
    if os.geteuid() != 0:
        return []
    assert shutil.which("setpriv"), "setpriv (util-linux) drops root's file capabilities"
    return ["setpriv", f"--bounding-set={NO_FILE_OVERRIDE}"]


def run_bound_by_modes(world: World, *args: str) -> Result:
    """`syncd` as a process that file modes bind."""
    process = subprocess.run(
        [*bound_by_modes(), sys.executable, "-m", "syncd", "--config", str(world.config), *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=clean_env(None),
        cwd=world.config.parent,
    )
    return Result(process.returncode, process.stdout, process.stderr)


def database_of(world: World) -> Path:
    return world.config.parent / "syncd.db"


def revision(database: Path) -> str:
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    connection.close()
    return str(row[0])


@pytest.fixture
def read_only_folder(world: World) -> Iterator[Path]:
    """The world's folder (config, database) made read-only once the test has synced; writable again after."""
    folder = world.config.parent
    yield folder
    folder.chmod(0o700)
    for path in folder.iterdir():
        path.chmod(0o600)


def test_read_only_commands_work_on_a_read_only_database(world: World, read_only_folder: Path) -> None:
    ada = world.add_user("ada", "+1 415 555 0100")
    assert world.run("sync").code == 0
    database = database_of(world)
    database.chmod(0o400)
    read_only_folder.chmod(0o500)
    assert not database.with_name("syncd.db-shm").exists()  # nobody has it open: no -shm to read through
    before = sorted(path.name for path in read_only_folder.iterdir())

    status = run_bound_by_modes(world, "status")
    assert status.code == 0, status.stderr
    assert "Members: active 1" in status.stdout
    history = run_bound_by_modes(world, "history")
    assert history.code == 0, history.stderr
    assert ada in history.stdout
    explain = run_bound_by_modes(world, "explain", "ada@contoso.com")
    assert explain.code == 0, explain.stderr
    assert "  status            active" in explain.stdout
    assert sorted(path.name for path in read_only_folder.iterdir()) == before
    # Modes bind such a process (the test would prove nothing otherwise).
    probe = [*bound_by_modes(), sys.executable, "-c", f"open({str(database)!r}, 'r+b')"]
    refused = subprocess.run(probe, capture_output=True, text=True, check=False)
    assert "PermissionError" in refused.stderr


def test_a_read_only_command_on_a_schema_behind_says_so_and_does_not_migrate(world: World) -> None:
    database = database_of(world)
    migrations.main(["-x", f"url=sqlite:///{database}", "upgrade", "0003"])
    result = world.run("history")
    assert result.code == 2, result.stderr
    assert "the database's schema is at revision 0003, behind this syncd's 0005" in result.stderr
    assert "run `syncd db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr
    assert revision(database) == "0003"


def test_a_database_written_by_a_newer_syncd_is_exit_2(world: World) -> None:
    database = database_of(world)
    with Store(f"sqlite:///{database}") as store:
        store.upgrade()
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00dcafe1234'")
    connection.close()
    for command in (["db", "upgrade"], ["status"]):  # the commands that migrate, and those that only read
        result = world.run(*command)
        assert result.code == 2, (command, result.stderr)
        assert (
            "this database was written by a newer syncd (revision f00dcafe1234); upgrade syncd\n"
            in result.stderr
        )
        assert "Traceback" not in result.stderr
        assert "Can't locate revision" not in result.stderr
    assert revision(database) == "f00dcafe1234"


def test_a_missing_database_folder_is_exit_2_and_is_not_created(world: World) -> None:
    missing = world.config.parent / "nonexistent" / "dir"
    url = f"sqlite:///{missing / 'x.db'}"
    for command in (["sync"], ["status"]):
        result = world.run(*command, env={"SYNCD_DATABASE__URL": url})
        assert result.code == 2, (command, result.stderr)
        assert f"database.url = {url}: the folder {missing} does not exist" in result.stderr
    assert not missing.parent.exists()


def test_the_emulators_state_files_are_owner_only(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "state")
    certfile, keyfile = ca.server_cert_files()
    files = (ca.ca_path, certfile, keyfile)
    assert {path.name for path in files} == {"ca.pem", "server-1.pem", "server-1.key"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
