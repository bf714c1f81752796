"""Tests of the Entra login + Microsoft Graph emulator itself, driven with plain httpx (and msal once).

The emulator stands in for Entra and Graph in every other test, so here it is held to what the real services
do (docs/spec/graph-and-msal.md): discovery and token responses msal accepts, AADSTS errors, Graph's OData
error shapes, advanced-query rules, paging with absolute nextLinks, delta semantics, and faults that look
like the real failures to a client.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from syncd.emulators.graph import (
    ARM_RESOURCE,
    DEFAULT_APP_ROLES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    GRAPH_ROLES,
    RAW_OMIT,
    TEAMS_NUMBER_ROLE,
    Faults,
    GraphEmulator,
    GraphServers,
    ScriptedFault,
    serve_graph_https,
)
from syncd.emulators.server import TestCA
from syncd.emulators.tenant import BuiltTenant, TenantSpec, build_tenant

BASE = "https://graph.emulator.test"
"""Graph, and the resource its tokens are for."""
LOGIN = "https://login.emulator.test"
"""Entra login: another host, as login.microsoftonline.com is."""
TOKEN_PATH = f"/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"
TOKEN_URL = f"{LOGIN}{TOKEN_PATH}"
SCOPE = f"{BASE}/.default"
EVENTUAL = {"ConsistencyLevel": "eventual"}
USER_SELECT = "id,userPrincipalName,accountEnabled,businessPhones,onPremisesImmutableId"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CERT_APP = "6d1f0c2b-9a8e-4f7d-b3c2-1e0a9f8d7c6b"


@pytest.fixture
def emu() -> GraphEmulator:
    return GraphEmulator(graph_resource=BASE)


def hosts_client(emulator: GraphEmulator) -> httpx.AsyncClient:
    """A client that reaches Graph at BASE (relative URLs go there) and Entra login at LOGIN."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emulator.graph_app),
        mounts={"all://login.emulator.test": httpx.ASGITransport(app=emulator.login_app)},
        base_url=BASE,
    )


@pytest.fixture
async def client(emu: GraphEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with hosts_client(emu) as client:
        yield client


def secret_form(**changes: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "scope": SCOPE,
    }
    form.update(changes)
    return form


async def token(client: httpx.AsyncClient) -> str:
    response = await client.post(TOKEN_URL, data=secret_form())
    assert response.status_code == 200, response.text
    value = response.json()["access_token"]
    assert isinstance(value, str)
    return value


@pytest.fixture
async def auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {await token(client)}", **EVENTUAL}


def claims(access_token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return payload


def assert_entra_error(response: httpx.Response, status: int, error: str, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert body["error_codes"] == [code]
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def assert_graph_error(response: httpx.Response, status: int, code: str, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if message is not None:
        assert error["message"] == message
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])


async def read_all(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Follow nextLinks to the end; check each is absolute and repeats the original query."""
    items: list[dict[str, Any]] = []
    first_query = {k: v for k, v in parse_qs(urlsplit(url).query).items() if k != "$skiptoken"}
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["value"])
        next_url = body.get("@odata.nextLink")
        if next_url is not None:
            assert next_url.startswith(f"{BASE}/v1.0/")
            query = parse_qs(urlsplit(next_url).query)
            assert "$skiptoken" in query
            assert {k: v for k, v in query.items() if k != "$skiptoken"} == first_query
    return items


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


# --- certificates for client assertions ---------------------------------------------------------------------


class Credential:
    """An RSA key and a self-signed certificate, as an app registration's certificate credential."""

    def __init__(self, name: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self.key_pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def thumbprint(self, algorithm: hashes.HashAlgorithm) -> str:
        # msal pads these (urlsafe_b64encode); Entra takes both.
        return base64.urlsafe_b64encode(self.certificate.fingerprint(algorithm)).decode()


@pytest.fixture(scope="module")
def credentials() -> tuple[Credential, Credential]:
    return Credential("syncd-app"), Credential("someone-else")


def assertion(
    signer: Credential,
    named: Credential,
    *,
    algorithm: str = "PS256",
    audience: str = TOKEN_URL,
    issuer: str = CERT_APP,
    lifetime_s: float = 600.0,
) -> str:
    """A client assertion signed by `signer`'s key, whose header names `named`'s certificate."""
    if algorithm == "PS256":
        headers = {"x5t#S256": named.thumbprint(hashes.SHA256())}
    else:
        headers = {"x5t": named.thumbprint(hashes.SHA1())}  # noqa: S303 - x5t is SHA-1 by definition
    now = time.time()
    payload = {"aud": audience, "iss": issuer, "sub": issuer, "exp": now + lifetime_s, "iat": now, "jti": "j"}
    return jwt.encode(payload, signer.key_pem, algorithm=algorithm, headers=headers)


def assertion_form(client_assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": CERT_APP,
        "scope": SCOPE,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client_assertion,
    }


# --- Entra login --------------------------------------------------------------------------------------------


async def test_openid_configuration_points_msal_at_this_host(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{LOGIN}/{DEFAULT_TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    config = response.json()
    base = f"{LOGIN}/{DEFAULT_TENANT_ID}"
    assert config["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert config["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert config["issuer"] == f"{base}/v2.0"
    assert config["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert config["msgraph_host"] == "graph.emulator.test"
    keys = await client.get(f"{LOGIN}/{DEFAULT_TENANT_ID}/discovery/v2.0/keys")
    assert keys.json() == {"keys": []}


async def test_openid_configuration_of_an_unknown_tenant(client: httpx.AsyncClient) -> None:
    other = str(uuid.uuid4())
    response = await client.get(f"{LOGIN}/{other}/v2.0/.well-known/openid-configuration")
    assert_entra_error(response, 400, "invalid_tenant", 90002)
    assert f"Tenant '{other}' not found" in response.json()["error_description"]


async def test_a_client_secret_gets_an_access_token(client: httpx.AsyncClient, emu: GraphEmulator) -> None:
    before = int(time.time())
    response = await client.post(TOKEN_URL, data=secret_form())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert (body["token_type"], body["expires_in"], body["ext_expires_in"]) == ("Bearer", 3600, 3600)
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "HS256"
    payload = claims(body["access_token"])
    assert payload["aud"] == BASE
    assert payload["iss"] == f"https://sts.windows.net/{DEFAULT_TENANT_ID}/"
    assert (payload["tid"], payload["appid"]) == (DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID)
    assert sorted(payload["roles"]) == sorted(DEFAULT_APP_ROLES) == sorted([*GRAPH_ROLES, TEAMS_NUMBER_ROLE])
    assert before <= payload["iat"] == payload["nbf"] <= time.time()
    assert payload["exp"] - payload["iat"] in (3600, 3601)
    [logged] = emu.requests
    assert logged.body == {**secret_form(), "client_secret": "***"}
    assert logged.status == 200


async def test_http_basic_client_authentication_works_too(client: httpx.AsyncClient) -> None:
    form = secret_form()
    del form["client_secret"], form["client_id"]
    response = await client.post(TOKEN_URL, data=form, auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("changes", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": "0b7d2a51-9c3e-4f62-a1de-7c5b8e9f0a11"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://graph.microsoft.com/.default"}, 400, "invalid_resource", 500011),
        ({"scope": f"{BASE}/User.Read.All"}, 400, "invalid_scope", 1002012),
        ({"scope": f"{SCOPE} openid"}, 400, "invalid_scope", 70011),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ],
    ids=["wrong-secret", "unknown-client", "other-resource", "not-default", "two-scopes", "grant"],
)
async def test_token_requests_entra_refuses(
    client: httpx.AsyncClient, changes: dict[str, str], status: int, error: str, code: int
) -> None:
    assert_entra_error(await client.post(TOKEN_URL, data=secret_form(**changes)), status, error, code)


async def test_token_request_errors_without_credentials_or_with_an_unknown_tenant(
    client: httpx.AsyncClient,
) -> None:
    form = secret_form()
    del form["client_secret"]
    assert_entra_error(await client.post(TOKEN_URL, data=form), 401, "invalid_client", 7000218)
    del form["scope"]
    assert_entra_error(await client.post(TOKEN_URL, data=form), 400, "invalid_request", 900144)
    other = f"{LOGIN}/{uuid.uuid4()}/oauth2/v2.0/token"
    assert_entra_error(await client.post(other, data=secret_form()), 400, "invalid_tenant", 90002)
    assert_entra_error(await client.get(TOKEN_URL), 400, "invalid_request", 900561)


@pytest.mark.parametrize("algorithm", ["PS256", "RS256"])
async def test_a_client_assertion_signed_by_the_registered_certificate(
    client: httpx.AsyncClient, emu: GraphEmulator, credentials: tuple[Credential, Credential], algorithm: str
) -> None:
    mine, _ = credentials
    emu.register_app(CERT_APP, secret=None, certificate_pem=mine.cert_pem)
    response = await client.post(TOKEN_URL, data=assertion_form(assertion(mine, mine, algorithm=algorithm)))
    assert response.status_code == 200, response.text
    payload = claims(response.json()["access_token"])
    assert (payload["appid"], payload["appidacr"]) == (CERT_APP, "2")
    assert emu.requests[-1].body["client_assertion"] == "***"  # type: ignore[index]


@pytest.mark.parametrize(
    "case", ["other-key", "unregistered-certificate", "wrong-audience", "wrong-issuer", "expired", "garbage"]
)
async def test_client_assertions_entra_refuses(
    client: httpx.AsyncClient, emu: GraphEmulator, credentials: tuple[Credential, Credential], case: str
) -> None:
    mine, other = credentials
    emu.register_app(CERT_APP, secret=None, certificate_pem=mine.cert_pem)
    makers: dict[str, Callable[[], str]] = {
        "other-key": lambda: assertion(other, mine),  # names my certificate, signed with another key
        "unregistered-certificate": lambda: assertion(other, other, algorithm="RS256"),
        "wrong-audience": lambda: assertion(mine, mine, audience=f"{LOGIN}/common/oauth2/v2.0/token"),
        "wrong-issuer": lambda: assertion(mine, mine, issuer=DEFAULT_CLIENT_ID),
        "expired": lambda: assertion(mine, mine, lifetime_s=-60),
        "garbage": lambda: "not.a.jwt",
    }
    made = makers[case]()
    response = await client.post(TOKEN_URL, data=assertion_form(made))
    assert_entra_error(response, 401, "invalid_client", 700027)
    # A secret is no credential for an app registered with a certificate only.
    secret = {**secret_form(client_id=CERT_APP)}
    assert_entra_error(await client.post(TOKEN_URL, data=secret), 401, "invalid_client", 7000215)


def test_register_app_refuses_an_ec_certificate(emu: GraphEmulator) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(ValueError, match="RSA"):
        emu.register_app(CERT_APP, certificate_pem=certificate.public_bytes(serialization.Encoding.PEM))


# --- bearer checks ------------------------------------------------------------------------------------------


async def test_graph_refuses_missing_forged_expired_and_revoked_tokens(
    client: httpx.AsyncClient, emu: GraphEmulator
) -> None:
    user = emu.add_user(upn="a@contoso.com")
    path = f"/v1.0/users/{user}"
    forged = jwt.encode({"aud": BASE, "jti": "x", "exp": time.time() + 60}, "k" * 32, algorithm="HS256")
    emu.token_lifetime_s = -5  # born expired
    expired = await token(client)
    emu.token_lifetime_s = 3600
    revoked = await token(client)
    emu.revoke_tokens()
    for headers in ({}, {"Authorization": f"Bearer {forged}"}, {"Authorization": "Basic abc"}):
        response = await client.get(path, headers=headers)
        assert_graph_error(
            response, 401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
        )
        assert response.headers["www-authenticate"].startswith("Bearer ")
    for presented in (expired, revoked):
        response = await client.get(path, headers={"Authorization": f"Bearer {presented}"})
        assert_graph_error(response, 401, "InvalidAuthenticationToken")
    # The log names our tokens even when they no longer work, and no others.
    assert [r.token_id for r in emu.requests[-5:]] == [
        None,
        None,
        None,
        claims(expired)["jti"],
        claims(revoked)["jti"],
    ]
    fresh = await token(client)
    assert (await client.get(path, headers={"Authorization": f"Bearer {fresh}"})).status_code == 200


async def test_graph_refuses_a_token_for_another_resource(
    client: httpx.AsyncClient, emu: GraphEmulator
) -> None:
    user = emu.add_user(upn="a@contoso.com")
    arm = await client.post(TOKEN_URL, data=secret_form(scope=f"{ARM_RESOURCE}/.default"))
    assert arm.status_code == 200, arm.text
    assert claims(arm.json()["access_token"])["aud"] == ARM_RESOURCE
    assert "roles" not in claims(arm.json()["access_token"])  # Graph's roles are for Graph only
    response = await client.get(
        f"/v1.0/users/{user}", headers={"Authorization": f"Bearer {arm.json()['access_token']}"}
    )
    assert_graph_error(
        response, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
    )
    graph = await client.get(
        f"/v1.0/users/{user}", headers={"Authorization": f"Bearer {await token(client)}"}
    )
    assert graph.status_code == 200


@pytest.mark.parametrize(
    "resource",
    [LOGIN, "https://graph.microsoft.com", f"{BASE}:8443", "https://evil.example.com"],
    ids=["the-login-host", "the-real-graph", "another-port", "elsewhere"],
)
async def test_a_scope_for_a_resource_the_tenant_lacks_is_aadsts500011(
    client: httpx.AsyncClient, resource: str
) -> None:
    response = await client.post(TOKEN_URL, data=secret_form(scope=f"{resource}/.default"))
    assert_entra_error(response, 400, "invalid_resource", 500011)
    assert f"The resource principal named {resource} was not found" in response.json()["error_description"]


async def test_resources_match_without_case_or_a_trailing_slash(client: httpx.AsyncClient) -> None:
    response = await client.post(TOKEN_URL, data=secret_form(scope=f"{BASE.upper()}//.default"))
    assert response.status_code == 200, response.text
    assert claims(response.json()["access_token"])["aud"] == BASE


async def test_login_and_graph_are_two_hosts(client: httpx.AsyncClient) -> None:
    """Each host answers only its own paths, as login.microsoftonline.com and graph.microsoft.com do."""
    graph_token = await token(client)
    at_login = await client.get(f"{LOGIN}/v1.0/groups", headers={"Authorization": f"Bearer {graph_token}"})
    assert at_login.status_code == 404
    at_graph = await client.post(TOKEN_PATH, data=secret_form())  # BASE: the Graph host
    assert_graph_error(at_graph, 400, "BadRequest", f"Invalid version: {DEFAULT_TENANT_ID}")
    discovery = await client.get(f"/{DEFAULT_TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert discovery.status_code == 400


async def test_no_graph_token_is_issued_before_the_emulator_knows_where_graph_is() -> None:
    emulator = GraphEmulator()
    async with hosts_client(emulator) as client:
        response = await client.post(TOKEN_URL, data=secret_form())
    assert_entra_error(response, 400, "invalid_resource", 500011)


async def test_missing_roles_are_403(client: httpx.AsyncClient, emu: GraphEmulator) -> None:
    group = emu.add_group()
    user = emu.add_user(upn="a@contoso.com")
    emu.register_app(roles=["User.Read.All"])
    headers = {"Authorization": f"Bearer {await token(client)}", **EVENTUAL}
    members = await client.get(f"/v1.0/groups/{group}/transitiveMembers", headers=headers)
    assert_graph_error(
        members, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )
    assert (await client.get(f"/v1.0/users/{user}", headers=headers)).status_code == 200
    emu.register_app(roles=["GroupMember.Read.All"])
    headers = {"Authorization": f"Bearer {await token(client)}"}
    assert_graph_error(
        await client.get(f"/v1.0/users/{user}", headers=headers), 403, "Authorization_RequestDenied"
    )
    assert (await client.get(f"/v1.0/groups/{group}/members", headers=headers)).status_code == 200
    emu.register_app(roles=[])
    assert "roles" not in claims(await token(client))


# --- members and transitive members -----------------------------------------------------------------------


@pytest.fixture
def nested(emu: GraphEmulator) -> dict[str, Any]:
    """top -> [u1, middle -> [u2, bottom -> [u3, top (a cycle), u1 again]], device, contact, sp]."""
    top, middle, bottom = emu.add_group(display_name="Top"), emu.add_group(), emu.add_group()
    u1 = emu.add_user(upn="u1@contoso.com", business_phones=["+14155550101"])
    u2 = emu.add_user(upn="u2@contoso.com", mobile_phone="+14155550102")
    u3 = emu.add_user(upn="u3@contoso.com", account_enabled=False)
    device = emu.add_device(display_name="kiosk")
    contact = emu.add_contact(display_name="vendor", mail="v@example.com")
    sp = emu.add_service_principal(display_name="dialer")
    emu.add_member(top, u1)
    emu.add_member(top, middle)
    emu.add_member(middle, u2)
    emu.add_member(middle, bottom)
    emu.add_members(bottom, [u3, top, u1])
    emu.add_members(top, [device, contact, sp])
    return {
        "top": top,
        "middle": middle,
        "bottom": bottom,
        "users": [u1, u2, u3],
        "others": [device, contact, sp],
    }


@pytest.mark.parametrize(
    "cast", ["microsoft.graph.user", "graph.user", "Microsoft.Graph.User"], ids=["documented", "sdk", "case"]
)
async def test_transitive_members_cast_to_users(
    client: httpx.AsyncClient, auth: dict[str, str], nested: dict[str, Any], cast: str
) -> None:
    url = f"/v1.0/groups/{nested['top']}/transitiveMembers/{cast}?$count=true&$select={USER_SELECT}"
    response = await client.get(url, headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["@odata.context"] == f"{BASE}/v1.0/$metadata#users({USER_SELECT})"
    assert body["@odata.count"] == 3
    assert "@odata.nextLink" not in body
    assert ids(body["value"]) == nested["users"]  # each once, depth first, the cycle ignored
    assert body["value"][2] == {
        "@odata.type": "#microsoft.graph.user",
        "id": nested["users"][2],
        "userPrincipalName": "u3@contoso.com",
        "accountEnabled": False,
        "businessPhones": [],
        "onPremisesImmutableId": None,
    }


async def test_uncast_lists_every_member_type_and_nested_groups(
    client: httpx.AsyncClient, auth: dict[str, str], nested: dict[str, Any]
) -> None:
    top = nested["top"]
    transitive = (await client.get(f"/v1.0/groups/{top}/transitiveMembers", headers=auth)).json()
    assert transitive["@odata.context"] == f"{BASE}/v1.0/$metadata#directoryObjects"
    assert "@odata.count" not in transitive  # not asked for
    types = {item["id"]: item["@odata.type"] for item in transitive["value"]}
    u1, u2, u3 = nested["users"]
    device, contact, sp = nested["others"]
    assert list(types) == [u1, nested["middle"], u2, nested["bottom"], u3, device, contact, sp]
    assert types[nested["middle"]] == "#microsoft.graph.group"
    assert [types[o] for o in nested["others"]] == [
        "#microsoft.graph.device",
        "#microsoft.graph.orgContact",
        "#microsoft.graph.servicePrincipal",
    ]
    user = next(item for item in transitive["value"] if item["id"] == u1)
    assert set(user) == {
        "@odata.type", "id", "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
        "officeLocation", "preferredLanguage", "surname", "userPrincipalName",
    }  # fmt: skip
    direct = (await client.get(f"/v1.0/groups/{top}/members?$select=id,mail", headers=auth)).json()
    assert ids(direct["value"]) == [u1, nested["middle"], device, contact, sp]
    contact_item = next(item for item in direct["value"] if item["id"] == contact)
    assert contact_item == {
        "@odata.type": "#microsoft.graph.orgContact",
        "id": contact,
        "mail": "v@example.com",
    }
    device_item = next(item for item in direct["value"] if item["id"] == device)
    assert device_item == {"@odata.type": "#microsoft.graph.device", "id": device}


async def test_other_casts_and_the_count_segment(
    client: httpx.AsyncClient, auth: dict[str, str], nested: dict[str, Any]
) -> None:
    top = nested["top"]
    groups = await client.get(
        f"/v1.0/groups/{top}/transitiveMembers/microsoft.graph.group?$count=true", headers=auth
    )
    assert ids(groups.json()["value"]) == [nested["middle"], nested["bottom"]]
    for cast, expected in [("graph.device", 0), ("graph.orgContact", 1), ("graph.servicePrincipal", 2)]:
        response = await client.get(f"/v1.0/groups/{top}/members/{cast}?$count=true", headers=auth)
        assert ids(response.json()["value"]) == [nested["others"][expected]]
    count = await client.get(f"/v1.0/groups/{top}/transitiveMembers/graph.user/$count", headers=auth)
    assert (count.status_code, count.text) == (200, "3")
    bad = await client.get(f"/v1.0/groups/{top}/transitiveMembers/graph.nothing", headers=auth)
    assert_graph_error(bad, 400, "BadRequest", "Resource not found for the segment 'graph.nothing'.")


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, "$count=true"),
        (EVENTUAL, ""),
        (EVENTUAL, "$count=false"),
        ({"ConsistencyLevel": "session"}, "$count=true"),
    ],
    ids=["no-header", "no-count", "count-false", "other-level"],
)
async def test_a_cast_is_an_advanced_query(
    client: httpx.AsyncClient, nested: dict[str, Any], headers: dict[str, str], query: str
) -> None:
    bearer = {"Authorization": f"Bearer {await token(client)}", **headers}
    response = await client.get(
        f"/v1.0/groups/{nested['top']}/transitiveMembers/graph.user?{query}", headers=bearer
    )
    assert_graph_error(response, 400, "Request_UnsupportedQuery")


async def test_count_needs_consistency_level_eventual(
    client: httpx.AsyncClient, nested: dict[str, Any]
) -> None:
    bearer = {"Authorization": f"Bearer {await token(client)}"}
    # Without the header Graph ignores $count=true on a plain list (documented) and refuses the segment.
    plain = await client.get(f"/v1.0/groups/{nested['top']}/members?$count=true", headers=bearer)
    assert plain.status_code == 200
    assert "@odata.count" not in plain.json()
    segment = await client.get(f"/v1.0/groups/{nested['top']}/members/$count", headers=bearer)
    assert_graph_error(segment, 400, "Request_BadRequest")


async def test_select_is_case_insensitive_and_rejects_unknown_properties(
    client: httpx.AsyncClient, auth: dict[str, str], nested: dict[str, Any]
) -> None:
    url = f"/v1.0/groups/{nested['top']}/transitiveMembers/graph.user?$count=true"
    response = await client.get(
        f"{url}&$select=USERPRINCIPALNAME,id,mobilephone,userPrincipalName", headers=auth
    )
    assert response.status_code == 200
    assert list(response.json()["value"][1]) == ["@odata.type", "id", "userPrincipalName", "mobilePhone"]
    assert response.json()["value"][1]["mobilePhone"] == "+14155550102"
    bad = await client.get(f"{url}&$select=id,phone", headers=auth)
    message = "Could not find a property named 'phone' on type 'microsoft.graph.user'."
    assert_graph_error(bad, 400, "Request_BadRequest", message)
    uncast = await client.get(f"/v1.0/groups/{nested['top']}/members?$select=nope", headers=auth)
    assert "microsoft.graph.directoryObject" in uncast.json()["error"]["message"]
    unsupported = await client.get(f"{url}&$filter=accountEnabled eq true", headers=auth)
    assert_graph_error(unsupported, 400, "Request_UnsupportedQuery")


async def test_extension_attributes_and_raw_overrides(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group = emu.add_group()
    plain = emu.add_user(upn="plain@contoso.com")
    odd = emu.add_user(
        upn="odd@contoso.com",
        extension_attributes={"extensionAttribute3": "+1 415 555 0199"},
        raw={"businessPhones": "+14155550100", "accountEnabled": "yes", "surprise": 1},
    )
    emu.add_members(group, [plain, odd])
    select = "id,accountEnabled,businessPhones,onPremisesExtensionAttributes"
    url = f"/v1.0/groups/{group}/transitiveMembers/graph.user?$count=true&$select={select}"
    plain_item, odd_item = (await client.get(url, headers=auth)).json()["value"]
    assert plain_item["onPremisesExtensionAttributes"] == {
        f"extensionAttribute{i}": None for i in range(1, 16)
    }
    assert plain_item["businessPhones"] == []
    assert odd_item["onPremisesExtensionAttributes"]["extensionAttribute3"] == "+1 415 555 0199"
    assert (odd_item["businessPhones"], odd_item["accountEnabled"], odd_item["surprise"]) == (
        "+14155550100",
        "yes",
        1,
    )
    narrow = await client.get(
        f"/v1.0/groups/{group}/transitiveMembers/graph.user?$count=true&$select=id", headers=auth
    )
    assert narrow.json()["value"][1] == {"@odata.type": "#microsoft.graph.user", "id": odd, "surprise": 1}


PROFILE = {
    "department": "Support",
    "job_title": "Team Lead",
    "employee_type": "Employee",
    "company_name": "Contoso",
    "office_location": "Seattle 2F",
    "usage_location": "US",
    "country": "United States",
    "city": "Seattle",
    "mail": "ada@contoso.com",
}
PROFILE_PROPERTIES = (
    "department,jobTitle,employeeType,companyName,officeLocation,usageLocation,country,city,userType,mail,"
    "onPremisesSyncEnabled"
)


async def test_the_profile_attributes_a_scoping_filter_reads_are_served_under_select(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group = emu.add_group()
    [ada] = emu.add_users(
        [{"upn": "ada@contoso.com", "on_premises_immutable_id": "AAAAAAAAAAAAAAAAAAAAAA==", **PROFILE}]
    )
    bare = emu.add_user(upn="bare@contoso.com")
    emu.add_members(group, [ada, bare])
    url = f"/v1.0/groups/{group}/transitiveMembers/graph.user?$count=true&$select=id,{PROFILE_PROPERTIES}"
    ada_item, bare_item = (await client.get(url, headers=auth)).json()["value"]
    assert ada_item == {
        "@odata.type": "#microsoft.graph.user",
        "id": ada,
        "department": "Support",
        "jobTitle": "Team Lead",
        "employeeType": "Employee",
        "companyName": "Contoso",
        "officeLocation": "Seattle 2F",
        "usageLocation": "US",
        "country": "United States",
        "city": "Seattle",
        "userType": "Member",
        "mail": "ada@contoso.com",
        "onPremisesSyncEnabled": True,
    }
    # Unset ones read null, as in Graph; userType is "Member" unless set, and a cloud-only user is not synced.
    assert bare_item == {"@odata.type": "#microsoft.graph.user", "id": bare} | dict.fromkeys(
        PROFILE_PROPERTIES.split(",")
    ) | {"userType": "Member"}
    # Not selected, not served (strict): a filter must select what it reads.
    narrow = await client.get(f"/v1.0/users/{ada}?$select=id,department", headers=auth)
    assert narrow.json() == {
        "@odata.context": narrow.json()["@odata.context"],
        "id": ada,
        "department": "Support",
    }
    emu.update_user(ada, department="Sales", user_type="Guest", employee_type=None)
    changed = (
        await client.get(f"/v1.0/users/{ada}?$select=department,userType,employeeType", headers=auth)
    ).json()
    assert (changed["department"], changed["userType"], changed["employeeType"]) == ("Sales", "Guest", None)


async def test_select_takes_the_extension_attributes_object_not_one_attribute(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    """Graph v1.0 refuses `$select=onPremisesExtensionAttributes/extensionAttribute5` (a property path in
    $select); a filter on one extension attribute selects the whole object, which the emulator serves."""
    ada = emu.add_user(upn="ada@contoso.com", extension_attributes={"extensionAttribute7": "noagent"})
    whole = await client.get(f"/v1.0/users/{ada}?$select=onPremisesExtensionAttributes", headers=auth)
    assert whole.json()["onPremisesExtensionAttributes"]["extensionAttribute7"] == "noagent"
    path = await client.get(
        f"/v1.0/users/{ada}?$select=onPremisesExtensionAttributes/extensionAttribute7", headers=auth
    )
    message = (
        "Could not find a property named 'onPremisesExtensionAttributes/extensionAttribute7' on type "
        "'microsoft.graph.user'."
    )
    assert_graph_error(path, 400, "Request_BadRequest", message)


async def test_users_delta_reports_a_changed_profile_attribute_when_selected(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    ada, bob = emu.add_users([{"upn": "ada@contoso.com", **PROFILE}, {"upn": "bob@contoso.com", **PROFILE}])
    _, link = await delta_round(
        client, "/v1.0/users/delta()?$select=id,usageLocation&$deltatoken=latest", auth
    )
    emu.update_user(ada, usage_location="DE")
    emu.update_user(bob, city="Austin")  # not selected: not reported
    items, _ = await delta_round(client, link, auth)
    assert items == [{"id": ada, "usageLocation": "DE"}]


def test_profile_keywords_are_checked_like_the_others(emu: GraphEmulator) -> None:
    with pytest.raises(ValueError, match="department must be a string"):
        emu.add_user(upn="ada@contoso.com", department=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown user fields: favourite_colour"):
        emu.add_users([{"upn": "ada@contoso.com", "favourite_colour": "blue"}])


async def test_the_control_api_sets_profile_attributes(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await client.post(
        "/_emulator/users",
        json={"upn": "ada@contoso.com", "employee_type": "Contractor", "usage_location": "CA"},
    )
    ada = created.json()["id"]
    changed = await client.patch(
        f"/_emulator/users/{ada}", json={"usage_location": "US", "job_title": "Agent"}
    )
    assert changed.status_code == 200
    read = (
        await client.get(f"/v1.0/users/{ada}?$select=employeeType,usageLocation,jobTitle", headers=auth)
    ).json()
    assert (read["employeeType"], read["usageLocation"], read["jobTitle"]) == ("Contractor", "US", "Agent")


@pytest.mark.parametrize("top", ["0", "1000", "-1", "ten"])
async def test_top_out_of_bounds_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], nested: dict[str, Any], top: str
) -> None:
    response = await client.get(f"/v1.0/groups/{nested['top']}/members?$top={top}", headers=auth)
    assert_graph_error(response, 400, "Request_BadRequest")
    assert "Must be between 1 and 999" in response.json()["error"]["message"]


async def test_pages_follow_top_and_the_page_cap(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group = emu.add_group()
    users = emu.add_users({"upn": f"user{i}@contoso.com"} for i in range(250))
    emu.add_members(group, users)
    base = f"/v1.0/groups/{group}/transitiveMembers/graph.user?$count=true&$select=id"
    default = (await client.get(base, headers=auth)).json()
    assert (len(default["value"]), default["@odata.count"]) == (100, 250)  # Graph's default page size
    assert len((await client.get(f"{base}&$top=999", headers=auth)).json()["value"]) == 250
    assert len((await client.get(f"{base}&$top=1", headers=auth)).json()["value"]) == 1
    emu.page_cap = 7
    pages = []
    url: str | None = f"{base}&$top=999"
    while url is not None:
        body = (await client.get(url, headers=auth)).json()
        assert body["@odata.count"] == 250  # on every page
        pages.append(ids(body["value"]))
        url = body.get("@odata.nextLink")
    assert [len(p) for p in pages] == [7] * 35 + [5]
    assert [i for p in pages for i in p] == users


async def test_paging_a_big_nested_group_returns_every_user_once(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    built = build_tenant(emu, TenantSpec(users=3000, nested_groups=4, non_users=5))
    group = built.top_group_id
    url = f"/v1.0/groups/{group}/transitiveMembers/graph.user?$count=true&$top=999&$select={USER_SELECT}"
    items = await read_all(client, url, auth)
    assert len(items) == 3000
    assert sorted(ids(items)) == sorted(built.user_ids)
    all_members = await read_all(
        client, f"/v1.0/groups/{built.top_group_id}/transitiveMembers?$top=500", auth
    )
    assert len(all_members) == 3000 + 4 + 5
    assert len(set(ids(all_members))) == len(all_members)


async def test_paging_survives_membership_changes_between_pages(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group = emu.add_group()
    users = emu.add_users({"upn": f"user{i}@contoso.com"} for i in range(30))
    emu.add_members(group, users)
    emu.page_cap = 10
    first = (await client.get(f"/v1.0/groups/{group}/members?$select=id", headers=auth)).json()
    emu.remove_member(group, users[0])  # earlier pages shrink: the next page must not skip anyone
    rest = await read_all(client, first["@odata.nextLink"], auth)
    assert ids(first["value"]) + ids(rest) == users


async def test_malformed_or_foreign_skiptokens_are_400(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group, other = emu.add_group(), emu.add_group()
    emu.add_members(group, emu.add_users({"upn": f"u{i}@contoso.com"} for i in range(3)))
    emu.page_cap = 1
    next_link = (await client.get(f"/v1.0/groups/{group}/members", headers=auth)).json()["@odata.nextLink"]
    token = parse_qs(urlsplit(next_link).query)["$skiptoken"][0]
    for url in (
        f"/v1.0/groups/{group}/members?$skiptoken=garbage",
        f"/v1.0/groups/{group}/members?$skiptoken={token[:-2]}xx",
        f"/v1.0/groups/{other}/members?$skiptoken={token}",
    ):
        assert_graph_error(await client.get(url, headers=auth), 400, "Request_BadRequest")


async def test_unknown_and_hidden_groups(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    missing = str(uuid.uuid4())
    response = await client.get(
        f"/v1.0/groups/{missing}/transitiveMembers/graph.user?$count=true", headers=auth
    )
    message = f"Resource '{missing}' does not exist or one of its queried reference-property objects are "
    message += "not present."
    assert_graph_error(response, 404, "Request_ResourceNotFound", message)
    user = emu.add_user(upn="u@contoso.com")
    not_a_group = await client.get(f"/v1.0/groups/{user}/members", headers=auth)
    assert_graph_error(not_a_group, 404, "Request_ResourceNotFound")
    hidden = emu.add_group()
    emu.deny_group(hidden)
    denied = await client.get(f"/v1.0/groups/{hidden}/transitiveMembers/graph.user?$count=true", headers=auth)
    assert_graph_error(denied, 403, "Authorization_RequestDenied")
    emu.register_app(roles=[*GRAPH_ROLES, "Member.Read.Hidden"])
    privileged = {"Authorization": f"Bearer {await token(client)}", **EVENTUAL}
    allowed = await client.get(
        f"/v1.0/groups/{hidden}/transitiveMembers/graph.user?$count=true", headers=privileged
    )
    assert allowed.status_code == 200


async def test_get_user_by_id_or_upn(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    guid = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38"
    immutable = base64.b64encode(uuid.UUID(guid).bytes_le).decode()
    user = emu.add_user(upn="Jane@contoso.com", display_name="Jane", on_premises_immutable_id=immutable)
    select = "id,onPremisesImmutableId,onPremisesSyncEnabled"
    response = await client.get(f"/v1.0/users/{user}?$select={select}", headers=auth)
    assert response.json() == {
        "@odata.context": f"{BASE}/v1.0/$metadata#users({select})/$entity",
        "id": user,
        "onPremisesImmutableId": "1wfM9xV8fUSHbcAbDlqeOA==",
        "onPremisesSyncEnabled": True,
    }
    by_upn = await client.get("/v1.0/users/jane@contoso.com", headers=auth)
    assert (by_upn.json()["id"], by_upn.json()["displayName"]) == (user, "Jane")
    missing = await client.get(f"/v1.0/users/{uuid.uuid4()}", headers=auth)
    assert_graph_error(missing, 404, "Request_ResourceNotFound")
    unknown_path = await client.get("/v1.0/teams", headers=auth)
    assert_graph_error(unknown_path, 400, "BadRequest")
    assert_graph_error(await client.delete(f"/v1.0/users/{user}", headers=auth), 405, "Request_BadRequest")


# --- delta queries ------------------------------------------------------------------------------------------


async def delta_round(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[list[Any], str]:
    """All pages of one delta round: (items, deltaLink)."""
    items: list[Any] = []
    next_url: str | None = url
    while True:
        assert next_url is not None
        response = await client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            delta_link = body["@odata.deltaLink"]
            assert isinstance(delta_link, str)
            assert delta_link.startswith(f"{BASE}/v1.0/")
            return items, delta_link
        next_url = body["@odata.nextLink"]


def members_delta(items: list[Any], group_id: str) -> list[dict[str, Any]]:
    return [m for item in items if item["id"] == group_id for m in item.get("members@delta", [])]


async def test_groups_delta_reports_direct_membership_changes(
    client: httpx.AsyncClient, auth: dict[str, str], nested: dict[str, Any], emu: GraphEmulator
) -> None:
    top, middle = nested["top"], nested["middle"]
    u1, u2, _ = nested["users"]
    items, link = await delta_round(client, "/v1.0/groups/delta()?$select=members,displayName", auth)
    assert {item["id"] for item in items} == {top, middle, nested["bottom"]}
    top_item = next(item for item in items if item["id"] == top)
    assert top_item["displayName"] == "Top"
    assert members_delta(items, top) == [
        {"@odata.type": "#microsoft.graph.user", "id": u1},
        {"@odata.type": "#microsoft.graph.group", "id": middle},
        {"@odata.type": "#microsoft.graph.device", "id": nested["others"][0]},
        {"@odata.type": "#microsoft.graph.orgContact", "id": nested["others"][1]},
        {"@odata.type": "#microsoft.graph.servicePrincipal", "id": nested["others"][2]},
    ]

    unchanged, link = await delta_round(client, link, auth)
    assert unchanged == []

    newcomer = emu.add_user(upn="new@contoso.com")
    emu.add_member(top, newcomer)
    emu.remove_member(top, u1)
    emu.add_member(middle, u1)  # a nested change: reported on middle, never on top
    emu.remove_member(middle, u2)
    emu.add_member(middle, u2)  # gone and back: no net change
    items, link = await delta_round(client, link, auth)
    assert sorted(item["id"] for item in items) == sorted([top, middle])
    assert members_delta(items, top) == [
        {"@odata.type": "#microsoft.graph.user", "id": newcomer},
        {"@odata.type": "#microsoft.graph.user", "id": u1, "@removed": {"reason": "deleted"}},
    ]
    assert members_delta(items, middle) == [{"@odata.type": "#microsoft.graph.user", "id": u1}]

    emu.delete_user(newcomer)
    doomed = emu.add_group()
    items, link = await delta_round(client, link, auth)
    assert members_delta(items, top) == [
        {"@odata.type": "#microsoft.graph.user", "id": newcomer, "@removed": {"reason": "deleted"}}
    ]
    assert any(item["id"] == doomed for item in items)
    emu.delete_group(doomed)
    items, _ = await delta_round(client, link, auth)
    assert items == [{"id": doomed, "@removed": {"reason": "changed"}}]


async def test_groups_delta_filter_paging_and_expiry(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    wanted, big, ignored = emu.add_group(), emu.add_group(), emu.add_group()
    users = emu.add_users({"upn": f"u{i}@contoso.com"} for i in range(25))
    emu.add_members(wanted, users[:3])
    emu.add_members(big, users)
    emu.add_members(ignored, users[:5])
    emu.page_cap = 10
    url = f"/v1.0/groups/delta?$select=members&$filter=id eq '{wanted}' or id eq '{big}'"
    items, link = await delta_round(client, url, auth)
    assert {item["id"] for item in items} == {wanted, big}
    assert [m["id"] for m in members_delta(items, big)] == users  # split over pages, in order
    assert set(items[0]) == {"id", "members@delta"}

    emu.add_member(ignored, emu.add_user(upn="x@contoso.com"))
    assert (await delta_round(client, link, auth))[0] == []  # outside the filter

    emu.expire_delta_links()
    gone = await client.get(link, headers=auth)
    assert_graph_error(gone, 410, "SyncStateNotFound")
    bad_filter = await client.get("/v1.0/groups/delta?$filter=displayName eq 'x'", headers=auth)
    assert_graph_error(bad_filter, 400, "Request_UnsupportedQuery")
    garbage = await client.get("/v1.0/groups/delta?$deltatoken=garbage", headers=auth)
    assert_graph_error(garbage, 400, "Request_BadRequest")


async def test_delta_latest_starts_from_now(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group = emu.add_group()
    emu.add_member(group, emu.add_user(upn="old@contoso.com"))
    items, link = await delta_round(client, "/v1.0/groups/delta?$select=members&$deltatoken=latest", auth)
    assert items == []
    newcomer = emu.add_user(upn="new@contoso.com")
    emu.add_member(group, newcomer)
    items, _ = await delta_round(client, link, auth)
    assert members_delta(items, group) == [{"@odata.type": "#microsoft.graph.user", "id": newcomer}]


async def test_users_delta_reports_selected_changes_and_deletions(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    users = emu.add_users(
        {"upn": f"u{i}@contoso.com", "business_phones": [f"+1415555010{i}"]} for i in range(5)
    )
    emu.page_cap = 2
    items, link = await delta_round(
        client, "/v1.0/users/delta()?$select=id,businessPhones,accountEnabled", auth
    )
    assert ids(items) == users
    assert items[0] == {"id": users[0], "businessPhones": ["+14155550100"], "accountEnabled": True}

    emu.update_user(users[1], business_phones=["+14155550199"])
    emu.update_user(users[2], display_name="not selected")
    emu.update_user(users[3], account_enabled=True)  # no change at all
    emu.delete_user(users[4])
    added = emu.add_user(upn="new@contoso.com")
    items, link = await delta_round(client, link, auth)
    assert items == [
        {"id": users[1], "businessPhones": ["+14155550199"], "accountEnabled": True},
        {"id": added, "businessPhones": [], "accountEnabled": True},
        {"id": users[4], "@removed": {"reason": "changed"}},
    ]
    assert (await delta_round(client, link, auth))[0] == []
    emu.reset()
    assert_graph_error(await client.get(link, headers=auth), 410, "SyncStateNotFound")


# --- faults -------------------------------------------------------------------------------------------------


async def test_scripted_faults_look_like_graph_failures(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group = emu.add_group()
    emu.add_members(group, emu.add_users({"upn": f"u{i}@contoso.com"} for i in range(3)))
    emu.page_cap = 1
    path = f"/v1.0/groups/{group}/members"
    emu.inject(ScriptedFault("throttle", retry_after_s=1.5, path_contains="skiptoken"))
    emu.inject(ScriptedFault("status", status=503, method="GET", times=2))
    for _ in range(2):
        assert_graph_error(await client.get(path, headers=auth), 503, "serviceNotAvailable")
    first = await client.get(path, headers=auth)
    assert first.status_code == 200
    throttled = await client.get(first.json()["@odata.nextLink"], headers=auth)
    assert_graph_error(throttled, 429, "TooManyRequests")
    assert throttled.headers["retry-after"] == "2"
    emu.inject(ScriptedFault("drop", path_contains="/members"))
    with pytest.raises(httpx.TransportError):
        await client.get(path, headers=auth)
    emu.inject(ScriptedFault("drop_after"))
    with pytest.raises(httpx.TransportError):
        await client.get(path, headers=auth)
    emu.inject(ScriptedFault("delay_after", delay_s=0.05))
    started = time.monotonic()
    assert (await client.get(path, headers=auth)).status_code == 200
    assert time.monotonic() - started >= 0.05
    assert [(r.status, r.fault) for r in emu.requests[1:]] == [
        (503, "error"),
        (503, "error"),
        (200, None),
        (429, "throttle"),
        (None, "drop"),
        (None, "drop_after"),
        (200, "delay_after"),
    ]


async def test_faults_spare_the_login_endpoints_unless_asked(
    client: httpx.AsyncClient, emu: GraphEmulator
) -> None:
    emu.inject(ScriptedFault("status", status=500))
    emu.faults = Faults(error_rate=1.0)
    assert (await client.post(TOKEN_URL, data=secret_form())).status_code == 200
    emu.faults = Faults(error_rate=1.0, auth_too=True)
    failed = await client.post(TOKEN_URL, data=secret_form())
    assert_entra_error(failed, 503, "temporarily_unavailable", 90033)
    emu.faults = Faults()
    emu.inject(ScriptedFault("throttle", path_contains="/oauth2/"))
    throttled = await client.post(TOKEN_URL, data=secret_form())
    assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "1")
    assert (await client.post(TOKEN_URL, data=secret_form())).status_code == 200


async def test_random_faults_are_reproducible_per_seed(auth: dict[str, str]) -> None:
    async def statuses(seed: int) -> list[int]:
        emulator = GraphEmulator(seed=seed, graph_resource=BASE)
        group = emulator.add_group()
        emulator.faults = Faults(error_rate=0.3, throttle_rate=0.3, retry_after_s=2)
        async with hosts_client(emulator) as client:
            headers = {"Authorization": f"Bearer {await token(client)}"}
            return [
                (await client.get(f"/v1.0/groups/{group}/members", headers=headers)).status_code
                for _ in range(30)
            ]

    first, again, other = await statuses(7), await statuses(7), await statuses(8)
    assert first == again
    assert first != other
    assert set(first) == {200, 429, 503}


# --- the request log and the control API --------------------------------------------------------------------


async def test_the_request_log_records_what_graph_received(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator, nested: dict[str, Any]
) -> None:
    await client.get(
        f"/v1.0/groups/{nested['top']}/transitiveMembers/graph.user",
        params={"$select": "id,mail", "$count": "true"},
        headers=auth,
    )
    token_request, page = emu.requests
    assert token_request.body["client_secret"] == "***"  # type: ignore[index]
    assert (page.method, page.path, page.status) == (
        "GET",
        f"/v1.0/groups/{nested['top']}/transitiveMembers/graph.user",
        200,
    )
    assert page.query == {"$select": "id,mail", "$count": "true"}
    assert page.consistency_level == "eventual"
    assert page.token_id == claims(auth["Authorization"].split()[1])["jti"]
    assert page.seq == 2
    emu.clear_requests()
    assert emu.requests == []


async def test_control_api(client: httpx.AsyncClient, emu: GraphEmulator) -> None:
    async def control(method: str, path: str, body: object = None) -> Any:
        response = await client.request(method, f"/_emulator{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    built = await control("POST", "/tenant", {"users": 20, "nested_groups": 2, "seed": 3})
    assert len(built["user_ids"]) == 20
    group = (await control("POST", "/groups", {"display_name": "Extra"}))["id"]
    user = (await control("POST", "/users", {"upn": "c@contoso.com", "business_phones": ["+14155550123"]}))[
        "id"
    ]
    many = (await control("POST", "/users", [{"upn": "d@contoso.com"}, {"upn": "e@contoso.com"}]))["ids"]
    device = (await control("POST", "/devices", {"display_name": "kiosk"}))["id"]
    await control("POST", "/members", {"group_id": group, "member_ids": [user, *many, device]})
    await control("DELETE", "/members", {"group_id": group, "member_id": many[1]})
    await control("PATCH", f"/users/{user}", {"account_enabled": False})
    await control("PUT", "/page_cap", {"page_cap": 2})
    await control("PUT", "/token_lifetime", {"seconds": 120})
    assert (emu.page_cap, emu.token_lifetime_s) == (2, 120)
    await control("PUT", "/faults", {"latency_s": 0.0, "throttle_rate": 0.0})
    await control("POST", "/inject", {"kind": "status", "status": 502, "path_contains": "/members"})

    headers = {"Authorization": f"Bearer {await token(client)}"}
    assert claims(headers["Authorization"].split()[1])["exp"] - int(time.time()) <= 121
    assert_graph_error(await client.get(f"/v1.0/groups/{group}/members", headers=headers), 502, "BadGateway")
    listed = await read_all(client, f"/v1.0/groups/{group}/members?$select=id,accountEnabled", headers)
    assert [(item["id"], item.get("accountEnabled")) for item in listed] == [
        (user, False),
        (many[0], True),
        (device, True),
    ]
    logged = await control("GET", "/requests")
    assert [r["status"] for r in logged] == [200, 502, 200, 200]
    assert all(not r["path"].startswith("/_emulator") for r in logged)

    await control("POST", "/revoke")
    assert (await client.get(f"/v1.0/users/{user}", headers=headers)).status_code == 401
    await control("POST", "/expire_delta_links")
    await control("POST", "/deny", {"group_id": group})
    await control("DELETE", "/requests")
    assert emu.requests == []
    bad = await client.post("/_emulator/users", json={"upn": "f@contoso.com", "colour": "blue"})
    assert (bad.status_code, "colour" in bad.json()["error"]) == (400, True)
    taken = await client.post("/_emulator/users", json={"upn": "c@contoso.com"})
    assert taken.status_code == 409

    await control("POST", "/reset")
    assert (emu.page_cap, emu.token_lifetime_s) == (999, 3600.0)
    # reset clears revocations and re-registers the default app; the directory is empty again.
    assert (await client.get(f"/v1.0/users/{user}", headers=headers)).status_code == 404
    assert emu.requests[0].seq == 1


def test_fixture_methods_refuse_what_the_directory_would(emu: GraphEmulator) -> None:
    group = emu.add_group()
    user = emu.add_user(upn="a@contoso.com")
    with pytest.raises(ValueError, match="taken"):
        emu.add_user(upn="A@contoso.com")
    with pytest.raises(ValueError, match="exists"):
        emu.add_user(id=user, upn="b@contoso.com")
    with pytest.raises(ValueError, match="no directory object"):
        emu.add_member(group, str(uuid.uuid4()))
    with pytest.raises(ValueError, match="itself"):
        emu.add_member(group, group)
    with pytest.raises(ValueError, match="extension"):
        emu.add_user(upn="c@contoso.com", extension_attributes={"extensionAttribute16": "x"})
    with pytest.raises(ValueError, match="not a direct member"):
        emu.remove_member(group, user)
    with pytest.raises(ValueError, match="unknown property"):
        emu.update_user(user, phone="x")
    with pytest.raises(ValueError, match="taken"):
        emu.add_users([{"upn": "new1@contoso.com"}, {"upn": "a@contoso.com"}])
    emu.add_user(upn="new1@contoso.com")  # the failed bulk insert left nothing behind
    emu.add_member(group, user)
    emu.add_member(group, user)  # already a member: nothing to do


# --- build_tenant -------------------------------------------------------------------------------------------


def tenant_snapshot(emu: GraphEmulator, built: BuiltTenant) -> list[Any]:
    objects = emu._objects
    return [
        (
            object_id,
            objects[object_id].props.get("userPrincipalName"),
            objects[object_id].props.get("businessPhones"),
        )
        for object_id in built.user_ids
    ]


def test_build_tenant_counts(emu: GraphEmulator) -> None:
    spec = TenantSpec(users=500, nested_groups=3, no_phone=4, bad_phone=5, disabled=6, with_extension=2)
    built = build_tenant(emu, spec)
    assert len(built.user_ids) == len(set(built.user_ids)) == 500
    assert len(built.nested_group_ids) == 3
    assert [len(x) for x in (built.no_phone_user_ids, built.bad_phone_user_ids, built.disabled_user_ids)] == [
        4,
        5,
        6,
    ]
    assert len(built.extension_user_ids) == 2
    assert len(built.non_user_ids) == 3
    users: list[dict[str, Any]] = [emu._objects[object_id].props for object_id in built.user_ids]
    phones = [p.get("businessPhones", []) + ([p["mobilePhone"]] if "mobilePhone" in p else []) for p in users]
    assert sum(1 for p in phones if not p) == 4
    assert sum(1 for p in users if p["accountEnabled"] is False) == 6
    assert sum(1 for p in phones for n in p if " x" in n) == 2
    national = sum(1 for p in phones if p and p[0].startswith("("))
    assert 0.2 < national / 500 < 0.4
    numbers = [n for p in phones for n in p]
    assert len(set(numbers)) >= len(numbers) - 5  # garbage may repeat; real numbers never do
    assert sum(1 for p in users if "onPremisesImmutableId" in p) == 450
    guid = uuid.UUID(bytes_le=base64.b64decode(str(users[0]["onPremisesImmutableId"])))
    assert str(guid) != ""
    closure = emu._member_ids(built.top_group_id, transitive=True, kind=None)
    assert set(built.user_ids) <= set(closure)
    assert set(built.nested_group_ids) | set(built.non_user_ids) <= set(closure)
    direct = emu._member_ids(built.top_group_id, transitive=False, kind=None)
    assert built.nested_group_ids[-1] not in direct  # the deep one hangs under another nested group
    assert len(direct) < 500 / 2


def test_build_tenant_gives_profiles_on_request_without_changing_the_rest() -> None:
    plain_emu, profiled_emu = GraphEmulator(), GraphEmulator()
    plain = build_tenant(plain_emu, TenantSpec(users=60, seed=7))
    profiled = build_tenant(profiled_emu, TenantSpec(users=60, seed=7, profiles=True))
    assert (plain.profiles, plain.no_agent_user_ids) == ({}, [])
    # The same users, numbers and groups: profiles only add attributes.
    assert profiled.user_ids == plain.user_ids
    assert tenant_snapshot(profiled_emu, profiled) == tenant_snapshot(plain_emu, plain)
    props = {object_id: profiled_emu._objects[object_id].props for object_id in profiled.user_ids}
    for object_id, given in profiled.profiles.items():
        assert props[object_id]["employeeType"] == given["employee_type"]
        assert props[object_id]["usageLocation"] == given["usage_location"]
        assert props[object_id]["mail"] == props[object_id]["userPrincipalName"]
    kinds = {(p["usageLocation"], p["employeeType"], p["jobTitle"]) for p in props.values()}
    assert {k[0] for k in kinds} == {"US", "CA", "GB", "DE"}
    assert {k[1] for k in kinds} == {"Employee", "Contractor"}
    assert {k[2] for k in kinds} == {"Agent", "Team Lead", "Manager"}
    assert len(profiled.no_agent_user_ids) == 3  # users 11, 31 and 51
    for object_id in profiled.no_agent_user_ids:
        extensions = props[object_id]["onPremisesExtensionAttributes"]
        assert isinstance(extensions, dict)
        assert extensions["extensionAttribute7"] == "noagent"
    # Users 3, 10, 17, ... keep the extension attributes every tenant has, with extensionAttribute7 added.
    assert sum(1 for p in props.values() if "onPremisesExtensionAttributes" in p) > 3


def test_build_tenant_is_deterministic_per_seed() -> None:
    first, again, other = GraphEmulator(seed=1), GraphEmulator(seed=2), GraphEmulator(seed=1)
    spec = TenantSpec(users=300, seed=42)
    built_first, built_again = build_tenant(first, spec), build_tenant(again, spec)
    assert built_first == built_again
    assert tenant_snapshot(first, built_first) == tenant_snapshot(again, built_again)
    built_other = build_tenant(other, TenantSpec(users=300, seed=43))
    assert built_other.user_ids != built_first.user_ids
    with pytest.raises(ValueError, match=r"exists|taken"):
        build_tenant(first, spec)  # the same IDs again: reset() first
    with pytest.raises(ValueError, match="do not fit"):
        build_tenant(GraphEmulator(), TenantSpec(users=5, no_phone=3, bad_phone=3))


# The default tenant as build_tenant made it before Teams numbers existed: its users must not change.
DEFAULT_TENANT_SHA256 = "b3f4ab770df40f906ebf686666ceb0c6cdd3ec30708d2c650a5776055a3c0cdd"


def tenant_fingerprint(emu: GraphEmulator, built: BuiltTenant) -> str:
    props = [emu._objects[object_id].props for object_id in built.user_ids]
    users = [
        [object_id, p.get("userPrincipalName"), p.get("businessPhones"), p.get("mobilePhone")]
        for object_id, p in zip(built.user_ids, props, strict=True)
    ]
    document = [users, built.top_group_id, built.nested_group_ids, built.non_user_ids]
    return hashlib.sha256(json.dumps(document).encode()).hexdigest()


def test_build_tenant_without_teams_numbers_is_unchanged(emu: GraphEmulator) -> None:
    built = build_tenant(emu, TenantSpec())
    assert tenant_fingerprint(emu, built) == DEFAULT_TENANT_SHA256
    assert (built.teams_numbers, built.teams_alternate_numbers) == ({}, {})
    assert emu.number_assignments() == []
    explicit = GraphEmulator()
    assert build_tenant(explicit, TenantSpec(teams_share=0.0, teams_extra=0)) == built
    assert tenant_snapshot(explicit, built) == tenant_snapshot(emu, built)


def e164(raw: str) -> str:
    """A generated US phone ("(415) 555-0123", "+1 415 555 0123", "+14155550123") in E.164."""
    digits = re.sub(r"\D", "", raw)
    return f"+{digits}" if raw.startswith("+") else f"+1{digits}"


def test_build_tenant_with_teams_numbers(emu: GraphEmulator) -> None:
    spec = TenantSpec(users=400, teams_share=0.5, teams_extra=7, seed=9)
    built = build_tenant(emu, spec)
    plain = GraphEmulator()
    built_plain = build_tenant(plain, TenantSpec(users=400, seed=9))
    # The users are the same as without Teams numbers.
    assert built.user_ids == built_plain.user_ids
    assert tenant_snapshot(emu, built) == tenant_snapshot(plain, built_plain)

    special = set(built.no_phone_user_ids + built.bad_phone_user_ids + built.disabled_user_ids)
    special |= set(built.extension_user_ids)
    props: dict[str, dict[str, Any]] = {
        object_id: emu._objects[object_id].props for object_id in built.user_ids
    }
    eligible = [u for u in built.user_ids if u not in special and props[u].get("businessPhones")]
    assert len(built.teams_numbers) == round(len(eligible) / 2)
    assert set(built.teams_numbers) <= set(eligible)
    same = [u for u, number in built.teams_numbers.items() if number == e164(props[u]["businessPhones"][0])]
    assert len(same) == len(built.teams_numbers) // 2
    own_numbers = {
        e164(n)
        for p in props.values()
        for n in [*p.get("businessPhones", []), p.get("mobilePhone")]
        if n and re.fullmatch(r"[+() 0-9-]{12,}", n)
    }
    different = [n for u, n in built.teams_numbers.items() if u not in same]
    assert not own_numbers & set(different)
    assert len(built.teams_alternate_numbers) == 7
    assert set(built.teams_alternate_numbers) <= set(built.teams_numbers)
    every = [*built.teams_numbers.values(), *built.teams_alternate_numbers.values()]
    assert len(set(every)) == len(every)
    assert all(re.fullmatch(r"\+1[2-9][0-9]{9}", n) for n in every)

    records = emu.number_assignments()
    assert {
        r["assignmentTargetId"]: r["telephoneNumber"] for r in records if r["assignmentCategory"] == "primary"
    } == (built.teams_numbers)
    assert {
        r["assignmentTargetId"]: r["telephoneNumber"]
        for r in records
        if r["assignmentCategory"] == "alternate"
    } == built.teams_alternate_numbers
    assert {(r["assignmentStatus"], r["activationState"]) for r in records} == {("userAssigned", "activated")}
    assert {r["assignmentTargetId"] for r in records} <= set(built.user_ids)
    # Deterministic per seed, whatever the emulator's seed.
    other = GraphEmulator(seed=3)
    assert build_tenant(other, spec) == built
    assert other.number_assignments() == records
    with pytest.raises(ValueError, match="teams_extra"):
        build_tenant(GraphEmulator(), TenantSpec(users=20, teams_share=0.1, teams_extra=5))
    with pytest.raises(ValueError, match="teams_share"):
        build_tenant(GraphEmulator(), TenantSpec(users=20, teams_share=1.5))


async def test_the_control_api_builds_tenants_with_teams_numbers(
    client: httpx.AsyncClient, emu: GraphEmulator
) -> None:
    response = await client.post(
        "/_emulator/tenant", json={"users": 50, "teams_share": 1.0, "teams_extra": 2}
    )
    assert response.status_code == 200, response.text
    built = response.json()
    assert len(built["teams_numbers"]) == len(emu.number_assignments()) - 2 > 0
    assert len(built["teams_alternate_numbers"]) == 2


# --- Teams telephone number assignments ---------------------------------------------------------------------

NUMBERS = "/v1.0/admin/teams/telephoneNumberManagement/numberAssignments"
NUMBERS_CONTEXT = f"{BASE}/v1.0/$metadata#admin/teams/telephoneNumberManagement/numberAssignments"
NUMBER_PROPERTIES = {
    "id",
    "telephoneNumber",
    "operatorId",
    "numberType",
    "activationState",
    "assignmentCategory",
    "assignmentStatus",
    "assignmentTargetId",
    "capabilities",
    "city",
    "civicAddressId",
    "isoCountryCode",
    "locationId",
    "networkSiteId",
    "numberSource",
    "portInStatus",
    "reverseNumberLookupOptions",
    "supportedCustomerActions",
}


def us_number(n: int) -> str:
    return f"+1425555{n:04d}"


@pytest.fixture
def numbers(emu: GraphEmulator) -> dict[str, str]:
    """Six assignments of every kind (telephone number -> id), assigned out of order."""
    return {
        number: emu.assign_number(number, target, **options)
        for number, target, options in [
            ("+14255550105", "user-5", {"category": "alternate", "number_type": "directRouting"}),
            ("+14255550101", "user-1", {}),
            ("+14255550104", None, {"status": "unassigned", "number_type": "callingPlan"}),
            ("+14255550103", "user-3", {"category": "private"}),
            ("+14255550102;ext=12", "user-2", {"number_type": "directRouting"}),
            ("+14255550100", "conf-1", {"status": "conferenceAssigned", "number_type": "callingPlan"}),
        ]
    }


async def list_numbers(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    response = await client.get(NUMBERS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert "@odata.nextLink" not in response.json()
    value: list[dict[str, Any]] = response.json()["value"]
    return value


def telephone_numbers(items: list[dict[str, Any]]) -> list[str]:
    return [item["telephoneNumber"] for item in items]


async def test_number_assignments_list_500_a_page_in_ascending_order_and_page_by_skip(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    order = list(range(501))
    order.reverse()
    emu.assign_numbers({"telephone_number": us_number(n), "target_id": f"user-{n}"} for n in order)
    first = await client.get(NUMBERS, headers=auth)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["@odata.context"] == NUMBERS_CONTEXT
    assert len(body["value"]) == 500
    assert telephone_numbers(body["value"]) == [us_number(n) for n in range(500)]
    assert set(body["value"][0]) == NUMBER_PROPERTIES
    assert body["value"][0] | {"id": "x"} == {
        "id": "x",
        "telephoneNumber": us_number(0),
        "operatorId": body["value"][0]["operatorId"],
        "numberType": "operatorConnect",
        "activationState": "activated",
        "capabilities": ["userAssignment"],
        "locationId": None,
        "civicAddressId": None,
        "networkSiteId": None,
        "assignmentTargetId": "user-0",
        "assignmentCategory": "primary",
        "portInStatus": None,
        "assignmentStatus": "userAssigned",
        "isoCountryCode": "US",
        "city": None,
        "numberSource": "online",
        "supportedCustomerActions": ["locationUpdate"],
        "reverseNumberLookupOptions": [],
    }
    assert body["@odata.nextLink"] == f"{BASE}{NUMBERS}?$skip=500"
    last = await client.get(body["@odata.nextLink"], headers=auth)
    assert telephone_numbers(last.json()["value"]) == [us_number(500)]
    assert "@odata.nextLink" not in last.json()
    assert [(r.path, r.query, r.status) for r in emu.requests[1:]] == [
        (NUMBERS, {}, 200),
        (NUMBERS, {"$skip": "500"}, 200),
    ]


async def test_number_assignment_pages_follow_top_and_the_page_cap_keeping_the_query(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    emu.assign_numbers({"telephone_number": us_number(n), "target_id": f"u{n}"} for n in range(10))
    emu.assign_number(us_number(99), None, status="unassigned")
    emu.page_cap = 3
    url: str | None = f"{NUMBERS}?$filter=assignmentStatus eq 'userAssigned'&$top=1000"
    pages: list[list[str]] = []
    while url is not None:
        response = await client.get(url, headers=auth)
        assert response.status_code == 200, response.text
        pages.append(telephone_numbers(response.json()["value"]))
        url = response.json().get("@odata.nextLink")
        if url is not None:
            query = parse_qs(urlsplit(url).query)
            assert url.startswith(f"{BASE}{NUMBERS}?")
            assert query["$filter"] == ["assignmentStatus eq 'userAssigned'"]
            assert query["$top"] == ["1000"]
    assert pages == [[us_number(n) for n in range(start, min(start + 3, 10))] for start in (0, 3, 6, 9)]
    assert [r.query.get("$skip") for r in emu.requests[1:]] == [None, "3", "6", "9"]
    emu.page_cap = 999
    response = await client.get(NUMBERS, params={"$top": "4", "$skip": "8"}, headers=auth)
    assert telephone_numbers(response.json()["value"]) == [us_number(8), us_number(9), us_number(99)]
    assert "@odata.nextLink" not in response.json()
    beyond = await client.get(NUMBERS, params={"$skip": "50"}, headers=auth)
    assert beyond.json()["value"] == []


@pytest.mark.parametrize(
    ("option", "value"), [("$top", "0"), ("$top", "1001"), ("$top", "ten"), ("$skip", "-1")]
)
async def test_number_assignment_top_and_skip_out_of_bounds_are_refused(
    client: httpx.AsyncClient, auth: dict[str, str], option: str, value: str
) -> None:
    response = await client.get(NUMBERS, params={option: value}, headers=auth)
    assert_graph_error(response, 400, "Request_BadRequest")
    assert f"'{value}'" in response.json()["error"]["message"]


@pytest.mark.parametrize("top", ["1", "1000", "500"])
async def test_number_assignment_top_within_bounds(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator, top: str
) -> None:
    emu.assign_numbers({"telephone_number": us_number(n), "target_id": f"u{n}"} for n in range(2))
    # The documentation writes $Top: option names are case-insensitive.
    response = await client.get(NUMBERS, params={"$Top": top}, headers=auth)
    assert response.status_code == 200, response.text
    assert len(response.json()["value"]) == min(int(top), 2)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("assignmentStatus eq 'unassigned'", ["+14255550104"]),
        ("ASSIGNMENTSTATUS EQ 'USERASSIGNED'", [
            "+14255550101", "+14255550102;ext=12", "+14255550103", "+14255550105",
        ]),
        ("assignmentCategory eq 'primary' and numberType eq 'DirectRouting'", ["+14255550102;ext=12"]),
        ("assignmentCategory eq 'alternate' AND numberType eq 'directRouting'", ["+14255550105"]),
        ("assignmentCategory eq 'alternate' and numberType eq 'operatorConnect'", []),
        (
            "(assignmentCategory eq 'primary' or assignmentCategory eq 'private') "
            "and assignmentStatus eq 'userAssigned'",
            ["+14255550101", "+14255550102;ext=12", "+14255550103"],
        ),
        ("( numberType eq 'callingPlan' OR numberType eq 'directRouting' )", [
            "+14255550100", "+14255550102;ext=12", "+14255550104", "+14255550105",
        ]),
        ("assignmentTargetId eq 'user-3'", ["+14255550103"]),
        ("telephoneNumber eq '+14255550101'", ["+14255550101"]),
        ("capabilities/any(c:c eq 'conferenceAssignment') and numberType eq 'callingPlan'", ["+14255550100"]),
        ("isoCountryCode eq 'us' and assignmentCategory eq 'private'", ["+14255550103"]),
    ],
)  # fmt: skip
async def test_number_assignment_filters(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    numbers: dict[str, str],
    expression: str,
    expected: list[str],
) -> None:
    assert telephone_numbers(await list_numbers(client, auth, **{"$filter": expression})) == expected


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("id eq 'x'", "except id and city"),
        ("city eq 'Redmond'", "except id and city"),
        ("colour eq 'blue'", "Could not find a property named 'colour'"),
        ("numberType ne 'callingPlan'", "Unsupported $filter"),
        ("numberType eq 'callingPlan' or numberType eq 'directRouting'", "Unsupported $filter"),
        ("(numberType eq 'callingPlan' or assignmentStatus eq 'unassigned')", "one property"),
        ("startswith(telephoneNumber, '+1425')", "Unsupported $filter"),
        ("capabilities eq 'userAssignment'", "collection"),
        ("numberType eq 'callingPlan' and", "Unsupported $filter"),
        ("", "Unsupported $filter"),
    ],
)
async def test_number_assignment_filters_graph_refuses(
    client: httpx.AsyncClient, auth: dict[str, str], expression: str, says: str
) -> None:
    response = await client.get(NUMBERS, params={"$filter": expression}, headers=auth)
    assert_graph_error(response, 400, "Request_BadRequest")
    assert says in response.json()["error"]["message"]


@pytest.mark.parametrize("option", ["$select", "$orderby", "$count", "$expand", "$search", "select"])
async def test_number_assignment_options_not_documented_are_refused(
    client: httpx.AsyncClient, auth: dict[str, str], option: str
) -> None:
    response = await client.get(NUMBERS, params={option: "telephoneNumber"}, headers=auth)
    assert_graph_error(response, 400, "Request_UnsupportedQuery")


async def test_number_assignments_need_a_token_and_a_teams_number_role(
    client: httpx.AsyncClient, emu: GraphEmulator, numbers: dict[str, str]
) -> None:
    unauthenticated = await client.get(NUMBERS)
    assert_graph_error(unauthenticated, 401, "InvalidAuthenticationToken")
    emu.register_app(roles=GRAPH_ROLES)
    headers = {"Authorization": f"Bearer {await token(client)}"}
    assert_graph_error(
        await client.get(NUMBERS, headers=headers),
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
    assert (await client.get(f"{NUMBERS}/{numbers['+14255550101']}", headers=headers)).status_code == 403
    emu.register_app(roles=[*GRAPH_ROLES, "TeamsTelephoneNumber.ReadWrite.All"])
    headers = {"Authorization": f"Bearer {await token(client)}"}
    assert len(await list_numbers(client, headers)) == 6
    assert [r.status for r in emu.requests if r.path.startswith(NUMBERS)] == [401, 403, 403, 200]


async def test_get_one_number_assignment_and_unknown_segments(
    client: httpx.AsyncClient, auth: dict[str, str], numbers: dict[str, str]
) -> None:
    number_id = numbers["+14255550104"]
    response = await client.get(f"{NUMBERS}/{number_id}", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"] == f"{NUMBERS_CONTEXT}/$entity"
    assert (body["id"], body["telephoneNumber"], body["assignmentStatus"]) == (
        number_id,
        "+14255550104",
        "unassigned",
    )
    # Graph shows an unassigned number with neither target nor category.
    assert (body["assignmentTargetId"], body["assignmentCategory"]) == (None, None)
    assert_graph_error(
        await client.get(f"{NUMBERS}/{uuid.uuid4()}", headers=auth), 404, "Request_ResourceNotFound"
    )
    # Segment names are case-insensitive, as Graph's are.
    lowered = await client.get(NUMBERS.lower(), headers=auth)
    assert len(lowered.json()["value"]) == 6
    for path, segment in [
        ("/v1.0/admin/teams/telephoneNumberManagement/numberAssignment", "numberAssignment"),
        ("/v1.0/admin/teams/phoneNumbers", "phoneNumbers"),
        ("/v1.0/admin/sharepoint", "sharepoint"),
        (f"{NUMBERS}/$count", "$count"),
        (f"{NUMBERS}/{number_id}/more", "more"),
    ]:
        response = await client.get(path, headers=auth)
        assert_graph_error(response, 400, "BadRequest", f"Resource not found for the segment '{segment}'.")


async def test_the_sdk_request_builder_url_is_served(
    client: httpx.AsyncClient, auth: dict[str, str], numbers: dict[str, str]
) -> None:
    from kiota_abstractions.authentication import AnonymousAuthenticationProvider
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient

    adapter = GraphRequestAdapter(AnonymousAuthenticationProvider())
    adapter.base_url = f"{BASE}/v1.0"
    builder = GraphServiceClient(
        request_adapter=adapter
    ).admin.teams.telephone_number_management.number_assignments
    query = builder.NumberAssignmentsRequestBuilderGetQueryParameters(
        filter="assignmentStatus eq 'userAssigned' and assignmentCategory eq 'primary'", top=1000
    )
    request = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
    request.path_parameters["baseurl"] = adapter.base_url
    assert request.url.startswith(f"{BASE}{NUMBERS}?%24filter=")
    response = await client.get(request.url, headers=auth)
    assert telephone_numbers(response.json()["value"]) == ["+14255550101", "+14255550102;ext=12"]


async def test_faults_and_the_request_log_cover_number_assignments(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    emu.assign_numbers({"telephone_number": us_number(n), "target_id": f"u{n}"} for n in range(3))
    emu.page_cap = 2
    emu.inject(ScriptedFault("status", status=503, path_contains="numberAssignments"))
    emu.inject(ScriptedFault("throttle", retry_after_s=2, path_contains="$skip=2"))
    assert_graph_error(await client.get(NUMBERS, headers=auth), 503, "serviceNotAvailable")
    first = await client.get(NUMBERS, params={"$top": "2"}, headers=auth)
    assert first.status_code == 200
    throttled = await client.get(first.json()["@odata.nextLink"], headers=auth)
    assert_graph_error(throttled, 429, "TooManyRequests")
    assert throttled.headers["retry-after"] == "2"
    again = await client.get(first.json()["@odata.nextLink"], headers=auth)
    assert telephone_numbers(again.json()["value"]) == [us_number(2)]
    emu.faults = Faults(error_rate=1.0)
    assert_graph_error(await client.get(NUMBERS, headers=auth), 503, "serviceNotAvailable")
    logged = emu.requests[1:]
    assert [(r.method, r.path, r.query, r.status, r.fault) for r in logged] == [
        ("GET", NUMBERS, {}, 503, "error"),
        ("GET", NUMBERS, {"$top": "2"}, 200, None),
        ("GET", NUMBERS, {"$top": "2", "$skip": "2"}, 429, "throttle"),
        ("GET", NUMBERS, {"$top": "2", "$skip": "2"}, 200, None),
        ("GET", NUMBERS, {}, 503, "error"),
    ]
    assert all(r.token_id == claims(auth["Authorization"].split()[1])["jti"] for r in logged)


async def test_number_assignment_control_routes(client: httpx.AsyncClient, emu: GraphEmulator) -> None:
    async def control(method: str, body: object, status: int = 200) -> Any:
        response = await client.request(method, "/_emulator/number_assignments", json=body)
        assert response.status_code == status, response.text
        return response.json()

    one = (await control("POST", {"telephone_number": "+14255550100", "target_id": "user-1"}))["id"]
    many = (
        await control(
            "POST",
            [
                {"telephone_number": "+14255550101", "target_id": None, "status": "unassigned"},
                {
                    "telephone_number": "+14255550102",
                    "target_id": "user-2",
                    "category": "alternate",
                    "number_type": "directRouting",
                    "activation_state": "assignmentPending",
                    "iso_country_code": "CA",
                    "id": "fixed-id",
                },
            ],
        )
    )["ids"]
    assert many[1] == "fixed-id"
    listed = await control("GET", None)
    assert [(r["id"], r["telephoneNumber"], r["assignmentTargetId"]) for r in listed] == [
        (one, "+14255550100", "user-1"),
        (many[0], "+14255550101", None),
        ("fixed-id", "+14255550102", "user-2"),
    ]
    assert (listed[2]["activationState"], listed[2]["isoCountryCode"]) == ("assignmentPending", "CA")
    assert listed == emu.number_assignments()
    refused = await control(
        "POST", {"telephone_number": "+14255550103", "target_id": "u", "status": "gone"}, 400
    )
    assert "status must be one of" in refused["error"]
    refused = await control(
        "POST", {"telephone_number": "+14255550103", "target_id": "u", "colour": "x"}, 400
    )
    assert "colour" in refused["error"]
    # All or nothing: the second one is refused, so the first is not assigned either.
    await control(
        "POST",
        [
            {"telephone_number": "+14255550104", "target_id": "u"},
            {"telephone_number": "+14255550105", "target_id": "u", "category": "secondary"},
        ],
        400,
    )
    assert len(emu.number_assignments()) == 3
    await control("DELETE", {"telephone_number": "+14255550101"})
    assert (
        "no number assignment"
        in (await control("DELETE", {"telephone_number": "+14255550101"}, 404))["error"]
    )
    await control("DELETE", {"number": "+14255550100"}, 400)
    assert [r["telephoneNumber"] for r in emu.number_assignments()] == ["+14255550100", "+14255550102"]
    assert all(not r.path.startswith("/_emulator") for r in emu.requests)
    assert (await client.post("/_emulator/reset")).status_code == 200
    assert emu.number_assignments() == []


def test_number_assignment_fixture_methods(emu: GraphEmulator) -> None:
    user = emu.add_user(upn="a@contoso.com")
    first = emu.assign_number("14255550100", user)  # Teams records numbers with a "+"
    assert [r["telephoneNumber"] for r in emu.number_assignments()] == ["+14255550100"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first)
    # One record per number: assigning it again replaces the record and keeps its ID.
    assert emu.assign_number("+14255550100", user, category="private") == first
    [record] = emu.number_assignments()
    assert (record["id"], record["assignmentCategory"]) == (first, "private")
    record["assignmentTargetId"] = "changed"  # a copy
    assert emu.number_assignments()[0]["assignmentTargetId"] == user
    with pytest.raises(ValueError, match="number_type must be one of"):
        emu.assign_number("+14255550101", user, number_type="internalCalling")
    with pytest.raises(ValueError, match="activation_state"):
        emu.assign_number("+14255550101", user, activation_state="on")
    with pytest.raises(ValueError, match="no target_id"):
        emu.assign_number("+14255550101", user, status="unassigned")
    with pytest.raises(ValueError, match="needs a target_id"):
        emu.assign_number("+14255550101", None)
    with pytest.raises(ValueError, match="belongs to"):
        emu.assign_number("+14255550101", user, id=first)
    with pytest.raises(ValueError, match="telephone_number"):
        emu.assign_number("+1 425 555 0101", user)
    with pytest.raises(ValueError, match="no number assignment"):
        emu.unassign_number("+14255550101")
    # A stale assignment: the user is gone, Teams still holds the number for it.
    emu.assign_number("+14255550101", "no-such-user", number_type="internalError", status="internalError")
    emu.delete_user(user)
    assert [r["assignmentTargetId"] for r in emu.number_assignments()] == [user, "no-such-user"]
    emu.unassign_number("14255550101")
    assert len(emu.number_assignments()) == 1
    emu.reset()
    assert emu.number_assignments() == []
    # Reproducible: the same seed generates the same IDs.
    assert GraphEmulator(seed=5).assign_number(us_number(1), "u") == GraphEmulator(seed=5).assign_number(
        us_number(1), "u"
    )


# --- over real HTTPS, with the real msal --------------------------------------------------------------------


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GraphEmulator, GraphServers]]:
    emulator = GraphEmulator()
    with serve_graph_https(emulator, ca=TestCA(Path(tmp_path_factory.mktemp("graph-ca")))) as servers:
        yield emulator, servers


class _FormSafeClient(httpx.Client):
    """msal hands its client assertion over as bytes; httpx form-encodes bytes with str() ("b'eyJ...'"),
    which Entra refuses. This decodes them, as `requests` would have."""

    def post(self, url: Any, *args: Any, data: Any = None, **kwargs: Any) -> httpx.Response:
        if isinstance(data, dict):
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return super().post(url, *args, data=data, **kwargs)


def test_msal_gets_tokens_over_https(
    https: tuple[GraphEmulator, GraphServers], credentials: tuple[Credential, Credential]
) -> None:
    emulator, server = https
    emulator.reset()
    assert urlsplit(server.authority_host).hostname != urlsplit(server.base_url).hostname
    assert urlsplit(server.authority_host).port != urlsplit(server.base_url).port
    authority = f"{server.authority_host}/{DEFAULT_TENANT_ID}"
    scopes = [f"{server.base_url}/.default"]
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca_path)))
    try:
        app = msal.ConfidentialClientApplication(
            DEFAULT_CLIENT_ID,
            client_credential=DEFAULT_CLIENT_SECRET,
            authority=authority,
            instance_discovery=False,
            http_client=http,
        )
        result = app.acquire_token_for_client(scopes)
        assert "access_token" in result, result
        assert claims(result["access_token"])["aud"] == server.base_url
        assert app.acquire_token_for_client(scopes)["token_source"] == "cache"
    finally:
        http.close()
    discovery, token_request = emulator.requests
    assert discovery.path == f"/{DEFAULT_TENANT_ID}/v2.0/.well-known/openid-configuration"
    assert token_request.body == {
        "client_id": DEFAULT_CLIENT_ID,
        "grant_type": "client_credentials",
        "client_info": "1",
        "client_secret": "***",
        "scope": scopes[0],
    }

    # A certificate credential: msal signs PS256 with x5t#S256 when it has the certificate.
    mine, _ = credentials
    emulator.register_app(CERT_APP, secret=None, certificate_pem=mine.cert_pem)
    with _FormSafeClient(verify=ssl.create_default_context(cafile=str(server.ca_path))) as http:
        app = msal.ConfidentialClientApplication(
            CERT_APP,
            client_credential={
                "private_key": mine.key_pem.decode(),
                "public_certificate": mine.cert_pem.decode(),
            },
            authority=authority,
            instance_discovery=False,
            http_client=http,
        )
        result = app.acquire_token_for_client(scopes)
    assert "access_token" in result, result
    assert claims(result["access_token"])["appidacr"] == "2"
    assert json.dumps(emulator.requests[-1].body).count("***") == 1


# --- a user's direct memberships (memberOf) -----------------------------------------------------------------


@pytest.fixture
def memberships(emu: GraphEmulator) -> dict[str, str]:
    """ada is a direct member of sales and support (sales is nested in agents, hidden is hidden)."""
    agents = emu.add_group(display_name="Agents")
    sales = emu.add_group(display_name="Sales EMEA")
    support = emu.add_group(display_name="Support")
    hidden = emu.add_group(display_name="Hidden")
    ada = emu.add_user(upn="ada@contoso.com")
    emu.add_member(agents, sales)
    emu.add_members(sales, [ada])
    emu.add_member(support, ada)
    emu.add_member(hidden, ada)
    emu.deny_group(hidden)
    return {"agents": agents, "sales": sales, "support": support, "hidden": hidden, "ada": ada}


async def test_member_of_lists_direct_groups_by_id_or_upn(
    client: httpx.AsyncClient, auth: dict[str, str], memberships: dict[str, str]
) -> None:
    ada = memberships["ada"]
    for key in (ada, "ADA@contoso.com"):
        response = await client.get(f"/v1.0/users/{key}/memberOf", headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["@odata.context"] == f"{BASE}/v1.0/$metadata#directoryObjects"
        # Direct memberships only (not agents, which holds sales), hidden ones left out, creation order.
        assert ids(body["value"]) == [memberships["sales"], memberships["support"]]
        assert body["value"][0]["@odata.type"] == "#microsoft.graph.group"
        assert body["value"][0]["displayName"] == "Sales EMEA"


@pytest.mark.parametrize("cast", ["microsoft.graph.group", "graph.group", "Microsoft.Graph.Group"])
async def test_member_of_cast_to_groups_with_select_and_count(
    client: httpx.AsyncClient, auth: dict[str, str], memberships: dict[str, str], cast: str
) -> None:
    url = f"/v1.0/users/{memberships['ada']}/memberOf/{cast}?$count=true&$select=id,displayName"
    body = (await client.get(url, headers=auth)).json()
    assert body["@odata.context"] == f"{BASE}/v1.0/$metadata#groups(id,displayName)"
    assert body["@odata.count"] == 2
    assert body["value"] == [
        {"@odata.type": "#microsoft.graph.group", "id": memberships["sales"], "displayName": "Sales EMEA"},
        {"@odata.type": "#microsoft.graph.group", "id": memberships["support"], "displayName": "Support"},
    ]


async def test_member_of_pages_with_absolute_next_links(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    user = emu.add_user(upn="busy@contoso.com")
    groups = [emu.add_group(display_name=f"g{i}") for i in range(7)]
    for group in groups:
        emu.add_member(group, user)
    url = f"/v1.0/users/{user}/memberOf/graph.group?$count=true&$select=id&$top=3"
    items = await read_all(client, url, auth)
    assert ids(items) == groups
    pages = [r for r in emu.requests if r.path.endswith("/memberOf/graph.group")]
    assert [r.status for r in pages] == [200, 200, 200]
    assert [("$skiptoken" in r.query) for r in pages] == [False, True, True]


async def test_member_of_of_an_unknown_user_or_a_group_is_404(
    client: httpx.AsyncClient, auth: dict[str, str], memberships: dict[str, str]
) -> None:
    for key in ("nobody@contoso.com", str(uuid.uuid4()), memberships["sales"]):
        response = await client.get(f"/v1.0/users/{key}/memberOf", headers=auth)
        assert_graph_error(response, 404, "Request_ResourceNotFound")
        assert key in response.json()["error"]["message"]


async def test_member_of_advanced_query_rules_and_segments(
    client: httpx.AsyncClient, auth: dict[str, str], memberships: dict[str, str]
) -> None:
    base = f"/v1.0/users/{memberships['ada']}/memberOf"
    plain = {"Authorization": auth["Authorization"]}
    not_advanced = await client.get(f"{base}/graph.group", headers=plain)
    assert_graph_error(not_advanced, 400, "Request_UnsupportedQuery")
    assert_graph_error(
        await client.get(f"{base}/graph.group?$count=true", headers=plain), 400, "Request_UnsupportedQuery"
    )
    count = await client.get(f"{base}/graph.group/$count", headers=auth)
    assert (count.status_code, count.text) == (200, "2")
    assert_graph_error(await client.get(f"{base}/$count", headers=plain), 400, "Request_BadRequest")
    roles = await client.get(f"{base}/microsoft.graph.directoryRole?$count=true", headers=auth)
    assert roles.json()["value"] == []
    assert roles.json()["@odata.context"] == f"{BASE}/v1.0/$metadata#directoryRoles"
    bad = await client.get(f"{base}/graph.user", headers=auth)
    assert_graph_error(bad, 400, "BadRequest", "Resource not found for the segment 'graph.user'.")
    refused = await client.get(f"{base}?$filter=displayName eq 'Support'", headers=auth)
    assert_graph_error(refused, 400, "Request_UnsupportedQuery")
    unknown_property = await client.get(f"{base}/graph.group?$count=true&$select=nothing", headers=auth)
    assert_graph_error(unknown_property, 400, "Request_BadRequest")


async def test_member_of_permissions_limited_information_and_hidden_memberships(
    client: httpx.AsyncClient, emu: GraphEmulator, memberships: dict[str, str]
) -> None:
    url = f"/v1.0/users/{memberships['ada']}/memberOf/graph.group?$count=true&$select=id,displayName"

    async def read_with(roles: list[str]) -> httpx.Response:
        emu.register_app(roles=roles)
        return await client.get(url, headers={"Authorization": f"Bearer {await token(client)}", **EVENTUAL})

    assert_graph_error(
        await read_with(["TeamsTelephoneNumber.Read.All"]),
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
    # A user permission alone reads the relationship, but the groups come back with limited information.
    limited = (await read_with(["User.Read.All"])).json()["value"]
    assert limited == [
        {"@odata.type": "#microsoft.graph.group", "id": memberships["sales"], "displayName": None},
        {"@odata.type": "#microsoft.graph.group", "id": memberships["support"], "displayName": None},
    ]
    full = (await read_with(["GroupMember.Read.All"])).json()["value"]
    assert [item["displayName"] for item in full] == ["Sales EMEA", "Support"]
    directory = (await read_with(["Directory.Read.All", "Member.Read.Hidden"])).json()["value"]
    assert [item["displayName"] for item in directory] == ["Sales EMEA", "Support", "Hidden"]


async def test_raw_users_are_served_as_given_and_still_projected(
    client: httpx.AsyncClient, auth: dict[str, str], emu: GraphEmulator
) -> None:
    group = emu.add_group()
    huge = "\u0660\u200b\U0001f600" * 20_000
    odd = emu.add_raw_user(
        {
            "businessPhones": {"nested": [1, None, {"x": huge}]},
            "accountEnabled": "yes",
            "userPrincipalName": 42,
            "onPremisesImmutableId": ["not", "base64"],
            "displayName": huge,
            "junk": {"deep": [[[]]]},
        }
    )
    anonymous = emu.add_raw_user({"id": RAW_OMIT, "businessPhones": ["+1 415 555 0100"]})
    device = emu.add_raw_user({"@odata.type": "#microsoft.graph.device", "id": 7}, id="fixed-id")
    assert device == "fixed-id"
    emu.add_members(group, [odd, anonymous, device])
    select = "id,userPrincipalName,accountEnabled,businessPhones,onPremisesImmutableId"
    response = await client.get(f"/v1.0/groups/{group}/transitiveMembers?$select={select}", headers=auth)
    assert response.status_code == 200
    odd_item, anonymous_item, device_item = json.loads(response.content)["value"]
    assert odd_item == {
        "@odata.type": "#microsoft.graph.user",
        "id": odd,
        "userPrincipalName": 42,
        "accountEnabled": "yes",
        "businessPhones": {"nested": [1, None, {"x": huge}]},
        "onPremisesImmutableId": ["not", "base64"],
        "junk": {"deep": [[[]]]},  # unknown keys are always served; displayName was not selected
    }
    assert "id" not in anonymous_item
    assert anonymous_item["businessPhones"] == ["+1 415 555 0100"]
    assert anonymous_item["userPrincipalName"] is None
    assert (device_item["@odata.type"], device_item["id"]) == ("#microsoft.graph.device", 7)
    narrow = await client.get(f"/v1.0/groups/{group}/transitiveMembers?$select=id", headers=auth)
    assert [sorted(item) for item in narrow.json()["value"]] == [
        ["@odata.type", "id", "junk"],
        ["@odata.type"],
        ["@odata.type", "id"],
    ]
    by_id = await client.get(f"/v1.0/users/{odd}?$select=displayName", headers=auth)
    assert by_id.json()["displayName"] == huge


@pytest.mark.parametrize(
    "props",
    [{"x": float("nan")}, {"x": "\ud800"}, {"x": object()}, {1: "x"}, {"x": {"y": RAW_OMIT}}],
    ids=["nan", "lone-surrogate", "object", "int-key", "nested-omit"],
)
def test_add_raw_user_refuses_what_json_cannot_carry(emu: GraphEmulator, props: dict[Any, object]) -> None:
    with pytest.raises(ValueError, match="props must"):
        emu.add_raw_user(props)
    assert emu.add_raw_user({}, id="still-free") == "still-free"


# --- permissions and groups through the control API (syncd check's failure modes) -------------------------


async def test_app_roles_are_granted_and_withdrawn_through_the_control_api(
    emu: GraphEmulator, client: httpx.AsyncClient
) -> None:
    path = f"/_emulator/apps/{DEFAULT_CLIENT_ID}/roles"
    assert (await client.get(path)).json() == {"roles": sorted(DEFAULT_APP_ROLES)}
    before = await token(client)
    withdrawn = await client.delete(f"{path}/{TEAMS_NUMBER_ROLE}")
    assert withdrawn.json() == {"roles": sorted(GRAPH_ROLES)}
    # Tokens issued from now on carry the roles granted now; the one issued before keeps its own.
    assert claims(await token(client))["roles"] == sorted(GRAPH_ROLES)
    assert claims(before)["roles"] == sorted(DEFAULT_APP_ROLES)
    assert emu.app_roles() == sorted(GRAPH_ROLES)
    replaced = await client.put(path, json={"roles": ["User.Read.All"]})
    assert replaced.json() == {"roles": ["User.Read.All"]}
    assert (await client.put(path, json={"roles": []})).json() == {"roles": []}
    assert "roles" not in claims(await token(client))
    assert (await client.put(path, json={"roles": "User.Read.All"})).status_code == 400
    assert (await client.put(path, json={"roles": [], "extra": 1})).status_code == 400
    unknown = "/_emulator/apps/00000000-0000-0000-0000-000000000009/roles"
    assert (await client.put(unknown, json={"roles": []})).status_code == 404
    assert (await client.delete(f"{unknown}/User.Read.All")).status_code == 404
    emu.reset()
    assert emu.app_roles() == sorted(DEFAULT_APP_ROLES)


async def test_a_group_is_deleted_through_the_control_api(
    emu: GraphEmulator, client: httpx.AsyncClient
) -> None:
    group = emu.add_group(display_name="Support")
    headers = {"Authorization": f"Bearer {await token(client)}"}
    assert (await client.get(f"/v1.0/groups/{group}", headers=headers)).status_code == 200
    assert (await client.delete(f"/_emulator/groups/{group}")).json() == {"ok": True}
    assert_graph_error(
        await client.get(f"/v1.0/groups/{group}", headers=headers), 404, "Request_ResourceNotFound"
    )
    assert (await client.delete(f"/_emulator/groups/{group}")).status_code == 404


async def test_members_without_a_user_permission_come_with_limited_information(
    emu: GraphEmulator, client: httpx.AsyncClient
) -> None:
    group = emu.add_group()
    nested = emu.add_group(display_name="Nested")
    user = emu.add_user(upn="a@contoso.com", business_phones=["+14155550100"], display_name="A")
    emu.add_member(group, user)
    emu.add_member(group, nested)
    url = f"/v1.0/groups/{group}/members?$select=id,userPrincipalName,businessPhones,displayName"
    full = (await client.get(url, headers={"Authorization": f"Bearer {await token(client)}"})).json()["value"]
    assert full[0]["userPrincipalName"] == "a@contoso.com"
    emu.register_app(roles=["GroupMember.Read.All"])
    headers = {"Authorization": f"Bearer {await token(client)}"}
    limited = (await client.get(url, headers=headers)).json()["value"]
    assert limited[0] == {
        "@odata.type": "#microsoft.graph.user",
        "id": user,
        "userPrincipalName": None,
        "businessPhones": None,
        "displayName": None,
    }
    assert limited[1]["displayName"] == "Nested"  # groups: the app may read them
    cast = f"/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user"
    cast += "?$count=true&$select=id,userPrincipalName"
    users = (await client.get(cast, headers={**headers, **EVENTUAL})).json()["value"]
    assert users == [{"@odata.type": "#microsoft.graph.user", "id": user, "userPrincipalName": None}]
