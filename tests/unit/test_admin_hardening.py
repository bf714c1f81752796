"""The admin app against hostile clients, in process (httpx over ASGI): wrong tokens are limited per address
and logged without the token, sign-out revokes the session on the server, the cookie's Secure flag follows
the settings, and the Host check refuses names the listener is not known by (DNS rebinding)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette

from syncd.config.service import AdminSettings
from syncd.config.settings import Settings
from syncd.cycle.engine import CycleResult
from syncd.emulators.server import TestCA
from syncd.service.admin import build_app, session_value
from syncd.service.leader import Leadership
from syncd.service.metrics import Metrics
from syncd.store import Store

TOKEN = "admin-token-for-unit-tests-0123456789"
LIMIT = 10
"""Wrong tokens an address may send per minute before it gets 429 (docs/security.md)."""
ATTACKER, ADMIN = ("203.0.113.7", 40000), ("198.51.100.9", 40001)
BASE = "http://127.0.0.1:8080"


@dataclass
class FakeDaemon:
    """What the admin app reads of a daemon: real settings, store, metrics and (SQLite) leadership."""

    settings: Settings
    store: Store
    leadership: Leadership
    metrics: Metrics = field(default_factory=Metrics)
    started_at: float = 0.0
    running: Any = None
    last_result: CycleResult | None = None
    last_outcome: str | None = None
    systemic_failure: str | None = None
    triggered: list[bool] = field(default_factory=list)

    def trigger(
        self, *, full: bool = False, trigger: str = "manual", force: bool = False
    ) -> asyncio.Future[CycleResult]:
        self.triggered.append(full)
        return asyncio.get_running_loop().create_future()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'syncd.db'}") as opened:
        opened.upgrade()
        yield opened


def make_app(store: Store, **admin: Any) -> Starlette:
    settings = Settings(admin=AdminSettings.model_validate({"token": TOKEN} | admin))
    leadership = Leadership(settings, store)
    leadership.is_leader = True
    return build_app(FakeDaemon(settings, store, leadership))


@pytest.fixture
def app(store: Store) -> Starlette:
    return make_app(store)


@pytest.fixture
async def clients(app: Starlette) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two clients of one app, from two addresses: an attacker's and an admin's."""
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=ATTACKER), base_url=BASE) as attacker,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=ADMIN), base_url=BASE) as admin,
    ):
        yield attacker, admin


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/login", data={"token": token}, headers={"Origin": BASE})


async def test_wrong_bearer_tokens_from_one_address_get_429_then_even_the_right_one(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    attacker, admin = clients
    for i in range(LIMIT):
        answer = await attacker.get("/status", headers=bearer(f"guess-{i:04d}-{'x' * 30}"))
        assert answer.status_code == 401, (i, answer.text)
    refused = await attacker.get("/status", headers=bearer("one-more-guess"))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "try again" in refused.json()["error"]
    # Locked out is locked out: the right token from that address is refused too (guessing learns nothing).
    assert (await attacker.get("/status", headers=bearer(TOKEN))).status_code == 429
    assert (await attacker.post("/resync", headers=bearer(TOKEN))).status_code == 429
    # Another address is not affected.
    assert (await admin.get("/status", headers=bearer(TOKEN))).status_code == 200
    # A request without credentials is not an attempt: still the plain 401.
    assert (await admin.get("/status")).status_code == 401


async def test_wrong_tokens_in_the_sign_in_form_are_limited_too(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    attacker, admin = clients
    for i in range(LIMIT):
        assert (await login(attacker, f"guess-{i}")).status_code == 401
    refused = await login(attacker, TOKEN)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "Too many wrong tokens" in refused.text
    assert "syncd_session" not in refused.headers.get("set-cookie", "")
    # The page with a bearer header from that address is refused the same way, as a page.
    page = await attacker.get("/", headers=bearer(TOKEN))
    assert page.status_code == 429
    assert "text/html" in page.headers["content-type"]
    signed_in = await login(admin, TOKEN)
    assert signed_in.status_code == 303
    assert "syncd_session=" in signed_in.headers["set-cookie"]


async def test_each_wrong_token_is_logged_with_address_and_path_never_the_token(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    attacker, _ = clients
    presented = ["form-guess-0123456789abcdef", "bearer-guess-0123456789abcdef"]
    with structlog.testing.capture_logs() as logs:
        assert (await login(attacker, presented[0])).status_code == 401
        assert (await attacker.get("/status", headers=bearer(presented[1]))).status_code == 401
        assert (await attacker.get("/status", headers=bearer(TOKEN))).status_code == 200
    failed = [entry for entry in logs if entry["event"] == "admin.auth_failed"]
    assert [(entry["client"], entry["path"]) for entry in failed] == [
        (ATTACKER[0], "/login"),
        (ATTACKER[0], "/status"),
    ]
    assert all(entry["log_level"] == "warning" for entry in failed)
    for secret in (*presented, TOKEN):
        assert secret not in repr(logs)


async def test_sign_out_revokes_the_session_on_the_server(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    _, admin = clients
    first = (await login(admin, TOKEN)).cookies["syncd_session"]
    admin.cookies.clear()
    assert (await admin.get("/", headers={"Cookie": f"syncd_session={first}"})).status_code == 200
    out = await admin.post("/logout", headers={"Origin": BASE, "Cookie": f"syncd_session={first}"})
    assert out.status_code == 303
    assert 'syncd_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    # The copied cookie is refused now: the page sends it to /login, /status says 401.
    again = await admin.get("/", headers={"Cookie": f"syncd_session={first}"})
    assert again.status_code == 303
    assert again.headers["location"] == "/login"
    assert (await admin.get("/status", headers={"Cookie": f"syncd_session={first}"})).status_code == 401
    # Each sign-in has its own value: a new one works, and signing it out leaves a third alone.
    second = (await login(admin, TOKEN)).cookies["syncd_session"]
    admin.cookies.clear()
    third = (await login(admin, TOKEN)).cookies["syncd_session"]
    admin.cookies.clear()
    assert len({first, second, third}) == 3
    await admin.post("/logout", headers={"Origin": BASE, "Cookie": f"syncd_session={second}"})
    assert (await admin.get("/", headers={"Cookie": f"syncd_session={second}"})).status_code == 303
    assert (await admin.get("/", headers={"Cookie": f"syncd_session={third}"})).status_code == 200


async def test_a_session_signed_before_a_restart_is_refused(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    # Sign-outs live in the process's memory: a value from before this start (this app was built just now)
    # could be one that was signed out, so none is accepted.
    _, admin = clients
    earlier = session_value(TOKEN, int(time.time()) - 60)
    assert (await admin.get("/", headers={"Cookie": f"syncd_session={earlier}"})).status_code == 303


async def test_the_cookie_is_secure_with_admin_secure_cookie_over_plain_http(store: Store) -> None:
    for admin, secure in (({}, False), ({"secure_cookie": True}, True)):
        transport = httpx.ASGITransport(app=make_app(store, **admin), client=ADMIN)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            answer = await login(client, TOKEN)
            assert answer.status_code == 303
            flags = [flag.strip().lower() for flag in answer.headers["set-cookie"].split(";")]
            assert ("secure" in flags) is secure, (admin, flags)
            assert {"httponly", "samesite=strict", "path=/"} <= set(flags)
            out = await client.post("/logout", headers={"Origin": BASE})
            assert ("secure" in out.headers["set-cookie"].lower()) is secure


async def test_the_cookie_is_always_secure_when_the_listener_has_tls(store: Store, tmp_path: Path) -> None:
    cert, key = TestCA(tmp_path / "ca").server_cert_files()
    app = make_app(store, tls_cert_path=str(cert), tls_key_path=str(key))
    # Even a request that reached the app as plain http (here: in process) gets a Secure cookie.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=ADMIN), base_url=BASE
    ) as client:
        answer = await login(client, TOKEN)
    assert answer.status_code == 303
    assert "secure" in [flag.strip().lower() for flag in answer.headers["set-cookie"].split(";")]


@pytest.mark.parametrize("path", ["/metrics", "/login", "/status", "/", "/explain/someone"])
async def test_a_host_the_listener_is_not_known_by_is_refused(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], path: str
) -> None:
    _, admin = clients
    headers = bearer(TOKEN) | {"Host": "attacker.example:8080"}
    answer = await admin.get(path, headers=headers)
    assert answer.status_code == 400
    assert "host" in answer.text.lower()
    assert answer.headers["content-type"].startswith("text/plain")
    posted = await admin.post("/login", data={"token": TOKEN}, headers={"Host": "attacker.example"})
    assert posted.status_code == 400
    assert "set-cookie" not in posted.headers


async def test_probes_answer_whatever_the_host(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    _, admin = clients
    for path in ("/healthz", "/readyz"):
        answer = await admin.get(path, headers={"Host": "10.244.3.17:8080"})
        assert answer.status_code == 200, (path, answer.text)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8080",
        "localhost:8080",
        "LOCALHOST.",
        "[::1]:8080",
        socket.gethostname(),
        f"{socket.gethostname()}:8080",
    ],
)
async def test_the_default_hosts_are_answered(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], host: str
) -> None:
    _, admin = clients
    assert (await admin.get("/metrics", headers={"Host": host})).status_code == 200


async def test_allowed_hosts_and_x_forwarded_host(store: Store) -> None:
    app = make_app(store, allowed_hosts=["syncd.example.com"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=ADMIN), base_url=BASE
    ) as client:
        assert (await client.get("/metrics", headers={"Host": "Syncd.Example.com:443"})).status_code == 200
        assert (await client.get("/metrics", headers={"Host": "127.0.0.1:8080"})).status_code == 200
        assert (await client.get("/metrics", headers={"Host": "other.example.com"})).status_code == 400
        # Behind a proxy: every host X-Forwarded-Host names must be allowed as well.
        ok = {"Host": "127.0.0.1:8080", "X-Forwarded-Host": "syncd.example.com"}
        assert (await client.get("/metrics", headers=ok)).status_code == 200
        bad = {"Host": "127.0.0.1:8080", "X-Forwarded-Host": "syncd.example.com, attacker.example"}
        assert (await client.get("/metrics", headers=bad)).status_code == 400
