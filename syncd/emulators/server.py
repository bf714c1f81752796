"""Run any ASGI application as a real HTTPS server in a background thread, for tests and demos.

`serve_https` starts uvicorn in a daemon thread with its own event loop, so it can be used from synchronous
pytest fixtures (module or session scope) while the tests' own event loop runs in the main thread, and from
the CLI's demo. `TestCA` wraps a trustme certificate authority: clients trust `ca_path` (our `ca_bundle`
setting) exactly as they would trust a corporate CA, so the TLS code path under test is the production one.

Emulators that want to look like a dropped connection raise `ConnectionDropped` after starting a response;
`serve_https` keeps uvicorn from logging those deliberate aborts as application errors.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import trustme
import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = [
    "ConnectionDropped",
    "RunningServer",
    "TestCA",
    "quiet_deliberate_drops",
    "serve_https",
]

_STARTUP_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_S = 10.0
# In-flight requests (a delayed response, say) get this long to finish when the server stops.
_GRACEFUL_SHUTDOWN_S = 3
_DEFAULT_HOSTNAMES = ("127.0.0.1", "localhost", "::1")


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by an emulator app to abort the connection on purpose.

    Under uvicorn the app first starts a response it does not finish, so uvicorn closes the connection and
    the client sees a truncated body (a transport error). Under `httpx.ASGITransport` the exception itself
    reaches the client, and being an `httpx.RemoteProtocolError` it is the transport error a real dropped
    connection would give.
    """


class _DeliberateDropFilter(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" record when the exception is a deliberate drop."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def quiet_deliberate_drops() -> None:
    """Keep uvicorn from logging a traceback for each `ConnectionDropped` (idempotent, process-wide).

    uvicorn logs every exception escaping the app on "uvicorn.error"; a deliberate drop is not an error and
    test output must stay clean. Other exceptions are still logged.
    """
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DeliberateDropFilter) for f in logger.filters):
        logger.addFilter(_DeliberateDropFilter())


@dataclass(frozen=True)
class RunningServer:
    """Where a server started by `serve_https` listens, and the CA that clients must trust."""

    base_url: str
    """"https://<host>:<port>", no trailing slash (IPv6 hosts in brackets)."""
    ca_path: Path
    """PEM of the CA that signed the server certificate (for the `ca_bundle` setting)."""
    host: str
    port: int


class TestCA:
    """A throwaway certificate authority (trustme) that can sign certificates for several servers. Its files
    (the CA certificate, each server's certificate and key) are written owner-only (0600)."""

    # The name starts with "Test"; this keeps pytest from trying to collect it from test modules.
    __test__ = False

    def __init__(self, directory: Path) -> None:
        """Create the CA and write its certificate to `directory / "ca.pem"`."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._ca = trustme.CA()
        self.ca_path: Path = directory / "ca.pem"
        _write_private(self.ca_path, self._ca.cert_pem.bytes())
        self._serial = itertools.count(1)
        self._lock = threading.Lock()

    def server_cert_files(self, *hostnames: str) -> tuple[Path, Path]:
        """Issue a server certificate and return `(certfile, keyfile)` paths.

        The certificate always covers 127.0.0.1, localhost and ::1, plus any `hostnames` given. The
        certfile holds the leaf followed by its chain.
        """
        names = list(dict.fromkeys((*_DEFAULT_HOSTNAMES, *hostnames)))
        with self._lock:
            serial = next(self._serial)
            leaf = self._ca.issue_cert(*names)
        certfile = self.directory / f"server-{serial}.pem"
        keyfile = self.directory / f"server-{serial}.key"
        _write_private(certfile, b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        _write_private(keyfile, leaf.private_key_pem.bytes())
        return certfile, keyfile

    def ssl_context(self) -> ssl.SSLContext:
        """A new client context trusting only this CA.

        A new one per call on purpose: a context shared by clients in several threads can send a corrupt
        ClientHello (see docs/spec/graph-and-msal.md, "TLS contexts and threads").
        """
        return ssl.create_default_context(cafile=str(self.ca_path))


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path`, readable and writable by its owner only (0600), whatever the umask; a file
    already there (another CA's) is replaced."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        os.fchmod(stream.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        stream.write(data)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket's proto is IPPROTO_TCP (0 would do for the kernel). Without it Nagle meets delayed ACKs and every
    # response takes about 40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


@contextmanager
def serve_https(
    app: ASGIApp, *, ca: TestCA, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningServer]:
    """Serve `app` over HTTPS with uvicorn in a daemon thread; yield once it accepts connections.

    The server runs its own event loop in its own thread, so this synchronous context manager suits pytest
    fixtures of any scope while each test's loop runs in the main thread (from async code, enter it via
    `asyncio.to_thread` if the brief start-up wait matters). Port 0 picks a free port: the socket is bound
    here so the real port is known before uvicorn starts. On exit the server stops (idle keep-alive
    connections are closed, in-flight requests get a few seconds) and the thread is joined. uvicorn logs at
    "warning" through the standard logging tree (no handlers of its own), with the access log and lifespan
    off.
    """
    quiet_deliberate_drops()
    certfile, keyfile = ca.server_cert_files(host)
    sock = _bind(host, port)
    try:
        actual_port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            app,
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
            log_level="warning",
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"https-server-{actual_port}",
            daemon=True,
        )
        thread.start()
        try:
            deadline = time.monotonic() + _STARTUP_TIMEOUT_S
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError(f"HTTPS server on {host}:{actual_port} failed to start")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"HTTPS server on {host}:{actual_port} did not start in time")
                time.sleep(0.005)
            yield RunningServer(
                base_url=f"https://{_url_host(host)}:{actual_port}",
                ca_path=ca.ca_path,
                host=host,
                port=actual_port,
            )
        finally:
            server.should_exit = True
            thread.join(_SHUTDOWN_TIMEOUT_S)
            if thread.is_alive():
                server.force_exit = True
                thread.join(_SHUTDOWN_TIMEOUT_S)
    finally:
        sock.close()
