"""The real `syncd check` and `syncd config show` commands against both emulators over HTTPS, with the
defaults a user gets (the default SQLite path `data/syncd.db` under the working directory, default
intervals): every check passing and printing no secret, then a permission withdrawn through the Graph
emulator's control API failing with its fix line (`--json`), and nothing written anywhere.

Every failure mode is in tests/contract/test_check.py, in process.
"""

from __future__ import annotations

import re
import socket
import ssl

import httpx

from syncd.emulators.graph import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, GraphEmulator
from syncd.emulators.server import RunningServer
from syncd.emulators.smartcomm import DEFAULT_PASSWORD, SmartCommEmulator
from tests import observed
from tests.e2e.conftest import World

Servers = tuple[GraphEmulator, RunningServer, SmartCommEmulator, RunningServer]

ADMIN_TOKEN = "a" * 24 + "-check-e2e-admin-token-" + "b" * 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_default_database(world: World) -> None:
    """The config file without its database.url: the default `sqlite:///data/syncd.db` applies."""
    lines = world.config.read_text(encoding="utf-8").splitlines()
    world.config.write_text("\n".join(line for line in lines if not line.startswith("url = ")) + "\n")


def test_check_passes_then_names_a_withdrawn_permission(world: World, servers: Servers) -> None:
    with_default_database(world)
    for i in range(3):
        world.add_user(f"agent{i}", f"+1415555020{i}")
    world.graph.clear_requests()
    env = {"SYNCD_ADMIN__LISTEN": f"127.0.0.1:{free_port()}", "SYNCD_ADMIN__TOKEN": ADMIN_TOKEN}

    passed = world.run("check", env=env)
    assert passed.code == 0, passed.stdout + passed.stderr
    lines = passed.stdout.splitlines()
    assert lines[0] == f"syncd check: configuration from {world.config}"
    statuses = [line.split()[0] for line in lines[2:-2]]
    assert set(statuses) == {"ok", "skip"}, passed.stdout  # skip: Teams, not a phone source here
    assert any(line.startswith("ok") and "User.Read.All" in line for line in lines)
    assert any('"SmartCommunicator agents"' in line and "3 users at any depth" in line for line in lines)
    assert any("data/syncd.db does not exist yet: the first sync creates it" in line for line in lines)
    assert lines[-1] == "No check failed (13 ok, 0 warnings, 1 skipped)."
    for secret in (DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, ADMIN_TOKEN):
        assert secret not in passed.stdout + passed.stderr

    # Consent withdrawn for one permission, as another process would do it: the fix names it.
    graph_server = servers[1]
    response = httpx.delete(
        f"{graph_server.base_url}/_emulator/apps/{DEFAULT_CLIENT_ID}/roles/GroupMember.Read.All",
        verify=ssl.create_default_context(cafile=str(graph_server.ca_path)),
    )
    assert response.json() == {"roles": ["TeamsTelephoneNumber.Read.All", "User.Read.All"]}
    failing = world.run("check", "--json", env=env)
    assert failing.code == 2, failing.stdout + failing.stderr
    document = failing.json()
    assert set(document) == {"ok", "exit_code", "config_file", "counts", "checks"}
    assert document["ok"] is False
    assert document["exit_code"] == 2
    assert document["config_file"] == str(world.config)
    checks = document["checks"]
    assert isinstance(checks, list)
    assert all(
        set(check) == {"name", "title", "status", "detail", "fix", "data"}
        and check["status"] in {"ok", "fail", "warn", "skip"}
        for check in checks
    )
    group = next(check for check in checks if check["name"] == "group")
    assert group["status"] == "fail"
    assert group["fix"] == (
        "in Entra admin center > App registrations > (syncd's app) > API permissions, add the Microsoft "
        "Graph application permission GroupMember.Read.All and select Grant admin consent"
    )
    token = next(check for check in checks if check["name"] == "entra_token")
    assert token["status"] == "warn"
    assert token["data"] == {"roles": ["TeamsTelephoneNumber.Read.All", "User.Read.All"]}
    counts = document["counts"]
    assert isinstance(counts, dict)
    assert counts["fail"] == sum(1 for check in checks if check["status"] == "fail") >= 1

    # Read only, both times: no write reached SmartCommunicator, Graph got GETs, and no database was made.
    assert observed.writes(world.smartcomm) == []
    assert {r.method for r in observed.graph_api(world)} == {"GET"}
    assert not (world.config.parent / "data").exists()


def test_config_show_prints_no_secret(world: World) -> None:
    secret_file = world.config.parent / "client_secret"
    secret_file.write_text(DEFAULT_CLIENT_SECRET + "\n", encoding="utf-8")
    text = world.config.read_text(encoding="utf-8")
    world.config.write_text(text.replace(f'client_secret = "{DEFAULT_CLIENT_SECRET}"', ""), encoding="utf-8")
    pg_password = "pg-Secret-in-the-url"
    webhook_signature = "webhook-sig-1234567890"
    env = {
        "SYNCD_GRAPH__CLIENT_SECRET_FILE": str(secret_file),
        "SYNCD_ADMIN__TOKEN": ADMIN_TOKEN,
        "SYNCD_DATABASE__URL": f"postgresql+psycopg://syncd:{pg_password}@db.example.com:5432/syncd",
        "SYNCD_NOTIFY__WEBHOOK_URL": f"https://hooks.example.com/workflows/1?sp=x&sig={webhook_signature}",
    }
    outputs = [world.run(*args, env=env) for args in (("config", "show"), ("config", "show", "--json"))]
    for shown in outputs:
        assert shown.code == 0, shown.stderr
        for secret in (DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, ADMIN_TOKEN, pg_password, webhook_signature):
            assert secret not in shown.stdout + shown.stderr, secret
    assert outputs[1].json()["sections"]["graph"]["client_secret"]["value"] == "***"  # type: ignore[index]
    text = outputs[0].stdout
    client_secret = rf'^client_secret = "\*\*\*" +# file-ref {re.escape(str(secret_file))} '
    assert re.search(client_secret + r"\(named by SYNCD_GRAPH__CLIENT_SECRET_FILE\)$", text, re.MULTILINE)
    assert re.search(r'^password = "\*\*\*" +# file$', text, re.MULTILINE)
    assert re.search(
        r'^url = "postgresql\+psycopg://syncd:\*\*\*@db.example.com:5432/syncd" +# env ', text, re.M
    )
    assert re.search(r'^interval = "15m" +# default$', text, re.MULTILINE)
