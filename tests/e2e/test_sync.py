"""`syncd sync` and `syncd status` as a user runs them, against both emulators over HTTPS.

Each test asserts what SmartCommunicator received (the emulator's request log and agents), the exit code,
and what the command printed. What a cycle decides (adoption, conflicts, guards, --user, drift, lost answers,
...) is tested in-process in tests/cycle/test_sync.py; here stay the command line's own surface (exit codes,
printed output, configuration errors, secrets, kill -9) and one case per feature through the real command.
Every test runs twice: with SQLite and with PostgreSQL as `database.url` (a
schema of its own; skipped unless SYNCD_TEST_POSTGRES_URL is set, see tests/postgres.py).
"""

from __future__ import annotations

import json
import re
import signal

import pytest

from syncd.emulators.graph import DEFAULT_CLIENT_SECRET
from syncd.emulators.smartcomm import DEFAULT_PASSWORD
from syncd.store.schema import SCHEMA_HEAD
from tests.e2e.conftest import CONCURRENCY, World
from tests.e2e.test_daemon import wait_for

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides tests/e2e/conftest.py's: every test here runs on both databases."""
    return str(request.param)


def seed(world: World, count: int = 5) -> list[str]:
    return [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(count)]


def test_deletion_guard_stops_and_force_proceeds(world: World) -> None:
    ids = seed(world, 12)
    assert world.run("sync").code == 0
    for oid in ids[:11]:
        world.graph.remove_member(world.group, oid)
    world.smartcomm.clear_requests()
    stopped = world.run("sync")
    assert stopped.code == 3
    assert "max_offboard" in stopped.stdout
    assert world.writes() == []
    assert len(world.agents()) == 12
    forced = world.run("sync", "--force", "--json")
    assert forced.code == 0
    assert [m for m, _, _ in world.writes()].count("DELETE") == 11
    assert list(world.agents()) == [ids[11]]


def test_sync_sets_up_the_collector_for_a_large_cycle(world: World) -> None:
    """`syncd sync` freezes its import-time objects out of the collector's walks before its cycle
    (syncd.cycle.collector), and still converges."""
    ids = seed(world, 3)
    result = world.run("sync", env={"SYNCD_LOG__LEVEL": "debug", "SYNCD_LOG__FORMAT": "json"})
    assert result.code == 0, result.stderr
    tuned = [
        json.loads(line)
        for line in (result.stdout + result.stderr).splitlines()
        if '"process.collector_tuned"' in line
    ]
    assert len(tuned) == 1
    assert tuned[0]["frozen"] > 10_000  # the imports: msgraph-sdk, SQLAlchemy, pydantic, ...
    assert sorted(world.agents()) == sorted(ids)


def test_dry_run_reads_both_sides_and_writes_nothing(world: World) -> None:
    ids = seed(world, 3)
    result = world.run("sync", "--dry-run")
    assert result.code == 0, result.stderr
    assert world.writes() == []
    assert world.agents() == {}
    for oid in ids:
        assert f"+ onboard  {oid}" in result.stdout
    full = world.run("sync", "--dry-run", "--full", "--json")
    assert full.json()["planned"] == {"onboard": 3, "update": 0, "offboard": 0, "relink": 0}
    assert any(r.method == "GET" for r in world.smartcomm.requests)
    assert world.writes() == []


def test_bad_config_exits_2_naming_the_key(world: World) -> None:
    text = world.config.read_text().replace("customer_id = 12345", 'customer_id = "twelve"')
    world.config.write_text(text)
    result = world.run("sync")
    assert result.code == 2
    assert "smartcomm.customer_id" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_config_file_exits_2(world: World) -> None:
    world.config.unlink()
    result = world.run("sync")
    assert result.code == 2
    assert "Traceback" not in result.stderr


def test_kill_mid_apply_then_rerun_converges_without_duplicates(world: World) -> None:
    ids = seed(world, 16)
    world.hold_writes("POST")  # the first 4 onboardings are applied, their answers held back
    process = world.start("sync")
    wait_for(lambda: world.held("POST") == CONCURRENCY, what="the first writes")
    process.send_signal(signal.SIGKILL)  # with 4 writes applied and unanswered, and 12 never sent
    process.communicate(timeout=10)
    assert len(world.agents()) == CONCURRENCY
    result = world.run("sync", "--json")
    assert result.code == 0, result.stderr
    assert sorted(world.agents()) == sorted(ids)
    applied_posts = [
        r.body["user_object_id"]
        for r in world.smartcomm.requests  # type: ignore[index]
        if r.method == "POST" and r.path.endswith("/agents") and r.applied
    ]
    assert len(applied_posts) == len(set(applied_posts)) == 16  # nobody onboarded twice
    assert world.run("status", "--json").json()["runs"][1]["outcome"] == "interrupted"  # type: ignore[index]


def test_secrets_never_reach_the_output(world: World) -> None:
    seed(world, 2)
    world.smartcomm.add_agent(
        user_object_id="e2f19e0a-0490-41f4-8509-44a3390ae0b6", tenant_id=TENANT, phone_number="+14155550001"
    )
    outputs = [
        world.run("sync", env={"SYNCD_LOG__LEVEL": "debug"}),
        world.run("sync", "--json"),
        world.run("status"),
        world.run("sync", "--dry-run", "--full"),
    ]
    wrong = world.config.read_text().replace(DEFAULT_PASSWORD, "not-the-password-42")
    world.config.write_text(wrong)
    outputs.append(world.run("sync", env={"SYNCD_LOG__LEVEL": "debug"}))
    text = "".join(r.stdout + r.stderr for r in outputs)
    assert DEFAULT_CLIENT_SECRET not in text
    assert DEFAULT_PASSWORD not in text
    assert "not-the-password-42" not in text
    assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.", text), "a JWT reached the output"
    assert outputs[-1].code == 2  # wrong credentials are a configuration error
    assert "smartcomm.password" in outputs[-1].stdout + outputs[-1].stderr


def test_status_shows_runs_and_counts(world: World) -> None:
    seed(world, 2)
    world.add_user("bad", "n/a")
    world.run("sync")
    result = world.run("status")
    assert result.code == 0
    assert "Last runs:" in result.stdout
    assert "active 2" in result.stdout
    assert "skipped 1" in result.stdout
    report = world.run("status", "--json").json()
    assert report["members"] == {"active": 2, "skipped": 1}
    assert report["runs"][0]["outcome"] == "ok"  # type: ignore[index]


def test_db_upgrade(world: World) -> None:
    result = world.run("db", "upgrade")
    assert result.code == 0, result.stderr
    assert f"database at revision {SCHEMA_HEAD}" in result.stdout


def test_a_missing_section_is_a_configuration_error_for_run_and_sync(world: World) -> None:
    text = world.config.read_text()
    world.config.write_text(text[: text.index("[smartcomm]")] + text[text.index("[sync]") :])
    for command in ("sync", "run"):
        result = world.run(command, timeout=30)
        assert result.code == 2, (command, result.stderr)
        assert "smartcomm" in result.stderr
