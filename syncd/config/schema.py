"""`syncd config schema`: a JSON Schema (draft-07) of `syncd.toml`, generated from the settings models, so an
editor completes and checks the file (VS Code's Even Better TOML reads a `#:schema` line at its top).

Generated from pydantic's schema of each section, then written the way the file is (`syncd.config.loader`):
keys under their TOML names (`interval`, not `interval_s`), durations as "15m" or a number of seconds, every
secret also as `<key>_file`, `graph.phone_source` as one string or a list, no null. No key is required by
the schema: any may come from a `SYNCD_*` variable instead; unknown keys and sections are errors, as they
are for syncd. Checks that need code (GUIDs, URLs, bounds of durations, one key or another) stay syncd's.

Each key's description is the docstring under its field in the model's source, read here (`ast`) rather
than by pydantic's `use_attribute_docstrings`, which would parse every settings module's source in every
process that loads a configuration (about 0.17 s of CPU at each start).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
from typing import Any

from pydantic import BaseModel

from syncd.config.fields import duration_words
from syncd.config.limits import spelled_default
from syncd.config.loader import FILE_SUFFIX, config_keys
from syncd.config.settings import Settings

DRAFT = "http://json-schema.org/draft-07/schema#"
"""The JSON Schema dialect: draft-07, the newest that every TOML editor's validator reads."""

DURATION_PATTERN = r"^\s*(?:(?:\d+(?:\.\d*)?|\.\d+)|(?:\s*(?:\d+(?:\.\d*)?|\.\d+)\s*(?:ms|[dhms])\s*)+)\s*$"
"""A duration as the loader reads it ("90s", "15m", "1h30m", "500ms", "1d", or bare seconds)."""

_ONE_OR_MANY = frozenset({"graph.phone_source"})
"""List keys that also take a single string."""

_DROPPED = ("title",)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An `X | None` property as X: TOML has no null, a key left out is the way to say none."""
    choices = prop.get("anyOf")
    if isinstance(choices, list):
        kept = [choice for choice in choices if choice != {"type": "null"}]
        if len(kept) == 1:
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            prop = {**rest, **kept[0]}
    if prop.get("default", 0) is None:
        prop = {k: v for k, v in prop.items() if k != "default"}
    return prop


def _key_schema(prop: dict[str, Any], *, duration: bool, one_or_many: bool) -> dict[str, Any]:
    prop = {k: v for k, v in _without_null(prop).items() if k not in _DROPPED}
    if "default" in prop:
        prop["default"] = spelled_default(prop["default"])
    if "description" in prop:
        prop["description"] = _flat(prop["description"])
    if duration:
        described = {k: prop[k] for k in ("description",) if k in prop}
        default = prop.get("default")
        if isinstance(default, int | float) and not isinstance(default, bool):
            described["default"] = duration_words(default)
        return {
            **described,
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
        }
    if one_or_many:
        items = prop.get("items", {"type": "string"})
        rest = {k: v for k, v in prop.items() if k not in ("type", "items")}
        return {**rest, "anyOf": [{"type": "string"}, {"type": "array", "items": items}]}
    return prop


def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The docstring written under each field of `model` (and of the models it derives from), by field."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(cls)))
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for field, following in itertools.pairwise(body):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                found[field.target.id] = inspect.cleandoc(following.value.value)
    return found


def _section_schema(section: str, model: type[BaseModel]) -> dict[str, Any]:
    generated = model.model_json_schema(by_alias=True, mode="validation")
    described = attribute_docstrings(model)
    properties: dict[str, Any] = {}
    for key, info in config_keys()[section].items():
        prop = dict(generated["properties"][key])
        if info.field in described:
            prop = {"description": described[info.field], **prop}
        properties[key] = _key_schema(prop, duration=info.duration, one_or_many=info.dotted in _ONE_OR_MANY)
        if info.secret:
            properties[key + FILE_SUFFIX] = {
                "description": f"Path of a file holding {key} (surrounding whitespace stripped), instead of "
                f"{key}; give one or the other.",
                "type": "string",
            }
    return {
        "description": _flat(model.__doc__ or ""),
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def config_schema() -> dict[str, Any]:
    """Pure: the JSON Schema of syncd's configuration file."""
    sections: dict[str, Any] = {}
    for section, section_field in Settings.model_fields.items():
        model = next(
            candidate
            for candidate in (section_field.annotation, *getattr(section_field.annotation, "__args__", ()))
            if isinstance(candidate, type) and issubclass(candidate, BaseModel)
        )
        sections[section] = _section_schema(section, model)
    return {
        "$schema": DRAFT,
        "title": "syncd configuration (syncd.toml)",
        "description": (
            "The configuration of syncd, generated by `syncd config schema`. Every key may be set instead as "
            "SYNCD_<SECTION>__<KEY> in the environment, so none is required here."
        ),
        "type": "object",
        "additionalProperties": False,
        "properties": sections,
    }


def schema_text() -> str:
    """The schema as `syncd config schema` prints it (and `config/syncd.schema.json` holds it)."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
