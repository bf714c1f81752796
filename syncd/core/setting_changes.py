"""Which settings that shape desired state changed since the last cycle, and how to say so. Pure.

The values of those settings (which ones: `syncd.config.shaping`) are kept after each cycle that applied its
plan; the next cycle compares its own with them. A change there (another default region, phone source or
group) can change every agent at once, so the cycle says which setting changed, and a guard that stops it
names the setting in its message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SHOWN_VALUE_CHARS = 120
"""A value longer than this (as JSON) is cut with "..." in messages; the stored values stay whole."""


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


@dataclass(frozen=True, slots=True)
class SettingChange:
    """One setting whose value differs from the last cycle's: its dotted key and both values (JSON)."""

    key: str
    """Dotted, as the configuration names it: "graph.default_region"."""
    before: Any
    after: Any

    def describe(self) -> str:
        """Pure: 'graph.default_region "NO" -> "DK"'."""
        return f"{self.key} {_shown(self.before)} -> {_shown(self.after)}"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "from": self.before, "to": self.after}


def changed_settings(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> tuple[SettingChange, ...]:
    """Pure: the settings of `after` whose value differs from `before`'s, in `after`'s order.

    A key `before` does not hold (no cycle yet, or a setting this syncd did not compare before an upgrade)
    is not a change: there is nothing to compare it with.
    """
    if not before:
        return ()
    return tuple(
        SettingChange(key, before[key], value)
        for key, value in after.items()
        if key in before and before[key] != value
    )


def describe_changes(changes: Sequence[SettingChange]) -> str:
    """Pure: the changes on one line: 'graph.default_region "NO" -> "DK"; graph.phone_source ...'."""
    return "; ".join(change.describe() for change in changes)


def changes_to_json(changes: Sequence[SettingChange]) -> str:
    """Pure: the stored form of a run's changes (a JSON array of {"key", "from", "to"})."""
    return json.dumps([change.to_json() for change in changes], sort_keys=True)


def changes_from_json(raw: str | None) -> tuple[SettingChange, ...]:
    """Pure: the changes stored as `raw`; none when it is absent or unreadable."""
    try:
        data = json.loads(raw) if raw else []
    except ValueError:
        return ()
    if not isinstance(data, list):
        return ()
    return tuple(
        SettingChange(str(item["key"]), item.get("from"), item.get("to"))
        for item in data
        if isinstance(item, dict) and "key" in item
    )


def values_from_json(raw: str | None) -> dict[str, Any] | None:
    """Pure: the setting values stored as `raw` (a JSON object); None when absent or unreadable."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return {str(key): value for key, value in data.items()} if isinstance(data, dict) else None
