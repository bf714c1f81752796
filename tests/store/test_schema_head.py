"""`SCHEMA_HEAD`, the revision `Store` compares with plain SQL before it loads Alembic: it is the scripts'
head, a current database is opened without Alembic, and a database behind it is still migrated. A reading
command (`syncd status`) loads no Alembic either on a database never created."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from syncd.store import Store
from syncd.store.repository import migrations_directory
from syncd.store.schema import SCHEMA_HEAD, alembic_config, stamped_revisions
from tests.store.conftest import Database


def test_schema_head_is_the_newest_migration() -> None:
    script = ScriptDirectory.from_config(alembic_config(str(migrations_directory())))
    assert script.get_current_head() == SCHEMA_HEAD


def test_a_current_database_is_opened_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    with Store(url) as store:
        store.upgrade()
    probe = (
        "import sys\n"
        "from syncd.store import Store\n"
        f"store = Store({url!r})\n"
        "store.upgrade()\n"
        "store.close()\n"
        "read = Store(" + repr(url) + ", read_only=True)\n"
        "read.check_schema()\n"
        "read.close()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_database_behind_the_head_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    engine = create_engine(url)
    config = alembic_config(str(migrations_directory()))
    previous = ScriptDirectory.from_config(config).get_revision(SCHEMA_HEAD).down_revision
    assert isinstance(previous, str)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, previous)
    with engine.connect() as connection:
        assert stamped_revisions(connection) == (previous,)
    with Store(url) as store:
        store.upgrade()
        assert store.current_revision() == SCHEMA_HEAD
    engine.dispose()


# `syncd status` in a fresh interpreter; reports on its last stderr line the exit code and the loaded modules
# of Alembic and of SQLAlchemy's dialects.
STATUS_PROBE = """
import json, sys
from syncd.cli.main import main
code = main(["--config", "", "status"])
sys.stdout.flush()
alembic = [m for m in sys.modules if m.split(".")[0] in ("alembic", "mako")]
loaded = alembic + [m for m in sys.modules if m.startswith("sqlalchemy.dialects.")]
print(json.dumps({"code": code, "loaded": sorted(loaded)}), file=sys.stderr)
"""


@pytest.mark.parametrize("state", ["never created", "migrated"])
def test_status_loads_no_alembic_and_only_its_own_dialect(database: Database, state: str) -> None:
    """On a database never created (an empty one made from the tables stands in; nothing is created where
    the URL points) and on one at SCHEMA_HEAD, `syncd status` prints the empty status without Alembic, and
    loads no SQLAlchemy dialect it does not use (on SQLite, not PostgreSQL's)."""
    if state == "migrated":
        with database.open() as store:
            store.upgrade()
    done = subprocess.run(
        [sys.executable, "-c", STATUS_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYNCD_DATABASE__URL": database.url_with_search_path(), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    assert done.stdout.splitlines()[0] == "Last runs:"
    assert done.stdout.splitlines()[2:] == ["Members: ", "Needing attention: 0"]
    assert [name for name in report["loaded"] if not name.startswith("sqlalchemy.")] == []
    dialects = {name.split(".")[2] for name in report["loaded"] if name.startswith("sqlalchemy.")}
    # An empty database stands in as SQLite in memory, whatever the backend.
    expected = {database.backend} | ({"sqlite"} if state == "never created" else set())
    assert dialects - {"_typing"} == expected
    if database.path is not None:
        assert database.path.exists() == (state == "migrated")
    else:
        with database.open() as store, store.engine.connect() as connection:
            assert (stamped_revisions(connection) == (SCHEMA_HEAD,)) == (state == "migrated")
