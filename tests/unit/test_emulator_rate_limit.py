"""The SmartCommunicator emulator's optional rate limit: the token bucket itself (plain times), and the
emulator answering 429 with Retry-After once it is empty, applying nothing, sparing logins, and its
control API. The rates are so low that no token comes back while a test runs: no test waits on time."""

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
from syncd.emulators.smartcomm.ratelimit import RateLimit, TokenBucket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

AGENTS = f"/rest/v1/smartcomm/{DEFAULT_CUSTOMER_ID}/agents"
SLOW = 0.001
"""Requests per second: one token in 1,000 s."""


def onboarding(n: int) -> dict[str, str]:
    return {
        "user_object_id": f"00000000-0000-4000-8000-{n:012d}",
        "tenant_id": "f67efc8f-df44-47c5-8b50-fe86d1858420",
        "phone_number": f"+1415555{n:04d}",
        "upn": f"user{n}@contoso.com",
    }


def test_the_bucket_lets_a_burst_through_then_the_refill_rate() -> None:
    bucket = TokenBucket(RateLimit(10, burst=3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [None, None, None]
    assert bucket.take(0.0) == pytest.approx(0.1)  # one token in 1/10 s
    assert bucket.take(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1) is None
    assert bucket.take(10.0) is None  # refilled, but never beyond the burst
    assert [bucket.take(10.0) for _ in range(3)] == [None, None, pytest.approx(0.1)]


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (1, 0)])
def test_a_rate_limit_must_be_positive(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="RateLimit"):
        RateLimit(rate, burst)


@pytest.fixture
def emu() -> SmartCommEmulator:
    # What is tested is the rate limit, not the registries: every tenant and E.164 number is registered.
    return SmartCommEmulator(
        rate_limit=RateLimit(SLOW, burst=2), registered_tenants=None, ten_dlc_numbers=None
    )


@pytest.fixture
async def client(emu: SmartCommEmulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://smartcomm.test") as client:
        yield client


async def login(client: httpx.AsyncClient) -> dict[str, str]:
    credentials = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
    response = await client.post("/rest/v1/authenticate", json=credentials)
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_an_empty_bucket_answers_429_with_retry_after_and_applies_nothing(
    emu: SmartCommEmulator, client: httpx.AsyncClient
) -> None:
    headers = await login(client)
    answers = [await client.post(AGENTS, json=onboarding(n), headers=headers) for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["retry-after"] == "1000"
    assert answers[2].json() == {"message": "Too Many Requests"}
    assert len(emu.agents()) == 2
    refused = emu.requests[-1]
    assert (refused.status, refused.fault, refused.applied) == (429, "throttle", False)
    # Logins are not limited, and each token does not get a bucket of its own.
    other = await login(client)
    assert (await client.get(AGENTS, headers=other)).status_code == 429


async def test_the_control_api_sets_reads_and_lifts_the_limit(
    emu: SmartCommEmulator, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/_emulator/rate_limit")).json() == {"rate_per_s": SLOW, "burst": 2}
    response = await client.put("/_emulator/rate_limit", json={"rate_per_s": 5})
    assert response.json() == {"rate_per_s": 5, "burst": 5}  # burst: one second's worth
    assert emu.rate_limit == RateLimit(5, burst=5)
    assert (await client.put("/_emulator/rate_limit", json={"rate_per_s": 0})).status_code == 400
    assert (await client.put("/_emulator/rate_limit", json={"rate": 5})).status_code == 400
    assert (await client.put("/_emulator/rate_limit", json={"rate_per_s": None})).json()["rate_per_s"] is None
    headers = await login(client)
    statuses = [
        (await client.post(AGENTS, json=onboarding(n), headers=headers)).status_code for n in range(5)
    ]
    assert statuses == [200] * 5
    assert (await client.post("/_emulator/reset")).status_code == 200
    assert emu.rate_limit == RateLimit(SLOW, burst=2)  # the constructor's, with a full bucket
