"""`syncd config show`: the effective configuration, key by key, after the file, the environment and the
`*_file` secrets, each with where its value came from (default, file, env, file-ref), secrets as `***`.

The values are the validated settings, written back the way the file writes them (durations as "15m");
`database.url` keeps everything but its password. As a second line of defence the finished text is
scrubbed of every secret value the settings hold, so no formatting slip can print one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.config.fields import duration_words
from syncd.config.limits import spelled
from syncd.config.loader import Source, config_keys
from syncd.config.settings import Settings
from syncd.core.limits import Limit

REDACTED = "***"
"""What a secret's value is shown as."""

_SCRUB_MIN_LENGTH = 4
"""Shorter secret values are not scrubbed from the text: they would mangle ordinary words."""


@dataclass(frozen=True)
class ShownKey:
    """One key of the effective configuration."""

    section: str
    key: str
    """The key's TOML name."""
    value: object
    """The value as the file would write it (JSON-compatible), `***` for a secret that is set, None when
    the key is unset (a secret or certificate password given nowhere)."""
    source: Source | None
    """Where the value came from; None: the key's default."""
    secret: bool

    @property
    def origin(self) -> str:
        """The source in words: "default", "file", "env SYNCD_...", "file-ref /path (via ...)"."""
        source = self.source
        if source is None:
            return "default"
        if source.kind == "env":
            return f"env {source.via}"
        if source.kind == "file-ref":
            return f"file-ref {source.path} (named by {source.via})"
        return source.kind


def effective(settings: Settings, sources: Mapping[str, Source]) -> dict[str, list[ShownKey] | None]:
    """Pure: section -> its keys as shown, in the models' order; None for an absent optional section
    (`[graph]`, `[smartcomm]`)."""
    shown: dict[str, list[ShownKey] | None] = {}
    for section, keys in config_keys().items():
        model = getattr(settings, section)
        if not isinstance(model, BaseModel):
            shown[section] = None
            continue
        rows = []
        for key, info in keys.items():
            value = _shown_value(getattr(model, info.field), duration=info.duration)
            if section == "database" and key == "url" and isinstance(value, str):
                value = hide_url_password(value)
            rows.append(ShownKey(section, key, value, sources.get(info.dotted), info.secret))
        shown[section] = rows
    return shown


def _shown_value(value: object, *, duration: bool) -> object:
    if isinstance(value, SecretStr):
        return REDACTED
    if duration and isinstance(value, int | float) and not isinstance(value, bool):
        return duration_words(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Limit):
        return spelled(value)
    return value


def hide_url_password(url: str) -> str:
    """Pure: a database URL with its password (and a `password` query parameter) as `***`."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return REDACTED
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": REDACTED})
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", REDACTED)


def secret_values(settings: Settings) -> list[str]:
    """Every secret value the settings hold (SecretStr keys, the database password), longest first."""
    found: list[str] = []
    for section in config_keys():
        model = getattr(settings, section)
        if isinstance(model, BaseModel):
            found += [
                value.get_secret_value()
                for value in (getattr(model, name) for name in type(model).model_fields)
                if isinstance(value, SecretStr)
            ]
    try:
        url = make_url(settings.database.url)
    except (ArgumentError, ValueError):
        url = None
    if url is not None:
        found += [s for s in (url.password, url.query.get("password")) if isinstance(s, str)]
    return sorted({s for s in found if len(s) >= _SCRUB_MIN_LENGTH}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """Pure: `text` with every one of `secrets` (longest first) replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def render_text(settings: Settings, sources: Mapping[str, Source], config_file: Path | None) -> str:
    """The effective configuration as TOML, each key followed by a comment saying where it came from."""
    where = f"the config file {config_file}" if config_file is not None else "no config file"
    lines = [
        f"# The effective configuration: {where}, then SYNCD_* environment variables and *_file secrets.",
        f"# Secrets are shown as {REDACTED}; each key's comment says where its value came from.",
    ]
    for section, rows in effective(settings, sources).items():
        lines.append("")
        if rows is None:
            lines.append(f"# [{section}] is not configured (no key of it in the file or the environment)")
            continue
        lines.append(f"[{section}]")
        texts = [
            f"{row.key} = {_toml(row.value)}" if row.value is not None else f"# {row.key}: not set"
            for row in rows
        ]
        width = min(max(len(text) for text in texts), 60)
        lines += [f"{text.ljust(width)}  # {row.origin}" for text, row in zip(texts, rows, strict=True)]
    return scrub("\n".join(lines) + "\n", secret_values(settings))


def to_json(settings: Settings, sources: Mapping[str, Source], config_file: Path | None) -> str:
    """The effective configuration as one JSON object: `config_file`, and `sections`: section -> key ->
    {value, source, via, path, secret}, in the order of the models (None for an absent section)."""
    document: dict[str, object] = {"config_file": str(config_file) if config_file is not None else None}
    sections: dict[str, object] = {}
    for section, rows in effective(settings, sources).items():
        if rows is None:
            sections[section] = None
            continue
        sections[section] = {
            row.key: {
                "value": row.value,
                "source": row.source.kind if row.source is not None else "default",
                "via": row.source.via if row.source is not None else "",
                "path": row.source.path if row.source is not None else "",
                "secret": row.secret,
            }
            for row in rows
        }
    document["sections"] = sections
    return scrub(json.dumps(document), secret_values(settings))
