"""A faithful emulator of Microsoft Entra login (what msal needs) and a Microsoft Graph v1.0 subset.

Tests and benchmarks drive the real msal (client credentials, secret or certificate) and the real msgraph-sdk
against `GraphEmulator.app`, in-process through `httpx.ASGITransport` or as a real HTTPS server
(`syncd.emulators.server.serve_https`). One app serves both hosts' paths: the login endpoints under
`/{tenant}/...` and Graph under `/v1.0/...`, with URLs built from the request's scheme and Host header so
they are right on whatever port the server got.

Emulated, as the real services behave (see docs/spec/graph-and-msal.md):
- Entra: OpenID discovery, the v2.0 token endpoint (client secret, or a client assertion signed RS256/x5t or
  PS256/x5t#S256 by a registered certificate), AADSTS errors, HS256 access tokens with roles and expiry.
- Graph: bearer checks (401/403 in Graph's OData error shape), group `members` and `transitiveMembers`
  (nested groups, cycles, OData casts as advanced queries, $select/$top/$count, absolute nextLinks with an
  opaque $skiptoken; users with limited information without a user permission), `users/{id}`, a user's
  direct memberships (`users/{id}/memberOf`, with casts, $select, $top and paging; groups with limited
  information without a group permission, hidden memberships only with Member.Read.Hidden), and delta
  queries for groups (`members@delta`) and users, with delta links that can be expired (410).
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
(Entra), `checks` (permissions and OData options), `reads`, `delta`, `teams` (number assignments) and
`control` (the /_emulator/ routes). Below them, without state: `wire` (requests, replies, error bodies,
links), `directory` (object types and projections), `credentials` (apps, roles, client credential checks)
and `number_records` (Teams number records and their $filter).
"""

from syncd.emulators.common import Faults, ScriptedFault
from syncd.emulators.graph.credentials import (
    DEFAULT_APP_ROLES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    GRAPH_ROLES,
    JWT_BEARER,
    TEAMS_NUMBER_ROLE,
)
from syncd.emulators.graph.directory import RAW_OMIT
from syncd.emulators.graph.emulator import GraphEmulator
from syncd.emulators.graph.wire import GRAPH_PREFIX, RecordedRequest

__all__ = [
    "DEFAULT_APP_ROLES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_TENANT_ID",
    "GRAPH_PREFIX",
    "GRAPH_ROLES",
    "JWT_BEARER",
    "RAW_OMIT",
    "TEAMS_NUMBER_ROLE",
    "Faults",
    "GraphEmulator",
    "RecordedRequest",
    "ScriptedFault",
]
