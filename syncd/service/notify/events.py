"""Notification events, the pure part: the facts of a finished cycle, the deduplicating state machine
(`transition`) and the events it decides on, the event of a cycle that relinked agents, the daily summary's
event, and the messages sent (an Adaptive Card for Teams, or plain JSON).

No I/O here: `sender` reads and stores the state and posts the payloads. What callers hand over is described
structurally (`CycleLike`, `SummarySource`), so that nothing here imports the engine or the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from syncd.core.model import Action, Outcome, Recorded
from syncd.core.redact import redact_text
from syncd.core.setting_changes import SettingChange, describe_changes
from syncd.core.times import utc_text

STATE_KEY = "notify_state"
"""Key of the deduplication state in the store's key/value table (JSON, see `NotifyState`)."""
SUMMARY_PEOPLE = 10
"""People needing attention named in a daily summary (the count covers all of them)."""
RELINKS_NAMED = 10
"""Relinks named in a `relinked` event (the count covers all of them)."""
ERROR_CHARS = 500
"""Characters of an error message kept in an event."""

EventKind = Literal["quarantined", "recovered", "guard_stopped", "relinked", "daily_summary"]
FactValue = str | int | float | bool | None | Mapping[str, int]

TITLES: dict[EventKind, str] = {
    "quarantined": "syncd: sync is failing",
    "recovered": "syncd: sync has recovered",
    "guard_stopped": "syncd: a safety guard stopped the sync",
    "relinked": "syncd: agents moved to re-created users",
    "daily_summary": "syncd: daily summary",
}
"""The title of each event (the first line of a card)."""
_COLORS: dict[EventKind, str] = {
    "quarantined": "attention",
    "recovered": "good",
    "guard_stopped": "warning",
    "relinked": "accent",
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
    """The guard that stopped the cycle ("guard"): "max_offboard", "max_update", "max_relink",
    "empty_group" or "teams_numbers"."""
    guard_message: str | None = None
    planned_offboard: int = 0
    """Offboardings the cycle planned (those a guard held back)."""
    planned_update: int = 0
    """Updates the cycle planned (those a guard held back)."""
    planned_relink: int = 0
    """Relinks the cycle planned (those a guard held back)."""
    relinked: tuple[tuple[str, str, str | None], ...] = ()
    """Agents the cycle moved to re-created users: (old object ID, new object ID, UPN)."""
    settings_changed: str | None = None
    """The settings shaping desired state the cycle found changed since the last one, in words."""


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
    - whatever the outcome, a cycle that moved agents to re-created users also sends `relinked`: each
      relink is notified once, by the cycle that made it.
    """
    state, events = _transition(state, facts)
    if facts.relinked:
        events = (*events, relinked_event(facts))
    return state, events


def _transition(state: NotifyState, facts: CycleFacts) -> tuple[NotifyState, tuple[Event, ...]]:
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
            _fact("planned_update", "Planned updates", facts.planned_update),
            _fact("planned_relink", "Planned relinks", facts.planned_relink),
            *(
                [_fact("settings_changed", "Settings changed", _clean(facts.settings_changed))]
                if facts.settings_changed
                else []
            ),
            _fact("run_id", "Run", facts.run_id),
            _fact("kind", "Cycle", facts.kind),
        ),
        at=facts.at,
    )


def relinked_event(facts: CycleFacts) -> Event:
    """Pure: the `relinked` event of a cycle that moved agents (and their data) to users re-created in
    Entra: how many, and the first `RELINKS_NAMED` of them (old object ID -> new object ID)."""
    count = len(facts.relinked)
    details = [(_clean(upn) or new, f"{old} -> {new}") for old, new, upn in facts.relinked[:RELINKS_NAMED]]
    if count > RELINKS_NAMED:
        details.append(("...", f"and {count - RELINKS_NAMED} more (`syncd history --action relink`)"))
    agents = (
        "1 agent was moved, with its data," if count == 1 else f"{count} agents were moved, with their data,"
    )
    return Event(
        kind="relinked",
        title=TITLES["relinked"],
        text=(
            f"{agents} from an object ID that left Entra to a user re-created with the same consistency "
            "GUID (sync.relink). Nobody was offboarded or onboarded for this."
        ),
        facts=(
            _fact("relinked", "Relinked", count),
            _fact("run_id", "Run", facts.run_id),
            _fact("kind", "Cycle", facts.kind),
        ),
        at=facts.at,
        details=tuple(details),
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


# -- what callers hand over (structural, so that this module imports neither engine nor store) --------


class _GuardLike(Protocol):
    @property
    def guard(self) -> str: ...
    @property
    def message(self) -> str: ...


class CycleLike(Protocol):
    """What is read of a cycle's result (`syncd.cycle.engine.CycleResult`)."""

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
    def settings_changed(self) -> Sequence[SettingChange]: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def relinked(self) -> Sequence[tuple[str, str, str | None]]: ...


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
        planned_update=int(result.planned.get(Action.UPDATE.value, 0)),
        settings_changed=describe_changes(result.settings_changed) or None,
        planned_relink=int(result.planned.get(Action.RELINK.value, 0)),
        relinked=tuple(result.relinked),
    )
