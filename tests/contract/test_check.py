"""`syncd check` in process against both emulators over HTTPS: every check passing, and each failure mode an
admin meets in the first hour, produced through the emulators' control API (a permission withdrawn, a group
deleted, the password rotated, the customer not the credentials', the Teams permission missing), each
answered by its fix line. Nothing is ever written: the emulators received reads only.

The real `syncd check` command is tested in tests/e2e/test_check.py.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from pathlib import Path

import httpx
import pytest

from syncd.config.settings import AdminSettings, DatabaseSettings, Settings, SmartCommSettings
from syncd.emulators.graph import DEFAULT_CLIENT_ID, GraphEmulator
from syncd.emulators.server import RunningServer
from syncd.emulators.smartcomm import SmartCommEmulator
from syncd.service.check import Check, Report, Status, run_checks
from syncd.store import Store
from tests import observed, postgres
from tests.contract.conftest import graph_settings_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def control(server: RunningServer, method: str, path: str, body: object = None) -> object:
    """One call to an emulator's control API, as another process would make it."""
    verify = ssl.create_default_context(cafile=str(server.ca_path))
    response = httpx.request(method, f"{server.base_url}/_emulator{path}", json=body, verify=verify)
    assert response.status_code == 200, response.text
    return response.json()


class Checked:
    """Both emulators with one group of users, settings for them, and the checks' report."""

    def __init__(
        self,
        graph: GraphEmulator,
        graph_server: RunningServer,
        smartcomm: SmartCommEmulator,
        smartcomm_server: RunningServer,
        smartcomm_settings: SmartCommSettings,
        tmp_path: Path,
    ) -> None:
        self.graph, self.graph_server = graph, graph_server
        self.smartcomm, self.smartcomm_server = smartcomm, smartcomm_server
        self.group = graph.add_group(display_name="Support agents")
        for i in range(3):
            user = graph.add_user(upn=f"agent{i}@contoso.com", business_phones=[f"+1415555010{i}"])
            graph.add_member(self.group, user)
        smartcomm.add_agent(user_object_id="x-1", tenant_id=graph.tenant_id, phone_number="+14155550199")
        self.database = tmp_path / "syncd.db"
        self.settings = Settings(
            database=DatabaseSettings(url=f"sqlite:///{self.database}"),
            graph=graph_settings_for(graph_server, [self.group]),
            smartcomm=smartcomm_settings,
            admin=AdminSettings(listen=f"127.0.0.1:{free_port()}", token="t" * 40),
        )

    def database_exists(self) -> bool:
        return self.database.exists()

    def with_graph(self, **changes: object) -> Settings:
        assert self.settings.graph is not None
        graph = self.settings.graph.model_dump() | changes
        return self.settings.model_copy(update={"graph": type(self.settings.graph).model_validate(graph)})

    async def run(self, settings: Settings | None = None) -> Report:
        self.graph.clear_requests()
        self.smartcomm.clear_requests()
        report = await run_checks(settings or self.settings)
        # Whatever the checks found, they wrote nothing anywhere.
        assert observed.writes(self.smartcomm) == []
        assert {r.method for r in self.smartcomm.requests} <= {"GET", "POST"}
        assert [r.path for r in self.smartcomm.requests if r.method == "POST"] in (
            [],
            ["/rest/v1/authenticate"],
        )
        assert {r.method for r in observed.graph_api(self)} <= {"GET"}
        return report


@pytest.fixture
def checked(
    graph: GraphEmulator,
    graph_server: tuple[GraphEmulator, RunningServer],
    emulator: SmartCommEmulator,
    server: RunningServer,
    settings: SmartCommSettings,
    tmp_path: Path,
) -> Checked:
    return Checked(graph, graph_server[1], emulator, server, settings, tmp_path)


def by_name(report: Report, name: str) -> Check:
    (check,) = [c for c in report.checks if c.name == name]
    return check


def failed(report: Report) -> list[Check]:
    return [check for check in report.checks if check.status is Status.FAIL]


async def test_every_check_passes_against_a_tenant_set_up_right(checked: Checked) -> None:
    report = await checked.run()
    statuses = {check.name: check.status for check in report.checks}
    assert statuses == {
        "config": Status.OK,
        "entra_token": Status.OK,
        "group": Status.OK,
        "user_read": Status.OK,
        "teams_numbers": Status.SKIP,  # not a phone source here
        "delta": Status.OK,
        "smartcomm_auth": Status.OK,
        "customer_id": Status.OK,
        "agents_list": Status.OK,
        "database": Status.OK,
        "database_schema": Status.OK,
        "database_writable": Status.OK,
        "admin_listen": Status.OK,
        "admin_token": Status.OK,
    }
    assert report.exit_code == 0
    token = by_name(report, "entra_token")
    assert token.data["roles"] == sorted(checked.graph.app_roles())
    assert "GroupMember.Read.All, TeamsTelephoneNumber.Read.All, User.Read.All" in token.detail
    group = by_name(report, "group")
    assert group.data == {
        "label": "graph.group_ids",
        "group_id": checked.group,
        "display_name": "Support agents",
        "members": 3,
    }
    assert '"Support agents"' in group.detail
    assert by_name(report, "agents_list").data["agents"] == 1
    # The database file the first sync would create was not created.
    assert not checked.database_exists()


async def test_a_permission_withdrawn_is_named_with_admin_consent(checked: Checked) -> None:
    roles = control(checked.graph_server, "DELETE", f"/apps/{DEFAULT_CLIENT_ID}/roles/User.Read.All")
    assert roles == {"roles": ["GroupMember.Read.All", "TeamsTelephoneNumber.Read.All"]}
    report = await checked.run()
    token = by_name(report, "entra_token")
    assert token.status is Status.WARN  # the token says it: User.Read.All is not in its roles
    assert token.data["roles"] == ["GroupMember.Read.All", "TeamsTelephoneNumber.Read.All"]
    users = by_name(report, "user_read")
    assert users.status is Status.FAIL
    assert "limited information" in users.detail  # Graph answered the members without their properties
    assert users.fix == (
        "in Entra admin center > App registrations > (syncd's app) > API permissions, add the Microsoft "
        "Graph application permission User.Read.All and select Grant admin consent"
    )
    assert by_name(report, "delta").status is Status.FAIL  # the users delta needs it too
    assert "User.Read.All" in by_name(report, "delta").fix
    assert by_name(report, "group").status is Status.OK  # GroupMember.Read.All still reads the group
    assert report.exit_code == 2


async def test_a_missing_group_names_the_key_to_correct(checked: Checked) -> None:
    control(checked.graph_server, "DELETE", f"/groups/{checked.group}")
    report = await checked.run()
    group = by_name(report, "group")
    assert group.status is Status.FAIL
    assert f"{checked.group} (graph.group_ids) does not exist" in group.detail
    assert group.fix == (
        "correct the ID in graph.group_ids: copy the group's Object ID from Entra admin center > Groups"
    )
    assert [check.name for check in failed(report)] == ["group"]
    assert report.exit_code == 2


async def test_a_wrong_password_names_the_credentials(checked: Checked) -> None:
    control(checked.smartcomm_server, "PUT", "/account", {"password": "rotated-by-the-portal"})
    report = await checked.run()
    auth = by_name(report, "smartcomm_auth")
    assert auth.status is Status.FAIL
    assert auth.fix.startswith("set smartcomm.username and smartcomm.password (or password_file)")
    assert by_name(report, "customer_id").status is Status.SKIP
    assert by_name(report, "agents_list").status is Status.SKIP
    assert [check.name for check in failed(report)] == ["smartcomm_auth"]
    assert report.exit_code == 2


async def test_a_customer_the_credentials_are_not_for_names_customer_id(checked: Checked) -> None:
    control(checked.smartcomm_server, "PUT", "/account", {"customer_id": 67890})
    report = await checked.run()
    assert by_name(report, "smartcomm_auth").status is Status.OK
    customer = by_name(report, "customer_id")
    assert customer.status is Status.FAIL
    assert customer.fix == (
        "set smartcomm.customer_id to the customer ID these credentials belong to (Customer Portal: "
        "Enterprise Settings > SFTP Settings)"
    )
    assert by_name(report, "agents_list").status is Status.SKIP
    assert report.exit_code == 2


async def test_teams_without_its_permission_names_it_or_the_phone_source(checked: Checked) -> None:
    roles = ["GroupMember.Read.All", "User.Read.All"]
    control(checked.graph_server, "PUT", f"/apps/{DEFAULT_CLIENT_ID}/roles", {"roles": roles})
    report = await checked.run(checked.with_graph(phone_source=["teams", "businessPhones"]))
    teams = by_name(report, "teams_numbers")
    assert teams.status is Status.FAIL
    assert "403" in teams.detail
    assert teams.fix.endswith(
        "add the Microsoft Graph application permission TeamsTelephoneNumber.Read.All and select Grant admin "
        "consent, or take teams out of graph.phone_source"
    )
    assert by_name(report, "entra_token").status is Status.WARN
    assert [check.name for check in failed(report)] == ["teams_numbers"]


async def test_teams_with_its_permission_passes(checked: Checked) -> None:
    report = await checked.run(checked.with_graph(phone_source=["teams", "businessPhones"]))
    assert by_name(report, "teams_numbers").status is Status.OK
    assert report.exit_code == 0


async def test_no_permission_at_all(checked: Checked) -> None:
    control(checked.graph_server, "PUT", f"/apps/{DEFAULT_CLIENT_ID}/roles", {"roles": []})
    report = await checked.run()
    token = by_name(report, "entra_token")
    assert token.data["roles"] == []  # Entra leaves the roles claim out
    assert "GroupMember.Read.All and User.Read.All" in token.fix
    group = by_name(report, "group")
    assert group.status is Status.FAIL
    assert "GroupMember.Read.All" in group.fix


async def test_a_hidden_membership_names_member_read_hidden(checked: Checked) -> None:
    control(checked.graph_server, "POST", "/deny", {"group_id": checked.group})
    report = await checked.run()
    group = by_name(report, "group")
    assert group.status is Status.FAIL
    assert "Member.Read.Hidden" in group.fix


async def test_a_wrong_client_secret_names_the_key(checked: Checked) -> None:
    report = await checked.run(checked.with_graph(client_secret="not-the-secret"))
    token = by_name(report, "entra_token")
    assert token.status is Status.FAIL
    assert "AADSTS7000215" in token.detail or "7000215" in token.detail or "invalid_client" in token.detail
    assert token.fix.startswith("set graph.client_secret (or client_secret_file) to the secret's Value")
    assert all(by_name(report, name).status is Status.SKIP for name in ("group", "user_read", "delta"))


async def test_an_empty_group_is_a_warning(checked: Checked) -> None:
    empty = checked.graph.add_group(display_name="Nobody yet")
    report = await checked.run(checked.with_graph(group_ids=[empty]))
    group = by_name(report, "group")
    assert group.status is Status.WARN
    assert group.data["members"] == 0
    # No users to read: User.Read.All is judged from the token.
    assert by_name(report, "user_read").status is Status.OK
    assert report.exit_code == 0


async def test_the_database_a_previous_sync_left(checked: Checked, tmp_path: Path) -> None:
    with Store(checked.settings.database.url) as store:
        store.upgrade()
        revision = store.current_revision()
        store.set_value("kept", "1")
    database = tmp_path / "syncd.db"
    before = database.read_bytes()
    report = await checked.run()
    assert by_name(report, "database").status is Status.OK
    schema = by_name(report, "database_schema")
    assert schema.status is Status.OK
    assert schema.data == {"revision": [revision], "head": revision}
    assert by_name(report, "database_writable").status is Status.OK
    with Store(checked.settings.database.url, read_only=True) as store:
        assert store.get_value("syncd_check_probe") is None  # the probe's write was rolled back
        assert store.get_value("kept") == "1"
    assert len(database.read_bytes()) == len(before)


async def test_a_read_only_database_fails_writable(checked: Checked, tmp_path: Path) -> None:
    with Store(checked.settings.database.url) as store:
        store.upgrade()
    # SQLite opened read-only, as a file syncd's user may not write would be (file modes do not stop root).
    url = f"sqlite:///file:{tmp_path / 'syncd.db'}?mode=ro&uri=true"
    report = await checked.run(checked.settings.model_copy(update={"database": DatabaseSettings(url=url)}))
    assert by_name(report, "database").status is Status.OK
    writable = by_name(report, "database_writable")
    assert writable.status is Status.FAIL
    assert "readonly" in writable.detail
    assert writable.fix.startswith("give syncd's user write access to the database")


async def test_a_port_in_use_and_no_token(checked: Checked) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        admin = AdminSettings(listen=f"127.0.0.1:{port}")
        report = await checked.run(checked.settings.model_copy(update={"admin": admin}))
    listen = by_name(report, "admin_listen")
    assert listen.status is Status.FAIL
    assert listen.fix.startswith("stop what listens there, or set admin.listen to a free host:port")
    token = by_name(report, "admin_token")
    assert token.status is Status.WARN
    assert "openssl rand -hex 32" in token.fix


async def test_a_port_a_running_syncd_serves_is_fine(checked: Checked) -> None:
    """`docker exec syncd syncd check`: the daemon holds the admin port; its /healthz says it is syncd. (A
    small server answering /healthz as syncd's admin API does stands in for the daemon.)"""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok"}' if self.path == "/healthz" else b"{}"
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        admin = AdminSettings(listen=f"127.0.0.1:{server.server_address[1]}", token="t" * 40)
        report = await checked.run(checked.settings.model_copy(update={"admin": admin}))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    listen = by_name(report, "admin_listen")
    assert listen.status is Status.OK
    assert "in use by a running syncd (its /healthz answered)" in listen.detail


async def test_the_database_checks_on_postgresql(checked: Checked) -> None:
    """A fresh schema, then a migrated one: reachable, the revision, writable; the probe leaves nothing."""
    with postgres.fresh_schema() as (schema, server):
        url = postgres.url_with_search_path(server, schema)
        settings = checked.settings.model_copy(update={"database": DatabaseSettings(url=url)})
        empty = await checked.run(settings)
        assert by_name(empty, "database").status is Status.OK
        assert by_name(empty, "database_schema").detail.startswith(
            "empty: the first start creates the tables"
        )
        assert by_name(empty, "database_writable").status is Status.OK
        with Store(url) as store:
            store.upgrade()
            revision = store.current_revision()
            assert not store.schema_state().newer
        migrated = await checked.run(settings)
        assert by_name(migrated, "database_schema").data == {"revision": [revision], "head": revision}
        assert by_name(migrated, "database_writable").status is Status.OK
        with Store(url, read_only=True) as store, store.engine.connect() as connection:
            tables = {row[0] for row in connection.exec_driver_sql("SELECT tablename FROM pg_tables")}
            assert "syncd_check_probe" not in tables
            assert store.get_value("syncd_check_probe") is None
