"""Entra login and Graph are two hosts (as login.microsoftonline.com and graph.microsoft.com are): the Graph
source with the real msal and msgraph-sdk fails, naming the key, when its configuration mixes them up.

The emulator serves them on two HTTPS servers with different names and ports; a token is issued only for a
resource the tenant has (Graph's is the Graph host's origin) and Graph takes only tokens for itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from syncd.emulators.graph import GraphEmulator, GraphServers
from syncd.graph.errors import GraphCredentialError
from syncd.graph.source import GraphSource
from tests.contract.conftest import graph_settings_for

GraphServer = tuple[GraphEmulator, GraphServers]


def graph_calls(graph: GraphEmulator) -> list[str]:
    """What reached Graph's API (`/v1.0/...`), wherever it was sent."""
    return [r.path for r in graph.requests if r.path.startswith("/v1.0/")]


async def test_the_two_hosts_differ_in_name_and_port(graph: GraphEmulator, graph_server: GraphServer) -> None:
    _, servers = graph_server
    login, api = urlsplit(servers.authority_host), urlsplit(servers.base_url)
    assert login.hostname != api.hostname
    assert login.port != api.port
    assert graph.graph_resource == servers.base_url
    group = graph.add_group()
    user = graph.add_user(upn="a@contoso.com", business_phones=["+14155550100"])
    graph.add_member(group, user)
    async with GraphSource(graph_settings_for(servers, [group])) as source:
        desired = await source.read()
    assert list(desired.members) == [user]
    token = next(r for r in graph.requests if r.path.endswith("/oauth2/v2.0/token"))
    assert isinstance(token.body, dict)
    assert token.body["scope"] == f"{servers.base_url}/.default"


async def test_swapped_authority_host_and_base_url_fail_naming_the_authority(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, servers = graph_server
    group = graph.add_group()
    swapped = graph_settings_for(
        servers, [group], authority_host=servers.base_url, base_url=f"{servers.authority_host}/v1.0"
    )
    with pytest.raises(GraphCredentialError) as caught:
        async with GraphSource(swapped) as source:
            await source.read()
    assert caught.value.setting is not None
    assert "graph.authority_host" in caught.value.setting
    # msal asked the Graph host for Entra's discovery document, and Graph knows no such path.
    discovery = [r for r in graph.requests if r.path.endswith("/.well-known/openid-configuration")]
    assert discovery
    assert {r.status for r in discovery} == {400}
    assert graph_calls(graph) == []


async def test_a_base_url_on_the_login_host_asks_for_a_resource_the_tenant_lacks(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, servers = graph_server
    wrong = graph_settings_for(servers, [graph.add_group()], base_url=f"{servers.authority_host}/v1.0")
    with pytest.raises(GraphCredentialError) as caught:
        async with GraphSource(wrong) as source:
            await source.read()
    assert caught.value.setting == "graph.base_url"
    assert "AADSTS500011" in str(caught.value)
    token = [r for r in graph.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert [r.status for r in token] == [400]
    assert graph_calls(graph) == []


async def test_an_authority_on_the_graph_host_finds_no_login(
    graph: GraphEmulator, graph_server: GraphServer
) -> None:
    _, servers = graph_server
    wrong = graph_settings_for(servers, [graph.add_group()], authority_host=servers.base_url)
    with pytest.raises(GraphCredentialError) as caught:
        async with GraphSource(wrong) as source:
            await source.read()
    assert caught.value.setting is not None
    assert "graph.authority_host" in caught.value.setting
    assert not any(r.path.endswith("/oauth2/v2.0/token") for r in graph.requests)
