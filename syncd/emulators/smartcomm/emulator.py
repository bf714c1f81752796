"""`SmartCommEmulator`: one ASGI app serving the SmartCommunicator agents API of one customer account, and
the path every request to it takes: logged, hit by faults, then routed to authentication or to the agents
endpoints under the lock.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from syncd.emulators.common import Faults, RecordedFault, read_body
from syncd.emulators.smartcomm.agents import _AgentsApi
from syncd.emulators.smartcomm.auth import _Auth, _Token
from syncd.emulators.smartcomm.control import _ControlRoutes, _e164_numbers
from syncd.emulators.smartcomm.ratelimit import RateLimit, _RateLimits
from syncd.emulators.smartcomm.wire import (
    _FORBIDDEN,
    _NO_RECORDS,
    _UNAUTHORIZED,
    AUTH_PATH,
    SMARTCOMM_PREFIX,
    _accepts_json,
    _Entry,
    _fault_status_reply,
    _Incoming,
    _incoming,
    _json_media_type,
    _logged_body,
    _method_not_allowed,
    _not_acceptable,
    _not_found,
    _Reply,
    _send_reply,
    _send_truncated_and_drop,
    _throttle_reply,
    _unsupported_media_type,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_CUSTOMER_ID = 12345
DEFAULT_USERNAME = "api-user@example.com"
DEFAULT_PASSWORD = "emulator-password"  # noqa: S105 - the emulator's test credential, not a secret

_AGENTS_PATH = re.compile(r"/rest/v1/smartcomm/([^/]+)/agents(?:/([^/]+))?")
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class _Plan:
    """What the fault layer does with one request, decided on arrival."""

    fault: RecordedFault | None = None
    latency_s: float = 0.0
    reply: _Reply | None = None
    """A fault reply sent instead of handling the request ("error", "throttle")."""
    delay_s: float = 0.0


class _ServiceApp:
    """The emulated service as a raw ASGI app (a class, so Starlette's Route passes scopes straight in)."""

    def __init__(self, emulator: SmartCommEmulator) -> None:
        self._emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._emulator._serve(scope, receive, send)


class SmartCommEmulator(_RateLimits, _ControlRoutes, _AgentsApi, _Auth):
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
        registered_tenants: Iterable[str] | None = (),
        ten_dlc_numbers: Iterable[str] | None = (),
        require_json: bool = True,
        seed: int = 0,
        rate_limit: RateLimit | None = None,
    ) -> None:
        """Set up an empty account.

        `registered_tenants` / `ten_dlc_numbers`: the Entra tenants registered with SmartCommunicator and
        the 10DLC-registered numbers (E.164). Empty by default, as a new account is: onboarding refuses
        every tenant and number until they are registered (`register_tenants`, `register_numbers`, or
        `syncd.emulators.tenant.build_tenant` with this emulator as its registry). None means every tenant /
        number (in E.164) counts as registered: leniency a test asks for explicitly.
        `require_json`: see the attribute. `seed` makes random faults and agent IDs reproducible.
        `rate_limit`: a token bucket over the agents endpoints (`syncd.emulators.smartcomm.ratelimit`);
        None, the default, limits nothing.
        """
        self.customer_id = customer_id
        self.username = username
        self._password = password
        self._initial_account = (customer_id, username, password)
        self._seed = seed
        self._initial_token_lifetime_s = token_lifetime_s
        self._initial_tenants = None if registered_tenants is None else frozenset(registered_tenants)
        self._initial_numbers = None if ten_dlc_numbers is None else _e164_numbers(ten_dlc_numbers)
        self.require_json = require_json
        """Whether requests must say `Content-Type: application/json` (those with a body) and take JSON
        (`Accept`), as the API documents: 415 and 406 otherwise. False: anything goes (leniency a test asks
        for explicitly)."""
        self._initial_require_json = require_json
        # HS256 key: random per emulator so no other emulator's (or a forged) token verifies here.
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self.faults = Faults()
        self.token_lifetime_s = token_lifetime_s
        self.registered_tenants: set[str] | None = None
        self.ten_dlc_numbers: set[str] | None = None
        self._clear_state()
        self._initial_rate_limit = rate_limit
        self.set_rate_limit(rate_limit)
        self.app: ASGIApp = Starlette(
            routes=[
                Mount("/_emulator", routes=[*self._control_routes(), *self._rate_limit_routes()]),
                Route("/{path:path}", endpoint=_ServiceApp(self)),
            ]
        )

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
        """Pick this request's fault: the rate limit's 429, else the first matching scripted fault, else the
        random ones."""
        wait_s = self._rate_limit_wait(incoming.path)
        if wait_s is not None:
            return _Plan("throttle", self.faults.latency_s, reply=_throttle_reply(wait_s))
        decision = self._injector.decide(
            self.faults, method=incoming.method, target=incoming.path, is_auth=incoming.path == AUTH_PATH
        )
        reply: _Reply | None = None
        if decision.fault == "error" and decision.status is not None:
            reply = _fault_status_reply(decision.status)
        elif decision.fault == "throttle":
            reply = _throttle_reply(decision.retry_after_s)
        return _Plan(decision.fault, decision.latency_s, reply=reply, delay_s=decision.delay_s)

    # --- the emulated service ---------------------------------------------------------------------------

    def _media_problem(self, incoming: _Incoming) -> _Reply | None:
        """415 for a body that is not said to be JSON, 406 for a client that does not take JSON."""
        if not self.require_json:
            return None
        if incoming.method in ("POST", "PATCH", "PUT") and not _json_media_type(incoming.content_type):
            return _unsupported_media_type()
        if not _accepts_json(incoming.accept):
            return _not_acceptable()
        return None

    def _handle(self, incoming: _Incoming) -> _Reply:
        """Answer one request as the real service would. Called with the lock held."""
        if incoming.path == AUTH_PATH:
            if incoming.method != "POST":
                return _method_not_allowed("POST")
            return self._media_problem(incoming) or self._authenticate(incoming.body)
        if not incoming.path.startswith(SMARTCOMM_PREFIX):
            return _not_found("Not Found")
        problem = self._media_problem(incoming)
        if problem is not None:
            return problem
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
