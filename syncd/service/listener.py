"""The admin listener's server: uvicorn set up from `[admin]` for a hostile network.

uvicorn alone has no time limit on a request head (a client sending half a head keeps its connection for
ever) and its `limit_concurrency` answers 503 only once a head has arrived, so a few hundred slow sockets
hold the listener. Here:

- **Header timeout.** `HeadTimeoutProtocol` (uvicorn's h11 protocol) arms a timer when a connection is made
  and again when a response completes on a kept-alive connection; unless a complete request head has arrived
  within `admin.header_timeout`, the connection is closed. Bytes trickling in do not re-arm it. With TLS, the
  handshake gets the same limit (asyncio's `ssl_handshake_timeout`), before the head timer starts.
- **Connection limit.** At most `admin.max_connections` connections are open at once. A connection beyond it
  closes the longest-waiting connection that has not sent a complete head (a slow client, or an idle
  kept-alive one), so a flood of slow sockets cannot lock out a prober or an admin; when every connection is
  busy with a request, the newcomer is answered 503 (Retry-After: 1) and closed.
- **TLS** with `admin.tls_cert_path` and `admin.tls_key_path` (https only).
- No proxy headers: the client address and scheme are the connection's own (X-Forwarded-For cannot dodge the
  rate limit on wrong tokens; a TLS-terminating proxy sets `admin.secure_cookie` instead), no WebSocket, no
  `server` header, no access log, no lifespan, and no signal handling (the daemon owns SIGTERM/SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any, cast

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from syncd.config.service import AdminSettings

BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 21\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Too many connections\n"
)
"""What a connection beyond `admin.max_connections` gets when no other can make room."""


class ConnectionBook:
    """The open connections of one listener and those waiting for a request head (oldest first)."""

    def __init__(self, max_connections: int, header_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.open: set[HeadTimeoutProtocol] = set()
        self.waiting: dict[HeadTimeoutProtocol, None] = {}  # insertion-ordered: the first waited longest

    def oldest_waiting(self) -> HeadTimeoutProtocol | None:
        """The connection that has waited longest for a request head, if any."""
        return next(iter(self.waiting), None)


class AdminConfig(uvicorn.Config):
    """uvicorn's Config with the listener's connection book (shared by its connections)."""

    def __init__(self, app: ASGIApp, *, book: ConnectionBook, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.book = book


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit on each request head and a bound on open connections."""

    _timer: asyncio.TimerHandle | None = None

    @property
    def _book(self) -> ConnectionBook:
        return cast(AdminConfig, self.config).book

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        book = self._book
        book.open.add(self)
        if len(book.open) > book.max_connections:
            victim = book.oldest_waiting()
            if victim is None:  # every other connection is busy with a request: refuse this one
                book.open.discard(self)
                transport.write(BUSY_RESPONSE)
                transport.close()
                return
            victim.drop()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self._timer is not None and self.conn.their_state is not h11.IDLE:
            self._head_done()  # a request head arrived (or the connection failed): no more waiting

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._await_head()  # kept alive: the next request's head gets the same time
        super().on_response_complete()

    def drop(self) -> None:
        """Close this connection at once (no response): it waited too long, or makes room."""
        self._forget()
        if not self.transport.is_closing():
            self.transport.abort()

    def _await_head(self) -> None:
        book = self._book
        if self._timer is not None:
            self._timer.cancel()
        book.waiting.pop(self, None)
        book.waiting[self] = None
        self._timer = self.loop.call_later(book.header_timeout_s, self.drop)

    def _head_done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._book.waiting.pop(self, None)

    def _forget(self) -> None:
        self._head_done()
        self._book.open.discard(self)


class AdminServer(uvicorn.Server):
    """uvicorn without its own signal handling (the daemon owns SIGTERM/SIGINT and drains first), with a
    TLS handshake limited to the header timeout."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn passes no ssl_handshake_timeout to create_server (asyncio's default is 60 s): add it for
        # the duration of the start-up, on this loop only.
        loop = asyncio.get_running_loop()
        create_server: Callable[..., Any] = loop.create_server
        handshake_s = cast(AdminConfig, self.config).book.header_timeout_s

        async def bounded(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_handshake_timeout", handshake_s)
            return await create_server(*args, **kwargs)

        setattr(loop, "create_server", bounded)  # noqa: B010 - an instance attribute, removed below
        try:
            await super().startup(sockets=sockets)
        finally:
            delattr(loop, "create_server")


def admin_server(app: ASGIApp, admin: AdminSettings) -> AdminServer:
    """The uvicorn server for the admin app, set up from `[admin]` (serve it with `serve(sockets=[...])` on
    the socket `daemon.bind_admin` bound)."""
    tls: dict[str, Any] = {}
    if admin.tls:
        tls = {"ssl_certfile": admin.tls_cert_path, "ssl_keyfile": admin.tls_key_path}
    config = AdminConfig(
        app,
        book=ConnectionBook(admin.max_connections, admin.header_timeout_s),
        host=admin.host,
        port=admin.port,
        http=HeadTimeoutProtocol,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        **tls,
    )
    return AdminServer(config)


__all__ = ["AdminConfig", "AdminServer", "ConnectionBook", "HeadTimeoutProtocol", "admin_server"]
