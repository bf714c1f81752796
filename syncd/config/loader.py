"""Loading syncd's settings from a TOML file, `SYNCD_<SECTION>__<KEY>` environment variables and `*_file`
secrets, with errors that name the key to fix.

The contract users script against (keep it exactly):

- the file is `--config PATH`, else `$SYNCD_CONFIG`, else none: then everything comes from the environment;
- every key can be set as `SYNCD_<SECTION>__<KEY>` (a list comma-separated or as a JSON array), and the
  environment overrides the file key by key;
- every secret key `x` can be given instead as `x_file`, the path of a file holding the value (surrounding
  whitespace stripped), in the file or the environment; giving both is an error. So can `database.url`,
  which may carry a password (`syncd.config.fields.FILE_FORM`);
- ... except that an environment variable of the key set to the empty string (or only whitespace) beside
  its `x_file` counts as not set: Kubernetes and Compose cannot unset a variable an image sets (the image's
  `SYNCD_DATABASE__URL`), only empty it, to let `x_file` decide. Without `x_file` an empty value is checked
  like any other;
- durations are written "90s", "15m", "1h30m", "500ms", "1d" or as a bare number of seconds, each below its
  key's upper bound;
- in the file a value has its key's TOML type: `max_offboard = true` or `max_offboard = "25"` is an error, not
  1 or 25; an environment variable's text must spell the key's kind exactly (`syncd.config.scalars`);
- anything wrong raises one `ConfigError` naming every bad key in dotted form (`graph.client_secret`), never
  containing a secret value; the command line prints it and exits with status 2, without a traceback.

`load_settings_with_sources` also says where each key given came from (the file, a variable, a `_file`),
for `syncd config show`; `config_keys` lists what the loader knows of every key, for it and the schema.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

# ConfigError is defined with the models, whose `Settings.require` raises it too; it is part of this
# module's API (`from syncd.config.loader import ConfigError`).
from syncd.config import scalars
from syncd.config.fields import FILE_FORM
from syncd.config.settings import ConfigError, Settings

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "ConfigError",
    "KeyInfo",
    "Source",
    "config_keys",
    "config_path",
    "load_settings",
    "load_settings_with_sources",
    "parse_duration",
]

CONFIG_ENV = "SYNCD_CONFIG"
"""The environment variable naming the config file when `--config` is not given."""
ENV_PREFIX = "SYNCD_"
"""Prefix of the environment variables that set keys, `SYNCD_<SECTION>__<KEY>`."""
FILE_SUFFIX = "_file"
"""Suffix of the key naming a file that holds a secret key's value (`client_secret_file`)."""

# Errors of a whole model (its model validator) carry no field; this is the key a user fixes for them.
_MODEL_ERROR_KEYS = {"graph": "client_secret", "admin": "tls_cert_path"}
_REDACTED = "***"
_REJECTED = object()
"""Stands in for a value the loader refused (and reported): the model refuses it too, under the key's own
name (an error already covered), so checks that depend on the key (jitter on interval) do not run against its
default instead."""


_BARE_SECONDS = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|[dhms])\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_HELP = 'use seconds or a duration such as "90s", "15m", "1h30m", "500ms" or "1d"'


def parse_duration(text: str | float | int) -> float:
    """Pure: the seconds in "90s", "15m", "1h", "1h30m", "500ms", "1d", or a bare number of seconds.

    Units are ms, s, m, h and d (lower case), combined largest first or in any order; a number may have a
    fraction ("1.5h"). Raises ValueError saying what is accepted for anything else, negatives and numbers
    too large for a float included. Upper bounds are the models' business (`syncd.config.fields.at_most`).
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"{text!r} is not a duration ({_DURATION_HELP})")
    if not isinstance(text, str):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"{text!r} is not a duration: it must be finite and not negative")
        return float(text)
    value = text.strip()
    if _BARE_SECONDS.fullmatch(value):
        return float(value)
    seconds, position = 0.0, 0
    while value and position < len(value):
        part = _DURATION_PART.match(value, position)
        if part is None:
            break
        seconds += float(part[1]) * _UNIT_SECONDS[part[2]]
        position = part.end()
    if not value or position < len(value):
        raise ValueError(f"{text!r} is not a duration ({_DURATION_HELP})")
    if not math.isfinite(seconds):
        raise ValueError("not a duration: too large a number")
    return seconds


def config_path(cli_value: str | None, env: Mapping[str, str]) -> Path | None:
    """Pure: the config file to load: `--config` wins over `SYNCD_CONFIG`; None when neither names one.

    An empty value names no file, so `--config ''` loads from the environment alone even when
    `SYNCD_CONFIG` is set. `~` is expanded; a relative path is relative to the working directory.
    """
    value = cli_value if cli_value is not None else env.get(CONFIG_ENV, "")
    return Path(value).expanduser() if value.strip() else None


def load_settings(path: Path | None, env: Mapping[str, str]) -> Settings:
    """The settings from the TOML file at `path` (None: no file) overridden by `env`, validated.

    Raises ConfigError for an unreadable or invalid file (naming the file), and otherwise once for all bad
    keys: unknown ones (with the closest known key), unreadable `_file`s, both `x` and `x_file`, and values
    the models reject. The error has no cause or context attached: nothing in it can leak a secret.
    """
    return load_settings_with_sources(path, env)[0]


@dataclass(frozen=True)
class Source:
    """Where a key's value came from (`syncd config show`); a key given nowhere has its default."""

    kind: str
    """"file" (the config file), "env" (a `SYNCD_<SECTION>__<KEY>` variable) or "file-ref" (a secret read
    from the file a `<key>_file` key names)."""
    via: str = ""
    """env: the variable's name; file-ref: where the `_file` key was given (its variable's name, or the
    dotted key when it is in the config file)."""
    path: str = ""
    """file-ref: the path of the file the secret was read from."""


def load_settings_with_sources(
    path: Path | None, env: Mapping[str, str]
) -> tuple[Settings, dict[str, Source]]:
    """`load_settings`, and where each key given came from, by dotted TOML key ("graph.client_secret");
    keys absent from it have their default. Raises ConfigError as `load_settings` does."""
    document = _read_toml(path) if path is not None else {}
    problems = _Problems()
    sections: dict[str, dict[str, _Value]] = {}
    _take_file(document, sections, problems)
    _take_env(env, sections, problems)
    _resolve_secret_files(sections, problems)
    _parse_durations(sections, problems)
    _check_kinds(sections, problems)
    for section, key in problems.typos:
        if meant := _meant(section, key, sections.get(section, {})):
            problems.covered.add(meant)
    settings = _validate(sections, problems)
    if settings is None or problems.found:
        raise ConfigError.from_problems(_scrubbed(problems.in_order(), sections))
    sources = {
        f"{section}.{key}": given.source for section, keys in sections.items() for key, given in keys.items()
    }
    return settings, sources


@dataclass(frozen=True)
class KeyInfo:
    """What the loader needs to know about one key of a section."""

    section: str
    name: str
    """The key's spelling in TOML (the field's alias, if any)."""
    field: str
    """The model's field name (`interval_s` for the key `interval`)."""
    secret: bool
    """Whether the key has a `_file` form and its value is masked in messages: a `SecretStr`, or a key
    marked `FILE_FORM`."""
    is_list: bool
    duration: bool
    """A `*_s` field written without `_s` in TOML, as a duration."""
    kind: scalars.Kind
    """The kind of value the key takes, from its annotation; "other" (strings, lists) is left to the model."""

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


@dataclass(frozen=True)
class _Value:
    value: object
    origin: str = ""
    """Where the value came from when it was not the config file itself, for messages."""
    from_env: bool = False
    """Whether the value is an environment variable's text."""
    source: Source = Source("file")
    """Where the value came from, for `syncd config show`."""


@dataclass
class _Problems:
    found: list[tuple[str, str]] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)
    """Keys whose value was dropped or is known bad, so validation does not add a second, vaguer message."""
    typos: list[tuple[str, str]] = field(default_factory=list)
    """(section, key) of every unknown key in a known section."""

    def add(self, key: str, message: str, *, covers: str = "") -> None:
        self.found.append((key, message))
        if covers:
            self.covered.add(covers)

    def in_order(self) -> list[tuple[str, str]]:
        """The problems section by section in the order of `Settings`, unknown sections last; within a section
        in the order found, so misspelt names come first: they often explain what follows."""
        sections = list(_schema())

        def position(problem: tuple[str, str]) -> int:
            section = problem[0].partition(".")[0]
            return sections.index(section) if section in sections else len(sections)

        return sorted(self.found, key=position)


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"


@cache
def _schema() -> dict[str, dict[str, KeyInfo]]:
    """Section -> TOML key -> KeyInfo, read from the models of `Settings` so the two cannot drift apart."""
    schema: dict[str, dict[str, KeyInfo]] = {}
    for section, section_field in Settings.model_fields.items():
        candidates = (section_field.annotation, *get_args(section_field.annotation))
        model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
        keys: dict[str, KeyInfo] = {}
        for name, info in model.model_fields.items():
            key = info.alias or name
            keys[key] = KeyInfo(
                section=section,
                name=key,
                field=name,
                secret=SecretStr in (info.annotation, *get_args(info.annotation))
                or FILE_FORM in info.metadata,
                is_list=get_origin(info.annotation) is list,
                duration=name.endswith("_s") and key == name.removesuffix("_s"),
                kind=scalars.kind_of(info.annotation),
            )
        schema[section] = keys
    return schema


def config_keys() -> dict[str, dict[str, KeyInfo]]:
    """Section -> TOML key -> what the loader knows of it (secret, list, duration, kind), in the order of the
    models; the `_file` spellings of secrets are not listed (`KeyInfo.secret` says a key has one)."""
    return _schema()


@cache
def _known(section: str) -> tuple[str, ...]:
    """Every key the section accepts, the `_file` spelling of its secrets included."""
    keys = _schema()[section].values()
    return tuple(key.name for key in keys) + tuple(key.name + FILE_SUFFIX for key in keys if key.secret)


def _closest(section: str, key: str) -> list[str]:
    """The dotted known keys closest to an unknown one: a near spelling in the same section, else the same
    or a near spelling in the other sections (all of them that have it, like `base_url`)."""
    near = difflib.get_close_matches(key, _known(section), n=1)
    if near:
        return [f"{section}.{near[0]}"]
    others = [other for other in _schema() if other != section]
    names = sorted({name for other in others for name in _known(other)})
    near = difflib.get_close_matches(key, names, n=1, cutoff=0.8)
    return [f"{other}.{near[0]}" for other in others if near and near[0] in _known(other)]


def _suggestion(section: str, key: str, *, as_env: bool) -> str:
    """The hint ' (did you mean <closest keys>?)' for an unknown key, or "" when no known key is close."""
    matches = _closest(section, key)
    if not matches:
        return ""
    if as_env:
        matches = [_env_name(*match.split(".", 1)) for match in matches]
    return f" (did you mean {' or '.join(matches)}?)"


def _meant(section: str, key: str, given: Mapping[str, object]) -> str:
    """The dotted key a misspelt `key` stands for when that key is not given itself, else "": validation
    would only report it "missing", repeating the misspelling's message less helpfully."""
    matches = _closest(section, key)
    if len(matches) != 1 or not matches[0].startswith(f"{section}."):
        return ""
    meant = matches[0].removeprefix(f"{section}.").removesuffix(FILE_SUFFIX)
    if meant in given or meant + FILE_SUFFIX in given:
        return ""
    return f"{section}.{meant}"


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a file: the default configuration comes from the environment

    problem = ""
    document: dict[str, Any] = {}
    try:
        document = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        problem = f"config file {path} does not exist"
    except OSError as error:
        problem = f"cannot read config file {path}: {error.strerror or type(error).__name__}"
    except UnicodeDecodeError as error:
        problem = f"config file {path} is not UTF-8 text (byte {error.start})"
    except tomllib.TOMLDecodeError as error:
        # The message ends "(at line L, column C)" and quotes at most one character of the file.
        problem = f"config file {path} is not valid TOML: {error}"
    if problem:
        raise ConfigError("", problem)
    return document


def _take_file(
    document: Mapping[str, Any], sections: dict[str, dict[str, _Value]], problems: _Problems
) -> None:
    schema = _schema()
    for name, table in document.items():
        if name not in schema:
            if isinstance(table, dict):
                close = difflib.get_close_matches(name, list(schema), n=1)
                hint = f" (did you mean [{close[0]}]?)" if close else ""
                problems.add(name, f"unknown section [{name}]{hint}")
            else:
                homes = [f"[{section}]" for section in schema if name in _known(section)]
                hint = f" (it belongs in {' or '.join(homes)})" if homes else ""
                problems.add(name, f"unknown key outside any section{hint}")
            continue
        if not isinstance(table, dict):
            problems.add(name, f"must be a section: [{name}] on a line of its own, its keys below it")
            continue
        keys = sections.setdefault(name, {})
        for key, value in table.items():
            if key in _known(name):
                keys[key] = _Value(value, source=Source("file"))
            else:
                problems.add(f"{name}.{key}", f"unknown key{_suggestion(name, key, as_env=False)}")
                problems.typos.append((name, key))


def _take_env(env: Mapping[str, str], sections: dict[str, dict[str, _Value]], problems: _Problems) -> None:
    schema = _schema()
    for name in sorted(env):
        if name == CONFIG_ENV or not name.startswith(ENV_PREFIX):
            continue
        rest = name.removeprefix(ENV_PREFIX).lower()
        section, separator, key = rest.partition("__")
        if not separator:
            # SYNCD_GRAPH_TENANT_ID would otherwise be ignored without a word.
            for known in schema:
                single = rest.removeprefix(f"{known}_")
                if single != rest and single in _known(known):
                    problems.add(f"{known}.{single}", f"{name} is not read: write {_env_name(known, single)}")
                    problems.typos.append((known, single))
            continue
        if section not in schema:
            close = difflib.get_close_matches(section, list(schema), n=1)
            hint = f" (did you mean {_env_name(close[0], key)}?)" if close else ""
            problems.add(section, f"unknown section in {name}{hint}")
            continue
        if key not in _known(section):
            problems.add(f"{section}.{key}", f"unknown key in {name}{_suggestion(section, key, as_env=True)}")
            problems.typos.append((section, key))
            continue
        value: object = env[name]
        info = schema[section].get(key)
        if info is not None and info.is_list:
            try:
                value = _env_list(env[name])
            except ValueError as error:
                # The file's value, if any, is not what the user meant either.
                sections.get(section, {}).pop(key, None)
                problems.add(info.dotted, f"{error} (from {name})", covers=info.dotted)
                continue
        sections.setdefault(section, {})[key] = _Value(
            value, f"from {name}", from_env=True, source=Source("env", via=name)
        )


def _env_list(text: str) -> list[object]:
    """Pure: a list from an environment variable, a JSON array or comma-separated ("a, b" -> ["a", "b"])."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return [item.strip() for item in stripped.split(",") if item.strip()]
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as error:
        raise ValueError(f"not a JSON array: {error.msg} at column {error.colno}") from None
    if not isinstance(value, list):
        raise ValueError("not a JSON array")
    return value


def _resolve_secret_files(sections: dict[str, dict[str, _Value]], problems: _Problems) -> None:
    for section, keys in sections.items():
        for info in _schema()[section].values():
            file_key = info.name + FILE_SUFFIX
            if not info.secret or file_key not in keys:
                continue
            named = keys.pop(file_key)
            dotted_file = f"{section}.{file_key}"
            given = keys.get(info.name)
            if given is not None and given.from_env and not str(given.value).strip():
                del keys[info.name]  # an image's variable emptied: not a value (see the module docstring)
            if info.name in keys:
                where = [
                    f"{key} {value.origin or 'in the config file'}"
                    for key, value in ((info.dotted, keys[info.name]), (dotted_file, named))
                ]
                message = f"give {info.dotted} or {dotted_file}, not both ({', '.join(where)})"
                problems.add(info.dotted, message, covers=info.dotted)
                continue
            text, trouble = _read_secret(named.value)
            if trouble:
                problems.add(
                    dotted_file, trouble + (f" ({named.origin})" if named.origin else ""), covers=info.dotted
                )
            else:
                via = named.source.via if named.source.kind == "env" else dotted_file
                source = Source("file-ref", via=via, path=str(named.value))
                keys[info.name] = _Value(text, f"read from the file {dotted_file} names", source=source)


def _read_secret(value: object) -> tuple[str, str]:
    """(the file's content stripped, "") or ("", what is wrong); `value` should be the file's path."""
    if not isinstance(value, str) or not value.strip():
        return "", "must be the path of a file holding the secret"
    path = Path(value).expanduser()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        return "", f"{path} is not UTF-8 text"
    except OSError as error:
        return "", f"cannot read {path}: {error.strerror or type(error).__name__}"
    return (text, "") if text else ("", f"{path} is empty")


def _parse_durations(sections: dict[str, dict[str, _Value]], problems: _Problems) -> None:
    for section, keys in sections.items():
        for key, given in list(keys.items()):
            info = _schema()[section].get(key)
            if info is None or not info.duration:
                continue
            try:
                if not isinstance(given.value, str | int | float):
                    raise ValueError(f"must be a duration ({_DURATION_HELP})")
                keys[key] = replace(given, value=parse_duration(given.value))
            except ValueError as error:
                keys[key] = replace(given, value=_REJECTED)
                origin = f" ({given.origin})" if given.origin else ""
                problems.add(info.dotted, str(error) + origin, covers=info.dotted)


def _check_kinds(sections: dict[str, dict[str, _Value]], problems: _Problems) -> None:
    """Every bool, int and float value of the right kind (`syncd.config.scalars`), the environment's text
    turned into it; a wrong one is reported once and replaced by `_REJECTED`. Durations are parsed already."""
    for section, keys in sections.items():
        for key, given in list(keys.items()):
            info = _schema()[section].get(key)
            if info is None or info.duration or info.kind == "other":
                continue
            check = scalars.from_env if given.from_env else scalars.from_file
            value, trouble = check(info.kind, given.value)
            if trouble:
                keys[key] = replace(given, value=_REJECTED)
                origin = f" ({given.origin})" if given.origin else ""
                problems.add(info.dotted, trouble + origin, covers=info.dotted)
            else:
                keys[key] = replace(given, value=value)


def _validate(sections: dict[str, dict[str, _Value]], problems: _Problems) -> Settings | None:
    data = {section: {key: given.value for key, given in keys.items()} for section, keys in sections.items()}
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        # Never the inputs: a wrong-type secret would be quoted in them.
        details = error.errors(include_url=False, include_input=False, include_context=False)
    for detail in details:
        key, message = _describe(detail, sections)
        if key not in problems.covered:
            problems.add(key, message)
    return None


_SHOULD = re.compile(r"^(?:Input|String|List|Value|Dictionary|Object) should ")


def _describe(detail: ErrorDetails, sections: Mapping[str, Mapping[str, _Value]]) -> tuple[str, str]:
    """(dotted key, message) for one pydantic error, which never includes the input."""
    names = [part for part in detail["loc"] if isinstance(part, str)]
    items = [part for part in detail["loc"] if isinstance(part, int)]
    section = names[0]
    key = names[1] if len(names) > 1 else _MODEL_ERROR_KEYS.get(section, "")
    dotted = f"{section}.{key}" if key else section
    if detail["type"] == "missing":
        env = _env_name(section, key)
        if _schema()[section][key].secret:
            either = f"{key} or {key}{FILE_SUFFIX} in [{section}], or {env} or {env}{FILE_SUFFIX.upper()}"
            return dotted, f"missing: set {either}"
        return dotted, f"missing: set {key} in [{section}] or {env}"
    message = detail["msg"].removeprefix("Value error, ")
    message = _SHOULD.sub("must ", message)
    message = message[:1].lower() + message[1:]
    if items:
        message = f"item {items[0] + 1}: {message}"
    given = sections.get(section, {}).get(key)
    if given is not None and given.origin:
        message += f" ({given.origin})"
    return dotted, message


def _scrubbed(
    problems: Sequence[tuple[str, str]], sections: Mapping[str, Mapping[str, _Value]]
) -> list[tuple[str, str]]:
    """The problems with any secret value masked: a second line of defence behind never quoting inputs."""
    secrets = {
        given.value
        for section, keys in sections.items()
        for key, given in keys.items()
        if isinstance(given.value, str) and len(given.value) >= 4 and _schema()[section][key].secret
    }
    scrubbed = []
    for key, message in problems:
        for secret in sorted(secrets, key=len, reverse=True):
            message = message.replace(secret, _REDACTED)
        scrubbed.append((key, message))
    return scrubbed
