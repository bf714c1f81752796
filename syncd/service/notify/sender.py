"""Sending notifications, the I/O part: the deduplication state read and stored through the caller's
key/value store (`advance`, `events_after_cycle`), the daily summary read from the store (`gather_summary`),
and the webhook: `Notifier` (HTTP with retries, the daemon's background sender) and `send_after_cycle` for
`syncd sync`.

Never a raised error and never the URL in a log line: the URL is the webhook's credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from httpx_aiohttp import AiohttpTransport

from syncd import __version__
from syncd.config.settings import NotifySettings
from syncd.config.tls import is_tls_verification_failure, ssl_context
from syncd.core.backoff import backoff_delay_s
from syncd.core.model import KeyValues
from syncd.core.redact import redact_text
from syncd.service.notify.events import (
    STATE_KEY,
    Attention,
    CycleFacts,
    CycleLike,
    Event,
    NotifyState,
    SummaryFacts,
    SummarySource,
    cycle_facts,
    operations_of_counts,
    payload,
    summary_event,
    transition,
)

log = structlog.get_logger("syncd.notify")

BACKOFF_INITIAL_S = 1.0
"""Seconds before the second attempt of a notification; doubles per attempt (with jitter)."""
BACKOFF_MAX_S = 30.0
"""Longest pause between two attempts of a notification, in seconds."""
RETRY_AFTER_MAX_S = 60.0
"""A 429 or 503 asking to wait longer than this many seconds ends the notification as failed."""
QUEUE_SIZE = 100
"""Events the daemon's background sender holds at most; more are dropped with a warning."""
SHUTDOWN_BUDGET_S = 5.0
"""Seconds the daemon gives queued notifications at shutdown, at most (and never more than the grace)."""
SUMMARY_WINDOW_S = 86400.0
"""What the daily summary covers: the last 24 hours."""

# -- the state and the summary, through the caller's store -----------------------------------------


def advance(kv: KeyValues, facts: CycleFacts) -> tuple[Event, ...]:
    """Read the stored state, apply `transition`, store the new state if it changed; the events to send.

    The state moves on whether or not the events are then delivered: delivery is retried, not re-decided.
    """
    previous = NotifyState.from_json(kv.get_value(STATE_KEY))
    state, events = transition(previous, facts)
    if state != previous:
        kv.set_value(STATE_KEY, state.to_json())
    return events


def events_after_cycle(kv: KeyValues, result: CycleLike, *, now: float | None = None) -> tuple[Event, ...]:
    """The events a finished cycle causes (state read and stored in `kv`); none for a dry run.

    Never raises: a store failure is logged (`notify.state_failed`) and nothing is sent.
    """
    if result.dry_run:
        return ()
    try:
        return advance(kv, cycle_facts(result, now=now))
    except Exception as exc:
        log.warning("notify.state_failed", error=redact_text(str(exc)), error_type=type(exc).__name__)
        return ()


def gather_summary(source: SummarySource, *, now: float | None = None) -> SummaryFacts:
    """The daily summary's facts from the store: runs of the last 24 hours, members, attention."""
    until = time.time() if now is None else now
    since = until - SUMMARY_WINDOW_S
    limit = 500
    while True:
        runs = source.runs(limit=limit)
        # Newest first: once the oldest fetched started before the window, the window is complete.
        if len(runs) < limit or runs[-1].started_at < since:
            break
        limit *= 4
    by_outcome: Counter[str] = Counter()
    operations: dict[str, Counter[str]] = {}
    for run in runs:
        if run.dry_run or run.started_at < since:
            continue
        by_outcome[run.outcome] += 1
        for action, by_op_outcome in operations_of_counts(run.counts).items():
            operations.setdefault(action, Counter()).update(by_op_outcome)
    attention = tuple(
        Attention(m.object_id, m.upn, m.status.value, m.attempts, m.detail)
        for m in source.members_needing_attention()
    )
    return SummaryFacts(
        since=since,
        until=until,
        runs=dict(by_outcome),
        operations={action: dict(counter) for action, counter in operations.items()},
        members=dict(source.count_by_status()),
        attention=attention,
    )


# -- sending ----------------------------------------------------------------------------------------


def retry_after_s(value: str | None, *, now: float) -> float | None:
    """Pure: seconds from `now` (epoch) that a Retry-After header asks for, or None if absent or invalid.

    Both forms of RFC 9110 are accepted: delay-seconds and an HTTP-date.
    """
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        return max(parsedate_to_datetime(text).timestamp() - now, 0.0)
    except (TypeError, ValueError, IndexError):
        return None


class _HideUrl(logging.Filter):
    """Drops stdlib log records that would print the webhook URL (httpx logs each request's URL at INFO)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        # httpx prints its own normalised form of the URL; the path and query carry the credential.
        parsed = httpx.URL(url)
        needles = {url, str(parsed), parsed.raw_path.decode("ascii", "replace")}
        self._needles = tuple(needle for needle in needles if len(needle) > 1)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        return not any(needle in message for needle in self._needles)


def _transport_reason(exc: BaseException) -> str:
    """Why no answer came, by exception types only: messages can quote the URL."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    # httpx-aiohttp maps some aiohttp errors loosely (a refused connection becomes ConnectTimeout): name the
    # root cause as well.
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    name = type(exc).__name__
    return name if root is exc else f"{name} ({type(root).__name__})"


class Notifier:
    """Sends events to `notify.webhook_url`. Without a webhook it does nothing and fails at nothing.

    `send` posts one event with retries and says whether it was delivered; it never raises. The daemon
    uses the background sender instead: `start`, then `enqueue` (never blocks) or `after_cycle` /
    `send_summary`, and `aclose(timeout_s=...)` at shutdown. Use as `async with Notifier(settings) as n:`
    for one-off sends. `on_outcome` is told what became of each event: "sent", "failed" (refused, or no answer
    after every attempt) or "dropped" (never sent: the queue full, or shutting down); the daemon counts them
    (`syncd_notifications_total`). `transport`, `rng`, `host` and the backoff keywords are for tests.
    """

    def __init__(
        self,
        settings: NotifySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        host: str | None = None,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        retry_after_max_s: float = RETRY_AFTER_MAX_S,
        queue_size: int = QUEUE_SIZE,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._on_outcome = on_outcome
        self._url = settings.webhook_url.get_secret_value() if settings.webhook_url is not None else None
        self._transport = transport
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._host = host if host is not None else socket.gethostname()
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._retry_after_max_s = retry_after_max_s
        self._queue_size = queue_size
        self._http: httpx.AsyncClient | None = None
        self._queue: asyncio.Queue[Event] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._undelivered: list[Event] = []
        self._filter: _HideUrl | None = None
        if self._url is not None:
            self._filter = _HideUrl(self._url)
            logging.getLogger("httpx").addFilter(self._filter)

    @property
    def enabled(self) -> bool:
        """Whether a webhook is configured."""
        return self._url is not None

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- one event ----------------------------------------------------------------------------------

    async def send(self, event: Event) -> bool:
        """POST `event` with retries; True once the webhook accepted it (2xx). Never raises."""
        if self._url is None:
            return False
        try:
            sent = await self._post(self._url, event)
        except Exception as exc:  # a bug here must never reach a cycle
            log.error("notify.failed", notification=event.kind, status=None, reason=type(exc).__name__)
            sent = False
        self._tell("sent" if sent else "failed")
        return sent

    def _tell(self, outcome: str, count: int = 1) -> None:
        if self._on_outcome is None:
            return
        for _ in range(count):
            with contextlib.suppress(Exception):  # counting must never stop a notification
                self._on_outcome(outcome)

    async def _post(self, url: str, event: Event) -> bool:
        settings = self._settings
        body = payload(event, form=settings.format, host=self._host)
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            wait_s: float | None = None
            try:
                async with asyncio.timeout(settings.timeout_s):
                    response = await self._client().post(url, json=body)
            except Exception as exc:
                if is_tls_verification_failure(exc):
                    # A certificate that does not verify will not verify on the next attempt either.
                    self._failed(event, attempt, None, "certificate did not verify (notify.ca_bundle)")
                    return False
                reason = _transport_reason(exc)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    log.info("notify.sent", notification=event.kind, status=status, attempts=attempt)
                    return True
                reason = f"HTTP {status}"
                if status != 429 and status < 500:
                    # The webhook refused the message itself: sending it again changes nothing.
                    self._failed(event, attempt, status, reason)
                    return False
                wait_s = retry_after_s(response.headers.get("Retry-After"), now=time.time())
                if wait_s is not None and wait_s > self._retry_after_max_s:
                    self._failed(event, attempt, status, f"{reason}, Retry-After {wait_s:.0f} s is too long")
                    return False
            if attempt >= settings.max_attempts:
                self._failed(event, attempt, status, reason)
                return False
            if wait_s is None:
                wait_s = backoff_delay_s(
                    attempt, initial_s=self._backoff_initial_s, max_s=self._backoff_max_s, rng=self._rng
                )
            log.warning(
                "notify.retry",
                notification=event.kind,
                attempt=attempt,
                max_attempts=settings.max_attempts,
                status=status,
                reason=reason,
                delay_s=round(wait_s, 3),
            )
            await asyncio.sleep(wait_s)

    def _failed(self, event: Event, attempts: int, status: int | None, reason: str) -> None:
        log.error("notify.failed", notification=event.kind, status=status, reason=reason, attempts=attempts)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            transport = self._transport
            if transport is None:
                transport = AiohttpTransport(
                    verify=ssl_context(self._settings.ca_bundle),
                    trust_env=False,
                    limits=httpx.Limits(max_connections=2),
                )
            self._http = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(self._settings.timeout_s),
                headers={"User-Agent": f"syncd/{__version__}"},
                trust_env=False,
                follow_redirects=False,
            )
        return self._http

    # -- the background sender (the daemon) ----------------------------------------------------------

    def start(self) -> None:
        """Start the background sender on the running loop (nothing without a webhook)."""
        if self._url is None or self._worker is not None:
            return
        self._queue = asyncio.Queue(maxsize=self._queue_size)
        self._worker = asyncio.create_task(self._drain_queue(self._queue), name="syncd-notify")

    def enqueue(self, events: Iterable[Event]) -> None:
        """Hand `events` to the background sender and return at once; never raises."""
        for event in events:
            if self._queue is None:
                if self._url is not None:
                    log.warning("notify.dropped", notification=event.kind, reason="the sender is not running")
                    self._tell("dropped")
                continue
            try:
                self._queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("notify.dropped", notification=event.kind, reason="queue full")
                self._tell("dropped")
                continue
            self._undelivered.append(event)

    def after_cycle(self, kv: KeyValues, result: CycleLike) -> None:
        """Work out the events of a finished cycle (with the stored state) and enqueue them; never raises."""
        if self._url is None:
            return
        self.enqueue(events_after_cycle(kv, result))

    async def send_summary(self, source: SummarySource) -> None:
        """Gather the daily summary now (in a thread: it reads the database) and enqueue it; never raises."""
        if self._url is None:
            return
        try:
            event = summary_event(await asyncio.to_thread(gather_summary, source))
        except Exception as exc:
            log.warning("notify.summary_failed", error=redact_text(str(exc)), error_type=type(exc).__name__)
            return
        self.enqueue([event])

    async def _drain_queue(self, queue: asyncio.Queue[Event]) -> None:
        while True:
            event = await queue.get()
            try:
                await self.send(event)
            finally:
                if event in self._undelivered:
                    self._undelivered.remove(event)
                queue.task_done()

    async def aclose(self, *, timeout_s: float = 0.0) -> None:
        """Give queued events up to `timeout_s` to go out, drop the rest with a warning, close the client."""
        worker, queue = self._worker, self._queue
        self._worker = self._queue = None
        if worker is not None and queue is not None:
            if self._undelivered and timeout_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.join(), timeout=timeout_s)
            if self._undelivered:
                log.warning(
                    "notify.dropped",
                    notifications=[event.kind for event in self._undelivered],
                    reason=f"shutting down (waited {timeout_s:g} s)",
                )
                self._tell("dropped", len(self._undelivered))
                self._undelivered.clear()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()
        if self._filter is not None:
            logging.getLogger("httpx").removeFilter(self._filter)
            self._filter = None


async def deliver(settings: NotifySettings, events: Sequence[Event], **options: Any) -> int:
    """Send `events` one after the other, each with its retries; how many were delivered. Never raises."""
    if not events or settings.webhook_url is None:
        return 0
    async with Notifier(settings, **options) as notifier:
        return sum([await notifier.send(event) for event in events])


def send_after_cycle(settings: NotifySettings, kv: KeyValues, result: CycleLike) -> None:
    """For `syncd sync`: the events of the cycle just recorded, sent now (bounded by the retries).

    Blocks until they are delivered or given up; never raises, so the exit code stays the cycle's. Call it
    outside any running event loop.
    """
    if settings.webhook_url is None:
        return
    events = events_after_cycle(kv, result)
    if not events:
        return
    try:
        asyncio.run(deliver(settings, events))
    except Exception as exc:
        log.error("notify.failed", notification=events[0].kind, status=None, reason=type(exc).__name__)
