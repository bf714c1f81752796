"""Notifications: a JSON POST to `notify.webhook_url` when syncd needs an admin, and a daily summary.

Events:

- `quarantined`: a cycle failed as a whole (Graph or SmartCommunicator unavailable, credentials or
  permissions rejected, a systemic failure that stopped the writes);
- `recovered`: the first cycle that runs as a whole again after that, with how long it was failing;
- `guard_stopped`: the deletion guard (or the empty-group guard) stopped a cycle;
- `daily_summary`: the last 24 hours (the daemon only, with `notify.daily_summary`).

Deduplication is by state, not by time: failing cycles after the first send nothing until one recovers, and a
guard that keeps stopping consecutive cycles sends once. The state lives in the database's key/value table
(`STATE_KEY`), so a restarted daemon and separate `syncd sync` runs (cron) agree. `transition` is the whole
decision and is pure; `teams_payload` and `json_payload` build what is sent, also pure.

`Notifier` sends: one pooled httpx client on aiohttp's transport, retries of timeouts, dropped connections,
5xx and 429 (honouring Retry-After up to a cap), never a raised error and never the URL in a log line (it is
the webhook's credential). The daemon hands events to a background task and goes on (`Notifier.after_cycle`,
`Notifier.aclose` drains for a bounded time); `syncd sync` sends after its cycle is recorded
(`send_after_cycle`), and its exit code never depends on the webhook.

This module imports neither the engine nor the store: callers pass a cycle result and a key/value store,
which are described here structurally (`CycleLike`, `KeyValues`, `SummarySource`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

import httpx
import structlog
from httpx_aiohttp import AiohttpTransport

from syncd import __version__
from syncd.config.logs import redact_text
from syncd.config.settings import NotifySettings
from syncd.config.tls import is_tls_verification_failure, ssl_context
from syncd.core.backoff import backoff_delay_s
from syncd.core.model import Action, KeyValues, Outcome, Recorded
from syncd.core.times import utc_text

log = structlog.get_logger("syncd.notify")

STATE_KEY = "notify_state"
"""Key of the deduplication state in the store's key/value table (JSON, see `NotifyState`)."""
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
SUMMARY_PEOPLE = 10
"""People needing attention named in a daily summary (the count covers all of them)."""
ERROR_CHARS = 500
"""Characters of an error message kept in an event."""

EventKind = Literal["quarantined", "recovered", "guard_stopped", "daily_summary"]
FactValue = str | int | float | bool | None | Mapping[str, int]

TITLES: dict[EventKind, str] = {
    "quarantined": "syncd: sync is failing",
    "recovered": "syncd: sync has recovered",
    "guard_stopped": "syncd: a safety guard stopped the sync",
    "daily_summary": "syncd: daily summary",
}
"""The title of each event (the first line of a card)."""
_COLORS: dict[EventKind, str] = {
    "quarantined": "attention",
    "recovered": "good",
    "guard_stopped": "warning",
    "daily_summary": "accent",
}
"""Adaptive Card colour of the title, by event."""
_ACTIONS = frozenset(action.value for action in Action)
_OUTCOMES = frozenset(outcome.value for outcome in Outcome)


# -- events ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One fact of an event: `key` and `value` for the JSON format, `label` and `shown` for a card."""

    key: str
    label: str
    value: FactValue
    shown: str


@dataclass(frozen=True)
class Event:
    """One notification, independent of the format it is sent in."""

    kind: EventKind
    title: str
    text: str
    facts: tuple[Fact, ...]
    at: float
    """Epoch seconds: when it happened."""
    details: tuple[tuple[str, str], ...] = ()
    """Further (name, value) lines: the people needing attention in a daily summary."""

    def fact(self, key: str) -> FactValue:
        """The value of the fact named `key` (KeyError if there is none)."""
        for item in self.facts:
            if item.key == key:
                return item.value
        raise KeyError(key)


def _fact(key: str, label: str, value: FactValue, shown: str | None = None) -> Fact:
    return Fact(key, label, value, _show(value) if shown is None else shown)


def _show(value: FactValue) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items()) or "none"
    return str(value)


def describe_duration(seconds: float) -> str:
    """Pure: a duration for people, to two units: "45 s", "25 min 3 s", "2 h 5 min", "3 d 4 h"."""
    total = max(round(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    first = next((i for i, (n, _) in enumerate(units) if n), len(units) - 1)
    shown = [units[first], *(unit for unit in units[first + 1 : first + 2] if unit[0])]
    return " ".join(f"{n} {name}" for n, name in shown)


def _clean(text: str | None) -> str:
    """An error message fit for a notification: secrets masked, bounded."""
    text = redact_text(text or "")
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


# -- the state machine (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class CycleFacts:
    """What the notification state machine needs to know about one finished cycle."""

    outcome: str
    """"ok", "failed" (some people failed; the cycle ran), "error" (failed as a whole), "guard"."""
    at: float
    """Epoch seconds: when the cycle ended."""
    started_at: float
    """Epoch seconds: when the cycle started."""
    run_id: int | None = None
    kind: str = "incremental"
    error: str | None = None
    """Why the cycle failed as a whole ("error")."""
    guard: str | None = None
    """The guard that stopped the cycle ("guard"): "max_offboard" or "empty_group"."""
    guard_message: str | None = None
    planned_offboard: int = 0
    """Offboardings the cycle planned (those a guard held back)."""


@dataclass(frozen=True)
class NotifyState:
    """What has been notified, kept between cycles and processes (`STATE_KEY`)."""

    failing_since: float | None = None
    """Epoch seconds the first of the current run of failing cycles started; None when not failing."""
    failing_cycles: int = 0
    """Cycles failed as a whole since `failing_since`."""
    last_error: str | None = None
    """The latest of their errors."""
    guard: str | None = None
    """The guard whose stop was notified, while consecutive cycles keep being stopped by it."""

    def to_json(self) -> str:
        """Pure: the stored form."""
        return json.dumps(
            {
                "failing_since": self.failing_since,
                "failing_cycles": self.failing_cycles,
                "last_error": self.last_error,
                "guard": self.guard,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | None) -> NotifyState:
        """Pure: the state stored as `raw`; the initial state when it is absent or unreadable."""
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        since, cycles, error, guard = (
            data.get(k) for k in ("failing_since", "failing_cycles", "last_error", "guard")
        )
        return cls(
            failing_since=float(since) if isinstance(since, int | float) else None,
            failing_cycles=cycles if isinstance(cycles, int) else 0,
            last_error=error if isinstance(error, str) else None,
            guard=guard if isinstance(guard, str) else None,
        )


def transition(state: NotifyState, facts: CycleFacts) -> tuple[NotifyState, tuple[Event, ...]]:
    """Pure: the state after a cycle with these facts, and the events to send for it.

    - "error": `quarantined` when not already failing; later failing cycles send nothing.
    - any cycle that ran as a whole ("ok", "failed", "guard") after failing: `recovered`, and the state
      starts afresh (a guard already notified before the failure is notified again).
    - "guard": `guard_stopped` unless the previous cycle was stopped by the same guard and notified.
    - "ok"/"failed" end a run of guard stops; an "error" cycle ends it too.
    - any other outcome ("interrupted", ...) changes nothing.
    """
    if facts.outcome == "error":
        error = _clean(facts.error) or "unknown error"
        if state.failing_since is None:
            failing = NotifyState(failing_since=facts.started_at, failing_cycles=1, last_error=error)
            return failing, (quarantined_event(facts, error),)
        return replace(state, failing_cycles=state.failing_cycles + 1, last_error=error, guard=None), ()
    if facts.outcome not in ("ok", "failed", "guard"):
        return state, ()
    events: list[Event] = []
    if state.failing_since is not None:
        events.append(recovered_event(state, facts))
        state = NotifyState()
    if facts.outcome == "guard":
        guard = facts.guard or "guard"
        if state.guard != guard:
            events.append(guard_event(facts, guard))
        return replace(state, guard=guard), tuple(events)
    return replace(state, guard=None), tuple(events)


def quarantined_event(facts: CycleFacts, error: str) -> Event:
    """Pure: the `quarantined` event of the first cycle that failed as a whole."""
    return Event(
        kind="quarantined",
        title=TITLES["quarantined"],
        text=(
            "A sync cycle failed as a whole, so SmartCommunicator agents are not being kept in step: "
            f"{error.rstrip('.')}. syncd tries again every cycle; you will be told once a cycle runs again."
        ),
        facts=(
            _fact("error", "Error", error),
            _fact("failing_since", "Failing since", utc_text(facts.started_at, "iso")),
            _fact("run_id", "Run", facts.run_id),
            _fact("kind", "Cycle", facts.kind),
        ),
        at=facts.at,
    )


def recovered_event(state: NotifyState, facts: CycleFacts) -> Event:
    """Pure: the `recovered` event of the first cycle that ran as a whole after failing ones."""
    since = state.failing_since if state.failing_since is not None else facts.started_at
    failing_for = max(facts.at - since, 0.0)
    cycles = state.failing_cycles
    return Event(
        kind="recovered",
        title=TITLES["recovered"],
        text=(
            f"Sync cycles run again after failing for {describe_duration(failing_for)} "
            f"({cycles} failed cycle{'' if cycles == 1 else 's'}). This cycle ended {facts.outcome}."
        ),
        facts=(
            _fact("failing_for_s", "Failing for", round(failing_for, 1), describe_duration(failing_for)),
            _fact("failed_cycles", "Failed cycles", cycles),
            _fact("failing_since", "Failing since", utc_text(since, "iso")),
            _fact("last_error", "Last error", state.last_error),
            _fact("outcome", "This cycle", facts.outcome),
            _fact("run_id", "Run", facts.run_id),
        ),
        at=facts.at,
    )


def guard_event(facts: CycleFacts, guard: str) -> Event:
    """Pure: the `guard_stopped` event of a cycle a safety guard stopped."""
    message = _clean(facts.guard_message) or "a safety guard stopped the cycle"
    return Event(
        kind="guard_stopped",
        title=TITLES["guard_stopped"],
        text=(
            f"The {guard} guard stopped a cycle: {message} While it keeps stopping cycles nobody is "
            "onboarded, updated or offboarded, and you are not told again. With the daemon, force one cycle "
            "with `syncd resync --force --wait`."
        ),
        facts=(
            _fact("guard", "Guard", guard),
            _fact("planned_offboard", "Planned offboards", facts.planned_offboard),
            _fact("run_id", "Run", facts.run_id),
            _fact("kind", "Cycle", facts.kind),
        ),
        at=facts.at,
    )


# -- the daily summary (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    """One person needing attention, as the daily summary names them."""

    object_id: str
    upn: str | None
    status: str
    attempts: int
    detail: str | None


@dataclass(frozen=True)
class SummaryFacts:
    """What the daily summary reports."""

    since: float
    until: float
    runs: Mapping[str, int]
    """Runs that started in the window (dry runs excluded), by outcome."""
    operations: Mapping[str, Mapping[str, int]]
    """Their operations, by action then outcome."""
    members: Mapping[str, int]
    """Members by status, now."""
    attention: Sequence[Attention] = field(default_factory=tuple)
    """Everyone needing attention, now."""


def summary_event(facts: SummaryFacts) -> Event:
    """Pure: the `daily_summary` event."""
    runs_total = sum(facts.runs.values())
    ops_total = sum(n for by_outcome in facts.operations.values() for n in by_outcome.values())
    operations = {
        f"{action}_{outcome}": n
        for action, by_outcome in sorted(facts.operations.items())
        for outcome, n in sorted(by_outcome.items())
    }
    people = len(facts.attention)
    text = (
        f"Since {utc_text(facts.since, 'iso')}: {runs_total} run{'' if runs_total == 1 else 's'} "
        f"and {ops_total} operation{'' if ops_total == 1 else 's'}; "
        f"{people} {'person needs' if people == 1 else 'people need'} attention."
    )
    if runs_total == 0:
        text += " No cycle ran in these 24 hours: is the schedule working?"
    details = [
        (
            person.upn or person.object_id,
            f"{person.status}, attempts {person.attempts}"
            + (f": {_clean(person.detail)}" if person.detail else ""),
        )
        for person in facts.attention[:SUMMARY_PEOPLE]
    ]
    if people > SUMMARY_PEOPLE:
        details.append(("...", f"and {people - SUMMARY_PEOPLE} more (`syncd status`)"))
    return Event(
        kind="daily_summary",
        title=TITLES["daily_summary"],
        text=text,
        facts=(
            _fact("runs", "Runs", dict(sorted(facts.runs.items()))),
            _fact("operations", "Operations", operations),
            _fact("members", "Members", dict(sorted(facts.members.items()))),
            _fact("attention", "Needing attention", people),
            _fact("since", "Since", utc_text(facts.since, "iso")),
        ),
        at=facts.until,
        details=tuple(details),
    )


def operations_of_counts(counts: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Pure: the operations in a run's counts ("onboard_ok": 3, ...), by action then outcome."""
    found: dict[str, dict[str, int]] = {}
    for key, n in counts.items():
        action, _, outcome = key.partition("_")
        if action in _ACTIONS and outcome in _OUTCOMES and n:
            found.setdefault(action, {})[outcome] = n
    return found


# -- payloads (pure) --------------------------------------------------------------------------------


def teams_payload(event: Event, *, host: str) -> dict[str, Any]:
    """Pure: a message that a Teams incoming webhook (Workflows) posts as an Adaptive Card 1.4."""
    facts = [{"title": item.label, "value": item.shown} for item in event.facts]
    facts.append({"title": "Host", "value": host})
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": event.title,
            "weight": "bolder",
            "size": "medium",
            "color": _COLORS[event.kind],
            "wrap": True,
        },
        {"type": "TextBlock", "text": event.text, "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    if event.details:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in event.details]})
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


def json_payload(event: Event, *, host: str) -> dict[str, Any]:
    """Pure: the plain JSON form: event, title, text, facts (by key), details, time, source, host."""
    return {
        "event": event.kind,
        "title": event.title,
        "text": event.text,
        "facts": {item.key: _jsonable(item.value) for item in event.facts},
        "details": [{"title": k, "value": v} for k, v in event.details],
        "time": utc_text(event.at, "iso"),
        "source": "syncd",
        "host": host,
    }


def payload(event: Event, *, form: str, host: str) -> dict[str, Any]:
    """Pure: `event` in the configured format ("teams" or "json")."""
    return teams_payload(event, host=host) if form == "teams" else json_payload(event, host=host)


def _jsonable(value: FactValue) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


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


# -- what callers hand over (structural, so that this module imports neither engine nor store) --------


class _GuardLike(Protocol):
    @property
    def guard(self) -> str: ...
    @property
    def message(self) -> str: ...


class CycleLike(Protocol):
    """What is read of a cycle's result (`syncd.engine.CycleResult`)."""

    @property
    def run_id(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    @property
    def stopped_by(self) -> _GuardLike | None: ...
    @property
    def planned(self) -> Mapping[str, int]: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def duration_s(self) -> float: ...


class _RunLike(Protocol):
    @property
    def dry_run(self) -> bool: ...
    @property
    def started_at(self) -> float: ...
    @property
    def outcome(self) -> str: ...
    @property
    def counts(self) -> Mapping[str, int]: ...


class SummarySource(Protocol):
    """What the daily summary reads (`syncd.store.Store`)."""

    def runs(self, *, limit: int = ...) -> Sequence[_RunLike]: ...
    def count_by_status(self) -> Mapping[str, int]: ...
    def members_needing_attention(self) -> Sequence[Recorded]: ...


def cycle_facts(result: CycleLike, *, now: float | None = None) -> CycleFacts:
    """The facts of a finished cycle's result; `now` (epoch seconds, default the clock) is when it ended."""
    at = time.time() if now is None else now
    guard = result.stopped_by
    if guard is not None:
        outcome = "guard"
    elif result.error is not None:
        outcome = "error"
    else:
        outcome = "failed" if result.exit_code else "ok"
    return CycleFacts(
        outcome=outcome,
        at=at,
        started_at=at - max(result.duration_s, 0.0),
        run_id=result.run_id,
        kind=result.kind,
        error=result.error,
        guard=None if guard is None else guard.guard,
        guard_message=None if guard is None else guard.message,
        planned_offboard=int(result.planned.get(Action.OFFBOARD.value, 0)),
    )


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
    for one-off sends. `transport`, `rng`, `host` and the backoff keywords are for tests.
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
    ) -> None:
        self._settings = settings
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
            return await self._post(self._url, event)
        except Exception as exc:  # a bug here must never reach a cycle
            log.error("notify.failed", notification=event.kind, status=None, reason=type(exc).__name__)
            return False

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
                continue
            try:
                self._queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("notify.dropped", notification=event.kind, reason="queue full")
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


__all__ = [
    "STATE_KEY",
    "TITLES",
    "Attention",
    "CycleFacts",
    "CycleLike",
    "Event",
    "EventKind",
    "Fact",
    "KeyValues",
    "Notifier",
    "NotifyState",
    "SummaryFacts",
    "SummarySource",
    "advance",
    "cycle_facts",
    "deliver",
    "describe_duration",
    "events_after_cycle",
    "gather_summary",
    "guard_event",
    "json_payload",
    "operations_of_counts",
    "payload",
    "quarantined_event",
    "recovered_event",
    "retry_after_s",
    "send_after_cycle",
    "summary_event",
    "teams_payload",
    "transition",
]
