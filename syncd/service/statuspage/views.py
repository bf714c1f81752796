"""What the status page shows, as plain data: the daemon's state, the runs, the people needing attention,
the offboards waiting out the grace period, the latest relinks and the quarantine, parsed from the status
document (`StatusData.from_document`), and the health verdict at the top of the page (`health`). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from syncd.core.setting_changes import SettingChange, describe_changes
from syncd.core.times import utc_text

_DONE_OUTCOMES = ("ok", "adopted", "already_gone")
"""Operation outcomes that count as a change made (see `CycleResult.counts`: `<action>_<outcome>`)."""

Health = Literal["healthy", "guard", "failing", "unknown"]


@dataclass(frozen=True, slots=True)
class DaemonState:
    """What the daemon knows beyond the database."""

    started_at: float
    """Epoch seconds."""
    running: str | None = None
    """The trigger of the cycle in flight ("schedule", "manual", ...), or None when idle."""
    running_full: bool = False
    last_outcome: str | None = None
    """"ok", "failed", "guard" or "error" for the last cycle since start; None before the first."""
    systemic_failure: str | None = None
    """Why the last cycle failed as a whole (`Daemon.systemic_failure`), or None."""
    last_run_id: int | None = None
    """The run of the daemon's last cycle."""
    guard: str | None = None
    """The guard that stopped the daemon's last cycle ("max_offboard", "empty_group"), or None."""
    guard_message: str | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)
    """People out of scope (as recorded), by skip reason."""


@dataclass(frozen=True, slots=True)
class RunRow:
    """One recorded cycle, as `status_document` lists it."""

    id: int
    trigger: str
    kind: str
    dry_run: bool
    started_at: float
    ended_at: float | None
    outcome: str
    counts: Mapping[str, int]
    error: str | None = None
    settings_changed: Sequence[SettingChange] = ()
    """The settings shaping desired state this run found changed since the last cycle."""

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else max(0.0, self.ended_at - self.started_at)

    def changes(self, action: str) -> int:
        """Writes of `action` that took effect (ok, adopted or already gone)."""
        return sum(int(self.counts.get(f"{action}_{outcome}", 0)) for outcome in _DONE_OUTCOMES)

    @property
    def failures(self) -> int:
        return int(self.counts.get("failed", 0))


@dataclass(frozen=True, slots=True)
class AttentionRow:
    """A person whose last write failed or is not settled."""

    object_id: str
    upn: str | None
    status: str
    detail: str | None
    attempts: int
    next_attempt_at: float | None


@dataclass(frozen=True, slots=True)
class PendingOffboardRow:
    """A person out of scope whose agent waits out `sync.offboard_grace`."""

    object_id: str
    upn: str | None
    left_scope_at: float | None
    due_at: float | None


@dataclass(frozen=True, slots=True)
class RelinkRow:
    """An agent moved to a re-created user (or an attempt at it)."""

    at: float
    from_object_id: str | None
    object_id: str
    upn: str | None
    outcome: str
    run_id: int


@dataclass(frozen=True, slots=True)
class QuarantineView:
    """The quarantine as `status_document` reports it ("quarantine"; see `syncd.core.quarantine`)."""

    reason: str
    since: float
    """Epoch seconds."""
    failed_cycles: int
    next_at: float
    """Epoch seconds: the daemon's next scheduled try."""


@dataclass(frozen=True, slots=True)
class StatusData:
    """Everything the status page shows."""

    daemon: DaemonState
    runs: Sequence[RunRow] = ()
    """Newest first, as the store returns them."""
    members: Mapping[str, int] = field(default_factory=dict)
    """Members by status."""
    phone_sources: Mapping[str, int] = field(default_factory=dict)
    """Active agents by the source of their number."""
    attention: Sequence[AttentionRow] = ()
    quarantine: QuarantineView | None = None
    """Set while cycles fail as a whole and scheduled ones back off."""
    offboard_pending: Sequence[PendingOffboardRow] = ()
    """Longest out first."""
    relinks: Sequence[RelinkRow] = ()
    """Newest first."""

    @classmethod
    def from_document(cls, document: Mapping[str, Any], daemon: DaemonState) -> StatusData:
        """From `syncd.reports.status.status_document`'s shape (also `GET /status`)."""
        runs = [
            RunRow(
                id=int(r["id"]),
                trigger=str(r["trigger"]),
                kind=str(r["kind"]),
                dry_run=bool(r.get("dry_run", False)),
                started_at=float(r["started_at"]),
                ended_at=None if r.get("ended_at") is None else float(r["ended_at"]),
                outcome=str(r["outcome"]),
                counts={str(k): int(v) for k, v in (r.get("counts") or {}).items()},
                error=None if r.get("error") is None else str(r["error"]),
                settings_changed=tuple(
                    SettingChange(str(c["key"]), c.get("from"), c.get("to"))
                    for c in r.get("settings_changed") or ()
                    if isinstance(c, Mapping) and "key" in c
                ),
            )
            for r in document.get("runs", ())
        ]
        attention = [
            AttentionRow(
                object_id=str(m["object_id"]),
                upn=None if m.get("upn") is None else str(m["upn"]),
                status=str(m["status"]),
                detail=None if m.get("detail") is None else str(m["detail"]),
                attempts=int(m.get("attempts") or 0),
                next_attempt_at=None if m.get("next_attempt_at") is None else float(m["next_attempt_at"]),
            )
            for m in document.get("attention", ())
        ]
        q = document.get("quarantine")
        quarantine = (
            QuarantineView(
                reason=str(q["reason"]),
                since=float(q["since"]),
                failed_cycles=int(q.get("failed_cycles") or 1),
                next_at=float(q["next_at"]),
            )
            if isinstance(q, Mapping)
            else None
        )
        pending = [
            PendingOffboardRow(
                object_id=str(p["object_id"]),
                upn=None if p.get("upn") is None else str(p["upn"]),
                left_scope_at=_number(p.get("left_scope_at")),
                due_at=_number(p.get("due_at")),
            )
            for p in document.get("offboard_pending", ())
        ]
        relinks = [
            RelinkRow(
                at=float(r["at"]),
                from_object_id=None if r.get("from_object_id") is None else str(r["from_object_id"]),
                object_id=str(r["object_id"]),
                upn=None if r.get("upn") is None else str(r["upn"]),
                outcome=str(r["outcome"]),
                run_id=int(r["run_id"]),
            )
            for r in document.get("relinks", ())
        ]
        return cls(
            daemon=daemon,
            runs=runs,
            members={str(k): int(v) for k, v in (document.get("members") or {}).items()},
            phone_sources={str(k): int(v) for k, v in (document.get("phone_sources") or {}).items()},
            attention=attention,
            quarantine=quarantine,
            offboard_pending=pending,
            relinks=relinks,
        )

    @property
    def managed_agents(self) -> int:
        """Active agents we manage (every one has a recorded number source, "unknown" included)."""
        return sum(self.phone_sources.values())


@dataclass(frozen=True, slots=True)
class HealthView:
    """The verdict at the top of the page."""

    state: Health
    title: str
    detail: str | None = None
    settings_changed: str | None = None
    """When the newest finished real cycle found settings shaping desired state changed: which, in words."""


def health(data: StatusData) -> HealthView:
    """The verdict at the top of the page (`_verdict`), with the settings the newest finished real cycle
    found changed since the cycle before it, if any."""
    verdict = _verdict(data)
    latest = next((r for r in data.runs if not r.dry_run and r.outcome != "running"), None)
    if latest is None or not latest.settings_changed:
        return verdict
    changes = describe_changes(latest.settings_changed)
    note = f"Run {latest.id} found settings changed since the last cycle: {changes}"
    return replace(verdict, settings_changed=note)


def _verdict(data: StatusData) -> HealthView:
    """Failing, stopped by a guard, healthy, or unknown (no cycle yet), by precedence in that order.

    The quarantine wins (since when, why, the next scheduled try), then the daemon's systemic failure (both
    are what /readyz reports); otherwise the newest finished real
    cycle decides (dry runs and cycles still running do not). A guard stop's message is known only for the
    daemon's own last cycle: the runs table records which runs a guard stopped, not why.
    """
    daemon = data.daemon
    q = data.quarantine
    if q is not None:
        cycles = f"{q.failed_cycles} failed cycle{'' if q.failed_cycles == 1 else 's'}"
        return HealthView(
            "failing",
            f"Quarantined since {utc_text(q.since)} UTC",
            f"{q.reason}; next try at {utc_text(q.next_at)} UTC ({cycles}; Sync now tries at once)",
        )
    if daemon.systemic_failure is not None:
        return HealthView("failing", "The last cycle failed as a whole", daemon.systemic_failure)
    # `syncd relink` runs are an admin's single write, not cycles: they say nothing about the schedule.
    latest = next(
        (r for r in data.runs if not r.dry_run and r.outcome != "running" and r.kind != "relink"), None
    )
    if latest is None:
        return HealthView("unknown", "No cycle has finished yet")
    if latest.outcome == "guard":
        if daemon.guard is not None and daemon.last_run_id == latest.id:
            return HealthView(
                "guard", f"Stopped by a safety guard: {daemon.guard}", daemon.guard_message or None
            )
        return HealthView(
            "guard",
            "Stopped by a safety guard",
            f"run {latest.id} was stopped before changing anything; the daemon's log says why "
            "(event sync.stopped_by_guard)",
        )
    if latest.outcome == "error":
        return HealthView("failing", "The last cycle failed as a whole", latest.error or f"run {latest.id}")
    waiting = len(data.attention)
    if waiting:
        noun = "person needs" if waiting == 1 else "people need"
        return HealthView("healthy", "Healthy", f"{waiting} {noun} attention (below); the others are in step")
    return HealthView("healthy", "Healthy", "every managed agent is in step")


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
