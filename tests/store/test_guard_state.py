"""What the safety guards keep in the store, on SQLite and PostgreSQL: the settings a run found changed
(`runs.settings_changed`, migration 0005) and the count of managed agents a percentage limit is of."""

from __future__ import annotations

from sqlalchemy import inspect

import migrations
from syncd.core.model import AgentFields, MemberStatus, Recorded
from syncd.core.setting_changes import SettingChange
from syncd.store import Store
from tests.store.conftest import Database

TENANT = "0b5c4a8e-3f0e-4c11-9a43-6a2d8a2f1c77"
REGION = SettingChange("graph.default_region", "NO", "DK")
SOURCES = SettingChange("graph.phone_source", ["businessPhones"], ["teams", "businessPhones"])


def agent(number: str) -> AgentFields:
    return AgentFields(TENANT, number, None, None)


def test_a_run_keeps_the_settings_it_found_changed(store: Store) -> None:
    changed = store.begin_run(trigger="cli", kind="full", dry_run=False)
    store.finish_run(changed, outcome="guard", counts={}, settings_changed=(REGION, SOURCES))
    quiet = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    store.finish_run(quiet, outcome="ok", counts={})
    by_id = {run.id: run for run in store.runs()}
    assert by_id[changed].settings_changed == (REGION, SOURCES)
    assert by_id[quiet].settings_changed == ()


def test_managed_agents_are_the_members_with_an_agent_whatever_their_last_attempt(store: Store) -> None:
    assert store.count_managed_agents() == 0
    store.save_members(
        [
            Recorded("active", MemberStatus.ACTIVE, agent("+4722000001")),
            Recorded("failed-update", MemberStatus.FAILED, agent("+4722000002"), attempts=1),
            Recorded("failed-onboard", MemberStatus.FAILED, None, attempts=1),
            Recorded("skipped", MemberStatus.SKIPPED, None),
            Recorded("gone", MemberStatus.OFFBOARDED, None),
        ]
    )
    assert store.count_managed_agents() == 2


def test_0006_adds_runs_settings_changed_and_keeps_the_runs(database: Database) -> None:
    url = database.url_with_search_path()
    migrations.main(["-x", f"url={url}", "upgrade", "0005"])
    with database.open() as store:
        old = store.begin_run(trigger="cli", kind="incremental", dry_run=False)
        with store.engine.connect() as connection:
            assert "settings_changed" not in {c["name"] for c in inspect(connection).get_columns("runs")}
        migrations.main(["-x", f"url={url}", "upgrade", "0006"])
        assert store.current_revision() == "0006"
        (run,) = store.runs()
        assert (run.id, run.outcome, run.settings_changed) == (old, "running", ())
        store.finish_run(old, outcome="ok", counts={}, settings_changed=(REGION,))
        assert store.runs()[0].settings_changed == (REGION,)
    migrations.main(["-x", f"url={url}", "downgrade", "0005"])
    with database.open() as store, store.engine.connect() as connection:
        assert "settings_changed" not in {c["name"] for c in inspect(connection).get_columns("runs")}
        assert store.current_revision() == "0005"
