"""The SmartCommunicator emulator's per-agent data (`AgentData`: notes and a count of calls), driven with
plain httpx: set and read through the control API, moved by a PATCH of `user_object_id` with `transfer_data:
true`, left behind without it, discarded by an offboarding, absent for a new agent.

This is the assumption docs/spec/smartcommunicator-agents-api.md states for what the spec leaves open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from syncd.emulators.smartcomm import (
    DEFAULT_CUSTOMER_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    SmartCommEmulator,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

BASE_URL = "https://atmosphere-api.intelepeer.com"
AGENTS = f"/rest/v1/smartcomm/{DEFAULT_CUSTOMER_ID}/agents"
TENANT = "f67efc8f-df44-47c5-8b50-fe86d1858420"
OLD = "e2f19e0a-0490-41f4-8509-44a3390ae0b6"
NEW = "0c5d1e9a-2b3f-4a6c-9d8e-7f1a2b3c4d5e"
GUID = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38"
TN = "+13132095887"
EMPTY = {"notes": "", "calls": 0}
DATA = {"notes": "prefers SMS", "calls": 12}


@pytest.fixture
def emu() -> SmartCommEmulator:
    emulator = SmartCommEmulator()
    emulator.register_tenants([TENANT])  # strict by default: the account's tenant and numbers registered
    emulator.register_numbers([TN])
    emulator.add_agent(user_object_id=OLD, tenant_id=TENANT, phone_number=TN, consistency_id=GUID)
    return emulator


@pytest.fixture
async def client(emu: SmartCommEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app), base_url=BASE_URL) as client:
        login = await client.post(
            "/rest/v1/authenticate", json={"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
        )
        client.headers["Authorization"] = f"Bearer {login.json()['token']}"
        yield client


async def test_the_control_api_sets_and_reads_an_agents_data(
    emu: SmartCommEmulator, client: httpx.AsyncClient
) -> None:
    assert (await client.get(f"/_emulator/agents/{OLD}/data")).json() == EMPTY
    stored = await client.put(f"/_emulator/agents/{OLD}/data", json=DATA)
    assert (stored.status_code, stored.json()) == (200, DATA)
    calls_only = await client.put(f"/_emulator/agents/{OLD}/data", json={"calls": 13})
    assert calls_only.json() == {"notes": "prefers SMS", "calls": 13}
    assert emu.agent_data(OLD) == {"notes": "prefers SMS", "calls": 13}
    missing = await client.put(f"/_emulator/agents/{NEW}/data", json=DATA)
    assert missing.status_code == 404
    wrong = await client.put(f"/_emulator/agents/{OLD}/data", json={"notes": "x", "mood": "happy"})
    assert wrong.status_code == 400
    assert not [r for r in emu.requests if "/_emulator/" in r.path]  # the control API is never logged


@pytest.mark.parametrize(
    ("body", "moves"),
    [({"transfer_data": True}, True), ({"transfer_data": False}, False), ({}, False)],
    ids=["transfer_data true", "transfer_data false", "absent"],
)
async def test_a_new_object_id_takes_the_data_only_with_transfer_data(
    emu: SmartCommEmulator, client: httpx.AsyncClient, body: dict[str, bool], moves: bool
) -> None:
    emu.set_agent_data(OLD, **DATA)  # type: ignore[arg-type]
    response = await client.patch(
        f"{AGENTS}/{GUID}", params={"key_id": "consistency_id"}, json={"user_object_id": NEW} | body
    )
    assert response.status_code == 200
    assert response.json()["user_object_id"] == NEW
    assert emu.agent_data(NEW) == (DATA if moves else EMPTY)
    assert emu.agent_data(OLD) == (EMPTY if moves else DATA)  # without it, the data stays behind


async def test_other_patches_keep_the_data_and_offboarding_discards_it(
    emu: SmartCommEmulator, client: httpx.AsyncClient
) -> None:
    emu.set_agent_data(OLD, **DATA)  # type: ignore[arg-type]
    assert (await client.patch(f"{AGENTS}/{OLD}", json={"upn": "jane@example.com"})).status_code == 200
    assert emu.agent_data(OLD) == DATA
    assert (await client.delete(f"{AGENTS}/{OLD}")).status_code == 200
    assert emu.agent_data(OLD) == EMPTY
    again = await client.post(
        AGENTS, json={"user_object_id": OLD, "tenant_id": TENANT, "phone_number": TN, "consistency_id": GUID}
    )
    assert again.status_code == 200
    assert emu.agent_data(OLD) == EMPTY  # onboarded afresh: no data of its own
