"""`syncd sync` and `syncd status` as a user runs them, against both emulators over HTTPS.

Each test asserts what SmartCommunicator received (the emulator's request log and agents), the exit code,
and what the command printed. Every test runs twice: with SQLite and with PostgreSQL as `database.url` (a
schema of its own; skipped unless SYNCD_TEST_POSTGRES_URL is set, see tests/postgres.py).
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from syncd.emulators.graph import DEFAULT_CLIENT_SECRET
from syncd.emulators.smartcomm import DEFAULT_PASSWORD, Faults
from tests.e2e.conftest import World

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides tests/e2e/conftest.py's: every test here runs on both databases."""
    return str(request.param)


def seed(world: World, count: int = 5) -> list[str]:
    return [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(count)]


def test_initial_sync_onboards_everyone_in_scope(world: World) -> None:
    ids = seed(world, 5)
    world.add_user("nophone", "")
    result = world.run("sync", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["planned"] == {"onboard": 5, "update": 0, "offboard": 0}
    assert report["outcomes"] == {"onboard": {"ok": 5}}
    assert report["skipped"] == {"no_phone": 1}
    assert sorted(world.agents()) == sorted(ids)
    assert world.agents()[ids[3]] == ("+14155550003", "user3@contoso.com")
    posts = world.writes()
    assert sorted(body["user_object_id"] for _, _, body in posts) == sorted(ids)  # type: ignore[index]
    assert all(body["tenant_id"] == TENANT for _, _, body in posts)  # type: ignore[index]


def test_second_sync_sends_exactly_the_changes_and_a_third_sends_nothing(world: World) -> None:
    ids = seed(world, 5)
    assert world.run("sync").code == 0
    world.smartcomm.clear_requests()

    newcomer = world.add_user("newcomer", "+1 415 555 0100")
    world.graph.remove_member(world.group, ids[0])
    world.graph.update_user(ids[1], business_phones=["+1 415 555 0199"])
    world.graph.update_user(ids[2], upn="renamed@contoso.com")
    result = world.run("sync", "--json")
    assert result.code == 0, result.stderr
    assert sorted(world.writes(), key=str) == sorted(
        [
            (
                "POST",
                "/",
                {
                    "user_object_id": newcomer,
                    "tenant_id": TENANT,
                    "phone_number": "+14155550100",
                    "upn": "newcomer@contoso.com",
                },
            ),
            ("DELETE", f"/{ids[0]}", None),
            ("PATCH", f"/{ids[1]}", {"phone_number": "+14155550199"}),
            ("PATCH", f"/{ids[2]}", {"upn": "renamed@contoso.com"}),
        ],
        key=str,
    )

    world.smartcomm.clear_requests()
    world.graph.clear_requests()
    third = world.run("sync", "--json")
    assert third.code == 0
    assert world.writes() == []
    # Graph reported no change since the second cycle: nobody was compared, nothing read but the deltas.
    assert third.json()["graph_read"] == "delta"
    assert third.json()["unchanged"] == 0
    assert not [r for r in world.graph.requests if "transitiveMembers" in r.path]


def test_an_existing_agent_is_adopted_not_duplicated(world: World) -> None:
    [oid] = seed(world, 1)
    world.smartcomm.add_agent(
        user_object_id=oid, tenant_id=TENANT, phone_number="+14155550000", upn="old@x.com"
    )
    result = world.run("sync", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["outcomes"] == {"onboard": {"adopted": 1}}
    assert [m for m, _, _ in world.writes()] == ["POST", "PATCH"]
    assert world.writes()[1][2] == {"upn": "user0@contoso.com"}
    assert world.agents() == {oid: ("+14155550000", "user0@contoso.com")}


def test_a_number_conflict_fails_only_that_user(world: World) -> None:
    ids = seed(world, 3)
    world.smartcomm.add_agent(
        user_object_id="e2f19e0a-0490-41f4-8509-44a3390ae0b6", tenant_id=TENANT, phone_number="+14155550001"
    )
    result = world.run("sync", "--json")
    assert result.code == 1
    report = result.json()
    assert report["outcomes"] == {"onboard": {"failed": 1, "ok": 2}}
    [failure] = report["failures"]  # type: ignore[misc]
    assert failure["object_id"] == ids[1]
    assert failure["category"] == "conflict"
    assert "TN is already registered with a different Azure Object ID" in failure["error"]
    assert {ids[0], ids[2]} <= set(world.agents())
    status = world.run("status")
    assert status.code == 0
    assert ids[1] in status.stdout
    assert "TN is already registered with a different Azure Object ID" in status.stdout
    # The conflicted user waits for the backoff: the next cycle does not hammer the API.
    world.smartcomm.clear_requests()
    again = world.run("sync", "--json")
    assert again.json()["deferred"] == 1
    assert world.writes() == []


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


def test_a_group_that_reads_empty_stops_the_cycle(world: World) -> None:
    ids = seed(world, 2)
    assert world.run("sync").code == 0
    for oid in ids:
        world.graph.remove_member(world.group, oid)
    world.smartcomm.clear_requests()
    result = world.run("sync", "--json")
    assert result.code == 3
    assert result.json()["stopped_by"] == "empty_group"
    assert world.writes() == []


def test_dry_run_reads_both_sides_and_writes_nothing(world: World) -> None:
    ids = seed(world, 3)
    result = world.run("sync", "--dry-run")
    assert result.code == 0, result.stderr
    assert world.writes() == []
    assert world.agents() == {}
    for oid in ids:
        assert f"+ onboard  {oid}" in result.stdout
    full = world.run("sync", "--dry-run", "--full", "--json")
    assert full.json()["planned"] == {"onboard": 3, "update": 0, "offboard": 0}
    assert any(r.method == "GET" for r in world.smartcomm.requests)
    assert world.writes() == []


def test_user_syncs_one_person_by_upn_or_object_id(world: World) -> None:
    ids = seed(world, 3)
    result = world.run("sync", "--user", "USER1@contoso.com", "--json")
    assert result.code == 0, result.stderr
    assert list(world.agents()) == [ids[1]]
    assert world.run("sync", "--user", ids[2]).code == 0
    assert sorted(world.agents()) == sorted(ids[1:])
    unknown = world.run("sync", "--user", "nobody@contoso.com")
    assert unknown.code == 2
    assert "nobody@contoso.com" in unknown.stdout + unknown.stderr


def test_full_sync_repairs_drift(world: World) -> None:
    ids = seed(world, 3)
    assert world.run("sync").code == 0
    world.smartcomm.reset()  # the remote lost everything behind our back
    world.smartcomm.add_agent(user_object_id=ids[0], tenant_id=TENANT, phone_number="+14155550000")
    incremental = world.run("sync", "--json")
    assert incremental.json()["planned"] == {"onboard": 0, "update": 0, "offboard": 0}
    full = world.run("sync", "--full", "--json")
    assert full.code == 0, full.stderr
    # ids[0] is there with the right number; the list carries no UPN, so its missing UPN cannot be seen.
    assert full.json()["planned"] == {"onboard": 2, "update": 0, "offboard": 0}
    assert sorted(world.agents()) == sorted(ids)
    world.smartcomm.clear_requests()
    assert world.run("sync", "--full").code == 0
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
    world.smartcomm.faults = Faults(latency_s=0.25)
    process = world.start("sync")
    deadline = time.monotonic() + 30
    while sum(1 for r in world.smartcomm.requests if r.method == "POST" and r.path.endswith("/agents")) < 5:
        assert time.monotonic() < deadline, "the sync never got going"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    assert 0 < len(world.agents()) < 16
    world.smartcomm.faults = Faults()
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


def test_offboarding_an_agent_already_gone_is_done(world: World) -> None:
    ids = seed(world, 2)
    assert world.run("sync").code == 0
    world.smartcomm.reset()  # the agent vanished remotely
    world.smartcomm.add_agent(user_object_id=ids[1], tenant_id=TENANT, phone_number="+14155550001")
    world.graph.remove_member(world.group, ids[0])
    result = world.run("sync", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["outcomes"] == {"offboard": {"already_gone": 1}}
    assert [(m, p) for m, p, _ in world.writes()] == [("DELETE", f"/{ids[0]}")]
    assert world.run("status", "--json").json()["members"] == {"active": 1, "offboarded": 1}


def test_full_sync_reports_agents_it_never_managed_and_leaves_them(world: World) -> None:
    seed(world, 1)
    stranger = "0b5c1f5e-2a36-4d3c-9a6a-3c2a1c2b0d11"
    world.smartcomm.add_agent(user_object_id=stranger, tenant_id=TENANT, phone_number="+14155559999")
    result = world.run("sync", "--full", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["unmanaged"] == 1
    assert stranger in world.agents()
    assert all(path != f"/{stranger}" for _, path, _ in world.writes())


def test_a_failed_graph_read_offboards_nobody(world: World) -> None:
    from syncd.emulators.smartcomm import ScriptedFault

    seed(world, 3)
    assert world.run("sync").code == 0
    world.smartcomm.clear_requests()
    # Every Graph read fails: the delta reads of this incremental cycle as much as a full read would.
    world.graph.inject(ScriptedFault(kind="status", status=503, path_contains="/v1.0/", times=100))
    result = world.run("sync", "--json", env={"SYNCD_GRAPH__MAX_RETRIES": "1"})
    assert result.code == 1
    assert "503" in str(result.json()["error"])
    assert world.writes() == []
    assert len(world.agents()) == 3


def test_db_upgrade(world: World) -> None:
    result = world.run("db", "upgrade")
    assert result.code == 0, result.stderr
    assert "database at revision 0004" in result.stdout


def test_a_write_whose_answer_is_lost_stays_pending_and_is_settled_by_reading_back(world: World) -> None:
    from syncd.emulators.smartcomm import ScriptedFault

    oid, _ = seed(world, 2)  # two: leaving the only member in scope would trip the empty-group guard
    # Applied, then every answer lost: the outcome is unknown.
    world.smartcomm.inject(ScriptedFault(kind="drop_after", method="POST", path_contains="/agents", times=20))
    first = world.run("sync", "--json", env={"SYNCD_SMARTCOMM__MAX_ATTEMPTS": "2"})
    assert first.code == 1
    assert first.json()["outcomes"] == {"onboard": {"pending": 2}}
    assert world.run("status", "--json").json()["members"] == {"pending": 2}
    world.smartcomm.clear_requests()
    second = world.run("sync", "--json")
    assert second.code == 0, second.stderr
    assert world.writes() == []  # read back, adopted: no second onboarding
    assert world.run("status", "--json").json()["members"] == {"active": 2}
    world.graph.update_user(oid, account_enabled=False)
    assert world.run("sync").code == 0
    assert [(m, p) for m, p, _ in world.writes()] == [("DELETE", f"/{oid}")]
    assert oid not in world.agents()


def test_a_missing_section_is_a_configuration_error_for_run_and_sync(world: World) -> None:
    text = world.config.read_text()
    world.config.write_text(text[: text.index("[smartcomm]")] + text[text.index("[sync]") :])
    for command in ("sync", "run"):
        result = world.run(command, timeout=30)
        assert result.code == 2, (command, result.stderr)
        assert "smartcomm" in result.stderr
