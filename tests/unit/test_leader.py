"""Leader election's pure decisions (poll period, keepalives, lock key, advertised admin URL) and where a
standby may send the admin bearer when it forwards a resync (https, or plain http to loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from syncd.config.service import AdminSettings
from syncd.config.settings import Settings
from syncd.service.admin import build_app
from syncd.service.leader import (
    ForwardRefused,
    Leadership,
    advertised_admin_url,
    forward_refusal,
    forward_resync,
    keepalive_settings,
    poll_period_s,
)
from syncd.store import Store
from syncd.store.schema import LEADER_KEY, LEGACY_LOCK_KEY, lock_key
from tests.unit.test_admin_hardening import FakeDaemon

SECRET = "admin-token-for-forwarding-tests-0123456789"


@pytest.mark.parametrize(
    ("takeover_s", "poll_s"),
    [(30.0, 10.0), (3.0, 1.0), (1.5, 1.0), (0.1, 1.0), (300.0, 100.0)],
)
def test_poll_period_is_a_third_of_the_takeover_and_at_least_a_second(
    takeover_s: float, poll_s: float
) -> None:
    assert poll_period_s(takeover_s) == poll_s


@pytest.mark.parametrize(
    ("takeover_s", "idle", "interval", "count"),
    [(30.0, 10, 3, 3), (3.0, 1, 1, 3), (0.5, 1, 1, 3), (90.0, 30, 10, 3)],
)
def test_keepalives_declare_a_silent_peer_dead_within_the_takeover(
    takeover_s: float, idle: int, interval: int, count: int
) -> None:
    settings = keepalive_settings(takeover_s)
    assert settings == {"idle": idle, "interval": interval, "count": count}
    if takeover_s >= 9:  # below that, whole seconds of at least 1 cannot fit
        assert (
            settings["idle"] + settings["interval"] * settings["count"] + poll_period_s(takeover_s)
            <= takeover_s
        )


def test_the_public_schema_keeps_the_legacy_key_and_others_get_their_own() -> None:
    assert lock_key("public") == LEGACY_LOCK_KEY
    keys = {lock_key(f"syncd_test_{i}") for i in range(1000)}
    assert len(keys) == 1000
    assert all(0 <= key < 2**62 for key in keys)
    assert lock_key("tenant_a") == lock_key("tenant_a")


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("0.0.0.0", 8080, "http://node-1:8080"),  # noqa: S104 - a setting, not a bind
        ("::", 8080, "http://node-1:8080"),
        ("", 8080, "http://node-1:8080"),
        ("127.0.0.1", 9000, "http://127.0.0.1:9000"),
        ("10.0.0.5", 8080, "http://10.0.0.5:8080"),
        ("::1", 8080, "http://[::1]:8080"),
        ("syncd.internal", 8080, "http://syncd.internal:8080"),
    ],
)
def test_advertised_admin_url(host: str, port: int, url: str) -> None:
    assert advertised_admin_url(host, port, "node-1") == url


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "https://node-1:8443"),  # noqa: S104 - a setting, not a bind
        ("::1", "https://[::1]:8443"),
        ("syncd.internal", "https://syncd.internal:8443"),
    ],
)
def test_a_leader_with_tls_advertises_https(host: str, url: str) -> None:
    assert advertised_admin_url(host, 8443, "node-1", tls=True) == url


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://node-1:8443", False),
        ("https://10.0.0.9:8443", False),
        ("http://127.0.0.1:8080", False),
        ("http://127.8.9.10:8080", False),
        ("http://[::1]:8080", False),
        ("http://localhost:8080", False),
        ("http://LOCALHOST.:8080", False),
        ("http://node-1:8080", True),
        ("http://10.0.0.9:8080", True),
        ("http://[2001:db8::1]:8080", True),
        ("http://localhost.attacker.example:8080", True),
        ("ftp://127.0.0.1/", True),
        ("https://", True),
    ],
)
def test_the_bearer_goes_only_over_https_or_to_loopback(url: str, refused: bool) -> None:
    reason = forward_refusal(url)
    assert (reason is not None) is refused, reason


@dataclass
class Receiver:
    """A local HTTP(S) server standing in for a leader: it records every connection and request."""

    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


@contextlib.asynccontextmanager
async def receiver(tls: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    handlers: set[asyncio.Task[Any]] = set()
    seen = Receiver(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        seen.connections += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
            seen.requests.append(head + body)
            payload = b'{"queued": true, "full": false, "force": false}'
            writer.write(
                b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(payload), payload)
            )
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    seen.port = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()
        if handlers:
            await asyncio.wait(handlers, timeout=5)


@pytest.fixture
def leader_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """A host name that is not loopback by its spelling but resolves to 127.0.0.1 (traffic stays local)."""
    name, real = "leader.test", socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        # anyio passes the name IDNA-encoded.
        return real("127.0.0.1" if host in (name, name.encode()) else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return name


def fresh(url: str) -> dict[str, Any]:
    return {"admin_url": url, "heartbeat_at": time.time(), "host": "node-2", "pid": 42}


async def test_a_standby_never_forwards_the_bearer_to_a_leader_whose_heartbeat_is_stale() -> None:
    async with receiver() as local:
        url = f"http://127.0.0.1:{local.port}"  # loopback: only the heartbeat can stop the forward
        stale = {"admin_url": url, "heartbeat_at": time.time() - 120}
        for leader in (stale, {"admin_url": url}):
            answer = await forward_resync(
                leader,
                own_url="http://node-1:8080",
                authorization=f"Bearer {SECRET}",
                body=b"{}",
                wait=None,
                stale_after_s=30.0,
            )
            assert answer is None
        assert local.connections == 0
        assert local.requests == []
        # The same receiver answers a leader whose heartbeat is fresh: nothing else kept the bearer home.
        answer = await forward_resync(
            fresh(url),
            own_url="http://node-1:8080",
            authorization=f"Bearer {SECRET}",
            body=b"{}",
            wait=None,
            stale_after_s=30.0,
        )
        assert answer is not None
        assert answer[0] == 202
        assert len(local.requests) == 1


async def test_plain_http_to_another_host_is_refused_and_nothing_is_sent(leader_name: str) -> None:
    async with receiver() as local:
        with pytest.raises(ForwardRefused, match="plain http"):
            await forward_resync(
                fresh(f"http://{leader_name}:{local.port}"),
                own_url="http://node-1:8080",
                authorization=f"Bearer {SECRET}",
                body=b"{}",
                wait=None,
            )
        assert local.connections == 0
        assert local.requests == []
        # The same receiver is reachable, over loopback, so the refusal above is not an accident of routing.
        answer = await forward_resync(
            fresh(f"http://127.0.0.1:{local.port}"),
            own_url="http://node-1:8080",
            authorization=f"Bearer {SECRET}",
            body=b"{}",
            wait=None,
        )
        assert answer is not None
        assert answer[0] == 202
        assert len(local.requests) == 1
        assert f"Bearer {SECRET}".encode() in local.requests[0]


async def test_https_to_another_host_is_forwarded_and_verified(leader_name: str, tmp_path: Path) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(leader_name).configure_cert(server_context)
    ca_file = tmp_path / "admin-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    async with receiver(server_context) as local:
        url = f"https://{leader_name}:{local.port}"
        answer = await forward_resync(
            fresh(url), own_url="https://node-1:8443", authorization=f"Bearer {SECRET}", body=b"{}",
            wait=None, ca_file=str(ca_file),
        )  # fmt: skip
        assert answer is not None
        assert (answer[0], answer[1]["forwarded_to"]) == (202, url)
        assert len(local.requests) == 1
        # Without the admin CA the certificate does not verify: no request, and no answer.
        unverified = await forward_resync(
            fresh(url), own_url="https://node-1:8443", authorization=f"Bearer {SECRET}", body=b"{}", wait=None
        )
        assert unverified is None
        assert len(local.requests) == 1


async def test_a_standby_refuses_to_forward_over_plain_http_and_says_why(
    leader_name: str, tmp_path: Path
) -> None:
    async with receiver() as local:
        settings = Settings(admin=AdminSettings.model_validate({"token": SECRET}))
        with Store(f"sqlite:///{tmp_path / 'syncd.db'}") as store:
            store.upgrade()
            store.set_value(LEADER_KEY, json.dumps(fresh(f"http://{leader_name}:{local.port}")))
            app = build_app(FakeDaemon(settings, store, Leadership(settings, store)))  # a standby
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
                answer = await client.post("/resync", headers={"Authorization": f"Bearer {SECRET}"})
        assert answer.status_code == 503
        assert "standby" in answer.json()["error"]
        assert "plain http" in answer.json()["error"]
        assert answer.json()["leader"]["admin_url"] == f"http://{leader_name}:{local.port}"
        assert local.connections == 0
        assert local.requests == []
