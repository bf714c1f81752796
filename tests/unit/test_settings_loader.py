"""Loading settings from TOML, `SYNCD_<SECTION>__<KEY>` environment variables and `*_file` secrets.

The contract users script against (key names, precedence, `_file`, the dotted key in every error) is checked
here table by table, and so is the promise that no error message carries a secret.
"""

from __future__ import annotations

import re
import tomllib
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import BaseModel, ValidationError

from syncd.config.loader import ConfigError, config_path, load_settings, parse_duration
from syncd.config.settings import (
    AdminSettings,
    DatabaseSettings,
    GraphSettings,
    LogSettings,
    NotifySettings,
    Settings,
    SmartCommSettings,
    SyncSettings,
)
from syncd.core.limits import Limit

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "syncd.example.toml"

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
CLIENT = "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31"
GROUP = "0b5c1f5e-2a36-4d3c-9a6a-3c2a1c2b0d11"
GROUP2 = "1c6d2a6f-3b47-4e4d-8b7b-4d3b2d3c1e22"
SECRET = "S3cr3t-Value-Nobody-May-See"

GRAPH = f"""
[graph]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
client_secret = "graph-secret"
group_ids = ["{GROUP}"]
"""
SMARTCOMM = """
[smartcomm]
customer_id = 12345
username = "api@example.com"
password = "api-password"
"""
FULL = GRAPH + SMARTCOMM


def write(tmp_path: Path, text: str, name: str = "syncd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str | None, env: Mapping[str, str] | None = None) -> Settings:
    return load_settings(write(tmp_path, text) if text is not None else None, env or {})


def failure(tmp_path: Path, text: str | None, env: Mapping[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return caught.value


def without(text: str, key: str) -> str:
    """`text` without the line setting `key`."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(f"{key} ="))


def dig(settings: Settings, dotted: str) -> object:
    value: object = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


# --- durations -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1m30s500ms", 90.5),
        ("1.5h", 5400.0),
        ("1d", 86400.0),
        ("24h", 86400.0),
        ("2h 30m", 9000.0),
        (" 15m\n", 900.0),
        ("90", 90.0),
        ("0.25", 0.25),
        ("0", 0.0),
        ("0s", 0.0),
        (90, 90.0),
        (1.5, 1.5),
        (0, 0.0),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "soon",
        "15M",
        "1H",
        "15 minutes",
        "m",
        "1h30",
        "h1",
        "-5",
        "-5s",
        "1e3",
        "1_000",
        "1,5s",
        "inf",
    ],
)
def test_invalid_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r'"90s", "15m", "1h30m", "500ms"'):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), True, [1], None])
def test_invalid_duration_values(value: Any) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)


# --- which file ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        ("a.toml", {}, Path("a.toml")),
        (None, {"SYNCD_CONFIG": "b.toml"}, Path("b.toml")),
        ("a.toml", {"SYNCD_CONFIG": "b.toml"}, Path("a.toml")),  # the flag wins
        (None, {}, None),
        (None, {"SYNCD_CONFIG": ""}, None),
        ("", {"SYNCD_CONFIG": "b.toml"}, None),  # --config '' means: no file, the environment alone
        ("~/syncd.toml", {}, Path.home() / "syncd.toml"),
    ],
)
def test_config_path(cli: str | None, env: dict[str, str], expected: Path | None) -> None:
    assert config_path(cli, env) == expected


def test_config_path_from_the_environment_is_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, "[sync]\ninterval = '5m'\n")
    settings = load_settings(config_path(None, {"SYNCD_CONFIG": str(path)}), {"SYNCD_CONFIG": str(path)})
    assert settings.sync.interval_s == 300.0


# --- whole files -----------------------------------------------------------------------------------------


def test_nothing_configured_gives_the_defaults() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.graph is None
    assert settings.smartcomm is None
    assert settings.database.url == "sqlite:///data/syncd.db"
    assert settings.sync == SyncSettings(
        interval=900, full_interval=86400, jitter=30, retry_initial=60, retry_max=21600
    )
    assert (settings.sync.max_offboard, settings.sync.concurrency) == (Limit(count=25), 8)
    assert settings.sync.max_update == Limit(count=500)
    assert (settings.admin.listen, settings.admin.token) == ("127.0.0.1:8080", None)
    assert (settings.log.level, settings.log.format) == ("info", "auto")


def test_a_full_file(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        FULL
        + """
[database]
url = "postgresql+psycopg://syncd@db.example.com:5432/syncd"
[sync]
interval = "5m"
full_interval = "12h"
jitter = 0
max_offboard = 0
concurrency = 16
retry_initial = "30s"
retry_max = "1h"
[admin]
listen = "[::1]:9090"
token = "admin-token-0123456789abcdefghijklmnop"
[log]
level = "DEBUG"
format = "json"
""",
    )
    graph = settings.require("graph")
    assert (graph.tenant_id, graph.client_id, graph.group_ids) == (TENANT, CLIENT, [GROUP])
    assert graph.client_secret is not None
    assert graph.client_secret.get_secret_value() == "graph-secret"
    smartcomm = settings.require_smartcomm()
    assert (smartcomm.customer_id, smartcomm.username) == (12345, "api@example.com")
    assert smartcomm.password.get_secret_value() == "api-password"
    assert settings.database.url.startswith("postgresql+psycopg://")
    sync = settings.sync
    assert (sync.interval_s, sync.full_interval_s, sync.jitter_s) == (300.0, 43200.0, 0.0)
    assert (sync.max_offboard, sync.concurrency, sync.retry_initial_s, sync.retry_max_s) == (
        Limit(count=0),
        16,
        30.0,
        3600.0,
    )
    assert (settings.admin.host, settings.admin.port) == ("::1", 9090)
    assert settings.admin.token is not None
    assert settings.admin.token.get_secret_value() == "admin-token-0123456789abcdefghijklmnop"
    assert (settings.log.level, settings.log.format) == ("debug", "json")


def test_an_empty_section_is_present_and_incomplete(tmp_path: Path) -> None:
    error = failure(tmp_path, "[smartcomm]\n")
    assert [key for key, _ in error.problems] == [
        "smartcomm.customer_id",
        "smartcomm.username",
        "smartcomm.password",
    ]


# --- precedence: file < environment, key by key ----------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "attribute", "expected"),
    [
        ({"SYNCD_SMARTCOMM__CUSTOMER_ID": "67890"}, "smartcomm.customer_id", 67890),
        ({"SYNCD_SMARTCOMM__USERNAME": "other@example.com"}, "smartcomm.username", "other@example.com"),
        ({"SYNCD_SMARTCOMM__TIMEOUT_S": "2.5"}, "smartcomm.timeout_s", 2.5),
        ({"SYNCD_GRAPH__TENANT_ID": CLIENT}, "graph.tenant_id", CLIENT),
        ({"SYNCD_GRAPH__GROUP_IDS": f"{GROUP},{GROUP2}"}, "graph.group_ids", [GROUP, GROUP2]),
        ({"SYNCD_GRAPH__PAGE_SIZE": "100"}, "graph.page_size", 100),
        ({"SYNCD_SYNC__INTERVAL": "90s"}, "sync.interval_s", 90.0),
        ({"SYNCD_SYNC__INTERVAL": "120"}, "sync.interval_s", 120.0),
        ({"SYNCD_SYNC__CONCURRENCY": "32"}, "sync.concurrency", 32),
        ({"SYNCD_ADMIN__LISTEN": "0.0.0.0:80"}, "admin.listen", "0.0.0.0:80"),
        ({"SYNCD_LOG__LEVEL": "WARNING"}, "log.level", "warning"),
        (
            {"SYNCD_DATABASE__URL": "sqlite:////var/lib/syncd.db"},
            "database.url",
            "sqlite:////var/lib/syncd.db",
        ),
    ],
)
def test_the_environment_overrides_the_file(
    tmp_path: Path, env: dict[str, str], attribute: str, expected: object
) -> None:
    text = (
        GRAPH
        + "page_size = 500\n"
        + SMARTCOMM
        + "timeout_s = 10\n"
        + "[sync]\ninterval = '1h'\nconcurrency = 4\n[admin]\nlisten = '127.0.0.1:1'\n"
        + "[log]\nlevel = 'error'\n[database]\nurl = 'sqlite:///a.db'\n"
    )
    before = load(tmp_path, text)
    after = load(tmp_path, text, env)
    assert dig(after, attribute) == expected
    assert dig(before, attribute) != expected
    # Only that key changed.
    section = attribute.split(".")[0]
    for other in ("database", "graph", "smartcomm", "sync", "admin", "log"):
        if other != section:
            assert getattr(after, other) == getattr(before, other)


def test_the_environment_alone_is_a_configuration() -> None:
    settings = load_settings(
        None,
        {
            "SYNCD_GRAPH__TENANT_ID": TENANT,
            "SYNCD_GRAPH__CLIENT_ID": CLIENT,
            "SYNCD_GRAPH__CLIENT_SECRET": "from-env",
            "SYNCD_GRAPH__GROUP_IDS": GROUP,
            "SYNCD_SMARTCOMM__CUSTOMER_ID": "12345",
            "SYNCD_SMARTCOMM__USERNAME": "api@example.com",
            "SYNCD_SMARTCOMM__PASSWORD": "pw",
            "SYNCD_SYNC__FULL_INTERVAL": "6h",
            "SYNCD_CONFIG": "ignored-here.toml",
            "PATH": "/usr/bin",
        },
    )
    assert settings.require("graph").group_ids == [GROUP]
    assert settings.require("smartcomm").customer_id == 12345
    assert settings.sync.full_interval_s == 21600.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (GROUP, [GROUP]),
        (f"{GROUP},{GROUP2}", [GROUP, GROUP2]),
        (f" {GROUP} , {GROUP2.upper()} ,", [GROUP, GROUP2]),
        (f'["{GROUP}", "{GROUP2}"]', [GROUP, GROUP2]),
        (f' [ "{GROUP}" ] ', [GROUP]),
        (f"{GROUP},{GROUP}", [GROUP]),
    ],
)
def test_lists_from_the_environment(value: str, expected: list[str]) -> None:
    env = {
        "SYNCD_GRAPH__TENANT_ID": TENANT,
        "SYNCD_GRAPH__CLIENT_ID": CLIENT,
        "SYNCD_GRAPH__CLIENT_SECRET": "s",
        "SYNCD_GRAPH__GROUP_IDS": value,
    }
    assert load_settings(None, env).require_graph().group_ids == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "must have at least 1 item"),
        (" , ", "must have at least 1 item"),
        ("[1,", "not a JSON array"),
        ('["a"', "not a JSON array"),
        ("[1, 2]", "item 1: must be a valid string"),
        ("not-a-guid", "not group object IDs"),
    ],
)
def test_bad_lists_from_the_environment(tmp_path: Path, value: str, fragment: str) -> None:
    error = failure(tmp_path, GRAPH, {"SYNCD_GRAPH__GROUP_IDS": value})
    assert error.key == "graph.group_ids"
    assert fragment in error.message
    assert error.message.endswith("(from SYNCD_GRAPH__GROUP_IDS)")


# --- secrets from files ----------------------------------------------------------------------------------

SECRET_KEYS = [
    ("graph", "client_secret"),
    ("graph", "certificate_password"),
    ("smartcomm", "password"),
    ("admin", "token"),
    ("notify", "webhook_url"),
]
FILE_KEYS = [*SECRET_KEYS, ("database", "url")]
"""Every key with a `_file` form: the secrets, and `database.url`, which may carry a password."""


@pytest.mark.parametrize(("section", "key"), SECRET_KEYS)
@pytest.mark.parametrize("form", ["file", "env"])
@pytest.mark.parametrize("content", ["from-a-file", "from-a-file\n", "  from-a-file \r\n\n"])
def test_secret_from_a_file(tmp_path: Path, section: str, key: str, form: str, content: str) -> None:
    secret = tmp_path / "secret"
    expected = {
        "notify": "https://hooks.example.com/from-a-file",
        "admin": "from-a-file-an-admin-token-of-32-chars",
    }.get(section, "from-a-file")
    secret.write_text(content.replace("from-a-file", expected))
    text = without(FULL, key) if key in ("client_secret", "password") else FULL
    env: dict[str, str] = {}
    if form == "file":
        text = text.replace(f"[{section}]\n", f"[{section}]\n{key}_file = '{secret}'\n")
        if f"[{section}]" not in text:
            text += f"[{section}]\n{key}_file = '{secret}'\n"
    else:
        env[f"SYNCD_{section.upper()}__{key.upper()}_FILE"] = str(secret)
    settings = load(tmp_path, text, env)
    value = getattr(getattr(settings, section), key)
    assert value.get_secret_value() == expected


@pytest.mark.parametrize(("section", "key"), SECRET_KEYS)
@pytest.mark.parametrize(
    ("plain_in", "file_in"), [("file", "file"), ("file", "env"), ("env", "file"), ("env", "env")]
)
def test_a_secret_and_its_file_together_are_an_error(
    tmp_path: Path, section: str, key: str, plain_in: str, file_in: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    text = without(FULL, key) + f"\n[{section}]\n" if section in ("admin", "notify") else without(FULL, key)
    env: dict[str, str] = {}
    variable = f"SYNCD_{section.upper()}__{key.upper()}"
    lines = []
    if plain_in == "file":
        lines.append(f"{key} = '{SECRET}'")
    else:
        env[variable] = SECRET
    if file_in == "file":
        lines.append(f"{key}_file = '{secret}'")
    else:
        env[variable + "_FILE"] = str(secret)
    text = text.replace(f"[{section}]\n", f"[{section}]\n" + "\n".join(lines) + "\n", 1)
    error = failure(tmp_path, text, env)
    assert error.key == f"{section}.{key}"
    assert f"{section}.{key} or {section}.{key}_file, not both" in error.message
    assert SECRET not in str(error)
    if plain_in == "env":
        assert variable in error.message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("{tmp}/missing", "cannot read {tmp}/missing: No such file or directory"),
        ("{tmp}", "cannot read {tmp}: Is a directory"),
        ("{tmp}/empty", "{tmp}/empty is empty"),
        ("{tmp}/blank", "{tmp}/blank is empty"),
        ("{tmp}/binary", "{tmp}/binary is not UTF-8 text"),
        ("", "must be the path of a file"),
    ],
)
@pytest.mark.parametrize("form", ["file", "env"])
def test_unreadable_secret_files_name_the_file_key_and_path(
    tmp_path: Path, value: str, fragment: str, form: str
) -> None:
    (tmp_path / "empty").write_text("")
    (tmp_path / "blank").write_text(" \n\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00secret")
    path = value.format(tmp=tmp_path)
    text = without(FULL, "password")
    env: dict[str, str] = {}
    if form == "file":
        text += f"password_file = '{path}'\n"
    else:
        env["SYNCD_SMARTCOMM__PASSWORD_FILE"] = path
    error = failure(tmp_path, text, env)
    # One problem: the missing password is not reported a second time.
    assert error.problems == ((error.key, error.message),)
    assert error.key == "smartcomm.password_file"
    assert fragment.format(tmp=tmp_path) in error.message


POSTGRES_URL = "postgresql+psycopg://syncd:Pa55-in-the-url@db.example.com:5432/syncd"


@pytest.mark.parametrize("form", ["file", "env"])
def test_the_database_url_from_a_file(tmp_path: Path, form: str) -> None:
    # A Kubernetes Secret mounted as a file, as deploy/kubernetes/overlays/ha does.
    secret = tmp_path / "database-url"
    secret.write_text(POSTGRES_URL + "\n")
    text, env = FULL, {}
    if form == "file":
        text += f"[database]\nurl_file = '{secret}'\n"
    else:
        env["SYNCD_DATABASE__URL_FILE"] = str(secret)
    assert load(tmp_path, text, env).database.url == POSTGRES_URL


@pytest.mark.parametrize("variable", ["SYNCD_DATABASE__URL", "SYNCD_DATABASE__URL_FILE"])
def test_a_database_url_and_its_file_together_are_an_error(tmp_path: Path, variable: str) -> None:
    secret = tmp_path / "database-url"
    secret.write_text(POSTGRES_URL)
    value = "sqlite:////data/syncd.db" if variable == "SYNCD_DATABASE__URL" else str(secret)
    other = f"url_file = '{secret}'" if variable == "SYNCD_DATABASE__URL" else f"url = '{POSTGRES_URL}'"
    error = failure(tmp_path, FULL + f"[database]\n{other}\n", {variable: value})
    assert error.key == "database.url"
    assert "database.url or database.url_file, not both" in error.message
    assert "Pa55-in-the-url" not in str(error)


def test_a_bad_database_url_from_a_file_is_named_without_its_password(tmp_path: Path) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql://syncd:Pa55-in-the-url@db.example.com/syncd")
    error = failure(tmp_path, FULL + f"[database]\nurl_file = '{secret}'\n")
    assert error.key == "database.url"
    assert "psycopg 3" in error.message
    assert "read from the file database.url_file names" in error.message
    assert "Pa55-in-the-url" not in str(error)


@pytest.mark.parametrize("url_file_in", ["file", "env"])
def test_an_empty_variable_beside_its_file_form_counts_as_not_set(tmp_path: Path, url_file_in: str) -> None:
    # The container image sets SYNCD_DATABASE__URL; Kubernetes can only empty it, to let url_file decide.
    secret = tmp_path / "database-url"
    secret.write_text(POSTGRES_URL)
    text, env = FULL, {"SYNCD_DATABASE__URL": " "}
    if url_file_in == "file":
        text += f"[database]\nurl_file = '{secret}'\n"
    else:
        env["SYNCD_DATABASE__URL_FILE"] = str(secret)
    assert load(tmp_path, text, env).database.url == POSTGRES_URL
    # Likewise for a secret.
    secret.write_text("from-a-file")
    env = {"SYNCD_SMARTCOMM__PASSWORD": "", "SYNCD_SMARTCOMM__PASSWORD_FILE": str(secret)}
    assert load(tmp_path, without(FULL, "password"), env).require(
        "smartcomm"
    ).password.get_secret_value() == ("from-a-file")


def test_an_empty_variable_without_a_file_form_is_still_a_value(tmp_path: Path) -> None:
    error = failure(tmp_path, FULL, {"SYNCD_DATABASE__URL": ""})
    assert error.key == "database.url"
    assert "not a SQLAlchemy URL" in error.message


def test_a_file_key_must_be_a_path(tmp_path: Path) -> None:
    error = failure(tmp_path, without(FULL, "password") + "password_file = 5\n")
    assert (error.key, error.message) == (
        "smartcomm.password_file",
        "must be the path of a file holding the secret",
    )


def test_only_secrets_have_a_file_form(tmp_path: Path) -> None:
    error = failure(tmp_path, FULL + "username_file = '/run/secrets/user'\n")
    assert error.key == "smartcomm.username_file"
    assert error.message.startswith("unknown key")


# --- missing keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "[graph]\n",
            {
                "graph.tenant_id": "missing: set tenant_id in [graph] or SYNCD_GRAPH__TENANT_ID",
                "graph.client_id": "missing: set client_id in [graph] or SYNCD_GRAPH__CLIENT_ID",
                "graph.group_ids": "missing: set group_ids in [graph] or SYNCD_GRAPH__GROUP_IDS",
            },
        ),
        (
            without(SMARTCOMM, "password"),
            {
                "smartcomm.password": "missing: set password or password_file in [smartcomm], "
                "or SYNCD_SMARTCOMM__PASSWORD or SYNCD_SMARTCOMM__PASSWORD_FILE"
            },
        ),
        (
            without(SMARTCOMM, "customer_id"),
            {
                "smartcomm.customer_id": "missing: set customer_id in [smartcomm] "
                "or SYNCD_SMARTCOMM__CUSTOMER_ID"
            },
        ),
        (
            # No credential at all: the model-wide check is reported at graph.client_secret.
            without(GRAPH, "client_secret"),
            {"graph.client_secret": "give exactly one of client_secret or certificate_path"},
        ),
    ],
)
def test_missing_keys_are_named(tmp_path: Path, text: str, problems: dict[str, str]) -> None:
    error = failure(tmp_path, text)
    assert dict(error.problems) == problems
    assert error.key == next(iter(problems))


def test_both_credentials_are_reported_at_client_secret(tmp_path: Path) -> None:
    cert = tmp_path / "app.pem"
    leaf = trustme.CA().issue_cert("syncd-app.example.com", key_type=trustme.KeyType.RSA)
    cert.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
    error = failure(tmp_path, GRAPH, {"SYNCD_GRAPH__CERTIFICATE_PATH": str(cert)})
    assert str(error) == "graph.client_secret: give exactly one of client_secret or certificate_path"


def test_missing_sections_are_required_only_by_who_needs_them() -> None:
    settings = load_settings(None, {})
    for section in ("graph", "smartcomm"):
        with pytest.raises(ConfigError) as caught:
            settings.require(section)  # type: ignore[call-overload]
        assert (caught.value.key, str(caught.value)) == (section, f"{section}: missing section [{section}]")
    with pytest.raises(ConfigError, match=r"^graph: missing section \[graph\]$"):
        settings.require_graph()
    with pytest.raises(ConfigError, match=r"^smartcomm: missing section \[smartcomm\]$"):
        settings.require_smartcomm()


# --- wrong values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (FULL.replace("12345", '"abc"'), "smartcomm.customer_id", "must be a whole number, not a string"),
        (FULL.replace("12345", "0"), "smartcomm.customer_id", "greater than 0"),
        (FULL.replace(f'"{TENANT}"', '"contoso.onmicrosoft.com"'), "graph.tenant_id", "must be a GUID"),
        (FULL.replace(f'["{GROUP}"]', f'"{GROUP}"'), "graph.group_ids", "must be a valid list"),
        (FULL.replace(f'["{GROUP}"]', '["Sales"]'), "graph.group_ids", "Sales"),
        (FULL + "timeout_s = 'slow'\n", "smartcomm.timeout_s", "must be a number, not a string"),
        (GRAPH + "page_size = 1000\n", "graph.page_size", "less than or equal to 999"),
        (
            GRAPH + "filter = \"department equals 'Sales'\"\n",
            "graph.filter",
            'syntax error at column 12: expected "eq", "ne", "in" or "/", found \'equals\'',
        ),
        (
            GRAPH + "filter = \"dept eq 'Sales'\"\n",
            "graph.filter",
            "unknown attribute 'dept' at column 1; the known attributes are accountEnabled,",
        ),
        (GRAPH + "filter = 'accountEnabled eq 1'\n", "graph.filter", "column 19"),
        (GRAPH + f'exclude_group_ids = ["{GROUP}"]\n', "graph.exclude_group_ids", "also in graph.group_ids"),
        (GRAPH + 'exclude_group_ids = ["Managers"]\n', "graph.exclude_group_ids", "Managers"),
        ("[sync]\ninterval = 'soon'\n", "sync.interval", "'soon' is not a duration"),
        ("[sync]\ninterval = 0\n", "sync.interval", "greater than 0"),
        ("[sync]\njitter = '-1s'\n", "sync.jitter", "not a duration"),
        ("[sync]\nfull_interval = true\n", "sync.full_interval", "not a duration"),
        ("[sync]\nretry_max = [1]\n", "sync.retry_max", "must be a duration"),
        ("[sync]\nretry_initial = '2h'\nretry_max = '1h'\n", "sync.retry_max", "not be shorter than"),
        ("[sync]\nconcurrency = 0\n", "sync.concurrency", "greater than or equal to 1"),
        ("[sync]\nconcurrency = 257\n", "sync.concurrency", "less than or equal to 256"),
        ("[sync]\nconcurrency = 'many'\n", "sync.concurrency", "must be a whole number, not a string"),
        ("[sync]\nmax_offboard = -1\n", "sync.max_offboard", "greater than or equal to 0"),
        ("[admin]\nlisten = 'localhost'\n", "admin.listen", "must be host:port"),
        ("[admin]\nlisten = ':8080'\n", "admin.listen", "must be host:port"),
        ("[admin]\nlisten = 'localhost:0'\n", "admin.listen", "1 to 65535"),
        ("[admin]\nlisten = 'localhost:65536'\n", "admin.listen", "1 to 65535"),
        ("[admin]\nlisten = 'localhost:http'\n", "admin.listen", "1 to 65535"),
        ("[admin]\nlisten = '::1:8080'\n", "admin.listen", "in brackets"),
        ("[admin]\nlisten = '[nope]:8080'\n", "admin.listen", "not an IPv6 address"),
        ("[admin]\nlisten = 'a b:8080'\n", "admin.listen", "not a host name"),
        ("[admin]\ntoken = ' '\n", "admin.token", "must not be empty"),
        ("[log]\nlevel = 'loud'\n", "log.level", "debug, info, warning, error"),
        ("[log]\nformat = 'xml'\n", "log.format", "auto, json, console"),
        ("[database]\nurl = 'mysql://u@h/db'\n", "database.url", "unsupported driver 'mysql'"),
        ("[database]\nurl = 'postgresql://u@h/db'\n", "database.url", "psycopg 3"),
        ("[database]\nurl = 'data/syncd.db'\n", "database.url", "not a SQLAlchemy URL"),
        ("[database]\nurl = 5\n", "database.url", "must be a valid string"),
        ("graph = 5\n", "graph", "must be a section"),
    ],
)
def test_wrong_values_name_their_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    error = failure(tmp_path, text)
    assert error.key == key
    assert fragment in error.message
    assert str(error).startswith(f"{key}: ")
    # Nothing chained to it: the command line prints it alone, and nothing in a traceback could leak.
    assert error.__cause__ is None
    assert error.__context__ is None


def test_scope_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    scope = f'exclude_group_ids = ["{GROUP2.upper()}", "{GROUP2}"]\nfilter = "department eq \'Support\'"\n'
    text = GRAPH + scope + SMARTCOMM
    graph = load(tmp_path, text).require_graph()
    assert graph.exclude_group_ids == [GROUP2]
    assert graph.scope_filter is not None
    assert graph.scope_filter.attributes == ("department",)
    env = {
        "SYNCD_GRAPH__EXCLUDE_GROUP_IDS": f"{GROUP2}, {CLIENT}",
        "SYNCD_GRAPH__FILTER": "usageLocation in ('US', 'CA')",
    }
    graph = load(tmp_path, FULL, env).require_graph()
    assert graph.exclude_group_ids == [GROUP2, CLIENT]
    assert graph.filter == "usageLocation in ('US', 'CA')"
    assert load(tmp_path, FULL).require_graph().scope_filter is None


def test_a_bad_filter_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    error = failure(tmp_path, FULL, {"SYNCD_GRAPH__FILTER": "usageLocation in 'US'"})
    assert error.key == "graph.filter"
    assert 'column 18: expected "("' in error.message
    assert "SYNCD_GRAPH__FILTER" in error.message


def test_values_from_the_environment_say_so(tmp_path: Path) -> None:
    error = failure(tmp_path, FULL, {"SYNCD_SMARTCOMM__CUSTOMER_ID": "abc", "SYNCD_SYNC__INTERVAL": "later"})
    assert dict(error.problems) == {
        "smartcomm.customer_id": "must be a whole number (from SYNCD_SMARTCOMM__CUSTOMER_ID)",
        "sync.interval": "'later' is not a duration (use seconds or a duration such as "
        '"90s", "15m", "1h30m", "500ms" or "1d") (from SYNCD_SYNC__INTERVAL)',
    }


def test_every_bad_key_in_one_error(tmp_path: Path) -> None:
    text = (
        FULL.replace(f'"{TENANT}"', '"nope"').replace("12345", '"abc"')
        + "[sync]\ninterval = 'soon'\nconcurency = 3\n[log]\nlevel = 'loud'\n"
    )
    error = failure(tmp_path, text)
    keys = [key for key, _ in error.problems]
    # Section by section; within one, misspelt names first (they often explain the rest), then values.
    assert keys == [
        "graph.tenant_id",
        "smartcomm.customer_id",
        "sync.concurency",
        "sync.interval",
        "log.level",
    ]
    assert error.key == "graph.tenant_id"
    assert str(error) == "; ".join(f"{key}: {message}" for key, message in error.problems)


# --- unknown names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "key", "message"),
    [
        (
            FULL + "client_secrt = 'x'\n",
            {},
            "smartcomm.client_secrt",
            "unknown key (did you mean graph.client_secret?)",
        ),
        ("[graph]\ntenantid = 'x'\n", {}, "graph.tenantid", "unknown key (did you mean graph.tenant_id?)"),
        ("[sync]\ninterval_s = 60\n", {}, "sync.interval_s", "unknown key (did you mean sync.interval?)"),
        ("[sync]\nconcurency = 3\n", {}, "sync.concurency", "unknown key (did you mean sync.concurrency?)"),
        (
            "[graph]\ncustomer_id = 1\n",
            {},
            "graph.customer_id",
            "unknown key (did you mean smartcomm.customer_id?)",
        ),
        ("[sync]\nfrobnicate = 1\n", {}, "sync.frobnicate", "unknown key"),
        ("[grpah]\n", {}, "grpah", "unknown section [grpah] (did you mean [graph]?)"),
        ("[metrics]\n", {}, "metrics", "unknown section [metrics]"),
        ("interval = '1m'\n", {}, "interval", "unknown key outside any section (it belongs in [sync])"),
        (
            "base_url = 'https://x'\n",
            {},
            "base_url",
            "unknown key outside any section (it belongs in [graph] or [smartcomm])",
        ),
        (
            None,
            {"SYNCD_SYNC__CONCURENCY": "3"},
            "sync.concurency",
            "unknown key in SYNCD_SYNC__CONCURENCY (did you mean SYNCD_SYNC__CONCURRENCY?)",
        ),
        (
            None,
            {"SYNCD_GRAHP__TENANT_ID": TENANT},
            "grahp",
            "unknown section in SYNCD_GRAHP__TENANT_ID (did you mean SYNCD_GRAPH__TENANT_ID?)",
        ),
        (
            None,
            {"SYNCD_SMARTCOMM__PASWORD_FILE": "/x"},
            "smartcomm.pasword_file",
            "unknown key in SYNCD_SMARTCOMM__PASWORD_FILE (did you mean SYNCD_SMARTCOMM__PASSWORD_FILE?)",
        ),
        (
            None,
            {"SYNCD_LOG_LEVEL": "debug"},
            "log.level",
            "SYNCD_LOG_LEVEL is not read: write SYNCD_LOG__LEVEL",
        ),
    ],
)
def test_unknown_names_are_named_with_the_closest_known_one(
    tmp_path: Path, text: str | None, env: dict[str, str], key: str, message: str
) -> None:
    error = failure(tmp_path, text, env)
    assert error.problems[0] == (key, message)


@pytest.mark.parametrize(
    ("text", "env"),
    [
        (FULL.replace("tenant_id =", "tenantid ="), {}),
        (FULL.replace("password =", "pasword ="), {}),
        (without(FULL, "password"), {"SYNCD_SMARTCOMM__PASWORD": "pw"}),
        (without(FULL, "client_secret"), {"SYNCD_GRAPH__CLIENT_SECRT_FILE": "/x"}),
    ],
)
def test_a_misspelt_key_is_not_also_reported_missing(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    error = failure(tmp_path, text, env)
    assert len(error.problems) == 1
    assert error.message.startswith("unknown key")


def test_a_misspelt_key_does_not_hide_the_real_one(tmp_path: Path) -> None:
    error = failure(tmp_path, FULL.replace(f'"{TENANT}"', '"nope"'), {"SYNCD_GRAPH__TENANTID": "x"})
    assert [key for key, _ in error.problems] == ["graph.tenantid", "graph.tenant_id"]


@pytest.mark.parametrize(
    "env",
    [
        {"SYNCD_CONFIG": "elsewhere.toml"},
        {"SYNCD_SOMETHING_ELSE": "1"},
        {"XSYNCD_GRAPH__X": "1"},
        # Each would set a real key if the prefix were matched anywhere but at the start, or in any case.
        {"XSYNCD_SYNC__MAX_OFFBOARD": "1"},
        {"MY_SYNCD_SYNC__INTERVAL": "1s"},
        {"syncd_sync__max_offboard": "1"},
    ],
)
def test_other_syncd_variables_are_not_keys(env: dict[str, str]) -> None:
    assert load_settings(None, env) == Settings()


# --- the file itself -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            b"[graph\n",
            "is not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 7)",
        ),
        (b"[sync]\ninterval = soon\n", "is not valid TOML: Invalid value (at line 2, column 12)"),
        (b"[sync]\ninterval = '1m'\ninterval = '2m'\n", "(at line 3, column"),
        (b"[sync]\ninterval = '\xff'\n", "is not UTF-8 text (byte 19)"),
    ],
)
def test_bad_files_are_named_with_line_and_column(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "syncd.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert caught.value.key == ""
    assert str(caught.value) == caught.value.message
    assert str(caught.value).startswith(f"config file {path} ")
    assert fragment in str(caught.value)
    assert caught.value.__context__ is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.toml", "config file {path} does not exist"),
        ("", "cannot read config file {path}: Is a directory"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name if name else tmp_path
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert (caught.value.key, str(caught.value)) == ("", message.format(path=path))


# --- no secret in any message ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env"),
    [
        (without(FULL, "password") + f"password = ['{SECRET}']\n", {}),
        (without(FULL, "password") + f"password = {{ value = '{SECRET}' }}\n", {}),
        (without(GRAPH, "client_secret") + f"client_secret = ['{SECRET}']\n", {}),
        (FULL + f"[admin]\ntoken = [1, '{SECRET}']\n", {}),
        (FULL, {"SYNCD_SMARTCOMM__PASWORD": SECRET}),  # a misspelt key's value
        (FULL, {"SYNCD_SMARTCOMM__PASSWORD": SECRET, "SYNCD_SMARTCOMM__PASSWORD_FILE": "/nonexistent"}),
        (FULL, {"SYNCD_SMARTCOMM__PASSWORD": SECRET, "SYNCD_SMARTCOMM__CUSTOMER_ID": SECRET}),
        # A value that quotes bad input, where the input happens to be the secret too.
        (FULL.replace(f'["{GROUP}"]', f'["{SECRET}"]'), {"SYNCD_GRAPH__CLIENT_SECRET": SECRET}),
        (FULL + f"[database]\nurl = 'postgresql://syncd:{SECRET}@db/syncd'\n", {}),
        (FULL + f"[database]\nurl = 'postgresql+psycopg://syncd:{SECRET}@db:port/syncd'\n", {}),
        (FULL + f"[database]\nurl = 'mysql://syncd:{SECRET}@db/syncd'\n", {}),
    ],
)
def test_no_secret_in_any_error(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    error = failure(tmp_path, text, env)
    told = [str(error), repr(error), *map(str, error.args), *traceback.format_exception(error)]
    told += [f"{key} {message}" for key, message in error.problems]
    assert not [line for line in told if SECRET in line]


# --- the example file ------------------------------------------------------------------------------------

_SECTION = re.compile(r"^\[(\w+)\]\s*$")
_KEY_LINE = re.compile(r"^(# )?([a-z_0-9]+) = ")


def documented_keys() -> dict[str, dict[str, bool]]:
    """Section -> key -> whether it is commented out, for every `key = ...` line of the example."""
    keys: dict[str, dict[str, bool]] = {}
    section = ""
    for line in EXAMPLE.read_text().splitlines():
        if header := _SECTION.match(line):
            section = header[1]
            keys[section] = {}
        elif match := _KEY_LINE.match(line):
            assert section, f"key outside a section: {line}"
            assert match[2] not in keys[section], f"documented twice: {section}.{match[2]}"
            keys[section][match[2]] = bool(match[1])
            tomllib.loads(line.removeprefix("# "))  # a commented-out line is valid once uncommented
    return keys


def model_keys() -> dict[str, set[str]]:
    """Section -> every TOML key its model accepts, the `_file` form of secrets included."""
    sections: dict[str, type[BaseModel]] = {
        "database": DatabaseSettings,
        "graph": GraphSettings,
        "smartcomm": SmartCommSettings,
        "sync": SyncSettings,
        "admin": AdminSettings,
        "notify": NotifySettings,
        "log": LogSettings,
    }
    assert set(sections) == set(Settings.model_fields)
    keys: dict[str, set[str]] = {}
    for section, model in sections.items():
        names = {info.alias or name for name, info in model.model_fields.items()}
        keys[section] = names | {f"{key}_file" for s, key in FILE_KEYS if s == section}
    return keys


def test_the_example_loads() -> None:
    settings = load_settings(EXAMPLE, {})
    assert settings.require("graph").group_ids == ["00000000-0000-0000-0000-000000000000"]
    assert settings.require("smartcomm").customer_id == 12345
    assert settings.sync == SyncSettings()
    assert settings.log == LogSettings()
    assert settings.admin == AdminSettings()
    assert settings.database == DatabaseSettings()


def test_the_example_documents_every_key_and_only_real_ones() -> None:
    documented = {section: set(keys) for section, keys in documented_keys().items()}
    assert documented == model_keys()


def test_the_example_marks_placeholders_and_names_every_variable() -> None:
    text = EXAMPLE.read_text()
    for line in text.splitlines():
        if (
            not line.startswith("#")
            and _KEY_LINE.match(line)
            and re.search(r"00000000-0000|12345|example\.com|REPLACE", line)
        ):
            assert "# REPLACE" in line, f"placeholder not marked: {line}"
    for section, keys in model_keys().items():
        for key in keys:
            assert f"SYNCD_{section.upper()}__{key.upper()}" in text, f"{section}.{key}: no env variable"


def test_the_secret_keys_are_exactly_the_documented_ones(tmp_path: Path) -> None:
    # The `_file` keys of the contract are accepted (test_secret_from_a_file); no other key has one.
    for section, keys in model_keys().items():
        for key in keys - {k for s, k in FILE_KEYS if s == section} - {f"{k}_file" for _, k in FILE_KEYS}:
            env = {f"SYNCD_{section.upper()}__{key.upper()}_FILE": "/x"}
            assert failure(tmp_path, None, env).message.startswith("unknown key"), (section, key)


# --- the models ------------------------------------------------------------------------------------------


def test_durations_have_one_spelling() -> None:
    with pytest.raises(ValidationError):
        SyncSettings.model_validate({"interval_s": 60})
    assert SyncSettings.model_validate({"interval": 60}).interval_s == 60.0


@pytest.mark.parametrize("model", [DatabaseSettings, SyncSettings, AdminSettings, LogSettings, Settings])
def test_models_are_frozen_and_strict_about_keys(model: type[BaseModel]) -> None:
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("127.0.0.1:8080", "127.0.0.1", 8080), ("[::1]:9000", "::1", 9000), ("0.0.0.0:1", "0.0.0.0", 1)],  # noqa: S104
)
def test_admin_listen(listen: str, host: str, port: int) -> None:
    admin = AdminSettings(listen=listen)
    assert (admin.host, admin.port) == (host, port)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///data/syncd.db",
        "sqlite:////var/lib/syncd/syncd.db",
        "sqlite://",
        "sqlite+pysqlite:///x.db",
        "postgresql+psycopg://syncd:pw@db.example.com:5432/syncd",
    ],
)
def test_database_urls(url: str) -> None:
    assert DatabaseSettings(url=url).url == url


def test_config_error_format() -> None:
    assert str(ConfigError("graph.tenant_id", "must be a GUID")) == "graph.tenant_id: must be a GUID"
    assert str(ConfigError("", "config file x is not valid TOML")) == "config file x is not valid TOML"
    combined = ConfigError.from_problems([("a.b", "one"), ("c.d", "two"), ("", "three")])
    assert (combined.key, combined.message, str(combined)) == (
        "a.b",
        "one; c.d: two; three",
        "a.b: one; c.d: two; three",
    )
    assert combined.problems == (("a.b", "one"), ("c.d", "two"), ("", "three"))
