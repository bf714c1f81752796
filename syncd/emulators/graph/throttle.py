"""Graph's throttling of identity and access requests in the emulator: a token bucket of resource units per
app and tenant, filled at the tenant size's rate (S: 3,500, M: 5,000, L: 8,000 units per 10 seconds; under
50 users, 50 to 500, over 500), charged each request's documented cost (`GET groups/{id}/transitiveMembers`
5, `GET groups/{id}/members` 3, `GET users` 2, anything else 1; `$select` takes 1 off, `$expand` adds 1,
`$top` under 20 takes 1 off; never under 1). A request the bucket cannot pay for is answered 429 with
`Retry-After` (the seconds until it could be paid), `x-ms-throttle-scope` and `x-ms-throttle-information`;
answered requests carry `x-ms-resource-unit`, and `x-ms-throttle-limit-percentage` once more than 80% of
the bucket is used. Teams number assignments are another service with other limits, not emulated here.
"""

from __future__ import annotations

import math

from syncd.emulators.common import retry_after_value
from syncd.emulators.graph.credentials import _Token
from syncd.emulators.graph.state import _Bucket, _DirectoryState
from syncd.emulators.graph.wire import _graph_error, _Incoming, _Rejected

WINDOW_S = 10.0
"""The period the documented budgets are given for."""
SMALL_TENANT_UNITS, MEDIUM_TENANT_UNITS, LARGE_TENANT_UNITS = 3_500, 5_000, 8_000
"""Resource units per app and tenant per 10 s, by tenant size."""

_COSTS = {("groups", "members"): 3, ("groups", "transitivemembers"): 5}


def request_cost(incoming: _Incoming, lowered: list[str]) -> int:
    """Pure: the resource units a GET of these (lower-cased) Graph path segments costs, or 0 for a path
    outside the identity and access service (Teams numbers)."""
    if not lowered or lowered[0] == "admin":
        return 0
    if len(lowered) == 1 and lowered[0] == "users":
        cost = 2
    elif len(lowered) >= 3:
        cost = _COSTS.get((lowered[0], lowered[2]), 1)
    else:
        cost = 1
    if incoming.option("select") is not None:
        cost -= 1
    if incoming.option("expand") is not None:
        cost += 1
    top = incoming.option("top")
    if top is not None and top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


def tenant_budget(users: int) -> int:
    """Pure: the resource units per 10 s of a tenant with this many users."""
    if users < 50:
        return SMALL_TENANT_UNITS
    return MEDIUM_TENANT_UNITS if users <= 500 else LARGE_TENANT_UNITS


class _Throttle(_DirectoryState):
    """The resource unit budget of each app (one tenant here), checked before a Graph request is answered."""

    # Set by `GraphEmulator.__init__`, declared here so that this mixin type-checks on its own.
    tenant_id: str
    throttle: bool
    resource_units_per_10s: int | None

    def budget(self) -> int:
        """The resource units per 10 s each app may spend now: `resource_units_per_10s`, or the tenant
        size's budget when that is None."""
        if self.resource_units_per_10s is not None:
            return self.resource_units_per_10s
        return tenant_budget(self._user_count)

    def _charge(self, incoming: _Incoming, token: _Token, cost: int) -> tuple[tuple[str, str], ...]:
        """Take `cost` units from the app's bucket: the headers to answer with, or _Rejected with a 429."""
        if not self.throttle or cost <= 0:
            return ()
        limit = max(1, self.budget())
        rate = limit / WINDOW_S
        now = self.clock()
        bucket = self._buckets.get(token.client_id)
        if bucket is None:
            bucket = self._buckets[token.client_id] = _Bucket(float(limit), now)
        bucket.units = min(float(limit), bucket.units + max(0.0, now - bucket.at) * rate)
        bucket.at = now
        if bucket.units < cost:
            wait_s = math.ceil((cost - bucket.units) / rate)
            used = min(1.8, (limit - bucket.units + cost) / limit)
            seconds = retry_after_value(wait_s)
            headers = (
                ("retry-after", seconds),
                ("x-ms-throttle-scope", f"Tenant_Application/ReadWrite/{token.client_id}/{self.tenant_id}"),
                ("x-ms-throttle-information", "ResourceUnitLimitExceeded"),
                ("x-ms-throttle-limit-percentage", f"{used:.1f}"),
            )
            message = f"Your request is throttled temporarily. Please try after {seconds} seconds."
            raise _Rejected(_graph_error(incoming, 429, "TooManyRequests", message, headers))
        bucket.units -= cost
        headers_ok: tuple[tuple[str, str], ...] = (("x-ms-resource-unit", str(cost)),)
        used = (limit - bucket.units) / limit
        if used > 0.8:
            headers_ok += (("x-ms-throttle-limit-percentage", f"{used:.1f}"),)
        return headers_ok
