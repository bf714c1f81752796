"""What one cycle did (`CycleResult`): its plan and outcomes, failures, a guard's stop, the quarantine after
it, and the `--json` document and flat counts made from it. The engine fills it; the CLI, the daemon, metrics,
notifications and the status page read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd.core import quarantine
from syncd.core.exits import EXIT_OK
from syncd.core.model import Change
from syncd.core.reconcile import GuardStop
from syncd.core.setting_changes import SettingChange
from syncd.cycle.apply import Failure
from syncd.cycle.desired import FULL


@dataclass(repr=False)
class CycleResult:
    """What a cycle did; `exit_code` is the CLI's. Its repr is a summary of a size independent of the people
    (`__repr__`)."""

    run_id: int | None
    kind: str
    dry_run: bool
    planned: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    unmanaged: int = 0
    failures: list[Failure] = field(default_factory=list)
    stopped_by: GuardStop | None = None
    error: str | None = None
    exit_code: int = EXIT_OK
    duration_s: float = 0.0
    changes: list[Change] = field(default_factory=list)
    phone_sources: dict[str, int] = field(default_factory=dict)
    """Members in scope by where their number came from (graph.phone_source)."""
    ambiguous: dict[str, str] = field(default_factory=dict)
    """Members whose number was chosen among tied candidates, by object ID: how."""
    graph_read: str = FULL
    """How Graph was read: "full" (everything) or "delta" (only changes since the stored links)."""
    graph_read_reason: str | None = None
    """Why Graph was read in full (None for a delta read)."""
    phase_cpu_s: dict[str, float] = field(default_factory=dict)
    """Process CPU seconds per phase of the cycle: "read" (Graph, the agents list, our records), "plan",
    "apply" (writes and their records)."""
    phase_wall_s: dict[str, float] = field(default_factory=dict)
    """Wall seconds of the same phases (a phase waits on Graph, SmartCommunicator and the database too)."""
    write_concurrency: int | None = None
    """The adaptive write concurrency after this cycle's apply step (1 .. `sync.concurrency`; None: the cycle
    stopped before it, or the concurrency is fixed)."""
    quarantine: quarantine.QuarantineState | None = None
    """The quarantine after this cycle (None: not quarantined, or a dry run or `--user` cycle, which neither
    read nor change it)."""
    settings_changed: tuple[SettingChange, ...] = ()
    """The settings shaping desired state that changed since the last cycle that applied its plan (reported
    by every cycle until one applies it)."""
    offboard_pending: dict[str, float] = field(default_factory=dict)
    """People out of scope whose agent waits out `sync.offboard_grace` once this cycle's plan is applied:
    object ID -> when their offboard falls due (epoch seconds)."""
    relinked: list[tuple[str, str, str | None]] = field(default_factory=list)
    """Agents this cycle moved to re-created users: (old object ID, new object ID, UPN), in order."""

    def __repr__(self) -> str:
        """The run, its kind and outcome, and how many changes and failures: never the changes themselves.

        A cycle's result is the result of the task that ran it, and a task's repr holds its result's:
        `asyncio.run` (Python 3.11) makes one as it puts back the SIGINT handler it set (its handler names the
        task), after the cycle returned. The dataclass repr of every planned change cost some 600 bytes a
        change, a string of 50 MB for an initial sync of 100,000 people and the peak of its process."""
        return (
            f"CycleResult(run_id={self.run_id!r}, kind={self.kind!r}, dry_run={self.dry_run!r}, "
            f"exit_code={self.exit_code!r}, planned={self.planned!r}, outcomes={self.outcomes!r}, "
            f"changes={len(self.changes)}, failures={len(self.failures)}, error={self.error!r})"
        )

    def to_json(self) -> dict[str, Any]:
        """The `--json` document (stable keys; scripts depend on them)."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "planned": self.planned,
            "outcomes": self.outcomes,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "unmanaged": self.unmanaged,
            "failures": [f.__dict__ | {"action": f.action.value} for f in self.failures],
            "stopped_by": None if self.stopped_by is None else self.stopped_by.guard,
            "stop_reason": None if self.stopped_by is None else self.stopped_by.message,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "phone_sources": self.phone_sources,
            "graph_read": self.graph_read,
            "graph_read_reason": self.graph_read_reason,
            "phase_cpu_s": self.phase_cpu_s,
            "phase_wall_s": self.phase_wall_s,
            "ambiguous_numbers": [
                {"object_id": object_id, "note": note} for object_id, note in sorted(self.ambiguous.items())
            ],
            "quarantined": self.quarantine is not None,
            "quarantine": None if self.quarantine is None else self.quarantine.to_json(),
            "settings_changed": [change.to_json() for change in self.settings_changed],
            "offboard_pending": [
                {"object_id": object_id, "due_at": due_at}
                for object_id, due_at in sorted(self.offboard_pending.items())
            ],
            "relinked": [
                {"from_object_id": old, "object_id": new, "upn": upn} for old, new, upn in self.relinked
            ],
        }

    def counts(self) -> dict[str, int]:
        """Flat counts for the runs table."""
        flat = {f"planned_{k}": v for k, v in self.planned.items()}
        for action, outcomes in self.outcomes.items():
            flat |= {f"{action}_{outcome}": n for outcome, n in outcomes.items()}
        flat |= {
            "unchanged": self.unchanged,
            "skipped": sum(self.skipped.values()),
            "deferred": self.deferred,
            "failed": len(self.failures),
            "unmanaged": self.unmanaged,
            # Not "offboard_pending": `<action>_<outcome>` keys count operations (the daily summary).
            "offboards_pending": len(self.offboard_pending),
        }
        return flat


__all__ = ["CycleResult"]
