"""The store's own types: `StoreError`, and the records its methods take and return (runs, operations,
the history, settlements, pending writes). A module of its own so that `repository` and the parts of `Store`
all import them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

from syncd.core.model import Action, AgentFields, Outcome, Recorded
from syncd.core.setting_changes import SettingChange


class StoreError(Exception):
    """A database failure: unreachable, locked, constraint violated, schema too new, ...

    The message names the database with its password hidden; the driver's exception is the `__cause__`.
    """


class UnusableDatabase(StoreError):
    """A database this syncd cannot use as configured, whatever retrying: its folder is missing, it was
    written by a newer syncd, or (for a read-only command, which never migrates) its schema is behind.

    The command line exits 2 (a configuration or usage error) with the message, which says what to do.
    """


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One cycle as recorded."""

    id: int
    trigger: str
    """Who started it: "cli", "schedule", "manual", ..."""
    kind: str
    """"incremental" or "full"."""
    dry_run: bool
    started_at: float
    """Epoch seconds."""
    ended_at: float | None
    """Epoch seconds; None while running."""
    outcome: str
    """"running", "ok", "failed", "guard", "interrupted" or "error"."""
    counts: dict[str, int]
    error: str | None
    requested_by: str | None = None
    """Who asked for a manual cycle through the admin API ("bearer token from 10.0.0.7"); None otherwise."""
    settings_changed: tuple[SettingChange, ...] = ()
    """The settings shaping desired state that changed since the last cycle, as this run found them."""


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One write to SmartCommunicator as the audit log holds it."""

    id: int
    run_id: int
    object_id: str
    action: Action
    outcome: Outcome
    http_status: int | None
    error: str | None
    """The API's message for a failure; never a secret."""
    desired: AgentFields | None
    believed: AgentFields | None
    created_at: float
    """Epoch seconds: when it was recorded, just before the request was sent."""
    settled_at: float | None
    """Epoch seconds; None while pending."""
    from_object_id: str | None = None
    """A relink: the object ID whose agent moved to `object_id`."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One operation of the audit history with what we know now of its member."""

    operation: OperationRecord
    member_upn: str | None
    """The member's UPN as last seen in Graph (now, not when the operation ran); None when unknown."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operation as the audit log writes it: with its member's UPN and its run's trigger."""

    operation: OperationRecord
    member_upn: str | None
    """The member's UPN as recorded now; None when unknown."""
    trigger: str
    """The run's trigger ("schedule", "manual", "cli", ...)."""
    requested_by: str | None
    """Who asked for a manual run through the admin API; None otherwise."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one write ended, for `Store.settle_operations`."""

    op_id: int
    outcome: Outcome
    record: Recorded
    http_status: int | None = None
    error: str | None = None
    also: tuple[Recorded, ...] = ()
    """Other members' new rows, written in the same transaction (a relink: the object ID it moved from)."""


@dataclass(frozen=True, slots=True)
class PendingOperation:
    """A write whose request may or may not have reached SmartCommunicator (the process stopped before
    its outcome was recorded): the engine reads the agent back to settle it."""

    id: int
    run_id: int
    object_id: str
    action: Action
    desired: AgentFields | None
    believed: AgentFields | None
    from_object_id: str | None = None
    """A relink: the object ID whose agent was being moved to `object_id`."""
