"""`SCHEMA_HEAD`, the revision `Store` compares with plain SQL before it loads Alembic: it is the scripts'
head, a current database is opened without Alembic, and a database behind it is still migrated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from syncd.store import Store
from syncd.store.repository import migrations_directory
from syncd.store.schema import SCHEMA_HEAD, alembic_config, stamped_revisions


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
