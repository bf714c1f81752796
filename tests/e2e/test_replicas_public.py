"""`syncd run` replicas in PostgreSQL's default `public` schema, as most deployments run them: a replica
starting while a leader runs must not wait for it (the migration lock and the leader's lock are distinct
keys), and a standby takes over from a `kill -9` without sending anything twice.

The other replica tests use a schema of their own, where the keys never met; these drop syncd's tables in
`public` before and after.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from syncd.store import tables
from tests import postgres
from tests.e2e.conftest import CONCURRENCY, World
from tests.e2e.test_daemon import wait_for
from tests.e2e.test_leader import AUTH, TAKEOVER_WAIT_S, Replica, start

SYNCD_TABLES = [table.name for table in tables.metadata.sorted_tables] + ["alembic_version"]


def drop_syncd_tables(server_url: str) -> None:
    libpq = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as connection:
        names = sql.SQL(", ").join(sql.Identifier("public", name) for name in SYNCD_TABLES)
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(names))


@pytest.fixture
def public_url(world: World) -> Iterator[str]:
    """`world`, moved to the `public` schema of the test server (syncd's tables there dropped)."""
    server_url = postgres.require_url()
    drop_syncd_tables(server_url)
    text = world.config.read_text()
    world.config.write_text(
        re.sub(r"^url = .*$", f"url = {json.dumps(server_url)}", text, count=1, flags=re.M)
    )
    yield server_url
    drop_syncd_tables(server_url)


@pytest.fixture
def replicas(public_url: str) -> Iterator[list[Replica]]:
    """Replicas a test started: killed before the tables are dropped."""
    started: list[Replica] = []
    yield started
    for replica in started:
        if replica.process.poll() is None:
            replica.process.kill()
        replica.process.wait(timeout=10)


def posts_by_object(world: World) -> Counter[str]:
    """POST /agents requests SmartCommunicator received, by object ID (applied or not)."""
    return Counter(
        str(r.body["user_object_id"])  # type: ignore[index]
        for r in world.smartcomm.requests
        if r.method == "POST" and r.path.endswith("/agents")
    )


def test_a_standby_starts_while_the_leader_runs_and_takes_over_from_kill_9(
    world: World, replicas: list[Replica], tmp_path: Path
) -> None:
    leader = start(replicas, world, tmp_path, interval="1h")  # a fresh database: it migrates, then leads
    wait_for(lambda: bool(leader.events("sync.cycle")), what="the leader's first (empty) cycle")
    assert leader.role() == "leader"

    standby = start(replicas, world, tmp_path, interval="1h")  # returns once it answers /healthz
    ready = httpx.get(f"{standby.url}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    assert ready.json()["role"] == "standby"
    # It never waited for the migration lock: the leader's lock is another key.
    assert standby.events("store.migration_lock_waiting") == []
    wait_for(lambda: standby.role() == "standby", what="the standby to say it stands by")
    status = world.run("status", timeout=30)  # reads only: no lock to wait for either
    assert status.code == 0, status.stderr

    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(12)]
    world.hold_writes("POST")  # the first 4 onboardings are applied, their answers held back
    assert httpx.post(f"{leader.url}/resync", json={}, headers=AUTH, timeout=10).status_code == 202
    wait_for(lambda: world.held("POST") == CONCURRENCY, what="the leader's first writes")
    leader.process.kill()  # mid-apply: its writes in flight stay recorded as pending
    leader.process.wait(timeout=10)
    wait_for(
        lambda: bool(standby.events("daemon.leader_acquired")),
        timeout=TAKEOVER_WAIT_S,
        what="the standby to take over",
    )
    wait_for(lambda: sorted(world.agents()) == sorted(ids), timeout=30, what="the new leader's cycle")
    assert posts_by_object(world) == Counter(dict.fromkeys(ids, 1)), "an object was sent twice (or never)"
    assert "interrupted" in [run["outcome"] for run in standby.status()["runs"]]
    assert standby.stop() == 0
