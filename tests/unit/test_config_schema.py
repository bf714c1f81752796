"""`syncd config schema`: the JSON Schema of syncd.toml accepts the example configuration, rejects a misspelt
key or section and a value of the wrong type, stays in step with the settings models, and is the file the
example names at its top (`#:schema ./syncd.schema.json`, read by VS Code's Even Better TOML).
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from syncd.cli.main import main
from syncd.config.loader import FILE_SUFFIX, config_keys, load_settings
from syncd.config.schema import config_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "syncd.example.toml"
SCHEMA_FILE = ROOT / "config" / "syncd.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = config_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture
def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return sorted(error.message for error in validator.iter_errors(document))


def test_the_example_configuration_is_valid(
    validator: jsonschema.Draft7Validator, example: dict[str, Any]
) -> None:
    assert errors(validator, example) == []


def test_the_example_names_the_schema_at_its_top() -> None:
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    assert first == "#:schema ./syncd.schema.json"


def test_the_schema_file_beside_the_example_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "config/syncd.schema.json is stale: run `syncd config schema > config/syncd.schema.json`"
    )


def test_the_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "", "config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("sync", "intervall", "1m", "Additional properties are not allowed ('intervall' was unexpected)"),
        ("graph", "group_id", ["x"], "Additional properties are not allowed ('group_id' was unexpected)"),
        ("sync", "interval_s", 60, "Additional properties are not allowed ('interval_s' was unexpected)"),
        ("sync", "concurrency", "25", "'25' is not of type 'integer'"),
        ("sync", "concurrency", True, "True is not of type 'integer'"),
        ("sync", "max_offboard", "25", "'25' is not valid under any of the given schemas"),
        ("sync", "max_offboard", [10, 20], "[10, 20] is not valid under any of the given schemas"),
        ("admin", "secure_cookie", "yes", "'yes' is not of type 'boolean'"),
        ("sync", "interval", "15 minutes", "'15 minutes' is not valid under any of the given schemas"),
        ("sync", "concurrency", 0, "0 is less than the minimum of 1"),
    ],
)
def test_the_schema_rejects_a_typo_or_a_wrong_type(
    validator: jsonschema.Draft7Validator,
    example: dict[str, Any],
    section: str,
    key: str,
    value: object,
    message: str,
) -> None:
    example[section][key] = value
    assert errors(validator, example) == [message]


def test_the_schema_rejects_an_unknown_section(
    validator: jsonschema.Draft7Validator, example: dict[str, Any]
) -> None:
    example["smartcom"] = copy.deepcopy(example.pop("smartcomm"))
    assert errors(validator, example) == ["Additional properties are not allowed ('smartcom' was unexpected)"]


@pytest.mark.parametrize(
    ("section", "values"),
    [
        ("sync", {"interval": "1h30m", "jitter": "90s", "shutdown_grace": 20, "retry_max": 7.5}),
        ("graph", {"phone_source": "teams", "client_secret_file": "/run/secrets/x"}),
        ("smartcomm", {"password_file": "/run/secrets/y", "timeout_s": 10}),
        ("notify", {"webhook_url_file": "/run/secrets/z", "timeout": "500ms"}),
    ],
)
def test_the_schema_accepts_what_syncd_accepts(
    validator: jsonschema.Draft7Validator, example: dict[str, Any], section: str, values: dict[str, object]
) -> None:
    example[section].update(values)
    if section == "graph":
        del example["graph"]["client_secret"]
    if section == "smartcomm":
        del example["smartcomm"]["password"]
    assert errors(validator, example) == []


def test_every_key_and_its_file_spelling_is_in_the_schema() -> None:
    properties = config_schema()["properties"]
    for section, keys in config_keys().items():
        expected = {*keys, *(key + FILE_SUFFIX for key, info in keys.items() if info.secret)}
        assert set(properties[section]["properties"]) == expected, section
        for key in keys:
            assert properties[section]["properties"][key].get("description"), f"{section}.{key}"


def test_a_duration_default_is_written_as_in_the_file() -> None:
    interval = config_schema()["properties"]["sync"]["properties"]["interval"]
    assert interval["default"] == "15m"
    assert "type" not in interval  # a string or a number, as anyOf says


def test_the_example_loads_too() -> None:
    """What the schema accepts here, syncd accepts: the example file loads (its certificate-free form)."""
    settings = load_settings(EXAMPLE, {})
    assert settings.require_graph().group_ids == ["00000000-0000-0000-0000-000000000000"]
