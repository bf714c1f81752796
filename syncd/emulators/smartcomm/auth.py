"""Authentication in the SmartCommunicator emulator: POST /rest/v1/authenticate (username and password, both
compared in constant time) and the HS256 bearer tokens it issues, with the documented claims, their expiry
and revocation.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from syncd.emulators.common import ControlApi, sign_hs256, verify_hs256
from syncd.emulators.smartcomm.wire import _UNAUTHORIZED, _parse_json, _Reply


@dataclass
class _Token:
    customer_id: int
    expires_at: float
    """Wall-clock expiry (epoch seconds): the token's `exp` claim."""
    revoked: bool = False


class _Auth(ControlApi):
    """The authenticate endpoint, and the tokens it issues and the agents endpoints check."""

    # Set by `SmartCommEmulator.__init__`, declared here so that this mixin type-checks on its own.
    customer_id: int
    username: str
    _password: str
    _key: bytes
    _tokens: dict[str, _Token]

    clock: Callable[[], float] = time.time
    """The wall clock (epoch seconds) tokens are issued and checked by: tests put a clock of their own here
    to move time instead of sleeping."""

    def _issue_token(self) -> str:
        now = self.clock()
        # crt rounds down and exp up, as in the documented token (exp - crt = 86401 for 24 hours). The token
        # dies exactly at its exp claim, as a real JWT check does: a client that renews ahead of `exp` must
        # never see a 401, even if the lifetime is fractional (a 2 s token then lives 2 to 3 s).
        expires = math.ceil(now + self.token_lifetime_s)
        jti = secrets.token_hex(16)
        payload = {
            "aid": 0,
            "cid": self.customer_id,
            "crt": int(now),
            "exp": expires,
            "uid": self.username,
            "src": "api-gtw",
            "jti": jti,
        }
        self._tokens[jti] = _Token(customer_id=self.customer_id, expires_at=float(expires))
        return sign_hs256(self._key, payload)

    def _token_id(self, authorization: str | None) -> str | None:
        """The jti of a bearer token this emulator signed (whatever its expiry), else None."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        payload = verify_hs256(self._key, token.strip())
        if payload is None:
            return None
        jti = payload.get("jti")
        return jti if isinstance(jti, str) and jti in self._tokens else None

    def _valid_token(self, authorization: str | None) -> _Token | None:
        jti = self._token_id(authorization)
        if jti is None:
            return None
        token = self._tokens[jti]
        if token.revoked or self.clock() >= token.expires_at:
            return None
        return token

    def _authenticate(self, body: bytes) -> _Reply:
        credentials = _parse_json(body)
        if not isinstance(credentials, dict):
            return _Reply(401, dict(_UNAUTHORIZED))
        username, password = credentials.get("username"), credentials.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return _Reply(401, dict(_UNAUTHORIZED))
        # Both compared in constant time and both always compared, as a real service should.
        user_ok = hmac.compare_digest(username.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self._password.encode())
        if not (user_ok and password_ok):
            return _Reply(401, dict(_UNAUTHORIZED))
        return _Reply(200, {"token": self._issue_token()})
