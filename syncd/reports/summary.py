"""Printed summaries shared by the `syncd` command and the demo: a cycle's result, a planned change and
what `syncd relink` did.

UPNs, notes and error texts in them come from Graph and SmartCommunicator: every line is printed through
`printable`, so a control character or bidi override there is shown as an escape.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from syncd.core.model import Action, Change
from syncd.core.quarantine import status_line as quarantine_line
from syncd.core.setting_changes import describe_changes
from syncd.core.text import printable
from syncd.core.times import utc_text

if TYPE_CHECKING:  # the cycle (and with it msgraph-sdk) loads only when a cycle runs
    from syncd.cycle.engine import CycleResult
    from syncd.cycle.relink import RelinkResult

SHOWN_CHANGES = 50
"""Planned changes, failures and ambiguous numbers listed in full before "... and N more"."""


def print_result(result: CycleResult, out: TextIO) -> None:
    """A cycle's result as a few lines for a terminal (control characters shown as escapes)."""

    def emit(line: str) -> None:
        print(printable(line), file=out)

    title = "dry run" if result.dry_run else "sync"
    emit(f"syncd {title}: run {result.run_id} ({result.kind}) in {result.duration_s:.1f} s")
    if result.error:
        emit(f"  error: {result.error}")
    if result.quarantine is not None:
        emit(f"  {quarantine_line(result.quarantine)}")
    if result.graph_read == "delta":
        emit("  graph      read the changes only (delta)")
    elif result.graph_read_reason:
        emit(f"  graph      read everything: {result.graph_read_reason}")
    if result.settings_changed:
        emit(f"  settings   changed since the last cycle: {describe_changes(result.settings_changed)}")
    planned = "   ".join(f"{action} {n}" for action, n in result.planned.items())
    if planned:
        emit(f"  planned    {planned}")
    for action, outcomes in result.outcomes.items():
        emit(f"  {action:<10} " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(result.skipped.items()))
    emit(
        f"  unchanged {result.unchanged}   skipped {sum(result.skipped.values())}"
        + (f" ({skipped})" if skipped else "")
        + f"   waiting for retry {result.deferred}"
        + (f"   unmanaged agents {result.unmanaged}" if result.unmanaged else "")
    )
    if result.offboard_pending:
        first = min(result.offboard_pending.values())
        emit(
            f"  offboard pending {len(result.offboard_pending)} (out of scope, within sync.offboard_grace; "
            f"the first falls due {utc_text(first, 'labelled')})"
        )
    for old, new, upn in result.relinked[:SHOWN_CHANGES]:
        emit(f"  relinked   {old} -> {new}  {upn or ''}")
    if len(result.relinked) > SHOWN_CHANGES:
        emit(f"  ... and {len(result.relinked) - SHOWN_CHANGES} more relinked")
    if result.phone_sources:
        emit("  numbers from " + ", ".join(f"{k} {v}" for k, v in result.phone_sources.items()))
    for object_id, note in sorted(result.ambiguous.items())[:SHOWN_CHANGES]:
        emit(f"  ambiguous number for {object_id}: {note}")
    if len(result.ambiguous) > SHOWN_CHANGES:
        emit(f"  ... and {len(result.ambiguous) - SHOWN_CHANGES} more ambiguous numbers")
    if result.stopped_by is not None:
        emit(f"  STOPPED by the {result.stopped_by.guard} guard: {result.stopped_by.message}")
    if result.dry_run or result.stopped_by is not None:
        for change in result.changes[:SHOWN_CHANGES]:
            emit("    " + describe_change(change))
        if len(result.changes) > SHOWN_CHANGES:
            emit(f"    ... and {len(result.changes) - SHOWN_CHANGES} more")
    if result.failures:
        emit("  failures:")
        for failure in result.failures:
            emit(f"    {failure.action.value:<8} {failure.object_id}  {failure.upn or ''}  {failure.error}")


def describe_change(change: Change) -> str:
    """Pure: one line for a planned change: "+ onboard ID  UPN NUMBER", "~ update ID  field: a -> b",
    "> relink OLD -> NEW  UPN NUMBER"; control characters shown as escapes (`printable`)."""
    sign = {Action.ONBOARD: "+", Action.UPDATE: "~", Action.OFFBOARD: "-", Action.RELINK: ">"}[change.action]
    if change.action is Action.RELINK:
        wanted = change.desired
        who = f"{wanted.upn or ''} {wanted.phone_number}" if wanted is not None else ""
        data = "" if change.transfer_data else "  (without its data)"
        return printable(f"{sign} relink   {change.from_object_id} -> {change.object_id}  {who}{data}")
    if change.action is Action.UPDATE:
        diffs = ", ".join(
            f"{name}: {getattr(change.believed, name)} -> {getattr(change.desired, name)}"
            for name in change.fields
        )
        return printable(f"{sign} update   {change.object_id}  {diffs}")
    fields = change.desired or change.believed
    who = f"{fields.upn or ''} {fields.phone_number}" if fields else ""
    return printable(f"{sign} {change.action.value:<8} {change.object_id}  {who}")


def print_relink(result: RelinkResult, out: TextIO) -> None:
    """What `syncd relink` did, or would do, or why not, as a few lines (control characters shown as
    escapes)."""

    def emit(line: str) -> None:
        print(printable(line), file=out)

    title = "syncd relink (dry run)" if result.dry_run else "syncd relink"
    if result.outcome in ("refused", "error"):
        emit(f"{title}: nothing sent: {result.message}")
        return
    emit(f"{title}: {result.message}")
    if result.key is not None:
        body = ", ".join(f"{k}={json.dumps(v)}" for k, v in result.body.items())
        emit(f"  PATCH .../agents/{result.key}?key_id={result.key_id}  {body}")
    if not result.transfer_data:
        emit("  transfer_data false: the agent keeps its object ID's data behind (--no-transfer-data)")
    for label, fields in (
        (f"agent of {result.old}", result.before),
        (f"agent of {result.new} now", result.after),
    ):
        if fields is not None:
            emit(f"  {label}: {fields.phone_number}  {fields.upn or '-'}  {fields.consistency_id or '-'}")
    if result.run_id is not None:
        emit(f"  recorded as run {result.run_id} (syncd history --user {result.new})")
