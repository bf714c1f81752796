"""Serving the Graph emulator as the real services are served: Entra login and Graph on two HTTPS hosts, with
different names and ports (`127.0.0.1` and `localhost` by default), and the emulator told where Graph is (its
`graph_resource`), so that a client that mixes up the two hosts, or asks for a token for the wrong resource,
fails here as it would against `login.microsoftonline.com` and `graph.microsoft.com`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from syncd.emulators.graph.wire import GRAPH_PREFIX
from syncd.emulators.server import RunningServer, TestCA, serve_https

if TYPE_CHECKING:
    from syncd.emulators.graph.emulator import GraphEmulator

LOGIN_HOST = "127.0.0.1"
"""The name (and address) the Entra login host is served under by default."""
GRAPH_HOST = "localhost"
"""The name the Graph host is served under by default: another name than the login host's."""


@dataclass(frozen=True)
class GraphServers:
    """Where `serve_graph_https` serves the two hosts."""

    login: RunningServer
    graph: RunningServer

    @property
    def authority_host(self) -> str:
        """The login host's origin: `graph.authority_host`."""
        return self.login.base_url

    @property
    def base_url(self) -> str:
        """The Graph host's origin, also Graph's resource identifier (scope "<base_url>/.default")."""
        return self.graph.base_url

    @property
    def graph_url(self) -> str:
        """Graph's versioned root: `graph.base_url`."""
        return f"{self.graph.base_url}{GRAPH_PREFIX}"

    @property
    def ca_path(self) -> Path:
        """The CA both hosts' certificates are signed by (`graph.ca_bundle`)."""
        return self.graph.ca_path


@contextmanager
def serve_graph_https(
    emulator: GraphEmulator,
    *,
    ca: TestCA,
    login_host: str = LOGIN_HOST,
    graph_host: str = GRAPH_HOST,
    login_port: int = 0,
    graph_port: int = 0,
) -> Iterator[GraphServers]:
    """Serve `emulator.login_app` and `emulator.graph_app` over HTTPS (see `serve_https`) and set the
    emulator's `graph_resource` to the Graph host's origin while they run."""
    with (
        serve_https(emulator.login_app, ca=ca, host=login_host, port=login_port) as login,
        serve_https(emulator.graph_app, ca=ca, host=graph_host, port=graph_port) as graph,
    ):
        emulator.graph_resource = graph.base_url
        yield GraphServers(login, graph)
