"""Notifications from real `syncd sync` and `syncd run` processes to a webhook receiver over HTTPS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from syncd.emulators.server import RunningServer, TestCA, serve_https
from syncd.store import Store
from tests.contract.test_notify_webhook import SECRET, WebhookReceiver
from tests.e2e.conftest import World
from tests.e2e.test_daemon import Daemon, wait_for


@pytest.fixture(scope="module")
def webhook_server(e2e_ca: TestCA) -> Iterator[tuple[WebhookReceiver, RunningServer]]:
    receiver = WebhookReceiver()
    with serve_https(receiver.app, ca=e2e_ca) as server:
        yield receiver, server
        receiver.release.set()


@pytest.fixture
def receiver(
    webhook_server: tuple[WebhookReceiver, RunningServer], world: World, e2e_ca: TestCA
) -> Iterator[WebhookReceiver]:
    """The receiver, and `world`'s configuration sending to it (Teams format, 2 attempts per event)."""
    receiver, server = webhook_server
    receiver.reset()
    url = f"{server.base_url}/workflows/{SECRET}/triggers/manual/paths/invoke?sig={SECRET}"
    with world.config.open("a", encoding="utf-8") as config:
        config.write(f'\n[notify]\nwebhook_url = "{url}"\nca_bundle = "{e2e_ca.ca_path}"\nmax_attempts = 2\n')
    yield receiver
    receiver.reset()


def seed(world: World, count: int) -> list[str]:
    return [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(count)]


def log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def break_graph_credentials(world: World) -> None:
    world.graph.register_app(secret="a-secret-syncd-does-not-have")


def test_a_guard_stop_is_notified_once(world: World, receiver: WebhookReceiver) -> None:
    ids = seed(world, 4)
    world.config.write_text(world.config.read_text().replace("max_offboard = 10", "max_offboard = 1"))
    assert world.run("sync").code == 0
    assert receiver.deliveries == []  # a good cycle says nothing
    for oid in ids[:2]:
        world.graph.remove_member(world.group, oid)
    stopped = world.run("sync")
    assert stopped.code == 3, stopped.stderr
    (card,) = receiver.deliveries
    assert card.kind == "guard_stopped"
    assert card.body["type"] == "message"
    assert card.facts["Guard"] == "max_offboard"
    assert card.facts["Planned offboards"] == "2"
    again = world.run("sync")
    assert again.code == 3
    assert len(receiver.deliveries) == 1  # the same guard again: nothing new
    assert SECRET not in stopped.stderr + again.stderr


def test_failing_then_recovering_is_notified_once_each(world: World, receiver: WebhookReceiver) -> None:
    seed(world, 2)
    assert world.run("sync").code == 0
    break_graph_credentials(world)
    failing = [world.run("sync") for _ in range(2)]
    assert [result.code for result in failing] == [2, 2]  # credentials rejected: a configuration error
    (quarantined,) = receiver.deliveries
    assert quarantined.kind == "quarantined"
    assert "Invalid client secret provided" in quarantined.facts["Error"]
    world.graph.register_app()  # fixed
    recovered = world.run("sync")
    assert recovered.code == 0, recovered.stderr
    assert receiver.kinds() == ["quarantined", "recovered"]
    facts = receiver.deliveries[1].facts
    assert facts["Failed cycles"] == "2"
    assert facts["This cycle"] == "ok"
    assert world.run("sync").code == 0
    assert receiver.kinds() == ["quarantined", "recovered"]


def test_a_failing_webhook_never_changes_the_exit_code(world: World, receiver: WebhookReceiver) -> None:
    seed(world, 1)
    receiver.default = "500"
    break_graph_credentials(world)
    result = world.run("sync", "--json")
    assert result.code == 2  # what the cycle says, as without a webhook
    assert result.json()["exit_code"] == 2
    assert [d.answer for d in receiver.deliveries] == ["500", "500"]  # max_attempts
    (failed,) = [line for line in log_lines(result.stderr) if line["event"] == "notify.failed"]
    assert (failed["notification"], failed["status"], failed["attempts"]) == ("quarantined", 500, 2)
    assert SECRET not in result.stderr + result.stdout


def finished_runs(world: World) -> int:
    store = Store(f"sqlite:///{world.config.parent / 'syncd.db'}")
    try:
        return sum(run.outcome != "running" for run in store.runs(limit=100))
    finally:
        store.close()


def test_the_daemon_does_not_wait_for_the_webhook(
    world: World, receiver: WebhookReceiver, daemons: list[Daemon]
) -> None:
    seed(world, 1)
    break_graph_credentials(world)
    receiver.release.clear()
    receiver.default = "hold"  # the webhook does not answer until the test says so
    # Failing cycles back off (quarantine): keep that short so that several run while the webhook holds.
    env = {
        "SYNCD_NOTIFY__TIMEOUT": "60s",
        "SYNCD_SYNC__QUARANTINE_INITIAL": "1s",
        "SYNCD_SYNC__QUARANTINE_MAX": "1s",
    }
    daemons.append(daemon := Daemon(world, interval="1s", env=env))
    wait_for(lambda: len(receiver.deliveries) == 1, what="the quarantined POST")
    # While the first cycle's notification is still unanswered, later cycles run and are recorded.
    wait_for(lambda: finished_runs(world) >= 3, what="more cycles while the webhook holds its answer")
    assert len(receiver.deliveries) == 1
    receiver.release.set()
    code, stderr = daemon.stop()
    assert code == 0, stderr
    lines = log_lines(stderr)
    order = [line["event"] for line in lines if line["event"] in {"sync.cycle", "notify.sent"}]
    assert order.index("notify.sent") >= 3  # three cycles ended before the webhook's answer arrived
    assert receiver.kinds() == ["quarantined"]  # and failing cycles after the first sent nothing
    assert SECRET not in stderr


def test_the_daemon_drops_what_the_webhook_has_not_taken_at_shutdown(
    world: World, receiver: WebhookReceiver, daemons: list[Daemon]
) -> None:
    break_graph_credentials(world)
    receiver.release.clear()
    receiver.default = "hold"
    env = {"SYNCD_NOTIFY__TIMEOUT": "60s", "SYNCD_SYNC__SHUTDOWN_GRACE": "1s"}
    daemons.append(daemon := Daemon(world, interval="1h", env=env))
    wait_for(lambda: len(receiver.deliveries) == 1, what="the quarantined POST")
    code, stderr = daemon.stop()
    receiver.release.set()
    assert code == 0, stderr
    (dropped,) = [line for line in log_lines(stderr) if line["event"] == "notify.dropped"]
    assert dropped["notifications"] == ["quarantined"]
    assert log_lines(stderr)[-1]["event"] == "daemon.stopped"
