"""Printed summaries shared by the `syncd` command and the demo: a cycle's result and a planned change."""

from __future__ import annotations

from typing import TextIO

from syncd.core.model import Action, Change
from syncd.core.quarantine import status_line as quarantine_line
from syncd.cycle.engine import CycleResult

SHOWN_CHANGES = 50
"""Planned changes, failures and ambiguous numbers listed in full before "... and N more"."""


def print_result(result: CycleResult, out: TextIO) -> None:
    title = "dry run" if result.dry_run else "sync"
    print(f"syncd {title}: run {result.run_id} ({result.kind}) in {result.duration_s:.1f} s", file=out)
    if result.error:
        print(f"  error: {result.error}", file=out)
    if result.quarantine is not None:
        print(f"  {quarantine_line(result.quarantine)}", file=out)
    if result.graph_read == "delta":
        print("  graph      read the changes only (delta)", file=out)
    elif result.graph_read_reason:
        print(f"  graph      read everything: {result.graph_read_reason}", file=out)
    planned = "   ".join(f"{action} {n}" for action, n in result.planned.items())
    if planned:
        print(f"  planned    {planned}", file=out)
    for action, outcomes in result.outcomes.items():
        print(f"  {action:<10} " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())), file=out)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(result.skipped.items()))
    print(
        f"  unchanged {result.unchanged}   skipped {sum(result.skipped.values())}"
        + (f" ({skipped})" if skipped else "")
        + f"   waiting for retry {result.deferred}"
        + (f"   unmanaged agents {result.unmanaged}" if result.unmanaged else ""),
        file=out,
    )
    if result.phone_sources:
        print("  numbers from " + ", ".join(f"{k} {v}" for k, v in result.phone_sources.items()), file=out)
    for object_id, note in sorted(result.ambiguous.items())[:SHOWN_CHANGES]:
        print(f"  ambiguous number for {object_id}: {note}", file=out)
    if len(result.ambiguous) > SHOWN_CHANGES:
        print(f"  ... and {len(result.ambiguous) - SHOWN_CHANGES} more ambiguous numbers", file=out)
    if result.stopped_by is not None:
        print(f"  STOPPED by the {result.stopped_by.guard} guard: {result.stopped_by.message}", file=out)
    if result.dry_run or result.stopped_by is not None:
        for change in result.changes[:SHOWN_CHANGES]:
            print("    " + describe_change(change), file=out)
        if len(result.changes) > SHOWN_CHANGES:
            print(f"    ... and {len(result.changes) - SHOWN_CHANGES} more", file=out)
    if result.failures:
        print("  failures:", file=out)
        for failure in result.failures:
            print(
                f"    {failure.action.value:<8} {failure.object_id}  {failure.upn or ''}  {failure.error}",
                file=out,
            )


def describe_change(change: Change) -> str:
    """Pure: one line for a planned change: "+ onboard ID  UPN NUMBER", "~ update ID  field: a -> b"."""
    sign = {Action.ONBOARD: "+", Action.UPDATE: "~", Action.OFFBOARD: "-"}[change.action]
    if change.action is Action.UPDATE:
        diffs = ", ".join(
            f"{name}: {getattr(change.believed, name)} -> {getattr(change.desired, name)}"
            for name in change.fields
        )
        return f"{sign} update   {change.object_id}  {diffs}"
    fields = change.desired or change.believed
    who = f"{fields.upn or ''} {fields.phone_number}" if fields else ""
    return f"{sign} {change.action.value:<8} {change.object_id}  {who}"
