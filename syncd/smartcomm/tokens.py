"""The SmartCommunicator bearer token: when to renew it, and one shared source that fetches it.

The Atmosphere API issues a JWT whose payload carries `exp` (seconds). We never verify its signature (that
is the server's job); we only read `exp` to renew ahead of it, and renew once more whenever a call answers
401. Concurrent callers share one fetch; rejected credentials are remembered for a cool-down so a wrong
password produces one authentication request, not one per waiting call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from syncd.smartcomm.errors import BadCredentials, SmartCommError

log = structlog.get_logger("syncd.smartcomm")

DEFAULT_LIFETIME_S = 24 * 3600.0
"""IntelePeer documents 24-hour tokens; assumed when a token carries no readable `exp`."""


@dataclass(frozen=True)
class TokenTimes:
    """When a token should be renewed and when it really expires (seconds since the epoch)."""

    renew_at: float
    expires_at: float


def jwt_claims(token: str) -> dict[str, object]:
    """Pure: the payload of a JWT, without checking the signature ({} when it is not a readable JWT)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_times(token: str, *, now: float, renew_margin_s: float) -> TokenTimes:
    """Pure: renewal and expiry times of `token` received at `now`.

    Renewal comes `renew_margin_s` before `exp`, but never earlier than 90% of the token's lifetime, so a
    short-lived token is not renewed on every call. Without a readable `exp` the documented 24 hours apply.
    """
    claims = jwt_claims(token)
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return TokenTimes(
            renew_at=now + DEFAULT_LIFETIME_S - renew_margin_s, expires_at=now + DEFAULT_LIFETIME_S
        )
    issued = claims.get("crt", claims.get("iat"))
    start = float(issued) if isinstance(issued, int | float) and not isinstance(issued, bool) else now
    lifetime = max(float(exp) - start, 0.0)
    margin = min(renew_margin_s, lifetime * 0.1)
    return TokenTimes(renew_at=float(exp) - margin, expires_at=float(exp))


class TokenSource:
    """Hands out a valid token, fetching a new one when it is due, once for all concurrent callers."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[str]],
        *,
        renew_margin_s: float,
        failure_cooldown_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._renew_margin_s = renew_margin_s
        self._failure_cooldown_s = failure_cooldown_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._times = TokenTimes(renew_at=0.0, expires_at=0.0)
        self._failure: BadCredentials | None = None
        self._failed_at = 0.0

    async def token(self) -> str:
        """A token to send now; raises BadCredentials (or the fetch's error) when none can be had."""
        current = self._current()
        if current is not None:
            return current
        async with self._lock:
            current = self._current()
            if current is not None:
                return current
            return await self._renew()

    def invalidate(self, token: str) -> None:
        """Forget `token` after the service rejected it (only if no one has renewed it meanwhile)."""
        if token == self._token:
            self._token = None

    def _current(self) -> str | None:
        self._raise_if_cooling_down()
        if self._token is not None and self._clock() < self._times.renew_at:
            return self._token
        return None

    def _raise_if_cooling_down(self) -> None:
        failure = self._failure
        if failure is None:
            return
        waited = self._clock() - self._failed_at
        if waited >= self._failure_cooldown_s:
            return
        raise BadCredentials(
            f"{failure.message} (rejected {waited:.0f}s ago; not asking again for "
            f"{self._failure_cooldown_s - waited:.0f}s)",
            status=failure.status,
            method=failure.method,
            path=failure.path,
        )

    async def _renew(self) -> str:
        started = self._clock()
        try:
            token = await self._fetch()
        except BadCredentials as exc:
            self._token = None
            self._failure, self._failed_at = exc, self._clock()
            raise
        except SmartCommError as exc:
            # Renewal is early by design: while the old token is still valid, a failed renewal is not fatal.
            if self._token is not None and self._clock() < self._times.expires_at:
                log.warning("smartcomm.token_renewal_failed", error=str(exc), kept_token_for_s=self._left())
                return self._token
            raise
        self._failure = None
        self._token = token
        self._times = token_times(token, now=started, renew_margin_s=self._renew_margin_s)
        log.debug("smartcomm.token_issued", renew_in_s=round(self._times.renew_at - started, 3))
        return token

    def _left(self) -> float:
        return round(self._times.expires_at - self._clock(), 3)
