"""Quarantine on systemic failures, end to end: `syncd sync`, `syncd status` and `syncd run` against the
HTTPS emulators. Checks what the emulators received and what the commands printed. The cycle's rules (the
failure share, per-user retries) are tested in-process in tests/cycle/test_quarantine.py."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from syncd.emulators.smartcomm import DEFAULT_PASSWORD, Faults
from syncd.store import Store
from tests.e2e.conftest import World
from tests.e2e.test_daemon import TOKEN, Daemon, wait_for


def posts(world: World) -> list[str]:
    """Object IDs of the onboarding POSTs SmartCommunicator received, in order."""
    return [
        str(r.body["user_object_id"])  # type: ignore[index]
        for r in world.smartcomm.requests
        if r.method == "POST" and r.path.endswith("/agents")
    ]


def status_json(world: World) -> dict[str, Any]:
    result = world.run("status", "--json")
    assert result.code == 0, result.stderr
    return result.json()


def test_wrong_password_quarantines_and_the_fixed_one_clears_it(world: World) -> None:
    world.add_user("a", "+1 415 555 0001")
    good = world.config.read_text()
    world.config.write_text(good.replace(DEFAULT_PASSWORD, "not-the-password-42"))
    failed = world.run("sync", "--json")
    assert failed.code == 2, failed.stderr
    document = failed.json()
    assert document["quarantined"] is True
    assert document["quarantine"]["failed_cycles"] == 1  # type: ignore[index]
    assert posts(world) == []

    again = world.run("sync")
    assert again.code == 2
    assert "QUARANTINED since" in again.stdout
    assert "(2 failed cycles)" in again.stdout
    shown = world.run("status")
    assert shown.code == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith("QUARANTINED since"))
    assert "(2 failed cycles)" in line
    assert "smartcomm.password" in line  # the reason: the authentication error
    assert "next scheduled try at" in line
    quarantine = status_json(world)["quarantine"]
    assert quarantine["failed_cycles"] == 2
    assert quarantine["next_at"] > quarantine["since"]
    assert "not-the-password-42" not in shown.stdout + str(quarantine)

    world.config.write_text(good)
    fixed = world.run("sync", "--json")
    assert fixed.code == 0, fixed.stderr
    assert fixed.json()["quarantined"] is False
    assert posts(world) == [world.users["a@contoso.com"]]
    assert status_json(world)["quarantine"] is None
    assert "QUARANTINED" not in world.run("status").stdout


def runs_of(daemon: Daemon) -> list[dict[str, Any]]:
    response = httpx.get(f"{daemon.url}/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert response.status_code == 200
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


def finished_runs(daemon: Daemon) -> list[dict[str, Any]]:
    return [r for r in runs_of(daemon) if r["outcome"] != "running"]


def test_the_daemon_backs_off_while_quarantined_and_recovers(world: World, daemons: list[Daemon]) -> None:
    world.add_user("a", "+1 415 555 0001")
    world.smartcomm.faults = Faults(error_rate=1.0, auth_too=True)  # SmartCommunicator down
    env = {"SYNCD_SYNC__QUARANTINE_INITIAL": "2s", "SYNCD_SYNC__QUARANTINE_MAX": "2s"}
    daemons.append(daemon := Daemon(world, interval="0.25s", env=env))

    def ready() -> httpx.Response:
        return httpx.get(f"{daemon.url}/readyz", timeout=5)

    def reason() -> str:
        response = ready()
        return str(response.json()["reason"]) if response.status_code == 503 else ""

    # Not ready, first while starting (the schedule is not set up yet), then because it is quarantined.
    wait_for(lambda: reason().startswith("quarantined: "), what="not ready: quarantined")
    wait_for(lambda: "syncd_quarantined 1.0" in httpx.get(f"{daemon.url}/metrics").text, what="the gauge")
    # A scheduled probe runs after next_at (2 s) and fails again: 2 failed cycles, not one per interval.
    wait_for(lambda: len(finished_runs(daemon)) >= 3, timeout=30, what="two more probes")
    runs = finished_runs(daemon)
    assert [r["outcome"] for r in runs] == ["error"] * len(runs), runs
    started = [r["started_at"] for r in reversed(runs)]
    assert all(later - earlier >= 1.5 for earlier, later in itertools.pairwise(started))
    metrics = httpx.get(f"{daemon.url}/metrics").text
    assert "syncd_quarantine_failed_cycles " in metrics
    page = httpx.get(f"{daemon.url}/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "Quarantined since" in page.text or page.status_code in (303, 401)

    world.smartcomm.faults = Faults()  # fixed: the next scheduled probe recovers by itself
    wait_for(lambda: world.users["a@contoso.com"] in world.agents(), timeout=30, what="the recovery")
    wait_for(lambda: ready().status_code == 200, what="ready again")
    assert "syncd_quarantined 0.0" in httpx.get(f"{daemon.url}/metrics").text
    assert status_json(world)["quarantine"] is None
    code, stderr = daemon.stop()
    assert code == 0, stderr
    assert '"event": "daemon.quarantined_skip"' in stderr
    assert '"event": "sync.quarantine_cleared"' in stderr


def test_a_manual_resync_probes_at_once_while_quarantined(world: World, daemons: list[Daemon]) -> None:
    world.add_user("a", "+1 415 555 0001")
    world.smartcomm.faults = Faults(error_rate=1.0, auth_too=True)
    env = {"SYNCD_SYNC__QUARANTINE_INITIAL": "1h", "SYNCD_SYNC__QUARANTINE_MAX": "1h"}
    daemons.append(daemon := Daemon(world, interval="0.25s", env=env))
    wait_for(lambda: httpx.get(f"{daemon.url}/readyz").status_code == 503, what="not ready")
    # Six scheduled ticks (a quarter second apart) come and are skipped: none runs a cycle.
    wait_for(lambda: len(daemon.events("daemon.quarantined_skip")) >= 6, what="six skipped ticks")
    assert len(runs_of(daemon)) == 1
    world.smartcomm.faults = Faults()
    result = world.run("resync", "--wait", env=daemon.env)  # the admin's probe: runs despite next_at
    assert result.code == 0, result.stderr
    assert result.json()["quarantined"] is False
    assert httpx.get(f"{daemon.url}/readyz").status_code == 200
    # The first two runs ever: /status lists only the latest, and scheduled cycles, back to one every quarter
    # second now, may have pushed these out of it already.
    with Store(f"sqlite:///{world.config.parent / 'syncd.db'}", read_only=True) as store:
        first_two = sorted(store.runs(limit=1000), key=lambda run: run.id)[:2]
    assert [run.trigger for run in first_two] == ["schedule", "manual"]
    code, stderr = daemon.stop()
    assert code == 0, stderr
    assert '"event": "daemon.quarantined_skip"' in stderr
