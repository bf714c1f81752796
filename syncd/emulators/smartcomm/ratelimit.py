"""The SmartCommunicator emulator's optional rate limit: a token bucket over the agents endpoints (requests
per second, burst) that answers 429 with a Retry-After once it is empty, as an API gateway in front of the
service would. Off by default; set with `SmartCommEmulator(rate_limit=...)`, `set_rate_limit`, or
PUT /_emulator/rate_limit {"rate_per_s": 20, "burst": 20} (`{"rate_per_s": null}` turns it off).

The bucket is consulted on arrival, before any other fault: a request it refuses is logged with status 429
and fault "throttle", and is not applied. Logins (POST /rest/v1/authenticate) are not limited.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pydantic
from starlette.responses import JSONResponse
from starlette.routing import Route
from typing_extensions import TypedDict  # pydantic validates only this TypedDict before Python 3.12

from syncd.emulators.common import ControlError, control_body, control_error, validate_control
from syncd.emulators.smartcomm.store import _AgentStore
from syncd.emulators.smartcomm.wire import SMARTCOMM_PREFIX

if TYPE_CHECKING:
    from starlette.requests import Request


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `burst` requests at once, refilled at `rate_per_s` requests per second."""

    rate_per_s: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError("RateLimit.rate_per_s must be a positive number")
        if self.burst < 1:
            raise ValueError("RateLimit.burst must be at least 1")


class TokenBucket:
    """Pure given the times passed in: the bucket of one `RateLimit`, full at `now`."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self._tokens = float(limit.burst)
        self._at = now

    def take(self, now: float) -> float | None:
        """Take a token for a request arriving at `now`: None if there was one, else the seconds until
        there is one (the request is refused)."""
        limit = self.limit
        self._tokens = min(float(limit.burst), self._tokens + max(now - self._at, 0.0) * limit.rate_per_s)
        self._at = max(now, self._at)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / limit.rate_per_s


class _RateLimitBody(TypedDict):
    """Body of PUT /_emulator/rate_limit."""

    rate_per_s: float | None
    burst: int | None


_RATE_LIMIT_ADAPTER = pydantic.TypeAdapter(_RateLimitBody)


class _RateLimits(_AgentStore):
    """The rate limit of `SmartCommEmulator`: its state, the check the request path makes, its controls."""

    _initial_rate_limit: RateLimit | None
    _bucket: TokenBucket | None

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Limit the agents endpoints to `limit` from now on, starting with a full bucket (None: no limit)."""
        with self._lock:
            self._bucket = None if limit is None else TokenBucket(limit, time.monotonic())

    @property
    def rate_limit(self) -> RateLimit | None:
        with self._lock:
            return None if self._bucket is None else self._bucket.limit

    def reset(self) -> None:
        """See `SmartCommEmulator.reset`; the rate limit goes back to the one given to the constructor."""
        super().reset()
        self.set_rate_limit(self._initial_rate_limit)

    def _rate_limit_wait(self, path: str) -> float | None:
        """Called with the lock held for each request as it arrives: None if it may go on, else the seconds
        its Retry-After asks for."""
        if self._bucket is None or not path.startswith(SMARTCOMM_PREFIX):
            return None
        return self._bucket.take(time.monotonic())

    def _rate_limit_routes(self) -> list[Route]:
        return [
            Route("/rate_limit", self._control_get_rate_limit, methods=["GET"]),
            Route("/rate_limit", self._control_set_rate_limit, methods=["PUT"]),
        ]

    def _rate_limit_json(self) -> dict[str, object]:
        limit = self.rate_limit
        if limit is None:
            return {"rate_per_s": None, "burst": None}
        return {"rate_per_s": limit.rate_per_s, "burst": limit.burst}

    async def _control_get_rate_limit(self, request: Request) -> JSONResponse:
        return JSONResponse(self._rate_limit_json())

    async def _control_set_rate_limit(self, request: Request) -> JSONResponse:
        try:
            body = await control_body(request)
            fields = validate_control(_RATE_LIMIT_ADAPTER, _with_defaults(body), ("rate_per_s", "burst"))
            rate, burst = fields["rate_per_s"], fields["burst"]
            limit = None
            if rate is not None:
                limit = RateLimit(rate, burst if burst is not None else max(1, int(rate)))
        except (ControlError, ValueError) as exc:
            return control_error(exc)
        self.set_rate_limit(limit)
        return JSONResponse(self._rate_limit_json())


def _with_defaults(body: object) -> object:
    """A missing `burst` is one second's worth of requests (the rate, rounded down, at least 1)."""
    if isinstance(body, dict) and "burst" not in body:
        return {**body, "burst": None}
    return body
