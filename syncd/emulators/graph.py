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
  opaque $skiptoken), `users/{id}`, a user's direct memberships (`users/{id}/memberOf`, with casts, $select,
  $top and paging; groups with limited information without a group permission, hidden memberships only with
  Member.Read.Hidden), and delta queries for groups (`members@delta`) and users, with delta links that can
  be expired (410).
- Teams telephone number assignments: `admin/teams/telephoneNumberManagement/numberAssignments` (and
  `.../numberAssignments/{id}`), needing TeamsTelephoneNumber.Read.All or .ReadWrite.All, ascending by
  telephoneNumber, with $filter (`<property> eq '<value>'` clauses joined by `and`, a parenthesised `or`
  group on one property, `<collection>/any(c:c eq '<value>')`; not on id or city), $top (default 500, at
  most 1,000) and $skip, and absolute nextLinks carrying the next $skip.

On top: random and scripted faults (`syncd.emulators.common`), a request log, and a control API under
`/_emulator/` (no auth, never logged) for another process. Fixture methods (`add_user`, `add_member`,
`assign_number`, ...) change the directory directly; `syncd.emulators.tenant.build_tenant` builds realistic
tenants with them.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote

import anyio
import jwt
import pydantic
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from typing_extensions import TypedDict  # pydantic validates only this TypedDict before Python 3.12

from syncd.emulators.common import (
    ControlApi,
    ControlError,
    FaultInjector,
    Faults,
    RecordedFault,
    ScriptedFault,
    b64url,
    b64url_decode,
    control_body,
    control_error,
    encode_json,
    field_names,
    json_headers,
    read_body,
    retry_after_value,
    send_json,
    send_truncated_and_drop,
    sign_hs256,
    validate_control,
    verify_hs256,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "DEFAULT_APP_ROLES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_TENANT_ID",
    "GRAPH_ROLES",
    "TEAMS_NUMBER_ROLE",
    "Faults",
    "GraphEmulator",
    "RecordedRequest",
    "ScriptedFault",
]

DEFAULT_TENANT_ID = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
DEFAULT_CLIENT_ID = "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"  # noqa: S105 - the emulator's test credential, not a secret
GRAPH_ROLES = ("GroupMember.Read.All", "User.Read.All")
"""The application permissions syncd needs by default: group members and users."""
TEAMS_NUMBER_ROLE = "TeamsTelephoneNumber.Read.All"
"""The least privileged application permission that lists Teams telephone number assignments."""
DEFAULT_APP_ROLES = (*GRAPH_ROLES, TEAMS_NUMBER_ROLE)
"""The roles the default app registration (and `register_app` unless told otherwise) is granted."""

GRAPH_PREFIX = "/v1.0"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# Graph's documented application permissions per endpoint (least to most privileged).
_MEMBER_ROLES = frozenset(
    {
        "GroupMember.Read.All",
        "Group.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
_USER_ROLES = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
_HIDDEN_MEMBERS_ROLE = "Member.Read.Hidden"
# A user's memberOf is a relationship of the user: readable with a user or a membership permission (Graph
# documents Directory.Read.All as least privileged for apps; GroupMember.Read.All and User.Read.All work).
# Without a group permission the groups come back with limited information (id and @odata.type only).
_MEMBER_OF_ROLES = _MEMBER_ROLES | _USER_ROLES
# memberOf cast segments, lower-cased -> type name. Directory roles and administrative units are valid casts
# that this directory never has (always empty).
_MEMBER_OF_CASTS = {
    f"{prefix}.{name}".lower(): name
    for prefix in ("microsoft.graph", "graph")
    for name in ("group", "directoryRole", "administrativeUnit")
}
_NUMBER_ROLES = frozenset({TEAMS_NUMBER_ROLE, "TeamsTelephoneNumber.ReadWrite.All"})

_GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
_ENTRA_JSON = "application/json; charset=utf-8"
_TOKEN_MESSAGE = "Access token has expired or is not yet valid."  # noqa: S105 - an error message
_PRIVILEGES_MESSAGE = "Insufficient privileges to complete the operation."
_MAX_TOP = 999
_OPTIONS_REFUSED = frozenset({"filter", "search", "orderby", "expand", "skip", "format", "apply"})
_DEFAULT_TOP = 100
_MAX_ROUNDS = 8
_PAGE_CACHE_BYTES = 512 * 1024 * 1024
"""Delta rounds (their change lists) kept for paging; an evicted round is recomputed from its token."""
_EXTENSION_KEYS = tuple(f"extensionAttribute{i}" for i in range(1, 16))
_T = TypeVar("_T")

# --- Teams telephone number assignments (microsoft.graph.teamsAdministration.numberAssignment) -----------

_NUMBER_SET = "admin/teams/telephoneNumberManagement/numberAssignments"
_NUMBER_PATH = ("admin", "teams", "telephonenumbermanagement", "numberassignments")
_NUMBER_TYPE_NAME = "microsoft.graph.teamsAdministration.numberAssignment"
_NUMBER_DEFAULT_TOP = 500
_NUMBER_MAX_TOP = 1000
# The enum members of Graph v1.0's metadata (msgraph-sdk's teams_administration models say the same).
_NUMBER_TYPES = ("internalError", "directRouting", "callingPlan", "operatorConnect", "unknownFutureValue")
_ACTIVATION_STATES = (
    "activated",
    "assignmentPending",
    "assignmentFailed",
    "updatePending",
    "updateFailed",
    "unknownFutureValue",
)
_ASSIGNMENT_CATEGORIES = ("primary", "private", "alternate", "unknownFutureValue")
_ASSIGNMENT_STATUSES = (
    "unassigned",
    "internalError",
    "userAssigned",
    "conferenceAssigned",
    "voiceApplicationAssigned",
    "thirdPartyAppAssigned",
    "policyAssigned",
    "unknownFutureValue",
)
_TARGETED_STATUSES = frozenset(
    {
        "userAssigned",
        "conferenceAssigned",
        "voiceApplicationAssigned",
        "thirdPartyAppAssigned",
        "policyAssigned",
    }
)
_NUMBER_SOURCES = ("online", "onPremises", "unknownFutureValue")
# Fixed operator IDs: Microsoft for Calling Plans, one carrier for Operator Connect.
_OPERATOR_IDS = {
    "callingPlan": "0019adbc-b82a-47b4-a799-4e993a9982f1",
    "operatorConnect": "7a205197-8e59-487d-b9fa-3fc1b108f1e5",
}
_CAPABILITIES = {
    "conferenceAssigned": ["conferenceAssignment"],
    "voiceApplicationAssigned": ["voiceApplicationAssignment"],
}
_NUMBER_PROPS = (
    "id",
    "telephoneNumber",
    "operatorId",
    "numberType",
    "activationState",
    "capabilities",
    "locationId",
    "civicAddressId",
    "networkSiteId",
    "assignmentTargetId",
    "assignmentCategory",
    "portInStatus",
    "assignmentStatus",
    "isoCountryCode",
    "city",
    "numberSource",
    "supportedCustomerActions",
    "reverseNumberLookupOptions",
)
_NUMBER_COLLECTIONS = frozenset({"capabilities", "supportedCustomerActions", "reverseNumberLookupOptions"})
_NUMBER_UNFILTERABLE = frozenset({"id", "city"})
_NUMBER_PROPS_BY_LOWER = {name.lower(): name for name in _NUMBER_PROPS}
# Undocumented for this endpoint: refused rather than silently ignored.
_NUMBER_OPTIONS_REFUSED = frozenset(
    {"select", "orderby", "search", "expand", "count", "format", "apply", "skiptoken", "deltatoken"}
)
_NUMBER_FIELDS = frozenset(
    {
        "telephone_number",
        "target_id",
        "category",
        "status",
        "number_type",
        "activation_state",
        "iso_country_code",
        "number_source",
        "id",
    }
)


# --- the directory's object types ----------------------------------------------------------------------


class _Kind:
    """One directory object type: its properties (with the value Graph shows when unset) and default set."""

    def __init__(
        self, name: str, entity_set: str, defaults: dict[str, object], default_select: Sequence[str]
    ):
        self.name = name
        self.entity_set = entity_set
        self.odata_type = f"#microsoft.graph.{name}"
        self.defaults = defaults
        self.default_select = tuple(default_select)
        self.by_lower = {prop.lower(): prop for prop in defaults}
        self.by_lower["id"] = "id"


_EMPTY_EXTENSIONS: dict[str, object] = dict.fromkeys(_EXTENSION_KEYS)

_USER = _Kind(
    "user",
    "users",
    {
        "displayName": None,
        "userPrincipalName": None,
        "accountEnabled": None,
        "businessPhones": [],
        "mobilePhone": None,
        "mail": None,
        "onPremisesImmutableId": None,
        "onPremisesExtensionAttributes": _EMPTY_EXTENSIONS,
        "onPremisesSyncEnabled": None,
        "userType": None,
        "givenName": None,
        "surname": None,
        "jobTitle": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "department": None,
        "companyName": None,
        "employeeId": None,
        "mailNickname": None,
        "usageLocation": None,
        "createdDateTime": None,
        "deletedDateTime": None,
        "otherMails": [],
        "proxyAddresses": [],
        "imAddresses": [],
        "onPremisesSamAccountName": None,
        "onPremisesUserPrincipalName": None,
        "onPremisesDomainName": None,
        "onPremisesDistinguishedName": None,
        "onPremisesSecurityIdentifier": None,
        "onPremisesLastSyncDateTime": None,
        "city": None,
        "country": None,
        "state": None,
        "streetAddress": None,
        "postalCode": None,
        "faxNumber": None,
    },
    # Graph v1.0's default user properties.
    (
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    ),
)
_GROUP = _Kind(
    "group",
    "groups",
    {
        "displayName": None,
        "description": None,
        "mail": None,
        "mailEnabled": False,
        "mailNickname": None,
        "securityEnabled": True,
        "groupTypes": [],
        "visibility": None,
        "membershipRule": None,
        "classification": None,
        "createdDateTime": None,
        "deletedDateTime": None,
        "onPremisesSyncEnabled": None,
        "proxyAddresses": [],
        "securityIdentifier": None,
    },
    (
        "displayName",
        "description",
        "mail",
        "mailEnabled",
        "mailNickname",
        "securityEnabled",
        "groupTypes",
        "visibility",
        "createdDateTime",
        "deletedDateTime",
        "onPremisesSyncEnabled",
    ),
)
_DEVICE = _Kind(
    "device",
    "devices",
    {
        "displayName": None,
        "deviceId": None,
        "accountEnabled": True,
        "operatingSystem": None,
        "operatingSystemVersion": None,
        "trustType": None,
        "isCompliant": None,
        "isManaged": None,
        "createdDateTime": None,
        "deletedDateTime": None,
    },
    ("displayName", "deviceId", "accountEnabled", "operatingSystem", "operatingSystemVersion", "trustType"),
)
_CONTACT = _Kind(
    "orgContact",
    "contacts",
    {
        "displayName": None,
        "mail": None,
        "givenName": None,
        "surname": None,
        "companyName": None,
        "jobTitle": None,
        "department": None,
        "mailNickname": None,
        "phones": [],
        "proxyAddresses": [],
        "onPremisesSyncEnabled": None,
    },
    ("displayName", "mail", "givenName", "surname", "companyName", "jobTitle", "mailNickname", "phones"),
)
_SERVICE_PRINCIPAL = _Kind(
    "servicePrincipal",
    "servicePrincipals",
    {
        "displayName": None,
        "appId": None,
        "appDisplayName": None,
        "accountEnabled": True,
        "servicePrincipalType": "Application",
        "servicePrincipalNames": [],
        "deletedDateTime": None,
    },
    ("displayName", "appId", "appDisplayName", "accountEnabled", "servicePrincipalType"),
)
_KINDS = (_USER, _GROUP, _DEVICE, _CONTACT, _SERVICE_PRINCIPAL)
# OData cast segments, lower-cased: the SDK writes "graph.user", the documentation "microsoft.graph.user".
_CASTS: dict[str, _Kind] = {}
for _kind in _KINDS:
    _CASTS[f"microsoft.graph.{_kind.name}".lower()] = _kind
    _CASTS[f"graph.{_kind.name}".lower()] = _kind
# A directoryObject collection (a member list without a cast) accepts the properties of every member type.
_DIRECTORY_OBJECT_PROPS: dict[str, str] = {}
for _kind in _KINDS:
    _DIRECTORY_OBJECT_PROPS.update(_kind.by_lower)

# add_user/update_user keyword -> Graph property.
_USER_KEYWORDS = {
    "upn": "userPrincipalName",
    "account_enabled": "accountEnabled",
    "business_phones": "businessPhones",
    "mobile_phone": "mobilePhone",
    "on_premises_immutable_id": "onPremisesImmutableId",
    "extension_attributes": "onPremisesExtensionAttributes",
    "display_name": "displayName",
}

_USER_FIELDS = frozenset({"id", "raw", *_USER_KEYWORDS})


class _Omitted:
    """The type of RAW_OMIT."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RAW_OMIT"


RAW_OMIT = _Omitted()
"""A `raw` value that removes the property from the served object altogether (e.g. a user without "id")."""


class _Object:
    """A live directory object. `props` holds only the properties that were set (canonical names)."""

    __slots__ = ("changed", "created", "id", "kind", "props", "raw")

    def __init__(self, object_id: str, kind: _Kind, props: dict[str, object], created: int) -> None:
        self.id = object_id
        self.kind = kind
        self.props = props
        self.raw: dict[str, object] | None = None
        self.created = created
        self.changed: dict[str, int] | None = None
        """Lower-cased property name -> version of its last change (for users delta)."""


@dataclass(frozen=True)
class _Tombstone:
    kind: _Kind
    created: int
    deleted: int


class _Projection:
    """How objects look under one $select (None: each type's default properties)."""

    def __init__(self, select: tuple[str, ...] | None, *, with_type: bool) -> None:
        self.select = select
        self.with_type = with_type
        self._fields: dict[str, list[tuple[str, object]]] = {}
        self._shown: dict[str, frozenset[str]] = {}

    def fields(self, kind: _Kind) -> list[tuple[str, object]]:
        fields = self._fields.get(kind.name)
        if fields is None:
            names = kind.default_select if self.select is None else self.select
            fields = [(name, kind.defaults[name]) for name in names if name in kind.defaults]
            self._fields[kind.name] = fields
            shown = {name.lower() for name, _ in fields} | {"id"}
            if self.with_type:
                shown.add("@odata.type")
            self._shown[kind.name] = frozenset(shown)
        return fields

    def project(self, obj: _Object) -> dict[str, object]:
        kind = obj.kind
        out: dict[str, object] = (
            {"@odata.type": kind.odata_type, "id": obj.id} if self.with_type else {"id": obj.id}
        )
        props = obj.props
        for name, default in self.fields(kind):
            out[name] = props.get(name, default)
        if obj.raw:
            shown = self._shown[kind.name]
            for key, value in obj.raw.items():
                lower = key.lower()
                if lower in kind.by_lower or lower == "@odata.type":
                    # An override of a real property is served only where that property is.
                    if lower in shown:
                        canonical = kind.by_lower.get(lower, "@odata.type")
                        if canonical != key:
                            out.pop(canonical, None)
                        if value is RAW_OMIT:
                            out.pop(key, None)
                        else:
                            out[key] = value
                elif value is not RAW_OMIT:
                    out[key] = value
        return out


# --- app registrations and tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Certificate:
    public_key: RSAPublicKey
    sha1: bytes
    sha256: bytes


@dataclass(frozen=True)
class _App:
    client_id: str
    secret: str | None
    certificate: _Certificate | None
    roles: frozenset[str]
    service_principal_id: str
    display_name: str


@dataclass
class _Token:
    client_id: str
    roles: frozenset[str]
    audience: str
    """Lower-cased origin the token was issued for."""
    expires_at: float
    revoked: bool = False


# --- requests, replies and the log ---------------------------------------------------------------------


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

    def option(self, name: str) -> str | None:
        """An OData system query option, with or without its "$" (Graph v1.0 accepts both)."""
        value = self.query.get(f"${name}")
        return value if value is not None else self.query.get(name)

    @property
    def is_graph(self) -> bool:
        return self.path == GRAPH_PREFIX or self.path.startswith(GRAPH_PREFIX + "/")


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = _GRAPH_JSON


def _incoming(scope: Scope, body: bytes) -> _Incoming:
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


_stamp: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """Now as Graph's createdDateTime, formatted once per second (bulk fixtures create many objects)."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp[1]


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


# --- control API bodies --------------------------------------------------------------------------------


class _UserFields(TypedDict, total=False):
    """Body of POST /_emulator/users: the keyword arguments of `GraphEmulator.add_user`."""

    id: str | None
    upn: str
    account_enabled: bool
    business_phones: list[str] | None
    mobile_phone: str | None
    on_premises_immutable_id: str | None
    extension_attributes: dict[str, str] | None
    display_name: str | None
    raw: dict[str, Any] | None


class _ObjectFields(TypedDict, total=False):
    """Body of POST /_emulator/groups (and devices, contacts, service_principals)."""

    id: str | None
    display_name: str
    mail: str | None


class _MemberFields(TypedDict, total=False):
    group_id: str
    member_id: str
    member_ids: list[str]


class _AppFields(TypedDict, total=False):
    client_id: str
    secret: str | None
    certificate_pem: str | None
    roles: list[str]


class _GroupRef(TypedDict):
    group_id: str


class _PageCap(TypedDict):
    page_cap: int


class _NumberFields(TypedDict, total=False):
    """Body of POST /_emulator/number_assignments: `GraphEmulator.assign_number`'s arguments."""

    telephone_number: str
    target_id: str | None
    category: str | None
    status: str
    number_type: str
    activation_state: str
    iso_country_code: str | None
    number_source: str
    id: str | None


class _NumberRef(TypedDict):
    telephone_number: str


_USER_ADAPTER = pydantic.TypeAdapter(_UserFields)
_USERS_ADAPTER = pydantic.TypeAdapter(list[_UserFields])
_OBJECT_ADAPTER = pydantic.TypeAdapter(_ObjectFields)
_MEMBER_ADAPTER = pydantic.TypeAdapter(_MemberFields)
_APP_ADAPTER = pydantic.TypeAdapter(_AppFields)
_GROUP_REF_ADAPTER = pydantic.TypeAdapter(_GroupRef)
_PAGE_CAP_ADAPTER = pydantic.TypeAdapter(_PageCap)
_NUMBER_ADAPTER = pydantic.TypeAdapter(_NumberFields)
_NUMBER_REF_ADAPTER = pydantic.TypeAdapter(_NumberRef)


class _Rejected(Exception):
    """A Graph request that fails validation; carries the reply."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


# --- delta rounds --------------------------------------------------------------------------------------

# A change list entry. Users: an object id (projected when its page is served) or a removal marker.
# Groups: (group id, member changes or None when members are not selected, whether to show properties);
# member changes are (member id, @odata.type, removed).
_MemberChange = tuple[str, str, bool]
_GroupItem = tuple[str, list[_MemberChange] | None, bool]


@dataclass
class _Round:
    """One delta round's change list, computed at its first page and paged from here."""

    kind: str
    """"groups" or "users"."""
    since: int | None
    """The version of the delta link it answers (None for an initial round)."""
    target: int
    """The version its final delta link carries: everything up to it is in the list."""
    select: tuple[str, ...] | None
    filter: tuple[str, ...] | None
    items: list[Any]
    weights: list[int]


class _ServiceApp:
    """The emulated services as a raw ASGI app (a class, so Starlette's Route passes scopes straight in)."""

    def __init__(self, emulator: GraphEmulator) -> None:
        self._emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._emulator._serve(scope, receive, send)


class GraphEmulator(ControlApi):
    """Entra login and the Graph directory of one tenant, with fault injection and a request log.

    Thread-safe: under `serve_https` the app runs in the server thread while tests call these methods from
    the main thread. One lock guards all state; it is held only in short synchronous sections, never across
    an await. Fixture methods raise ValueError for what the directory would refuse (a taken ID or UPN, an
    unknown group or member).
    """

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        token_lifetime_s: float = 3600.0,
        page_cap: int = 999,
        seed: int = 0,
    ) -> None:
        """Set up an empty directory with the default app registered (`register_app()`'s defaults).

        `seed` makes random faults and generated object IDs reproducible.
        """
        self.tenant_id = tenant_id
        self.token_lifetime_s = token_lifetime_s
        """Lifetime of access tokens issued from now on (expires_in = max(1, int(lifetime)))."""
        self.page_cap = page_cap
        """The most objects one page returns, whatever $top says."""
        self.faults = Faults()
        self._seed = seed
        self._initial_token_lifetime_s = token_lifetime_s
        self._initial_page_cap = page_cap
        # HS256 keys, random per emulator: no other emulator's (or a forged) token or skip token verifies.
        self._key = secrets.token_bytes(32)
        self._link_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._epoch = 0
        """Delta link generation: bumped by expire_delta_links() and reset(), never restarted."""
        self._clear_state()
        self.app: ASGIApp = Starlette(
            routes=[
                Mount("/_emulator", routes=self._control_routes()),
                Route("/{path:path}", endpoint=_ServiceApp(self)),
            ]
        )

    # --- public controls -------------------------------------------------------------------------------

    def inject(self, fault: ScriptedFault) -> None:
        """Queue a one-shot fault; the first queued fault matching a request hits it.

        `path_contains` is looked for in the path and the decoded query string ("skiptoken" hits the pages
        after the first). "drop_after" on a GET sends the real answer's headers and half its body.
        """
        with self._lock:
            self._injector.inject(fault)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, in order of arrival."""
        with self._lock:
            return [entry.freeze() for entry in self._log]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def register_app(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        *,
        secret: str | None = DEFAULT_CLIENT_SECRET,
        certificate_pem: bytes | None = None,
        roles: Iterable[str] = DEFAULT_APP_ROLES,
    ) -> None:
        """Register (or replace) an app: its client secret and/or certificate, and its granted roles.

        `roles` defaults to `DEFAULT_APP_ROLES`; `GRAPH_ROLES` makes an app that may not read Teams numbers.

        `certificate_pem` is the PUBLIC certificate whose private key signs client assertions. Entra takes
        RSA certificates only (msal signs RS256/PS256), so an EC certificate raises ValueError.
        """
        certificate = None if certificate_pem is None else _load_certificate(certificate_pem)
        with self._lock:
            existing = self._apps.get(client_id.lower())
            self._apps[client_id.lower()] = _App(
                client_id=client_id,
                secret=secret,
                certificate=certificate,
                roles=frozenset(roles),
                service_principal_id=existing.service_principal_id if existing else self._new_id(),
                display_name=existing.display_name if existing else f"syncd-app-{client_id[:8]}",
            )

    def revoke_tokens(self) -> None:
        """Every access token issued so far answers 401 from now on (tokens issued later are fine)."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def add_user(
        self,
        *,
        id: str | None = None,
        upn: str,
        account_enabled: bool = True,
        business_phones: list[str] | None = None,
        mobile_phone: str | None = None,
        on_premises_immutable_id: str | None = None,
        extension_attributes: dict[str, str] | None = None,
        display_name: str | None = None,
        raw: dict[str, object] | None = None,
    ) -> str:
        """Create a user; return its object ID.

        `extension_attributes`: keys "extensionAttribute1".."extensionAttribute15"
        (onPremisesExtensionAttributes; unset ones read null). `raw`: extra or overriding JSON properties
        served verbatim (bad-data tests: wrong types and the like).
        """
        with self._lock:
            return self._insert_user(
                {
                    "id": id,
                    "upn": upn,
                    "account_enabled": account_enabled,
                    "business_phones": business_phones,
                    "mobile_phone": mobile_phone,
                    "on_premises_immutable_id": on_premises_immutable_id,
                    "extension_attributes": extension_attributes,
                    "display_name": display_name,
                    "raw": raw,
                }
            )

    def add_users(self, users: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create many users at once (each mapping holds `add_user`'s keyword arguments); return their IDs.

        For big fixtures: one lock acquisition for all of them. Nothing is created if one is refused.
        """
        with self._lock:
            created: list[str] = []
            try:
                for fields in users:
                    created.append(self._insert_user(fields))
            except BaseException:
                for object_id in created:
                    self._forget_user(object_id)
                raise
            return created

    def add_raw_user(self, props: Mapping[str, object], *, id: str | None = None) -> str:
        """Create a user served as `props` say, whatever their shape; return its internal object ID.

        For bad-data tests: nothing is validated but that `props` is a JSON object (string keys, values
        JSON can encode). Each key overrides the property Graph would serve (wrong types, huge strings, odd
        unicode, nested junk, "@odata.type" of another kind, an "id" other than the internal one); a value
        RAW_OMIT removes the property ("id" included). A Graph property is served only where `$select` (or
        the default selection) shows it; keys Graph does not know are always served. Properties not in
        `props` read as Graph's unset value (null or []). The user has no UPN for `update_user`-style
        lookups; add it to groups with `add_member` by the returned ID.
        """
        if not isinstance(props, Mapping) or not all(isinstance(key, str) for key in props):
            raise ValueError("props must be a mapping with string keys")
        raw = dict(props)
        try:
            # Strict: NaN, infinities and lone surrogates would make the served page invalid JSON.
            json.dumps(
                {k: v for k, v in raw.items() if v is not RAW_OMIT}, allow_nan=False, ensure_ascii=False
            ).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"props must encode as JSON: {exc}") from exc
        with self._lock:
            obj = self._insert(_USER, id, {})
            obj.raw = raw
            return obj.id

    def update_user(self, id: str, **changes: object) -> None:
        """Change a user's properties; keyword names as for `add_user` (a new `raw` replaces the old one)."""
        with self._lock:
            obj = self._objects.get(id)
            if obj is None or obj.kind is not _USER:
                raise ValueError(f"no user {id!r}")
            # Everything is checked before anything changes: a refused update leaves the user as it was.
            props = dict(obj.props)
            raw = obj.raw or {}
            changed: set[str] = set()
            for keyword, value in changes.items():
                if keyword == "raw":
                    new_raw = _raw_dict(value)
                    changed.update(
                        key.lower() for key in raw.keys() | new_raw.keys() if raw.get(key) != new_raw.get(key)
                    )
                    raw = new_raw
                    continue
                prop = _USER_KEYWORDS.get(keyword)
                if prop is None:
                    raise ValueError(f"update_user() got an unknown property {keyword!r}")
                if keyword == "upn":
                    if not isinstance(value, str) or not value:
                        raise ValueError("a user needs a upn")
                    holder = self._by_upn.get(value.lower())
                    if holder is not None and holder != id:
                        raise ValueError(f"UPN {value!r} is taken")
                new_value = _user_value(keyword, value)
                if new_value is None:
                    props.pop(prop, None)
                else:
                    props[prop] = new_value
                if keyword == "on_premises_immutable_id":
                    self._set_sync_enabled(props)
            for prop in props.keys() | obj.props.keys():
                if props.get(prop) != obj.props.get(prop):
                    changed.add(prop.lower())
            old_upn, new_upn = obj.props.get("userPrincipalName"), props.get("userPrincipalName")
            if isinstance(old_upn, str):
                self._by_upn.pop(old_upn.lower(), None)
            if isinstance(new_upn, str):
                self._by_upn[new_upn.lower()] = id
            obj.props = props
            obj.raw = raw or None
            if changed:
                version = self._bump()
                obj.changed = obj.changed or {}
                for name in changed:
                    obj.changed[name] = version

    def delete_user(self, id: str) -> None:
        """Delete a user: it leaves every group (reported by group deltas) and shows as removed in deltas."""
        with self._lock:
            obj = self._objects.get(id)
            if obj is None or obj.kind is not _USER:
                raise ValueError(f"no user {id!r}")
            self._delete_object(obj)

    def add_group(self, *, id: str | None = None, display_name: str = "") -> str:
        """Create an (empty, security) group; return its object ID."""
        with self._lock:
            obj = self._insert(
                _GROUP, id, {"displayName": display_name, "mailNickname": _nickname(display_name)}
            )
            self._members[obj.id] = {}
            return obj.id

    def delete_group(self, id: str) -> None:
        """Delete a group: it leaves the groups it was in; group deltas report it removed."""
        with self._lock:
            obj = self._objects.get(id)
            if obj is None or obj.kind is not _GROUP:
                raise ValueError(f"no group {id!r}")
            self._delete_object(obj)

    def add_device(self, *, id: str | None = None, display_name: str = "") -> str:
        with self._lock:
            props: dict[str, object] = {"displayName": display_name, "deviceId": str(self._new_uuid())}
            return self._insert(_DEVICE, id, props).id

    def add_contact(self, *, id: str | None = None, display_name: str = "", mail: str | None = None) -> str:
        with self._lock:
            props: dict[str, object] = {"displayName": display_name}
            if mail is not None:
                props["mail"] = mail
            return self._insert(_CONTACT, id, props).id

    def add_service_principal(self, *, id: str | None = None, display_name: str = "") -> str:
        with self._lock:
            props: dict[str, object] = {
                "displayName": display_name,
                "appDisplayName": display_name,
                "appId": str(self._new_uuid()),
            }
            return self._insert(_SERVICE_PRINCIPAL, id, props).id

    def add_member(self, group_id: str, member_id: str) -> None:
        """Make any directory object (a group included) a direct member of a group; no-op if it is one."""
        with self._lock:
            self._add_members(group_id, (member_id,))

    def add_members(self, group_id: str, member_ids: Iterable[str]) -> None:
        """`add_member` for many members under one lock acquisition (for big fixtures)."""
        with self._lock:
            self._add_members(group_id, member_ids)

    def remove_member(self, group_id: str, member_id: str) -> None:
        with self._lock:
            members = self._group_members(group_id)
            if member_id not in members:
                raise ValueError(f"{member_id!r} is not a direct member of group {group_id!r}")
            del members[member_id]
            self._membership_changed(group_id, member_id, added=False)

    def deny_group(self, group_id: str) -> None:
        """Reads of this group's members answer 403 (a hidden membership) unless the app has
        Member.Read.Hidden."""
        with self._lock:
            self._group_members(group_id)
            self._denied.add(group_id)

    def expire_delta_links(self) -> None:
        """Every delta link (and delta nextLink) issued so far answers 410 from now on."""
        with self._lock:
            self._expire_deltas()

    def assign_number(
        self,
        telephone_number: str,
        target_id: str | None,
        *,
        category: str | None = "primary",
        status: str = "userAssigned",
        number_type: str = "operatorConnect",
        activation_state: str = "activated",
        iso_country_code: str | None = "US",
        number_source: str = "online",
        id: str | None = None,
    ) -> str:
        """Create or replace the Teams assignment record of a telephone number; return the record's ID.

        A number has at most one record, keyed by the number as Teams shows it: with a "+" prefix, added if
        missing (Direct Routing numbers may end in ";ext=123"). A replaced record keeps its ID unless `id` is
        given; new ones get a GUID from the emulator's seeded RNG. `target_id` is the user's (or resource
        account's) object ID and is not checked: Teams keeps stale assignments of deleted users. It must be
        None for status "unassigned" (whose category reads null, as Graph shows it) and set for the
        assigned statuses. Enum values are Graph's (ValueError otherwise).
        """
        fields: dict[str, object] = {
            "telephone_number": telephone_number,
            "target_id": target_id,
            "category": category,
            "status": status,
            "number_type": number_type,
            "activation_state": activation_state,
            "iso_country_code": iso_country_code,
            "number_source": number_source,
            "id": id,
        }
        return self.assign_numbers([fields])[0]

    def assign_numbers(self, assignments: Iterable[Mapping[str, Any]]) -> list[str]:
        """`assign_number` for many numbers (mappings of its argument names) under one lock acquisition;
        nothing changes if one is refused. Returns the IDs in the order given."""
        with self._lock:
            staged: dict[str, dict[str, object]] = {}
            staged_ids: dict[str, str] = {}
            result: list[str] = []
            for fields in assignments:
                record = self._number_record(fields, staged, staged_ids)
                number, record_id = str(record["telephoneNumber"]), str(record["id"])
                previous = staged.get(number)
                if previous is not None:
                    staged_ids.pop(str(previous["id"]), None)
                staged[number] = record
                staged_ids[record_id] = number
                result.append(record_id)
            for number, record in staged.items():
                previous = self._numbers.get(number)
                if previous is not None:
                    self._number_ids.pop(str(previous["id"]), None)
                self._numbers[number] = record
                self._number_ids[str(record["id"])] = number
            if staged:
                self._numbers_changed()
            return result

    def unassign_number(self, telephone_number: str) -> None:
        """Remove a number's assignment record (ValueError if it has none)."""
        with self._lock:
            number = _teams_number(telephone_number)
            record = self._numbers.pop(number, None)
            if record is None:
                raise ValueError(f"no number assignment for {number!r}")
            self._number_ids.pop(str(record["id"]), None)
            self._numbers_changed()

    def number_assignments(self) -> list[dict[str, object]]:
        """Copies of every number assignment record as the API renders them, ascending by telephoneNumber."""
        with self._lock:
            return [_copy_record(record) for record in self._sorted_numbers()]

    def reset(self) -> None:
        """Back to the state after construction, except that issued access tokens stay valid.

        Clears objects, memberships, Teams number assignments, apps (the default app is registered again),
        the request log (seq restarts at 1), faults, scripted faults, revocations and delta state (old delta
        links answer 410), and restores the token lifetime, page cap and RNG seed given to the constructor.
        """
        with self._lock:
            self._clear_state()
            for token in self._tokens.values():
                token.revoked = False
            self.faults = Faults()
            self.token_lifetime_s = self._initial_token_lifetime_s
            self.page_cap = self._initial_page_cap
            self._expire_deltas()

    # --- state ------------------------------------------------------------------------------------------

    def _clear_state(self) -> None:
        self._apps: dict[str, _App] = {}
        self._objects: dict[str, _Object] = {}
        self._by_upn: dict[str, str] = {}
        self._members: dict[str, dict[str, None]] = {}
        self._denied: set[str] = set()
        self._tombstones: dict[str, _Tombstone] = {}
        self._version = 0
        self._membership_log: list[tuple[int, str, str, bool]] = []
        self._delta_floor: int | None = None
        """Oldest version a live delta link or round may ask about; None: no membership log needed."""
        self._rounds: OrderedDict[str, _Round] = OrderedDict()
        self._closures: dict[tuple[str, bool, str | None], list[str]] = {}
        self._pages: dict[tuple[object, ...], bytes] = {}
        """Encoded `value` arrays of member pages until the directory changes: benchmarks read a
        100,000-user group again and again."""
        self._pages_size = 0
        self._projections: dict[tuple[tuple[str, ...] | None, bool], _Projection] = {}
        self._numbers: dict[str, dict[str, object]] = {}
        """Teams number assignment records as served, by telephoneNumber."""
        self._number_ids: dict[str, str] = {}
        """Record ID -> telephoneNumber."""
        self._numbers_sorted: list[dict[str, object]] | None = None
        self._numbers_filtered: dict[str, list[dict[str, object]]] = {}
        """$filter text -> the matching records in order (cleared on any change), so paging is not O(N^2)."""
        self._log: list[_Entry] = []
        self._seq = 0
        self._injector = FaultInjector(self._seed)
        # Seeded on purpose: reproducible IDs, not secrets.
        self._id_rng = random.Random(self._seed + 1)  # noqa: S311
        self._apps[DEFAULT_CLIENT_ID.lower()] = _App(
            client_id=DEFAULT_CLIENT_ID,
            secret=DEFAULT_CLIENT_SECRET,
            certificate=None,
            roles=frozenset(DEFAULT_APP_ROLES),
            service_principal_id=self._new_id(),
            display_name="syncd",
        )

    def _expire_deltas(self) -> None:
        self._epoch += 1
        self._rounds.clear()
        self._membership_log.clear()
        self._delta_floor = None

    def _bump(self) -> int:
        """A new directory version: every change comes through here, so cached pages go too."""
        self._version += 1
        if self._pages:
            self._pages.clear()
            self._pages_size = 0
        return self._version

    def _new_uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._id_rng.getrandbits(128), version=4)

    def _new_id(self) -> str:
        while True:
            object_id = str(self._new_uuid())
            if object_id not in self._objects:
                return object_id

    def _number_record(
        self,
        fields: Mapping[str, Any],
        staged: Mapping[str, dict[str, object]],
        staged_ids: Mapping[str, str],
    ) -> dict[str, object]:
        """A checked number assignment record, not stored yet; ValueError for what `assign_number` refuses."""
        unknown = fields.keys() - _NUMBER_FIELDS
        if unknown:
            raise ValueError(f"unknown number assignment fields: {', '.join(sorted(unknown))}")
        if "telephone_number" not in fields or "target_id" not in fields:
            raise ValueError(
                "a number assignment needs telephone_number and target_id (None when unassigned)"
            )
        number = _teams_number(fields["telephone_number"])
        target_id = fields["target_id"]
        if target_id is not None and (not isinstance(target_id, str) or not target_id):
            raise ValueError("target_id must be a non-empty string or None")
        status = _enum_value("status", fields.get("status", "userAssigned"), _ASSIGNMENT_STATUSES)
        category = fields.get("category", "primary")
        if category is not None:
            category = _enum_value("category", category, _ASSIGNMENT_CATEGORIES)
        number_type = _enum_value("number_type", fields.get("number_type", "operatorConnect"), _NUMBER_TYPES)
        activation = _enum_value(
            "activation_state", fields.get("activation_state", "activated"), _ACTIVATION_STATES
        )
        source = _enum_value("number_source", fields.get("number_source", "online"), _NUMBER_SOURCES)
        country = fields.get("iso_country_code", "US")
        if country is not None and not isinstance(country, str):
            raise ValueError("iso_country_code must be a string or None")
        if status == "unassigned":
            if target_id is not None:
                raise ValueError(f"{number}: an unassigned number has no target_id")
            category = None  # Graph shows no category for an unassigned number
        elif status in _TARGETED_STATUSES and target_id is None:
            raise ValueError(f"{number}: status {status!r} needs a target_id")
        given_id = fields.get("id")
        existing = staged.get(number) or self._numbers.get(number)
        if given_id is None:
            record_id = str(existing["id"]) if existing is not None else self._new_number_id(staged_ids)
        elif isinstance(given_id, str) and given_id:
            record_id = given_id
        else:
            raise ValueError("id must be a non-empty string or None")
        holder = staged_ids.get(record_id) or self._number_ids.get(record_id)
        if holder is not None and holder != number:
            raise ValueError(f"number assignment id {record_id!r} belongs to {holder!r}")
        capabilities = _CAPABILITIES.get(status, ["userAssignment"])
        if number_type == "directRouting":
            capabilities = ["conferenceAssignment", "voiceApplicationAssignment", "userAssignment"]
        values: dict[str, object] = {
            "id": record_id,
            "telephoneNumber": number,
            "operatorId": _OPERATOR_IDS.get(number_type),
            "numberType": number_type,
            "activationState": activation,
            "capabilities": list(capabilities),
            "locationId": None,
            "civicAddressId": None,
            "networkSiteId": None,
            "assignmentTargetId": target_id,
            "assignmentCategory": category,
            "portInStatus": None,
            "assignmentStatus": status,
            "isoCountryCode": country,
            "city": None,
            "numberSource": source,
            "supportedCustomerActions": (
                ["locationUpdate", "release"] if number_type == "callingPlan" else ["locationUpdate"]
            ),
            "reverseNumberLookupOptions": [],
        }
        return values

    def _new_number_id(self, staged_ids: Mapping[str, str]) -> str:
        while True:
            record_id = str(self._new_uuid())
            if record_id not in self._number_ids and record_id not in staged_ids:
                return record_id

    def _numbers_changed(self) -> None:
        self._numbers_sorted = None
        self._numbers_filtered.clear()

    def _sorted_numbers(self) -> list[dict[str, object]]:
        """The records ascending by telephoneNumber, as Get-CsPhoneNumberAssignment lists them (cached)."""
        if self._numbers_sorted is None:
            self._numbers_sorted = [self._numbers[number] for number in sorted(self._numbers)]
        return self._numbers_sorted

    def _insert(self, kind: _Kind, object_id: str | None, props: dict[str, object]) -> _Object:
        if object_id is None:
            object_id = self._new_id()
        elif object_id in self._objects:
            raise ValueError(f"an object with id {object_id!r} exists already")
        props.setdefault("createdDateTime", _timestamp())
        obj = _Object(object_id, kind, props, self._bump())
        self._objects[object_id] = obj
        self._tombstones.pop(object_id, None)
        return obj

    def _insert_user(self, fields: Mapping[str, Any]) -> str:
        unknown = fields.keys() - _USER_FIELDS
        if unknown:
            raise ValueError(f"unknown user fields: {', '.join(sorted(unknown))}")
        upn = fields.get("upn")
        if not isinstance(upn, str) or not upn:
            raise ValueError("a user needs a upn")
        if upn.lower() in self._by_upn:
            raise ValueError(f"UPN {upn!r} is taken")
        props: dict[str, object] = {"accountEnabled": True, "userType": "Member"}
        raw: dict[str, object] = {}
        for keyword, given in fields.items():
            if keyword == "raw":
                raw = _raw_dict(given)
            elif keyword != "id":
                value = _user_value(keyword, given)
                if value is not None:
                    props[_USER_KEYWORDS[keyword]] = value
        self._set_sync_enabled(props)
        obj = self._insert(_USER, fields.get("id"), props)
        obj.raw = raw or None
        self._by_upn[upn.lower()] = obj.id
        return obj.id

    @staticmethod
    def _set_sync_enabled(props: dict[str, object]) -> None:
        # Entra Connect sets the source anchor on synced users; cloud-only users have neither.
        if props.get("onPremisesImmutableId") is not None:
            props["onPremisesSyncEnabled"] = True
        else:
            props.pop("onPremisesSyncEnabled", None)

    def _forget_user(self, object_id: str) -> None:
        obj = self._objects.pop(object_id, None)
        if obj is not None:
            upn = obj.props.get("userPrincipalName")
            if isinstance(upn, str):
                self._by_upn.pop(upn.lower(), None)

    def _delete_object(self, obj: _Object) -> None:
        for group_id, members in self._members.items():
            if obj.id in members:
                del members[obj.id]
                self._membership_changed(group_id, obj.id, added=False)
        if obj.kind is _GROUP:
            del self._members[obj.id]
            self._denied.discard(obj.id)
        self._closures.clear()
        upn = obj.props.get("userPrincipalName")
        if isinstance(upn, str):
            self._by_upn.pop(upn.lower(), None)
        del self._objects[obj.id]
        self._tombstones[obj.id] = _Tombstone(obj.kind, obj.created, self._bump())

    def _group_members(self, group_id: str) -> dict[str, None]:
        members = self._members.get(group_id)
        if members is None:
            raise ValueError(f"no group {group_id!r}")
        return members

    def _add_members(self, group_id: str, member_ids: Iterable[str]) -> None:
        members = self._group_members(group_id)
        for member_id in member_ids:
            if member_id not in self._objects:
                raise ValueError(f"no directory object {member_id!r}")
            if member_id == group_id:
                raise ValueError("a group cannot be a member of itself")
            if member_id not in members:
                members[member_id] = None
                self._membership_changed(group_id, member_id, added=True)

    def _membership_changed(self, group_id: str, member_id: str, *, added: bool) -> None:
        version = self._bump()
        if self._closures:
            self._closures.clear()
        # Kept only while a delta link may ask about it: a 1,000,000-user fixture built before any delta
        # query costs no log at all.
        if self._delta_floor is not None:
            self._membership_log.append((version, group_id, member_id, added))

    def _odata_type(self, object_id: str) -> str:
        obj = self._objects.get(object_id)
        if obj is not None:
            return obj.kind.odata_type
        tombstone = self._tombstones.get(object_id)
        return (tombstone.kind if tombstone else _USER).odata_type

    def _member_ids(self, group_id: str, *, transitive: bool, kind: _Kind | None) -> list[str]:
        """Direct or transitive members in a stable order, optionally of one type (cached until the
        memberships change)."""
        key = (group_id, transitive, kind.name if kind else None)
        cached = self._closures.get(key)
        if cached is not None:
            return cached
        if kind is not None:
            everyone = self._member_ids(group_id, transitive=transitive, kind=None)
            objects = self._objects
            result = [object_id for object_id in everyone if objects[object_id].kind is kind]
        elif not transitive:
            result = list(self._members[group_id])
        else:
            result = self._closure(group_id)
        self._closures[key] = result
        return result

    def _closure(self, group_id: str) -> list[str]:
        """Transitive members, depth first in insertion order, each object once; cycles are safe and the
        group itself is never its own member."""
        groups = self._members
        seen = {group_id}
        result: list[str] = []
        stack = [iter(groups[group_id])]
        while stack:
            for member_id in stack[-1]:
                if member_id in seen:
                    continue
                seen.add(member_id)
                result.append(member_id)
                nested = groups.get(member_id)
                if nested:
                    stack.append(iter(nested))
                    break
            else:
                stack.pop()
        return result

    def _projection(self, select: tuple[str, ...] | None, *, with_type: bool) -> _Projection:
        key = (select, with_type)
        projection = self._projections.get(key)
        if projection is None:
            if len(self._projections) > 64:
                self._projections.clear()
            projection = self._projections[key] = _Projection(select, with_type=with_type)
        return projection

    # --- link tokens (skip and delta tokens) ------------------------------------------------------------

    def _link_token(self, payload: dict[str, object]) -> str:
        body = b64url(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        tag = hmac.new(self._link_key, body.encode("ascii"), hashlib.sha256).digest()[:12]
        return f"{body}.{b64url(tag)}"

    def _read_link_token(self, token: str) -> dict[str, Any] | None:
        body, _, tag = token.partition(".")
        try:
            expected = hmac.new(self._link_key, body.encode("ascii"), hashlib.sha256).digest()[:12]
            if not hmac.compare_digest(b64url_decode(tag), expected):
                return None
            payload: object = json.loads(b64url_decode(body))
        except (binascii.Error, ValueError, UnicodeError):
            return None
        return payload if isinstance(payload, dict) else None

    # --- access tokens ----------------------------------------------------------------------------------

    def _issue_token(self, app: _App, origin: str, *, certificate: bool) -> dict[str, object]:
        now = time.time()
        lifetime = self.token_lifetime_s
        # exp rounds up, so a client renewing ahead of `exp` never sees a 401 for a fractional lifetime.
        expires = math.ceil(now + lifetime)
        jti = b64url(secrets.token_bytes(16))
        issuer = f"https://sts.windows.net/{self.tenant_id}/"
        payload: dict[str, object] = {
            "aud": origin,
            "iss": issuer,
            "iat": int(now),
            "nbf": int(now),
            "exp": expires,
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": "2" if certificate else "1",
            "idp": issuer,
            "idtyp": "app",
            "oid": app.service_principal_id,
            "sub": app.service_principal_id,
            "tid": self.tenant_id,
            "uti": jti,
            "ver": "1.0",
            "jti": jti,
        }
        if app.roles:  # Entra leaves the claim out when no role is granted
            payload["roles"] = sorted(app.roles)
        self._tokens[jti] = _Token(app.client_id, app.roles, origin.lower(), float(expires))
        expires_in = max(1, int(lifetime))
        return {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": sign_hs256(self._key, payload),
        }

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

    def _authenticate(self, incoming: _Incoming) -> _Token:
        """The valid token presented, or _Rejected with Graph's 401."""
        jti = self._token_id(incoming.authorization)
        token = self._tokens.get(jti) if jti is not None else None
        message = _TOKEN_MESSAGE
        if token is not None and not token.revoked and time.time() < token.expires_at:
            if token.audience == incoming.origin.lower():
                return token
            message = "Access token validation failure. Invalid audience."
        challenge = (
            f'Bearer realm="", authorization_uri="{incoming.origin}/common/oauth2/authorize", '
            'client_id="00000003-0000-0000-c000-000000000000"'
        )
        raise _Rejected(
            _graph_error(
                incoming, 401, "InvalidAuthenticationToken", message, (("www-authenticate", challenge),)
            )
        )

    # --- the request path -------------------------------------------------------------------------------

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record, apply faults, handle: the path of every request to the emulated services."""
        body = await read_body(receive)
        incoming = _incoming(scope, body)
        target = incoming.path + ("?" + unquote(incoming.raw_query) if incoming.raw_query else "")
        with self._lock:
            self._seq += 1
            entry = _Entry(
                seq=self._seq,
                at=time.monotonic(),
                method=incoming.method,
                path=incoming.path,
                query=incoming.query,
                body=_logged_body(incoming),
                consistency_level=incoming.consistency_level,
                token_id=self._token_id(incoming.authorization),
            )
            self._log.append(entry)
            decision = self._injector.decide(
                self.faults, method=incoming.method, target=target, is_auth=not incoming.is_graph
            )
            entry.fault = decision.fault

        if decision.latency_s > 0:
            await anyio.sleep(decision.latency_s)
        if decision.fault == "drop":
            reply = _fault_reply(incoming, 502)
            await send_truncated_and_drop(send, reply.status, reply.body, _headers(reply))
        if decision.fault in ("error", "throttle"):
            if decision.fault == "throttle":
                reply = _fault_reply(incoming, 429, decision.retry_after_s)
            else:
                reply = _fault_reply(incoming, decision.status or 503)
            with self._lock:
                entry.status = reply.status
            await send_json(send, reply.status, reply.body, _headers(reply))
            return

        with self._lock:
            try:
                reply = self._handle(incoming)
            except _Rejected as rejected:
                reply = rejected.reply
            if decision.fault != "drop_after":
                entry.status = reply.status
        if decision.fault == "drop_after":
            await send_truncated_and_drop(send, reply.status, reply.body, _headers(reply))
        if decision.delay_s > 0:
            await anyio.sleep(decision.delay_s)
        await send_json(send, reply.status, reply.body, _headers(reply))

    def _handle(self, incoming: _Incoming) -> _Reply:
        """Answer one request as the real service would. Called with the lock held."""
        if incoming.is_graph:
            return self._handle_graph(incoming)
        return self._handle_login(incoming)

    # --- Entra login ------------------------------------------------------------------------------------

    def _handle_login(self, incoming: _Incoming) -> _Reply:
        segments = incoming.path.strip("/").split("/")
        tenant = segments[0]
        rest = [s.lower() for s in segments[1:]]
        if rest == ["oauth2", "v2.0", "token"]:
            return self._token_endpoint(incoming, tenant)
        if rest not in (
            ["v2.0", ".well-known", "openid-configuration"],
            [".well-known", "openid-configuration"],
            ["discovery", "v2.0", "keys"],
            ["discovery", "keys"],
        ):
            return _Reply(
                404,
                encode_json({"error": "not_found", "error_description": "Not Found"}),
                content_type=_ENTRA_JSON,
            )
        if incoming.method != "GET":
            return _entra_error(
                incoming, 400, "invalid_request", 900561, "The endpoint only accepts GET requests."
            )
        if tenant.lower() != self.tenant_id.lower():
            return self._unknown_tenant(incoming, tenant)
        if rest[0] == "discovery":
            # Graph tokens here are HS256 with a private key: there is no public key to publish.
            return _Reply(200, encode_json({"keys": []}), content_type=_ENTRA_JSON)
        return _Reply(
            200,
            encode_json(self._openid_configuration(incoming, v2=rest[0] == "v2.0")),
            content_type=_ENTRA_JSON,
        )

    def _unknown_tenant(self, incoming: _Incoming, tenant: str) -> _Reply:
        return _entra_error(
            incoming,
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
            "into the correct cloud. Check with your subscription administrator, this may happen if there "
            "are no active subscriptions for the tenant.",
        )

    def _openid_configuration(self, incoming: _Incoming, *, v2: bool) -> dict[str, object]:
        base = f"{incoming.origin}/{self.tenant_id}"
        oauth = f"{base}/oauth2/v2.0" if v2 else f"{base}/oauth2"
        issuer = f"{base}/v2.0" if v2 else f"https://sts.windows.net/{self.tenant_id}/"
        host = incoming.origin.split("://", 1)[1]
        return {
            "token_endpoint": f"{oauth}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys" if v2 else f"{base}/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{incoming.origin}/oidc/userinfo",
            "authorization_endpoint": f"{oauth}/authorize",
            "device_authorization_endpoint": f"{oauth}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{oauth}/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": host,
            "rbac_url": "https://pas.windows.net",
        }

    def _token_endpoint(self, incoming: _Incoming, tenant: str) -> _Reply:
        if incoming.method != "POST":
            return _entra_error(
                incoming,
                400,
                "invalid_request",
                900561,
                f"The endpoint only accepts POST, OPTIONS requests. Received a {incoming.method} request.",
            )
        if tenant.lower() != self.tenant_id.lower():
            return self._unknown_tenant(incoming, tenant)
        pairs = _form(incoming.body)
        names = [name for name, _ in pairs]
        for name in names:
            if names.count(name) > 1:
                return _entra_error(
                    incoming,
                    400,
                    "invalid_request",
                    9000411,
                    f"The request is not properly formatted. The parameter '{name}' is duplicated.",
                )
        form = dict(pairs)
        basic_id, basic_secret = _basic_credentials(incoming.authorization)

        def missing(name: str) -> _Reply:
            return _entra_error(
                incoming,
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{name}'.",
            )

        grant_type = form.get("grant_type")
        if not grant_type:
            return missing("grant_type")
        if grant_type != "client_credentials":
            return _entra_error(
                incoming,
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id") or basic_id
        if not client_id:
            return missing("client_id")
        app = self._apps.get(client_id.lower())
        if app is None:
            return _entra_error(
                incoming,
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                "your authentication request to the wrong tenant.",
            )
        scope = form.get("scope")
        if not scope:
            return missing("scope")
        scope_error = _scope_error(scope, incoming.origin)
        if scope_error is not None:
            code, message = scope_error
            return _entra_error(incoming, 400, "invalid_scope", code, message)

        secret = form.get("client_secret", basic_secret)
        assertion_type = form.get("client_assertion_type")
        assertion = form.get("client_assertion")
        if secret is not None and (assertion is not None or assertion_type is not None):
            return _entra_error(
                incoming,
                401,
                "invalid_client",
                7000218,
                "Send either 'client_assertion' or 'client_secret', not both.",
            )
        if assertion is not None or assertion_type is not None:
            if assertion_type != JWT_BEARER:
                return _entra_error(
                    incoming,
                    401,
                    "invalid_client",
                    700027,
                    f"Client assertion type '{assertion_type}' is not supported; use '{JWT_BEARER}'.",
                )
            if not assertion:
                return missing("client_assertion")
            audiences = _token_audiences(incoming.origin, tenant, self.tenant_id)
            problem = _assertion_problem(app, assertion, audiences)
            if problem is not None:
                return _entra_error(incoming, 401, "invalid_client", 700027, problem)
            body = self._issue_token(app, incoming.origin, certificate=True)
        elif secret is not None:
            # Always compared, in constant time, as a real service should.
            ok = app.secret is not None and hmac.compare_digest(secret.encode(), app.secret.encode())
            if not ok:
                return _entra_error(
                    incoming,
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client secret value, not the client secret ID, for a secret added to app "
                    f"'{app.client_id}'.",
                )
            body = self._issue_token(app, incoming.origin, certificate=False)
        else:
            return _entra_error(
                incoming,
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        return _Reply(
            200,
            encode_json(body),
            (("cache-control", "no-store, no-cache"), ("pragma", "no-cache")),
            content_type=_ENTRA_JSON,
        )

    # --- Graph ------------------------------------------------------------------------------------------

    def _handle_graph(self, incoming: _Incoming) -> _Reply:
        # Graph checks the token before it routes: any path needs one.
        token = self._authenticate(incoming)
        segments = [unquote(s) for s in incoming.path[len(GRAPH_PREFIX) :].strip("/").split("/")]
        lowered = [s.lower() for s in segments]
        if incoming.method != "GET":
            return _graph_error(
                incoming,
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        if lowered[0] in ("groups", "users") and len(lowered) == 2 and lowered[1] in ("delta", "delta()"):
            if lowered[0] == "groups":
                return self._groups_delta(incoming, token)
            return self._users_delta(incoming, token)
        if lowered[0] == "groups" and len(segments) >= 3 and lowered[2] in ("members", "transitivemembers"):
            return self._list_members(
                incoming, token, segments[1], lowered[2] == "transitivemembers", segments[3:]
            )
        if lowered[0] == "groups" and len(segments) == 2:
            return self._get_group(incoming, token, segments[1])
        if lowered[0] == "users" and len(segments) == 2:
            return self._get_user(incoming, token, segments[1])
        if lowered[0] == "users" and len(segments) >= 3 and lowered[2] == "memberof":
            return self._list_member_of(incoming, token, segments[1], segments[3:])
        if lowered[0] == "admin":
            return self._admin(incoming, token, segments)
        unknown = next((s for s in segments if s), segments[0])
        if lowered[0] in ("groups", "users") and len(segments) > 2:
            unknown = segments[2]
        return _graph_error(incoming, 400, "BadRequest", f"Resource not found for the segment '{unknown}'.")

    def _require(self, incoming: _Incoming, token: _Token, roles: frozenset[str]) -> None:
        if not token.roles & roles:
            raise _Rejected(_graph_error(incoming, 403, "Authorization_RequestDenied", _PRIVILEGES_MESSAGE))

    def _not_found(self, incoming: _Incoming, object_id: str) -> _Rejected:
        return _Rejected(
            _graph_error(
                incoming,
                404,
                "Request_ResourceNotFound",
                f"Resource '{object_id}' does not exist or one of its queried reference-property objects are "
                "not present.",
            )
        )

    def _check_options(
        self, incoming: _Incoming, allowed: Iterable[str], refused: frozenset[str] = _OPTIONS_REFUSED
    ) -> None:
        """Reject the OData options this endpoint does not take here ($filter, $orderby, ...)."""
        allowed_set = set(allowed)
        for name in incoming.query:
            bare = name[1:] if name.startswith("$") else name
            if bare.lower() in refused and bare not in allowed_set:
                raise _Rejected(
                    _graph_error(
                        incoming,
                        400,
                        "Request_UnsupportedQuery",
                        f"The query option '${bare}' is not supported by this emulator on this endpoint.",
                    )
                )

    def _select(
        self, incoming: _Incoming, props: Mapping[str, str], type_name: str
    ) -> tuple[str, ...] | None:
        """$select as canonical property names (case-insensitive, de-duplicated, in request order)."""
        raw = incoming.option("select")
        if raw is None or not raw.strip():
            return None
        names: list[str] = []
        for part in raw.split(","):
            name = part.strip()
            if not name:
                continue
            canonical = props.get(name.lower())
            if canonical is None:
                raise _Rejected(
                    _bad_request(incoming, f"Could not find a property named '{name}' on type '{type_name}'.")
                )
            if canonical not in names:
                names.append(canonical)
        return tuple(names)

    def _count_requested(self, incoming: _Incoming) -> bool:
        raw = incoming.option("count")
        if raw is None:
            return False
        if raw.lower() not in ("true", "false"):
            raise _Rejected(_bad_request(incoming, f"Invalid value '{raw}' for the query option '$count'."))
        return raw.lower() == "true"

    def _page_size(self, incoming: _Incoming) -> int:
        raw = incoming.option("top")
        top = _DEFAULT_TOP
        if raw is not None:
            try:
                top = int(raw)
            except ValueError:
                top = 0
            if not 1 <= top <= _MAX_TOP:
                raise _Rejected(
                    _bad_request(
                        incoming,
                        f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.",
                    )
                )
        return max(1, min(top, self.page_cap))

    def _list_members(
        self, incoming: _Incoming, token: _Token, group_id: str, transitive: bool, tail: list[str]
    ) -> _Reply:
        self._require(incoming, token, _MEMBER_ROLES)
        group = self._objects.get(group_id)
        if group is None or group.kind is not _GROUP:
            raise self._not_found(incoming, group_id)
        if group_id in self._denied and _HIDDEN_MEMBERS_ROLE not in token.roles:
            raise _Rejected(_graph_error(incoming, 403, "Authorization_RequestDenied", _PRIVILEGES_MESSAGE))
        cast: _Kind | None = None
        count_segment = False
        for segment in tail:
            if segment == "":
                continue
            if segment.lower() == "$count" and not count_segment:
                count_segment = True
            elif cast is None and not count_segment and segment.lower() in _CASTS:
                cast = _CASTS[segment.lower()]
            else:
                return _graph_error(
                    incoming, 400, "BadRequest", f"Resource not found for the segment '{segment}'."
                )
        self._check_options(incoming, ())
        eventual = (incoming.consistency_level or "").strip().lower() == "eventual"
        count = self._count_requested(incoming)
        if count_segment:
            if not eventual:
                return _bad_request(incoming, "$count is not currently supported.")
            total = len(self._member_ids(group_id, transitive=transitive, kind=cast))
            return _Reply(200, str(total).encode(), content_type="text/plain")
        if cast is not None and not (eventual and count):
            return _graph_error(
                incoming,
                400,
                "Request_UnsupportedQuery",
                "An OData cast on a member list is an advanced query: it needs the header 'ConsistencyLevel: "
                "eventual' and the query option '$count=true'.",
            )
        if cast is not None:
            select = self._select(incoming, cast.by_lower, f"microsoft.graph.{cast.name}")
        else:
            select = self._select(incoming, _DIRECTORY_OBJECT_PROPS, "microsoft.graph.directoryObject")
        size = self._page_size(incoming)
        ids = self._member_ids(group_id, transitive=transitive, kind=cast)
        offset = self._member_offset(incoming, ids, group_id, transitive, cast)
        page = ids[offset : offset + size]
        projection = self._projection(select, with_type=True)
        objects = self._objects
        page_key = (group_id, transitive, cast.name if cast else None, select, offset, len(page))
        value = self._pages.get(page_key)
        if value is None:
            value = encode_json([projection.project(objects[object_id]) for object_id in page])
            if self._pages_size + len(value) > _PAGE_CACHE_BYTES:
                self._pages.clear()
                self._pages_size = 0
            self._pages[page_key] = value
            self._pages_size += len(value)

        entity_set = cast.entity_set if cast is not None else "directoryObjects"
        context = f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{entity_set}"
        if select is not None:
            context += f"({','.join(select)})"
        body: dict[str, object] = {"@odata.context": context}
        # Graph ignores $count=true silently without ConsistencyLevel: eventual (documented).
        if count and eventual:
            body["@odata.count"] = len(ids)
        end = offset + len(page)
        if end < len(ids):
            skiptoken = self._link_token(
                {
                    "k": "m",
                    "g": group_id,
                    "t": transitive,
                    "c": cast.name if cast else None,
                    "o": end,
                    "l": page[-1],
                }
            )
            body["@odata.nextLink"] = _next_link(incoming, "$skiptoken", skiptoken, drop=("skiptoken",))
        # The envelope, then the value array spliced in from the cached objects.
        envelope = encode_json(body)[:-1]
        return _Reply(200, b"".join((envelope, b',"value":', value, b"}")), _graph_headers(incoming))

    def _member_offset(
        self, incoming: _Incoming, ids: list[str], group_id: str, transitive: bool, cast: _Kind | None
    ) -> int:
        raw = incoming.option("skiptoken")
        if raw is None:
            return 0
        payload = self._read_link_token(raw)
        if (
            payload is None
            or payload.get("k") != "m"
            or payload.get("g") != group_id
            or payload.get("t") != transitive
            or payload.get("c") != (cast.name if cast else None)
            or not isinstance(payload.get("o"), int)
        ):
            raise _Rejected(_bad_request(incoming, "The specified page token value is invalid."))
        offset: int = payload["o"]
        last = payload.get("l")
        # Continue after the last object served, even if members came or went in between.
        if 0 < offset <= len(ids) and ids[offset - 1] == last:
            return offset
        if isinstance(last, str):
            try:
                return ids.index(last) + 1
            except ValueError:
                pass
        return min(max(offset, 0), len(ids))

    def _list_member_of(self, incoming: _Incoming, token: _Token, key: str, tail: list[str]) -> _Reply:
        """GET /users/{id | userPrincipalName}/memberOf[/<cast>][/$count]: the groups the user is a direct
        member of, in the order the groups were created."""
        self._require(incoming, token, _MEMBER_OF_ROLES)
        object_id = key if key in self._objects else self._by_upn.get(key.lower(), key)
        user = self._objects.get(object_id)
        if user is None or user.kind is not _USER:
            raise self._not_found(incoming, key)
        cast_name: str | None = None
        count_segment = False
        for segment in tail:
            lowered = segment.lower()
            if segment == "":
                continue
            if lowered == "$count" and not count_segment:
                count_segment = True
            elif cast_name is None and not count_segment and lowered in _MEMBER_OF_CASTS:
                cast_name = _MEMBER_OF_CASTS[lowered]
            else:
                return _graph_error(
                    incoming, 400, "BadRequest", f"Resource not found for the segment '{segment}'."
                )
        self._check_options(incoming, ())
        eventual = (incoming.consistency_level or "").strip().lower() == "eventual"
        count = self._count_requested(incoming)
        hidden_ok = _HIDDEN_MEMBERS_ROLE in token.roles
        ids = (
            []
            if cast_name not in (None, "group")
            else [
                group_id
                for group_id, members in self._members.items()
                if object_id in members and (hidden_ok or group_id not in self._denied)
            ]
        )
        if count_segment:
            if not eventual:
                return _bad_request(incoming, "$count is not currently supported.")
            return _Reply(200, str(len(ids)).encode(), content_type="text/plain")
        if cast_name is not None and not (eventual and count):
            return _graph_error(
                incoming,
                400,
                "Request_UnsupportedQuery",
                "An OData cast on a membership list is an advanced query: it needs the header "
                "'ConsistencyLevel: eventual' and the query option '$count=true'.",
            )
        props = _GROUP.by_lower if cast_name == "group" else _DIRECTORY_OBJECT_PROPS
        select = self._select(incoming, props, f"microsoft.graph.{cast_name or 'directoryObject'}")
        size = self._page_size(incoming)
        offset = self._member_of_offset(incoming, ids, object_id, cast_name)
        page = ids[offset : offset + size]
        projection = self._projection(select, with_type=True)
        limited = not token.roles & _MEMBER_ROLES
        value: list[dict[str, object]] = []
        for group_id in page:
            item = projection.project(self._objects[group_id])
            if limited:
                # Graph's "limited information": the type and ID, every other property null.
                item = {name: item[name] if name in ("@odata.type", "id") else None for name in item}
            value.append(item)
        entity_set = f"{cast_name}s" if cast_name is not None else "directoryObjects"
        context = f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{entity_set}"
        if select is not None:
            context += f"({','.join(select)})"
        body: dict[str, object] = {"@odata.context": context}
        if count and eventual:
            body["@odata.count"] = len(ids)
        end = offset + len(page)
        if end < len(ids):
            skiptoken = self._link_token({"k": "mo", "u": object_id, "c": cast_name, "o": end, "l": page[-1]})
            body["@odata.nextLink"] = _next_link(incoming, "$skiptoken", skiptoken, drop=("skiptoken",))
        body["value"] = value
        return _Reply(200, encode_json(body), _graph_headers(incoming))

    def _member_of_offset(
        self, incoming: _Incoming, ids: list[str], user_id: str, cast_name: str | None
    ) -> int:
        raw = incoming.option("skiptoken")
        if raw is None:
            return 0
        payload = self._read_link_token(raw)
        if (
            payload is None
            or payload.get("k") != "mo"
            or payload.get("u") != user_id
            or payload.get("c") != cast_name
            or not isinstance(payload.get("o"), int)
        ):
            raise _Rejected(_bad_request(incoming, "The specified page token value is invalid."))
        offset: int = payload["o"]
        last = payload.get("l")
        # Continue after the last group served, even if memberships changed in between.
        if 0 < offset <= len(ids) and ids[offset - 1] == last:
            return offset
        if isinstance(last, str) and last in ids:
            return ids.index(last) + 1
        return min(max(offset, 0), len(ids))

    def _get_user(self, incoming: _Incoming, token: _Token, key: str) -> _Reply:
        self._require(incoming, token, _USER_ROLES)
        self._check_options(incoming, ())
        object_id = key if key in self._objects else self._by_upn.get(key.lower(), key)
        obj = self._objects.get(object_id)
        if obj is None or obj.kind is not _USER:
            raise self._not_found(incoming, key)
        select = self._select(incoming, _USER.by_lower, "microsoft.graph.user")
        return self._entity_reply(incoming, obj, select)

    def _get_group(self, incoming: _Incoming, token: _Token, group_id: str) -> _Reply:
        self._require(incoming, token, _MEMBER_ROLES)
        self._check_options(incoming, ())
        obj = self._objects.get(group_id)
        if obj is None or obj.kind is not _GROUP:
            raise self._not_found(incoming, group_id)
        select = self._select(incoming, _GROUP.by_lower, "microsoft.graph.group")
        return self._entity_reply(incoming, obj, select)

    def _entity_reply(self, incoming: _Incoming, obj: _Object, select: tuple[str, ...] | None) -> _Reply:
        context = f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{obj.kind.entity_set}"
        if select is not None:
            context += f"({','.join(select)})"
        body: dict[str, object] = {"@odata.context": context + "/$entity"}
        body.update(self._projection(select, with_type=False).project(obj))
        return _Reply(200, encode_json(body), _graph_headers(incoming))

    # --- Teams telephone number assignments -------------------------------------------------------------

    def _admin(self, incoming: _Incoming, token: _Token, segments: list[str]) -> _Reply:
        """Route /admin/...: only the Teams number assignments are emulated."""
        for index, expected in enumerate(_NUMBER_PATH):
            if index >= len(segments) or segments[index].lower() != expected:
                # A missing segment: the resource above it is real but not emulated; name the last one given.
                unknown = segments[min(index, len(segments) - 1)]
                return _graph_error(
                    incoming, 400, "BadRequest", f"Resource not found for the segment '{unknown}'."
                )
        tail = segments[len(_NUMBER_PATH) :]
        if not tail:
            return self._list_number_assignments(incoming, token)
        is_key = bool(tail[0]) and not tail[0].startswith("$")
        if len(tail) == 1 and is_key:
            return self._get_number_assignment(incoming, token, tail[0])
        unknown = tail[1] if is_key else tail[0]
        return _graph_error(incoming, 400, "BadRequest", f"Resource not found for the segment '{unknown}'.")

    def _list_number_assignments(self, incoming: _Incoming, token: _Token) -> _Reply:
        self._require(incoming, token, _NUMBER_ROLES)
        self._check_options(incoming, (), refused=_NUMBER_OPTIONS_REFUSED)
        # Option names as the documentation writes them ($Top, $Skip) work too.
        options = {name.lstrip("$").lower(): value for name, value in incoming.query_pairs}
        top = _NUMBER_DEFAULT_TOP
        raw_top = options.get("top")
        if raw_top is not None:
            top = int(raw_top) if re.fullmatch(r"[0-9]{1,9}", raw_top.strip()) else 0
            if not 1 <= top <= _NUMBER_MAX_TOP:
                raise _Rejected(
                    _bad_request(
                        incoming,
                        f"Invalid page size specified: '{raw_top}'. Must be between 1 and {_NUMBER_MAX_TOP} "
                        "inclusive.",
                    )
                )
        skip = 0
        raw_skip = options.get("skip")
        if raw_skip is not None:
            if not re.fullmatch(r"[0-9]{1,12}", raw_skip.strip()):
                raise _Rejected(
                    _bad_request(
                        incoming,
                        f"Invalid value '{raw_skip}' for the query option '$skip': it must be a whole number "
                        "of 0 or more.",
                    )
                )
            skip = int(raw_skip)
        records = self._sorted_numbers()
        raw_filter = options.get("filter")
        if raw_filter is not None:
            try:
                clauses = _number_filter(raw_filter)
            except ValueError as exc:
                raise _Rejected(_bad_request(incoming, str(exc))) from None
            filtered = self._numbers_filtered.get(raw_filter)
            if filtered is None:
                filtered = [record for record in records if _number_matches(record, clauses)]
                self._numbers_filtered[raw_filter] = filtered
            records = filtered
        size = max(1, min(top, self.page_cap))
        page = records[skip : skip + size]
        body: dict[str, object] = {
            "@odata.context": f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{_NUMBER_SET}"
        }
        end = skip + len(page)
        if end < len(records):
            body["@odata.nextLink"] = _next_link(incoming, "$skip", str(end), drop=("skip",))
        body["value"] = page
        return _Reply(200, encode_json(body), _graph_headers(incoming))

    def _get_number_assignment(self, incoming: _Incoming, token: _Token, record_id: str) -> _Reply:
        self._require(incoming, token, _NUMBER_ROLES)
        self._check_options(incoming, (), refused=_NUMBER_OPTIONS_REFUSED | {"filter", "top", "skip"})
        number = self._number_ids.get(record_id)
        if number is None:
            raise self._not_found(incoming, record_id)
        body: dict[str, object] = {
            "@odata.context": f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{_NUMBER_SET}/$entity"
        }
        body.update(self._numbers[number])
        return _Reply(200, encode_json(body), _graph_headers(incoming))

    # --- delta queries ----------------------------------------------------------------------------------

    def _groups_delta(self, incoming: _Incoming, token: _Token) -> _Reply:
        self._require(incoming, token, _MEMBER_ROLES)
        return self._delta(incoming, "groups")

    def _users_delta(self, incoming: _Incoming, token: _Token) -> _Reply:
        self._require(incoming, token, _USER_ROLES)
        return self._delta(incoming, "users")

    def _delta(self, incoming: _Incoming, kind: str) -> _Reply:
        skiptoken, deltatoken = incoming.option("skiptoken"), incoming.option("deltatoken")
        if skiptoken is not None:
            payload = self._delta_payload(incoming, skiptoken, kind, "page")
            round_id, offset = payload.get("r"), payload.get("o")
            if not isinstance(round_id, str) or not isinstance(offset, int):
                raise _Rejected(_bad_request(incoming, "The specified page token value is invalid."))
            delta_round = self._rounds.get(round_id)
            if delta_round is None:
                # Evicted: recompute the same question from the current directory.
                since = payload.get("b")
                delta_round = self._new_round(
                    kind,
                    since if isinstance(since, int) else None,
                    _tuple(payload.get("s")),
                    _tuple(payload.get("f")),
                )
                round_id = self._keep_round(delta_round)
                offset = min(offset, len(delta_round.items))
            return self._delta_page(incoming, round_id, delta_round, offset)
        if deltatoken is not None:
            if deltatoken.lower() == "latest":
                select, filter_ids = self._delta_question(incoming, kind)
                delta_round = _Round(kind, None, self._version, select, filter_ids, [], [])
                self._open_delta(delta_round.target)
                return self._delta_page(incoming, self._keep_round(delta_round), delta_round, 0)
            payload = self._delta_payload(incoming, deltatoken, kind, "delta")
            since = payload.get("v")
            if not isinstance(since, int):
                raise _Rejected(_bad_request(incoming, "The specified delta token value is invalid."))
            delta_round = self._new_round(kind, since, _tuple(payload.get("s")), _tuple(payload.get("f")))
            return self._delta_page(incoming, self._keep_round(delta_round), delta_round, 0)
        select, filter_ids = self._delta_question(incoming, kind)
        delta_round = self._new_round(kind, None, select, filter_ids)
        return self._delta_page(incoming, self._keep_round(delta_round), delta_round, 0)

    def _delta_question(
        self, incoming: _Incoming, kind: str
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        """The $select and $filter of an initial delta request, validated."""
        if kind == "groups":
            self._check_options(incoming, ("filter",))
            props = dict(_GROUP.by_lower, members="members")
            select = self._select(incoming, props, "microsoft.graph.group")
            raw_filter = incoming.option("filter")
            filter_ids = None if raw_filter is None else _id_filter(raw_filter)
            if raw_filter is not None and filter_ids is None:
                raise _Rejected(
                    _graph_error(
                        incoming,
                        400,
                        "Request_UnsupportedQuery",
                        "Unsupported filter: group delta takes only "
                        "$filter=id eq '<id>' [or id eq '<id>' ...].",
                    )
                )
            return select, filter_ids
        self._check_options(incoming, ())
        return self._select(incoming, _USER.by_lower, "microsoft.graph.user"), None

    def _delta_payload(self, incoming: _Incoming, token: str, kind: str, use: str) -> dict[str, Any]:
        payload = self._read_link_token(token)
        if payload is None or payload.get("k") != f"{use}:{kind}":
            what = "page" if use == "page" else "delta"
            raise _Rejected(_bad_request(incoming, f"The specified {what} token value is invalid."))
        if payload.get("e") != self._epoch:
            raise _Rejected(
                _graph_error(
                    incoming,
                    410,
                    "SyncStateNotFound",
                    "The sync state generation is not found. The delta token is expired and data must be "
                    "synchronized again.",
                )
            )
        return payload

    def _keep_round(self, delta_round: _Round) -> str:
        round_id = secrets.token_hex(8)
        self._rounds[round_id] = delta_round
        while len(self._rounds) > _MAX_ROUNDS:
            self._rounds.popitem(last=False)
        return round_id

    def _open_delta(self, version: int) -> None:
        """From now on keep the membership log from `version` on (a delta link will ask about it)."""
        if self._delta_floor is None or version < self._delta_floor:
            self._delta_floor = version

    def _new_round(
        self, kind: str, since: int | None, select: tuple[str, ...] | None, filter_ids: tuple[str, ...] | None
    ) -> _Round:
        target = self._version
        self._open_delta(target)
        if kind == "users":
            items, weights = self._user_changes(since, select)
        else:
            items, weights = self._group_changes(since, select, filter_ids)
        return _Round(kind, since, target, select, filter_ids, items, weights)

    def _user_changes(self, since: int | None, select: tuple[str, ...] | None) -> tuple[list[Any], list[int]]:
        items: list[Any] = []
        watched = {name.lower() for name in (select if select is not None else _USER.default_select)}
        for obj in self._objects.values():
            if obj.kind is not _USER:
                continue
            if (
                since is None
                or obj.created > since
                or (obj.changed and any(v > since and name in watched for name, v in obj.changed.items()))
            ):
                items.append(obj.id)
        if since is not None:
            for object_id, tombstone in self._tombstones.items():
                if tombstone.kind is _USER and tombstone.created <= since < tombstone.deleted:
                    items.append({"id": object_id, "@removed": {"reason": "changed"}})
        return items, [1] * len(items)

    def _group_changes(
        self, since: int | None, select: tuple[str, ...] | None, filter_ids: tuple[str, ...] | None
    ) -> tuple[list[Any], list[int]]:
        with_members = select is None or "members" in select
        watched = {name.lower() for name in (select if select is not None else _GROUP.default_select)}
        watched.discard("members")
        if filter_ids is not None:
            candidates = list(dict.fromkeys(filter_ids))
        else:
            candidates = [o.id for o in self._objects.values() if o.kind is _GROUP]
            if since is not None:
                candidates += [i for i, t in self._tombstones.items() if t.kind is _GROUP]
        # Net membership changes since `since`: the first event after it tells the state at `since`.
        before: dict[str, dict[str, bool]] = {}
        if since is not None and with_members:
            start = bisect.bisect_right(self._membership_log, since, key=lambda event: event[0])
            for _, group_id, member_id, added in self._membership_log[start:]:
                was = before.setdefault(group_id, {})
                if member_id not in was:
                    was[member_id] = not added
        entries: list[_GroupItem] = []
        for group_id in candidates:
            obj = self._objects.get(group_id)
            if obj is None or obj.kind is not _GROUP:
                tombstone = self._tombstones.get(group_id)
                if (
                    since is not None
                    and tombstone is not None
                    and tombstone.kind is _GROUP
                    and tombstone.created <= since < tombstone.deleted
                ):
                    entries.append((group_id, None, False))
                continue
            members = self._members[group_id]
            if since is None or obj.created > since:
                changes = [(m, self._odata_type(m), False) for m in members] if with_members else None
                entries.append((group_id, changes, True))
                continue
            props_changed = bool(obj.changed) and any(
                v > since and name in watched for name, v in (obj.changed or {}).items()
            )
            changes = []
            for member_id, was_member in before.get(group_id, {}).items():
                is_member = member_id in members
                if was_member != is_member:
                    changes.append((member_id, self._odata_type(member_id), not is_member))
            if props_changed or changes:
                entries.append((group_id, changes if with_members else None, True))
        # Pages hold at most page_cap member entries: big groups continue on the next page, as Graph does.
        cap = max(1, self.page_cap)
        items: list[Any] = []
        weights: list[int] = []
        for group_id, changes, show in entries:
            if changes is None or len(changes) <= cap:
                items.append((group_id, changes, show))
                weights.append(max(1, len(changes or ())))
                continue
            for start in range(0, len(changes), cap):
                items.append((group_id, changes[start : start + cap], show))
                weights.append(len(changes[start : start + cap]))
        return items, weights

    def _delta_page(self, incoming: _Incoming, round_id: str, delta_round: _Round, offset: int) -> _Reply:
        cap = max(1, self.page_cap)
        end = offset
        used = 0
        while end < len(delta_round.items) and (end == offset or used + delta_round.weights[end] <= cap):
            used += delta_round.weights[end]
            end += 1
        if delta_round.kind == "users":
            value = self._user_delta_values(delta_round, delta_round.items[offset:end])
        else:
            value = self._group_delta_values(delta_round, delta_round.items[offset:end])
        context = f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{delta_round.kind}"
        if delta_round.select is not None:
            context += f"({','.join(delta_round.select)})"
        body: dict[str, object] = {"@odata.context": context}
        link_base = f"{incoming.origin}{GRAPH_PREFIX}/{delta_round.kind}/delta()"
        common = {
            "e": self._epoch,
            "s": list(delta_round.select or ()) or None,
            "f": _list(delta_round.filter),
        }
        if end < len(delta_round.items):
            token = self._link_token(
                {"k": f"page:{delta_round.kind}", "r": round_id, "o": end, "b": delta_round.since, **common}
            )
            body["@odata.nextLink"] = f"{link_base}?$skiptoken={token}"
        else:
            token = self._link_token({"k": f"delta:{delta_round.kind}", "v": delta_round.target, **common})
            body["@odata.deltaLink"] = f"{link_base}?$deltatoken={token}"
        body["value"] = value
        return _Reply(200, encode_json(body), _graph_headers(incoming))

    def _user_delta_values(self, delta_round: _Round, items: list[Any]) -> list[object]:
        projection = self._projection(delta_round.select, with_type=False)
        value: list[object] = []
        for item in items:
            if isinstance(item, dict):
                value.append(item)
                continue
            obj = self._objects.get(item)
            if obj is None:  # deleted since the round began: the next round reports it
                continue
            value.append(projection.project(obj))
        return value

    def _group_delta_values(self, delta_round: _Round, items: list[Any]) -> list[object]:
        select = delta_round.select
        props = tuple(p for p in select if p != "members") if select is not None else None
        projection = self._projection(props, with_type=False)
        value: list[object] = []
        for group_id, changes, show in items:
            obj = self._objects.get(group_id)
            if changes is None and not show:
                value.append({"id": group_id, "@removed": {"reason": "changed"}})
                continue
            entry: dict[str, object] = {"id": group_id}
            if show and obj is not None and (props is None or props):
                entry = projection.project(obj)
            if changes is not None:
                entry["members@delta"] = [
                    {"@odata.type": odata_type, "id": member_id, "@removed": {"reason": "deleted"}}
                    if removed
                    else {"@odata.type": odata_type, "id": member_id}
                    for member_id, odata_type, removed in changes
                ]
            value.append(entry)
        return value

    # --- the control API --------------------------------------------------------------------------------

    def _control_routes(self) -> list[Route]:
        return [
            *self.shared_control_routes(),
            Route("/tenant", self._control_tenant, methods=["POST"]),
            Route("/apps", self._control_register_app, methods=["POST"]),
            Route("/users", self._control_add_users, methods=["POST"]),
            Route("/users/{user_id}", self._control_update_user, methods=["PATCH"]),
            Route("/users/{user_id}", self._control_delete_user, methods=["DELETE"]),
            Route("/groups", self._control_add_group, methods=["POST"]),
            Route("/devices", self._control_add_device, methods=["POST"]),
            Route("/contacts", self._control_add_contact, methods=["POST"]),
            Route("/service_principals", self._control_add_service_principal, methods=["POST"]),
            Route("/members", self._control_add_members, methods=["POST"]),
            Route("/members", self._control_remove_member, methods=["DELETE"]),
            Route("/deny", self._control_deny, methods=["POST"]),
            Route("/page_cap", self._control_set_page_cap, methods=["PUT"]),
            Route("/expire_delta_links", self._control_expire_delta_links, methods=["POST"]),
            Route("/number_assignments", self._control_number_assignments, methods=["GET"]),
            Route("/number_assignments", self._control_assign_numbers, methods=["POST"]),
            Route("/number_assignments", self._control_unassign_number, methods=["DELETE"]),
        ]

    async def _control_tenant(self, request: Request) -> JSONResponse:
        from syncd.emulators.tenant import TenantSpec, build_tenant  # tenant.py builds on this module

        try:
            spec = validate_control(
                pydantic.TypeAdapter(TenantSpec), await control_body(request), field_names(TenantSpec)
            )
        except ControlError as exc:
            return control_error(exc)
        try:
            built = await anyio.to_thread.run_sync(build_tenant, self, spec)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse(dataclasses.asdict(built))

    async def _control_register_app(self, request: Request) -> JSONResponse:
        try:
            fields = validate_control(_APP_ADAPTER, await control_body(request), _AppFields.__optional_keys__)
            pem = fields.get("certificate_pem")
            self.register_app(
                fields.get("client_id", DEFAULT_CLIENT_ID),
                secret=fields.get("secret", DEFAULT_CLIENT_SECRET),
                certificate_pem=pem.encode("ascii") if pem else None,
                roles=fields.get("roles", DEFAULT_APP_ROLES),
            )
        except (ControlError, ValueError) as exc:
            return control_error(exc)
        return JSONResponse({"ok": True})

    async def _control_add_users(self, request: Request) -> JSONResponse:
        """One user (an object, answered {"id"}) or many (a list, answered {"ids"})."""
        allowed = _UserFields.__optional_keys__
        try:
            body = await control_body(request)
            if isinstance(body, list):
                users = [validate_control(_USER_ADAPTER, item, allowed) for item in body]
                ids = self.add_users(users)
                return JSONResponse({"ids": ids})
            fields = validate_control(_USER_ADAPTER, body, allowed)
            return JSONResponse({"id": self.add_users([fields])[0]})
        except ControlError as exc:
            return control_error(exc)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)

    async def _control_update_user(self, request: Request) -> JSONResponse:
        allowed = _UserFields.__optional_keys__ - {"id"}
        try:
            fields = validate_control(_USER_ADAPTER, await control_body(request), allowed)
            changes: dict[str, object] = {key: value for key, value in fields.items() if key != "id"}
            self.update_user(request.path_params["user_id"], **changes)
        except (ControlError, ValueError) as exc:
            return control_error(exc)
        return JSONResponse({"ok": True})

    async def _control_delete_user(self, request: Request) -> JSONResponse:
        try:
            self.delete_user(request.path_params["user_id"])
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"ok": True})

    async def _control_object(self, request: Request, kind: str) -> JSONResponse:
        allowed = {"id", "display_name", "mail"} if kind == "contact" else {"id", "display_name"}
        try:
            fields = validate_control(_OBJECT_ADAPTER, await control_body(request), allowed)
            object_id, name = fields.get("id"), fields.get("display_name", "")
            if kind == "group":
                created = self.add_group(id=object_id, display_name=name)
            elif kind == "device":
                created = self.add_device(id=object_id, display_name=name)
            elif kind == "contact":
                created = self.add_contact(id=object_id, display_name=name, mail=fields.get("mail"))
            else:
                created = self.add_service_principal(id=object_id, display_name=name)
        except ControlError as exc:
            return control_error(exc)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"id": created})

    async def _control_add_group(self, request: Request) -> JSONResponse:
        return await self._control_object(request, "group")

    async def _control_add_device(self, request: Request) -> JSONResponse:
        return await self._control_object(request, "device")

    async def _control_add_contact(self, request: Request) -> JSONResponse:
        return await self._control_object(request, "contact")

    async def _control_add_service_principal(self, request: Request) -> JSONResponse:
        return await self._control_object(request, "service_principal")

    async def _control_members(self, request: Request) -> tuple[str, list[str]]:
        fields = validate_control(
            _MEMBER_ADAPTER, await control_body(request), _MemberFields.__optional_keys__
        )
        group_id = fields.get("group_id")
        if group_id is None:
            raise ControlError("group_id is required")
        member_ids = list(fields.get("member_ids", []))
        if "member_id" in fields:
            member_ids.append(fields["member_id"])
        return group_id, member_ids

    async def _control_add_members(self, request: Request) -> JSONResponse:
        try:
            group_id, member_ids = await self._control_members(request)
            self.add_members(group_id, member_ids)
        except (ControlError, ValueError) as exc:
            return control_error(exc)
        return JSONResponse({"ok": True})

    async def _control_remove_member(self, request: Request) -> JSONResponse:
        try:
            group_id, member_ids = await self._control_members(request)
            for member_id in member_ids:
                self.remove_member(group_id, member_id)
        except (ControlError, ValueError) as exc:
            return control_error(exc)
        return JSONResponse({"ok": True})

    async def _control_deny(self, request: Request) -> JSONResponse:
        try:
            fields = validate_control(_GROUP_REF_ADAPTER, await control_body(request), ("group_id",))
            self.deny_group(fields["group_id"])
        except (ControlError, ValueError) as exc:
            return control_error(exc)
        return JSONResponse({"ok": True})

    async def _control_set_page_cap(self, request: Request) -> JSONResponse:
        try:
            fields = validate_control(_PAGE_CAP_ADAPTER, await control_body(request), ("page_cap",))
        except ControlError as exc:
            return control_error(exc)
        if fields["page_cap"] < 1:
            return JSONResponse({"error": "page_cap must be at least 1"}, status_code=400)
        self.page_cap = fields["page_cap"]
        return JSONResponse({"page_cap": self.page_cap})

    async def _control_expire_delta_links(self, request: Request) -> JSONResponse:
        self.expire_delta_links()
        return JSONResponse({"ok": True})

    async def _control_number_assignments(self, request: Request) -> JSONResponse:
        return JSONResponse(self.number_assignments())

    async def _control_assign_numbers(self, request: Request) -> JSONResponse:
        """One assignment (an object, answered {"id"}) or many (a list, answered {"ids"}), all or none."""
        allowed = _NumberFields.__optional_keys__
        try:
            body = await control_body(request)
            items = body if isinstance(body, list) else [body]
            assignments = [validate_control(_NUMBER_ADAPTER, item, allowed) for item in items]
            ids = self.assign_numbers(assignments)
        except (ControlError, ValueError) as exc:
            return control_error(exc)
        return JSONResponse({"ids": ids} if isinstance(body, list) else {"id": ids[0]})

    async def _control_unassign_number(self, request: Request) -> JSONResponse:
        try:
            fields = validate_control(_NUMBER_REF_ADAPTER, await control_body(request), ("telephone_number",))
        except ControlError as exc:
            return control_error(exc)
        try:
            self.unassign_number(fields["telephone_number"])
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"ok": True})


# --- helpers -------------------------------------------------------------------------------------------


def _headers(reply: _Reply) -> list[tuple[bytes, bytes]]:
    return json_headers(reply.body, reply.headers, content_type=reply.content_type)


def _graph_headers(incoming: _Incoming) -> tuple[tuple[str, str], ...]:
    request_id = str(uuid.uuid4())
    return (
        ("request-id", request_id),
        ("client-request-id", incoming.client_request_id or request_id),
        ("odata-version", "4.0"),
    )


def _tuple(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _list(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)


def _nickname(display_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", display_name) or "group"


def _raw_dict(value: object) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("raw must be a dict with string keys")
    return dict(value)


def _user_value(keyword: str, value: object) -> object:
    """A user keyword's value as Graph stores it (None: unset), or ValueError."""
    if type(value) is str and keyword not in ("account_enabled", "business_phones", "extension_attributes"):
        return value  # the common case, first: bulk fixtures pass millions of these
    if keyword == "business_phones":
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("business_phones must be a list of strings")
        return list(value)
    if keyword == "extension_attributes":
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError("extension_attributes must be a dict")
        unknown = set(value) - set(_EXTENSION_KEYS)
        if unknown:
            raise ValueError(f"unknown extension attributes: {', '.join(sorted(map(str, unknown)))}")
        return {key: value.get(key) for key in _EXTENSION_KEYS}
    if keyword == "account_enabled":
        if not isinstance(value, bool):
            raise ValueError("account_enabled must be a bool")
        return value
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{keyword} must be a string")
    return value


def _basic_credentials(authorization: str | None) -> tuple[str | None, str | None]:
    """client_secret_basic: (client_id, secret) from an HTTP Basic header, else (None, None)."""
    if authorization is None:
        return None, None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None, None
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


_INVALID_SCOPE = (
    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
)


def _scope_error(scope: str, origin: str) -> tuple[int, str] | None:
    """Client credentials take exactly one scope: the resource (this emulator's origin) + "/.default"."""
    scopes = scope.split()
    if len(scopes) != 1:
        return (
            70011,
            _INVALID_SCOPE.format(scope=scope),
        )
    only = scopes[0]
    if not only.lower().endswith("/.default"):
        return (
            1002012,
            f"The provided value for scope {only} is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI).",
        )
    if only[: -len("/.default")].lower() != origin.lower():
        return (
            70011,
            _INVALID_SCOPE.format(scope=only),
        )
    return None


def _token_audiences(origin: str, tenant: str, tenant_id: str) -> list[str]:
    """The token endpoint URLs a client assertion may name as its audience (v2 and v1, tenant as sent)."""
    audiences: list[str] = []
    for name in dict.fromkeys((tenant, tenant_id)):
        audiences += [f"{origin}/{name}/oauth2/v2.0/token", f"{origin}/{name}/oauth2/token"]
    return audiences


def _load_certificate(pem: bytes) -> _Certificate:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValueError(f"certificate_pem is not a PEM certificate: {exc}") from exc
    public_key = certificate.public_key()
    if not isinstance(public_key, RSAPublicKey):
        raise ValueError(
            "Entra accepts only RSA certificates for app credentials (msal signs RS256/PS256); "
            "trustme issues ECDSA by default: use key_type=trustme.KeyType.RSA"
        )
    return _Certificate(
        public_key=public_key,
        sha1=certificate.fingerprint(hashes.SHA1()),  # noqa: S303 - x5t is a SHA-1 thumbprint by definition
        sha256=certificate.fingerprint(hashes.SHA256()),
    )


def _thumbprint(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return b64url_decode(value.rstrip("="))
    except (binascii.Error, ValueError):
        return None


def _assertion_problem(app: _App, assertion: str, audiences: list[str]) -> str | None:
    """Why a client assertion is refused (AADSTS700027-style text), or None if it proves the app."""
    certificate = app.certificate
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        hint = ""
        if assertion.startswith(("b'", 'b"')):
            # What msal's bytes assertion becomes in a form encoded with str() (httpx does that).
            hint = " It looks like a Python bytes literal: the client form-encoded bytes with str()."
        return (
            "Client assertion failed signature validation. "
            f"[Reason - The assertion is not a well-formed JWT.{hint}]"
        )
    algorithm = header.get("alg")
    if algorithm not in ("RS256", "PS256"):
        return (
            f"Client assertion failed signature validation. [Reason - Unsupported algorithm '{algorithm}'.]"
        )
    sha256 = _thumbprint(header.get("x5t#S256"))
    sha1 = _thumbprint(header.get("x5t"))
    if sha256 is None and sha1 is None:
        return (
            "Client assertion failed signature validation. [Reason - The assertion names no certificate: "
            "its header has neither 'x5t' nor 'x5t#S256'.]"
        )
    used = (sha256 or sha1 or b"").hex().upper()
    if (
        certificate is None
        or (sha256 is not None and sha256 != certificate.sha256)
        or (sha1 is not None and sha1 != certificate.sha1)
    ):
        return (
            "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of "
            f"key used by client: '{used}', Please visit the Azure Portal, Graph Explorer or directly use MS "
            f"Graph to see configured keys for app Id '{app.client_id}'.]"
        )
    try:
        claims = jwt.decode(
            assertion,
            certificate.public_key,
            algorithms=[algorithm],
            audience=audiences,
            issuer=app.client_id,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return "Client assertion is not within its valid time range. [Reason - The assertion has expired.]"
    except jwt.ImmatureSignatureError:
        return (
            "Client assertion is not within its valid time range. [Reason - The assertion is not yet valid.]"
        )
    except jwt.InvalidAudienceError:
        return (
            "The audience claim ('aud') of the client assertion is invalid: it must be the token endpoint, "
            f"'{audiences[0]}'."
        )
    except jwt.InvalidIssuerError:
        return "The issuer claim ('iss') of the client assertion must be the application's client ID."
    except jwt.InvalidSignatureError:
        return (
            "Client assertion contains an invalid signature. [Reason - The provided signature value did not "
            f"match the expected signature value., Thumbprint of key used by client: '{used}']"
        )
    except jwt.PyJWTError as exc:
        return f"Client assertion failed validation. [Reason - {exc}]"
    if claims.get("sub") != app.client_id:
        return "The subject claim ('sub') of the client assertion must be the application's client ID."
    return None


_ID_EQ = re.compile(r"\s*id\s+eq\s+'([^']+)'\s*", re.IGNORECASE)
_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
# Characters left as they are in nextLink query values, so links read like Graph's ($select=id,mail).
_LINK_SAFE = ",$'()*:@/"


def _id_filter(raw: str) -> tuple[str, ...] | None:
    """The IDs of `id eq '<id>' or id eq '<id>' ...` (the only $filter group delta takes), else None."""
    ids: list[str] = []
    for part in _OR.split(raw.strip()):
        match = _ID_EQ.fullmatch(part)
        if match is None:
            return None
        ids.append(match.group(1))
    return tuple(ids) if ids else None


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


# --- Teams number assignment helpers ---------------------------------------------------------------------


def _teams_number(value: object) -> str:
    """A telephone number as Teams records it: always with a "+" prefix (ValueError if unusable)."""
    if not isinstance(value, str) or not value.strip("+") or any(c.isspace() for c in value):
        raise ValueError(f"telephone_number must be a number like '+14255550100', not {value!r}")
    return value if value.startswith("+") else f"+{value}"


def _enum_value(name: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _copy_record(record: Mapping[str, object]) -> dict[str, object]:
    return {key: list(value) if isinstance(value, list) else value for key, value in record.items()}


_FILTER_STRING = r"'((?:[^']|'')*)'"
_FILTER_EQ = re.compile(rf"\s*([A-Za-z][A-Za-z0-9]*)\s+eq\s+{_FILTER_STRING}\s*", re.IGNORECASE)
_FILTER_ANY = re.compile(
    rf"\s*([A-Za-z][A-Za-z0-9]*)/any\(\s*([A-Za-z_]\w*)\s*:\s*\2\s+eq\s+{_FILTER_STRING}\s*\)\s*",
    re.IGNORECASE,
)
_FILTER_OPEN = re.compile(r"\s*\(")
_FILTER_CLOSE = re.compile(r"\)\s*")
_FILTER_OR = re.compile(r"or\s+", re.IGNORECASE)
_FILTER_AND = re.compile(r"and\s+", re.IGNORECASE)
_FilterClause = tuple[str, frozenset[str], bool]
"""(property, lower-cased values any of which matches, whether the property is a collection)."""


def _filter_property(name: str, *, collection: bool) -> str:
    canonical = _NUMBER_PROPS_BY_LOWER.get(name.lower())
    if canonical is None:
        raise ValueError(f"Could not find a property named '{name}' on type '{_NUMBER_TYPE_NAME}'.")
    if canonical in _NUMBER_UNFILTERABLE:
        raise ValueError(
            f"The property '{canonical}' cannot be used in $filter: number assignments can be filtered on "
            "every property except id and city."
        )
    if collection and canonical not in _NUMBER_COLLECTIONS:
        raise ValueError(f"'{canonical}' is not a collection: use {canonical} eq '<value>'.")
    if not collection and canonical in _NUMBER_COLLECTIONS:
        raise ValueError(f"'{canonical}' is a collection: use {canonical}/any(c:c eq '<value>').")
    return canonical


def _number_filter(raw: str) -> list[_FilterClause]:
    """Pure: the clauses of a number assignment $filter, or ValueError saying what is wrong.

    Takes `<property> eq '<value>'`, `<collection>/any(c:c eq '<value>')` and a parenthesised group of
    `<property> eq '<value>'` joined by `or` (all on one property), joined by `and`; keywords and property
    names in any case, '' for a quote inside a value.
    """
    unsupported = (
        f"Unsupported $filter '{raw}': number assignments take <property> eq '<value>' clauses joined by "
        "'and', where one clause may be a parenthesised group of eq comparisons of one property joined by "
        "'or', or <collection>/any(c:c eq '<value>')."
    )
    clauses: list[_FilterClause] = []
    pos = 0
    while True:
        opened = _FILTER_OPEN.match(raw, pos)
        if opened is not None:
            pos = opened.end()
            prop: str | None = None
            values: set[str] = set()
            while True:
                match = _FILTER_EQ.match(raw, pos)
                if match is None:
                    raise ValueError(unsupported)
                name = _filter_property(match.group(1), collection=False)
                if prop is not None and name != prop:
                    raise ValueError(
                        f"Unsupported $filter '{raw}': an 'or' group must compare one property ({prop}), "
                        f"not {name} too."
                    )
                prop = name
                values.add(match.group(2).replace("''", "'").lower())
                pos = match.end()
                alternative = _FILTER_OR.match(raw, pos)
                if alternative is None:
                    break
                pos = alternative.end()
            closed = _FILTER_CLOSE.match(raw, pos)
            if closed is None or prop is None:
                raise ValueError(unsupported)
            pos = closed.end()
            clauses.append((prop, frozenset(values), False))
        elif (match := _FILTER_ANY.match(raw, pos)) is not None:
            name = _filter_property(match.group(1), collection=True)
            clauses.append((name, frozenset({match.group(3).replace("''", "'").lower()}), True))
            pos = match.end()
        elif (match := _FILTER_EQ.match(raw, pos)) is not None:
            name = _filter_property(match.group(1), collection=False)
            clauses.append((name, frozenset({match.group(2).replace("''", "'").lower()}), False))
            pos = match.end()
        else:
            raise ValueError(unsupported)
        if pos == len(raw):
            return clauses
        conjunction = _FILTER_AND.match(raw, pos)
        if conjunction is None:
            raise ValueError(unsupported)
        pos = conjunction.end()


def _number_matches(record: Mapping[str, object], clauses: Sequence[_FilterClause]) -> bool:
    """Pure: whether a record passes every clause (values compared case-insensitively; null never matches)."""
    for prop, values, collection in clauses:
        value = record.get(prop)
        if collection:
            if not isinstance(value, list) or not any(str(item).lower() in values for item in value):
                return False
        elif value is None or str(value).lower() not in values:
            return False
    return True
