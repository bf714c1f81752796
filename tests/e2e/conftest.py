"""End-to-end fixtures: both emulators over HTTPS (Entra login and Graph on two hosts of their own, with
different names and ports; SmartCommunicator with the tenant and the directory's numbers registered, as
tests/registry.py does), a tenant, a config file, and the real `syncd` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

from syncd.config.loader import load_settings
from syncd.cycle.engine import CycleResult, Engine
from syncd.emulators.graph import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    GraphEmulator,
    GraphServers,
    serve_graph_https,
)
from syncd.emulators.server import RunningServer, TestCA, serve_https
from syncd.emulators.smartcomm import (
    DEFAULT_CUSTOMER_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    ScriptedFault,
    SmartCommEmulator,
)
from syncd.store import Store
from tests import observed, postgres
from tests.registry import register_directory

if TYPE_CHECKING:
    from tests.e2e.test_daemon import Daemon

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 4
"""`sync.concurrency` in the tests' configuration: the writes a `syncd` process has in flight at most."""
HOLD_S = 10.0
"""How long `World.hold_writes` keeps answers back: far longer than a test takes to act on them."""


@pytest.fixture(scope="session")
def e2e_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("e2e-ca"))


@pytest.fixture(scope="session")
def servers(
    e2e_ca: TestCA,
) -> Iterator[tuple[GraphEmulator, GraphServers, SmartCommEmulator, RunningServer]]:
    graph, smartcomm = GraphEmulator(), SmartCommEmulator(registered_tenants=[DEFAULT_TENANT_ID])
    with (
        serve_graph_https(graph, ca=e2e_ca) as graph_server,
        serve_https(smartcomm.app, ca=e2e_ca) as sc_server,
    ):
        yield graph, graph_server, smartcomm, sc_server


@dataclass
class Result:
    """A finished `syncd` process."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        document = json.loads(self.stdout)
        assert isinstance(document, dict)
        return document


@dataclass
class World:
    """Both emulators, one configured group with users, and a config file for syncd."""

    graph: GraphEmulator
    smartcomm: SmartCommEmulator
    group: str
    config: Path
    users: dict[str, str] = field(default_factory=dict)  # upn -> object id
    phones: dict[str, str] = field(default_factory=dict)  # object id -> E.164 number
    registry_follows_directory: bool = True
    """Before each command (and as users are added), 10DLC-register every valid number of the directory
    (tests/registry.py), as the customer has; a test of unregistered numbers turns it off."""

    def add_user(self, name: str, phone: str, *, group: str | None = None, **extra: object) -> str:
        upn = f"{name}@contoso.com"
        object_id = self.graph.add_user(upn=upn, business_phones=[phone], **extra)  # type: ignore[arg-type]
        self.graph.add_member(group or self.group, object_id)
        self.users[upn] = object_id
        self.register()
        return object_id

    def register(self) -> None:
        if self.registry_follows_directory:
            register_directory(self.graph, self.smartcomm)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Result:
        self.register()
        process = subprocess.run(
            [sys.executable, "-m", "syncd", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(env),
            cwd=self.config.parent,
        )
        return Result(process.returncode, process.stdout, process.stderr)

    def sync_in_process(self, env: dict[str, str] | None = None) -> CycleResult:
        """One incremental cycle run in this process over the same HTTPS servers and config file, for a test
        whose subject is another command (explain, history): state as `syncd sync` leaves it, without the
        seconds a `syncd` process spends starting. `syncd sync` itself is tested through the real command."""
        settings = load_settings(self.config, env or {})
        self.register()

        async def cycle() -> CycleResult:
            with Store(settings.database.url) as store:
                store.upgrade()  # as every `syncd` command that writes does first
                store.interrupt_running_runs()
                engine = Engine(settings, store)
                try:
                    return await engine.run_cycle(trigger="cli")
                finally:
                    await engine.aclose()

        return asyncio.run(cycle())

    def start(
        self, *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[str]:
        """`syncd ARGS` running. With `log`, its stderr (the logs) goes to that file, which tests read while
        it runs (a long-lived daemon would fill a pipe nobody reads), and its stdout is dropped."""
        self.register()
        with contextlib.ExitStack() as files:
            stdout: int = subprocess.PIPE
            stderr: int | IO[str] = subprocess.PIPE
            if log is not None:
                stdout, stderr = subprocess.DEVNULL, files.enter_context(log.open("w"))
            return subprocess.Popen(
                [sys.executable, "-m", "syncd", "--config", str(self.config), *args],
                stdout=stdout,
                stderr=stderr,
                text=True,
                env=clean_env(env),
                cwd=self.config.parent,
            )

    def hold_writes(self, method: str, count: int = CONCURRENCY, *, hold_s: float = HOLD_S) -> None:
        """The next `count` `method` requests to the agents API are applied, and their answers held back
        for `hold_s`. With `count` = sync.concurrency a `syncd` process then has every write slot taken and
        sends nothing more: a test that kills it once `held(method) == count` knows what was applied."""
        self.smartcomm.inject(
            ScriptedFault("delay_after", method=method, path_contains="/agents", times=count, delay_s=hold_s)
        )

    def held(self, method: str) -> int:
        """How many `method` requests to the agents API were applied with their answers held back."""
        return sum(
            1
            for r in self.smartcomm.requests
            if r.method == method and "/agents" in r.path and r.fault == "delay_after" and r.applied
        )

    def writes(self) -> list[tuple[str, str, object]]:
        """POST/PATCH/DELETE calls SmartCommunicator received (authentication excluded), in order."""
        return observed.writes(self.smartcomm)

    def agents(self) -> dict[str, tuple[str, str]]:
        """Active agents as object id -> (phone, upn)."""
        return observed.agents(self.smartcomm)


def clean_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["PYTHONPATH"] = str(ROOT)
    return env | (extra or {})


def write_config(
    path: Path,
    graph: GraphServers,
    smartcomm: RunningServer,
    group: str,
    *,
    database_url: str | None = None,
    **sync: object,
) -> None:
    """A config file for both emulators; the database is SQLite next to it unless `database_url` is given."""
    sync_values = {"max_offboard": 10, "concurrency": CONCURRENCY} | sync
    sync_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in sync_values.items())
    url = database_url or f"sqlite:///{path.parent / 'syncd.db'}"
    path.write_text(
        f"""
[database]
url = {json.dumps(url)}

[graph]
tenant_id = "{DEFAULT_TENANT_ID}"
client_id = "{DEFAULT_CLIENT_ID}"
client_secret = "{DEFAULT_CLIENT_SECRET}"
authority_host = "{graph.authority_host}"
base_url = "{graph.graph_url}"
group_ids = ["{group}"]
ca_bundle = "{graph.ca_path}"
retry_delay_s = 0

[smartcomm]
base_url = "{smartcomm.base_url}"
customer_id = {DEFAULT_CUSTOMER_ID}
username = "{DEFAULT_USERNAME}"
password = "{DEFAULT_PASSWORD}"
ca_bundle = "{smartcomm.ca_path}"
backoff_initial_s = 0.05
backoff_max_s = 0.2

[sync]
{sync_lines}

[log]
format = "json"
""",
        encoding="utf-8",
    )


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """A `database.url` for a fresh, empty PostgreSQL schema of this test's own (dropped afterwards).

    The schema rides in the URL (`?options=-csearch_path%3D<schema>`), so a `syncd` process needs nothing
    else. Skipped with a message saying how to enable it when SYNCD_TEST_POSTGRES_URL is unset; fails when
    it is set and the server does not answer (tests/postgres.py).
    """
    with postgres.fresh_schema() as (schema, url):
        yield postgres.url_with_search_path(url, schema)


@pytest.fixture
def backend() -> str:
    """The database `world` configures: "sqlite" here; a module parametrises it to run on both, e.g.
    `@pytest.fixture(params=["sqlite", "postgresql"])` returning `request.param` (see test_sync.py)."""
    return "sqlite"


@pytest.fixture
def world(
    servers: tuple[GraphEmulator, GraphServers, SmartCommEmulator, RunningServer],
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> Iterator[World]:
    graph, graph_server, smartcomm, sc_server = servers
    # Before the emulators are touched: a skipped PostgreSQL variant leaves them as they were.
    database_url = request.getfixturevalue("postgres_database_url") if backend == "postgresql" else None
    graph.reset()
    smartcomm.reset()
    group = graph.add_group(display_name="SmartCommunicator agents")
    config = tmp_path / "syncd.toml"
    write_config(config, graph_server, sc_server, group, database_url=database_url)
    yield World(graph, smartcomm, group, config)
    graph.reset()
    smartcomm.reset()


@pytest.fixture
def daemons(world: World) -> Iterator[list[Daemon]]:
    """`syncd run` processes a test started (append them): killed and reaped after the test."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
        daemon.process.communicate(timeout=10)
