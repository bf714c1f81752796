"""A faithful emulator of Microsoft Entra login (what msal needs) and a Microsoft Graph v1.0 subset.

Tests and benchmarks drive the real msal (client credentials, secret or certificate) and the real msgraph-sdk
against the emulator's two apps, `GraphEmulator.login_app` (the login endpoints under `/{tenant}/...`) and
`GraphEmulator.graph_app` (Graph under `/v1.0/...`), in-process through `httpx.ASGITransport` or as two real
HTTPS servers with different names and ports (`serve_graph_https`), as `login.microsoftonline.com` and
`graph.microsoft.com` are two hosts. URLs are built from the request's scheme and Host header so they are
right on whatever port a server got; access tokens are issued for the resource their scope names and Graph
takes only those for itself (`GraphEmulator.graph_resource`).

Emulated, as the real services behave (see docs/spec/graph-and-msal.md):
- Entra: OpenID discovery, the v2.0 token endpoint (client secret, or a client assertion signed RS256/x5t or
  PS256/x5t#S256 by a registered certificate), AADSTS errors, HS256 access tokens with roles and expiry.
- Graph: bearer checks (401/403 in Graph's OData error shape), group `members` and `transitiveMembers`
  (nested groups, cycles, OData casts as advanced queries, $select/$top/$count, absolute nextLinks with an
  opaque $skiptoken; users with limited information without a user permission), `users/{id}`, a user's
  direct memberships (`users/{id}/memberOf`, with casts, $select, $top and paging; groups with limited
  information without a group permission, hidden memberships only with Member.Read.Hidden), and delta
  queries for groups (`members@delta`) and users, with delta links that can be expired (410), or age past
  `delta_link_lifetime_s` (7 days by default, as Graph); a groups delta `$filter` names at most 50 groups.
- Throttling (`throttle`): each app's resource unit budget per 10 s by tenant size, the documented cost of
  each request, 429 with Retry-After when it is spent.
- Advanced queries (`ConsistencyLevel: eventual`) that lag writes by `eventual_lag_s` (off by default).
- Teams telephone number assignments: `admin/teams/telephoneNumberManagement/numberAssignments` (and
  `.../numberAssignments/{id}`), needing TeamsTelephoneNumber.Read.All or .ReadWrite.All, ascending by
  telephoneNumber, with $filter (`<property> eq '<value>'` clauses joined by `and`, a parenthesised `or`
  group on one property, `<collection>/any(c:c eq '<value>')`; not on id or city), $top (default 500, at
  most 1,000) and $skip, and absolute nextLinks carrying the next $skip.

On top: random and scripted faults (`syncd.emulators.common`), a request log, and a control API under
`/_emulator/` (no auth, never logged) for another process, which also grants and withdraws the app's
permissions (`set_app_roles`) and deletes groups. Fixture methods (`add_user`, `add_member`,
`assign_number`, ...) change the directory directly; `syncd.emulators.tenant.build_tenant` builds realistic
tenants with them.

`GraphEmulator` (in `emulator`) is put together from mixins, one per module, over the shared state:
`state` (objects, memberships, versions, caches, link tokens), `fixtures` (the public methods), `login`
(Entra), `checks` (permissions and OData options), `reads`, `lag` (what advanced queries see), `delta`,
`throttle` (the resource unit budget), `teams` (number assignments) and `control` (the /_emulator/ routes);
`serving` runs it on two hosts. Below them, without state: `wire` (requests, replies, error bodies,
links), `directory` (object types and projections), `credentials` (apps, roles, client credential checks)
and `number_records` (Teams number records and their $filter).
"""

from syncd.emulators.common import Faults, ScriptedFault
from syncd.emulators.graph.credentials import (
    ARM_RESOURCE,
    DEFAULT_APP_ROLES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    GRAPH_ROLES,
    JWT_BEARER,
    TEAMS_NUMBER_ROLE,
)
from syncd.emulators.graph.delta import DELTA_LINK_LIFETIME_S, MAX_FILTER_IDS
from syncd.emulators.graph.directory import RAW_OMIT
from syncd.emulators.graph.emulator import GraphEmulator
from syncd.emulators.graph.serving import GRAPH_HOST, LOGIN_HOST, GraphServers, serve_graph_https
from syncd.emulators.graph.throttle import (
    LARGE_TENANT_UNITS,
    MEDIUM_TENANT_UNITS,
    SMALL_TENANT_UNITS,
    tenant_budget,
)
from syncd.emulators.graph.wire import GRAPH_PREFIX, RecordedRequest

__all__ = [
    "ARM_RESOURCE",
    "DEFAULT_APP_ROLES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_TENANT_ID",
    "DELTA_LINK_LIFETIME_S",
    "GRAPH_HOST",
    "GRAPH_PREFIX",
    "GRAPH_ROLES",
    "JWT_BEARER",
    "LARGE_TENANT_UNITS",
    "LOGIN_HOST",
    "MAX_FILTER_IDS",
    "MEDIUM_TENANT_UNITS",
    "RAW_OMIT",
    "SMALL_TENANT_UNITS",
    "TEAMS_NUMBER_ROLE",
    "Faults",
    "GraphEmulator",
    "GraphServers",
    "RecordedRequest",
    "ScriptedFault",
    "serve_graph_https",
    "tenant_budget",
]
