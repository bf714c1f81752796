"""Every endpoint and every documented error, through the real client against the emulator over HTTPS.

Assertions look at what the emulator received and holds (its request log and agents), not at how the
client was called.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from syncd.config.settings import SmartCommSettings
from syncd.core.model import Agent, AgentPatch, NewAgent
from syncd.emulators.smartcomm import SmartCommEmulator
from syncd.smartcomm import (
    AgentConflict,
    AgentExists,
    AgentNotFound,
    AnchorExists,
    ErrorCategory,
    NumberNotRegistered,
    SmartCommClient,
    SmartCommError,
    TenantNotRegistered,
)

TENANT = "f67efc8f-df44-47c5-8b50-fe86d1858420"
OTHER_TENANT = "0b5c1f5e-2a36-4d3c-9a6a-3c2a1c2b0d11"
OID = "f5449088-5c43-40dc-854c-17ca2b74d998"
OTHER_OID = "e2f19e0a-0490-41f4-8509-44a3390ae0b6"
GUID = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38"
OTHER_GUID = "5f0c8f1e-0000-4000-8000-000000000001"
PHONE = "+15727982113"
OTHER_PHONE = "+13132095887"
AGENTS = "/rest/v1/smartcomm/12345/agents"


@pytest.fixture(autouse=True)
def account(emulator: SmartCommEmulator) -> None:
    """The account as the customer set it up: its tenant and these numbers registered (the emulator, as the
    service, refuses any other)."""
    emulator.register_tenants([TENANT])
    emulator.register_numbers([PHONE, OTHER_PHONE])


def writes(emulator: SmartCommEmulator) -> list[tuple[str, str, object]]:
    """The POST/PATCH/DELETE requests the emulator received, as (method, path, body)."""
    return [
        (r.method, r.path, r.body)
        for r in emulator.requests
        if r.method in {"POST", "PATCH", "DELETE"} and not r.path.endswith("/authenticate")
    ]


async def test_token_is_fetched_once_and_sent_as_bearer(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE)
    for _ in range(3):
        await client.list_agents()
    log = emulator.requests
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", "/rest/v1/authenticate", 200),
        ("GET", AGENTS, 200),
        ("GET", AGENTS, 200),
        ("GET", AGENTS, 200),
    ]
    assert log[0].body == {"username": "api-user@example.com", "password": "***"}
    assert len({r.token_id for r in log[1:]}) == 1
    assert log[1].token_id is not None


async def test_list_of_an_empty_account_is_empty(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    assert await client.list_agents() == []
    # The API documents a 404 "No Records found" for this; the client must not call it an error.
    assert [r.status for r in emulator.requests if r.method == "GET"] == [404]


async def test_list_has_active_and_offboarded_agents_without_upn(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    emulator.add_agent(
        user_object_id=OID, tenant_id=TENANT, phone_number=PHONE, upn="a@x.com", consistency_id=GUID
    )
    emulator.add_agent(
        user_object_id=OTHER_OID, tenant_id=TENANT, phone_number=OTHER_PHONE, status="offboarded"
    )
    assert await client.list_agents() == [
        Agent(OID, TENANT, PHONE, "active", upn=None, consistency_id=GUID),
        Agent(OTHER_OID, TENANT, OTHER_PHONE, "offboarded"),
    ]


@pytest.mark.parametrize(
    ("key_id", "value"),
    [
        ("user_object_id", OID),
        ("upn", "Jane.Doe@contoso.com"),
        ("upn", "jane.doe@CONTOSO.com"),
        ("phone_number", PHONE),
        ("consistency_id", GUID),
        ("agent_id", None),
    ],
)
async def test_get_agent_by_every_key(
    client: SmartCommClient, emulator: SmartCommEmulator, key_id: str, value: str | None
) -> None:
    agent_id = emulator.add_agent(
        user_object_id=OID,
        tenant_id=TENANT,
        phone_number=PHONE,
        upn="Jane.Doe@contoso.com",
        consistency_id=GUID,
    )
    agent = await client.get_agent(value or agent_id, key_id=key_id)  # type: ignore[arg-type]
    assert agent == Agent(OID, TENANT, PHONE, "active", upn="Jane.Doe@contoso.com", consistency_id=GUID)
    request = emulator.requests[-1]
    assert request.query == ({} if key_id == "user_object_id" else {"key_id": key_id})


async def test_get_offboarded_agent_reports_orphaned(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE, status="offboarded")
    agent = await client.get_agent(OID)
    assert agent.status == "orphaned"
    assert not agent.active


async def test_get_unknown_agent_is_not_found(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    with pytest.raises(AgentNotFound) as caught:
        await client.get_agent(OID)
    assert caught.value.status == 404
    assert caught.value.message == "No Records found for any of the parameters provided"
    assert caught.value.category is ErrorCategory.NOT_FOUND


async def test_onboard_sends_only_known_fields(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    await client.onboard(NewAgent(OID, TENANT, PHONE))
    await client.onboard(NewAgent(OTHER_OID, TENANT, OTHER_PHONE, upn="b@x.com", consistency_id=GUID))
    assert writes(emulator) == [
        ("POST", AGENTS, {"user_object_id": OID, "tenant_id": TENANT, "phone_number": PHONE}),
        (
            "POST",
            AGENTS,
            {
                "user_object_id": OTHER_OID,
                "tenant_id": TENANT,
                "phone_number": OTHER_PHONE,
                "upn": "b@x.com",
                "consistency_id": GUID,
            },
        ),
    ]
    assert {(a["user_object_id"], a["status"]) for a in emulator.agents()} == {
        (OID, "active"),
        (OTHER_OID, "active"),
    }


async def test_onboarding_an_offboarded_object_reactivates_it(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE, status="offboarded")
    await client.onboard(NewAgent(OID, TENANT, OTHER_PHONE))
    assert await client.get_agent(OID) == Agent(OID, TENANT, OTHER_PHONE, "active")


@dataclass
class Case:
    """One documented onboarding 400: the agents already there, what we send, what we must get."""

    message: str
    error: type[SmartCommError]
    existing: list[dict[str, str]] = field(default_factory=list)
    request: NewAgent = field(default_factory=lambda: NewAgent(OID, TENANT, PHONE))
    tenants: set[str] | None = None
    numbers: set[str] | None = None


def held(**fields: str) -> dict[str, str]:
    base = {"user_object_id": OTHER_OID, "tenant_id": TENANT, "phone_number": OTHER_PHONE}
    return base | fields


ONBOARDING_CASES = [
    Case("Tenant ID is not registered with SmartCommunicator", TenantNotRegistered, tenants={OTHER_TENANT}),
    Case(
        "TN is not part of the list of numbers that are already 10DLC registered",
        NumberNotRegistered,
        numbers={OTHER_PHONE},
    ),
    Case(
        "TN exists with the same Azure Object ID", AgentExists, [held(user_object_id=OID, phone_number=PHONE)]
    ),
    Case(
        "TN exists with the same MSDS Consistency GUID",
        AnchorExists,
        [held(phone_number=PHONE, consistency_id=GUID)],
        NewAgent(OID, TENANT, PHONE, consistency_id=GUID),
    ),
    Case(
        "TN is already registered with a different MSDS Consistency GUID",
        AgentConflict,
        [held(phone_number=PHONE, consistency_id=OTHER_GUID)],
        NewAgent(OID, TENANT, PHONE, consistency_id=GUID),
    ),
    Case(
        "TN is already registered with a different UPN",
        AgentConflict,
        [held(phone_number=PHONE, upn="other@x.com")],
        NewAgent(OID, TENANT, PHONE, upn="me@x.com"),
    ),
    Case(
        "TN is already registered with a different Azure Object ID", AgentConflict, [held(phone_number=PHONE)]
    ),
    Case(
        "UPN exists with the same Azure Object ID",
        AgentExists,
        [held(user_object_id=OID, upn="me@x.com")],
        NewAgent(OID, TENANT, PHONE, upn="me@x.com"),
    ),
    Case(
        "UPN exists with the same MSDS Consistency GUID",
        AnchorExists,
        [held(upn="me@x.com", consistency_id=GUID)],
        NewAgent(OID, TENANT, PHONE, upn="ME@x.com", consistency_id=GUID),
    ),
    Case(
        "UPN is already registered with a different MSDS Consistency GUID",
        AgentConflict,
        [held(upn="me@x.com", consistency_id=OTHER_GUID)],
        NewAgent(OID, TENANT, PHONE, upn="me@x.com", consistency_id=GUID),
    ),
    Case(
        "UPN is already registered with SmartCommunicator",
        AgentConflict,
        [held(upn="me@x.com", tenant_id=OTHER_TENANT)],
        NewAgent(OID, TENANT, PHONE, upn="me@x.com"),
    ),
    Case(
        "UPN is already registered with a different Azure Object ID",
        AgentConflict,
        [held(upn="me@x.com")],
        NewAgent(OID, TENANT, PHONE, upn="me@x.com"),
    ),
    Case(
        "MSDS Consistency GUID already exists",
        AnchorExists,
        [held(consistency_id=GUID)],
        NewAgent(OID, TENANT, PHONE, consistency_id=GUID),
    ),
    Case(
        "Azure Object ID exists with a different MSDS Consistency GUID",
        AgentExists,
        [held(user_object_id=OID, consistency_id=OTHER_GUID)],
        NewAgent(OID, TENANT, PHONE, consistency_id=GUID),
    ),
    Case("Azure Object ID already exists", AgentExists, [held(user_object_id=OID)]),
]


@pytest.mark.parametrize("case", ONBOARDING_CASES, ids=[case.message for case in ONBOARDING_CASES])
async def test_documented_onboarding_errors(
    client: SmartCommClient, emulator: SmartCommEmulator, case: Case
) -> None:
    emulator.registered_tenants = case.tenants
    emulator.ten_dlc_numbers = case.numbers
    for agent in case.existing:
        emulator.add_agent(**agent)
    before = emulator.agents()
    with pytest.raises(SmartCommError) as caught:
        await client.onboard(case.request)
    assert type(caught.value) is case.error
    assert caught.value.message == case.message
    assert caught.value.status == 400
    assert caught.value.attempts == 1  # a documented 400 is an answer, never retried
    assert not caught.value.outcome_was_unknown
    assert emulator.agents() == before
    assert [r.status for r in emulator.requests if r.method == "POST" and r.path == AGENTS] == [400]


async def test_update_sends_only_changed_fields_and_returns_the_agent(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE, upn="old@x.com")
    agent = await client.update(OID, AgentPatch(upn="new@x.com"))
    assert agent == Agent(OID, TENANT, PHONE, "active", upn="new@x.com")
    assert writes(emulator) == [("PATCH", f"{AGENTS}/{OID}", {"upn": "new@x.com"})]


async def test_update_by_consistency_id(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE, consistency_id=GUID)
    agent = await client.update(GUID, AgentPatch(phone_number=OTHER_PHONE), key_id="consistency_id")
    assert agent.phone_number == OTHER_PHONE
    assert emulator.requests[-1].query == {"key_id": "consistency_id"}


async def test_update_errors(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE)
    emulator.add_agent(user_object_id=OTHER_OID, tenant_id=TENANT, phone_number=OTHER_PHONE)
    with pytest.raises(AgentNotFound) as missing:
        await client.update("00000000-0000-0000-0000-000000000000", AgentPatch(upn="x@x.com"))
    assert missing.value.message == "Agent not found"
    with pytest.raises(AgentConflict) as conflict:
        await client.update(OID, AgentPatch(phone_number=OTHER_PHONE))
    assert conflict.value.field == "phone_number"
    emulator.ten_dlc_numbers = {PHONE, OTHER_PHONE}
    with pytest.raises(NumberNotRegistered) as unregistered:
        await client.update(OID, AgentPatch(phone_number="+14715551212"))
    assert unregistered.value.message == "Phone number is not registered with SmartCommunicator"
    assert unregistered.value.category is ErrorCategory.SETUP
    assert {a["user_object_id"]: a["phone_number"] for a in emulator.agents()} == {
        OID: PHONE,
        OTHER_OID: OTHER_PHONE,
    }


async def test_offboard_then_again_then_unknown(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE)
    await client.offboard(OID)
    assert [a["status"] for a in emulator.agents()] == ["offboarded"]
    with pytest.raises(AgentNotFound) as again:
        await client.offboard(OID)
    assert again.value.message == "Azure Object ID is not registered with SmartCommunicator"
    assert again.value.status == 400
    with pytest.raises(AgentNotFound) as unknown:
        await client.offboard(OTHER_OID)
    assert unknown.value.status == 404
    assert [(r.method, r.status) for r in emulator.requests if r.method == "DELETE"] == [
        ("DELETE", 200),
        ("DELETE", 400),
        ("DELETE", 404),
    ]


async def test_offboard_by_agent_id(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    agent_id = emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE)
    await client.offboard(agent_id, key_id="agent_id")
    assert emulator.requests[-1].query == {"key_id": "agent_id"}
    assert [a["status"] for a in emulator.agents()] == ["offboarded"]


async def test_identifiers_are_quoted_in_paths(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE, upn="o'neil+x@x.com")
    assert (await client.get_agent(PHONE, key_id="phone_number")).user_object_id == OID
    assert (await client.get_agent("o'neil+x@x.com", key_id="upn")).user_object_id == OID


@pytest.mark.parametrize("key", ["", ".", ".."])
async def test_an_empty_or_dot_segment_key_is_never_sent(
    client: SmartCommClient, emulator: SmartCommEmulator, key: str
) -> None:
    """Quoting keeps "." and ".." as they are, and a normaliser resolves them: a DELETE of ".." would go to
    the account's own path. No agent can have such a key, so nothing is sent."""
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE)
    await client.authenticate()
    before = len(emulator.requests)
    with pytest.raises(AgentNotFound, match="nothing was sent"):
        await client.get_agent(key)
    with pytest.raises(AgentNotFound):
        await client.update(key, AgentPatch(upn="x@x.com"))
    with pytest.raises(AgentNotFound):
        await client.offboard(key, key_id="agent_id")
    assert len(emulator.requests) == before
    assert [a["status"] for a in emulator.agents()] == ["active"]


async def test_concurrent_writes_share_one_token_and_pool(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    import asyncio

    agents = [NewAgent(f"00000000-0000-4000-8000-{i:012d}", TENANT, f"+1415555{i:04d}") for i in range(60)]
    emulator.register_numbers(agent.phone_number for agent in agents)
    await asyncio.gather(*(client.onboard(agent) for agent in agents))
    assert len(emulator.agents()) == 60
    assert sum(r.path == "/rest/v1/authenticate" for r in emulator.requests) == 1


async def test_bodies_are_utf8_json_over_either_transport(
    client: SmartCommClient, settings: SmartCommSettings, emulator: SmartCommEmulator
) -> None:
    """The client encodes bodies itself (compact UTF-8 JSON, as httpx's `json=`) and sets the headers the
    service requires (`Content-Type`, checked by the emulator); values outside ASCII arrive as they are."""
    await client.onboard(NewAgent(OID, TENANT, PHONE, upn="zoë.ørsted@x.com"))
    async with SmartCommClient(settings, transport=httpx.ASGITransport(app=emulator.app)) as in_process:
        await in_process.update(OID, AgentPatch(upn="renée@x.com"))
    assert writes(emulator) == [
        (
            "POST",
            AGENTS,
            {"user_object_id": OID, "tenant_id": TENANT, "phone_number": PHONE, "upn": "zoë.ørsted@x.com"},
        ),
        ("PATCH", f"{AGENTS}/{OID}", {"upn": "renée@x.com"}),
    ]
    assert [a["upn"] for a in emulator.agents()] == ["renée@x.com"]


async def test_in_process_transport_works_too(
    settings: SmartCommSettings, emulator: SmartCommEmulator
) -> None:
    """Unit tests of higher layers can run the same client on the emulator without sockets."""
    async with SmartCommClient(settings, transport=httpx.ASGITransport(app=emulator.app)) as client:
        await client.onboard(NewAgent(OID, TENANT, PHONE))
        assert (await client.get_agent(OID)).phone_number == PHONE
    assert [r.method for r in emulator.requests] == ["POST", "POST", "GET"]
