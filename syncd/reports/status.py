"""The status document (`syncd status --json`, `GET /status`, the status page's data) and `syncd status`.

`status_report` reads what `syncd status` shows; the pure functions below it word it as cells and lines.
`print_status` prints those lines (the plain output scripts and pipes read); on a terminal the command line
draws the same cells as tables (`syncd.cli.terminal`).

The JSON is exact; the text shows control characters in UPNs, details and errors as escapes (`printable`),
since they come from Graph and SmartCommunicator.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from syncd.core import quarantine
from syncd.core.model import Action, Recorded
from syncd.core.setting_changes import describe_changes
from syncd.core.text import printable
from syncd.core.times import utc_text
from syncd.store import RunRecord, Store

RUN_HEADERS = ("id", "started (UTC)", "kind", "trigger", "outcome", "secs", "changes")
"""The columns of the runs table, as `run_cells` fills them."""

ATTENTION_HEADERS = ("status", "object ID", "UPN", "attempts", "next retry (UTC)", "detail", "number from")
"""The columns of the people needing attention, as `attention_cells` fills them."""


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
    """What `syncd status --json` and `GET /status` return: last runs (with the settings shaping desired
    state each found changed, and who asked for a manual one), members by status, agents by number source,
    people out of scope by reason, attention, the quarantine (null when not quarantined), pending offboards
    (within `sync.offboard_grace`, `offboard_grace_s`) and the latest relinks."""
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
        "offboard_pending": offboard_pending(store, offboard_grace_s),
        "relinks": recent_relinks(store),
    }


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What `syncd status` shows, read from the store."""

    quarantine: str | None
    """The quarantine's line (`quarantine.status_line`), or None when not quarantined."""
    runs: Sequence[RunRecord]
    """Newest first."""
    members: Mapping[str, int]
    """Members by status."""
    phone_sources: Mapping[str, int]
    """Active agents by the source of their number."""
    attention: Sequence[Recorded]
    pending: Sequence[Mapping[str, Any]] = ()
    """People out of scope whose agent waits out `sync.offboard_grace` (`offboard_pending`)."""
    relinks: Sequence[Mapping[str, Any]] = ()
    """The latest relinks, newest first (`recent_relinks`)."""


def status_report(store: Store, runs: int = 10, *, offboard_grace_s: float = 0.0) -> StatusReport:
    """The last `runs` runs, members by status, number sources, who needs attention, pending offboards and
    the latest relinks."""
    quarantined = quarantine.load(store)
    return StatusReport(
        quarantine=None if quarantined is None else quarantine.status_line(quarantined),
        runs=store.runs(limit=runs),
        members=store.count_by_status(),
        phone_sources=store.count_by_phone_source(),
        attention=store.members_needing_attention(),
        pending=offboard_pending(store, offboard_grace_s),
        relinks=recent_relinks(store),
    )


def run_cells(run: RunRecord) -> tuple[str, ...]:
    """Pure: one run as the cells of `RUN_HEADERS` (a dry run's kind says "dry"; "-" while running)."""
    secs = f"{run.ended_at - run.started_at:.1f}" if run.ended_at is not None else "-"
    changed = ", ".join(
        f"{k} {v}" for k, v in sorted(run.counts.items()) if v and not k.startswith("planned_")
    )
    kind = run.kind + (" dry" if run.dry_run else "")
    return (str(run.id), utc_text(run.started_at), kind, run.trigger, run.outcome, secs, printable(changed))


def settings_changed_text(run: RunRecord) -> str | None:
    """Pure: what a run found changed among the settings shaping desired state, in words; None if nothing."""
    if not run.settings_changed:
        return None
    return f"settings changed since the last cycle: {printable(describe_changes(run.settings_changed))}"


def attention_cells(member: Recorded) -> tuple[str, ...]:
    """Pure: one person needing attention as the cells of `ATTENTION_HEADERS`, control characters from
    remote data shown as escapes (`printable`)."""
    return (
        member.status.value,
        printable(member.object_id),
        printable(member.upn or ""),
        str(member.attempts),
        utc_text(member.next_attempt_at),
        printable(member.detail or ""),
        member.phone_source or "",
    )


def counts_text(counts: Mapping[str, int], *, sort: bool = True) -> str:
    """Pure: "active 4, failed 1" (sorted by name unless `sort` is false)."""
    items = sorted(counts.items()) if sort else counts.items()
    return ", ".join(f"{printable(name)} {n}" for name, n in items)


def pending_lines(report: StatusReport) -> Iterator[str]:
    """Pure: the pending offboards and the latest relinks as lines (plain output and the terminal's)."""
    if report.pending:
        yield f"Offboard pending (out of scope, within sync.offboard_grace): {len(report.pending)}"
        for p in report.pending:
            yield printable(
                f"  {p['object_id']}  {p['upn'] or ''}  out of scope since {utc_text(p['left_scope_at'])}  "
                f"offboard due at {utc_text(p['due_at'])} UTC"
            )
    if report.relinks:
        yield "Latest relinks (agents moved to re-created users):"
        for relink in report.relinks:
            yield printable(
                f"  {utc_text(relink['at'])}  {relink['from_object_id']} -> {relink['object_id']}  "
                f"{relink['upn'] or ''}  {relink['outcome']}  (run {relink['run_id']})"
            )


def status_lines(report: StatusReport) -> Iterator[str]:
    """Pure: `syncd status` as plain lines (what scripts, pipes and the tests read)."""
    if report.quarantine is not None:
        yield printable(report.quarantine)
    yield "Last runs:"
    yield "  {:>4}  {:<19}  {:<15}  {:<8}  {:<11}  {:>6}  {}".format(*RUN_HEADERS)
    for run in report.runs:
        yield "  {:>4}  {:<19}  {:<15}  {:<8}  {:<11}  {:>6}  {}".format(*run_cells(run))
        changed = settings_changed_text(run)
        if changed:
            yield f"        {changed}"
    yield "Members: " + counts_text(report.members)
    if report.phone_sources:
        yield "Agents' numbers from: " + counts_text(report.phone_sources, sort=False)
    yield f"Needing attention: {len(report.attention)}"
    for member in report.attention:
        status, object_id, upn, attempts, retry, detail, source = attention_cells(member)
        yield (
            f"  {status:<8} {object_id}  {upn}  attempts {attempts}  next {retry}  {detail}"
            + (f"  (agent's number from {source})" if source else "")
        )
    yield from pending_lines(report)


def print_status(
    store: Store,
    *,
    as_json: bool,
    runs: int,
    out: TextIO | None = None,
    offboard_grace_s: float = 0.0,
) -> int:
    """`syncd status` as plain lines (or JSON); the text with control characters shown as escapes."""
    out = out or sys.stdout
    if as_json:
        document = status_document(store, runs, offboard_grace_s=offboard_grace_s)
        print(json.dumps(document, sort_keys=True), file=out)
        return 0
    for line in status_lines(status_report(store, runs, offboard_grace_s=offboard_grace_s)):
        print(line, file=out)
    return 0
