"""The audit log (`notify.audit_log`): one JSON line per settled operation, for a log shipper (Fluent Bit,
Vector, the Azure Monitor agent) to forward to a SIEM.

`history` answers questions inside syncd's database; this is the same record in a form a SIEM ingests. After
every cycle (the daemon's and `syncd sync`'s) the operations settled since the last line written are
appended to the target ("stdout", "stderr" or a file, created owner-only), oldest first. A cursor in the
store (kv key AUDIT_CURSOR_KEY) remembers the last operation written, so a restart resumes where it left
off; an operation still pending (its process died before the answer) holds back the ones after it until
the next start settles it, so the order never skips. Delivery is at least once: a crash between writing and
storing the cursor repeats those lines, and `operation_id` tells a consumer which ones it has. With no
cursor yet (the log just enabled), it starts with the cycle that just ended.

The line's fields are a stable interface (AUDIT_SCHEMA; docs/operations.md lists them): new fields may be
added, none renamed or removed without a new schema name. A failure to write is logged and retried after
the next cycle; it never fails a cycle.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

import structlog

from syncd.core.model import Action, AgentFields
from syncd.core.times import utc_text
from syncd.store import Store, StoreError
from syncd.store.records import AuditEntry, OperationRecord

log = structlog.get_logger("syncd.audit")

AUDIT_SCHEMA = "syncd.audit.v1"
"""The `schema` of every line; changes only if a field is renamed or removed."""

AUDIT_CURSOR_KEY = "audit_log.cursor"
"""The kv key holding the ID of the last operation written."""

AUDIT_FIELDS = ("phone_number", "upn", "consistency_id", "tenant_id")
"""The agent fields whose before and after a line shows when they changed."""

_BATCH = 1_000


def audit_line(entry: AuditEntry) -> dict[str, Any]:
    """Pure: the JSON object written for one settled operation.

    `changes` maps each agent field that the operation changed to its value before (what we believed the
    agent held; null for an onboarding) and after (what we asked for; null for an offboarding).
    """
    operation = entry.operation
    before, after = operation.believed, operation.desired
    upn = (after.upn if after else None) or (before.upn if before else None) or entry.member_upn
    return {
        "schema": AUDIT_SCHEMA,
        "time": utc_text(operation.settled_at, "iso", missing=""),
        "operation_id": operation.id,
        "run_id": operation.run_id,
        "trigger": entry.trigger,
        "requested_by": entry.requested_by,
        "action": operation.action.value,
        "object_id": operation.object_id,
        "from_object_id": operation.from_object_id,
        "upn": upn,
        "outcome": operation.outcome.value,
        "http_status": operation.http_status,
        "error": operation.error,
        "changes": _changes(before, after, operation),
    }


def _changes(
    before: AgentFields | None, after: AgentFields | None, operation: OperationRecord
) -> dict[str, dict[str, str | None]]:
    changes: dict[str, dict[str, str | None]] = {}
    if operation.action is Action.RELINK:
        changes["user_object_id"] = {"before": operation.from_object_id, "after": operation.object_id}
    for name in AUDIT_FIELDS:
        old = getattr(before, name) if before is not None else None
        new = getattr(after, name) if after is not None else None
        if old != new:
            changes[name] = {"before": old, "after": new}
    return changes


def write_audit_log(target: str, store: Store, run_id: int | None, *, stdout: TextIO | None = None) -> int:
    """Append the lines of every operation settled since the last one written to `target` ("" writes
    nothing); how many were written. `run_id` is the cycle that just ended (where a new log starts).
    `stdout` replaces sys.stdout for "stdout" (`syncd sync --json` keeps its stdout for its document)."""
    if not target:
        return 0
    written = 0
    try:
        after = _cursor(store, run_id)
        while True:
            entries = store.audit_entries(after_id=after, limit=_BATCH)
            if not entries:
                break
            lines = (json.dumps(audit_line(e), ensure_ascii=False, sort_keys=True) for e in entries)
            text = "".join(line + "\n" for line in lines)
            _append(target, text, stdout)
            after = entries[-1].operation.id
            store.set_value(AUDIT_CURSOR_KEY, str(after))
            written += len(entries)
            if len(entries) < _BATCH:
                break
    except (StoreError, OSError) as exc:
        # Not the path's text in the event: the error names it already, and it is the admin's own.
        log.error("audit.write_failed", error=f"{type(exc).__name__}: {exc}"[:300], written=written)
    return written


def _cursor(store: Store, run_id: int | None) -> int:
    stored = store.get_value(AUDIT_CURSOR_KEY)
    if stored is not None and stored.isdigit():
        return int(stored)
    first = store.first_operation_of_run(run_id) if run_id is not None else None
    start = first - 1 if first is not None else store.last_operation_id()
    # Stored before anything is written: should this write fail, the next one starts here all the same.
    store.set_value(AUDIT_CURSOR_KEY, str(start))
    return start


def _append(target: str, text: str, stdout: TextIO | None) -> None:
    if target in ("stdout", "stderr"):
        stream = (stdout or sys.stdout) if target == "stdout" else sys.stderr
        stream.write(text)
        stream.flush()
        return
    # Owner-only: the lines name people and their phone numbers.
    descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(text)


__all__ = ["AUDIT_CURSOR_KEY", "AUDIT_FIELDS", "AUDIT_SCHEMA", "audit_line", "write_audit_log"]
