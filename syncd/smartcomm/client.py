"""Async client of the SmartCommunicator agents API (IntelePeer Atmosphere) over one pooled httpx client.

Every call goes through `SmartCommClient._request`, which owns the bearer token, retries with jittered
exponential backoff (timeouts, connection errors, 500/502/503/504, 429 honouring Retry-After), the single
re-authentication on 401, and the logging of each attempt. Failures leave as `syncd.smartcomm.errors`
types only. While a `gate` is set (`syncd.smartcomm.gate`: the apply step's adaptive concurrency and pace),
every attempt of an authenticated call passes it.

Writes are retried too, because none of them can double-apply: the service keys agents by object ID, so a
POST repeated after a lost answer gets "already exists" (raised as `AgentExists` with
`outcome_was_unknown=True`, which the engine adopts), a repeated PATCH sets the same values, and a repeated
DELETE finds the agent gone (`AgentNotFound`, which the engine counts as done).

The transport is httpx's API on aiohttp's connection pool (`httpx-aiohttp`): httpx's own async transport
costs 6-11x more CPU per request (docs/spec/graph-and-msal.md, "Measured costs").
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import structlog
from httpx_aiohttp import AiohttpTransport

from syncd import __version__
from syncd.config.logs import debug_enabled
from syncd.config.settings import SmartCommSettings
from syncd.config.tls import is_tls_verification_failure, ssl_context
from syncd.core.backoff import backoff_delay_s
from syncd.core.model import Agent, AgentPatch, Member, NewAgent, ReadKey, WriteKey
from syncd.core.pacing import WritePacer
from syncd.core.text import path_segment
from syncd.smartcomm.errors import (
    AgentNotFound,
    BadCredentials,
    SmartCommError,
    TlsVerificationError,
    TokenRejected,
    TransportFailure,
    UnexpectedResponse,
    classify,
    is_retryable_status,
)
from syncd.smartcomm.gate import RequestGate
from syncd.smartcomm.memo import AgentsMemo, body_digest
from syncd.smartcomm.tokens import TokenSource

log = structlog.get_logger("syncd.smartcomm")

AUTHENTICATE_PATH = "/rest/v1/authenticate"
URL_CACHE_SIZE = 16
"""Parsed URLs kept for paths without parameters (the agents list, onboarding, authentication)."""
JSON_BODY = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
"""Request bodies as httpx encodes `json=` (compact, UTF-8, no NaN): the bytes sent are the same."""


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Pure: seconds from `now` (epoch seconds) that a Retry-After header asks for, or None if absent/invalid.

    Both forms of RFC 9110 are accepted: delay-seconds and an HTTP-date.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - now, 0.0)


def parse_agent(item: object, like: Member | None = None) -> Agent | None:
    """Pure: an `Agent` from one JSON object of the API, or None if it lacks a required field. Its values
    equal to those of `like` (the person's desired state, when known) are `like`'s own strings: a full cycle
    holds both, and pays for each value once."""
    if not isinstance(item, dict):
        return None
    # Spelt out, not looped over: a full cycle parses every agent of the account (the list's CPU).
    get = item.get
    object_id, tenant_id, phone_number, status = (
        get("user_object_id"),
        get("tenant_id"),
        get("phone_number"),
        get("status"),
    )
    if not (
        isinstance(object_id, str)
        and object_id
        and isinstance(tenant_id, str)
        and tenant_id
        and isinstance(phone_number, str)
        and phone_number
        and isinstance(status, str)
        and status
    ):
        return None
    upn, consistency_id = get("upn"), get("consistency_id")
    if like is not None:
        object_id = like.object_id if like.object_id == object_id else object_id
        phone_number = like.phone_number if like.phone_number == phone_number else phone_number
        if consistency_id is not None and like.consistency_id == consistency_id:
            consistency_id = like.consistency_id
        if upn is not None and like.upn == upn:
            upn = like.upn
    # Positional, in the order of Agent's fields (a frozen dataclass takes keywords at half the speed). A
    # full cycle holds every agent at once: the few distinct values (tenant, status) share one string.
    return Agent(
        object_id,
        sys.intern(tenant_id),
        phone_number,
        sys.intern(status),
        upn if isinstance(upn, str) and upn else None,
        consistency_id if isinstance(consistency_id, str) and consistency_id else None,
    )


def _agent_or_object(like: Mapping[str, Member] | None) -> Callable[[dict[str, Any]], object]:
    """A `json.loads` object hook: an agent record as an `Agent` (sharing strings with `like`, the desired
    members by object ID, when given), anything else as it is."""

    def hook(item: dict[str, Any]) -> object:
        if "user_object_id" in item:
            object_id = item["user_object_id"]
            known = like.get(object_id) if like is not None and isinstance(object_id, str) else None
            agent = parse_agent(item, known)
            if agent is not None:
                return agent
        return item

    return hook


class SmartCommClient:
    """The agents API of one customer account. Use as `async with SmartCommClient(settings) as client:`.

    Safe for concurrent use: all calls share one connection pool and one token.
    """

    def __init__(
        self,
        settings: SmartCommSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        on_throttled: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`transport` replaces the network (tests: an in-process emulator); `on_throttled` is called for
        every 429 answer, retried ones included (the daemon counts them); `clock` is the wall clock the
        token's renewal is timed by (epoch seconds; tests move it instead of sleeping)."""
        self._settings = settings
        self._on_throttled = on_throttled
        if transport is None:
            limits = httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            )
            transport = AiohttpTransport(
                verify=ssl_context(settings.ca_bundle), limits=limits, trust_env=False
            )
        self._transport = transport
        self._base_url = settings.base_url.rstrip("/")
        self._timeout = httpx.Timeout(
            settings.timeout_s, connect=settings.connect_timeout_s, pool=settings.pool_timeout_s
        ).as_dict()
        self._fixed_headers = [
            (b"Host", httpx.URL(self._base_url).netloc),
            (b"Accept", b"application/json"),
            (b"User-Agent", f"syncd/{__version__}".encode("ascii")),
        ]
        """The headers of every request, raw, as httpx would set them (`_headers`)."""
        self._bearer: tuple[str, list[tuple[bytes, bytes]]] = ("", self._fixed_headers)
        """The last token seen and the headers carrying it: a token serves many requests."""
        self._urls: dict[str, httpx.URL] = {}
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._tokens = TokenSource(
            self._fetch_token,
            renew_margin_s=settings.token_renew_margin_s,
            failure_cooldown_s=settings.auth_failure_cooldown_s,
            clock=clock,
        )
        self._agents_path = f"/rest/v1/smartcomm/{settings.customer_id}/agents"
        self.gate: RequestGate | None = None
        """When set, each attempt of an authenticated call waits in it for its place and pace (`paced_by`)."""

    @contextmanager
    def paced_by(self, pacer: WritePacer | None) -> Iterator[None]:
        """Within: authenticated calls pass a gate of `pacer` (None: sent as they come); the gate before is
        put back after."""
        before = self.gate
        self.gate = None if pacer is None else RequestGate(pacer)
        try:
            yield
        finally:
            self.gate = before

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._transport.aclose()

    # -- the API -------------------------------------------------------------------------------------

    async def authenticate(self) -> None:
        """Make sure a valid token is held (fetching one if needed): a cheap check of the credentials."""
        await self._tokens.token()

    async def list_agents(
        self, *, like: Mapping[str, Member] | None = None, memo: AgentsMemo | None = None
    ) -> Sequence[Agent]:
        """Every agent of the account, active and offboarded (the list has no UPNs).

        The API answers an account with no agents by 404 "No Records found": that is an empty list here.
        `like` (a cycle's desired members by object ID) only saves memory (`parse_agent`); with a `memo`,
        a body the memo saw last time is not parsed again (`syncd.smartcomm.memo`).
        """
        try:
            response = await self._request("GET", self._agents_path)
        except AgentNotFound:
            return []
        digest = body_digest(response.content) if memo is not None else b""
        known = memo.recall(digest) if memo is not None else None
        if known is not None:
            log.info("smartcomm.agents_listed", agents=len(known), unchanged=True)
            return known
        try:
            # Each agent object becomes an Agent as soon as it is decoded: 100,000 agents never exist as
            # dicts all at once (they would take about 100 MB more at the peak).
            body = json.loads(response.content, object_hook=_agent_or_object(like))
        except ValueError as exc:
            raise self._unexpected(response, "the answer is not JSON") from exc
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise self._unexpected(response, "the agents list has no `data` array")
        agents = [
            agent
            for agent in (item if isinstance(item, Agent) else parse_agent(item) for item in items)
            if agent is not None
        ]
        if len(agents) != len(items):
            log.warning("smartcomm.unreadable_agents", skipped=len(items) - len(agents), listed=len(items))
        if memo is not None:
            memo.keep(digest, agents)
            log.info("smartcomm.agents_listed", agents=len(agents), unchanged=False)
        return agents

    async def get_agent(self, agent_id: str, *, key_id: ReadKey = "user_object_id") -> Agent:
        """One agent by any of its keys; raises `AgentNotFound` when there is none."""
        response = await self._request("GET", self._agent_path(agent_id), params=self._key(key_id))
        body = self._json(response)
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        agent = parse_agent(body)
        if agent is None:
            raise self._unexpected(response, "the agent record lacks a required field")
        return agent

    async def onboard(self, agent: NewAgent) -> None:
        """Onboard a new agent. "Already exists" answers raise `AgentExists`/`AnchorExists` (see errors)."""
        response = await self._request("POST", self._agents_path, body=agent.to_json())
        body = self._json(response)
        if isinstance(body, dict) and body.get("error") not in (None, ""):
            raise self._unexpected(response, "onboarding answered 200 with an error")

    async def update(self, agent_id: str, patch: AgentPatch, *, key_id: WriteKey = "user_object_id") -> Agent:
        """Change the fields set in `patch`; returns the agent as the service now has it."""
        response = await self._request(
            "PATCH", self._agent_path(agent_id), params=self._key(key_id), body=patch.to_json()
        )
        agent = parse_agent(self._json(response))
        if agent is None:
            raise self._unexpected(response, "the updated agent lacks a required field")
        return agent

    async def offboard(self, agent_id: str, *, key_id: WriteKey = "user_object_id") -> None:
        """Offboard an agent; raises `AgentNotFound` when it is not (or no longer) registered."""
        await self._request("DELETE", self._agent_path(agent_id), params=self._key(key_id))

    # -- the one request function -------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send one API call with retries; returns a response below 400 or raises a `SmartCommError`."""
        settings = self._settings
        attempt = 0
        renewed = False
        outcome_unknown = False  # whether an earlier attempt of this write may have been applied
        content = b"" if body is None else JSON_BODY.encode(body).encode()  # once for every attempt
        while True:
            attempt += 1
            token = await self._tokens.token() if authenticated else ""
            started = time.monotonic()
            try:
                response = await self._paced_exchange(method, path, params, content, token)
            except Exception as exc:
                # httpx errors, and what a transport lets through unmapped (httpx-aiohttp passes some aiohttp
                # errors on as they are): either way the answer was lost, and nothing but our types leaves.
                reason = type(exc).__name__
                if is_tls_verification_failure(exc):
                    raise TlsVerificationError(
                        f"the server certificate of {settings.base_url} did not verify; "
                        "check smartcomm.ca_bundle",
                        method=method,
                        path=path,
                        attempts=attempt,
                    ) from exc
                outcome_unknown = outcome_unknown or method != "GET"
                if attempt >= settings.max_attempts:
                    raise TransportFailure(
                        f"no answer after {attempt} attempts (last: {reason})",
                        method=method,
                        path=path,
                        attempts=attempt,
                        outcome_was_unknown=outcome_unknown,
                    ) from exc
                await self._pause(method, path, attempt, reason=reason, retry_after_s=None)
                continue

            status = response.status_code
            if status == 429 and self._on_throttled is not None:
                self._on_throttled()
            if debug_enabled():
                log.debug(
                    "smartcomm.response",
                    method=method,
                    path=path,
                    status=status,
                    attempt=attempt,
                    elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                )
            if status == 401 and authenticated and not renewed:
                # A token can die before its `exp` (revoked, server restarted): renew once, for free.
                renewed = True
                attempt -= 1
                self._tokens.invalidate(token)
                log.info("smartcomm.token_rejected", method=method, path=path)
                continue
            if status < 400:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
            if is_retryable_status(status):
                outcome_unknown = outcome_unknown or (status != 429 and method != "GET")
                waitable = retry_after is None or retry_after <= settings.retry_after_max_s
                if attempt < settings.max_attempts and waitable:
                    await self._pause(method, path, attempt, reason=str(status), retry_after_s=retry_after)
                    continue
            raise classify(
                status,
                response.content,
                method=method,
                path=path,
                attempts=attempt,
                outcome_was_unknown=outcome_unknown,
                retry_after_s=retry_after,
            )

    async def _paced_exchange(
        self, method: str, path: str, params: Mapping[str, str] | None, content: bytes, token: str
    ) -> httpx.Response:
        """`_exchange` through the gate, if one is set (logins, which have no `token`, never wait in it)."""
        gate = self.gate
        if gate is None or not token:
            return await self._exchange(method, path, params, content, token)
        sent_at = await gate.enter()
        status: int | None = None
        try:
            response = await self._exchange(method, path, params, content, token)
            status = response.status_code
            return response
        finally:
            gate.leave(sent_at, status)

    async def _exchange(
        self, method: str, path: str, params: Mapping[str, str] | None, content: bytes, token: str
    ) -> httpx.Response:
        """One HTTP exchange: an httpx Request handed straight to the transport, the Response read whole.

        httpx.AsyncClient would add URL merging, a cookie jar, auth and redirect handling that this API
        never uses: a third of the CPU of a write (measured in bench/sync_cycles.py). Timeouts travel in the
        request's extensions, as the client would put them. The request is built from its body's bytes as a
        stream, with the headers httpx would set (`_headers`), rather than from `json=`, which builds the
        headers three times over: 20 us of CPU a request instead of 45 (the body is encoded once for all
        attempts, by `_request`).
        """
        url = self._urls.get(path) if not params else None
        if url is None:
            url = httpx.URL(self._base_url + path, params=params or None)
            if not params and len(self._urls) < URL_CACHE_SIZE:
                self._urls[path] = url
        request = httpx.Request(
            method,
            url,
            headers=self._headers(token, content),
            stream=httpx.ByteStream(content),
            extensions={"timeout": self._timeout},
        )
        request.read()  # the body is in memory: `request.content` is what the transport sends
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _pause(
        self, method: str, path: str, attempt: int, *, reason: str, retry_after_s: float | None
    ) -> None:
        settings = self._settings
        if retry_after_s is not None:
            # Honour the server's wish, plus a little jitter so concurrent callers do not return together.
            delay = retry_after_s + self._rng.uniform(0, min(1.0, retry_after_s * 0.1))
        else:
            delay = backoff_delay_s(
                attempt, initial_s=settings.backoff_initial_s, max_s=settings.backoff_max_s, rng=self._rng
            )
        log.warning(
            "smartcomm.retry",
            method=method,
            path=path,
            attempt=attempt,
            max_attempts=settings.max_attempts,
            reason=reason,
            delay_s=round(delay, 3),
        )
        await asyncio.sleep(delay)

    async def _fetch_token(self) -> str:
        credentials = {
            "username": self._settings.username,
            "password": self._settings.password.get_secret_value(),
        }
        try:
            response = await self._request("POST", AUTHENTICATE_PATH, body=credentials, authenticated=False)
        except TokenRejected as exc:
            raise BadCredentials(
                "SmartCommunicator rejected the credentials (smartcomm.username / smartcomm.password), "
                "or the user has no API access",
                status=exc.status,
                method="POST",
                path=AUTHENTICATE_PATH,
                attempts=exc.attempts,
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            # The body is left out on purpose: it may hold a token under another name.
            raise UnexpectedResponse(
                "authentication answered without a token",
                status=response.status_code,
                method="POST",
                path=AUTHENTICATE_PATH,
            )
        return token

    # -- helpers -------------------------------------------------------------------------------------

    def _headers(self, token: str, content: bytes) -> list[tuple[bytes, bytes]]:
        """The raw headers of a request with `token` (none: "") and body `content` (none: b""): those httpx
        sets for `json=` (Host, Content-Length and Content-Type with a body), ours and the bearer token."""
        if not token:
            headers = self._fixed_headers
        elif token == self._bearer[0]:
            headers = self._bearer[1]
        else:
            headers = [*self._fixed_headers, (b"Authorization", f"Bearer {token}".encode("ascii"))]
            self._bearer = (token, headers)
        if not content:
            return headers
        return [*headers, (b"Content-Length", b"%d" % len(content)), (b"Content-Type", b"application/json")]

    def _agent_path(self, agent_id: str) -> str:
        """The path of one agent. No agent's key is empty or a dot segment ("." or ".."), which no quoting
        keeps in place (a URL normaliser would send a DELETE of ".." to the account itself): AgentNotFound,
        with nothing sent."""
        if path_segment(agent_id) is None:
            raise AgentNotFound(f"no agent has the key {agent_id!r}: nothing was sent")
        # UPNs hold "@", numbers "+": quote everything so the segment means exactly the value.
        return f"{self._agents_path}/{quote(agent_id, safe='')}"

    @staticmethod
    def _key(key_id: str) -> dict[str, str]:
        # The default key needs no parameter; sending it anyway would be harmless but noisier in logs.
        return {} if key_id == "user_object_id" else {"key_id": key_id}

    def _json(self, response: httpx.Response) -> object:
        try:
            return response.json()
        except ValueError as exc:
            raise self._unexpected(response, "the answer is not JSON") from exc

    @staticmethod
    def _unexpected(response: httpx.Response, message: str) -> SmartCommError:
        return UnexpectedResponse(
            message,
            status=response.status_code,
            body=response.text,
            method=response.request.method,
            path=response.request.url.path,
        )
