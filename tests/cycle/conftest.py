"""In-process cycle fixtures: the real `Engine` over `httpx.ASGITransport` to both emulators.

The cycle tier tests what a sync cycle does (plans, guards, delta reads, retries, quarantine) without a
`syncd` process: the engine talks to the Graph emulator's two apps (`login_app` for msal's Entra login,
`graph_app` for Graph) and `SmartCommEmulator().app` in this process, each app under a host name of its own
(`Hosts`), with an injected clock that tests move instead of sleeping. SmartCommunicator is strict, as the
real service: the Entra tenant is registered and every valid number of the directory is 10DLC registered
before each cycle (tests/registry.py), anything else is refused. The configuration is a TOML file read by
the real loader, overridden per cycle by `SYNCD_*` variables exactly as the end-to-end tests pass them to
the command (tests/e2e/conftest.py). What needs the real process (the command line, printed output, signals,
the daemon) stays in tests/e2e.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from syncd.config.loader import load_settings
from syncd.config.settings import Settings
from syncd.cycle.engine import CycleResult, Engine, RelinkResult
from syncd.emulators.graph import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, GraphEmulator
from syncd.emulators.smartcomm import (
    DEFAULT_CUSTOMER_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    SmartCommEmulator,
)
from syncd.reports.status import print_status, status_document
from syncd.store import Store
from tests import observed, postgres
from tests.clocks import FakeClock
from tests.registry import register_directory

LOGIN_ORIGIN = "https://login.test"
"""Entra login, on a host of its own as `login.microsoftonline.com` is."""
GRAPH_ORIGIN = "https://graph.test"
"""Graph, and the resource its tokens are issued for (the emulator's `graph_resource`)."""
SMARTCOMM_ORIGIN = "https://smartcomm.test"


class Hosts:
    """The network the in-process transports reach: each request goes to the app of its URL's host, and a
    host nobody serves cannot be connected to (as a wrong `authority_host` or `base_url` would fail)."""

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self._apps = {urlsplit(origin).netloc: app for origin, app in apps.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"host"), "")
        app = self._apps.get(host)
        if app is None:
            raise httpx.ConnectError(f"nothing serves {host!r} in the test network")
        await app(scope, receive, send)


class AsgiSyncTransport(httpx.BaseTransport):
    """A synchronous transport answering from an ASGI app: msal's login requests, in msal's worker thread.

    Each request runs the app on an event loop of its own in the calling thread (the emulators are
    thread-safe: they also serve from uvicorn's thread while tests call them).
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def exchange() -> tuple[httpx.Response, bytes]:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            transport = httpx.ASGITransport(app=self._app)
            response = await transport.handle_async_request(forwarded)
            try:
                return response, await response.aread()
            finally:
                await response.aclose()

        response, content = asyncio.run(exchange())
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )


def write_config(path: Path, group: str, *, database_url: str, **sync: object) -> None:
    """A config file for the in-process emulators (tests/e2e/conftest.py's, without TLS or ports)."""
    sync_values = {"max_offboard": 10, "concurrency": 4} | sync
    sync_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in sync_values.items())
    path.write_text(
        f"""
[database]
url = {json.dumps(database_url)}

[graph]
tenant_id = "{DEFAULT_TENANT_ID}"
client_id = "{DEFAULT_CLIENT_ID}"
client_secret = "{DEFAULT_CLIENT_SECRET}"
authority_host = "{LOGIN_ORIGIN}"
base_url = "{GRAPH_ORIGIN}/v1.0"
group_ids = ["{group}"]
retry_delay_s = 0

[smartcomm]
base_url = "{SMARTCOMM_ORIGIN}"
customer_id = {DEFAULT_CUSTOMER_ID}
username = "{DEFAULT_USERNAME}"
password = "{DEFAULT_PASSWORD}"
backoff_initial_s = 0.05
backoff_max_s = 0.2

[sync]
{sync_lines}

[log]
format = "json"
""",
        encoding="utf-8",
    )


@dataclass
class World:
    """Both emulators in-process, one configured group with users, a config file, a store and a clock."""

    graph: GraphEmulator
    smartcomm: SmartCommEmulator
    group: str
    config: Path
    store: Store
    clock: FakeClock
    users: dict[str, str] = field(default_factory=dict)  # upn -> object id
    registry_follows_directory: bool = True
    """Before each cycle, 10DLC-register every valid number of the directory (tests/registry.py), as the
    customer has; a test of unregistered numbers turns it off."""
    _engine: Engine | None = None
    _engine_settings: Settings | None = None

    def add_user(self, name: str, phone: str, *, group: str | None = None, **extra: object) -> str:
        upn = f"{name}@contoso.com"
        object_id = self.graph.add_user(upn=upn, business_phones=[phone], **extra)  # type: ignore[arg-type]
        self.graph.add_member(group or self.group, object_id)
        self.users[upn] = object_id
        return object_id

    def settings(self, env: dict[str, str] | None = None) -> Settings:
        """The config file with `SYNCD_*` overrides, through the real loader (as `syncd --config`)."""
        return load_settings(self.config, env or {})

    async def cycle(
        self,
        *,
        full: bool = False,
        dry_run: bool = False,
        force: bool = False,
        user: str | None = None,
        env: dict[str, str] | None = None,
    ) -> CycleResult:
        """One cycle as `syncd sync [--full] [--dry-run] [--force] [--user U]` runs it, with `env` on top.

        The engine lives across cycles (as in the daemon) and is replaced when the settings change.
        """
        engine = await self._engine_for(self.settings(env))
        if self.registry_follows_directory:
            register_directory(self.graph, self.smartcomm)
        if not dry_run:
            self.store.interrupt_running_runs()  # as the command does before a real cycle
        return await engine.run_cycle(trigger="cli", full=full, dry_run=dry_run, force=force, user=user)

    async def relink(
        self,
        old: str,
        new: str,
        *,
        dry_run: bool = False,
        transfer_data: bool = True,
        env: dict[str, str] | None = None,
    ) -> RelinkResult:
        """`syncd relink OLD NEW [--dry-run] [--no-transfer-data]`, with `env` on top."""
        engine = await self._engine_for(self.settings(env))
        return await engine.relink(old, new, dry_run=dry_run, transfer_data=transfer_data)

    async def _engine_for(self, settings: Settings) -> Engine:
        if self._engine is not None and settings == self._engine_settings:
            return self._engine
        await self.aclose()
        hosts = self.hosts()
        self._engine = Engine(
            settings,
            self.store,
            graph_transport=httpx.ASGITransport(app=hosts),
            smartcomm_transport=httpx.ASGITransport(app=hosts),
            login_transport=AsgiSyncTransport(hosts),
            clock=self.clock,
        )
        self._engine_settings = settings
        return self._engine

    def hosts(self) -> Hosts:
        return Hosts(
            {
                LOGIN_ORIGIN: self.graph.login_app,
                GRAPH_ORIGIN: self.graph.graph_app,
                SMARTCOMM_ORIGIN: self.smartcomm.app,
            }
        )

    async def aclose(self) -> None:
        engine, self._engine, self._engine_settings = self._engine, None, None
        if engine is not None:
            await engine.aclose()

    def writes(self) -> list[tuple[str, str, object]]:
        """POST/PATCH/DELETE calls SmartCommunicator received (authentication excluded), in order."""
        return observed.writes(self.smartcomm)

    def agents(self) -> dict[str, tuple[str, str]]:
        """Active agents as object id -> (phone, upn)."""
        return observed.agents(self.smartcomm)

    def status(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """What `syncd status --json` prints, from the same function (with the settings and `env`)."""
        grace = self.settings(env).sync.offboard_grace_s
        return status_document(self.store, offboard_grace_s=grace)

    def status_text(self) -> str:
        """What `syncd status` prints, from the same function."""
        out = io.StringIO()
        print_status(self.store, as_json=False, runs=10, out=out)
        return out.getvalue()


def expect(result: CycleResult, code: int = 0) -> CycleResult:
    """`result`, after checking its exit code (the report in the message when it differs)."""
    assert result.exit_code == code, json.dumps(result.to_json(), indent=1, default=str)
    return result


def stopped_by(result: CycleResult) -> str | None:
    """The guard that stopped the cycle (the `stopped_by` key of `syncd sync --json`)."""
    return None if result.stopped_by is None else result.stopped_by.guard


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """A `database.url` for a fresh, empty PostgreSQL schema of this test's own (dropped afterwards);
    skipped unless SYNCD_TEST_POSTGRES_URL is set (tests/postgres.py)."""
    with postgres.fresh_schema() as (schema, url):
        yield postgres.url_with_search_path(url, schema)


@pytest.fixture
def backend() -> str:
    """The database `world` uses: "sqlite" here; a module parametrises it to run on both, e.g.
    `@pytest.fixture(params=["sqlite", "postgresql"])` returning `request.param` (see test_sync.py)."""
    return "sqlite"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def world(
    tmp_path: Path, backend: str, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    if backend == "postgresql":
        database_url = str(request.getfixturevalue("postgres_database_url"))
    else:
        database_url = f"sqlite:///{tmp_path / 'syncd.db'}"
    graph = GraphEmulator(graph_resource=GRAPH_ORIGIN)
    smartcomm = SmartCommEmulator(registered_tenants=[DEFAULT_TENANT_ID])
    group = graph.add_group(display_name="SmartCommunicator agents")
    config = tmp_path / "syncd.toml"
    write_config(config, group, database_url=database_url)
    store = Store(database_url)
    try:
        store.upgrade()
        world = World(graph, smartcomm, group, config, store, clock)
        try:
            yield world
        finally:
            await world.aclose()
    finally:
        store.close()
