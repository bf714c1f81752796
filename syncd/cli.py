"""The `syncd` command line: sync (and its dry run), status, db upgrade, demo.

Exit codes (scripts depend on them): 0 every in-scope user converged; 1 some operations failed or the cycle
could not run (the rest still applied); 2 configuration or usage error; 3 stopped by a safety guard
(nothing offboarded). Human output goes to stdout, logs to stderr; `--json` prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from syncd import __version__
from syncd.config import Settings
from syncd.engine import EXIT_CONFIG, EXIT_FAILURES, CycleResult, Engine
from syncd.logging import configure_logging
from syncd.model import Action
from syncd.settings_loader import ConfigError, config_path, load_settings
from syncd.store import Store, StoreError

SHOWN_CHANGES = 50


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd", description="Keeps IntelePeer SmartCommunicator agents in step with Entra ID groups."
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    parser.add_argument("--config", metavar="PATH", help="TOML configuration (default: $SYNCD_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sync = sub.add_parser("sync", help="run one cycle now")
    sync.add_argument(
        "--dry-run", action="store_true", help="read both sides and print the plan; write nothing"
    )
    sync.add_argument(
        "--full", action="store_true", help="also compare with the remote agents list (repairs drift)"
    )
    sync.add_argument("--force", action="store_true", help="let this cycle pass the safety guards")
    sync.add_argument("--user", metavar="OBJECT_ID_OR_UPN", help="sync this one user now")
    sync.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")

    status = sub.add_parser("status", help="last runs, counts, users needing attention")
    status.add_argument("--json", action="store_true")
    status.add_argument("--runs", type=int, default=10, help="how many runs to show (default 10)")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("upgrade", help="apply migrations (also done at every start)")

    sub.add_parser("demo", help="run the main job against the built-in emulators")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        print("syncd demo: not yet. The daemon and the demo tenant arrive with their issue.")
        return 0
    try:
        settings = load_settings(config_path(args.config, os.environ), os.environ)
    except ConfigError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(
        level=settings.log.level,
        json=None if settings.log.format == "auto" else settings.log.format == "json",
    )
    try:
        store = Store(settings.database.url)
        try:
            store.upgrade()
            if args.command == "db":
                print(f"database at revision {store.current_revision()}")
                return 0
            if args.command == "status":
                return _status(store, as_json=args.json, runs=args.runs)
            return _sync(settings, store, args)
        finally:
            store.close()
    except StoreError as exc:
        print(f"syncd: database error: {exc}", file=sys.stderr)
        return EXIT_FAILURES
    except ConfigError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _sync(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    store.interrupt_running_runs()  # a previous process that died mid-cycle left its run "running"
    progress = _Progress(sys.stderr) if sys.stderr.isatty() and not args.json else None
    result = asyncio.run(
        Engine(settings, store).run_cycle(
            trigger="cli",
            full=args.full,
            dry_run=args.dry_run,
            force=args.force,
            user=args.user,
            progress=progress,
        )
    )
    if progress is not None:
        progress.finish()
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        _print_result(result, sys.stdout)
    return result.exit_code


class _Progress:
    """A one-line progress bar on a terminal while a long apply runs."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.2:
            return
        self._last = now
        width = 30
        filled = width * done // max(total, 1)
        self._out.write(f"\rapplying [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        self._out.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self._out.write("\n")


def _print_result(result: CycleResult, out: TextIO) -> None:
    title = "dry run" if result.dry_run else "sync"
    print(f"syncd {title}: run {result.run_id} ({result.kind}) in {result.duration_s:.1f} s", file=out)
    if result.error:
        print(f"  error: {result.error}", file=out)
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
    if result.stopped_by is not None:
        print(f"  STOPPED by the {result.stopped_by.guard} guard: {result.stopped_by.message}", file=out)
    if result.dry_run or result.stopped_by is not None:
        for change in result.changes[:SHOWN_CHANGES]:
            print("    " + _describe_change(change), file=out)
        if len(result.changes) > SHOWN_CHANGES:
            print(f"    ... and {len(result.changes) - SHOWN_CHANGES} more", file=out)
    if result.failures:
        print("  failures:", file=out)
        for failure in result.failures:
            print(
                f"    {failure.action.value:<8} {failure.object_id}  {failure.upn or ''}  {failure.error}",
                file=out,
            )


def _describe_change(change: Any) -> str:
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


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status(store: Store, *, as_json: bool, runs: int) -> int:
    recent = store.runs(limit=runs)
    counts = store.count_by_status()
    attention = store.members_needing_attention()
    if as_json:
        print(
            json.dumps(
                {
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
                        for r in recent
                    ],
                    "members": counts,
                    "attention": [
                        {
                            "object_id": m.object_id,
                            "upn": m.upn,
                            "status": m.status.value,
                            "detail": m.detail,
                            "attempts": m.attempts,
                            "next_attempt_at": m.next_attempt_at,
                        }
                        for m in attention
                    ],
                },
                sort_keys=True,
            )
        )
        return 0
    print("Last runs:")
    header = ("id", "started (UTC)", "kind", "trigger", "outcome", "secs", "changes")
    print("  {:>4}  {:<19}  {:<15}  {:<8}  {:<11}  {:>6}  {}".format(*header))
    for r in recent:
        secs = f"{r.ended_at - r.started_at:.1f}" if r.ended_at is not None else "-"
        changed = ", ".join(
            f"{k} {v}" for k, v in sorted(r.counts.items()) if v and not k.startswith("planned_")
        )
        kind = r.kind + (" dry" if r.dry_run else "")
        row = (r.id, _when(r.started_at), kind, r.trigger, r.outcome, secs, changed)
        print("  {:>4}  {:<19}  {:<15}  {:<8}  {:<11}  {:>6}  {}".format(*row))
    print("Members: " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
    print(f"Needing attention: {len(attention)}")
    for m in attention:
        print(
            f"  {m.status.value:<8} {m.object_id}  {m.upn or ''}  attempts {m.attempts}  "
            f"next {_when(m.next_attempt_at)}  {m.detail or ''}"
        )
    return 0
