"""Who the admin listener believes: the status page's session cookies, sessions signed out, and the limit on
wrong tokens per client address.

A session cookie's value is "<issued_at>.<nonce>.<HMAC-SHA256(key=admin token, SESSION_LABEL|issued_at|nonce),
hex>": never the token itself, refused once older than SESSION_MAX_AGE_S, and rotating the token signs
everyone out. The random nonce makes every sign-in's value its own, so signing one browser out
(`Sessions.revoke`) leaves the others signed in. Revocations are kept in this process's memory until the
value would have expired anyway, and sessions signed before the process started are refused; with
PostgreSQL replicas behind one load balancer, a value signed out on one replica stays valid on the others
until it expires (docs/security.md).

`FailureLimiter` counts wrong tokens (a wrong bearer header, a wrong token in the sign-in form) per client
address (IPv6 clients per /64, which one host usually holds whole): after AUTH_FAILURE_LIMIT within
AUTH_FAILURE_WINDOW_S the address is refused (429) for AUTH_FAILURE_WINDOW_S, the right token included, so
guessing from it stops; other addresses are not affected. Both structures are bounded in memory.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import math
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from syncd.core.text import printable

SESSION_LABEL = b"syncd status page session v2"
"""What the session cookie's HMAC signs (keyed by the admin token), before the issue time and the nonce."""

SESSION_MAX_AGE_S = 12 * 3600
"""How long a session lasts (seconds): the browser keeps the cookie that long, and the server refuses a
value signed longer ago (a copied cookie does not open the page for ever)."""

REVOKED_CAPACITY = 10_000
"""Signed-out sessions remembered at most; past it the oldest is forgotten and every session signed no later
than it is refused too, so a signed-out value never becomes valid again."""

AUTH_FAILURE_LIMIT = 10
"""Wrong tokens one client address may send within AUTH_FAILURE_WINDOW_S before it is refused (429)."""

AUTH_FAILURE_WINDOW_S = 60.0
"""The window in which wrong tokens are counted, and how long an address is refused after the limit
(seconds)."""

LIMITER_CAPACITY = 4096
"""Client addresses the limiter remembers at most; past it the least recently seen are forgotten."""

_NONCE_BYTES = 12


def session_value(token: str, issued_at: int, nonce: str | None = None) -> str:
    """The session cookie's value for an admin token, signed at `issued_at` (epoch seconds) with `nonce`
    (random when None): "<issued_at>.<nonce>.<HMAC-SHA256 hex>". Never the token itself."""
    nonce = secrets.token_urlsafe(_NONCE_BYTES) if nonce is None else nonce
    signed = SESSION_LABEL + b"|" + str(issued_at).encode() + b"|" + nonce.encode()
    return f"{issued_at}.{nonce}.{hmac.new(token.encode(), signed, hashlib.sha256).hexdigest()}"


def session_issued_at(token: str, presented: str, now: float) -> int | None:
    """Pure: when `presented` was signed, if it is a session value for `token` signed within
    SESSION_MAX_AGE_S before `now` (compared in constant time); else None."""
    issued, _, rest = presented.partition(".")
    nonce, dot, _ = rest.partition(".")
    if not dot or not issued.isdigit() or len(issued) > 12 or not 0 < len(nonce) <= 64:
        return None
    issued_at = int(issued)
    if not now - SESSION_MAX_AGE_S <= issued_at <= now + 60:  # a minute of clock skew
        return None
    if not hmac.compare_digest(presented.encode(), session_value(token, issued_at, nonce).encode()):
        return None
    return issued_at


def session_valid(token: str, presented: str, now: float) -> bool:
    """Pure: whether `presented` is a session value for `token` signed within SESSION_MAX_AGE_S before
    `now` (compared in constant time). Revocation is `Sessions.valid`'s business."""
    return session_issued_at(token, presented, now) is not None


class Sessions:
    """The sessions this process issued and signed out: issue, check, revoke.

    Revoked values are remembered until they expire (pruned on each revocation), at most REVOKED_CAPACITY;
    beyond that the oldest is dropped and `not_before` rises to its issue time, refusing every session
    signed no later than it. Only valid sessions can be revoked, so filling it takes that many sign-ins.
    Revocations live in memory, so the admin app starts with `not_before` at its start: sessions signed
    before a restart are refused (everyone signs in again), and a signed-out value never comes back.
    """

    def __init__(self, *, not_before: int = 0, capacity: int = REVOKED_CAPACITY) -> None:
        self._capacity = capacity
        self._revoked: set[str] = set()
        self._by_age: list[tuple[int, str]] = []  # a heap of (issued_at, value)
        self.not_before = not_before
        """Sessions signed at or before this epoch second are refused (0: none)."""

    def issue(self, token: str, now: float) -> str:
        """A new session value for `token`, signed at `now` (or just after `not_before`, when that is
        later: within the clock skew accepted)."""
        return session_value(token, max(int(now), self.not_before + 1))

    def valid(self, token: str, presented: str, now: float) -> bool:
        """Whether `presented` is a live session: signed with `token`, not expired, not signed out."""
        issued_at = session_issued_at(token, presented, now)
        return issued_at is not None and issued_at > self.not_before and presented not in self._revoked

    def revoke(self, token: str, presented: str, now: float) -> bool:
        """Sign `presented` out (when it is a live session); whether it was one."""
        if not self.valid(token, presented, now):
            return False
        issued_at = session_issued_at(token, presented, now)
        assert issued_at is not None  # valid() said so
        self._revoked.add(presented)
        heapq.heappush(self._by_age, (issued_at, presented))
        while self._by_age and (
            self._by_age[0][0] < now - SESSION_MAX_AGE_S or len(self._by_age) > self._capacity
        ):
            oldest, value = heapq.heappop(self._by_age)
            self._revoked.discard(value)
            if oldest >= now - SESSION_MAX_AGE_S:  # dropped for room, not expired: refuse its peers too
                self.not_before = max(self.not_before, oldest)
        return True

    def __len__(self) -> int:
        return len(self._revoked)


def describe_requester(how: str, client: str | None, forwarded_by: str | None = None) -> str:
    """Pure: who asked for a manual cycle, as the run records it: how they signed in ("bearer token",
    "status page session"), the client address, and the standby that forwarded the request, if one did.
    Printable and at most 200 characters: the forwarding replica's header is the caller's text."""
    text = f"{how} from {client or 'an unknown address'}"
    if forwarded_by:
        text += f" (forwarded by the standby {printable(forwarded_by)[:100]})"
    return text[:200]


def client_key(address: str | None) -> str:
    """Pure: the limiter's key for a client address: an IPv4 address itself, an IPv6 address's /64, any
    other string (a Unix socket, a test client) as it is; "" when unknown."""
    if not address:
        return ""
    try:
        parsed = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class FailureLimiter:
    """Wrong tokens per client key within a sliding window; a key that reaches the limit is refused for one
    window. Times are monotonic seconds. At most `capacity` keys (least recently failing forgotten first)."""

    def __init__(
        self,
        limit: int = AUTH_FAILURE_LIMIT,
        window_s: float = AUTH_FAILURE_WINDOW_S,
        capacity: int = LIMITER_CAPACITY,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._capacity = capacity
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, key: str, now: float) -> int | None:
        """Whole seconds until `key` may try again (at least 1), or None when it is not refused."""
        state = self._clients.get(key)
        if state is None or state.locked_until <= now:
            return None
        return max(1, math.ceil(state.locked_until - now))

    def failed(self, key: str, now: float) -> int:
        """Record a wrong token from `key`; the failures now counted in its window (the limit locks it)."""
        state = self._clients.pop(key, None) or _Failures()
        self._clients[key] = state  # most recent last
        while state.times and state.times[0] <= now - self.window_s:
            state.times.popleft()
        state.times.append(now)
        count = len(state.times)
        if count >= self.limit:
            state.locked_until = now + self.window_s
            state.times.clear()
        self._prune(now)
        return count

    def _prune(self, now: float) -> None:
        if len(self._clients) <= self._capacity:
            return
        # First the keys that no longer matter (not refused, no failure in the window), then the oldest.
        idle = [
            key
            for key, state in self._clients.items()
            if state.locked_until <= now and (not state.times or state.times[-1] <= now - self.window_s)
        ]
        for key in idle:
            del self._clients[key]
        while len(self._clients) > self._capacity:
            self._clients.popitem(last=False)

    def __len__(self) -> int:
        return len(self._clients)


__all__ = [
    "AUTH_FAILURE_LIMIT",
    "AUTH_FAILURE_WINDOW_S",
    "SESSION_LABEL",
    "SESSION_MAX_AGE_S",
    "FailureLimiter",
    "Sessions",
    "client_key",
    "session_issued_at",
    "session_valid",
    "session_value",
]
