"""What every settings section shares: `ConfigError` and the small pure validators (files, choices, URLs,
bounds of durations)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AfterValidator

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

MINUTE = 60.0
"""Seconds in a minute, for writing bounds of durations."""
HOUR = 3600.0
"""Seconds in an hour."""
DAY = 86400.0
"""Seconds in a day."""

_WORD_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def duration_words(seconds: float) -> str:
    """Pure: `seconds` written the way the configuration writes durations ("1d", "1h30m", "100ms"), to the
    millisecond; the largest units first."""
    left = round(seconds * 1000)
    if seconds > 0 and not left:
        return "less than 1ms"
    parts = []
    for unit, size in _WORD_UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def seconds_words(seconds: float) -> str:
    """Pure: a bound for a message, in words and in seconds: "1d (86400 s)", "100ms (0.1 s)"."""
    number = f"{int(seconds)}" if seconds == int(seconds) else f"{seconds:g}"
    return f"{duration_words(seconds)} ({number} s)"


def at_most(bound: float) -> AfterValidator:
    """The annotation bounding a duration field in seconds: a finite value no larger than `bound`, else a
    ValueError saying the bound in words ("must be at most 1d (86400 s)"). Every `*_s` field carries one,
    so that no duration can overflow a scheduler or a timer."""

    def check(value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        if value > bound:
            raise ValueError(f"must be at most {seconds_words(bound)}")
        return value

    return AfterValidator(check)


class _FileForm:
    """The type of `FILE_FORM`."""

    def __repr__(self) -> str:
        return "FILE_FORM"


FILE_FORM = _FileForm()
"""Annotation marker (`Annotated[str, FILE_FORM]`) of a key that is not a `SecretStr` but may carry a
credential, like `database.url` with its password: the loader accepts it as `<key>_file` too, as it does
every secret key, and masks its value in messages."""


def existing_file(value: str) -> str:
    """Pure but for the check: `value` when it is empty or names a file, else ValueError."""
    if value and not Path(value).is_file():
        raise ValueError(f"no such file: {value}")
    return value


def choice(value: str, choices: tuple[str, ...]) -> str:
    """Pure: `value` trimmed and lower-cased when it is one of `choices`, else ValueError listing them."""
    chosen = value.strip().lower()
    if chosen not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return chosen


def https_url(value: str, *, path_allowed: bool) -> str:
    """Pure: `value` without a trailing slash when it is an https URL (scheme and host only unless
    `path_allowed`), else ValueError."""
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    if parts.query or parts.fragment or (not path_allowed and parts.path not in ("", "/")):
        raise ValueError("must be scheme and host only")
    return value.rstrip("/")


class ConfigError(Exception):
    """A configuration the user must fix.

    `key` is the dotted key at fault ("graph.client_secret"), or "" for the whole file; `str(error)` is
    "<key>: <message>" (just the message without a key). When several keys are wrong, `key` is the first and
    `message` goes on with "; <key>: <message>" for each other; `problems` holds every (key, message) pair.
    Messages never contain a secret value.
    """

    def __init__(self, key: str, message: str, *, problems: Sequence[tuple[str, str]] = ()) -> None:
        self.key = key
        self.message = message
        self.problems: tuple[tuple[str, str], ...] = tuple(problems) or ((key, message),)
        super().__init__(f"{key}: {message}" if key else message)

    @classmethod
    def from_problems(cls, problems: Sequence[tuple[str, str]]) -> ConfigError:
        """One error for every (key, message) in `problems` (at least one), in their order."""
        (key, message), *rest = problems
        text = "; ".join([message, *(f"{other}: {what}" if other else what for other, what in rest)])
        return cls(key, text, problems=problems)
