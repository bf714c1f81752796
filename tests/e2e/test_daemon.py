"""`syncd run` as a real process: schedule, resync (admin API, SIGHUP), metrics, shutdown, one instance, and
a schedule that cannot be set up (the daemon stops, exit 1)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.config.settings import Settings
from syncd.cycle.engine import LAST_FULL_KEY
from syncd.emulators.smartcomm import Faults
from syncd.service.daemon import Daemon as DaemonService
from syncd.service.daemon import DaemonError
from syncd.store import Store
from tests.e2e.conftest import CONCURRENCY, World

TOKEN = "admin-token-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Daemon:
    """A running `syncd run` with its admin URL. Its JSON log goes to a file, read while it runs (a pipe
    could fill and block it), so tests wait on the events it logs rather than on time."""

    def __init__(
        self,
        world: World,
        *,
        interval: str = "1s",
        token: str | None = TOKEN,
        env: dict[str, str] | None = None,
        jitter: str | None = "0",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "SYNCD_ADMIN__LISTEN": f"127.0.0.1:{self.port}",
            "SYNCD_SYNC__INTERVAL": interval,
        }
        if jitter is not None:  # None: the default jitter
            self.env["SYNCD_SYNC__JITTER"] = jitter
        if token:
            self.env["SYNCD_ADMIN__TOKEN"] = token
        self.env |= env or {}
        self.world = world
        self.log_path = world.config.parent / f"syncd-run-{self.port}.log"
        self.process = world.start("run", env=self.env, log=self.log_path)
        wait_for(self.healthy, what="/healthz")

    def log(self) -> str:
        """What it logged so far (its stderr)."""
        return self.log_path.read_text()

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log entries of event `name` so far, in order."""
        found = []
        for line in self.log().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == name:
                found.append(entry)
        return found

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.log()[-3000:]
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then its exit code and everything it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=40)
        return self.process.returncode, self.log()


def onboarded(world: World) -> int:
    return len(world.agents())


def test_picks_up_a_group_change_in_the_next_scheduled_cycle(world: World, daemons: list[Daemon]) -> None:
    for i in range(3):
        world.add_user(f"user{i}", f"+1 415 555 {i:04d}")
    daemons.append(daemon := Daemon(world, interval="1s"))
    wait_for(lambda: onboarded(world) == 3, what="the first cycle")
    newcomer = world.add_user("newcomer", "+1 415 555 0100")
    changed_at = time.time()  # after the change: a run that started later read Graph after it too
    wait_for(lambda: newcomer in world.agents(), what="the newcomer")
    code, stderr = daemon.stop()
    assert code == 0, stderr
    assert '"event": "sync.cycle"' in stderr
    with Store(f"sqlite:///{database_of(world)}", read_only=True) as store:
        (onboarding,) = store.operations(object_id=newcomer)
        runs = {run.id: run for run in store.runs(limit=1000)}
    # The run that onboarded the newcomer is a scheduled one, and no run that started after the change
    # came before it: the change was picked up by the first scheduled cycle that could see it.
    assert runs[onboarding.run_id].trigger == "schedule"
    assert all(run.started_at < changed_at for run_id, run in runs.items() if run_id < onboarding.run_id)
    assert len(runs) >= 2


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
    wait_for(lambda: newcomer in world.agents(), what="the SIGHUP cycle")
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
    wait_for(lambda: httpx.get(f"{daemon.url}/readyz").status_code == 200, what="ready: its schedule set up")
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
    assert "syncd_write_concurrency 4.0" in text  # sync.concurrency: nothing throttled
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
    assert f"syncd run (pid {first.process.pid}) holds the lock on " in stderr
    assert "not starting a second daemon" in stderr
    assert first.stop()[0] == 0


def test_sigterm_past_the_grace_period_cancels_and_the_next_start_settles(
    world: World, daemons: list[Daemon]
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(30)]
    world.hold_writes("POST")  # the first 4 onboardings are applied, their answers held far past the grace
    daemons.append(daemon := Daemon(world, interval="1h", env={"SYNCD_SYNC__SHUTDOWN_GRACE": "1s"}))
    wait_for(lambda: world.held("POST") == CONCURRENCY, what="the first writes")
    code, stderr = daemon.stop()
    assert code == 0, stderr
    assert '"event": "daemon.cancelling_cycle"' in stderr
    assert len(world.agents()) == CONCURRENCY
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
    assert f"syncd run (pid {daemon.process.pid}) holds the lock on " in result.stderr
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


def database_of(world: World) -> Path:
    return world.config.parent / "syncd.db"


def finished_runs(world: World) -> int:
    with Store(f"sqlite:///{database_of(world)}", read_only=True) as store:
        store.check_schema()
        return sum(run.ended_at is not None for run in store.runs(limit=100))


def test_interval_1s_with_the_default_jitter_runs_a_cycle_about_every_second(
    world: World, daemons: list[Daemon]
) -> None:
    world.add_user("a", "+1 415 555 0001")
    daemons.append(daemon := Daemon(world, interval="1s", jitter=None))  # the default jitter
    wait_for(lambda: finished_runs(world) >= 5, what="five cycles")
    assert daemon.stop()[0] == 0
    with Store(f"sqlite:///{database_of(world)}", read_only=True) as store:
        runs = sorted(store.runs(limit=100), key=lambda run: run.id)
    assert all(run.trigger == "schedule" and run.ended_at is not None for run in runs[1:5])
    # Between one cycle's end and the next one's start the daemon only waits for the next tick: at most an
    # interval plus the jitter, a tenth of it by default (a tick during a cycle starts the next at its end).
    # Measured by the daemon's own records, so a slow cycle on a busy machine does not count; the slack
    # is for its timers waking late, and far below what the default jitter of 30 s would show.
    waits = [later.started_at - earlier.ended_at for earlier, later in itertools.pairwise(runs[:5])]
    assert max(waits) < 1.0 + 0.1 + 2.0, waits


def test_a_schedule_that_cannot_be_set_up_stops_the_daemon_and_never_says_ready(world: World) -> None:
    assert world.run("db", "upgrade").code == 0
    with Store(f"sqlite:///{database_of(world)}") as store:
        # A last full cycle the clock cannot represent: the next one cannot be scheduled.
        store.set_value(LAST_FULL_KEY, "1e300")
    port = free_port()
    process = world.start(
        "run", env={"SYNCD_ADMIN__LISTEN": f"127.0.0.1:{port}", "SYNCD_ADMIN__TOKEN": TOKEN}
    )
    answers: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                answers.add(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code)
            assert 200 not in answers, "a daemon without a schedule said it was ready"
            time.sleep(0.05)
        assert process.poll() is not None, "the daemon kept running without a schedule"
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 1, stderr
    assert "syncd: cannot set up the schedule (" in stderr
    assert "the last full cycle recorded at 1e+300" in stderr
    assert "; the daemon stopped" in stderr
    assert "Traceback" not in stderr


async def test_a_schedule_the_scheduler_rejects_stops_the_daemon_before_it_starts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    settings = Settings.model_validate(
        {"admin": {"listen": f"127.0.0.1:{free_port()}"}, "database": {"url": url}}
    )
    # Past what a timedelta holds: the configuration may refuse it too; the daemon must not rely on that.
    sync = settings.sync.model_copy(update={"full_interval_s": 1e14})
    settings = settings.model_copy(update={"sync": sync})
    with Store(url) as store:
        store.upgrade()
        daemon = DaemonService(settings, store)
        with pytest.raises(
            DaemonError, match=r"cannot set up the schedule \(.*sync.full_interval = 1e\+14 s"
        ):
            await asyncio.wait_for(daemon.run(), timeout=10)
        assert not (tmp_path / "syncd.db.lock").exists()  # refused before it took the instance lock


def test_a_daemons_next_full_cycle_takes_unchanged_pages_and_still_sees_a_change(
    world: World, daemons: list[Daemon]
) -> None:
    """The page and agents list memos of a real `syncd run` (default settings: one page of 999), through
    `syncd resync --full --wait`: an unchanged page and list are taken as kept, a changed page is not."""
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(3)]
    daemons.append(daemon := Daemon(world, interval="1h", jitter=None))
    wait_for(lambda: onboarded(world) == 3, what="the first cycle")
    for _ in range(2):  # the first lists the agents the first cycle made; the second finds the same list
        result = world.run("resync", "--full", "--wait", env=daemon.env)
        assert result.code == 0, result.stderr
    reads, listed = daemon.events("graph.group_read"), daemon.events("smartcomm.agents_listed")
    assert reads[-1]["pages_unchanged"] == 1
    assert reads[-1]["mapped"] == 0
    assert listed[-1]["unchanged"] is True

    world.graph.update_user(ids[1], business_phones=["+1 415 555 0101"])
    result = world.run("resync", "--full", "--wait", env=daemon.env)
    assert result.code == 0, result.stderr
    assert world.agents()[ids[1]][0] == "+14155550101"
    assert daemon.events("graph.group_read")[-1]["pages_unchanged"] == 0
    assert daemon.stop()[0] == 0
