"""The status document (`syncd status --json`, `GET /status`, the status page's data) and `syncd status`.

The JSON is exact; the text shows control characters in UPNs, details and errors as escapes (`printable`),
since they come from Graph and SmartCommunicator.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from syncd.core import quarantine
from syncd.core.model import Action
from syncd.core.text import printable
from syncd.core.times import utc_text
from syncd.store import Store

RECENT_RELINKS = 10
"""Relinks listed by the status document, newest first."""


def offboard_pending(store: Store, offboard_grace_s: float) -> list[dict[str, Any]]:
    """People out of scope whose agent waits out `sync.offboard_grace`, longest out first: object ID,
    UPN, when they were found out of scope and when their offboard falls due (epoch seconds)."""
    return [
        {
            "object_id": m.object_id,
            "upn": m.upn,
            "left_scope_at": m.left_scope_at,
            "due_at": None if m.left_scope_at is None else m.left_scope_at + offboard_grace_s,
        }
        for m in store.members_leaving()
    ]


def recent_relinks(store: Store, limit: int = RECENT_RELINKS) -> list[dict[str, Any]]:
    """The latest relinks (agents moved to re-created users), newest first."""
    return [
        {
            "at": entry.operation.created_at,
            "run_id": entry.operation.run_id,
            "from_object_id": entry.operation.from_object_id,
            "object_id": entry.operation.object_id,
            "upn": entry.member_upn,
            "outcome": entry.operation.outcome.value,
        }
        for entry in store.iter_operations(actions={Action.RELINK}, limit=limit)
    ]


def status_document(store: Store, runs: int = 10, *, offboard_grace_s: float = 0.0) -> dict[str, Any]:
    """What `syncd status --json` and `GET /status` return: last runs, members by status, agents by number
    source, people out of scope by reason, attention, the quarantine (null when not quarantined), pending
    offboards (within `sync.offboard_grace`, `offboard_grace_s`) and the latest relinks."""
    quarantined = quarantine.load(store)
    return {
        "runs": [
            {
                "id": r.id,
                "trigger": r.trigger,
                "kind": r.kind,
                "dry_run": r.dry_run,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "outcome": r.outcome,
                "counts": r.counts,
                "error": r.error,
            }
            for r in store.runs(limit=runs)
        ],
        "members": store.count_by_status(),
        "phone_sources": store.count_by_phone_source(),
        "skipped": store.count_by_skip_reason(),
        "quarantine": None if quarantined is None else quarantined.to_json(),
        "attention": [
            {
                "object_id": m.object_id,
                "upn": m.upn,
                "status": m.status.value,
                "detail": m.detail,
                "attempts": m.attempts,
                "next_attempt_at": m.next_attempt_at,
                "phone_source": m.phone_source,
            }
            for m in store.members_needing_attention()
        ],
        "offboard_pending": offboard_pending(store, offboard_grace_s),
        "relinks": recent_relinks(store),
    }


def print_status(
    store: Store,
    *,
    as_json: bool,
    runs: int,
    out: TextIO | None = None,
    offboard_grace_s: float = 0.0,
) -> int:
    """`syncd status`: the last runs, members by status, number sources, who needs attention, pending
    offboards and the latest relinks (or JSON); the text with control characters shown as escapes."""
    out = out or sys.stdout
    if as_json:
        document = status_document(store, runs, offboard_grace_s=offboard_grace_s)
        print(json.dumps(document, sort_keys=True), file=out)
        return 0

    def emit(line: str) -> None:  # UPNs, details and errors come from Graph and SmartCommunicator
        print(printable(line), file=out)

    quarantined = quarantine.load(store)
    if quarantined is not None:
        emit(quarantine.status_line(quarantined))
    recent = store.runs(limit=runs)
    counts = store.count_by_status()
    attention = store.members_needing_attention()
    emit("Last runs:")
    header = ("id", "started (UTC)", "kind", "trigger", "outcome", "secs", "changes")
    emit("  {:>4}  {:<19}  {:<15}  {:<8}  {:<11}  {:>6}  {}".format(*header))
    for r in recent:
        secs = f"{r.ended_at - r.started_at:.1f}" if r.ended_at is not None else "-"
        changed = ", ".join(
            f"{k} {v}" for k, v in sorted(r.counts.items()) if v and not k.startswith("planned_")
        )
        kind = r.kind + (" dry" if r.dry_run else "")
        row = (r.id, utc_text(r.started_at), kind, r.trigger, r.outcome, secs, changed)
        emit("  {:>4}  {:<19}  {:<15}  {:<8}  {:<11}  {:>6}  {}".format(*row))
    emit("Members: " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
    sources = store.count_by_phone_source()
    if sources:
        emit("Agents' numbers from: " + ", ".join(f"{source} {n}" for source, n in sources.items()))
    emit(f"Needing attention: {len(attention)}")
    for m in attention:
        emit(
            f"  {m.status.value:<8} {m.object_id}  {m.upn or ''}  attempts {m.attempts}  "
            f"next {utc_text(m.next_attempt_at)}  {m.detail or ''}"
            + (f"  (agent's number from {m.phone_source})" if m.phone_source else "")
        )
    pending = offboard_pending(store, offboard_grace_s)
    if pending:
        emit(f"Offboard pending (out of scope, within sync.offboard_grace): {len(pending)}")
        for p in pending:
            emit(
                f"  {p['object_id']}  {p['upn'] or ''}  out of scope since {utc_text(p['left_scope_at'])}  "
                f"offboard due at {utc_text(p['due_at'])} UTC"
            )
    relinks = recent_relinks(store)
    if relinks:
        emit("Latest relinks (agents moved to re-created users):")
        for relink in relinks:
            emit(
                f"  {utc_text(relink['at'])}  {relink['from_object_id']} -> {relink['object_id']}  "
                f"{relink['upn'] or ''}  {relink['outcome']}  (run {relink['run_id']})"
            )
    return 0
