"""`syncd run` replicas on one PostgreSQL database as real processes: one leader runs cycles, standbys take
over when it dies (`kill -9`) or loses its lock connection, and forward `POST /resync` to it."""

from __future__ import annotations

import json
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from syncd.config.settings import Settings
from syncd.service.leader import PostgresLeadership
from syncd.store import Store
from syncd.store.schema import LEADER_KEY, lock_key
from tests import postgres
from tests.e2e.conftest import CONCURRENCY, World
from tests.e2e.test_daemon import TOKEN, free_port, wait_for

TAKEOVER_S = 3.0
"""leader_takeover in these tests: standbys try for the lock every second."""

TAKEOVER_WAIT_S = 8 * TAKEOVER_S
"""A generous bound for a takeover (a few takeover periods plus a slow machine)."""

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Replica:
    """A `syncd run` whose JSON log goes to a file (read while it runs; a pipe could fill and block it)."""

    def __init__(self, world: World, log_dir: Path, name: str, *, interval: str = "1s") -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.env = {
            "SYNCD_ADMIN__LISTEN": f"127.0.0.1:{self.port}",
            "SYNCD_ADMIN__TOKEN": TOKEN,
            "SYNCD_SYNC__INTERVAL": interval,
            "SYNCD_SYNC__JITTER": "0",
            "SYNCD_SYNC__LEADER_TAKEOVER": f"{TAKEOVER_S:g}s",
        }
        self.process = world.start("run", env=self.env, log=self.log_path)
        wait_for(self.healthy, what=f"/healthz of {name}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def healthy(self) -> bool:
        assert self.process.poll() is None, f"{self.name} exited: {self.log_path.read_text()[-3000:]}"
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == name:
                found.append(entry)
        return found

    def role(self) -> str | None:
        """The role the log says this replica took last (None before it decided)."""
        role = None
        for line in self.log_path.read_text().splitlines():
            if '"daemon.leader_acquired"' in line:
                role = "leader"
            elif '"daemon.standby"' in line or '"daemon.leadership_lost"' in line:
                role = "standby"
        return role

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/status", headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=40)
        return self.process.returncode


@pytest.fixture
def schema_url() -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL schema of this test's own (dropped afterwards)."""
    with postgres.fresh_schema() as (schema, server_url):
        url = postgres.url_with_search_path(server_url, schema)
        with Store(url) as store:
            store.upgrade()
        yield url


@pytest.fixture
def database_url(world: World, schema_url: str) -> str:
    """`world`, moved to the test's PostgreSQL schema."""
    text = world.config.read_text()
    world.config.write_text(
        re.sub(r"^url = .*$", f"url = {json.dumps(schema_url)}", text, count=1, flags=re.M)
    )
    return schema_url


@pytest.fixture
def replicas(world: World, database_url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGCONT)  # a test may have frozen it
            replica.process.kill()
        replica.process.wait(timeout=10)


def start(replicas: list[Replica], world: World, tmp_path: Path, *, interval: str = "1s") -> Replica:
    replica = Replica(world, tmp_path, f"replica{len(replicas)}", interval=interval)
    replicas.append(replica)
    return replica


def settled_roles(replicas: list[Replica]) -> tuple[Replica, list[Replica]]:
    """(the leader, the standbys) once every replica has said which it is."""
    wait_for(lambda: all(r.role() is not None for r in replicas), timeout=30, what="every replica's role")
    leaders = [r for r in replicas if r.role() == "leader"]
    assert len(leaders) == 1, {r.name: r.role() for r in replicas}
    return leaders[0], [r for r in replicas if r is not leaders[0]]


def applied_onboardings(world: World) -> list[str]:
    return [
        str(r.body["user_object_id"])  # type: ignore[index]
        for r in world.smartcomm.requests
        if r.method == "POST" and r.path.endswith("/agents") and r.applied
    ]


def lock_holders(database_url: str) -> list[int]:
    """Backend pids holding syncd's advisory lock for this test's schema."""
    schema = database_url.rsplit("search_path%3D", 1)[-1].rsplit("search_path=", 1)[-1]
    key = lock_key(schema)
    with psycopg.connect(_libpq(postgres.require_url()), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND classid::bigint = %s AND objid::bigint = %s",
            [key >> 32, key & 0xFFFFFFFF],
        ).fetchall()
    return [int(row[0]) for row in rows]


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


async def test_the_lock_connection_keeps_alive_on_both_ends_and_excludes_a_second_holder(
    schema_url: str,
) -> None:
    settings = Settings.model_validate({"database": {"url": schema_url}, "sync": {"leader_takeover": 30}})
    with Store(schema_url) as store:
        first, second = PostgresLeadership(settings, store), PostgresLeadership(settings, store)
        try:
            assert await first._try_acquire()
            assert not await second._try_acquire()  # one session holds the lock; the other stands by
            connection = first._connection
            assert connection is not None
            shown = {}
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"):
                row = await (await connection.execute(f"SHOW {name}")).fetchone()
                shown[name] = row[0] if row else None
            # The server's end: it ends a vanished leader's session after 10 + 3 * 3 s of silence.
            assert shown == {
                "tcp_keepalives_idle": "10",
                "tcp_keepalives_interval": "3",
                "tcp_keepalives_count": "3",
            }
            ours = connection.info.get_parameters()
            assert (ours["keepalives"], ours["keepalives_idle"], ours["keepalives_count"]) == ("1", "10", "3")
            first.is_leader = True
            assert await first.confirm()
            assert first._key == lock_key(schema_url.rsplit("search_path%3D", 1)[-1])
            await first.close()
            assert await second._try_acquire()  # released with the session
        finally:
            await first.close()
            second.is_leader = True
            await second.close()


def test_one_leader_runs_the_cycles_the_others_stand_by(
    world: World, replicas: list[Replica], tmp_path: Path
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(3)]
    for _ in range(3):
        start(replicas, world, tmp_path)
    leader, standbys = settled_roles(replicas)
    wait_for(lambda: sorted(world.agents()) == sorted(ids), what="the leader's first cycle")
    wait_for(lambda: len(leader.events("sync.cycle")) >= 3, what="three scheduled cycles (interval 1 s)")
    for standby in standbys:
        assert standby.events("sync.cycle") == [], f"{standby.name} ran a cycle"
        (announced,) = standby.events("daemon.standby")
        assert announced["leader"] is None or announced["leader"]["pid"] == leader.pid
        status = standby.status()
        assert status["role"] == "standby"
        assert status["leader"]["pid"] == leader.pid
        assert status["leader"]["admin_url"] == leader.url
        ready = httpx.get(f"{standby.url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["role"] == "standby"
        assert "syncd_leader 0.0" in httpx.get(f"{standby.url}/metrics", timeout=5).text
    assert leader.status()["role"] == "leader"
    assert "syncd_leader 1.0" in httpx.get(f"{leader.url}/metrics", timeout=5).text
    assert sorted(applied_onboardings(world)) == sorted(ids)  # each once
    refused = world.run("sync")  # the leader holds the lock `syncd sync` takes: it says who and where
    assert refused.code == 1
    assert f"syncd: syncd run (pid {leader.pid} on host {socket.gethostname()}) holds the lock on " in (
        refused.stderr
    )
    assert "syncd resync" in refused.stderr
    for replica in replicas:
        assert replica.stop() == 0


def test_kill_9_of_the_leader_a_standby_takes_over_and_duplicates_nothing(
    world: World, replicas: list[Replica], tmp_path: Path
) -> None:
    for _ in range(2):
        start(replicas, world, tmp_path, interval="1h")
    leader, (standby,) = settled_roles(replicas)
    wait_for(lambda: bool(leader.events("sync.cycle")), what="the leader's first (empty) cycle")
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(12)]
    world.hold_writes("POST")  # the first 4 onboardings are applied, their answers held back
    assert httpx.post(f"{leader.url}/resync", json={}, headers=AUTH, timeout=10).status_code == 202
    wait_for(lambda: world.held("POST") == CONCURRENCY, what="the leader's first writes")
    leader.process.kill()  # SIGKILL mid-apply: its pending operations stay recorded as pending
    leader.process.wait(timeout=10)
    wait_for(
        lambda: bool(standby.events("daemon.leader_acquired")),
        timeout=TAKEOVER_WAIT_S,
        what=f"the standby to take over within {TAKEOVER_WAIT_S:g} s of the leader's kill -9",
    )
    wait_for(lambda: sorted(world.agents()) == sorted(ids), timeout=30, what="the new leader's cycle")
    onboarded = applied_onboardings(world)
    assert sorted(onboarded) == sorted(ids), "an object was onboarded twice or never"
    status = standby.status()
    assert status["role"] == "leader"
    assert status["leader"]["pid"] == standby.pid
    outcomes = [run["outcome"] for run in status["runs"]]
    assert "interrupted" in outcomes  # the dead leader's run, closed by the new leader
    assert standby.stop() == 0


def test_a_standby_forwards_resync_and_says_where_a_frozen_leader_is(
    world: World, replicas: list[Replica], tmp_path: Path
) -> None:
    world.add_user("a", "+1 415 555 0001")
    for _ in range(2):
        start(replicas, world, tmp_path, interval="1h")
    leader, (standby,) = settled_roles(replicas)
    wait_for(lambda: len(world.agents()) == 1, what="the leader's first cycle")
    wait_for(lambda: standby.status()["leader"] is not None, what="the leader's identity in kv")
    runs_before = len(leader.status()["runs"])

    wrong = httpx.post(f"{standby.url}/resync", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert wrong.status_code == 401  # the standby checks the bearer itself before forwarding

    newcomer = world.add_user("b", "+1 415 555 0002")
    waited = httpx.post(f"{standby.url}/resync", params={"wait": "true"}, json={}, headers=AUTH, timeout=60)
    assert waited.status_code == 200, waited.text
    assert waited.json()["forwarded_to"] == leader.url
    assert waited.headers["x-syncd-forwarded-to"] == leader.url
    assert waited.json()["exit_code"] == 0
    assert newcomer in world.agents()
    assert len(leader.status()["runs"]) == runs_before + 1
    queued = httpx.post(f"{standby.url}/resync", json={"full": True}, headers=AUTH, timeout=30)
    assert queued.status_code == 202, queued.text
    assert queued.json() == {"queued": True, "full": True, "force": False, "forwarded_to": leader.url}
    cli = world.run("resync", "--wait", env=standby.env)
    assert cli.code == 0, cli.stderr
    assert cli.json()["forwarded_to"] == leader.url
    assert standby.events("sync.cycle") == []

    # Frozen, the leader keeps its lock (its socket stays open) but answers nothing: no takeover, and the
    # standby says where the leader is.
    leader.process.send_signal(signal.SIGSTOP)
    try:
        refused = httpx.post(f"{standby.url}/resync", json={}, headers=AUTH, timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "this replica is a standby"
        assert refused.json()["leader"]["pid"] == leader.pid
        assert refused.json()["leader"]["admin_url"] == leader.url
        cli = world.run("resync", env=standby.env)
        assert cli.code == 1
        assert "is a standby" in cli.stderr
        assert f"the leader is {leader.url}" in cli.stderr
        assert f"pid {leader.pid}" in cli.stderr
        assert standby.role() == "standby"
    finally:
        leader.process.send_signal(signal.SIGCONT)
    for replica in replicas:
        assert replica.stop() == 0


def test_a_standby_whose_leader_is_unreachable_answers_503_then_takes_over(
    world: World, database_url: str, replicas: list[Replica], tmp_path: Path
) -> None:
    newcomer = world.add_user("a", "+1 415 555 0001")
    nowhere = f"http://127.0.0.1:{free_port()}"
    gone = {"host": "gone-host", "pid": 999999, "admin_url": nowhere, "since": 1.0, "heartbeat_at": 2.0}
    with Store(database_url) as store:
        store.set_value(LEADER_KEY, json.dumps(gone))
    # The lock held elsewhere (a leader whose admin API is unreachable): the replica must stand by.
    holder = psycopg.connect(_libpq(database_url), autocommit=True)
    try:
        schema = holder.execute("SELECT current_schema()").fetchone()
        assert schema is not None
        assert holder.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(schema[0])]).fetchone() == (True,)
        replica = start(replicas, world, tmp_path)
        wait_for(lambda: replica.role() == "standby", what="the replica to stand by")
        assert replica.events("daemon.standby")[0]["leader"]["admin_url"] == nowhere
        refused = httpx.post(f"{replica.url}/resync", json={}, headers=AUTH, timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json() == {"error": "this replica is a standby", "leader": gone}
        page = httpx.get(f"{replica.url}/readyz", timeout=5)
        assert page.status_code == 200
        assert page.json()["role"] == "standby"
        assert world.agents() == {}
    finally:
        holder.close()  # the lock goes with the session
    wait_for(
        lambda: bool(replica.events("daemon.leader_acquired")),
        timeout=TAKEOVER_WAIT_S,
        what=f"the replica to take over within {TAKEOVER_WAIT_S:g} s of the lock's release",
    )
    wait_for(lambda: newcomer in world.agents(), what="the new leader's cycle")
    assert replica.status()["leader"]["pid"] == replica.pid
    assert replica.stop() == 0


def test_a_leader_that_loses_its_lock_connection_steps_down(
    world: World, database_url: str, replicas: list[Replica], tmp_path: Path
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(3)]
    for _ in range(2):
        start(replicas, world, tmp_path)
    leader, _ = settled_roles(replicas)
    wait_for(lambda: sorted(world.agents()) == sorted(ids), what="the first cycle")
    (holder,) = lock_holders(database_url)
    with psycopg.connect(_libpq(postgres.require_url()), autocommit=True) as connection:
        connection.execute("SELECT pg_terminate_backend(%s)", [holder])  # as if the network dropped it
    wait_for(
        lambda: bool(leader.events("daemon.leadership_lost")),
        timeout=TAKEOVER_WAIT_S,
        what="the leader to notice it lost its lock connection",
    )
    wait_for(
        lambda: len(lock_holders(database_url)) == 1,
        timeout=TAKEOVER_WAIT_S,
        what="a replica to hold the lock again",
    )
    wait_for(
        lambda: sum(r.role() == "leader" for r in replicas) == 1,
        timeout=TAKEOVER_WAIT_S,
        what="exactly one replica to lead again",
    )
    new_leader = next(r for r in replicas if r.role() == "leader")
    wait_for(
        lambda: new_leader.status()["leader"]["pid"] == new_leader.pid, what="the new leader's heartbeat"
    )
    newcomer = world.add_user("newcomer", "+1 415 555 0100")
    wait_for(lambda: newcomer in world.agents(), what="a cycle of the new leader")
    assert sorted(applied_onboardings(world)) == sorted([*ids, newcomer])  # each once
    for replica in replicas:
        assert replica.stop() == 0
