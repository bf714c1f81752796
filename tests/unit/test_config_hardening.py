"""Configuration hardening: the jitter rule, an upper bound on every duration, strict types in the file and
exact spellings in the environment, and TLS material (CA bundles, the app's certificate and passphrase, the
admin listener's certificate and key) opened when the configuration loads.

Every case goes through `load_settings`, the path `syncd` itself takes, and checks the dotted key the error
names; the command line turns that ConfigError into exit status 2 (tests/e2e/test_bad_config.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import load_pem_x509_certificate
from pydantic import BaseModel, ValidationError

from syncd.config.fields import duration_words, seconds_words
from syncd.config.loader import ConfigError, load_settings, parse_duration
from syncd.config.settings import AdminSettings, Settings, SyncSettings

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
CLIENT = "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31"
GROUP = "0b5c1f5e-2a36-4d3c-9a6a-3c2a1c2b0d11"
PASSPHRASE = "Correct-Horse-Battery-Staple-42"

GRAPH_BASE = f"""
[graph]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
group_ids = ["{GROUP}"]
"""
GRAPH = GRAPH_BASE + 'client_secret = "graph-secret"\n'
SMARTCOMM = """
[smartcomm]
customer_id = 12345
username = "api@example.com"
password = "api-password"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> Settings:
    return load_settings(write(tmp_path, text), env or {})


def failure(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    return caught.value


def problem(error: ConfigError, key: str) -> str:
    """The message of `key`'s problem in `error` (which must name it exactly once)."""
    messages = [message for named, message in error.problems if named == key]
    assert len(messages) == 1, error.problems
    return messages[0]


def set_line(text: str, line: str) -> str:
    """`text` with `line` ("key = value") added, replacing the line that sets the same key, if any."""
    key = line.split(" =")[0]
    kept = [old for old in text.splitlines() if not (line and old.startswith(f"{key} ="))]
    return "\n".join([*kept, line, ""])


def with_key(section: str, line: str) -> str:
    """A loadable config (both remote sections) with `line` set in `[section]`."""
    graph = set_line(GRAPH, line) if section == "graph" else GRAPH
    smartcomm = set_line(SMARTCOMM, line) if section == "smartcomm" else SMARTCOMM
    other = f"[{section}]\n{line}\n" if section not in ("graph", "smartcomm") else ""
    return graph + smartcomm + other


def section_models() -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {}
    for section, info in Settings.model_fields.items():
        annotation = info.annotation
        candidates = (annotation, *getattr(annotation, "__args__", ()))
        models[section] = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    return models


def duration_keys() -> list[tuple[str, str]]:
    """(section, TOML key) of every `*_s` field of every section."""
    return [
        (section, info.alias or name)
        for section, model in section_models().items()
        for name, info in model.model_fields.items()
        if name.endswith("_s")
    ]


def typed_keys(kind: type) -> list[tuple[str, str]]:
    """(section, TOML key) of every field annotated exactly `kind`, durations (aliased) excluded."""
    return [
        (section, info.alias or name)
        for section, model in section_models().items()
        for name, info in model.model_fields.items()
        if info.annotation is kind and not info.alias
    ]


# --- 1. jitter never exceeds a tenth of the interval ----------------------------------------------------


@pytest.mark.parametrize(
    ("sync", "env", "jitter"),
    [
        ('interval = "1s"', {}, 0.1),
        ('interval = "1m"', {}, 6.0),
        ('interval = "100s"', {}, 10.0),
        ('interval = "5m"', {}, 30.0),
        ("", {}, 30.0),
        ('interval = "1h"', {}, 30.0),
        ("", {"SYNCD_SYNC__INTERVAL": "2s"}, 0.2),
        ('interval = "1h"', {"SYNCD_SYNC__INTERVAL": "10s"}, 1.0),
    ],
)
def test_the_default_jitter_is_the_smaller_of_30s_and_a_tenth_of_the_interval(
    tmp_path: Path, sync: str, env: dict[str, str], jitter: float
) -> None:
    settings = load(tmp_path, f"[sync]\n{sync}\n", env)
    assert settings.sync.jitter_s == pytest.approx(jitter)
    assert settings.sync.jitter_s <= settings.sync.interval_s / 10


def test_the_default_jitter_applies_to_the_model_too() -> None:
    assert SyncSettings.model_validate({"interval": 1}).jitter_s == pytest.approx(0.1)
    assert SyncSettings().jitter_s == 30.0


@pytest.mark.parametrize(
    ("sync", "env", "bound"),
    [
        ('interval = "1s"\njitter = "30s"', {}, "at most 100ms (0.1 s)"),
        ('interval = "1m"\njitter = "7s"', {}, "at most 6s (6 s)"),
        ('interval = "1m"\njitter = 6.5', {}, "at most 6s (6 s)"),
        ('jitter = "2m"', {}, "at most 1m30s (90 s)"),
        ('interval = "1h"', {"SYNCD_SYNC__JITTER": "7m"}, "at most 6m (360 s)"),
        ('jitter = "30s"', {"SYNCD_SYNC__INTERVAL": "1m"}, "at most 6s (6 s)"),
    ],
)
def test_a_jitter_above_a_tenth_of_the_interval_is_an_error_naming_the_bound(
    tmp_path: Path, sync: str, env: dict[str, str], bound: str
) -> None:
    error = failure(tmp_path, f"[sync]\n{sync}\n", env)
    message = problem(error, "sync.jitter")
    assert message.startswith("must be at most a tenth of sync.interval")
    assert bound in message


@pytest.mark.parametrize(
    ("interval", "jitter"), [("1m", "6s"), ("1s", "100ms"), ("1m", "0s"), ("15m", "90s")]
)
def test_a_jitter_up_to_a_tenth_of_the_interval_is_kept(tmp_path: Path, interval: str, jitter: str) -> None:
    settings = load(tmp_path, f'[sync]\ninterval = "{interval}"\njitter = "{jitter}"\n')
    assert settings.sync.jitter_s == pytest.approx(parse_duration(jitter))


def test_a_bad_interval_is_the_one_error_even_with_a_jitter(tmp_path: Path) -> None:
    error = failure(tmp_path, '[sync]\ninterval = "soon"\njitter = "10m"\n')
    assert [key for key, _ in error.problems] == ["sync.interval"]


# --- 2. every duration has an upper bound ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env"),
    [
        ("1e300", {}),
        ('"1000000000d"', {}),
        ('"2d"', {}),
        ("86401", {}),
        ('"' + "9" * 400 + 's"', {}),
        ('"15m"', {"SYNCD_SYNC__INTERVAL": "1000000000d"}),
    ],
)
def test_an_interval_beyond_a_day_is_an_error(tmp_path: Path, value: str, env: dict[str, str]) -> None:
    error = failure(tmp_path, f"[sync]\ninterval = {value}\n", env)
    message = problem(error, "sync.interval")
    assert "at most 1d (86400 s)" in message or "too large" in message
    assert [key for key, _ in error.problems] == ["sync.interval"]


@pytest.mark.parametrize(("section", "key"), duration_keys())
def test_every_duration_has_an_upper_bound(tmp_path: Path, section: str, key: str) -> None:
    error = failure(tmp_path, with_key(section, f"{key} = 1e300"))
    message = problem(error, f"{section}.{key}")
    assert message.startswith("must be at most ")
    assert message.endswith(" s)")


@pytest.mark.parametrize(
    ("section", "line", "bound"),
    [
        ("sync", 'full_interval = "31d"', "at most 30d (2592000 s)"),
        ("sync", 'retry_initial = "8d"', "at most 7d (604800 s)"),
        ("sync", 'retry_max = "8d"', "at most 7d (604800 s)"),
        ("sync", 'quarantine_max = "8d"', "at most 7d (604800 s)"),
        ("sync", 'shutdown_grace = "2h"', "at most 1h (3600 s)"),
        ("sync", 'leader_takeover = "2h"', "at most 1h (3600 s)"),
        ("smartcomm", "timeout_s = 3601", "at most 1h (3600 s)"),
        ("smartcomm", "connect_timeout_s = 301", "at most 5m (300 s)"),
        ("graph", "timeout_s = 3601", "at most 1h (3600 s)"),
        ("graph", "retry_delay_s = 181", "at most 3m (180 s)"),
        ("admin", 'header_timeout = "6m"', "at most 5m (300 s)"),
        ("notify", 'timeout = "1h"', "at most 5m (300 s)"),
    ],
)
def test_bounds_are_said_in_words_and_seconds(tmp_path: Path, section: str, line: str, bound: str) -> None:
    key = f"{section}.{line.split(' =')[0]}"
    assert problem(failure(tmp_path, with_key(section, line)), key) == f"must be {bound}"


def test_durations_at_their_bounds_are_accepted(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        with_key("sync", 'interval = "1d"\nfull_interval = "30d"\nretry_max = "7d"\nshutdown_grace = "1h"'),
    )
    assert (settings.sync.interval_s, settings.sync.full_interval_s) == (86400.0, 30 * 86400.0)
    assert (settings.sync.retry_max_s, settings.sync.shutdown_grace_s) == (7 * 86400.0, 3600.0)


@pytest.mark.parametrize(
    ("section", "line", "env"),
    [
        ("smartcomm", "timeout_s = inf", {}),
        ("smartcomm", "timeout_s = nan", {}),
        ("graph", "connect_timeout_s = +inf", {}),
        ("sync", "quarantine_failure_share = nan", {}),
        ("smartcomm", "", {"SYNCD_SMARTCOMM__TIMEOUT_S": "inf"}),
        ("smartcomm", "", {"SYNCD_SMARTCOMM__BACKOFF_MAX_S": "NaN"}),
        ("smartcomm", "", {"SYNCD_SMARTCOMM__POOL_TIMEOUT_S": "1e999"}),
    ],
)
def test_non_finite_numbers_are_errors(tmp_path: Path, section: str, line: str, env: dict[str, str]) -> None:
    error = failure(tmp_path, with_key(section, line), env)
    key = line.split(" =")[0] if line else next(iter(env)).split("__")[1].lower()
    assert "must be a" in problem(error, f"{section}.{key}")


def test_the_models_bound_durations_too() -> None:
    with pytest.raises(ValidationError, match=r"must be at most 1d \(86400 s\)"):
        SyncSettings.model_validate({"interval": 1e300})
    with pytest.raises(ValidationError, match="finite"):
        SyncSettings.model_validate({"retry_max": math.inf})


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (86400, "1d (86400 s)"),
        (2592000, "30d (2592000 s)"),
        (5400, "1h30m (5400 s)"),
        (90, "1m30s (90 s)"),
        (0.1, "100ms (0.1 s)"),
        (1.5, "1s500ms (1.5 s)"),
        (0, "0s (0 s)"),
    ],
)
def test_bounds_in_words(seconds: float, words: str) -> None:
    assert seconds_words(seconds) == words
    assert parse_duration(duration_words(seconds)) == pytest.approx(seconds)


# --- 3. strict types in the file, exact spellings in the environment --------------------------------------


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("sync", "history_days = true", "must be a whole number, not true/false"),
        ("sync", "concurrency = false", "must be a whole number, not true/false"),
        ("smartcomm", "customer_id = true", "must be a whole number, not true/false"),
        ("graph", "page_size = true", "must be a whole number, not true/false"),
        ("sync", 'concurrency = "8"', "must be a whole number, not a string (write it without quotes)"),
        ("sync", 'history_days = "a year"', "must be a whole number, not a string"),
        ("sync", "concurrency = 8.0", "must be a whole number, not a decimal number"),
        ("sync", "history_days = 2.5", "must be a whole number, not a decimal number"),
        ("sync", "concurrency = [8]", "must be a whole number, not a list"),
        ("smartcomm", "timeout_s = true", "must be a number, not true/false"),
        ("smartcomm", 'timeout_s = "10"', "must be a number, not a string (write it without quotes)"),
        ("sync", "quarantine_failure_share = true", "must be a number, not true/false"),
        ("notify", "daily_summary = 1", "must be true or false, not a whole number"),
        ("notify", 'daily_summary = "true"', "must be true or false, not a string (write it without quotes)"),
        ("notify", 'daily_summary = "yes"', "must be true or false, not a string"),
        ("admin", "secure_cookie = 0", "must be true or false, not a whole number"),
        ("admin", "secure_cookie = 1.0", "must be true or false, not a decimal number"),
    ],
)
def test_a_value_of_the_wrong_toml_type_is_an_error(
    tmp_path: Path, section: str, line: str, message: str
) -> None:
    error = failure(tmp_path, with_key(section, line))
    assert error.problems == ((f"{section}.{line.split(' =')[0]}", message),)


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        *[(*where, "true", "must be a whole number, not true/false") for where in typed_keys(int)],
        *[(*where, "false", "must be a number, not true/false") for where in typed_keys(float)],
        *[(*where, "1", "must be true or false, not a whole number") for where in typed_keys(bool)],
    ],
)
def test_every_typed_key_is_strict(tmp_path: Path, section: str, key: str, value: str, expected: str) -> None:
    # Generic: every int, float and bool key of every section, found from the models' annotations.
    assert problem(failure(tmp_path, with_key(section, f"{key} = {value}")), f"{section}.{key}") == expected


@pytest.mark.parametrize(
    ("variable", "text", "expected"),
    [
        ("SYNCD_SYNC__HISTORY_DAYS", "25", 25),
        ("SYNCD_SYNC__QUARANTINE_MIN_WRITES", "+1", 1),
        ("SYNCD_SYNC__CONCURRENCY", "3", 3),
        ("SYNCD_SMARTCOMM__CUSTOMER_ID", "67890", 67890),
        ("SYNCD_SMARTCOMM__TIMEOUT_S", "2.5", 2.5),
        ("SYNCD_SMARTCOMM__TIMEOUT_S", "20", 20.0),
        ("SYNCD_SYNC__QUARANTINE_FAILURE_SHARE", ".25", 0.25),
        ("SYNCD_NOTIFY__DAILY_SUMMARY", "true", True),
        ("SYNCD_ADMIN__SECURE_COOKIE", "1", True),
    ],
)
@pytest.mark.parametrize("spacing", ["{}", " {} "])
def test_the_environment_spells_numbers_and_switches(
    tmp_path: Path, variable: str, text: str, expected: object, spacing: str
) -> None:
    settings = load(tmp_path, GRAPH + SMARTCOMM, {variable: spacing.format(text)})
    section, key = variable.removeprefix("SYNCD_").lower().split("__")
    value = getattr(getattr(settings, section), key)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("0", False),
    ],
)
def test_switches_from_the_environment(text: str, expected: bool) -> None:
    settings = load_settings(None, {"SYNCD_NOTIFY__DAILY_SUMMARY": text, "SYNCD_ADMIN__SECURE_COOKIE": text})
    assert (settings.notify.daily_summary, settings.admin.secure_cookie) == (expected, expected)


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("SYNCD_NOTIFY__DAILY_SUMMARY", "yes", "must be true or false (or 1 or 0)"),
        ("SYNCD_NOTIFY__DAILY_SUMMARY", "on", "must be true or false (or 1 or 0)"),
        ("SYNCD_NOTIFY__DAILY_SUMMARY", "t", "must be true or false (or 1 or 0)"),
        ("SYNCD_ADMIN__SECURE_COOKIE", "", "must be true or false (or 1 or 0)"),
        ("SYNCD_SYNC__CONCURRENCY", "25.0", "must be a whole number"),
        ("SYNCD_SYNC__HISTORY_DAYS", "1_000", "must be a whole number"),
        ("SYNCD_SYNC__HISTORY_DAYS", "0x10", "must be a whole number"),
        ("SYNCD_SYNC__CONCURRENCY", "true", "must be a whole number"),
        ("SYNCD_SMARTCOMM__TIMEOUT_S", "10s", "must be a number"),
        ("SYNCD_SMARTCOMM__TIMEOUT_S", "nan", "must be a number"),
    ],
)
def test_the_environment_must_spell_its_kind_exactly(
    tmp_path: Path, variable: str, text: str, message: str
) -> None:
    error = failure(tmp_path, GRAPH + SMARTCOMM, {variable: text})
    section, key = variable.removeprefix("SYNCD_").lower().split("__")
    assert error.problems == ((f"{section}.{key}", f"{message} (from {variable})"),)


def test_a_wrong_environment_value_is_not_quoted(tmp_path: Path) -> None:
    secret = "Pa55word-typed-in-the-wrong-variable"
    error = failure(tmp_path, GRAPH + SMARTCOMM, {"SYNCD_SMARTCOMM__CUSTOMER_ID": secret})
    assert secret not in str(error)


# --- 4. TLS material is opened when the configuration loads -----------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def app_leaf(ca: trustme.CA) -> trustme.LeafCert:
    # Entra takes RSA keys only (msal signs PS256).
    return ca.issue_cert("syncd-app.example.com", key_type=trustme.KeyType.RSA)


def encrypted_key_pem(leaf: trustme.LeafCert, passphrase: str) -> bytes:
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


def pfx_bytes(leaf: trustme.LeafCert, passphrase: str | None) -> bytes:
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    certificate = load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(b"app", key, certificate, None, encryption)  # type: ignore[arg-type]


def assert_no_material(error: ConfigError, leaf: trustme.LeafCert) -> None:
    text = str(error) + repr(error)
    assert "-----BEGIN" not in text
    assert PASSPHRASE not in text
    key_body = leaf.private_key_pem.bytes().decode().splitlines()[1]
    assert key_body not in text


@pytest.mark.parametrize("section", ["graph", "smartcomm", "notify"])
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"just some text\n", "no certificate or crl found"),
        (b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", ""),
        (b"\x30\x82\x01\x0a\x02\x82", "no certificate or crl found"),
        ("KEY", "no certificate or crl found"),
    ],
)
def test_a_ca_bundle_that_is_not_pem_certificates_is_an_error(
    tmp_path: Path, app_leaf: trustme.LeafCert, section: str, content: bytes | str, reason: str
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(app_leaf.private_key_pem.bytes() if content == "KEY" else content)  # type: ignore[arg-type]
    error = failure(tmp_path, with_key(section, f'ca_bundle = "{bundle}"'))
    message = problem(error, f"{section}.ca_bundle")
    assert message.startswith("not a PEM file of CA certificates (")
    assert reason in message
    assert str(bundle) in message
    assert "_ssl.c" not in message
    assert_no_material(error, app_leaf)


@pytest.mark.parametrize("section", ["graph", "smartcomm", "notify"])
def test_a_pem_ca_bundle_loads(tmp_path: Path, ca: trustme.CA, section: str) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings = load(tmp_path, with_key(section, f'ca_bundle = "{bundle}"'))
    assert getattr(settings, section).ca_bundle == str(bundle)


def graph_with_certificate(path: Path, password: str | None = None) -> str:
    text = GRAPH_BASE + f'certificate_path = "{path}"\n'
    if password is not None:
        text += f'certificate_password = "{password}"\n'
    return text + SMARTCOMM


@pytest.mark.parametrize(
    ("build", "password"),
    [
        (lambda leaf: leaf.private_key_and_cert_chain_pem.bytes(), None),
        (lambda leaf: leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes(), None),
        (lambda leaf: encrypted_key_pem(leaf, PASSPHRASE) + leaf.cert_chain_pems[0].bytes(), PASSPHRASE),
    ],
    ids=["key-then-certificate", "certificate-then-key", "encrypted-key"],
)
def test_a_pem_certificate_with_its_key_loads(
    tmp_path: Path, app_leaf: trustme.LeafCert, build: object, password: str | None
) -> None:
    pem = tmp_path / "app.pem"
    pem.write_bytes(build(app_leaf))  # type: ignore[operator]
    graph = load(tmp_path, graph_with_certificate(pem, password)).require_graph()
    assert graph.certificate_path == str(pem)


@pytest.mark.parametrize(
    ("content", "password", "key", "fragment"),
    [
        ("key", None, "graph.certificate_path", "no PEM certificate in {path}"),
        ("certificate", None, "graph.certificate_path", "no private key that loads in {path}"),
        ("junk", None, "graph.certificate_path", "no PEM certificate in {path}"),
        ("encrypted", None, "graph.certificate_password", "the key in {path} is encrypted; set"),
        ("encrypted", "wrong-passphrase", "graph.certificate_password", "does not open the key in {path}"),
        ("plain", PASSPHRASE, "graph.certificate_password", "the key in {path} is not encrypted"),
    ],
)
def test_a_bad_pem_certificate_names_the_key_to_fix(
    tmp_path: Path,
    app_leaf: trustme.LeafCert,
    content: str,
    password: str | None,
    key: str,
    fragment: str,
) -> None:
    pem = tmp_path / "app.pem"
    pem.write_bytes(
        {
            "key": app_leaf.private_key_pem.bytes(),
            "certificate": app_leaf.cert_chain_pems[0].bytes(),
            "junk": b"not a certificate\n",
            "encrypted": encrypted_key_pem(app_leaf, PASSPHRASE) + app_leaf.cert_chain_pems[0].bytes(),
            "plain": app_leaf.private_key_and_cert_chain_pem.bytes(),
        }[content]
    )
    error = failure(tmp_path, graph_with_certificate(pem, password))
    assert error.problems == ((key, error.problems[0][1]),)
    assert fragment.format(path=pem) in error.message
    assert_no_material(error, app_leaf)
    assert "wrong-passphrase" not in str(error)


def test_a_wrong_passphrase_from_a_file_is_named_and_never_shown(
    tmp_path: Path, app_leaf: trustme.LeafCert
) -> None:
    pem = tmp_path / "app.pem"
    pem.write_bytes(encrypted_key_pem(app_leaf, "the-real-one") + app_leaf.cert_chain_pems[0].bytes())
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    error = failure(
        tmp_path, graph_with_certificate(pem), {"SYNCD_GRAPH__CERTIFICATE_PASSWORD_FILE": str(secret)}
    )
    assert error.key == "graph.certificate_password"
    assert error.message.startswith(f"does not open the key in {pem} (read from the file")
    assert_no_material(error, app_leaf)


@pytest.mark.parametrize("suffix", [".pfx", ".p12"])
def test_a_pfx_opens_with_its_passphrase(tmp_path: Path, app_leaf: trustme.LeafCert, suffix: str) -> None:
    pfx = tmp_path / f"app{suffix}"
    pfx.write_bytes(pfx_bytes(app_leaf, PASSPHRASE))
    graph = load(tmp_path, graph_with_certificate(pfx, PASSPHRASE)).require_graph()
    assert graph.certificate_path == str(pfx)
    plain = tmp_path / f"plain{suffix}"
    plain.write_bytes(pfx_bytes(app_leaf, None))
    assert load(tmp_path, graph_with_certificate(plain)).require_graph().certificate_path == str(plain)


@pytest.mark.parametrize(
    ("content", "password", "key", "fragment"),
    [
        ("encrypted", "wrong-passphrase", "graph.certificate_password", "does not open {path}"),
        ("encrypted", None, "graph.certificate_password", "{path} does not open without a passphrase"),
        ("pem", None, "graph.certificate_path", "{path} is not a PKCS#12 (.pfx/.p12) file"),
    ],
)
def test_a_bad_pfx_names_the_key_to_fix(
    tmp_path: Path,
    app_leaf: trustme.LeafCert,
    content: str,
    password: str | None,
    key: str,
    fragment: str,
) -> None:
    pfx = tmp_path / "app.pfx"
    if content == "encrypted":
        pfx.write_bytes(pfx_bytes(app_leaf, PASSPHRASE))
    else:
        pfx.write_bytes(app_leaf.private_key_and_cert_chain_pem.bytes())
    error = failure(tmp_path, graph_with_certificate(pfx, password))
    assert error.problems == ((key, error.problems[0][1]),)
    assert fragment.format(path=pfx) in error.message
    assert_no_material(error, app_leaf)
    assert "wrong-passphrase" not in str(error)


def admin_tls(cert: Path, key: Path) -> str:
    return f'[admin]\ntls_cert_path = "{cert}"\ntls_key_path = "{key}"\n'


def test_the_admin_certificate_and_key_load_together(tmp_path: Path, ca: trustme.CA) -> None:
    leaf = ca.issue_cert("syncd.example.com")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    admin = load(tmp_path, admin_tls(cert, key)).admin
    assert (admin.tls, admin.tls_cert_path, admin.tls_key_path) == (True, str(cert), str(key))


@pytest.mark.parametrize(
    ("cert_content", "key_content", "key", "fragment"),
    [
        ("junk", "key", "admin.tls_cert_path", "no PEM certificate in {cert}"),
        ("key", "key", "admin.tls_cert_path", "no PEM certificate in {cert}"),
        ("cert", "junk", "admin.tls_key_path", "no PEM private key in {key}"),
        ("cert", "cert", "admin.tls_key_path", "no PEM private key in {key}"),
        ("cert", "other", "admin.tls_key_path", "is not the private key of the certificate in {cert}"),
        ("cert", "encrypted", "admin.tls_key_path", "the key in {key} is encrypted"),
    ],
)
def test_bad_admin_tls_material_names_the_key_to_fix(
    tmp_path: Path, ca: trustme.CA, cert_content: str, key_content: str, key: str, fragment: str
) -> None:
    leaf, other = ca.issue_cert("syncd.example.com"), ca.issue_cert("other.example.com")
    blobs = {
        "junk": b"not pem\n",
        "key": leaf.private_key_pem.bytes(),
        "cert": leaf.cert_chain_pems[0].bytes(),
        "other": other.private_key_pem.bytes(),
        "encrypted": encrypted_key_pem(leaf, PASSPHRASE),
    }
    cert, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(blobs[cert_content])
    key_file.write_bytes(blobs[key_content])
    error = failure(tmp_path, admin_tls(cert, key_file))
    assert error.problems == ((key, error.problems[0][1]),)
    assert fragment.format(cert=cert, key=key_file) in error.message
    assert "-----BEGIN" not in str(error)
    assert "_ssl.c" not in str(error)


def test_the_admin_model_checks_its_material_too(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    with pytest.raises(ValidationError) as caught:
        AdminSettings(tls_cert_path=str(junk), tls_key_path=str(junk))
    assert [error["loc"] for error in caught.value.errors()] == [("tls_cert_path",), ("tls_key_path",)]
