"""`GraphEmulator`: two ASGI apps over one directory, Entra login (`login_app`) and Graph (`graph_app`), to be
served on two hosts as the real services are, and the path every request to them takes: logged, hit by
faults, then answered by the login or the Graph endpoints under the lock (Graph's after its throttling).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

import anyio
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from syncd.emulators.common import Faults, read_body, send_json, send_truncated_and_drop
from syncd.emulators.graph.control import _ControlRoutes
from syncd.emulators.graph.credentials import DEFAULT_TENANT_ID, _Token
from syncd.emulators.graph.delta import DELTA_LINK_LIFETIME_S, _Delta
from syncd.emulators.graph.login import _Login
from syncd.emulators.graph.reads import _Reads
from syncd.emulators.graph.throttle import _Throttle, request_cost
from syncd.emulators.graph.wire import (
    GRAPH_PREFIX,
    _Entry,
    _fault_reply,
    _graph_error,
    _headers,
    _Incoming,
    _incoming,
    _logged_body,
    _Rejected,
    _Reply,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


class _ServiceApp:
    """One emulated service as a raw ASGI app (a class, so Starlette's Route passes scopes straight in)."""

    def __init__(self, emulator: GraphEmulator, *, graph: bool) -> None:
        self._emulator = emulator
        self._graph = graph

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._emulator._serve(scope, receive, send, graph=self._graph)


class GraphEmulator(_ControlRoutes, _Login, _Reads, _Delta, _Throttle):
    """Entra login and the Graph directory of one tenant, with fault injection and a request log.

    `login_app` answers only Entra's endpoints and `graph_app` only Graph's (`/v1.0/...`); serve them on two
    hosts (`syncd.emulators.graph.serve_graph_https`) and tell the emulator where Graph is
    (`graph_resource`): tokens are issued for that resource and Graph refuses any other audience.

    Thread-safe: under `serve_https` the apps run in the server threads while tests call these methods from
    the main thread. One lock guards all state; it is held only in short synchronous sections, never across
    an await. Fixture methods raise ValueError for what the directory would refuse (a taken ID or UPN, an
    unknown group or member).
    """

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        token_lifetime_s: float = 3600.0,
        page_cap: int = 999,
        seed: int = 0,
        graph_resource: str | None = None,
        clock: Callable[[], float] = time.time,
        eventual_lag_s: float = 0.0,
        delta_link_lifetime_s: float | None = DELTA_LINK_LIFETIME_S,
        throttle: bool = True,
        resource_units_per_10s: int | None = None,
    ) -> None:
        """Set up an empty directory with the default app registered (`register_app()`'s defaults).

        `seed` makes random faults and generated object IDs reproducible. The other arguments set the
        attributes of the same names.
        """
        self.tenant_id = tenant_id
        self.graph_resource = graph_resource
        """Graph's resource identifier: the origin `graph_app` is served at ("https://host:port"). Tokens
        are issued for it (scope "<graph_resource>/.default") and Graph takes no token for another audience;
        None until it is known (no Graph token can be had)."""
        self.clock = clock
        """The emulator's clock (epoch seconds): advanced-query lag, delta link age and throttling run on it;
        access tokens expire on the real time (msal checks them against it)."""
        self.token_lifetime_s = token_lifetime_s
        """Lifetime of access tokens issued from now on (expires_in = max(1, int(lifetime)))."""
        self.page_cap = page_cap
        """The most objects one page returns, whatever $top says."""
        self.eventual_lag_s = eventual_lag_s
        """How long a write takes to show in advanced queries (`ConsistencyLevel: eventual`); 0: at once."""
        self.delta_link_lifetime_s = delta_link_lifetime_s
        """Age at which a delta link answers 410 (Graph: 7 days); None: never by age."""
        self.throttle = throttle
        """Whether Graph requests spend a resource unit budget and are answered 429 when it is spent."""
        self.resource_units_per_10s = resource_units_per_10s
        """Each app's budget; None: the documented one for the tenant's size (`budget()`)."""
        self.faults = Faults()
        self._seed = seed
        self._initial_token_lifetime_s = token_lifetime_s
        self._initial_page_cap = page_cap
        self._initial_settings = (eventual_lag_s, delta_link_lifetime_s, throttle, resource_units_per_10s)
        # HS256 keys, random per emulator: no other emulator's (or a forged) token or skip token verifies.
        self._key = secrets.token_bytes(32)
        self._link_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._epoch = 0
        """Delta link generation: bumped by expire_delta_links() and reset(), never restarted."""
        self._clear_state()
        self.login_app: ASGIApp = self._service_app(graph=False)
        """Entra login: discovery and the token endpoint (and /_emulator/)."""
        self.graph_app: ASGIApp = self._service_app(graph=True)
        """Graph: `/v1.0/...` (and /_emulator/)."""

    def _service_app(self, *, graph: bool) -> ASGIApp:
        return Starlette(
            routes=[
                Mount("/_emulator", routes=self._control_routes()),
                Route("/{path:path}", endpoint=_ServiceApp(self, graph=graph)),
            ]
        )

    # --- the request path -------------------------------------------------------------------------------

    async def _serve(self, scope: Scope, receive: Receive, send: Send, *, graph: bool) -> None:
        """Record, apply faults, handle: the path of every request to the emulated services."""
        body = await read_body(receive)
        incoming = _incoming(scope, body, graph=graph)
        target = incoming.path + ("?" + unquote(incoming.raw_query) if incoming.raw_query else "")
        with self._lock:
            self._seq += 1
            entry = _Entry(
                seq=self._seq,
                at=time.monotonic(),
                method=incoming.method,
                path=incoming.path,
                query=incoming.query,
                body=_logged_body(incoming),
                consistency_level=incoming.consistency_level,
                token_id=self._token_id(incoming.authorization),
            )
            self._log.append(entry)
            decision = self._injector.decide(
                self.faults, method=incoming.method, target=target, is_auth=not incoming.is_graph
            )
            entry.fault = decision.fault

        if decision.latency_s > 0:
            await anyio.sleep(decision.latency_s)
        if decision.fault == "drop":
            reply = _fault_reply(incoming, 502)
            await send_truncated_and_drop(send, reply.status, reply.body, _headers(reply))
        if decision.fault in ("error", "throttle"):
            if decision.fault == "throttle":
                reply = _fault_reply(incoming, 429, decision.retry_after_s)
            else:
                reply = _fault_reply(incoming, decision.status or 503)
            with self._lock:
                entry.status = reply.status
            await send_json(send, reply.status, reply.body, _headers(reply))
            return

        with self._lock:
            try:
                reply = self._handle(incoming)
            except _Rejected as rejected:
                reply = rejected.reply
            if decision.fault != "drop_after":
                entry.status = reply.status
        if decision.fault == "drop_after":
            await send_truncated_and_drop(send, reply.status, reply.body, _headers(reply))
        if decision.delay_s > 0:
            await anyio.sleep(decision.delay_s)
        await send_json(send, reply.status, reply.body, _headers(reply))

    def _handle(self, incoming: _Incoming) -> _Reply:
        """Answer one request as the real service would. Called with the lock held."""
        if incoming.is_graph:
            return self._handle_graph(incoming)
        return self._handle_login(incoming)

    # --- Graph ------------------------------------------------------------------------------------------

    def _handle_graph(self, incoming: _Incoming) -> _Reply:
        if not incoming.graph_path:
            # The login host's paths (a token request sent to Graph): Graph knows no such version.
            version = incoming.path.strip("/").split("/")[0]
            return _graph_error(incoming, 400, "BadRequest", f"Invalid version: {version}")
        # Graph checks the token before it routes: any path needs one.
        token = self._authenticate(incoming)
        segments = [unquote(s) for s in incoming.path[len(GRAPH_PREFIX) :].strip("/").split("/")]
        lowered = [s.lower() for s in segments]
        if incoming.method != "GET":
            return _graph_error(
                incoming,
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        charged = self._charge(incoming, token, request_cost(incoming, lowered))
        reply = self._route_graph(incoming, token, segments, lowered)
        return dataclasses.replace(reply, headers=reply.headers + charged) if charged else reply

    def _route_graph(
        self, incoming: _Incoming, token: _Token, segments: list[str], lowered: list[str]
    ) -> _Reply:
        if lowered[0] in ("groups", "users") and len(lowered) == 2 and lowered[1] in ("delta", "delta()"):
            if lowered[0] == "groups":
                return self._groups_delta(incoming, token)
            return self._users_delta(incoming, token)
        if lowered[0] == "groups" and len(segments) >= 3 and lowered[2] in ("members", "transitivemembers"):
            return self._list_members(
                incoming, token, segments[1], lowered[2] == "transitivemembers", segments[3:]
            )
        if lowered[0] == "groups" and len(segments) == 2:
            return self._get_group(incoming, token, segments[1])
        if lowered[0] == "users" and len(segments) == 2:
            return self._get_user(incoming, token, segments[1])
        if lowered[0] == "users" and len(segments) >= 3 and lowered[2] == "memberof":
            return self._list_member_of(incoming, token, segments[1], segments[3:])
        if lowered[0] == "admin":
            return self._admin(incoming, token, segments)
        unknown = next((s for s in segments if s), segments[0])
        if lowered[0] in ("groups", "users") and len(segments) > 2:
            unknown = segments[2]
        return _graph_error(incoming, 400, "BadRequest", f"Resource not found for the segment '{unknown}'.")
