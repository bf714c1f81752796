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

This package imports neither the engine nor the store: callers pass a cycle result and a key/value store,
which are described structurally (`CycleLike`, `KeyValues`, `SummarySource`). `events` holds the pure
parts (facts, state, events, payloads); `sender` the I/O (the stored state, the summary's reading, the
webhook).
"""

from syncd.core.model import KeyValues
from syncd.service.notify.events import (
    ERROR_CHARS,
    STATE_KEY,
    SUMMARY_PEOPLE,
    TITLES,
    Attention,
    CycleFacts,
    CycleLike,
    Event,
    EventKind,
    Fact,
    FactValue,
    NotifyState,
    SummaryFacts,
    SummarySource,
    cycle_facts,
    describe_duration,
    guard_event,
    json_payload,
    operations_of_counts,
    payload,
    quarantined_event,
    recovered_event,
    summary_event,
    teams_payload,
    transition,
)
from syncd.service.notify.sender import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    QUEUE_SIZE,
    RETRY_AFTER_MAX_S,
    SHUTDOWN_BUDGET_S,
    SUMMARY_WINDOW_S,
    Notifier,
    advance,
    deliver,
    events_after_cycle,
    gather_summary,
    retry_after_s,
    send_after_cycle,
)

__all__ = [
    "BACKOFF_INITIAL_S",
    "BACKOFF_MAX_S",
    "ERROR_CHARS",
    "QUEUE_SIZE",
    "RETRY_AFTER_MAX_S",
    "SHUTDOWN_BUDGET_S",
    "STATE_KEY",
    "SUMMARY_PEOPLE",
    "SUMMARY_WINDOW_S",
    "TITLES",
    "Attention",
    "CycleFacts",
    "CycleLike",
    "Event",
    "EventKind",
    "Fact",
    "FactValue",
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
