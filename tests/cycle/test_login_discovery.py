"""msal's tenant discovery: answered from the known pattern on the public and sovereign clouds (one login
request per fresh process), still sent to a custom `authority_host`.
What the Graph emulator received decides."""

from __future__ import annotations

import httpx
import pytest

from syncd.cycle.engine import Engine
from syncd.graph.auth import KNOWN_LOGIN_HOSTS, known_openid_configuration
from tests.cycle.conftest import GRAPH_ORIGIN, SMARTCOMM_ORIGIN, AsgiSyncTransport, Hosts, World, expect
from tests.registry import register_directory

TENANT = "00000000-0000-0000-0000-0000000000aa"


def _login_requests(world: World) -> list[tuple[str, str]]:
    return [
        (request.method, request.path)
        for request in world.graph.requests
        if "openid-configuration" in request.path or request.path.endswith("/oauth2/v2.0/token")
    ]


async def test_the_public_cloud_sends_one_login_request(world: World) -> None:
    """With `authority_host` the public cloud's (served here by the login emulator under that name), msal's
    discovery is answered from the known pattern: the login host receives the token request alone."""
    world.add_user("ada", "+12125550101")
    public = "https://login.microsoftonline.com"
    hosts = Hosts(
        {
            public: world.graph.login_app,
            GRAPH_ORIGIN: world.graph.graph_app,
            SMARTCOMM_ORIGIN: world.smartcomm.app,
        }
    )
    register_directory(world.graph, world.smartcomm)
    engine = Engine(
        world.settings({"SYNCD_GRAPH__AUTHORITY_HOST": public}),
        world.store,
        graph_transport=httpx.ASGITransport(app=hosts),
        smartcomm_transport=httpx.ASGITransport(app=hosts),
        login_transport=AsgiSyncTransport(hosts),
        clock=world.clock,
    )
    try:
        expect(await engine.run_cycle(trigger="cli"))
    finally:
        await engine.aclose()
    assert len(world.agents()) == 1
    logins = _login_requests(world)
    assert [method for method, _ in logins] == ["POST"]
    assert logins[0][1].endswith("/oauth2/v2.0/token")


async def test_a_custom_authority_host_keeps_msal_discovery(world: World) -> None:
    world.add_user("ada", "+12125550101")
    expect(await world.cycle())
    logins = _login_requests(world)
    assert [method for method, _ in logins] == ["GET", "POST"]
    assert logins[0][1].endswith("/v2.0/.well-known/openid-configuration")


@pytest.mark.parametrize("host", sorted(KNOWN_LOGIN_HOSTS))
def test_known_clouds_follow_one_pattern(host: str) -> None:
    document = known_openid_configuration(f"https://{host}/{TENANT}/v2.0/.well-known/openid-configuration")
    assert document == {
        "issuer": f"https://{host}/{TENANT}/v2.0",
        "authorization_endpoint": f"https://{host}/{TENANT}/oauth2/v2.0/authorize",
        "token_endpoint": f"https://{host}/{TENANT}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"https://{host}/{TENANT}/oauth2/v2.0/devicecode",
    }


@pytest.mark.parametrize(
    "url",
    [
        f"https://login.example.com/{TENANT}/v2.0/.well-known/openid-configuration",  # not a known cloud
        f"http://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration",  # not https
        f"https://login.microsoftonline.com:8443/{TENANT}/v2.0/.well-known/openid-configuration",  # a port
        f"https://login.microsoftonline.com/{TENANT}/policy/v2.0/.well-known/openid-configuration",  # B2C
        "https://login.microsoftonline.com//v2.0/.well-known/openid-configuration",  # no tenant
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token",  # not the discovery document
    ],
)
def test_anything_else_is_left_to_msal(url: str) -> None:
    assert known_openid_configuration(url) is None
