"""The Graph emulator's requests and replies on the wire: a request as parsed from ASGI, a reply, the request
log's entries, Graph's OData and Entra's AADSTS error bodies (also for injected faults), Graph's response
headers, and absolute paging links.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

from syncd.emulators.common import RecordedFault, encode_json, json_headers, retry_after_value

if TYPE_CHECKING:
    from starlette.types import Scope

GRAPH_PREFIX = "/v1.0"

_GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
_ENTRA_JSON = "application/json; charset=utf-8"
# Characters left as they are in nextLink query values, so links read like Graph's ($select=id,mail).
_LINK_SAFE = ",$'()*:@/"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulated services received (control requests are not recorded)."""

    seq: int
    """1, 2, 3... per emulator (restarts at 1 after `reset()`, not after `clear_requests()`)."""
    at: float
    """time.monotonic() when received."""
    method: str
    path: str
    query: dict[str, str]
    """Decoded query parameters (the last value of a repeated one), names as sent ("$select")."""
    body: object | None
    """Token requests: the form fields, with client_secret and client_assertion reading "***"; else None."""
    status: int | None
    """Response status; None when the connection was dropped (or the response is still being prepared)."""
    fault: RecordedFault | None
    consistency_level: str | None
    """The ConsistencyLevel header as sent, if any."""
    token_id: str | None
    """The "jti" of the bearer token presented if we issued it (even if expired or revoked), else None."""


@dataclass
class _Entry:
    seq: int
    at: float
    method: str
    path: str
    query: dict[str, str]
    body: object | None
    consistency_level: str | None
    token_id: str | None
    status: int | None = None
    fault: RecordedFault | None = None

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
            consistency_level=self.consistency_level,
            token_id=self.token_id,
        )


@dataclass(frozen=True)
class _Incoming:
    method: str
    path: str
    query: dict[str, str]
    query_pairs: list[tuple[str, str]]
    raw_query: str
    origin: str
    """scheme://host[:port] as the client addressed us (Host header)."""
    authorization: str | None
    consistency_level: str | None
    client_request_id: str | None
    body: bytes
    graph: bool
    """Whether it came to the Graph host (else to the Entra login host)."""

    def option(self, name: str) -> str | None:
        """An OData system query option, with or without its "$" (Graph v1.0 accepts both)."""
        value = self.query.get(f"${name}")
        return value if value is not None else self.query.get(name)

    @property
    def is_graph(self) -> bool:
        return self.graph

    @property
    def graph_path(self) -> bool:
        """Whether the path is under Graph's version prefix (`/v1.0`)."""
        return self.path == GRAPH_PREFIX or self.path.startswith(GRAPH_PREFIX + "/")


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = _GRAPH_JSON


def _incoming(scope: Scope, body: bytes, *, graph: bool) -> _Incoming:
    authorization = consistency = client_request_id = host = None
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == b"authorization":
            authorization = value.decode("latin-1")
        elif lowered == b"consistencylevel":
            consistency = value.decode("latin-1")
        elif lowered == b"client-request-id":
            client_request_id = value.decode("latin-1")
        elif lowered == b"host":
            host = value.decode("latin-1")
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    raw_query = scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    return _Incoming(
        method=str(scope["method"]).upper(),
        path=str(scope["path"]),
        query=dict(pairs),
        query_pairs=pairs,
        raw_query=raw_query,
        origin=f"{scope.get('scheme', 'https')}://{host}",
        authorization=authorization,
        consistency_level=consistency,
        client_request_id=client_request_id,
        body=body,
        graph=graph,
    )


def _form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return []
    return parse_qsl(text, keep_blank_values=True)


def _logged_body(incoming: _Incoming) -> object | None:
    if incoming.method != "POST" or incoming.is_graph or not incoming.body:
        return None
    fields = dict(_form(incoming.body))
    # The request log is printed by failing tests and served by the control API: never keep credentials.
    for name in ("client_secret", "client_assertion"):
        if name in fields:
            fields[name] = "***"
    return fields


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _graph_error(
    incoming: _Incoming, status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> _Reply:
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": _now_utc().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": incoming.client_request_id or request_id,
            },
        }
    }
    return _Reply(status, encode_json(body), headers, content_type="application/json")


def _bad_request(incoming: _Incoming, message: str) -> _Reply:
    return _graph_error(incoming, 400, "Request_BadRequest", message)


def _entra_error(incoming: _Incoming, status: int, error: str, code: int, message: str) -> _Reply:
    now = _now_utc()
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = str(uuid.uuid4())
    correlation_id = incoming.client_request_id or str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\n"
            f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%S')}Z"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{incoming.origin}/error?code={code}",
    }
    return _Reply(status, encode_json(body), content_type=_ENTRA_JSON)


def _fault_reply(incoming: _Incoming, status: int, retry_after_s: float | None = None) -> _Reply:
    """The body an injected status gets: Entra's OAuth shape on login paths, Graph's OData shape else."""
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after_s is not None:
        headers = (("retry-after", retry_after_value(retry_after_s)),)
    if not incoming.is_graph:
        error = "temporarily_unavailable" if status >= 500 or status == 429 else "invalid_request"
        reply = _entra_error(
            incoming, status, error, 90033, "A transient error has occurred. Please try again."
        )
        return dataclasses.replace(reply, headers=headers)
    if status == 429:
        seconds = retry_after_value(retry_after_s if retry_after_s is not None else 1.0)
        message = f"Your request is throttled temporarily. Please try after {seconds} seconds."
        return _graph_error(incoming, 429, "TooManyRequests", message, headers)
    codes = {
        400: "BadRequest",
        401: "InvalidAuthenticationToken",
        403: "Authorization_RequestDenied",
        404: "Request_ResourceNotFound",
        500: "InternalServerError",
        502: "BadGateway",
        503: "serviceNotAvailable",
        504: "GatewayTimeout",
    }
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _graph_error(incoming, status, codes.get(status, "UnknownError"), phrase, headers)


class _Rejected(Exception):
    """A Graph request that fails validation; carries the reply."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _headers(reply: _Reply) -> list[tuple[bytes, bytes]]:
    return json_headers(reply.body, reply.headers, content_type=reply.content_type)


def _graph_headers(incoming: _Incoming) -> tuple[tuple[str, str], ...]:
    request_id = str(uuid.uuid4())
    return (
        ("request-id", request_id),
        ("client-request-id", incoming.client_request_id or request_id),
        ("odata-version", "4.0"),
    )


def _next_link(incoming: _Incoming, name: str, value: str, *, drop: Sequence[str]) -> str:
    """An absolute link to this path repeating the request's query options, with `name=value` instead of
    any option in `drop` (compared without "$", case-insensitively)."""
    dropped = {d.lower() for d in drop}
    parts = [
        f"{quote(key, safe='$')}={quote(val, safe=_LINK_SAFE)}"
        for key, val in incoming.query_pairs
        if key.lstrip("$").lower() not in dropped
    ]
    parts.append(f"{name}={value}")
    return f"{incoming.origin}{quote(incoming.path, safe='/()$,.:@')}?{'&'.join(parts)}"
