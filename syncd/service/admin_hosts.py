"""The admin listener's Host check: requests naming a host it does not answer to are refused (400).

Why: with DNS rebinding, a web page on attacker.example can have the victim's browser resolve that name to
127.0.0.1 and talk to a listener on loopback as if it were the page's own site; the only trace is the Host
header, which still says attacker.example. So a request is served only when its Host (port stripped, IPv6
brackets removed, lowercased, a trailing dot dropped) is one this listener is known by:

- always: the listen address, `localhost`, 127.0.0.1, ::1, this machine's name (`socket.gethostname()`) and
  fully qualified name, and the addresses that name resolves to (in a Kubernetes pod, the pod IP; in a
  Docker container, the container's IP). None of these can be a rebinding: an IP literal is not a name an
  attacker controls, and browsers resolve `localhost` themselves;
- plus `admin.allowed_hosts`: the names a reverse proxy, an ingress or a Kubernetes Service uses.

Behind a reverse proxy that sets X-Forwarded-Host, every host it names must be allowed too.

/healthz and /readyz answer whatever the Host: liveness and readiness probes name the pod IP (or whatever
address they were given), the Docker HEALTHCHECK 127.0.0.1, and neither endpoint tells more than "alive" and
"ready or why not".
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable

import structlog
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from syncd.config.service import AdminSettings

log = structlog.get_logger("syncd.admin")

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths answered whatever the Host header says (probes)."""

REFUSED_TEXT = "Refused: this listener does not answer to that host name (see admin.allowed_hosts).\n"

_LOGGED_LIMIT = 100
"""Distinct refused hosts logged (once each) per process: a rebinding page cannot flood the log."""


def host_name(value: str) -> str:
    """Pure: the host of a Host (or X-Forwarded-Host) value: no port, no IPv6 brackets, lowercase, no
    trailing dot; "" when there is none."""
    value = value.strip().lower()
    if value.startswith("["):
        host, closed, _ = value[1:].partition("]")
        return host if closed else ""
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def machine_hosts() -> set[str]:
    """This machine's names and the addresses its name resolves to (resolution failures are ignored)."""
    names = {socket.gethostname()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn())
    hosts = {name.lower().rstrip(".") for name in names if name}
    for name in names:
        with contextlib.suppress(OSError, UnicodeError):
            for *_, sockaddr in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP):
                hosts.add(str(sockaddr[0]).partition("%")[0].lower())
    return hosts


def allowed_hosts(admin: AdminSettings, machine: Iterable[str] | None = None) -> frozenset[str]:
    """The host names the admin listener answers to (see the module docstring); `machine` defaults to
    `machine_hosts()`."""
    fixed = {admin.host.lower(), "localhost", "127.0.0.1", "::1"}
    return frozenset(fixed | set(machine_hosts() if machine is None else machine) | set(admin.allowed_hosts))


class HostCheck:
    """ASGI middleware: 400 for a request whose Host or X-Forwarded-Host is not in `allowed`, except on
    `open_paths`."""

    def __init__(
        self, app: ASGIApp, allowed: frozenset[str], open_paths: frozenset[str] = OPEN_PATHS
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.open_paths = open_paths
        self._logged: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        named = [headers.get("host", "")]
        named += [part for value in headers.getlist("x-forwarded-host") for part in value.split(",")]
        refused = [host_name(value) for value in named if host_name(value) not in self.allowed]
        if not refused:
            await self.app(scope, receive, send)
            return
        shown = refused[0][:100]
        if shown not in self._logged and len(self._logged) < _LOGGED_LIMIT:
            self._logged.add(shown)
            client = scope.get("client")
            log.warning(
                "admin.host_refused",
                host=shown,
                client=client[0] if client else None,
                path=scope["path"][:200],
                hint="add the name to admin.allowed_hosts if this listener should answer to it",
            )
        await PlainTextResponse(REFUSED_TEXT, status_code=400)(scope, receive, send)


__all__ = ["OPEN_PATHS", "HostCheck", "allowed_hosts", "host_name", "machine_hosts"]
