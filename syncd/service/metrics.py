"""Prometheus metrics of the daemon, in a registry of its own (tests and daemons never share one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from syncd.core.quarantine import QuarantineState
    from syncd.cycle.engine import CycleResult

DURATION_BUCKETS_S = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """The series `/metrics` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cycles = Counter(
            "syncd_cycles",
            "Sync cycles by outcome (ok, failed, guard, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.operations = Counter(
            "syncd_operations",
            "SmartCommunicator writes by action and outcome.",
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
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "When a cycle last ended with every in-scope user converged.",
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

    def observe(self, result: CycleResult, outcome: str, by_status: Mapping[str, int]) -> None:
        """Account for one finished cycle."""
        self.cycles.labels(outcome=outcome).inc()
        self.duration.observe(result.duration_s)
        for action, outcomes in result.outcomes.items():
            for name, count in outcomes.items():
                self.operations.labels(action=action, outcome=name).inc(count)
        if result.write_concurrency is not None:
            self.write_concurrency.set(result.write_concurrency)
        self.managed.set(by_status.get("active", 0))
        for status, count in by_status.items():
            self.members.labels(status=status).set(count)
        if outcome != "guard" and result.error is None:
            self.skipped.clear()
            for reason, count in result.skipped.items():
                self.skipped.labels(reason=reason).set(count)
        if outcome == "ok":
            self.last_success.set_to_current_time()

    def observe_quarantine(self, state: QuarantineState | None) -> None:
        """Show the quarantine as last read or left by a cycle."""
        self.quarantined.set(0 if state is None else 1)
        self.quarantine_failed_cycles.set(0 if state is None else state.failed_cycles)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
