"""`syncd config show` (in process, through `syncd.cli.main.main`): the effective configuration after the
file, the environment and `*_file` secrets, where each value came from, and never a secret, whichever way it
was given. The real command is run in tests/e2e/test_check.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from syncd.cli.main import main
from syncd.config.loader import Source, load_settings_with_sources
from syncd.config.show import hide_url_password

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
CLIENT = "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31"
GROUP = "11111111-2222-3333-4444-555555555555"

CLIENT_SECRET = "client-Secret-value-0001"
SMARTCOMM_PASSWORD = "smartcomm-Password-0002"
ADMIN_TOKEN = "admin-token-" + "0123456789abcdef" * 3
PG_PASSWORD = "pg-Password-0003"
PG_QUERY_PASSWORD = "pg-Query-Password-0004"
WEBHOOK_SIGNATURE = "webhook-Sig-0005"
CERTIFICATE_PASSWORD = "certificate-Passphrase-0006"

BASE = f"""
[graph]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
group_ids = ["{GROUP}"]

[smartcomm]
customer_id = 12345
username = "api-user@example.com"
password = "{SMARTCOMM_PASSWORD}"

[sync]
interval = "5m"
"""


def show(
    tmp_path: Path,
    text: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    *args: str,
) -> tuple[int, str]:
    config = tmp_path / "syncd.toml"
    config.write_text(text, encoding="utf-8")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["--config", str(config), "config", "show", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def secret_file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(f"  {value}\n", encoding="utf-8")
    return path


def every_secret_env(tmp_path: Path) -> dict[str, str]:
    return {
        "SYNCD_GRAPH__CLIENT_SECRET_FILE": str(secret_file(tmp_path, "graph_secret", CLIENT_SECRET)),
        "SYNCD_DATABASE__URL": (
            f"postgresql+psycopg://syncd:{PG_PASSWORD}@db.example.com:5432/syncd?password={PG_QUERY_PASSWORD}"
        ),
        "SYNCD_NOTIFY__WEBHOOK_URL": f"https://hooks.example.com/workflows/1?sp=x&sig={WEBHOOK_SIGNATURE}",
    }


def every_secret_text(tmp_path: Path) -> str:
    token = secret_file(tmp_path, "admin_token", ADMIN_TOKEN)
    return BASE + f'\n[admin]\ntoken_file = "{token}"\n'


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_no_secret_is_ever_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    env = every_secret_env(tmp_path)
    code, out = show(tmp_path, every_secret_text(tmp_path), monkeypatch, capsys, env, *(["--json"] * as_json))
    assert code == 0
    for secret in (
        CLIENT_SECRET,
        SMARTCOMM_PASSWORD,
        ADMIN_TOKEN,
        PG_PASSWORD,
        PG_QUERY_PASSWORD,
        WEBHOOK_SIGNATURE,
    ):
        assert secret not in out
    assert "***" in out


def test_a_certificate_passphrase_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = trustme.CA().issue_cert("syncd-app.example.com", key_type=trustme.KeyType.RSA)
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(CERTIFICATE_PASSWORD.encode()),
    )
    pem = tmp_path / "app.pem"
    pem.write_bytes(encrypted + leaf.cert_chain_pems[0].bytes())
    text = BASE.replace("[smartcomm]", f'certificate_path = "{pem}"\n\n[smartcomm]')
    env = {"SYNCD_GRAPH__CERTIFICATE_PASSWORD": CERTIFICATE_PASSWORD}
    outputs = [show(tmp_path, text, monkeypatch, capsys, env, *args) for args in ((), ("--json",))]
    for code, out in outputs:
        assert code == 0
        assert CERTIFICATE_PASSWORD not in out
        assert "BEGIN" not in out
    shown = r'^certificate_password = "\*\*\*" +# env SYNCD_GRAPH__CERTIFICATE_PASSWORD$'
    assert re.search(shown, outputs[0][1], re.MULTILINE)


def test_each_value_says_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = every_secret_env(tmp_path) | {"SYNCD_SYNC__MAX_OFFBOARD": "7"}
    code, out = show(tmp_path, every_secret_text(tmp_path), monkeypatch, capsys, env)
    assert code == 0
    lines = {line.split(" ", 1)[0]: line for line in out.splitlines() if " = " in line}
    graph_secret = tmp_path / "graph_secret"
    assert re.fullmatch(
        rf'client_secret = "\*\*\*" +# file-ref {re.escape(str(graph_secret))} '
        r"\(named by SYNCD_GRAPH__CLIENT_SECRET_FILE\)",
        lines["client_secret"],
    )
    admin_token = tmp_path / "admin_token"
    assert re.fullmatch(
        rf'token = "\*\*\*" +# file-ref {re.escape(str(admin_token))} \(named by admin.token_file\)',
        lines["token"],
    )
    assert re.fullmatch(r'password = "\*\*\*" +# file', lines["password"])
    assert re.fullmatch(r'interval = "5m" +# file', lines["interval"])
    assert re.fullmatch(r"max_offboard = 7 +# env SYNCD_SYNC__MAX_OFFBOARD", lines["max_offboard"])
    assert re.fullmatch(r'full_interval = "1d" +# default', lines["full_interval"])
    assert re.fullmatch(r'jitter = "30s" +# default', lines["jitter"])
    assert re.fullmatch(
        r'url = "postgresql\+psycopg://syncd:\*\*\*@db.example.com:5432/syncd\?password=\*\*\*" '
        r"+# env SYNCD_DATABASE__URL",
        lines["url"],
    )
    assert re.search(r"^# certificate_password: not set +# default$", out, re.MULTILINE)
    assert out.startswith(f"# The effective configuration: the config file {tmp_path / 'syncd.toml'}")


def test_the_json_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = every_secret_env(tmp_path)
    code, out = show(tmp_path, every_secret_text(tmp_path), monkeypatch, capsys, env, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["config_file"] == str(tmp_path / "syncd.toml")
    sections = document["sections"]
    assert list(sections) == ["database", "graph", "smartcomm", "sync", "admin", "notify", "log"]
    assert sections["graph"]["client_secret"] == {
        "value": "***",
        "source": "file-ref",
        "via": "SYNCD_GRAPH__CLIENT_SECRET_FILE",
        "path": str(tmp_path / "graph_secret"),
        "secret": True,
    }
    assert sections["sync"]["interval"] == {
        "value": "5m",
        "source": "file",
        "via": "",
        "path": "",
        "secret": False,
    }
    assert sections["log"]["level"]["source"] == "default"
    assert sections["graph"]["certificate_password"]["value"] is None


def test_an_absent_section_is_said_and_a_bad_configuration_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = show(tmp_path, "[log]\nlevel = 'debug'\n", monkeypatch, capsys, {})
    assert code == 0
    assert "# [graph] is not configured" in out
    assert re.search(r'^level = "debug" +# file$', out, re.MULTILINE)
    code, out = show(
        tmp_path, f'[smartcomm]\npassword = "{SMARTCOMM_PASSWORD}"\nintervall = 3\n', monkeypatch, capsys, {}
    )
    assert code == 2
    assert "smartcomm.intervall: unknown key" in out
    assert SMARTCOMM_PASSWORD not in out
    assert "Traceback" not in out


def test_the_loader_reports_sources(tmp_path: Path) -> None:
    secret = secret_file(tmp_path, "secret", CLIENT_SECRET)
    config = tmp_path / "syncd.toml"
    config.write_text(BASE.replace("[smartcomm]", f'client_secret_file = "{secret}"\n\n[smartcomm]'))
    settings, sources = load_settings_with_sources(config, {"SYNCD_SMARTCOMM__CUSTOMER_ID": "42"})
    assert settings.require_smartcomm().customer_id == 42
    assert sources["smartcomm.customer_id"] == Source("env", via="SYNCD_SMARTCOMM__CUSTOMER_ID")
    assert sources["graph.client_secret"] == Source(
        "file-ref", via="graph.client_secret_file", path=str(secret)
    )
    assert sources["graph.tenant_id"] == Source("file")
    assert sources["sync.interval"] == Source("file")
    assert "sync.jitter" not in sources  # its default (computed from the interval)
    assert "graph.client_secret_file" not in sources


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///data/syncd.db", "sqlite:///data/syncd.db"),
        ("postgresql+psycopg://u:p%40ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql+psycopg://u@h/db?password=x1", "postgresql+psycopg://u@h/db?password=***"),
    ],
)
def test_database_url_passwords_are_hidden(url: str, shown: str) -> None:
    assert hide_url_password(url) == shown
