"""The audit history: `syncd history` (the operations log, filtered, as a table, JSON or CSV) and its
retention (`sync.history_days`).

The parsing of the flags and the formatting of rows are pure functions of plain data; `run_history` is the
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
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from itertools import islice
from typing import Any, TextIO, TypeVar

import structlog

from syncd.config.loader import parse_duration
from syncd.core.model import Action, AgentFields, Outcome
from syncd.core.text import printable
from syncd.core.times import utc_text
from syncd.store import HistoryEntry, Store

log = structlog.get_logger("syncd.history")

FORMATS = ("table", "json", "csv")
DEFAULT_TABLE_LIMIT = 100
"""Rows a table shows unless `--limit` says otherwise; JSON and CSV are unlimited by default."""

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

DAY_S = 86_400.0
PRUNED_AT_KEY = "history_pruned_at"
"""kv key: when the history was last pruned completely (epoch seconds, as text)."""
PRUNE_EVERY_S = DAY_S
"""`syncd sync` prunes at its end when the last prune is older than this; the daemon prunes this often."""

TABLE_SAMPLE_ROWS = 200
"""The table sizes its columns from this many first rows; later rows are cut to those widths."""
TABLE_MAX_WIDTH = {"upn": 40, "changed": 60, "error": 60}
"""Widest cell per column in a table (longer text is cut with "..."); CSV and JSON keep everything."""
_TABLE_HEADERS = {
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
_RIGHT_ALIGNED = frozenset({"http_status", "run_id"})

MAX_LIMIT = 1_000_000_000
"""The largest `--limit`: more rows than any history holds, and far inside the 64-bit LIMIT of SQLite and
PostgreSQL (a table asks for one row more). `--limit 0` means every row."""
EARLIEST_SINCE = 0.0
"""The earliest `--since` (1970-01-01, the epoch): nothing was recorded before it."""
LATEST_SINCE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The latest `--since` a datetime (and so the database query) can hold."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a CSV cell as a formula (OWASP's CSV injection list)."""

_BARE_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_E164 = re.compile(r"\+[0-9]+")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_SINCE_HELP = (
    "a duration (7d, 12h, 90m) or an ISO date or datetime (2026-11-01, 2026-11-01T08:00; UTC unless it has "
    "an offset)"
)

_E = TypeVar("_E", bound=StrEnum)
_T = TypeVar("_T")


# -- parsing the flags (pure) ----------------------------------------------------------------------------


def parse_since(text: str, now: float) -> float:
    """Pure: the epoch second `--since` means at `now`: now minus a duration ("7d", "12h", "1h30m"), or an
    ISO date or datetime ("2026-11-01" is its midnight), in UTC unless it carries an offset.

    A bare number is refused (seconds? days?): it needs a unit. So is a moment before 1970-01-01 (a duration
    reaching back that far) or after 9999-12-31. Raises ValueError saying what is accepted.
    """
    value = text.strip()
    if _BARE_NUMBER.fullmatch(value):
        raise ValueError(f"{text!r} needs a unit: {_SINCE_HELP}")
    try:
        since = now - parse_duration(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{text!r} is not {_SINCE_HELP}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            since = moment.timestamp()
        except (OverflowError, ValueError):  # a date near year 1 or 9999 with an offset
            since = -math.inf if moment.year < 1970 else math.inf
    if not since >= EARLIEST_SINCE:  # also NaN
        days = max(int((now - EARLIEST_SINCE) // DAY_S), 0)
        raise ValueError(
            f"{text!r} reaches back before 1970-01-01: give a duration of at most {days}d or a date from "
            "1970-01-01 on"
        )
    if since > LATEST_SINCE:
        raise ValueError(f"{text!r} is after 9999-12-31: give a date up to 9999-12-31")
    return since


def parse_choices(text: str, choices: type[_E], what: str) -> frozenset[_E]:
    """Pure: the members of `choices` named in `text`, comma-separated, any case ("onboard,UPDATE").

    Raises ValueError naming the unknown value and listing the choices; an empty list is unknown too.
    """
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    valid = ", ".join(choice.value for choice in choices)
    if not names:
        raise ValueError(f"no {what} given (choose from {valid})")
    chosen: set[_E] = set()
    for name in names:
        try:
            chosen.add(choices(name))
        except ValueError:
            raise ValueError(f"unknown {what} {name!r} (choose from {valid})") from None
    return frozenset(chosen)


def parse_actions(text: str) -> frozenset[Action]:
    """Pure: `--action` (see `parse_choices`)."""
    return parse_choices(text, Action, "action")


def parse_outcomes(text: str) -> frozenset[Outcome]:
    """Pure: `--outcome` (see `parse_choices`)."""
    return parse_choices(text, Outcome, "outcome")


def parse_limit(text: str) -> int:
    """Pure: `--limit`, a whole number of rows up to `MAX_LIMIT`; 0 means no limit."""
    value = text.strip()
    try:
        limit = int(value)
    except ValueError:
        if _DIGITS.fullmatch(value):  # too many digits for int() to read
            limit = MAX_LIMIT + 1
        else:
            raise ValueError(f"{text!r} is not a whole number of rows (0: no limit)") from None
    if limit < 0:
        raise ValueError(f"{text!r} is negative (0: no limit)")
    if limit > MAX_LIMIT:
        raise ValueError(f"{text!r} is above the maximum of {MAX_LIMIT:,} rows (0: no limit)")
    return limit


def merge_choices(given: Iterable[frozenset[_E]] | None) -> frozenset[_E] | None:
    """Pure: the union of a repeated flag's values; None when the flag was not given (no filter)."""
    if given is None:
        return None
    merged: frozenset[_E] = frozenset()
    for values in given:
        merged |= values
    return merged


def effective_limit(limit: int | None, output_format: str) -> int | None:
    """Pure: how many rows to show: `--limit` (0: all), else 100 for a table and all for JSON and CSV."""
    if limit is None:
        return DEFAULT_TABLE_LIMIT if output_format == "table" else None
    return limit or None


def user_lookups(text: str) -> list[str]:
    """Pure: what to look `--user` up as: the text, and for a number written with spaces, dashes, dots or
    parentheses ("+1 415-555 0100") also its compact form (the E.164 the store holds)."""
    wanted = text.strip()
    lookups = [wanted]
    if wanted.startswith("+"):
        compact = _PHONE_SEPARATORS.sub("", wanted)
        if compact != wanted:
            lookups.append(compact)
    return lookups


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
    for column in _TABLE_HEADERS:
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
    widths = {
        column: min(
            max(len(header), *(len(cells[column]) for cells in sample)),
            TABLE_MAX_WIDTH.get(column, 1_000),
        )
        for column, header in _TABLE_HEADERS.items()
    }

    def line(cells: dict[str, str]) -> str:
        parts = []
        for column, width in widths.items():
            text = cells[column]
            if len(text) > width:
                text = text[: max(width - 3, 0)] + "..."
            parts.append(text.rjust(width) if column in _RIGHT_ALIGNED else text.ljust(width))
        return "  ".join(parts).rstrip()

    yield line(dict(_TABLE_HEADERS))
    for cells in sample:
        yield line(cells)
    for row in iterator:
        yield line(table_cells(row))


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `syncd history`; bad values end argparse with exit 2 naming the flag."""
    parser.add_argument("--user", metavar="X", help="an object ID, a UPN (any case) or a phone number")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        type=_argument(lambda text: parse_since(text, time.time())),
        help="a duration back from now (7d, 12h, 90m) or an ISO date/datetime (UTC unless an offset)",
    )
    parser.add_argument(
        "--action",
        dest="actions",
        action="append",
        metavar="A[,A]",
        type=_argument(parse_actions),
        help="onboard, update, offboard, relink (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--outcome",
        dest="outcomes",
        action="append",
        metavar="O[,O]",
        type=_argument(parse_outcomes),
        help="ok, adopted, already_gone, failed, skipped, pending (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table (default), json (one array) or csv"
    )
    parser.add_argument(
        "--limit",
        metavar="N",
        type=_argument(parse_limit),
        help=f"at most N rows, newest first (default {DEFAULT_TABLE_LIMIT} for a table, all for json and "
        "csv; 0: all)",
    )


def _argument(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse `type` that keeps the parser's message (argparse hides a ValueError's)."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def run_history(store: Store, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`syncd history`: write the matching operations to `out`, newest first; the exit code.

    1 (and a line on `err`) when `--user` matches nobody; 0 otherwise, also when no operation matches.
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
        shown = write_table(islice(rows, limit), out)
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
    "MAX_LIMIT",
    "add_arguments",
    "changed_fields",
    "csv_cell",
    "history_row",
    "parse_since",
    "prune",
    "prune_if_due",
    "run_history",
]
