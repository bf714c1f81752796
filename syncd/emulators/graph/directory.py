"""The Graph emulator's directory objects: the five object types (users, groups, devices, org contacts,
service principals) with their properties and the values Graph shows when they are unset, live objects and
the tombstones of deleted ones, how objects look under a $select, and how the fixture methods' keywords
become user properties.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

_EXTENSION_KEYS = tuple(f"extensionAttribute{i}" for i in range(1, 16))


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
        "employeeType": None,
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
    # The attributes `graph.filter` may name (onPremisesSyncEnabled follows on_premises_immutable_id).
    "department": "department",
    "job_title": "jobTitle",
    "employee_type": "employeeType",
    "company_name": "companyName",
    "office_location": "officeLocation",
    "usage_location": "usageLocation",
    "country": "country",
    "city": "city",
    "user_type": "userType",
    "mail": "mail",
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


_stamp: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """Now as Graph's createdDateTime, formatted once per second (bulk fixtures create many objects)."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp[1]


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
