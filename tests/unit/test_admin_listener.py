"""The admin listener's server in process (`syncd.service.listener`): a request whose head arrived is never
cut by the header timeout however long it takes, and when every connection is busy a newcomer gets 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from syncd.config.service import AdminSettings
from syncd.service.daemon import bind_admin
from syncd.service.listener import AdminConfig, ConnectionBook, admin_server

HEADER_TIMEOUT_S = 0.3


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, asyncio.Event, ConnectionBook]]:
    """A listener (2 connections, a 0.3 s header timeout) whose /slow answers once the event is set."""
    release = asyncio.Event()

    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.wait_for(release.wait(), timeout=10)
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/slow", slow)])
    settings = AdminSettings.model_validate(
        {"listen": "127.0.0.1:1", "max_connections": 2, "header_timeout": HEADER_TIMEOUT_S}
    )
    sock = bind_admin("127.0.0.1", 0)
    server = admin_server(app, settings)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started)
        assert isinstance(server.config, AdminConfig)
        yield sock.getsockname()[1], release, server.config.book
    finally:
        release.set()
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
        sock.close()


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (polling, at most `timeout_s`) until `condition()` holds."""
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def request(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def test_a_request_in_flight_outlives_the_header_timeout(
    listener: tuple[int, asyncio.Event, ConnectionBook],
) -> None:
    port, release, _ = listener
    reader, writer = await request(port, "/slow")
    await asyncio.sleep(HEADER_TIMEOUT_S * 3)  # the point: longer than the header timeout
    release.set()
    answer = await asyncio.wait_for(reader.read(4096), timeout=5)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"done")
    assert b"server: uvicorn" not in answer.lower()
    writer.close()
    await writer.wait_closed()


async def test_when_every_connection_is_busy_a_newcomer_gets_503(
    listener: tuple[int, asyncio.Event, ConnectionBook],
) -> None:
    port, release, book = listener
    busy = [await request(port, "/slow") for _ in range(2)]
    await until(lambda: len(book.open) == 2 and not book.waiting)  # neither can make room
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    refused = await asyncio.wait_for(reader.read(4096), timeout=5)
    assert refused.startswith(b"HTTP/1.1 503")
    assert b"retry-after: 1" in refused.lower()
    writer.close()
    await writer.wait_closed()
    release.set()
    for busy_reader, busy_writer in busy:
        assert (await asyncio.wait_for(busy_reader.read(4096), timeout=5)).startswith(b"HTTP/1.1 200")
        busy_writer.close()
        await busy_writer.wait_closed()
