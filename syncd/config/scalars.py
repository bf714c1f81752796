"""Strict scalar values for the loader: the kind of value each key takes, read from its model's annotation,
and the checks that a value is of that kind.

pydantic's lax mode would take `max_offboard = true` as 1 and `daily_summary = 1` or `"yes"` as true; in the
config file a value must have its key's TOML type instead (a whole number for an int, a number for a float,
true or false for a bool; a quoted "25" is refused too). Environment variables are text by nature, so there a
value must spell its kind exactly: an int as digits with an optional sign, a float as a decimal number, a
bool as true, false, 1 or 0 (any case; "yes", "on" and the like are refused). A guard's limit
(`syncd.config.limits`) is a whole number, a percentage string or a list of one of each in the file, and
`25`, `10%` or `200,10%` (or a JSON array) in the environment. Messages never quote the value.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import types
from typing import Literal, Union, get_args, get_origin

from syncd.config.limits import FORMS
from syncd.core.limits import Limit

__all__ = ["Kind", "from_env", "from_file", "kind_of"]

Kind = Literal["bool", "int", "float", "limit", "other"]
"""The kinds of value checked here; "other" (strings, lists, secrets) is left to the models. "limit" is a
guard's limit (`syncd.config.limits`): a whole number, a percentage string, or a list of one of each."""

_WHOLE = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE, _FALSE = ("true", "1"), ("false", "0")
_KINDS: dict[object, Kind] = {bool: "bool", int: "int", float: "float", Limit: "limit"}


def kind_of(annotation: object) -> Kind:
    """Pure: the kind of a field annotated `annotation` ("int" for `int` and `int | None`, ...)."""
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    concrete = [member for member in members if member is not type(None)]
    return _KINDS.get(concrete[0], "other") if len(concrete) == 1 else "other"


def _what(value: object) -> str:
    """Pure: the TOML type of `value` in words, for "must be ..., not <what>"."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number" if math.isfinite(value) else "inf or nan"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return "a date or time"
    return type(value).__name__


def _not(expected: str, value: object, *, quoted: bool) -> str:
    """Pure: "must be <expected>, not <what value is>", with a hint when the value is only wrongly quoted."""
    hint = " (write it without quotes)" if quoted else ""
    return f"must be {expected}, not {_what(value)}{hint}"


def from_file(kind: Kind, value: object) -> tuple[object, str]:
    """Pure: (`value`, "") when a value read from the TOML file has the type `kind` needs, else (None, what
    to write instead)."""
    text = value.strip().lower() if isinstance(value, str) else None
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return None, _not("a whole number", value, quoted=text is not None and bool(_WHOLE.fullmatch(text)))
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, _not("a number", value, quoted=text is not None and bool(_DECIMAL.fullmatch(text)))
        if not math.isfinite(value):
            return None, "must be a finite number, not inf or nan"
    if kind == "bool" and not isinstance(value, bool):
        return None, _not("true or false", value, quoted=text in ("true", "false"))
    if kind == "limit":
        return _limit_from_file(value)
    return value, ""


def _limit_from_file(value: object) -> tuple[object, str]:
    """A guard's limit from the file: a whole number, a string (the model checks it is a percentage) or a
    list (the model checks its items); a quoted whole number is refused like any int's."""
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return None, _not(FORMS, value, quoted=True)
    if isinstance(value, bool) or not isinstance(value, int | str | list):
        return None, _not(FORMS, value, quoted=False)
    return value, ""


def _limit_from_env(text: str) -> tuple[object, str]:
    """A guard's limit from an environment variable: "25", "10%", "200,10%" or a JSON array."""
    spelled = text.strip()
    if spelled.startswith("["):
        try:
            items = json.loads(spelled)
        except ValueError:
            return None, f'must be {FORMS}; a list as a JSON array such as [200, "10%"] or as 200,10%'
        return (items, "") if isinstance(items, list) else (None, f"must be {FORMS}")
    parts = [part.strip() for part in spelled.split(",")]
    values: list[object] = [int(part) if _WHOLE.fullmatch(part) else part for part in parts]
    return (values if len(values) > 1 else values[0]), ""


def from_env(kind: Kind, text: object) -> tuple[object, str]:
    """Pure: (the value, "") that the text of an environment variable spells exactly for `kind`, else
    (None, what is accepted). Values of kind "other" are returned as they are."""
    if kind == "other" or not isinstance(text, str):
        return text, ""
    if kind == "limit":
        return _limit_from_env(text)
    spelled = text.strip()
    if kind == "bool":
        if spelled.lower() in _TRUE + _FALSE:
            return spelled.lower() in _TRUE, ""
        return None, "must be true or false (or 1 or 0)"
    if kind == "int":
        return (int(spelled), "") if _WHOLE.fullmatch(spelled) else (None, "must be a whole number")
    if not _DECIMAL.fullmatch(spelled):
        return None, "must be a number"
    number = float(spelled)
    return (number, "") if math.isfinite(number) else (None, "must be a finite number")
