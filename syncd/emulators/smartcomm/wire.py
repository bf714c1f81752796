"""The SmartCommunicator emulator's requests and replies on the wire: the service's paths, a request as parsed
from ASGI and as logged, each endpoint's error bodies (shaped differently per endpoint, as the real ones are),
and sending a reply whole or cut off mid-body.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import parse_qsl

from syncd.emulators.common import (
    RecordedFault,
    encode_json,
    json_headers,
    retry_after_value,
    send_json,
    send_truncated_and_drop,
)

if TYPE_CHECKING:
    from starlette.types import Scope, Send

AUTH_PATH = "/rest/v1/authenticate"
SMARTCOMM_PREFIX = "/rest/v1/smartcomm/"

_UNAUTHORIZED = {"code": 401, "error": "Unauthorized"}
_FORBIDDEN = {"code": 403, "error": "Forbidden"}
_NO_RECORDS = "No Records found for any of the parameters provided"
_AGENT_NOT_FOUND = "Agent not found"
_INVALID_BODY = "Invalid request body"
_INVALID_KEY_ID = "Invalid key_id"


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
    content_type: str | None = None
    accept: str | None = None


@dataclass(frozen=True)
class _Reply:
    status: int
    body: object
    headers: tuple[tuple[str, str], ...] = ()
    applied: bool = False


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
    authorization = content_type = accept = None
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == b"authorization":
            authorization = value.decode("latin-1")
        elif lowered == b"content-type":
            content_type = value.decode("latin-1")
        elif lowered == b"accept":
            accept = value.decode("latin-1")
    query_string: bytes = scope.get("query_string", b"")
    query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    return _Incoming(
        method=str(scope["method"]).upper(),
        path=str(scope["path"]),
        query=query,
        authorization=authorization,
        body=body,
        content_type=content_type,
        accept=accept,
    )


def _json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type says JSON (`application/json`, parameters such as charset allowed)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _accepts_json(accept: str | None) -> bool:
    """Whether an Accept header takes JSON: `application/json`, `application/*` or `*/*`, not at q=0. A
    missing header does not: the API asks clients to say `Accept: application/json`."""
    if accept is None:
        return False
    for media_range in accept.split(","):
        kind, _, params = media_range.partition(";")
        if kind.strip().lower() not in ("application/json", "application/*", "*/*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


def _unsupported_media_type() -> _Reply:
    return _Reply(415, {"message": "Unsupported Media Type"})


def _not_acceptable() -> _Reply:
    return _Reply(406, {"message": "Not Acceptable"})
