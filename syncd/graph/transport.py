"""The HTTP transport under msgraph-sdk: our own pooled aiohttp transport (our TLS context, no proxy from the
environment), and the count of Graph's throttling answers.

kiota's retry middleware sits above this transport and retries a 429 by itself, so only here is every
throttled answer seen, the retried ones included; `ThrottleCounting` tells the caller of each one (the daemon
exports the count as `syncd_throttled_responses_total{api="graph"}`).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx
from httpx_aiohttp import AiohttpTransport

from syncd.config.settings import GraphSettings

THROTTLED = 429
"""Graph's status for "too many requests"."""


class ThrottleCounting(httpx.AsyncBaseTransport):
    """A transport that calls `on_throttled` for every 429 the wrapped one answers, and closes it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, on_throttled: Callable[[], None]) -> None:
        self._inner = inner
        self._on_throttled = on_throttled

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if response.status_code == THROTTLED:
            self._on_throttled()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def graph_transport(
    settings: GraphSettings,
    transport: httpx.AsyncBaseTransport | None = None,
    on_throttled: Callable[[], None] | None = None,
) -> httpx.AsyncBaseTransport:
    """`transport` (by default a pooled aiohttp transport trusting `settings.ca_bundle`, or the system's
    store), counting throttled answers when `on_throttled` is given."""
    if transport is None:
        context = ssl.create_default_context(cafile=settings.ca_bundle or None)
        transport = AiohttpTransport(verify=context, trust_env=False)
    return transport if on_throttled is None else ThrottleCounting(transport, on_throttled)


__all__ = ["THROTTLED", "ThrottleCounting", "graph_transport"]
