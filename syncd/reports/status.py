"""The status document (`syncd status --json`, `GET /status`, the status page's data) and `syncd status`.

The JSON is exact; the text shows control characters in UPNs, details and errors as escapes (`printable`),
since they come from Graph and SmartCommunicator.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from syncd.core import quarantine
from syncd.core.setting_changes import describe_changes
from syncd.core.text import printable
from syncd.core.times import utc_text
from syncd.store import Store


def status_document(store: Store, runs: int = 10) -> dict[str, Any]:
    """What `syncd status --json` and `GET /status` return: last runs (with the settings shaping desired
    state each found changed), members by status, agents by number source, people out of scope by reason,
    attention, and the quarantine (null when not quarantined)."""
    quarantined = quarantine.load(store)
    return {
        "runs": [
            {
                "id": r.id,
                "trigger": r.trigger,
                "requested_by": r.requested_by,
                "kind": r.kind,
                "dry_run": r.dry_run,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "outcome": r.outcome,
                "counts": r.counts,
                "error": r.error,
                "settings_changed": [change.to_json() for change in r.settings_changed],
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
    }


def print_status(store: Store, *, as_json: bool, runs: int, out: TextIO | None = None) -> int:
    """`syncd status`: the last runs, members by status, number sources and who needs attention (or JSON);
    the text with control characters shown as escapes."""
    out = out or sys.stdout
    if as_json:
        print(json.dumps(status_document(store, runs), sort_keys=True), file=out)
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
        if r.settings_changed:
            emit(f"        settings changed since the last cycle: {describe_changes(r.settings_changed)}")
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
    return 0
