"""Tests of the SmartCommunicator emulator itself, driven with plain httpx.

The emulator stands in for IntelePeer in every other test, so here it is held to the published API
(docs/spec/smartcommunicator-agents-api.md): bodies exactly as documented, every onboarding 400 reachable,
faults that look like the real failures to a client, and a request log that tells the truth.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import ssl
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from syncd.emulators.graph import GraphEmulator
from syncd.emulators.server import RunningServer, TestCA, _bind, serve_https
from syncd.emulators.smartcomm import (
    DEFAULT_CUSTOMER_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    Faults,
    ScriptedFault,
    SmartCommEmulator,
)
from syncd.emulators.smartcomm.store import is_e164
from syncd.emulators.tenant import TenantSpec, build_tenant
from tests.clocks import FakeClock
from tests.registry import e164

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

BASE_URL = "https://atmosphere-api.intelepeer.com"
AGENTS = f"/rest/v1/smartcomm/{DEFAULT_CUSTOMER_ID}/agents"
CREDENTIALS = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
UNAUTHORIZED = {"code": 401, "error": "Unauthorized"}
NO_RECORDS = "No Records found for any of the parameters provided"

TENANT = "f67efc8f-df44-47c5-8b50-fe86d1858420"
OTHER_TENANT = "0b7d2a51-9c3e-4f62-a1de-7c5b8e9f0a11"
OID_1 = "e2f19e0a-0490-41f4-8509-44a3390ae0b6"
OID_2 = "e2f19e0a-0490-41f4-8509-44a3390ae0b7"
OID_3 = "f5449088-5c43-40dc-854c-17ca2b74d983"
TN_1 = "+13132095887"
TN_2 = "+15127178432"
TN_3 = "+15727982188"
GUID_1 = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38"
GUID_2 = "1a2b3c4d-0000-4000-8000-000000000002"


@pytest.fixture
def emu() -> SmartCommEmulator:
    """The account as a customer sets it up: its tenant and numbers registered."""
    return SmartCommEmulator(registered_tenants=[TENANT], ten_dlc_numbers=[TN_1, TN_2, TN_3])


@pytest.fixture
async def client(emu: SmartCommEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app), base_url=BASE_URL) as client:
        yield client


async def login(client: httpx.AsyncClient) -> str:
    response = await client.post("/rest/v1/authenticate", json=CREDENTIALS)
    assert response.status_code == 200
    token = response.json()["token"]
    assert isinstance(token, str)
    return token


@pytest.fixture
async def auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client)}"}


def jwt_part(token: str, index: int) -> dict[str, object]:
    segment = token.split(".")[index]
    decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(decoded, dict)
    return decoded


def assert_not_found(response: httpx.Response, message: str) -> None:
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"requestId", "message"}
    assert body["message"] == message
    assert str(uuid.UUID(body["requestId"])) == body["requestId"]


def onboard_body(oid: str, tn: str, **extra: str) -> dict[str, str]:
    return {"user_object_id": oid, "tenant_id": extra.pop("tenant_id", TENANT), "phone_number": tn, **extra}


# --- authentication ----------------------------------------------------------------------------------------


async def test_authenticate_issues_a_signed_jwt_like_the_documented_one(client: httpx.AsyncClient) -> None:
    before = time.time()
    token = await login(client)
    signature_b64 = token.split(".")[2]
    assert "=" not in token
    assert jwt_part(token, 0) == {"alg": "HS256", "typ": "JWT"}
    payload = jwt_part(token, 1)
    assert set(payload) == {"aid", "cid", "crt", "exp", "uid", "src", "jti"}
    assert payload["aid"] == 0
    assert payload["cid"] == DEFAULT_CUSTOMER_ID
    assert payload["uid"] == DEFAULT_USERNAME
    assert payload["src"] == "api-gtw"
    crt, exp = payload["crt"], payload["exp"]
    assert isinstance(crt, int)
    assert isinstance(exp, int)
    assert int(before) <= crt <= time.time()
    assert exp - crt in (86400, 86401)
    assert len(base64.urlsafe_b64decode(signature_b64 + "=")) == 32


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"username": DEFAULT_USERNAME, "password": "wrong"}),
        json.dumps({"username": "someone@else.com", "password": DEFAULT_PASSWORD}),
        json.dumps({"username": DEFAULT_USERNAME}),
        json.dumps([DEFAULT_USERNAME, DEFAULT_PASSWORD]),
        "not json",
        "",
    ],
    ids=["bad-password", "bad-username", "no-password", "not-an-object", "not-json", "empty"],
)
async def test_authenticate_rejects_bad_credentials(client: httpx.AsyncClient, content: str) -> None:
    response = await client.post(
        "/rest/v1/authenticate", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def forge(token: str) -> str:
    header, _payload, signature = token.split(".")
    claims = jwt_part(token, 1)
    claims["exp"] = 4102444800
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    "make_header",
    [
        lambda token: None,
        lambda token: f"Basic {token}",
        lambda token: "Bearer",
        lambda token: "Bearer not-a-jwt",
        lambda token: f"Bearer {forge(token)}",
        lambda token: f"Bearer {token[:-4]}AAAA",
    ],
    ids=["missing", "wrong-scheme", "empty", "malformed", "forged-payload", "bad-signature"],
)
async def test_agents_api_needs_a_valid_bearer_token(client: httpx.AsyncClient, make_header: object) -> None:
    assert callable(make_header)
    header = make_header(await login(client))
    headers = {} if header is None else {"Authorization": header}
    response = await client.get(AGENTS, headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["content-type"] == "application/json"


async def test_a_token_from_another_emulator_is_rejected(client: httpx.AsyncClient) -> None:
    other = SmartCommEmulator()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other.app), base_url=BASE_URL) as c:
        foreign = await login(c)
    response = await client.get(AGENTS, headers={"Authorization": f"Bearer {foreign}"})
    assert response.status_code == 401


async def test_a_token_lives_until_its_exp_claim(emu: SmartCommEmulator, client: httpx.AsyncClient) -> None:
    emu.clock = clock = FakeClock(start=1_800_000_000.4)
    emu.token_lifetime_s = 60.2
    emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1)
    token = await login(client)
    claims = jwt_part(token, 1)
    assert (claims["crt"], claims["exp"]) == (1_800_000_000, 1_800_000_061)  # crt rounds down, exp up
    headers = {"Authorization": f"Bearer {token}"}
    clock.now = 1_800_000_060.9  # the lifetime has run out (at .6), the exp claim not yet
    assert (await client.get(AGENTS, headers=headers)).status_code == 200
    clock.now = 1_800_000_061.0
    response = await client.get(AGENTS, headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_revoked_tokens_are_rejected_and_new_ones_work(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1)
    emu.revoke_tokens()
    assert (await client.get(AGENTS, headers=auth)).status_code == 401
    fresh = {"Authorization": f"Bearer {await login(client)}"}
    assert (await client.get(AGENTS, headers=fresh)).status_code == 200
    revoked, renewed = emu.requests[-3], emu.requests[-1]
    assert revoked.status == 401
    assert renewed.status == 200
    assert revoked.token_id is not None
    assert revoked.token_id != renewed.token_id


async def test_another_customer_is_forbidden(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get(f"/rest/v1/smartcomm/{DEFAULT_CUSTOMER_ID + 1}/agents", headers=auth)
    assert response.status_code == 403
    assert response.json() == {"code": 403, "error": "Forbidden"}


async def test_a_non_integer_customer_id_finds_no_records(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    assert_not_found(await client.get("/rest/v1/smartcomm/acme/agents", headers=auth), NO_RECORDS)


async def test_unknown_paths_and_methods(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert_not_found(await client.get("/rest/v1/nothing"), "Not Found")
    assert_not_found(await client.get(f"{AGENTS}/x/y", headers=auth), "Not Found")
    assert (await client.get(f"{AGENTS}/x/y")).status_code == 401
    response = await client.put(AGENTS, headers=auth, json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert (await client.get("/rest/v1/authenticate")).status_code == 405


# --- onboarding --------------------------------------------------------------------------------------------


async def test_onboarding_creates_an_active_agent(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = onboard_body(OID_1, TN_1, upn="Jane.Doe@example.com", consistency_id=GUID_1)
    response = await client.post(AGENTS, headers=auth, json=body)
    assert response.status_code == 200
    assert response.json() == {"data": {"message": "Onboarded Successfully"}, "error": None}
    [agent] = emu.agents()
    agent_id = agent.pop("agent_id")
    assert isinstance(agent_id, str)
    assert re.fullmatch("[0-9a-f]{24}", agent_id)
    assert agent == {
        "user_object_id": OID_1,
        "tenant_id": TENANT,
        "phone_number": TN_1,
        "upn": "Jane.Doe@example.com",
        "consistency_id": GUID_1,
        "status": "active",
    }
    assert emu.requests[-1].applied


async def test_onboarding_an_offboarded_object_reactivates_its_record(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    agent_id = emu.add_agent(
        user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, upn="old@example.com", status="offboarded"
    )
    # The offboarded agent holds nothing: another agent may have its old number meanwhile.
    emu.add_agent(user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_1)
    response = await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_2))
    assert response.status_code == 200
    [first, _] = emu.agents()
    assert first["agent_id"] == agent_id
    assert first["status"] == "active"
    assert first["phone_number"] == TN_2
    assert first["upn"] is None


def seed(emu: SmartCommEmulator, oid: str, tn: str, **extra: str) -> None:
    emu.add_agent(
        user_object_id=oid,
        tenant_id=extra.get("tenant_id", TENANT),
        phone_number=tn,
        upn=extra.get("upn"),
        consistency_id=extra.get("consistency_id"),
    )


ONBOARDING_ERRORS = [
    pytest.param(
        [],
        onboard_body(OID_1, TN_1, tenant_id=OTHER_TENANT),
        "Tenant ID is not registered with SmartCommunicator",
        id="tenant",
    ),
    pytest.param(
        [],
        onboard_body(OID_1, "+19995550000"),
        "TN is not part of the list of numbers that are already 10DLC registered",
        id="10dlc",
    ),
    pytest.param(
        [(OID_1, TN_1, {})],
        onboard_body(OID_1, TN_1),
        "TN exists with the same Azure Object ID",
        id="tn-same-oid",
    ),
    pytest.param(
        [(OID_1, TN_1, {"consistency_id": GUID_1})],
        onboard_body(OID_2, TN_1, consistency_id=GUID_1),
        "TN exists with the same MSDS Consistency GUID",
        id="tn-same-guid",
    ),
    pytest.param(
        [(OID_1, TN_1, {"consistency_id": GUID_1})],
        onboard_body(OID_2, TN_1, consistency_id=GUID_2),
        "TN is already registered with a different MSDS Consistency GUID",
        id="tn-other-guid",
    ),
    pytest.param(
        [(OID_1, TN_1, {"upn": "a@example.com"})],
        onboard_body(OID_2, TN_1, upn="b@example.com"),
        "TN is already registered with a different UPN",
        id="tn-other-upn",
    ),
    pytest.param(
        [(OID_1, TN_1, {})],
        onboard_body(OID_2, TN_1),
        "TN is already registered with a different Azure Object ID",
        id="tn-other-oid",
    ),
    pytest.param(
        [(OID_1, TN_1, {"upn": "a@example.com"})],
        onboard_body(OID_1, TN_2, upn="A@Example.com"),
        "UPN exists with the same Azure Object ID",
        id="upn-same-oid",
    ),
    pytest.param(
        [(OID_1, TN_1, {"upn": "a@example.com", "consistency_id": GUID_1})],
        onboard_body(OID_2, TN_2, upn="a@example.com", consistency_id=GUID_1),
        "UPN exists with the same MSDS Consistency GUID",
        id="upn-same-guid",
    ),
    pytest.param(
        [(OID_1, TN_1, {"upn": "a@example.com", "consistency_id": GUID_1})],
        onboard_body(OID_2, TN_2, upn="a@example.com", consistency_id=GUID_2),
        "UPN is already registered with a different MSDS Consistency GUID",
        id="upn-other-guid",
    ),
    pytest.param(
        [(OID_1, TN_1, {"upn": "a@example.com", "tenant_id": OTHER_TENANT})],
        onboard_body(OID_2, TN_2, upn="a@example.com"),
        "UPN is already registered with SmartCommunicator",
        id="upn-other-tenant",
    ),
    pytest.param(
        [(OID_1, TN_1, {"upn": "a@example.com"})],
        onboard_body(OID_2, TN_2, upn="a@example.com"),
        "UPN is already registered with a different Azure Object ID",
        id="upn-other-oid",
    ),
    pytest.param(
        [(OID_1, TN_1, {"consistency_id": GUID_1})],
        onboard_body(OID_2, TN_2, consistency_id=GUID_1),
        "MSDS Consistency GUID already exists",
        id="guid-exists",
    ),
    pytest.param(
        [(OID_1, TN_1, {"consistency_id": GUID_1})],
        onboard_body(OID_1, TN_2, consistency_id=GUID_2),
        "Azure Object ID exists with a different MSDS Consistency GUID",
        id="oid-other-guid",
    ),
    pytest.param(
        [(OID_1, TN_1, {})], onboard_body(OID_1, TN_2), "Azure Object ID already exists", id="oid-exists"
    ),
    pytest.param(
        [], {"tenant_id": TENANT, "phone_number": TN_1}, "user_object_id is required", id="missing-oid"
    ),
    pytest.param([], onboard_body(OID_1, TN_1, tenant_id=""), "tenant_id is required", id="empty-tenant"),
    pytest.param(
        [], {"user_object_id": OID_1, "tenant_id": TENANT}, "phone_number is required", id="missing-tn"
    ),
    pytest.param([], [OID_1], "Invalid request body", id="not-an-object"),
]


@pytest.mark.parametrize(("seeded", "body", "message"), ONBOARDING_ERRORS)
async def test_onboarding_errors(
    emu: SmartCommEmulator,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    seeded: list[tuple[str, str, dict[str, str]]],
    body: object,
    message: str,
) -> None:
    emu.registered_tenants = {TENANT}
    emu.ten_dlc_numbers = {TN_1, TN_2, TN_3}
    for oid, tn, extra in seeded:
        seed(emu, oid, tn, **extra)
    before = emu.agents()
    response = await client.post(AGENTS, headers=auth, json=body)
    assert response.status_code == 400
    assert response.json() == {"message": message, "status": 400}
    assert emu.agents() == before
    assert not emu.requests[-1].applied


async def test_onboarding_a_body_that_is_not_json(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(AGENTS, headers=auth | JSON, content=b"{oops")
    assert response.json() == {"message": "Invalid request body", "status": 400}


# --- strict by default, as the API is ---------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


async def test_a_new_account_registers_no_tenant_and_no_number() -> None:
    emu = SmartCommEmulator()
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        auth = {"Authorization": f"Bearer {await login(client)}"}
        refused = await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))
        assert refused.json() == {
            "message": "Tenant ID is not registered with SmartCommunicator",
            "status": 400,
        }
        emu.register_tenants([TENANT])
        refused = await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))
        assert refused.json()["message"] == (
            "TN is not part of the list of numbers that are already 10DLC registered"
        )
        emu.register_numbers([TN_1])
        assert (await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))).status_code == 200
    assert [a["phone_number"] for a in emu.agents()] == [TN_1]


@pytest.mark.parametrize("number", ["call me 555", "555", "13132095887", "+1 313 209 5887", "(313) 209-5887"])
async def test_numbers_must_be_e164_even_when_every_number_counts_as_registered(
    client: httpx.AsyncClient, auth: dict[str, str], emu: SmartCommEmulator, number: str
) -> None:
    emu.ten_dlc_numbers = None  # leniency on the registry: the format is still the API's
    response = await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, number))
    assert response.json() == {
        "message": "TN is not part of the list of numbers that are already 10DLC registered",
        "status": 400,
    }
    assert emu.agents() == []
    with pytest.raises(ValueError, match=r"E\.164"):
        emu.register_numbers([number])


async def test_a_text_plain_onboarding_is_refused_415_and_applies_nothing(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = json.dumps(onboard_body(OID_1, TN_1))
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = auth if content_type is None else auth | {"Content-Type": content_type}
        response = await client.post(AGENTS, headers=headers, content=body)
        assert response.status_code == 415, content_type
        assert response.json() == {"message": "Unsupported Media Type"}
    patched = await client.patch(
        f"{AGENTS}/{OID_1}", headers=auth | {"Content-Type": "text/plain"}, content="{}"
    )
    assert patched.status_code == 415
    login_form = await client.post("/rest/v1/authenticate", data=CREDENTIALS)  # a form, not JSON
    assert login_form.status_code == 415
    assert emu.agents() == []
    assert [r.status for r in emu.requests[1:]] == [415, 415, 415, 415, 415]
    ok = await client.post(
        AGENTS, headers=auth | {"Content-Type": "application/json; charset=utf-8"}, content=body
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        (None, 406),
        ("text/html", 406),
        ("application/json;q=0", 406),
        ("application/json", 200),
        ("text/html, application/*;q=0.5", 200),
        ("*/*", 200),
    ],
)
async def test_a_client_must_take_json(emu: SmartCommEmulator, accept: str | None, status: int) -> None:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        auth = {"Authorization": f"Bearer {await login(client)}"}
        client.headers.pop("Accept")  # httpx sends "Accept: */*" unless told otherwise
        headers = auth if accept is None else auth | {"Accept": accept}
        response = await client.post(AGENTS, headers=headers, json=onboard_body(OID_1, TN_1))
    assert response.status_code == status, response.text
    if status == 406:
        assert response.json() == {"message": "Not Acceptable"}
        assert emu.agents() == []


def test_the_tenant_builder_registers_every_valid_number_of_the_tenant() -> None:
    graph, account = GraphEmulator(), SmartCommEmulator()
    built = build_tenant(
        graph, TenantSpec(users=60, teams_share=0.5, teams_extra=2, seed=3), registry=account
    )
    assert account.ten_dlc_numbers == set(built.ten_dlc_numbers)
    assert len(built.ten_dlc_numbers) == len(set(built.ten_dlc_numbers))
    # Every valid number the directory holds (garbage and empty phones have none), read independently of
    # syncd's mapping, Teams numbers included; nothing else.
    valid = {number for phone in graph.phone_numbers() if (number := e164(phone)) is not None}
    assert valid == set(built.ten_dlc_numbers)
    assert set(built.teams_numbers.values()) <= set(built.ten_dlc_numbers)
    assert all(is_e164(number) for number in built.ten_dlc_numbers)


async def test_leniency_is_asked_for_explicitly() -> None:
    emu = SmartCommEmulator(registered_tenants=None, ten_dlc_numbers=None, require_json=False)
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        client.headers.pop("Accept")
        auth = {"Authorization": f"Bearer {await login(client)}"}
        text = auth | {"Content-Type": "text/plain"}
        response = await client.post(AGENTS, headers=text, content=json.dumps(onboard_body(OID_1, TN_1)))
    assert response.status_code == 200
    emu.reset()
    assert (emu.require_json, emu.registered_tenants, emu.ten_dlc_numbers) == (False, None, None)


# --- reading -----------------------------------------------------------------------------------------------


async def test_the_list_is_404_when_there_are_no_agents(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    assert_not_found(await client.get(AGENTS, headers=auth), NO_RECORDS)


async def test_the_list_has_the_documented_fields_of_every_agent(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, upn="a@example.com")
    emu.add_agent(user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_2, consistency_id=GUID_1)
    emu.add_agent(user_object_id=OID_3, tenant_id=TENANT, phone_number=TN_3, status="offboarded")
    response = await client.get(AGENTS, headers=auth)
    assert response.status_code == 200
    assert response.json() == {
        "data": [
            {"user_object_id": OID_1, "tenant_id": TENANT, "phone_number": TN_1, "status": "active"},
            {
                "user_object_id": OID_2,
                "tenant_id": TENANT,
                "consistency_id": GUID_1,
                "phone_number": TN_2,
                "status": "active",
            },
            {"user_object_id": OID_3, "tenant_id": TENANT, "phone_number": TN_3, "status": "offboarded"},
        ],
        "error": None,
    }


@pytest.mark.parametrize(
    ("key_id", "key"),
    [
        (None, OID_1),
        ("user_object_id", OID_1),
        ("agent_id", "AGENT_ID"),
        ("upn", "JANE.DOE@example.com"),
        ("phone_number", TN_1),
        ("consistency_id", GUID_1),
    ],
)
async def test_get_one_agent_by_each_key_id(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str], key_id: str | None, key: str
) -> None:
    agent_id = emu.add_agent(
        user_object_id=OID_1,
        tenant_id=TENANT,
        phone_number=TN_1,
        upn="jane.doe@example.com",
        consistency_id=GUID_1,
    )
    emu.add_agent(user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_2)
    params = {} if key_id is None else {"key_id": key_id}
    response = await client.get(f"{AGENTS}/{key.replace('AGENT_ID', agent_id)}", headers=auth, params=params)
    assert response.status_code == 200
    assert response.json() == {
        "consistency_id": GUID_1,
        "user_object_id": OID_1,
        "tenant_id": TENANT,
        "phone_number": TN_1,
        "upn": "jane.doe@example.com",
        "status": "active",
    }
    assert emu.requests[-1].query == params


async def test_get_one_agent_prefers_the_active_holder_and_calls_offboarded_orphaned(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, status="offboarded")
    emu.add_agent(user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_1)
    by_number = await client.get(f"{AGENTS}/{TN_1}", headers=auth, params={"key_id": "phone_number"})
    assert by_number.json()["user_object_id"] == OID_2
    orphan = await client.get(f"{AGENTS}/{OID_1}", headers=auth)
    assert orphan.json() == {
        "user_object_id": OID_1,
        "tenant_id": TENANT,
        "phone_number": TN_1,
        "status": "orphaned",
    }


async def test_get_one_agent_errors(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert_not_found(await client.get(f"{AGENTS}/{OID_1}", headers=auth), NO_RECORDS)
    response = await client.get(f"{AGENTS}/{OID_1}", headers=auth, params={"key_id": "email"})
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": "Invalid key_id"}


# --- updating ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_id", [None, "user_object_id", "agent_id", "consistency_id"])
async def test_patch_returns_the_full_agent(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str], key_id: str | None
) -> None:
    agent_id = emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, consistency_id=GUID_1)
    key = {None: OID_1, "user_object_id": OID_1, "agent_id": agent_id, "consistency_id": GUID_1}[key_id]
    params = {} if key_id is None else {"key_id": key_id}
    response = await client.patch(
        f"{AGENTS}/{key}",
        headers=auth,
        params=params,
        json={"phone_number": TN_2, "upn": "jane@example.com", "transfer_data": True},
    )
    assert response.status_code == 200
    assert response.json() == {
        "consistency_id": GUID_1,
        "user_object_id": OID_1,
        "tenant_id": TENANT,
        "phone_number": TN_2,
        "upn": "jane@example.com",
        "status": "active",
    }
    assert emu.requests[-1].applied
    # The old number is free again, the new one is held.
    emu.add_agent(user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_1)
    with pytest.raises(ValueError, match="phone number"):
        emu.add_agent(user_object_id=OID_3, tenant_id=TENANT, phone_number=TN_2)


async def test_patch_can_change_the_object_id(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1)
    response = await client.patch(f"{AGENTS}/{OID_1}", headers=auth, json={"user_object_id": OID_2})
    assert response.json()["user_object_id"] == OID_2
    assert (await client.get(f"{AGENTS}/{OID_2}", headers=auth)).status_code == 200
    assert (await client.get(f"{AGENTS}/{OID_1}", headers=auth)).status_code == 404


async def test_a_patch_that_changes_nothing_succeeds(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, upn="a@example.com")
    emu.ten_dlc_numbers = set()
    emu.registered_tenants = set()
    for body in ({}, {"phone_number": TN_1, "tenant_id": TENANT, "upn": "a@example.com"}):
        response = await client.patch(f"{AGENTS}/{OID_1}", headers=auth, json=body)
        assert response.status_code == 200, response.text


PATCH_ERRORS = [
    ({"phone_number": "+19995550000"}, "Phone number is not registered with SmartCommunicator"),
    ({"tenant_id": OTHER_TENANT}, "Tenant ID is not registered with SmartCommunicator"),
    ({"phone_number": TN_2}, "TN is already registered with a different Azure Object ID"),
    ({"upn": "B@example.com"}, "UPN is already registered with a different Azure Object ID"),
    ({"consistency_id": GUID_2}, "MSDS Consistency GUID already exists"),
    ({"user_object_id": OID_2}, "Azure Object ID already exists"),
    ({"user_object_id": OID_3}, "Azure Object ID already exists"),
    ({"nickname": "jd"}, "Invalid request body"),
    ({"phone_number": 13132095887}, "Invalid request body"),
    ({"transfer_data": "yes"}, "Invalid request body"),
    (["phone_number"], "Invalid request body"),
]


@pytest.mark.parametrize(("body", "message"), PATCH_ERRORS)
async def test_patch_errors(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str], body: object, message: str
) -> None:
    emu.registered_tenants = {TENANT}
    emu.ten_dlc_numbers = {TN_1, TN_2, TN_3}
    emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, consistency_id=GUID_1)
    emu.add_agent(
        user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_2, upn="b@example.com", consistency_id=GUID_2
    )
    emu.add_agent(user_object_id=OID_3, tenant_id=TENANT, phone_number=TN_3, status="offboarded")
    before = emu.agents()
    response = await client.patch(f"{AGENTS}/{OID_1}", headers=auth, json=body)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": message}
    assert emu.agents() == before


async def test_patch_finds_only_active_agents(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, status="offboarded")
    for key in (OID_1, OID_2):
        assert_not_found(await client.patch(f"{AGENTS}/{key}", headers=auth, json={}), "Agent not found")
    response = await client.patch(
        f"{AGENTS}/{TN_1}", headers=auth, params={"key_id": "phone_number"}, json={}
    )
    assert response.json() == {"status": "error", "message": "Invalid key_id"}


# --- offboarding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_id", [None, "user_object_id", "agent_id", "consistency_id"])
async def test_delete_offboards_then_refuses(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str], key_id: str | None
) -> None:
    agent_id = emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, consistency_id=GUID_1)
    key = {None: OID_1, "user_object_id": OID_1, "agent_id": agent_id, "consistency_id": GUID_1}[key_id]
    params = {} if key_id is None else {"key_id": key_id}
    response = await client.delete(f"{AGENTS}/{key}", headers=auth, params=params)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert emu.agents()[0]["status"] == "offboarded"
    assert emu.requests[-1].applied
    again = await client.delete(f"{AGENTS}/{key}", headers=auth, params=params)
    assert again.status_code == 400
    assert again.json() == {
        "status": "error",
        "message": "Azure Object ID is not registered with SmartCommunicator",
    }
    assert not emu.requests[-1].applied


async def test_delete_errors(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert_not_found(await client.delete(f"{AGENTS}/{OID_1}", headers=auth), "Agent not found")
    response = await client.delete(f"{AGENTS}/a@example.com", headers=auth, params={"key_id": "upn"})
    assert response.json() == {"status": "error", "message": "Invalid key_id"}


async def test_add_agent_enforces_uniqueness_among_active_agents(emu: SmartCommEmulator) -> None:
    emu.add_agent(
        user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_1, upn="a@example.com", consistency_id=GUID_1
    )
    with pytest.raises(ValueError, match="user_object_id"):
        emu.add_agent(user_object_id=OID_1, tenant_id=TENANT, phone_number=TN_2)
    with pytest.raises(ValueError, match="UPN"):
        emu.add_agent(user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_2, upn="A@EXAMPLE.COM")
    with pytest.raises(ValueError, match="consistency_id"):
        emu.add_agent(user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_2, consistency_id=GUID_1)
    emu.add_agent(user_object_id=OID_2, tenant_id=TENANT, phone_number=TN_1, status="offboarded")
    assert emu.requests == []


# --- faults and the request log ----------------------------------------------------------------------------


async def test_scripted_status_fault_is_consumed_and_not_applied(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.inject(ScriptedFault("status", method="POST", path_contains="/agents", times=2))
    for _ in range(2):
        response = await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))
        assert response.status_code == 503
        assert response.json() == {"message": "Service Unavailable"}
    assert emu.agents() == []
    assert (await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))).status_code == 200
    assert [(r.status, r.fault, r.applied) for r in emu.requests[-3:]] == [
        (503, "error", False),
        (503, "error", False),
        (200, None, True),
    ]


async def test_scripted_throttle_sends_retry_after_in_whole_seconds(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.inject(ScriptedFault("throttle", retry_after_s=1.2))
    response = await client.get(AGENTS, headers=auth)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert emu.requests[-1].fault == "throttle"


async def test_scripted_faults_match_method_and_path_and_spare_auth_by_default(
    emu: SmartCommEmulator, client: httpx.AsyncClient
) -> None:
    emu.inject(ScriptedFault("status", method="DELETE"))
    emu.inject(ScriptedFault("status", status=500))
    token = await login(client)
    response = await client.get(AGENTS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    emu.inject(ScriptedFault("status", path_contains="/authenticate", status=502))
    assert (await client.post("/rest/v1/authenticate", json=CREDENTIALS)).status_code == 502
    response = await client.delete(f"{AGENTS}/{OID_1}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503


async def test_drop_does_not_apply_and_raises_a_transport_error(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.inject(ScriptedFault("drop", method="POST"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))
    assert emu.agents() == []
    last = emu.requests[-1]
    assert (last.status, last.fault, last.applied) == (None, "drop", False)


async def test_drop_after_applies_the_write(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.inject(ScriptedFault("drop_after", method="POST"))
    with pytest.raises(httpx.TransportError):
        await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))
    assert [a["user_object_id"] for a in emu.agents()] == [OID_1]
    last = emu.requests[-1]
    assert (last.status, last.fault, last.applied) == (None, "drop_after", True)
    response = await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))
    assert response.json()["message"] == "TN exists with the same Azure Object ID"


async def test_delay_after_applies_then_waits(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.inject(ScriptedFault("delay_after", delay_s=0.1))
    started = time.monotonic()
    response = await client.post(AGENTS, headers=auth, json=onboard_body(OID_1, TN_1))
    assert time.monotonic() - started >= 0.1
    assert response.status_code == 200
    assert (emu.requests[-1].fault, emu.requests[-1].applied) == ("delay_after", True)


async def test_latency_is_added_and_recorded(
    emu: SmartCommEmulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.faults = Faults(latency_s=0.05)
    started = time.monotonic()
    assert (await client.get(AGENTS, headers=auth)).status_code == 404
    assert time.monotonic() - started >= 0.05
    assert emu.requests[-1].fault == "latency"
    assert emu.requests[0].fault is None  # the login: auth_too is off


async def random_fault_outcomes(seed: int) -> list[tuple[int | None, str | None]]:
    emu = SmartCommEmulator(seed=seed)
    emu.faults = Faults(error_rate=0.2, throttle_rate=0.2, drop_rate=0.2, retry_after_s=0.5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app), base_url=BASE_URL) as client:
        headers = {"Authorization": f"Bearer {await login(client)}"}
        for _ in range(40):
            try:
                response = await client.get(AGENTS, headers=headers)
            except httpx.TransportError:
                continue
            if response.status_code == 429:
                assert response.headers["retry-after"] == "1"
    return [(r.status, r.fault) for r in emu.requests[1:]]


async def test_random_faults_are_reproducible_with_a_seed() -> None:
    first = await random_fault_outcomes(seed=7)
    assert first == await random_fault_outcomes(seed=7)
    assert first != await random_fault_outcomes(seed=8)
    faults = {fault for _, fault in first}
    assert {"error", "throttle", "drop", None} <= faults
    assert all(status == 503 for status, fault in first if fault == "error")
    assert all(status is None for status, fault in first if fault == "drop")


async def test_the_request_log(emu: SmartCommEmulator, client: httpx.AsyncClient) -> None:
    token = await login(client)
    await client.get(
        f"{AGENTS}/{OID_1}", params={"key_id": "user_object_id"}, headers={"Authorization": f"Bearer {token}"}
    )
    await client.get("/_emulator/requests")
    login_request, get_request = emu.requests
    assert (login_request.seq, get_request.seq) == (1, 2)
    assert login_request.body == {"username": DEFAULT_USERNAME, "password": "***"}
    assert login_request.token_id is None
    assert get_request.method == "GET"
    assert get_request.path == f"{AGENTS}/{OID_1}"
    assert get_request.query == {"key_id": "user_object_id"}
    assert get_request.token_id == jwt_part(token, 1)["jti"]
    assert get_request.status == 404
    assert login_request.at <= get_request.at
    emu.clear_requests()
    assert emu.requests == []
    await client.get("/rest/v1/nothing")
    assert emu.requests[0].seq == 3


# --- the control API ---------------------------------------------------------------------------------------


async def test_the_control_api(emu: SmartCommEmulator, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_emulator/agents", json={"user_object_id": OID_1, "tenant_id": TENANT, "phone_number": TN_1}
    )
    assert response.status_code == 200
    agent_id = response.json()["agent_id"]
    assert (await client.post("/_emulator/agents", json={"user_object_id": OID_1})).status_code == 400
    duplicate = {"user_object_id": OID_1, "tenant_id": TENANT, "phone_number": TN_2}
    assert (await client.post("/_emulator/agents", json=duplicate)).status_code == 409
    agents = (await client.get("/_emulator/agents")).json()
    assert [a["agent_id"] for a in agents] == [agent_id]

    assert (await client.put("/_emulator/token_lifetime", json={"seconds": 60.5})).status_code == 200
    assert emu.token_lifetime_s == 60.5
    registries = {"registered_tenants": [TENANT], "ten_dlc_numbers": None}
    assert (await client.put("/_emulator/registries", json=registries)).status_code == 200
    assert (emu.registered_tenants, emu.ten_dlc_numbers) == ({TENANT}, None)

    token = await login(client)
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        await client.post("/_emulator/inject", json={"kind": "throttle", "retry_after_s": 3})
    ).status_code == 200
    assert (await client.post("/_emulator/inject", json={"kind": "explode"})).status_code == 400
    assert (await client.get(AGENTS, headers=headers)).headers["retry-after"] == "3"

    assert (await client.put("/_emulator/faults", json={"error_rate": 1.0})).status_code == 200
    assert emu.faults == Faults(error_rate=1.0)
    assert (await client.put("/_emulator/faults", json={"eror_rate": 1.0})).status_code == 400
    assert (await client.get(AGENTS, headers=headers)).status_code == 503
    assert (await client.put("/_emulator/faults", json={})).status_code == 200

    assert (await client.post("/_emulator/revoke")).status_code == 200
    assert (await client.get(AGENTS, headers=headers)).status_code == 401

    logged = (await client.get("/_emulator/requests")).json()
    assert [r["path"] for r in logged] == ["/rest/v1/authenticate", AGENTS, AGENTS, AGENTS]
    assert (logged[1]["status"], logged[1]["fault"]) == (429, "throttle")
    assert (await client.delete("/_emulator/requests")).status_code == 200
    assert emu.requests == []

    bad_numbers = {"ten_dlc_numbers": ["call me 555"]}
    assert (await client.put("/_emulator/registries", json=bad_numbers)).status_code == 400

    assert (await client.post("/_emulator/reset")).status_code == 200
    assert (emu.agents(), emu.registered_tenants, emu.token_lifetime_s) == ([], {TENANT}, 86400.0)
    # reset clears revocations: the token works again (and there are no agents any more).
    assert_not_found(await client.get(AGENTS, headers=headers), NO_RECORDS)
    assert emu.requests[0].seq == 1


# --- over real HTTPS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SmartCommEmulator, RunningServer]]:
    emulator = SmartCommEmulator(registered_tenants=[TENANT], ten_dlc_numbers=[TN_1])
    ca = TestCA(tmp_path_factory.mktemp("smartcomm-ca"))
    with serve_https(emulator.app, ca=ca) as server:
        yield emulator, server


async def test_over_https(
    https: tuple[SmartCommEmulator, RunningServer], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, server = https
    emulator.reset()
    assert server.base_url == f"https://127.0.0.1:{server.port}"
    verify = ssl.create_default_context(cafile=str(server.ca_path))
    caplog.set_level(logging.WARNING)
    async with httpx.AsyncClient(base_url=server.base_url, verify=verify) as client:
        headers = {"Authorization": f"Bearer {await login(client)}"}
        response = await client.post(AGENTS, headers=headers, json=onboard_body(OID_1, TN_1))
        assert response.status_code == 200
        emulator.inject(ScriptedFault("drop", method="GET"))
        with pytest.raises(httpx.TransportError):
            await client.get(AGENTS, headers=headers)
        emulator.inject(ScriptedFault("drop_after", method="DELETE"))
        with pytest.raises(httpx.TransportError):
            await client.delete(f"{AGENTS}/{OID_1}", headers=headers)
        # The client recovers on a new connection.
        listed = await client.get(AGENTS, headers=headers)
        assert listed.json()["data"][0]["status"] == "offboarded"
    assert [(r.status, r.fault, r.applied) for r in emulator.requests[1:]] == [
        (200, None, True),
        (None, "drop", False),
        (None, "drop_after", True),
        (200, None, False),
    ]
    # Deliberate drops are not application errors: uvicorn must not log them.
    assert [r for r in caplog.records if r.name.startswith("uvicorn")] == []


def test_listening_socket_lets_asyncio_disable_nagle() -> None:
    """asyncio sets TCP_NODELAY on accepted connections only if the listener's proto is IPPROTO_TCP;
    without it every response waits ~40 ms for a delayed ACK."""
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


async def test_an_untrusted_client_fails_the_handshake(
    https: tuple[SmartCommEmulator, RunningServer],
) -> None:
    _, server = https
    async with httpx.AsyncClient(base_url=server.base_url, verify=ssl.create_default_context()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(AGENTS)


async def test_the_account_changes_through_the_control_api(
    emu: SmartCommEmulator, client: httpx.AsyncClient
) -> None:
    """syncd check's failure modes: the password rotated (401 with the old one), the credentials moved to
    another customer (403 for the configured one); reset restores the account."""
    rotated = await client.put("/_emulator/account", json={"password": "rotated-in-the-portal"})
    assert rotated.json() == {"customer_id": DEFAULT_CUSTOMER_ID, "username": CREDENTIALS["username"]}
    assert (await client.post("/rest/v1/authenticate", json=CREDENTIALS)).status_code == 401
    renewed = {**CREDENTIALS, "password": "rotated-in-the-portal"}
    token = (await client.post("/rest/v1/authenticate", json=renewed)).json()["token"]
    assert jwt_part(token, 1)["cid"] == DEFAULT_CUSTOMER_ID

    moved = await client.put("/_emulator/account", json={"customer_id": 67890})
    assert moved.json()["customer_id"] == 67890
    token = (await client.post("/rest/v1/authenticate", json=renewed)).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    forbidden = await client.get(f"/rest/v1/smartcomm/{DEFAULT_CUSTOMER_ID}/agents", headers=headers)
    assert forbidden.status_code == 403
    assert (
        await client.get("/rest/v1/smartcomm/67890/agents", headers=headers)
    ).status_code == 404  # none yet
    assert (await client.put("/_emulator/account", json={"customer_id": "x"})).status_code == 400
    assert (await client.put("/_emulator/account", json={"colour": "blue"})).status_code == 400

    emu.reset()
    assert (await client.post("/rest/v1/authenticate", json=CREDENTIALS)).status_code == 200
    assert emu.customer_id == DEFAULT_CUSTOMER_ID
