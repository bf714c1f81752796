"""Readiness and metrics of `syncd run` replicas on PostgreSQL during a quarantine, as Kubernetes sees them
(docs/kubernetes.md, "Readiness: a standby is ready"): a standby started while the leader is quarantined is
ready and shows no quarantine (so a rollout, which waits for the new pod to be ready, never stalls on it),
while the leader is not ready, shows the quarantine and its last cycle's outcome, and reports the last
success the database recorded before it started (the alert on no success for 3 intervals survives
restarts)."""

from __future__ import annotations

from pathlib import Path

import httpx

from syncd.emulators.smartcomm import DEFAULT_PASSWORD
from syncd.store import Store
from tests.e2e.conftest import World
from tests.e2e.test_daemon import wait_for
from tests.e2e.test_leader import AUTH, Replica, database_url, replicas, schema_url, settled_roles, start

__all__ = ["database_url", "replicas", "schema_url"]  # the fixtures this module uses


def metric(replica: Replica, line_start: str) -> float:
    page = httpx.get(f"{replica.url}/metrics", timeout=5).text
    (line,) = [line for line in page.splitlines() if line.startswith(line_start + " ")]
    return float(line.rsplit(" ", 1)[1])


def test_a_standby_started_during_a_quarantine_is_ready_and_the_leader_is_not(
    world: World, database_url: str, replicas: list[Replica], tmp_path: Path
) -> None:
    world.add_user("a", "+1 415 555 0001")
    synced = world.run("sync")
    assert synced.code == 0, synced.stderr
    with Store(database_url) as store:
        succeeded = store.last_success_at()
    assert succeeded is not None
    good = world.config.read_text()
    world.config.write_text(good.replace(DEFAULT_PASSWORD, "not-the-password-42"))
    failed = world.run("sync")  # quarantined in the database before any replica starts
    assert failed.code == 2, failed.stderr

    leader = start(replicas, world, tmp_path, interval="1h")
    wait_for(lambda: leader.role() == "leader", what="the first replica to lead")
    wait_for(lambda: metric(leader, "syncd_quarantined") == 1, what="the leader to show the quarantine")
    standby = start(replicas, world, tmp_path, interval="1h")
    assert settled_roles(replicas) == (leader, [standby])

    ready = httpx.get(f"{standby.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["role"] == "standby"
    assert metric(standby, "syncd_quarantined") == 0
    assert metric(standby, "syncd_leader") == 0

    wait_for(lambda: httpx.get(f"{leader.url}/readyz", timeout=10).status_code == 503, what="not ready")
    assert httpx.get(f"{leader.url}/readyz", timeout=10).json()["reason"].startswith("quarantined")
    assert metric(leader, "syncd_leader") == 1
    # Its scheduled cycles wait out the quarantine: the success it reports is the one the database recorded.
    assert metric(leader, "syncd_last_success_timestamp_seconds") == succeeded
    # A manual cycle runs at once, and fails as a whole again: the leader's last outcome says so.
    tried = httpx.post(f"{leader.url}/resync?wait=true", headers=AUTH, json={}, timeout=60)
    assert tried.status_code == 200, tried.text
    assert tried.json()["quarantined"] is True
    assert metric(leader, 'syncd_last_cycle_outcome{outcome="error"}') == 1
    assert metric(leader, "syncd_last_success_timestamp_seconds") == succeeded
    assert metric(standby, 'syncd_last_cycle_outcome{outcome="error"}') == 0
    for replica in replicas:
        assert replica.stop() == 0
