"""Fixtures for contract tests: the SmartCommunicator emulator as a real HTTPS server, and our client; the
Entra login and Graph as two HTTPS servers with different names and ports (`serve_graph_https`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from syncd.config.settings import GraphSettings, SmartCommSettings
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
    SmartCommEmulator,
)
from syncd.smartcomm import SmartCommClient


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(Path(tmp_path_factory.mktemp("ca")))


@pytest.fixture(scope="session")
def smartcomm_server(test_ca: TestCA) -> Iterator[tuple[SmartCommEmulator, RunningServer]]:
    emulator = SmartCommEmulator()
    with serve_https(emulator.app, ca=test_ca) as server:
        yield emulator, server


@pytest.fixture
def emulator(smartcomm_server: tuple[SmartCommEmulator, RunningServer]) -> Iterator[SmartCommEmulator]:
    emulator, _ = smartcomm_server
    emulator.reset()  # strict, as the real account: no tenant and no number registered, JSON only
    emulator.token_lifetime_s = 86400.0
    yield emulator
    emulator.reset()


@pytest.fixture
def server(smartcomm_server: tuple[SmartCommEmulator, RunningServer]) -> RunningServer:
    return smartcomm_server[1]


@pytest.fixture
def settings(server: RunningServer) -> SmartCommSettings:
    """Real settings pointing at the emulator; short backoffs keep retry tests fast."""
    return SmartCommSettings(
        base_url=server.base_url,
        customer_id=DEFAULT_CUSTOMER_ID,
        username=DEFAULT_USERNAME,
        password=DEFAULT_PASSWORD,
        ca_bundle=str(server.ca_path),
        timeout_s=5.0,
        backoff_initial_s=0.02,
        backoff_max_s=0.1,
        max_attempts=4,
    )


def variant(settings: SmartCommSettings, **changes: object) -> SmartCommSettings:
    """`settings` with some keys changed, validated like a real configuration."""
    return SmartCommSettings.model_validate(settings.model_dump() | changes)


@pytest.fixture
async def client(settings: SmartCommSettings, emulator: SmartCommEmulator) -> AsyncIterator[SmartCommClient]:
    async with SmartCommClient(settings) as client:
        yield client


@pytest.fixture(scope="session")
def graph_server(test_ca: TestCA) -> Iterator[tuple[GraphEmulator, GraphServers]]:
    emulator = GraphEmulator()
    with serve_graph_https(emulator, ca=test_ca) as servers:
        yield emulator, servers


@pytest.fixture
def graph(graph_server: tuple[GraphEmulator, GraphServers]) -> Iterator[GraphEmulator]:
    emulator, _ = graph_server
    emulator.reset()
    emulator.page_cap = 999
    emulator.token_lifetime_s = 3600.0
    yield emulator
    emulator.reset()


def graph_settings_for(server: GraphServers, group_ids: list[str], **changes: object) -> GraphSettings:
    """Real settings for the Graph emulator's two hosts; short retry delays keep throttling tests fast."""
    values: dict[str, object] = {
        "tenant_id": DEFAULT_TENANT_ID,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "authority_host": server.authority_host,
        "base_url": server.graph_url,
        "group_ids": group_ids,
        "ca_bundle": str(server.ca_path),
        "retry_delay_s": 0.0,
        "max_retries": 3,
        "timeout_s": 10.0,
    }
    return GraphSettings.model_validate(values | changes)
