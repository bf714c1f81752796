"""`syncd run` as a real process: schedule, resync (admin API, SIGHUP), metrics, shutdown, one instance."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable

import httpx

from syncd.emulators.smartcomm import Faults
from tests.e2e.conftest import World

TOKEN = "admin-token-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Daemon:
    """A running `syncd run` with its admin URL."""

    def __init__(
        self,
        world: World,
        *,
        interval: str = "1s",
        token: str | None = TOKEN,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "SYNCD_ADMIN__LISTEN": f"127.0.0.1:{self.port}",
            "SYNCD_SYNC__INTERVAL": interval,
            "SYNCD_SYNC__JITTER": "0",
        }
        if token:
            self.env["SYNCD_ADMIN__TOKEN"] = token
        self.env |= env or {}
        self.world = world
        self.process = world.start("run", env=self.env)
        wait_for(self.healthy, what="/healthz")

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.process.communicate()[1]
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=40)
        return self.process.returncode, stderr


def onboarded(world: World) -> int:
    return len(world.agents())


def test_picks_up_a_group_change_within_two_intervals(world: World, daemons: list[Daemon]) -> None:
    for i in range(3):
        world.add_user(f"user{i}", f"+1 415 555 {i:04d}")
    daemons.append(daemon := Daemon(world, interval="1s"))
    wait_for(lambda: onboarded(world) == 3, what="the first cycle")
    newcomer = world.add_user("newcomer", "+1 415 555 0100")
    changed = time.monotonic()
    wait_for(lambda: newcomer in world.agents(), timeout=10, what="the newcomer")
    assert time.monotonic() - changed < 2 * 1.0 + 1.5  # two intervals, plus one cycle's own time
    code, stderr = daemon.stop()
    assert code == 0, stderr
    assert '"event": "sync.cycle"' in stderr


def test_resync_wait_returns_the_cycles_result(world: World, daemons: list[Daemon]) -> None:
    world.add_user("a", "+1 415 555 0001")
    daemons.append(daemon := Daemon(world, interval="1h"))
    wait_for(lambda: onboarded(world) == 1, what="the first cycle")
    world.smartcomm.add_agent(
        user_object_id="e2f19e0a-0490-41f4-8509-44a3390ae0b6",
        tenant_id=world.graph.tenant_id,
        phone_number="+14155550002",
    )
    world.add_user("b", "+1 415 555 0002")  # conflicts: the cycle ends with exit code 1
    result = world.run("resync", "--wait", env=daemon.env)
    assert result.code == 1, result.stderr
    assert result.json()["outcomes"] == {"onboard": {"failed": 1}}
    queued = world.run("resync", "--full", env=daemon.env)
    assert queued.code == 0
    assert "resync queued (full)" in queued.stdout
    assert daemon.stop()[0] == 0


def test_sighup_triggers_a_resync(world: World, daemons: list[Daemon]) -> None:
    world.add_user("a", "+1 415 555 0001")
    daemons.append(daemon := Daemon(world, interval="1h"))
    wait_for(lambda: onboarded(world) == 1, what="the first cycle")
    newcomer = world.add_user("b", "+1 415 555 0002")
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: newcomer in world.agents(), timeout=10, what="the SIGHUP cycle")
    assert daemon.stop()[0] == 0


def test_sigterm_during_a_slow_apply_loses_and_duplicates_nothing(
    world: World, daemons: list[Daemon]
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(12)]
    world.smartcomm.faults = Faults(latency_s=0.3)
    daemons.append(daemon := Daemon(world, interval="1h"))
    wait_for(
        lambda: sum(r.method == "POST" and r.path.endswith("/agents") for r in world.smartcomm.requests) >= 3,
        what="writes to start",
    )
    code, stderr = daemon.stop()
    assert code == 0, stderr
    world.smartcomm.faults = Faults()
    result = world.run("sync", "--json")
    assert result.code == 0, result.stderr
    assert sorted(world.agents()) == sorted(ids)
    posts = [
        r.body["user_object_id"]
        for r in world.smartcomm.requests  # type: ignore[index]
        if r.method == "POST" and r.path.endswith("/agents") and r.applied
    ]
    assert len(posts) == len(set(posts)) == 12


def test_admin_api_requires_the_token(world: World, daemons: list[Daemon]) -> None:
    daemons.append(daemon := Daemon(world, interval="1h"))
    assert httpx.get(f"{daemon.url}/status").status_code == 401
    assert httpx.get(f"{daemon.url}/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(f"{daemon.url}/resync", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    ok = httpx.get(f"{daemon.url}/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert "runs" in ok.json()
    assert httpx.get(f"{daemon.url}/readyz").status_code == 200
    assert daemon.stop()[0] == 0
    daemons.append(open_daemon := Daemon(world, interval="1h", token=None))
    refused = httpx.post(f"{open_daemon.url}/resync", headers={"Authorization": "Bearer anything"})
    assert refused.status_code == 403
    assert "admin.token is not configured" in refused.json()["error"]
    assert open_daemon.stop()[0] == 0


def test_metrics_expose_the_named_series(world: World, daemons: list[Daemon]) -> None:
    world.add_user("a", "+1 415 555 0001")
    world.add_user("b", "+1 415 555 0002")
    world.add_user("c", "")
    daemons.append(daemon := Daemon(world, interval="1h"))
    wait_for(lambda: onboarded(world) == 2, what="the first cycle")
    wait_for(lambda: "syncd_cycles_total" in httpx.get(f"{daemon.url}/metrics").text, what="metrics")
    text = httpx.get(f"{daemon.url}/metrics").text
    assert 'syncd_cycles_total{outcome="ok"} 1.0' in text
    assert 'syncd_operations_total{action="onboard",outcome="ok"} 2.0' in text
    assert "syncd_managed_agents 2.0" in text
    assert 'syncd_skipped_users{reason="no_phone"} 1.0' in text
    assert "syncd_last_success_timestamp_seconds " in text
    assert "syncd_cycle_duration_seconds_count 1.0" in text
    assert daemon.stop()[0] == 0


def test_a_second_daemon_on_the_same_database_does_not_run(world: World, daemons: list[Daemon]) -> None:
    daemons.append(first := Daemon(world, interval="1h"))
    second = world.start("run", env={**first.env, "SYNCD_ADMIN__LISTEN": f"127.0.0.1:{free_port()}"})
    try:
        _, stderr = second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 1
    assert "another syncd is already running" in stderr
    assert first.stop()[0] == 0


def test_sigterm_past_the_grace_period_cancels_and_the_next_start_settles(
    world: World, daemons: list[Daemon]
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(30)]
    world.smartcomm.faults = Faults(latency_s=0.4)
    world.config.write_text(world.config.read_text().replace("concurrency = 4", "concurrency = 2"))
    daemons.append(daemon := Daemon(world, interval="1h", env={"SYNCD_SYNC__SHUTDOWN_GRACE": "0.5s"}))
    wait_for(
        lambda: sum(r.method == "POST" and r.path.endswith("/agents") for r in world.smartcomm.requests) >= 3,
        what="writes to start",
    )
    code, stderr = daemon.stop()
    assert code == 0, stderr
    assert '"event": "daemon.cancelling_cycle"' in stderr
    world.smartcomm.faults = Faults()
    assert len(world.agents()) < 30
    runs = world.run("status", "--json").json()["runs"]
    assert runs[0]["outcome"] == "interrupted"  # type: ignore[index]
    result = world.run("sync", "--json")
    assert result.code == 0, result.stderr
    assert sorted(world.agents()) == sorted(ids)
    posts = [
        r.body["user_object_id"]  # type: ignore[index]
        for r in world.smartcomm.requests
        if r.method == "POST" and r.path.endswith("/agents") and r.applied
    ]
    assert len(posts) == len(set(posts)) == 30


def test_sync_refuses_to_race_a_running_daemon(world: World, daemons: list[Daemon]) -> None:
    daemons.append(daemon := Daemon(world, interval="1h"))
    result = world.run("sync", "--force")
    assert result.code == 1
    assert "syncd resync" in result.stderr
    assert world.run("sync", "--dry-run").code == 0  # a dry run writes nothing: allowed
    assert daemon.stop()[0] == 0


def test_a_busy_admin_port_is_a_clear_error(world: World) -> None:
    import socket as sockets

    with sockets.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = world.run("run", env={"SYNCD_ADMIN__LISTEN": f"127.0.0.1:{port}"}, timeout=30)
    assert result.code == 1
    assert "admin.listen" in result.stderr
