"""A faithful emulator of IntelePeer's SmartCommunicator agents API, for tests and demos.

Tests and demos drive syncd's real HTTP client against `SmartCommEmulator.app`, in-process through
`httpx.ASGITransport` or as a real HTTPS server (`syncd.emulators.server.serve_https`). It implements the
published API (docs/spec/smartcommunicator-agents-api.md): JWT authentication, the onboarding rules and their
400 messages, the differently shaped error bodies of each endpoint, and `key_id` lookups. On top of that it
injects faults (latency, 5xx, 429 with Retry-After, dropped connections, scripted one-shot faults) and
records every request, so tests check what the service received rather than how our code called it.

A control API under `/_emulator/` (not part of the emulated service, never logged, no auth) exposes the
same controls to another process.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Literal, NoReturn, Required, TypeVar
from urllib.parse import parse_qsl

import anyio
import pydantic
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from typing_extensions import TypedDict  # pydantic validates only this TypedDict before Python 3.12

from syncd.emulators.common import (
    ControlApi,
    ControlError,
    FaultInjector,
    Faults,
    RecordedFault,
    ScriptedFault,
    control_body,
    encode_json,
    json_headers,
    read_body,
    retry_after_value,
    send_json,
    send_truncated_and_drop,
    sign_hs256,
    validate_control,
    verify_hs256,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "DEFAULT_CUSTOMER_ID",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "Faults",
    "RecordedRequest",
    "ScriptedFault",
    "SmartCommEmulator",
]

DEFAULT_CUSTOMER_ID = 12345
DEFAULT_USERNAME = "api-user@example.com"
DEFAULT_PASSWORD = "emulator-password"  # noqa: S105 - the emulator's test credential, not a secret

AUTH_PATH = "/rest/v1/authenticate"
SMARTCOMM_PREFIX = "/rest/v1/smartcomm/"

_AGENTS_PATH = re.compile(r"/rest/v1/smartcomm/([^/]+)/agents(?:/([^/]+))?")
_INTEGER = re.compile(r"-?[0-9]+")

_UNAUTHORIZED = {"code": 401, "error": "Unauthorized"}
_FORBIDDEN = {"code": 403, "error": "Forbidden"}
_NO_RECORDS = "No Records found for any of the parameters provided"
_AGENT_NOT_FOUND = "Agent not found"
_INVALID_BODY = "Invalid request body"
_INVALID_KEY_ID = "Invalid key_id"

_GET_KEYS = frozenset({"user_object_id", "agent_id", "upn", "phone_number", "consistency_id"})
_WRITE_KEYS = frozenset({"user_object_id", "agent_id", "consistency_id"})
_PATCH_STRING_FIELDS = ("phone_number", "upn", "user_object_id", "tenant_id", "consistency_id")

AgentStatus = Literal["active", "offboarded"]
KeyId = Literal["user_object_id", "agent_id", "upn", "phone_number", "consistency_id"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulated service received (control requests are not recorded)."""

    seq: int
    """1, 2, 3... per emulator (restarts at 1 after `reset()`, not after `clear_requests()`)."""
    at: float
    """time.monotonic() when received."""
    method: str
    path: str
    query: dict[str, str]
    body: object | None
    """Parsed JSON body, None if empty or not JSON; for /authenticate the password reads "***"."""
    status: int | None
    """Response status; None when the connection was dropped (or the response is still being prepared)."""
    fault: RecordedFault | None
    applied: bool
    """Whether the request changed the agents (an accepted POST, PATCH or DELETE)."""
    token_id: str | None
    """The "jti" of the bearer token presented if we issued it (even if expired or revoked), else None."""


class _AgentFields(TypedDict, total=False):
    """Body of POST /_emulator/agents: the keyword arguments of `SmartCommEmulator.add_agent`."""

    user_object_id: Required[str]
    tenant_id: Required[str]
    phone_number: Required[str]
    upn: str | None
    consistency_id: str | None
    status: AgentStatus


class _Registries(TypedDict, total=False):
    """Body of PUT /_emulator/registries; a key left out leaves that registry as it is."""

    registered_tenants: list[str] | None
    ten_dlc_numbers: list[str] | None


@dataclass
class _Agent:
    agent_id: str
    user_object_id: str
    tenant_id: str
    phone_number: str
    upn: str | None
    consistency_id: str | None
    status: AgentStatus

    def snapshot(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass
class _Token:
    customer_id: int
    expires_at: float
    """Wall-clock expiry (epoch seconds): the token's `exp` claim."""
    revoked: bool = False


@dataclass
class _Entry:
    """A request log entry while its request is in flight; frozen into a RecordedRequest when read."""

    seq: int
    at: float
    method: str
    path: str
    query: dict[str, str]
    body: object | None
    token_id: str | None
    status: int | None = None
    fault: RecordedFault | None = None
    applied: bool = False

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            seq=self.seq,
            at=self.at,
            method=self.method,
            path=self.path,
            query=dict(self.query),
            body=self.body,
            status=self.status,
            fault=self.fault,
            applied=self.applied,
            token_id=self.token_id,
        )


@dataclass(frozen=True)
class _Incoming:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: bytes


@dataclass(frozen=True)
class _Reply:
    status: int
    body: object
    headers: tuple[tuple[str, str], ...] = ()
    applied: bool = False


@dataclass(frozen=True)
class _Plan:
    """What the fault layer does with one request, decided on arrival."""

    fault: RecordedFault | None = None
    latency_s: float = 0.0
    reply: _Reply | None = None
    """A fault reply sent instead of handling the request ("error", "throttle")."""
    delay_s: float = 0.0


class _Rejected(Exception):
    """A PATCH/POST body that breaks a rule; carries the reply to send."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


# --- replies -------------------------------------------------------------------------------------------


def _not_found(message: str) -> _Reply:
    return _Reply(404, {"requestId": str(uuid.uuid4()), "message": message})


def _onboard_error(message: str) -> _Reply:
    return _Reply(400, {"message": message, "status": 400})


def _status_error(message: str) -> _Reply:
    return _Reply(400, {"status": "error", "message": message})


def _method_not_allowed(*allowed: str) -> _Reply:
    return _Reply(
        405,
        {"requestId": str(uuid.uuid4()), "message": "Method Not Allowed"},
        headers=(("allow", ", ".join(allowed)),),
    )


def _fault_status_reply(status: int) -> _Reply:
    """The body a gateway would give for an injected status: the service's own shapes where it has them."""
    if status >= 500:
        return _Reply(status, {"message": "Service Unavailable"})
    if status == 401:
        return _Reply(status, dict(_UNAUTHORIZED))
    if status == 403:
        return _Reply(status, dict(_FORBIDDEN))
    if status == 404:
        return _not_found("Not Found")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _Reply(status, {"message": phrase})


def _throttle_reply(retry_after_s: float) -> _Reply:
    return _Reply(
        429, {"message": "Too Many Requests"}, headers=(("retry-after", retry_after_value(retry_after_s)),)
    )


async def _send_reply(send: Send, reply: _Reply) -> None:
    body = encode_json(reply.body)
    await send_json(send, reply.status, body, json_headers(body, reply.headers))


async def _send_truncated_and_drop(send: Send, reply: _Reply) -> NoReturn:
    """See `send_truncated_and_drop`: the client gets headers and half the body, then EOF."""
    body = encode_json(reply.body)
    await send_truncated_and_drop(send, reply.status, body, json_headers(body, reply.headers))


# --- request parsing -----------------------------------------------------------------------------------


def _parse_json(body: bytes) -> object | None:
    if not body:
        return None
    try:
        parsed: object = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed


def _logged_body(path: str, body: bytes) -> object | None:
    parsed = _parse_json(body)
    if path == AUTH_PATH and isinstance(parsed, dict) and "password" in parsed:
        # The request log is printed by failing tests and served by the control API: never keep passwords.
        parsed = {**parsed, "password": "***"}
    return parsed


def _incoming(scope: Scope, body: bytes) -> _Incoming:
    authorization: str | None = None
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            authorization = value.decode("latin-1")
    query_string: bytes = scope.get("query_string", b"")
    query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    return _Incoming(
        method=str(scope["method"]).upper(),
        path=str(scope["path"]),
        query=query,
        authorization=authorization,
        body=body,
    )


def _optional_string(body: dict[str, object], name: str) -> str | None:
    """An optional string field of an onboarding body; null or "" count as absent."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Rejected(_onboard_error(_INVALID_BODY))
    return value


def _same_upn(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


def _differ(a: str | None, b: str | None) -> bool:
    """Both set and different."""
    return a is not None and b is not None and a != b


def _single_view(agent: _Agent) -> dict[str, object]:
    """The single-agent GET (and PATCH 200) body; offboarded agents read as "orphaned" there."""
    view: dict[str, object] = {}
    if agent.consistency_id is not None:
        view["consistency_id"] = agent.consistency_id
    view["user_object_id"] = agent.user_object_id
    view["tenant_id"] = agent.tenant_id
    view["phone_number"] = agent.phone_number
    if agent.upn is not None:
        view["upn"] = agent.upn
    view["status"] = "active" if agent.status == "active" else "orphaned"
    return view


def _list_view(agent: _Agent) -> dict[str, object]:
    """One item of the agents list: the documented list fields (no UPN), status active/offboarded."""
    view: dict[str, object] = {"user_object_id": agent.user_object_id, "tenant_id": agent.tenant_id}
    if agent.consistency_id is not None:
        view["consistency_id"] = agent.consistency_id
    view["phone_number"] = agent.phone_number
    view["status"] = agent.status
    return view


_AGENT_FIELDS_ADAPTER = pydantic.TypeAdapter(_AgentFields)
_REGISTRIES_ADAPTER = pydantic.TypeAdapter(_Registries)


class _ServiceApp:
    """The emulated service as a raw ASGI app (a class, so Starlette's Route passes scopes straight in)."""

    def __init__(self, emulator: SmartCommEmulator) -> None:
        self._emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._emulator._serve(scope, receive, send)


class SmartCommEmulator(ControlApi):
    """The SmartCommunicator agents API of one customer account, with fault injection and a request log.

    Thread-safe: under `serve_https` the app runs in the server thread while tests call these methods from
    the main thread. One lock guards all state; it is held only in short synchronous sections, never across
    an await.
    """

    def __init__(
        self,
        *,
        customer_id: int = DEFAULT_CUSTOMER_ID,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        token_lifetime_s: float = 86400.0,
        registered_tenants: Iterable[str] | None = None,
        ten_dlc_numbers: Iterable[str] | None = None,
        seed: int = 0,
    ) -> None:
        """Set up an empty account.

        `registered_tenants` / `ten_dlc_numbers`: None means every tenant / number is registered.
        `seed` makes random faults and agent IDs reproducible.
        """
        self.customer_id = customer_id
        self.username = username
        self._password = password
        self._seed = seed
        self._initial_token_lifetime_s = token_lifetime_s
        self._initial_tenants = None if registered_tenants is None else frozenset(registered_tenants)
        self._initial_numbers = None if ten_dlc_numbers is None else frozenset(ten_dlc_numbers)
        # HS256 key: random per emulator so no other emulator's (or a forged) token verifies here.
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self.faults = Faults()
        self.token_lifetime_s = token_lifetime_s
        self.registered_tenants: set[str] | None = None
        self.ten_dlc_numbers: set[str] | None = None
        self._clear_state()
        self.app: ASGIApp = Starlette(
            routes=[
                Mount("/_emulator", routes=self._control_routes()),
                Route("/{path:path}", endpoint=_ServiceApp(self)),
            ]
        )

    # --- public controls -------------------------------------------------------------------------------

    def inject(self, fault: ScriptedFault) -> None:
        """Queue a one-shot fault; the first queued fault matching a request hits it."""
        with self._lock:
            self._injector.inject(fault)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, in order of arrival."""
        with self._lock:
            return [entry.freeze() for entry in self._log]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def revoke_tokens(self) -> None:
        """Every token issued so far answers 401 from now on (tokens issued later are fine)."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def add_agent(
        self,
        *,
        user_object_id: str,
        tenant_id: str,
        phone_number: str,
        upn: str | None = None,
        consistency_id: str | None = None,
        status: AgentStatus = "active",
    ) -> str:
        """Seed an agent directly (no request log entry, no registry checks); return its agent_id.

        Raises ValueError if the object ID has a record already, or if an active agent would share a
        phone number, UPN or consistency GUID with another active agent.
        """
        with self._lock:
            if user_object_id in self._by_object:
                raise ValueError(f"an agent with user_object_id {user_object_id!r} exists already")
            if status == "active":
                if phone_number in self._active_by_phone:
                    raise ValueError(f"phone number {phone_number!r} is held by an active agent")
                if upn is not None and upn.casefold() in self._active_by_upn:
                    raise ValueError(f"UPN {upn!r} is held by an active agent")
                if consistency_id is not None and consistency_id in self._active_by_consistency:
                    raise ValueError(f"consistency_id {consistency_id!r} is held by an active agent")
            agent = _Agent(
                agent_id=self._new_agent_id(),
                user_object_id=user_object_id,
                tenant_id=tenant_id,
                phone_number=phone_number,
                upn=upn,
                consistency_id=consistency_id,
                status=status,
            )
            self._insert(agent)
            return agent.agent_id

    def agents(self) -> list[dict[str, object]]:
        """Every agent (active and offboarded) with every field, in order of creation."""
        with self._lock:
            return [agent.snapshot() for agent in self._by_id.values()]

    def reset(self) -> None:
        """Back to the state after construction, except that issued tokens stay valid.

        Clears agents, the request log (seq restarts at 1), faults, scripted faults and revocations, and
        restores the registries, the token lifetime and the RNG seed given to the constructor.
        """
        with self._lock:
            self._clear_state()
            for token in self._tokens.values():
                token.revoked = False
            self.faults = Faults()
            self.token_lifetime_s = self._initial_token_lifetime_s

    # --- state ------------------------------------------------------------------------------------------

    def _clear_state(self) -> None:
        self._by_id: dict[str, _Agent] = {}
        self._by_object: dict[str, _Agent] = {}
        self._active_by_phone: dict[str, _Agent] = {}
        self._active_by_upn: dict[str, _Agent] = {}
        self._active_by_consistency: dict[str, _Agent] = {}
        self._log: list[_Entry] = []
        self._seq = 0
        self._injector = FaultInjector(self._seed)
        # Seeded on purpose: a test run must be reproducible, these are not secrets.
        self._id_rng = random.Random(self._seed + 1)  # noqa: S311
        self.registered_tenants = None if self._initial_tenants is None else set(self._initial_tenants)
        self.ten_dlc_numbers = None if self._initial_numbers is None else set(self._initial_numbers)

    def _new_agent_id(self) -> str:
        while True:
            agent_id = f"{self._id_rng.getrandbits(96):024x}"
            if agent_id not in self._by_id:
                return agent_id

    def _insert(self, agent: _Agent) -> None:
        self._by_id[agent.agent_id] = agent
        self._by_object[agent.user_object_id] = agent
        if agent.status == "active":
            self._hold(agent)

    def _hold(self, agent: _Agent) -> None:
        """Index what an active agent holds exclusively: its number, UPN and consistency GUID."""
        self._active_by_phone[agent.phone_number] = agent
        if agent.upn is not None:
            self._active_by_upn[agent.upn.casefold()] = agent
        if agent.consistency_id is not None:
            self._active_by_consistency[agent.consistency_id] = agent

    def _release(self, agent: _Agent) -> None:
        self._active_by_phone.pop(agent.phone_number, None)
        if agent.upn is not None:
            self._active_by_upn.pop(agent.upn.casefold(), None)
        if agent.consistency_id is not None:
            self._active_by_consistency.pop(agent.consistency_id, None)

    def _tenant_registered(self, tenant_id: str) -> bool:
        return self.registered_tenants is None or tenant_id in self.registered_tenants

    def _number_registered(self, phone_number: str) -> bool:
        return self.ten_dlc_numbers is None or phone_number in self.ten_dlc_numbers

    def _find_active(self, key_id: KeyId, value: str) -> _Agent | None:
        agent: _Agent | None
        if key_id == "agent_id":
            agent = self._by_id.get(value)
        elif key_id == "user_object_id":
            agent = self._by_object.get(value)
        elif key_id == "phone_number":
            agent = self._active_by_phone.get(value)
        elif key_id == "upn":
            agent = self._active_by_upn.get(value.casefold())
        else:
            agent = self._active_by_consistency.get(value)
        return agent if agent is not None and agent.status == "active" else None

    def _find(self, key_id: KeyId, value: str) -> _Agent | None:
        """An active match if there is one, else the latest offboarded match."""
        active = self._find_active(key_id, value)
        if active is not None:
            return active
        for agent in reversed(list(self._by_id.values())):
            if agent.status == "offboarded" and self._key_matches(agent, key_id, value):
                return agent
        return None

    @staticmethod
    def _key_matches(agent: _Agent, key_id: KeyId, value: str) -> bool:
        if key_id == "agent_id":
            return agent.agent_id == value
        if key_id == "user_object_id":
            return agent.user_object_id == value
        if key_id == "phone_number":
            return agent.phone_number == value
        if key_id == "upn":
            return _same_upn(agent.upn, value)
        return agent.consistency_id == value

    # --- the fault layer --------------------------------------------------------------------------------

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record, apply faults, handle: the path of every request to the emulated service."""
        body = await read_body(receive)
        incoming = _incoming(scope, body)
        logged_body = _logged_body(incoming.path, body)
        with self._lock:
            self._seq += 1
            entry = _Entry(
                seq=self._seq,
                at=time.monotonic(),
                method=incoming.method,
                path=incoming.path,
                query=incoming.query,
                body=logged_body,
                token_id=self._token_id(incoming.authorization),
            )
            self._log.append(entry)
            plan = self._plan(incoming)
            entry.fault = plan.fault

        if plan.latency_s > 0:
            await anyio.sleep(plan.latency_s)
        if plan.fault == "drop":
            await _send_truncated_and_drop(send, _Reply(502, {"message": "Bad Gateway"}))
        if plan.reply is not None:
            with self._lock:
                entry.status = plan.reply.status
            await _send_reply(send, plan.reply)
            return

        with self._lock:
            reply = self._handle(incoming)
            entry.applied = reply.applied
            if plan.fault != "drop_after":
                entry.status = reply.status
        if plan.fault == "drop_after":
            await _send_truncated_and_drop(send, reply)
        if plan.delay_s > 0:
            await anyio.sleep(plan.delay_s)
        await _send_reply(send, reply)

    def _plan(self, incoming: _Incoming) -> _Plan:
        """Pick this request's fault: the first matching scripted fault, else the random ones."""
        decision = self._injector.decide(
            self.faults, method=incoming.method, target=incoming.path, is_auth=incoming.path == AUTH_PATH
        )
        reply: _Reply | None = None
        if decision.fault == "error" and decision.status is not None:
            reply = _fault_status_reply(decision.status)
        elif decision.fault == "throttle":
            reply = _throttle_reply(decision.retry_after_s)
        return _Plan(decision.fault, decision.latency_s, reply=reply, delay_s=decision.delay_s)

    # --- tokens -----------------------------------------------------------------------------------------

    def _issue_token(self) -> str:
        now = time.time()
        # crt rounds down and exp up, as in the documented token (exp - crt = 86401 for 24 hours). The token
        # dies exactly at its exp claim, as a real JWT check does: a client that renews ahead of `exp` must
        # never see a 401, even if the lifetime is fractional (a 2 s token then lives 2 to 3 s).
        expires = math.ceil(now + self.token_lifetime_s)
        jti = secrets.token_hex(16)
        payload = {
            "aid": 0,
            "cid": self.customer_id,
            "crt": int(now),
            "exp": expires,
            "uid": self.username,
            "src": "api-gtw",
            "jti": jti,
        }
        self._tokens[jti] = _Token(customer_id=self.customer_id, expires_at=float(expires))
        return sign_hs256(self._key, payload)

    def _token_id(self, authorization: str | None) -> str | None:
        """The jti of a bearer token this emulator signed (whatever its expiry), else None."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        payload = verify_hs256(self._key, token.strip())
        if payload is None:
            return None
        jti = payload.get("jti")
        return jti if isinstance(jti, str) and jti in self._tokens else None

    def _valid_token(self, authorization: str | None) -> _Token | None:
        jti = self._token_id(authorization)
        if jti is None:
            return None
        token = self._tokens[jti]
        if token.revoked or time.time() >= token.expires_at:
            return None
        return token

    # --- the emulated service ---------------------------------------------------------------------------

    def _handle(self, incoming: _Incoming) -> _Reply:
        """Answer one request as the real service would. Called with the lock held."""
        if incoming.path == AUTH_PATH:
            if incoming.method != "POST":
                return _method_not_allowed("POST")
            return self._authenticate(incoming.body)
        if not incoming.path.startswith(SMARTCOMM_PREFIX):
            return _not_found("Not Found")
        # The gateway checks the token before it routes, so any path under smartcomm/ needs one.
        token = self._valid_token(incoming.authorization)
        if token is None:
            return _Reply(401, dict(_UNAUTHORIZED))
        match = _AGENTS_PATH.fullmatch(incoming.path)
        if match is None:
            return _not_found("Not Found")
        customer, agent_key = match.group(1), match.group(2)
        if _INTEGER.fullmatch(customer) is None:
            return _not_found(_NO_RECORDS)
        if int(customer) != token.customer_id:
            return _Reply(403, dict(_FORBIDDEN))
        if agent_key is None:
            if incoming.method == "GET":
                return self._list_agents()
            if incoming.method == "POST":
                return self._onboard(incoming.body)
            return _method_not_allowed("GET", "POST")
        if incoming.method == "GET":
            return self._get_agent(agent_key, incoming.query)
        if incoming.method == "PATCH":
            return self._patch_agent(agent_key, incoming.query, incoming.body)
        if incoming.method == "DELETE":
            return self._delete_agent(agent_key, incoming.query)
        return _method_not_allowed("GET", "PATCH", "DELETE")

    def _authenticate(self, body: bytes) -> _Reply:
        credentials = _parse_json(body)
        if not isinstance(credentials, dict):
            return _Reply(401, dict(_UNAUTHORIZED))
        username, password = credentials.get("username"), credentials.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return _Reply(401, dict(_UNAUTHORIZED))
        # Both compared in constant time and both always compared, as a real service should.
        user_ok = hmac.compare_digest(username.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self._password.encode())
        if not (user_ok and password_ok):
            return _Reply(401, dict(_UNAUTHORIZED))
        return _Reply(200, {"token": self._issue_token()})

    def _list_agents(self) -> _Reply:
        if not self._by_id:
            return _not_found(_NO_RECORDS)
        return _Reply(200, {"data": [_list_view(agent) for agent in self._by_id.values()], "error": None})

    @staticmethod
    def _key_id(query: dict[str, str], allowed: frozenset[str]) -> KeyId | None:
        key_id = query.get("key_id", "user_object_id")
        if key_id not in allowed:
            return None
        if key_id == "agent_id":
            return "agent_id"
        if key_id == "upn":
            return "upn"
        if key_id == "phone_number":
            return "phone_number"
        if key_id == "consistency_id":
            return "consistency_id"
        return "user_object_id"

    def _get_agent(self, key: str, query: dict[str, str]) -> _Reply:
        key_id = self._key_id(query, _GET_KEYS)
        if key_id is None:
            return _status_error(_INVALID_KEY_ID)
        agent = self._find(key_id, key)
        if agent is None:
            return _not_found(_NO_RECORDS)
        return _Reply(200, _single_view(agent))

    def _onboard(self, raw: bytes) -> _Reply:
        try:
            return self._onboard_checked(raw)
        except _Rejected as rejected:
            return rejected.reply

    def _onboard_checked(self, raw: bytes) -> _Reply:
        body = _parse_json(raw)
        if not isinstance(body, dict):
            return _onboard_error(_INVALID_BODY)
        required: dict[str, str] = {}
        for name in ("user_object_id", "tenant_id", "phone_number"):
            value = body.get(name)
            if value is None or value == "":
                return _onboard_error(f"{name} is required")
            if not isinstance(value, str):
                return _onboard_error(_INVALID_BODY)
            required[name] = value
        object_id, tenant_id, phone = (
            required["user_object_id"],
            required["tenant_id"],
            required["phone_number"],
        )
        upn = _optional_string(body, "upn")
        consistency = _optional_string(body, "consistency_id")

        if not self._tenant_registered(tenant_id):
            return _onboard_error("Tenant ID is not registered with SmartCommunicator")
        if not self._number_registered(phone):
            return _onboard_error("TN is not part of the list of numbers that are already 10DLC registered")

        holder = self._active_by_phone.get(phone)
        if holder is not None:
            if holder.user_object_id == object_id:
                return _onboard_error("TN exists with the same Azure Object ID")
            if consistency is not None and holder.consistency_id == consistency:
                return _onboard_error("TN exists with the same MSDS Consistency GUID")
            if _differ(holder.consistency_id, consistency):
                return _onboard_error("TN is already registered with a different MSDS Consistency GUID")
            if holder.upn is not None and upn is not None and not _same_upn(holder.upn, upn):
                return _onboard_error("TN is already registered with a different UPN")
            return _onboard_error("TN is already registered with a different Azure Object ID")

        holder = self._active_by_upn.get(upn.casefold()) if upn is not None else None
        if holder is not None:
            if holder.user_object_id == object_id:
                return _onboard_error("UPN exists with the same Azure Object ID")
            if consistency is not None and holder.consistency_id == consistency:
                return _onboard_error("UPN exists with the same MSDS Consistency GUID")
            if _differ(holder.consistency_id, consistency):
                return _onboard_error("UPN is already registered with a different MSDS Consistency GUID")
            if holder.tenant_id != tenant_id:
                return _onboard_error("UPN is already registered with SmartCommunicator")
            return _onboard_error("UPN is already registered with a different Azure Object ID")

        holder = self._active_by_consistency.get(consistency) if consistency is not None else None
        if holder is not None and holder.user_object_id != object_id:
            return _onboard_error("MSDS Consistency GUID already exists")

        existing = self._by_object.get(object_id)
        if existing is not None and existing.status == "active":
            if _differ(existing.consistency_id, consistency):
                return _onboard_error("Azure Object ID exists with a different MSDS Consistency GUID")
            return _onboard_error("Azure Object ID already exists")

        if existing is not None:
            # One record per object ID: onboarding an offboarded object re-activates its record.
            existing.tenant_id, existing.phone_number = tenant_id, phone
            existing.upn, existing.consistency_id = upn, consistency
            existing.status = "active"
            self._hold(existing)
        else:
            self._insert(
                _Agent(
                    agent_id=self._new_agent_id(),
                    user_object_id=object_id,
                    tenant_id=tenant_id,
                    phone_number=phone,
                    upn=upn,
                    consistency_id=consistency,
                    status="active",
                )
            )
        return _Reply(200, {"data": {"message": "Onboarded Successfully"}, "error": None}, applied=True)

    def _patch_agent(self, key: str, query: dict[str, str], raw: bytes) -> _Reply:
        key_id = self._key_id(query, _WRITE_KEYS)
        if key_id is None:
            return _status_error(_INVALID_KEY_ID)
        body = _parse_json(raw)
        if not isinstance(body, dict):
            return _status_error(_INVALID_BODY)
        changes: dict[str, str] = {}
        for name, value in body.items():
            if name == "transfer_data":
                # Accepted as documented; the emulator keeps no per-agent data to transfer.
                if not isinstance(value, bool):
                    return _status_error(_INVALID_BODY)
            elif name in _PATCH_STRING_FIELDS:
                if not isinstance(value, str) or not value:
                    return _status_error(_INVALID_BODY)
                changes[name] = value
            else:
                return _status_error(_INVALID_BODY)

        agent = self._find_active(key_id, key)
        if agent is None:
            return _not_found(_AGENT_NOT_FOUND)

        # Only fields that really change are checked, so a PATCH that changes nothing always succeeds.
        phone = changes.get("phone_number", agent.phone_number)
        tenant = changes.get("tenant_id", agent.tenant_id)
        upn = changes.get("upn", agent.upn)
        consistency = changes.get("consistency_id", agent.consistency_id)
        object_id = changes.get("user_object_id", agent.user_object_id)
        if phone != agent.phone_number and not self._number_registered(phone):
            return _status_error("Phone number is not registered with SmartCommunicator")
        if tenant != agent.tenant_id and not self._tenant_registered(tenant):
            return _status_error("Tenant ID is not registered with SmartCommunicator")
        holder = self._active_by_phone.get(phone)
        if holder is not None and holder is not agent:
            return _status_error("TN is already registered with a different Azure Object ID")
        holder = self._active_by_upn.get(upn.casefold()) if upn is not None else None
        if holder is not None and holder is not agent:
            return _status_error("UPN is already registered with a different Azure Object ID")
        holder = self._active_by_consistency.get(consistency) if consistency is not None else None
        if holder is not None and holder is not agent:
            return _status_error("MSDS Consistency GUID already exists")
        other = self._by_object.get(object_id)
        if other is not None and other is not agent:
            return _status_error("Azure Object ID already exists")

        self._release(agent)
        del self._by_object[agent.user_object_id]
        agent.phone_number, agent.tenant_id, agent.upn = phone, tenant, upn
        agent.consistency_id, agent.user_object_id = consistency, object_id
        self._by_object[agent.user_object_id] = agent
        self._hold(agent)
        return _Reply(200, _single_view(agent), applied=True)

    def _delete_agent(self, key: str, query: dict[str, str]) -> _Reply:
        key_id = self._key_id(query, _WRITE_KEYS)
        if key_id is None:
            return _status_error(_INVALID_KEY_ID)
        agent = self._find(key_id, key)
        if agent is None:
            return _not_found(_AGENT_NOT_FOUND)
        if agent.status != "active":
            return _status_error("Azure Object ID is not registered with SmartCommunicator")
        self._release(agent)
        agent.status = "offboarded"
        return _Reply(200, {"status": "ok"}, applied=True)

    # --- the control API --------------------------------------------------------------------------------

    def _control_routes(self) -> list[Route]:
        return [
            *self.shared_control_routes(),
            Route("/agents", self._control_get_agents, methods=["GET"]),
            Route("/agents", self._control_add_agent, methods=["POST"]),
            Route("/registries", self._control_set_registries, methods=["PUT"]),
        ]

    async def _control_get_agents(self, request: Request) -> JSONResponse:
        return JSONResponse(self.agents())

    async def _control_add_agent(self, request: Request) -> JSONResponse:
        try:
            fields = validate_control(
                _AGENT_FIELDS_ADAPTER,
                await control_body(request),
                _AgentFields.__required_keys__ | _AgentFields.__optional_keys__,
            )
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            agent_id = self.add_agent(**fields)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"agent_id": agent_id})

    async def _control_set_registries(self, request: Request) -> JSONResponse:
        try:
            registries = validate_control(
                _REGISTRIES_ADAPTER, await control_body(request), _Registries.__optional_keys__
            )
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with self._lock:
            if "registered_tenants" in registries:
                tenants = registries["registered_tenants"]
                self.registered_tenants = None if tenants is None else set(tenants)
            if "ten_dlc_numbers" in registries:
                numbers = registries["ten_dlc_numbers"]
                self.ten_dlc_numbers = None if numbers is None else set(numbers)
            current = {
                "registered_tenants": _sorted_or_none(self.registered_tenants),
                "ten_dlc_numbers": _sorted_or_none(self.ten_dlc_numbers),
            }
        return JSONResponse(current)


def _sorted_or_none(values: set[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)
