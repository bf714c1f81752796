"""Prometheus metrics of the daemon, in a registry of its own (tests and daemons never share one).

Every series an alert in `deploy/prometheus/syncd-rules.yml` reads is exported from the start: labelled
counters are created at 0 for each label value they can take, so `increase()` sees their first step and the
rules test finds every name on a fresh daemon's `/metrics` (tests/e2e/test_alert_rules.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from syncd.config.settings import DEFAULT_INTERVAL_S
from syncd.core.model import Action, Outcome
from syncd.core.reconcile import Guard

if TYPE_CHECKING:
    from syncd.core.quarantine import QuarantineState
    from syncd.cycle.engine import CycleResult

DURATION_BUCKETS_S = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

CYCLE_OUTCOMES = ("ok", "failed", "guard", "error")
"""How a cycle ends, as the daemon counts it: every user converged, some failed or wait for a retry, stopped
by a safety guard, or failed as a whole."""
WRITE_OUTCOMES = (Outcome.OK, Outcome.ADOPTED, Outcome.ALREADY_GONE, Outcome.FAILED)
"""The settled outcomes of a SmartCommunicator write (pending and skipped ones are not writes done)."""
APIS = ("graph", "smartcomm")
"""The remote APIs whose throttling is counted."""
NOTIFICATION_OUTCOMES = ("sent", "failed", "dropped")
"""What became of a notification: the webhook accepted it, refused it or never answered after every
attempt, or it was never sent (its queue full, or shutting down)."""


class Metrics:
    """The series `/metrics` exposes."""

    def __init__(self, *, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        """`interval_s` is sync.interval, exported for the alerts that count in intervals."""
        self.registry = CollectorRegistry()
        self.cycles = Counter(
            "syncd_cycles",
            "Sync cycles by outcome (ok, failed, guard, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.guard_stops = Counter(
            "syncd_guard_stops",
            "Cycles a safety guard stopped before any write, by guard (max_offboard, max_update, "
            "empty_group, teams_numbers).",
            ["guard"],
            registry=self.registry,
        )
        self.operations = Counter(
            "syncd_operations",
            "SmartCommunicator writes by action (onboard, update, offboard, relink) and outcome.",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.managed = Gauge(
            "syncd_managed_agents",
            "Agents syncd manages (members with status active).",
            registry=self.registry,
        )
        self.members = Gauge(
            "syncd_members", "Recorded people by status.", ["status"], registry=self.registry
        )
        self.skipped = Gauge(
            "syncd_skipped_users",
            "Group members out of scope in the last cycle, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.deferred = Gauge(
            "syncd_deferred_users",
            "People whose last write failed, waiting out their retry backoff after the last cycle.",
            registry=self.registry,
        )
        self.offboard_pending = Gauge(
            "syncd_offboard_pending",
            "People out of scope whose agent waits out sync.offboard_grace before it is offboarded.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "When a cycle last ended with every in-scope user converged.",
            registry=self.registry,
        )
        self.last_outcome = Gauge(
            "syncd_last_cycle_outcome",
            "1 for the outcome of this replica's last cycle (ok, failed, guard, error), 0 for the others; "
            "all 0 before the first cycle and on a standby.",
            ["outcome"],
            registry=self.registry,
        )
        self.interval = Gauge(
            "syncd_sync_interval_seconds",
            "sync.interval: seconds between scheduled incremental cycles.",
            registry=self.registry,
        )
        self.quarantined = Gauge(
            "syncd_quarantined",
            "1 while cycles fail as a whole and scheduled ones back off (quarantine), else 0.",
            registry=self.registry,
        )
        self.quarantine_failed_cycles = Gauge(
            "syncd_quarantine_failed_cycles",
            "Cycles failed as a whole since the quarantine began (0 when not quarantined).",
            registry=self.registry,
        )
        self.leader = Gauge(
            "syncd_leader",
            "1 when this replica leads (runs cycles), 0 on a standby (PostgreSQL replicas).",
            registry=self.registry,
        )
        self.throttled = Counter(
            "syncd_throttled_responses",
            "Responses 429 (throttled) from Graph or SmartCommunicator, retried ones included, by API.",
            ["api"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "syncd_notifications",
            "Notifications to notify.webhook_url by outcome (sent, failed, dropped).",
            ["outcome"],
            registry=self.registry,
        )
        self.write_concurrency = Gauge(
            "syncd_write_concurrency",
            "SmartCommunicator requests allowed in flight after the last cycle's writes: sync.concurrency, "
            "less while 429 or 503 answers have cut it (it grows back while answers are clean).",
            registry=self.registry,
        )
        self.duration = Histogram(
            "syncd_cycle_duration_seconds",
            "Wall time of sync cycles.",
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._last_success_at = 0.0
        self.interval.set(interval_s)
        for outcome in CYCLE_OUTCOMES:
            self.cycles.labels(outcome=outcome)
            self.last_outcome.labels(outcome=outcome).set(0)
        for action in Action:
            for written in WRITE_OUTCOMES:
                self.operations.labels(action=action.value, outcome=written.value)
        for api in APIS:
            self.throttled.labels(api=api)
        for sent in NOTIFICATION_OUTCOMES:
            self.notifications.labels(outcome=sent)
        for guard in get_args(Guard):
            self.guard_stops.labels(guard=guard)

    def observe(self, result: CycleResult, outcome: str, by_status: Mapping[str, int]) -> None:
        """Account for one finished cycle."""
        self.cycles.labels(outcome=outcome).inc()
        if result.stopped_by is not None:
            self.guard_stops.labels(guard=result.stopped_by.guard).inc()
        self.duration.observe(result.duration_s)
        for action, outcomes in result.outcomes.items():
            for name, count in outcomes.items():
                self.operations.labels(action=action, outcome=name).inc(count)
        if result.write_concurrency is not None:
            self.write_concurrency.set(result.write_concurrency)
        self.managed.set(by_status.get("active", 0))
        for status, count in by_status.items():
            self.members.labels(status=status).set(count)
        if result.planned:  # the cycle got as far as a plan: it knows the pending offboards
            self.offboard_pending.set(len(result.offboard_pending))
        if outcome != "guard" and result.error is None:
            self.skipped.clear()
            for reason, count in result.skipped.items():
                self.skipped.labels(reason=reason).set(count)
        if result.error is None:  # a plan was made: its deferred people are known
            self.deferred.set(result.deferred)
        for name in CYCLE_OUTCOMES:
            self.last_outcome.labels(outcome=name).set(1 if name == outcome else 0)
        if outcome == "ok":
            self._last_success_at = time.time()
            self.last_success.set(self._last_success_at)

    def observe_quarantine(self, state: QuarantineState | None) -> None:
        """Show the quarantine as last read or left by a cycle."""
        self.quarantined.set(0 if state is None else 1)
        self.quarantine_failed_cycles.set(0 if state is None else state.failed_cycles)

    def observe_last_success(self, when: float | None) -> None:
        """Show when a cycle last succeeded as the database recorded it (a new leader's start), unless a
        cycle of this process succeeded later."""
        if when is not None and when > self._last_success_at:
            self._last_success_at = when
            self.last_success.set(when)

    def forget_last_cycle(self) -> None:
        """A replica that stops leading: what its last cycle did is no longer the system's state."""
        for name in CYCLE_OUTCOMES:
            self.last_outcome.labels(outcome=name).set(0)

    def count_throttled(self, api: str) -> None:
        """One 429 from `api` ("graph" or "smartcomm")."""
        self.throttled.labels(api=api).inc()

    def count_notification(self, outcome: str) -> None:
        """One notification `outcome` ("sent", "failed" or "dropped")."""
        self.notifications.labels(outcome=outcome).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
