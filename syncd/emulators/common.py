"""What the emulators share: fault injection, JSON replies over raw ASGI, and base64url/HS256 JWT helpers.

Each emulator answers faults in its own service's error shapes, so this module only decides *which* fault
hits a request (`FaultInjector`, from the random `Faults` and the queued `ScriptedFault`s) and leaves the
reply to the emulator. The send helpers write JSON straight to ASGI, including the deliberately truncated
response that looks like a dropped connection to a client.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import pydantic
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from syncd.emulators.server import ConnectionDropped

if TYPE_CHECKING:
    from starlette.types import Receive, Send

__all__ = [
    "FaultDecision",
    "FaultInjector",
    "FaultKind",
    "Faults",
    "RecordedFault",
    "ScriptedFault",
    "b64url",
    "b64url_decode",
    "encode_json",
    "json_headers",
    "json_segment",
    "read_body",
    "retry_after_value",
    "send_json",
    "send_truncated_and_drop",
    "sign_hs256",
    "verify_hs256",
]

FaultKind = Literal["status", "throttle", "drop", "drop_after", "delay_after"]
RecordedFault = Literal["error", "throttle", "drop", "drop_after", "delay_after", "latency"]

_FAULT_KINDS: frozenset[str] = frozenset({"status", "throttle", "drop", "drop_after", "delay_after"})


@dataclass
class Faults:
    """Random faults, applied to every non-control request with a seeded RNG (reproducible per seed)."""

    latency_s: float = 0.0
    """Added before handling each request."""
    error_rate: float = 0.0
    """Share of requests answered 503 in the service's error shape (not applied)."""
    throttle_rate: float = 0.0
    """Share answered 429 with `Retry-After: <retry_after_s>` (integer seconds, rounded up; not applied)."""
    retry_after_s: float = 1.0
    drop_rate: float = 0.0
    """Share whose connection is dropped before the request is applied."""
    auth_too: bool = False
    """Whether faults (latency included) also hit the service's login endpoints (SmartCommunicator's
    POST /rest/v1/authenticate; the Entra endpoints of the Graph emulator)."""


@dataclass
class ScriptedFault:
    """A deterministic one-shot fault for tests; faults are consumed in order of injection.

    kinds: "status" answers `status` without applying the request; "throttle" answers 429 with Retry-After;
    "drop" drops the connection without applying the request; "drop_after" applies it, then drops the
    connection; "delay_after" applies it, then waits `delay_s` before responding.
    """

    kind: FaultKind
    method: str | None = None
    """Match only this method (None = any)."""
    path_contains: str | None = None
    """Match only requests whose path contains this (the Graph emulator also looks in the decoded query
    string, so "skiptoken" picks follow-up pages). None matches every request except those to login
    endpoints, which are hit only by a `path_contains` they contain (such as "/authenticate" or
    "/oauth2/"), as random faults spare them unless `Faults.auth_too`."""
    times: int = 1
    """How many matching requests it hits."""
    status: int = 503
    """For kind="status"."""
    retry_after_s: float = 1.0
    """For kind="throttle": the Retry-After header (integer seconds, rounded up)."""
    delay_s: float = 0.0
    """For kind="delay_after"."""


@dataclass(frozen=True)
class FaultDecision:
    """What the fault layer does with one request, decided on arrival (the emulator builds the replies)."""

    fault: RecordedFault | None = None
    latency_s: float = 0.0
    status: int | None = None
    """For fault="error": the status to answer instead of handling the request."""
    retry_after_s: float = 0.0
    """For fault="throttle"."""
    delay_s: float = 0.0
    """For fault="delay_after"."""


@dataclass
class _Scripted:
    fault: ScriptedFault
    remaining: int


class FaultInjector:
    """Picks each request's fault: the first matching scripted fault, else a seeded random draw.

    Not thread-safe on its own: the emulators call it with their state lock held.
    """

    def __init__(self, seed: int) -> None:
        # Seeded on purpose: a test run must be reproducible, these are not secrets.
        self._rng = random.Random(seed)  # noqa: S311
        self._scripted: list[_Scripted] = []

    def inject(self, fault: ScriptedFault) -> None:
        """Queue a copy of `fault`; raises ValueError for an unknown kind or `times` below 1."""
        if fault.times < 1:
            raise ValueError("ScriptedFault.times must be at least 1")
        if fault.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown ScriptedFault.kind: {fault.kind!r}")
        self._scripted.append(_Scripted(dataclasses.replace(fault), fault.times))

    def decide(self, faults: Faults, *, method: str, target: str, is_auth: bool) -> FaultDecision:
        """The fault for a request with this method and `target` (what `path_contains` is looked for in)."""
        for index, scripted in enumerate(self._scripted):
            fault = scripted.fault
            if fault.method is not None and fault.method.upper() != method:
                continue
            if fault.path_contains is None:
                if is_auth:
                    continue
            elif fault.path_contains not in target:
                continue
            scripted.remaining -= 1
            if scripted.remaining <= 0:
                del self._scripted[index]
            return _scripted_decision(fault)

        if is_auth and not faults.auth_too:
            return FaultDecision()
        latency = max(0.0, faults.latency_s)
        # One draw per request, always, so the sequence of faults depends only on the seed and on the
        # order of arrival, not on the rates chosen.
        draw = self._rng.random()
        if draw < faults.error_rate:
            return FaultDecision("error", latency, status=503)
        draw -= faults.error_rate
        if draw < faults.throttle_rate:
            return FaultDecision("throttle", latency, retry_after_s=faults.retry_after_s)
        draw -= faults.throttle_rate
        if draw < faults.drop_rate:
            return FaultDecision("drop", latency)
        return FaultDecision("latency" if latency > 0 else None, latency)


def _scripted_decision(fault: ScriptedFault) -> FaultDecision:
    if fault.kind == "status":
        return FaultDecision("error", status=fault.status)
    if fault.kind == "throttle":
        return FaultDecision("throttle", retry_after_s=fault.retry_after_s)
    if fault.kind == "delay_after":
        return FaultDecision("delay_after", delay_s=max(0.0, fault.delay_s))
    if fault.kind == "drop":
        return FaultDecision("drop")
    return FaultDecision("drop_after")


def retry_after_value(seconds: float) -> str:
    """A Retry-After header value: whole seconds, rounded up (HTTP allows no fractions)."""
    return str(max(0, math.ceil(seconds)))


# --- base64url and HS256 JWTs (stdlib only) ----------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises binascii.Error or ValueError if malformed."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_segment(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def sign_hs256(key: bytes, payload: dict[str, object]) -> str:
    """A compact JWT with header {"alg":"HS256","typ":"JWT"} signed with `key`."""
    signing_input = f"{json_segment({'alg': 'HS256', 'typ': 'JWT'})}.{json_segment(payload)}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def verify_hs256(key: bytes, token: str) -> dict[str, object] | None:
    """The payload of an HS256 JWT signed with `key`, or None if malformed or signed otherwise.

    Expiry and other claims are the caller's business: emulators log the token's id even when it expired.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header_b64, payload_b64, signature_b64 = parts
    try:
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        signature = b64url_decode(signature_b64)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    expected = hmac.new(key, signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        header: object = json.loads(b64url_decode(header_b64))
        payload: object = json.loads(b64url_decode(payload_b64))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(payload, dict):
        return None
    return payload


# --- raw ASGI JSON replies -----------------------------------------------------------------------------


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


# One encoder for all: json.dumps with arguments builds a new encoder per call, which dominates when
# member pages encode each of 999 objects on its own.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(body: object) -> bytes:
    return _ENCODER.encode(body).encode("utf-8")


def json_headers(
    body: bytes, headers: Iterable[tuple[str, str]] = (), *, content_type: str = "application/json"
) -> list[tuple[bytes, bytes]]:
    raw = [(b"content-type", content_type.encode("latin-1")), (b"content-length", str(len(body)).encode())]
    raw.extend((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)
    return raw


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Send a complete response; `headers` as from `json_headers` (content-length included)."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_truncated_and_drop(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> NoReturn:
    """Look like a connection lost mid-response: promise the whole body, send half of it, abort.

    uvicorn cannot close a connection before sending headers (an exception there becomes a 500), so the
    client gets headers, part of the body, then EOF: httpx raises RemoteProtocolError, aiohttp a payload
    error. A client that only looks at the status line sees the outcome that really happened: the real
    status after "drop_after", a 502 after "drop".
    """
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    raise ConnectionDropped("connection dropped by the emulator")


# --- the control API both emulators share (/_emulator/...) ---------------------------------------------


class ControlError(Exception):
    """A malformed control API request (answered 400)."""


class _TokenLifetime(TypedDict):
    seconds: float


_FAULTS_ADAPTER = pydantic.TypeAdapter(Faults)
_SCRIPTED_ADAPTER = pydantic.TypeAdapter(ScriptedFault)
_TOKEN_LIFETIME_ADAPTER = pydantic.TypeAdapter(_TokenLifetime)
_T = TypeVar("_T")


def control_error(exc: Exception) -> JSONResponse:
    """The 400 answer to a malformed control request."""
    return JSONResponse({"error": str(exc)}, status_code=400)


async def control_body(request: Request) -> object:
    """The parsed JSON body of a control request ({} when empty)."""
    raw = await request.body()
    try:
        parsed: object = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(f"body is not JSON: {exc}") from exc
    return parsed


def validate_control(adapter: pydantic.TypeAdapter[_T], body: object, allowed: Iterable[str]) -> _T:
    """`body` checked against `adapter`, refusing fields not in `allowed`."""
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ControlError(f"unknown fields: {', '.join(unknown)}")
    try:
        return adapter.validate_python(body)
    except pydantic.ValidationError as exc:
        raise ControlError(str(exc)) from exc


def field_names(cls: type[Any]) -> list[str]:
    """The field names of a dataclass (what a control endpoint accepts)."""
    return [field.name for field in dataclasses.fields(cls)]


class ControlApi:
    """The control endpoints both emulators share: request log, faults, scripted faults, token revocation and
    lifetime, reset. An emulator inherits it and adds `shared_control_routes()` to its own control routes."""

    faults: Faults
    token_lifetime_s: float

    @property
    def requests(self) -> Sequence[Any]:
        raise NotImplementedError

    def clear_requests(self) -> None:
        raise NotImplementedError

    def inject(self, fault: ScriptedFault) -> None:
        raise NotImplementedError

    def revoke_tokens(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def shared_control_routes(self) -> list[Route]:
        return [
            Route("/requests", self._control_get_requests, methods=["GET"]),
            Route("/requests", self._control_clear_requests, methods=["DELETE"]),
            Route("/faults", self._control_set_faults, methods=["PUT"]),
            Route("/inject", self._control_inject, methods=["POST"]),
            Route("/revoke", self._control_revoke, methods=["POST"]),
            Route("/reset", self._control_reset, methods=["POST"]),
            Route("/token_lifetime", self._control_set_token_lifetime, methods=["PUT"]),
        ]

    async def _control_get_requests(self, request: Request) -> JSONResponse:
        return JSONResponse([dataclasses.asdict(r) for r in self.requests])

    async def _control_clear_requests(self, request: Request) -> JSONResponse:
        self.clear_requests()
        return JSONResponse({"ok": True})

    async def _control_set_faults(self, request: Request) -> JSONResponse:
        try:
            faults = validate_control(_FAULTS_ADAPTER, await control_body(request), field_names(Faults))
        except ControlError as exc:
            return control_error(exc)
        self.faults = faults
        return JSONResponse(dataclasses.asdict(faults))

    async def _control_inject(self, request: Request) -> JSONResponse:
        try:
            fault = validate_control(
                _SCRIPTED_ADAPTER, await control_body(request), field_names(ScriptedFault)
            )
            self.inject(fault)
        except (ControlError, ValueError) as exc:
            return control_error(exc)
        return JSONResponse(dataclasses.asdict(fault))

    async def _control_revoke(self, request: Request) -> JSONResponse:
        self.revoke_tokens()
        return JSONResponse({"ok": True})

    async def _control_reset(self, request: Request) -> JSONResponse:
        self.reset()
        return JSONResponse({"ok": True})

    async def _control_set_token_lifetime(self, request: Request) -> JSONResponse:
        try:
            lifetime = validate_control(_TOKEN_LIFETIME_ADAPTER, await control_body(request), ("seconds",))
        except ControlError as exc:
            return control_error(exc)
        if not lifetime["seconds"] > 0:
            return JSONResponse({"error": "seconds must be positive"}, status_code=400)
        self.token_lifetime_s = lifetime["seconds"]
        return JSONResponse({"seconds": self.token_lifetime_s})
