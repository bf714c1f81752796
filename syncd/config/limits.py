"""The typed setting of a safety guard's limit: `GuardLimit` (0 allows no change) and `GuardLimitOrOff` (0
turns the guard off), each a `syncd.core.limits.Limit` after validation.

A limit is written in one of three forms, and the configuration stays strict about them:

- a whole number of agents: `max_offboard = 25`;
- a percentage of the agents syncd manages, as a string: `max_offboard = "10%"` (above 0, at most 100, up to
  two decimals: `"2.5%"`);
- both, as a list of one of each: `max_offboard = [200, "10%"]`: the smaller of the two wins.

One key with three forms, rather than a second `*_percent` key: a percentage given alone then replaces the
default count instead of being silently capped by it. In the environment the same forms are spelled `25`,
`10%` and `200,10%` (or a JSON array); `syncd.config.scalars` turns that text into these values. A guard
using a limit declares its field `max_x: GuardLimit = Field(default=Limit(count=50))`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from syncd.core.limits import NO_LIMIT, Limit, percent_text

__all__ = [
    "FORMS",
    "LIMIT_JSON_SCHEMA",
    "GuardLimit",
    "GuardLimitOrOff",
    "parse_limit",
    "spelled",
    "spelled_default",
]

FORMS = 'a whole number, a percentage such as "10%" or a list of both such as [200, "10%"]'
"""The accepted forms, for messages ("must be <FORMS>")."""

_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


def _percent(text: str) -> Decimal:
    match = _PERCENT.fullmatch(text)
    if match is None:
        raise ValueError(f'must be {FORMS}; a percentage is a number and %, such as "10%" or "2.5%"')
    percent = Decimal(match[1])
    if percent <= 0:
        raise ValueError("a percentage must be more than 0%")
    if percent > 100:
        raise ValueError("a percentage must be at most 100%")
    if percent != round(percent, 2):
        raise ValueError('a percentage has at most two decimals, such as "2.5%"')
    return percent


def _count(value: int, *, zero_is_off: bool) -> Limit:
    if value < 0:
        raise ValueError("must be greater than or equal to 0")
    return NO_LIMIT if value == 0 and zero_is_off else Limit(count=value)


def parse_limit(value: object, *, zero_is_off: bool) -> Limit:
    """Pure: the Limit a configuration value spells, or ValueError saying what is accepted (never quoting
    the value). `zero_is_off`: 0 turns the guard off instead of allowing no change."""
    if isinstance(value, Limit):
        return value
    if isinstance(value, bool):
        raise ValueError(f"must be {FORMS}, not true/false")
    if isinstance(value, int):
        return _count(value, zero_is_off=zero_is_off)
    if isinstance(value, str):
        return Limit(percent=_percent(value))
    if isinstance(value, list | tuple):
        counts = [item for item in value if isinstance(item, int) and not isinstance(item, bool)]
        texts = [item for item in value if isinstance(item, str)]
        if len(value) != 2 or len(counts) != 1 or len(texts) != 1:
            raise ValueError('a list gives one whole number and one percentage, such as [200, "10%"]')
        if counts[0] < 1:
            raise ValueError('in a list the whole number must be at least 1, such as [200, "10%"]')
        return Limit(count=counts[0], percent=_percent(texts[0]))
    raise ValueError(f"must be {FORMS}")


def _stopping(value: object) -> Limit:
    return parse_limit(value, zero_is_off=False)


def _off_at_zero(value: object) -> Limit:
    return parse_limit(value, zero_is_off=True)


def spelled(limit: Limit) -> object:
    """The limit as the configuration writes it (what `model_dump` gives)."""
    percent = None if limit.percent is None else f"{percent_text(limit.percent)}%"
    if limit.count is not None and percent is not None:
        return [limit.count, percent]
    return percent if percent is not None else (limit.count or 0)


_PERCENT_PATTERN = r"^\d+(\.\d{1,2})?%$"

LIMIT_JSON_SCHEMA: dict[str, object] = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": _PERCENT_PATTERN},
        {
            "type": "array",
            "items": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": _PERCENT_PATTERN},
            ],
            "minItems": 2,
            "maxItems": 2,
        },
    ]
}
"""The JSON Schema of a limit (`syncd config schema`): a count, "N%" or [count, "N%"]; the loader checks the
rest (a percentage from 0 to 100 exclusive, ...)."""


def spelled_default(value: object) -> object:
    """A limit's default as the configuration would write it (`syncd config schema`); anything else as is."""
    if isinstance(value, dict) and set(value) == {"count", "percent"}:
        percent = value["percent"]
        count = value["count"]
        limit = Limit(
            count=count if isinstance(count, int) else None,
            percent=None if percent is None else Decimal(str(percent)),
        )
        return spelled(limit)
    return value


GuardLimit = Annotated[
    Limit, PlainValidator(_stopping), PlainSerializer(spelled), WithJsonSchema(LIMIT_JSON_SCHEMA)
]
"""A guard's limit where 0 allows no change at all (`sync.max_offboard = 0` stops every offboarding)."""

GuardLimitOrOff = Annotated[
    Limit, PlainValidator(_off_at_zero), PlainSerializer(spelled), WithJsonSchema(LIMIT_JSON_SCHEMA)
]
"""A guard's limit where 0 turns the guard off (`sync.max_update = 0`: no limit)."""
