"""The real `Notifier` against a webhook receiver served over HTTPS: delivery, retries, refusals, silence.

`WebhookReceiver` is the receiving end (a Teams Workflows webhook stands behind such a URL): it records every
POST's headers and JSON body and answers as scripted. The end-to-end tests use it too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from starlette.applications import Starlette
from starlette.routing import Route

from syncd.config.settings import NotifySettings, Settings
from syncd.core.model import Action, Change, MemberStatus, Outcome, Recorded
from syncd.emulators.common import encode_json, json_headers, read_body, send_json, send_truncated_and_drop
from syncd.emulators.server import RunningServer, TestCA, serve_https
from syncd.service.daemon import Daemon
from syncd.service.notify import (
    TITLES,
    CycleFacts,
    Event,
    Notifier,
    NotifyState,
    SummaryFacts,
    summary_event,
    transition,
)
from syncd.store import Store

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

SECRET = "sig-3f9c1a7e5b2d4c6a8e0f1b3d5a7c9e1f"
"""A secret-looking path segment: Teams Workflows URLs carry their credential in the URL."""
HOLD_MAX_S = 120.0
"""A held answer goes out after this long even if the test never releases it (a safety net, not a timing)."""


@dataclass(frozen=True)
class Delivery:
    """One POST as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: Any
    answer: str

    @property
    def kind(self) -> str:
        """The event: the JSON format says it, a Teams card's title tells it."""
        if isinstance(self.body, dict) and "event" in self.body:
            return str(self.body["event"])
        title = self.body["attachments"][0]["content"]["body"][0]["text"]
        return next(kind for kind, text in TITLES.items() if text == title)

    @property
    def facts(self) -> dict[str, str]:
        """A Teams card's first fact set, title -> value."""
        card = self.body["attachments"][0]["content"]
        return {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}


class _Endpoint:
    """The raw ASGI endpoint (a class, so Starlette's Route hands it the scope as it is)."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self._receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._receiver.handle(scope, receive, send)


class WebhookReceiver:
    """Records each POST and answers by script: "202" (the default, as Teams Workflows answers), "500",
    "429" (with Retry-After 0), "400", "drop" (headers, half a body, then the connection is cut), or "hold"
    (answer 202 only once `release` is set, or after HOLD_MAX_S)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._script: deque[str] = deque()
        self.default = "202"
        self.release = threading.Event()
        self.release.set()
        self.app = Starlette(routes=[Route("/{path:path}", _Endpoint(self))])

    def reset(self) -> None:
        with self._lock:
            self._deliveries.clear()
            self._script.clear()
            self.default = "202"
        self.release.set()

    def script(self, *answers: str) -> None:
        """Answer the next POSTs so, in order; then `default`."""
        with self._lock:
            self._script.extend(answers)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def kinds(self) -> list[str]:
        return [delivery.kind for delivery in self.deliveries]

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        if scope["method"] != "POST":
            await send_json(send, 405, b"{}", json_headers(b"{}"))
            return
        with self._lock:
            answer = self._script.popleft() if self._script else self.default
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            self._deliveries.append(Delivery(scope["path"], headers, body, answer))
        if answer == "hold":
            deadline = time.monotonic() + HOLD_MAX_S
            # `release` is a threading.Event set from the tests' thread (this loop is the server's): poll it.
            while not self.release.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            answer = "202"
        if answer == "drop":
            reply = encode_json({"status": "accepted, but you will not hear it"})
            await send_truncated_and_drop(send, 202, reply, json_headers(reply))
        status = int(answer)
        reply = encode_json({"error": "scripted"} if status >= 400 else {})
        extra = [("Retry-After", "0")] if status == 429 else []
        await send_json(send, status, reply, json_headers(reply, extra))


@pytest.fixture(scope="session")
def webhook_server(test_ca: TestCA) -> Iterator[tuple[WebhookReceiver, RunningServer]]:
    receiver = WebhookReceiver()
    with serve_https(receiver.app, ca=test_ca) as server:
        yield receiver, server
        receiver.release.set()


@pytest.fixture
def receiver(webhook_server: tuple[WebhookReceiver, RunningServer]) -> Iterator[WebhookReceiver]:
    receiver, _ = webhook_server
    receiver.reset()
    yield receiver
    receiver.reset()


@pytest.fixture
def webhook_url(webhook_server: tuple[WebhookReceiver, RunningServer]) -> str:
    return f"{webhook_server[1].base_url}/workflows/{SECRET}/triggers/manual/paths/invoke?sig={SECRET}"


def notify_settings(url: str, ca: Path, **changes: object) -> NotifySettings:
    values: dict[str, object] = {"webhook_url": url, "ca_bundle": str(ca), "timeout": 5.0, "max_attempts": 4}
    return NotifySettings.model_validate(values | changes)


@pytest.fixture
def settings(webhook_url: str, test_ca: TestCA) -> NotifySettings:
    return notify_settings(webhook_url, test_ca.ca_path)


def fast(settings: NotifySettings, **options: Any) -> Notifier:
    """The real Notifier with short backoffs, so retry tests take milliseconds."""
    return Notifier(settings, host="test-host", backoff_initial_s=0.01, backoff_max_s=0.05, **options)


def quarantined() -> Event:
    facts = CycleFacts(
        outcome="error", at=time.time(), started_at=time.time() - 3, run_id=4, error="Graph down"
    )
    (event,) = transition(NotifyState(), facts)[1]
    return event


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """structlog events (and, through caplog, every stdlib record at DEBUG) captured during the test."""
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as captured:
        yield captured


def named(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def assert_no_url(logs: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    text = json.dumps(logs, default=str) + caplog.text + "".join(str(r.args) for r in caplog.records)
    assert SECRET not in text
    assert "/workflows/" not in text


async def test_delivers_a_teams_card(
    receiver: WebhookReceiver,
    settings: NotifySettings,
    logs: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with fast(settings) as notifier:
        assert await notifier.send(quarantined()) is True
    (delivery,) = receiver.deliveries
    assert delivery.path == f"/workflows/{SECRET}/triggers/manual/paths/invoke"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["user-agent"].startswith("syncd/")
    assert delivery.kind == "quarantined"
    assert delivery.body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert delivery.facts["Error"] == "Graph down"
    assert delivery.facts["Host"] == "test-host"
    assert SECRET not in json.dumps(delivery.body)
    (sent,) = named(logs, "notify.sent")
    assert (sent["notification"], sent["status"], sent["attempts"]) == ("quarantined", 202, 1)
    assert_no_url(logs, caplog)


async def test_delivers_plain_json(receiver: WebhookReceiver, webhook_url: str, test_ca: TestCA) -> None:
    async with fast(notify_settings(webhook_url, test_ca.ca_path, format="json")) as notifier:
        assert await notifier.send(quarantined()) is True
    (delivery,) = receiver.deliveries
    assert delivery.body["event"] == "quarantined"
    assert delivery.body["source"] == "syncd"
    assert delivery.body["facts"]["error"] == "Graph down"


@pytest.mark.parametrize("failures", [["500", "500"], ["429", "503"], ["drop"], ["429", "drop", "502"]])
async def test_retries_server_errors_throttling_and_dropped_connections_then_delivers(
    receiver: WebhookReceiver,
    settings: NotifySettings,
    failures: list[str],
    logs: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.script(*failures)
    async with fast(settings) as notifier:
        assert await notifier.send(quarantined()) is True
    assert [d.answer for d in receiver.deliveries] == [*failures, "202"]
    assert len({json.dumps(d.body, sort_keys=True) for d in receiver.deliveries}) == 1  # the same message
    assert [entry["attempt"] for entry in named(logs, "notify.retry")] == list(range(1, len(failures) + 1))
    assert named(logs, "notify.failed") == []
    assert_no_url(logs, caplog)


async def test_a_refusal_is_not_retried(
    receiver: WebhookReceiver, settings: NotifySettings, logs: list[dict[str, Any]]
) -> None:
    receiver.script("400")
    async with fast(settings) as notifier:
        assert await notifier.send(quarantined()) is False
    assert [d.answer for d in receiver.deliveries] == ["400"]
    (failed,) = named(logs, "notify.failed")
    assert (failed["notification"], failed["status"], failed["attempts"]) == ("quarantined", 400, 1)


async def test_gives_up_after_max_attempts(
    receiver: WebhookReceiver,
    settings: NotifySettings,
    logs: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.default = "500"
    async with fast(settings) as notifier:
        assert await notifier.send(quarantined()) is False
    assert len(receiver.deliveries) == 4  # max_attempts
    (failed,) = named(logs, "notify.failed")
    assert (failed["status"], failed["attempts"]) == (500, 4)
    assert_no_url(logs, caplog)


async def test_each_notification_is_told_sent_failed_or_dropped(
    receiver: WebhookReceiver, settings: NotifySettings
) -> None:
    # What the daemon counts as syncd_notifications_total{outcome} (the webhook-failing alert).
    told: list[str] = []
    receiver.script("400")
    async with fast(settings, on_outcome=told.append) as notifier:
        assert await notifier.send(quarantined()) is False
        assert await notifier.send(quarantined()) is True
        notifier.enqueue([quarantined()])  # the background sender is not running: dropped
    assert [d.answer for d in receiver.deliveries] == ["400", "202"]
    assert told == ["failed", "sent", "dropped"]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_nobody_listening_is_logged_not_raised_and_bounded(
    test_ca: TestCA, logs: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"https://127.0.0.1:{unused_port()}/workflows/{SECRET}/invoke"
    async with fast(notify_settings(url, test_ca.ca_path, max_attempts=3)) as notifier:
        assert await notifier.send(quarantined()) is False
    assert len(named(logs, "notify.retry")) == 2
    (failed,) = named(logs, "notify.failed")
    assert failed["status"] is None
    assert failed["attempts"] == 3
    assert "ConnectionRefusedError" in failed["reason"]
    assert_no_url(logs, caplog)


async def test_an_answer_slower_than_the_timeout_is_a_retried_timeout(
    receiver: WebhookReceiver, webhook_url: str, test_ca: TestCA, logs: list[dict[str, Any]]
) -> None:
    receiver.release.clear()
    receiver.script("hold")
    try:
        # The held answer never comes in time; the retry, answered at once, has the whole second.
        async with fast(notify_settings(webhook_url, test_ca.ca_path, timeout=1.0)) as notifier:
            assert await notifier.send(quarantined()) is True
    finally:
        receiver.release.set()
    assert [d.answer for d in receiver.deliveries] == ["hold", "202"]
    (retry,) = named(logs, "notify.retry")
    assert retry["reason"] == "timeout"


async def test_a_certificate_that_does_not_verify_is_not_retried(
    receiver: WebhookReceiver, webhook_url: str, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    other_ca = TestCA(tmp_path / "other")
    async with fast(notify_settings(webhook_url, other_ca.ca_path)) as notifier:
        assert await notifier.send(quarantined()) is False
    assert receiver.deliveries == []
    (failed,) = named(logs, "notify.failed")
    assert failed["attempts"] == 1
    assert "ca_bundle" in failed["reason"]


async def test_without_a_webhook_nothing_is_sent_and_nothing_fails(logs: list[dict[str, Any]]) -> None:
    async with Notifier(NotifySettings()) as notifier:
        notifier.start()
        notifier.enqueue([quarantined()])
        assert await notifier.send(quarantined()) is False
    assert logs == []


# -- the background sender --------------------------------------------------------------------------


async def test_enqueue_returns_at_once_and_the_queue_drains_in_order(
    receiver: WebhookReceiver, settings: NotifySettings
) -> None:
    receiver.release.clear()
    receiver.script("hold")
    notifier = fast(settings)
    notifier.start()
    try:
        first, second = quarantined(), summary_event_now()
        notifier.enqueue([first, second])  # returns while the receiver holds the first answer
        await wait_until(lambda: len(receiver.deliveries) == 1)
        assert receiver.deliveries[0].kind == "quarantined"
        receiver.release.set()
        await wait_until(lambda: len(receiver.deliveries) == 2)
    finally:
        receiver.release.set()
        await notifier.aclose(timeout_s=5)
    assert receiver.kinds() == ["quarantined", "daily_summary"]


async def test_shutdown_drops_what_cannot_go_out_in_time(
    receiver: WebhookReceiver,
    webhook_server: tuple[WebhookReceiver, RunningServer],
    settings: NotifySettings,
    logs: list[dict[str, Any]],
) -> None:
    receiver.release.clear()
    receiver.default = "hold"
    told: list[str] = []
    notifier = fast(settings, on_outcome=told.append)
    notifier.start()
    try:
        notifier.enqueue([quarantined(), quarantined()])
        await wait_until(lambda: len(receiver.deliveries) == 1)
        await notifier.aclose(timeout_s=0.2)
        # Not an assertion: the abandoned request's TLS connection takes a few loop turns (the close_notify
        # exchange) to close, and must before this test's loop ends (a daemon exits right after, so it has
        # no such need).
        await wait_until(lambda: not open_connections_to(webhook_server[1].port))
    finally:
        receiver.release.set()
    (dropped,) = named(logs, "notify.dropped")
    assert dropped["notifications"] == ["quarantined", "quarantined"]
    assert told == ["dropped", "dropped"]
    assert len(receiver.deliveries) == 1


def open_connections_to(port: int) -> int:
    """This process's asyncio connections to `port` on loopback whose socket is still open."""
    count = 0
    for candidate in gc.get_objects():
        if not isinstance(candidate, asyncio.Transport):
            continue
        try:
            sock, peer = candidate.get_extra_info("socket"), candidate.get_extra_info("peername")
        except AttributeError:  # a TLS transport whose connection is gone asks its protocol, gone too
            continue
        if sock is not None and sock.fileno() != -1 and isinstance(peer, tuple) and peer[1] == port:
            count += 1
    return count


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def summary_event_now() -> Event:
    now = time.time()
    return summary_event(
        SummaryFacts(since=now - 86400, until=now, runs={"ok": 1}, operations={}, members={})
    )


# -- the daemon's daily summary ----------------------------------------------------------------------


async def test_the_daemon_schedules_and_sends_the_daily_summary_from_the_store(
    receiver: WebhookReceiver, webhook_url: str, test_ca: TestCA, tmp_path: Path
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'syncd.db'}")
    store.upgrade()
    try:
        run = store.begin_run(trigger="schedule", kind="incremental", dry_run=False)
        change = Change(Action.ONBOARD, "oid-1", None, None)
        op = store.start_operation(run, change)
        failed = Recorded(
            "oid-1", MemberStatus.FAILED, None, upn="a@contoso.com", detail="TN conflict", attempts=2
        )
        store.settle_operation(op, outcome=Outcome.FAILED, record=failed, error="TN conflict")
        store.finish_run(run, outcome="failed", counts={"onboard_failed": 1, "failed": 1})
        dry = store.begin_run(trigger="cli", kind="incremental", dry_run=True)
        store.finish_run(dry, outcome="ok", counts={})
        notify = {"webhook_url": webhook_url, "ca_bundle": str(test_ca.ca_path), "daily_summary": True}
        daemon = Daemon(Settings.model_validate({"notify": notify | {"daily_summary_at": "07:30"}}), store)
        job = daemon._scheduler().get_job("daily_summary")
        assert job is not None
        fire = job.trigger.get_next_fire_time(None, datetime(2027, 1, 15, 8, tzinfo=UTC))
        assert fire.isoformat() == "2027-01-16T07:30:00+00:00"
        daemon.notifier.start()
        await daemon._daily_summary()
        await daemon.notifier.aclose(timeout_s=10)
    finally:
        store.close()
    (delivery,) = receiver.deliveries
    assert delivery.kind == "daily_summary"
    assert delivery.facts["Runs"] == "failed 1"  # the dry run is not counted
    assert delivery.facts["Operations"] == "onboard failed 1"
    assert delivery.facts["Members"] == "failed 1"
    assert delivery.facts["Needing attention"] == "1"
    people = delivery.body["attachments"][0]["content"]["body"][3]["facts"]
    assert people == [{"title": "a@contoso.com", "value": "failed, attempts 2: TN conflict"}]
