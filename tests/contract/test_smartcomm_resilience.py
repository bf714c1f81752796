"""Tokens, retries, throttling, timeouts, dropped connections and TLS: the client under the emulator's faults.

Every assertion about attempts and timing is read from the emulator's request log.
"""

from __future__ import annotations

import asyncio
import io

import pytest
import structlog

from syncd.config.logs import configure_logging
from syncd.config.settings import SmartCommSettings
from syncd.core.model import NewAgent
from syncd.emulators.smartcomm import DEFAULT_PASSWORD, Faults, ScriptedFault, SmartCommEmulator
from syncd.smartcomm import (
    AgentExists,
    BadCredentials,
    CustomerForbidden,
    ErrorCategory,
    ServiceUnavailable,
    SmartCommClient,
    Throttled,
    TlsVerificationError,
    TokenRejected,
    TransportFailure,
)
from tests.clocks import FakeClock
from tests.contract.conftest import variant

TENANT = "f67efc8f-df44-47c5-8b50-fe86d1858420"
OID = "f5449088-5c43-40dc-854c-17ca2b74d998"
PHONE = "+15727982113"
AGENTS = "/rest/v1/smartcomm/12345/agents"


@pytest.fixture(autouse=True)
def account(emulator: SmartCommEmulator) -> None:
    """The account as the customer set it up: its tenant and these numbers registered (the emulator, as the
    service, refuses any other)."""
    emulator.register_tenants([TENANT])
    emulator.register_numbers([PHONE])


AUTH = "/rest/v1/authenticate"


def calls(emulator: SmartCommEmulator) -> list[tuple[str, str, int | None]]:
    return [(r.method, r.path, r.status) for r in emulator.requests]


async def test_a_token_is_renewed_before_it_expires_and_then_reused(
    settings: SmartCommSettings, emulator: SmartCommEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 100 s token is renewed a tenth of its lifetime (10 s) before its `exp`. The client and the
    emulator share a clock the test moves, with seconds of margin on either side of each moment."""
    clock = FakeClock()
    monkeypatch.setattr(emulator, "clock", clock)
    emulator.token_lifetime_s = 100.0
    emulator.add_agent(user_object_id=OID, tenant_id=TENANT, phone_number=PHONE)
    async with SmartCommClient(settings, clock=clock) as client:
        await client.get_agent(OID)  # the first token, issued now: it expires 100-101 s from now
        clock.advance(80)  # 10 s before its renewal is due
        await client.get_agent(OID)
        clock.advance(15)  # renewal due, and the first token still valid for 5-6 s
        await client.get_agent(OID)
        clock.advance(50)  # the first token has expired; the second is 45 s old
        await client.get_agent(OID)
    log = emulator.requests
    # Logins: before the first call and before the third (the renewal), no other.
    assert [r.path == AUTH for r in log] == [True, False, False, True, False, False]
    api = [r for r in log if r.path != AUTH]
    assert [r.status for r in api] == [200] * 4, "a request went out with an expired token"
    first, second = api[0].token_id, api[2].token_id
    assert first != second
    assert [r.token_id for r in api] == [first, first, second, second]


async def test_revoked_token_is_renewed_once_on_401(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    await client.list_agents()
    emulator.revoke_tokens()
    await client.list_agents()
    assert calls(emulator) == [
        ("POST", AUTH, 200),
        ("GET", AGENTS, 404),
        ("GET", AGENTS, 401),
        ("POST", AUTH, 200),
        ("GET", AGENTS, 404),
    ]


async def test_a_second_401_with_a_fresh_token_is_an_error(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    emulator.inject(ScriptedFault(kind="status", status=401, path_contains="/agents", times=5))
    with pytest.raises(TokenRejected) as caught:
        await client.list_agents()
    assert caught.value.category is ErrorCategory.AUTH
    assert calls(emulator) == [
        ("POST", AUTH, 200),
        ("GET", AGENTS, 401),
        ("POST", AUTH, 200),
        ("GET", AGENTS, 401),
    ]


async def test_wrong_password_is_a_clear_error_without_retry_storm(
    settings: SmartCommSettings, emulator: SmartCommEmulator
) -> None:
    wrong = variant(settings, password="not-the-password")
    async with SmartCommClient(wrong) as client:
        results = await asyncio.gather(*(client.list_agents() for _ in range(20)), return_exceptions=True)
        with pytest.raises(BadCredentials) as later:
            await client.onboard(NewAgent(OID, TENANT, PHONE))
    assert all(isinstance(result, BadCredentials) for result in results)
    first = results[0]
    assert isinstance(first, BadCredentials)
    assert "smartcomm.password" in str(first)
    assert "not-the-password" not in str(first)
    assert "not asking again" in str(later.value)
    assert calls(emulator) == [("POST", AUTH, 401)]


async def test_wrong_customer_id_is_forbidden(
    settings: SmartCommSettings, emulator: SmartCommEmulator
) -> None:
    async with SmartCommClient(variant(settings, customer_id=99999)) as client:
        with pytest.raises(CustomerForbidden) as caught:
            await client.list_agents()
    assert caught.value.status == 403
    assert calls(emulator) == [("POST", AUTH, 200), ("GET", "/rest/v1/smartcomm/99999/agents", 403)]


async def test_5xx_is_retried_until_success(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.inject(ScriptedFault(kind="status", status=503, method="POST", path_contains="/agents", times=2))
    await client.onboard(NewAgent(OID, TENANT, PHONE))
    assert [(m, s) for m, p, s in calls(emulator) if p == AGENTS] == [
        ("POST", 503),
        ("POST", 503),
        ("POST", 200),
    ]
    assert len(emulator.agents()) == 1


async def test_5xx_gives_up_after_max_attempts(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.inject(ScriptedFault(kind="status", status=502, path_contains="/agents", times=10))
    with pytest.raises(ServiceUnavailable) as caught:
        await client.list_agents()
    assert caught.value.attempts == 4
    assert [s for _, p, s in calls(emulator) if p == AGENTS] == [502, 502, 502, 502]


async def test_undocumented_5xx_is_not_retried(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.inject(ScriptedFault(kind="status", status=501, path_contains="/agents", times=10))
    with pytest.raises(ServiceUnavailable):
        await client.list_agents()
    assert [s for _, p, s in calls(emulator) if p == AGENTS] == [501]


async def test_429_waits_for_retry_after(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.inject(ScriptedFault(kind="throttle", retry_after_s=1, path_contains="/agents", times=1))
    await client.list_agents()
    api = [r for r in emulator.requests if r.path == AGENTS]
    assert [r.status for r in api] == [429, 404]
    assert api[1].at - api[0].at >= 1.0


async def test_too_long_retry_after_ends_as_throttled(
    settings: SmartCommSettings, emulator: SmartCommEmulator
) -> None:
    emulator.inject(ScriptedFault(kind="throttle", retry_after_s=600, path_contains="/agents", times=1))
    async with SmartCommClient(variant(settings, retry_after_max_s=30.0)) as client:
        with pytest.raises(Throttled) as caught:
            await client.list_agents()
    assert caught.value.retry_after_s == 600.0
    assert [s for _, p, s in calls(emulator) if p == AGENTS] == [429]


async def test_authentication_itself_is_retried(client: SmartCommClient, emulator: SmartCommEmulator) -> None:
    emulator.inject(ScriptedFault(kind="status", status=503, path_contains=AUTH, times=2))
    await client.list_agents()
    assert [s for _, p, s in calls(emulator) if p == AUTH] == [503, 503, 200]


async def test_timeout_then_retry_is_safe(settings: SmartCommSettings, emulator: SmartCommEmulator) -> None:
    """The first POST is applied but its answer comes too late; the retry must not create a second agent."""
    # The answer comes 4 s after the 1 s timeout (it is never waited for); the retry has the whole second.
    emulator.inject(ScriptedFault(kind="delay_after", delay_s=5.0, method="POST", path_contains="/agents"))
    async with SmartCommClient(variant(settings, timeout_s=1.0)) as client:
        with pytest.raises(AgentExists) as caught:
            await client.onboard(NewAgent(OID, TENANT, PHONE))
    assert caught.value.outcome_was_unknown
    assert caught.value.category is ErrorCategory.ALREADY_EXISTS
    posts = [r for r in emulator.requests if r.method == "POST" and r.path == AGENTS]
    assert [(r.applied, r.fault) for r in posts] == [(True, "delay_after"), (False, None)]
    assert [a["user_object_id"] for a in emulator.agents()] == [OID]


async def test_dropped_connection_before_apply_is_retried(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    emulator.inject(ScriptedFault(kind="drop", method="POST", path_contains="/agents"))
    await client.onboard(NewAgent(OID, TENANT, PHONE))
    posts = [r for r in emulator.requests if r.method == "POST" and r.path == AGENTS]
    assert [(r.status, r.applied) for r in posts] == [(None, False), (200, True)]
    assert len(emulator.agents()) == 1


async def test_dropped_connection_after_apply_is_adoption(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    emulator.inject(ScriptedFault(kind="drop_after", method="POST", path_contains="/agents"))
    with pytest.raises(AgentExists) as caught:
        await client.onboard(NewAgent(OID, TENANT, PHONE))
    assert caught.value.outcome_was_unknown
    assert len(emulator.agents()) == 1


async def test_unreachable_service_gives_up_after_max_attempts(
    client: SmartCommClient, emulator: SmartCommEmulator
) -> None:
    await client.authenticate()
    emulator.faults = Faults(drop_rate=1.0)
    with pytest.raises(TransportFailure) as caught:
        await client.list_agents()
    assert caught.value.attempts == 4
    assert caught.value.category is ErrorCategory.UNAVAILABLE
    assert [s for _, p, s in calls(emulator) if p == AGENTS] == [None, None, None, None]


async def test_nothing_listening_is_a_transport_failure(settings: SmartCommSettings) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = variant(settings, base_url=f"https://127.0.0.1:{port}", max_attempts=2)
    async with SmartCommClient(closed) as client:
        with pytest.raises(TransportFailure) as caught:
            await client.list_agents()
    assert caught.value.attempts == 2


async def test_untrusted_certificate_fails_fast_naming_ca_bundle(
    settings: SmartCommSettings, emulator: SmartCommEmulator
) -> None:
    async with SmartCommClient(variant(settings, ca_bundle="")) as client:
        with pytest.raises(TlsVerificationError) as caught:
            await client.list_agents()
    assert "smartcomm.ca_bundle" in str(caught.value)
    assert caught.value.attempts == 1
    assert emulator.requests == []


async def test_logs_show_attempts_but_never_secrets(
    settings: SmartCommSettings, emulator: SmartCommEmulator
) -> None:
    out = io.StringIO()
    configure_logging(level="debug", json=True, stream=out)
    try:
        emulator.inject(ScriptedFault(kind="status", status=503, path_contains="/agents", times=1))
        async with SmartCommClient(settings) as client:
            await client.onboard(NewAgent(OID, TENANT, PHONE))
            emulator.revoke_tokens()
            await client.list_agents()
        async with SmartCommClient(variant(settings, password="wrong-password-123")) as client:
            with pytest.raises(BadCredentials):
                await client.list_agents()
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    assert '"event": "smartcomm.retry"' in text
    assert '"attempt": 1' in text
    assert DEFAULT_PASSWORD not in text
    assert "wrong-password-123" not in text
    assert "eyJ" not in text  # no JWT, whole or in part
