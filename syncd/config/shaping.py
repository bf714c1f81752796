"""The settings that shape desired state, and their values as one cycle compares them with the last.

A change to one of these can change every agent in one cycle (a wrong `default_region` renumbers everyone),
so the engine keeps their values after each cycle that applied its plan and names any that changed since
(`syncd.core.setting_changes`). A setting joins by adding its dotted key to `SHAPING_SETTINGS` (and to
`UNORDERED` when it is a list whose order means nothing); its value is read from the settings by its TOML
name.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from syncd.config.settings import Settings

SHAPING_SETTINGS: tuple[str, ...] = (
    "graph.group_ids",
    "graph.exclude_group_ids",
    "graph.filter",
    "graph.phone_source",
    "graph.default_region",
    "graph.teams_categories",
)
"""Dotted keys of the settings that decide who is in scope and what their agent holds, in the order they are
reported. `graph.phone_source` stands for the chain in effect (the older `phone_attribute` included)."""

UNORDERED: frozenset[str] = frozenset({"graph.group_ids", "graph.exclude_group_ids"})
"""Keys of lists whose order changes nothing: compared as sorted lists, so reordering is no change."""


def _value(settings: Settings, key: str) -> Any:
    section_name, _, name = key.partition(".")
    if key == "graph.phone_source":
        graph = settings.graph
        return None if graph is None else list(graph.phone_chain)
    section = getattr(settings, section_name, None)
    if not isinstance(section, BaseModel):
        return None
    fields = type(section).model_fields
    attribute = next((field for field, info in fields.items() if (info.alias or field) == name), None)
    if attribute is None:
        raise KeyError(f"{key} is not a setting")  # a name added to SHAPING_SETTINGS with a typo
    return section.model_dump(mode="json", include={attribute})[attribute]


def shaping_values(settings: Settings) -> dict[str, Any]:
    """The values (as JSON) of `SHAPING_SETTINGS` in `settings`, by dotted key; None for an absent section."""
    values: dict[str, Any] = {}
    for key in SHAPING_SETTINGS:
        value = _value(settings, key)
        if key in UNORDERED and isinstance(value, list):
            value = sorted(value, key=str)
        values[key] = value
    return values
