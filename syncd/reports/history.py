"""The audit history: `syncd history` (the operations log, filtered, as a table, JSON or CSV) and its
retention (`sync.history_days`).

The parsing of the flags (`syncd.reports.history_flags`, re-exported here) and the formatting of rows are
pure functions of plain data; `run_history` is the
thin part the command line calls: it resolves `--user`, streams the store's operations into a writer and
returns the exit code. JSON and CSV are written row by row as the store streams them, so an export of
millions of operations never sits in memory; the table samples its first rows to size its columns.

What is written carries no attack: a CSV cell a spreadsheet would run as a formula gets a leading quote
(`csv_cell`), and the table shows control characters from remote data as escapes (`printable`).

Retention deletes settled operations older than `history_days`, then runs older than that with no
operation left, in batches (`Store.prune_history`). The daemon prunes at start and daily; `syncd sync`
prunes at its end when the last prune (kv `history_pruned_at`) is more than a day old.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TextIO

import structlog

from syncd.core.model import Action, AgentFields
from syncd.core.text import printable
from syncd.core.times import utc_text
from syncd.reports.history_flags import (
    DAY_S,
    DEFAULT_TABLE_LIMIT,
    EARLIEST_SINCE,
    FORMATS,
    LATEST_SINCE,
    MAX_LIMIT,
    add_arguments,
    effective_limit,
    merge_choices,
    parse_actions,
    parse_choices,
    parse_limit,
    parse_outcomes,
    parse_since,
    user_lookups,
)
from syncd.store import HistoryEntry, Store

log = structlog.get_logger("syncd.history")

COLUMNS = (
    "id",
    "time",
    "action",
    "outcome",
    "object_id",
    "upn",
    "phone_number",
    "changed",
    "http_status",
    "error",
    "run_id",
)
"""The keys of a JSON row and the CSV header, in this order (scripts depend on them)."""

AGENT_FIELDS = ("tenant_id", "phone_number", "upn", "consistency_id")
"""The agent fields an update can change, in the order they are shown."""

PRUNED_AT_KEY = "history_pruned_at"
"""kv key: when the history was last pruned completely (epoch seconds, as text)."""
PRUNE_EVERY_S = DAY_S
"""`syncd sync` prunes at its end when the last prune is older than this; the daemon prunes this often."""

TABLE_SAMPLE_ROWS = 200
"""The table sizes its columns from this many first rows; later rows are cut to those widths."""
TABLE_MAX_WIDTH = {"upn": 40, "changed": 60, "error": 60}
"""Widest cell per column in a table (longer text is cut with "..."); CSV and JSON keep everything."""
TABLE_HEADERS = {
    "time": "time (UTC)",
    "action": "action",
    "outcome": "outcome",
    "object_id": "object ID",
    "upn": "UPN",
    "phone_number": "phone number",
    "changed": "changed",
    "http_status": "HTTP",
    "error": "error",
    "run_id": "run",
}
"""The table's columns (keys of a history row) and their headers, in order."""
RIGHT_ALIGNED = frozenset({"http_status", "run_id"})
"""Table columns aligned to the right (numbers)."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a CSV cell as a formula (OWASP's CSV injection list)."""

_E164 = re.compile(r"\+[0-9]+")
# -- formatting rows (pure) ------------------------------------------------------------------------------


def changed_fields(desired: AgentFields | None, believed: AgentFields | None) -> dict[str, dict[str, Any]]:
    """Pure: the agent fields that differ between what we believed and what we wanted, as
    {field: {"from": believed value, "to": desired value}}; empty unless both are known."""
    if desired is None or believed is None:
        return {}
    changes: dict[str, dict[str, Any]] = {}
    for name in AGENT_FIELDS:
        before, after = getattr(believed, name), getattr(desired, name)
        if before != after:
            changes[name] = {"from": before, "to": after}
    return changes


def history_row(entry: HistoryEntry) -> dict[str, Any]:
    """Pure: one operation as a JSON-ready row with the keys of `COLUMNS`, in that order.

    `time` is when it was recorded (ISO 8601, UTC, "Z"); `upn` and `phone_number` are the desired agent's,
    else the believed one's, else (UPN) the member's as last seen; `changed` is set for updates and relinks
    (a relink's starts with `user_object_id`: from the old object ID to the new one, `object_id`).
    """
    op = entry.operation
    fields = op.desired or op.believed
    changed: dict[str, dict[str, Any]] | None = None
    if op.action is Action.UPDATE:
        changed = changed_fields(op.desired, op.believed)
    elif op.action is Action.RELINK:
        changed = {"user_object_id": {"from": op.from_object_id, "to": op.object_id}}
        changed |= changed_fields(op.desired, op.believed)
    return {
        "id": op.id,
        "time": utc_text(op.created_at, "iso"),
        "action": op.action.value,
        "outcome": op.outcome.value,
        "object_id": op.object_id,
        "upn": _first(
            op.desired.upn if op.desired is not None else None,
            op.believed.upn if op.believed is not None else None,
            entry.member_upn,
        ),
        "phone_number": fields.phone_number if fields is not None else None,
        "changed": changed,
        "http_status": op.http_status,
        "error": op.error,
        "run_id": op.run_id,
    }


def changed_text(changed: dict[str, dict[str, Any]] | None) -> str:
    """Pure: "phone_number: +14155550100 -> +14155550199; upn: a@x -> b@x" ("" when nothing changed)."""
    return "; ".join(
        f"{name}: {_text(change['from'])} -> {_text(change['to'])}"
        for name, change in (changed or {}).items()
    )


def csv_cell(text: str) -> str:
    """Pure: `text` made safe for a spreadsheet: a cell starting with `=`, `+`, `-`, `@`, tab or CR (which
    Excel, LibreOffice and Sheets would run as a formula) gets a leading `'`, OWASP's rule; a plain E.164
    number (`+` and digits only) is left as it is, being no formula."""
    if text.startswith(FORMULA_STARTS) and not _E164.fullmatch(text):
        return "'" + text
    return text


def csv_record(row: dict[str, Any]) -> list[str]:
    """Pure: a history row as CSV fields in `COLUMNS` order (empty for none, the full error text), each
    made safe for a spreadsheet (`csv_cell`)."""
    return [
        csv_cell(changed_text(row["changed"]) if column == "changed" else _text(row[column]))
        for column in COLUMNS
    ]


def table_cells(row: dict[str, Any]) -> dict[str, str]:
    """Pure: a history row as table cells ("-" for none; the time without "T" and "Z"; one-line error;
    control characters shown as escapes, see `printable`)."""
    cells: dict[str, str] = {}
    for column in TABLE_HEADERS:
        value = row[column]
        if column == "time":
            text = str(value).replace("T", " ").removesuffix("Z")
        elif column == "changed":
            text = changed_text(value)
        else:
            text = " ".join(_text(value).split())
        cells[column] = printable(text) or "-"
    return cells


def table_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Pure: an aligned table of history rows, header first; nothing at all for no rows.

    Column widths come from the first `TABLE_SAMPLE_ROWS` rows (capped by `TABLE_MAX_WIDTH`); longer
    cells, there or later, are cut with "...". Lazy: rows after the sample are formatted as they come.
    """
    iterator = iter(rows)
    sample = [table_cells(row) for row in islice(iterator, TABLE_SAMPLE_ROWS)]
    if not sample:
        return
    widths = table_widths(sample)

    def line(cells: dict[str, str]) -> str:
        parts = []
        for column, width in widths.items():
            text = cells[column]
            if len(text) > width:
                text = text[: max(width - 3, 0)] + "..."
            parts.append(text.rjust(width) if column in RIGHT_ALIGNED else text.ljust(width))
        return "  ".join(parts).rstrip()

    yield line(dict(TABLE_HEADERS))
    for cells in sample:
        yield line(cells)
    for row in iterator:
        yield line(table_cells(row))


def table_widths(sample: Iterable[dict[str, str]]) -> dict[str, int]:
    """Pure: each column's width for these rows' cells (`table_cells`): the widest cell or header, capped
    by `TABLE_MAX_WIDTH`."""
    widths = {column: len(header) for column, header in TABLE_HEADERS.items()}
    for cells in sample:
        for column in widths:
            widths[column] = max(widths[column], len(cells[column]))
    return {column: min(width, TABLE_MAX_WIDTH.get(column, 1_000)) for column, width in widths.items()}


def _first(*values: str | None) -> str | None:
    return next((value for value in values if value), None)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# -- writers ---------------------------------------------------------------------------------------------


def write_json(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """One JSON array, one row object per line, written as the rows come; how many rows."""
    count = 0
    for row in rows:
        out.write(("[\n" if count == 0 else ",\n") + json.dumps(row))
        count += 1
    out.write("[]\n" if count == 0 else "\n]\n")
    return count


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """RFC 4180 CSV (CRLF line ends, quoted as needed) with a header row, written as the rows come."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(csv_record(row))
        count += 1
    return count


def write_table(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """The aligned table, or "no operations match"; how many rows."""
    count = -1  # the header
    for text in table_lines(rows):
        out.write(text + "\n")
        count += 1
    if count < 0:
        out.write("no operations match\n")
        return 0
    return count


# -- the command -----------------------------------------------------------------------------------------


TableWriter = Callable[[Iterable[dict[str, Any]]], int]
"""Writes history rows as a table and says how many: `write_table` (plain lines), or the command line's
terminal table."""


def run_history(
    store: Store,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    table: TableWriter | None = None,
) -> int:
    """`syncd history`: write the matching operations to `out`, newest first; the exit code.

    `table` draws the table format (default: `write_table`'s plain lines to `out`). 1 (and a line on `err`)
    when `--user` matches nobody; 0 otherwise, also when no operation matches.
    """
    object_ids: list[str] | None = None
    if args.user is not None:
        found = {
            record.object_id for text in user_lookups(args.user) for record, _ in store.find_members(text)
        }
        if not found:
            message = f"no member matches {args.user!r} (give an object ID, a UPN or a phone number)"
            print(f"syncd history: {message}", file=err)
            return 1
        object_ids = sorted(found)
    limit = effective_limit(args.limit, args.format)
    # A table asks for one row more, to tell whether rows were left out.
    asked = limit + 1 if limit is not None and args.format == "table" else limit
    entries = store.iter_operations(
        object_ids=object_ids,
        since=args.since,
        actions=merge_choices(args.actions),
        outcomes=merge_choices(args.outcomes),
        limit=asked,
    )
    rows = (history_row(entry) for entry in entries)
    if args.format == "json":
        write_json(rows, out)
    elif args.format == "csv":
        write_csv(rows, out)
    else:
        shown = table(islice(rows, limit)) if table is not None else write_table(islice(rows, limit), out)
        if limit is not None and shown == limit and next(rows, None) is not None:
            out.flush()  # the table first, then the note, when both go to one terminal
            print(f"(the newest {limit} shown; --limit N shows more, --limit 0 all)", file=err)
    return 0


# -- retention -------------------------------------------------------------------------------------------


def prune(
    store: Store,
    history_days: int,
    *,
    now: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[int, int]:
    """Delete the history older than `history_days` (see `Store.prune_history`), log `history.pruned`
    with the counts, and remember when (kv `history_pruned_at`) unless `should_stop` ended it early;
    (operations, runs) deleted. Blocking: the daemon runs it in a thread."""
    now = time.time() if now is None else now
    before = now - history_days * DAY_S
    started = time.monotonic()
    operations, runs = store.prune_history(before, should_stop=should_stop)
    complete = should_stop is None or not should_stop()
    if complete:
        store.set_value(PRUNED_AT_KEY, repr(now))
    log.info(
        "history.pruned",
        operations=operations,
        runs=runs,
        before=utc_text(before, "iso"),
        history_days=history_days,
        complete=complete,
        duration_s=round(time.monotonic() - started, 3),
    )
    return operations, runs


def prune_due(last_pruned: str | None, now: float) -> bool:
    """Pure: whether the history should be pruned now, given kv `history_pruned_at` (None: never)."""
    try:
        last = float(last_pruned) if last_pruned else None
    except ValueError:
        return True
    # A time in the future (the clock was set back) is not trusted either.
    return last is None or not 0 <= now - last < PRUNE_EVERY_S


def prune_if_due(store: Store, history_days: int, *, now: float | None = None) -> tuple[int, int] | None:
    """`prune` when the last one is more than a day old (or never ran); None when it was not due."""
    now = time.time() if now is None else now
    if not prune_due(store.get_value(PRUNED_AT_KEY), now):
        return None
    return prune(store, history_days, now=now)


__all__ = [
    "COLUMNS",
    "DEFAULT_TABLE_LIMIT",
    "EARLIEST_SINCE",
    "FORMATS",
    "LATEST_SINCE",
    "MAX_LIMIT",
    "RIGHT_ALIGNED",
    "TABLE_HEADERS",
    "add_arguments",
    "changed_fields",
    "csv_cell",
    "effective_limit",
    "history_row",
    "merge_choices",
    "parse_actions",
    "parse_choices",
    "parse_limit",
    "parse_outcomes",
    "parse_since",
    "prune",
    "prune_if_due",
    "run_history",
    "table_cells",
    "table_widths",
    "user_lookups",
]
