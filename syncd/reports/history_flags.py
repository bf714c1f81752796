"""The flags of `syncd history` and their parsing, apart from the history itself (`syncd.reports.history`)
so that building the command line's parser loads no more than this: `syncd --help` imports neither the
store (SQLAlchemy, Alembic) nor the settings (pydantic).

The parsers are pure functions of their text; bad values end argparse with exit 2 naming the flag.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from syncd.core.model import Action, Outcome

DAY_S = 86_400.0

FORMATS = ("table", "json", "csv")
DEFAULT_TABLE_LIMIT = 100
"""Rows a table shows unless `--limit` says otherwise; JSON and CSV are unlimited by default."""

MAX_LIMIT = 1_000_000_000
"""The largest `--limit`: more rows than any history holds, and far inside the 64-bit LIMIT of SQLite and
PostgreSQL (a table asks for one row more). `--limit 0` means every row."""
EARLIEST_SINCE = 0.0
"""The earliest `--since` (1970-01-01, the epoch): nothing was recorded before it."""
LATEST_SINCE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The latest `--since` a datetime (and so the database query) can hold."""


_BARE_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_SINCE_HELP = (
    "a duration (7d, 12h, 90m) or an ISO date or datetime (2026-11-01, 2026-11-01T08:00; UTC unless it has "
    "an offset)"
)

_E = TypeVar("_E", bound=StrEnum)
_T = TypeVar("_T")


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
        since = now - _parse_duration(value)
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


def _parse_duration(text: str) -> float:
    """`syncd.config.loader.parse_duration`, imported when a `--since` is read: the configuration's loader
    brings pydantic, which `syncd --help` does without."""
    from syncd.config.loader import parse_duration

    return parse_duration(text)


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
