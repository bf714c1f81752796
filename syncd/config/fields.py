"""What every settings section shares: `ConfigError` and the small pure validators (files, choices, URLs)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


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
