"""The Graph emulator's public controls: the fixture methods that fill and change the directory (users,
groups and other objects, memberships, app registrations) directly, not through a request, and the request
log, scripted faults, token revocation, delta link expiry and reset.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from syncd.emulators.common import Faults, ScriptedFault
from syncd.emulators.graph.credentials import (
    DEFAULT_APP_ROLES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    _App,
    _load_certificate,
)
from syncd.emulators.graph.directory import (
    _CONTACT,
    _DEVICE,
    _GROUP,
    _SERVICE_PRINCIPAL,
    _USER,
    _USER_KEYWORDS,
    RAW_OMIT,
    _nickname,
    _Object,
    _raw_dict,
    _user_value,
)
from syncd.emulators.graph.state import _Change, _DirectoryState
from syncd.emulators.graph.wire import RecordedRequest


class _Fixtures(_DirectoryState):
    """`GraphEmulator`'s public methods, but for the Teams number ones (`_TeamsNumbers`)."""

    # Set by `GraphEmulator.__init__`, declared here so that this mixin type-checks on its own.
    _initial_token_lifetime_s: float
    _initial_page_cap: int
    _initial_settings: tuple[float, float | None, bool, int | None]
    delta_link_lifetime_s: float | None
    throttle: bool
    resource_units_per_10s: int | None

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

    def set_app_roles(self, client_id: str, roles: Iterable[str]) -> None:
        """Grant an app exactly these application permissions (admin consent given or withdrawn): tokens
        issued from now on carry them in their `roles` claim; tokens issued before keep theirs, as in Entra.
        Raises ValueError for an app that is not registered."""
        with self._lock:
            app = self._apps.get(client_id.lower())
            if app is None:
                raise ValueError(f"no app {client_id!r}")
            self._apps[client_id.lower()] = dataclasses.replace(app, roles=frozenset(roles))

    def app_roles(self, client_id: str = DEFAULT_CLIENT_ID) -> list[str]:
        """The application permissions an app is granted, sorted; ValueError for an unregistered app."""
        with self._lock:
            app = self._apps.get(client_id.lower())
            if app is None:
                raise ValueError(f"no app {client_id!r}")
            return sorted(app.roles)

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
        department: str | None = None,
        job_title: str | None = None,
        employee_type: str | None = None,
        company_name: str | None = None,
        office_location: str | None = None,
        usage_location: str | None = None,
        country: str | None = None,
        city: str | None = None,
        user_type: str | None = None,
        mail: str | None = None,
    ) -> str:
        """Create a user; return its object ID.

        `extension_attributes`: keys "extensionAttribute1".."extensionAttribute15"
        (onPremisesExtensionAttributes; unset ones read null). `raw`: extra or overriding JSON properties
        served verbatim (bad-data tests: wrong types and the like). `department` .. `mail`: the profile
        attributes a scoping filter reads (`user_type` is "Member" unless given; onPremisesSyncEnabled
        follows `on_premises_immutable_id`).
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
                    "department": department,
                    "job_title": job_title,
                    "employee_type": employee_type,
                    "company_name": company_name,
                    "office_location": office_location,
                    "usage_location": usage_location,
                    "country": country,
                    "city": city,
                    "user_type": user_type,
                    "mail": mail,
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
            if changed:
                before = _Object(obj.id, obj.kind, obj.props, obj.created)
                before.raw = obj.raw
                self._remember(lambda at: _Change(at, "props", id, before=before))
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

    def phone_numbers(self) -> list[str]:
        """Every phone value the directory holds, as stored (any form, garbage included): users'
        businessPhones, mobilePhone and onPremisesExtensionAttributes values (`raw` ones too), and the
        assigned Teams numbers. For a test whose SmartCommunicator registry follows the directory."""
        values: list[str] = []
        with self._lock:
            for obj in self._objects.values():
                if obj.kind is not _USER:
                    continue
                for source in (obj.props, obj.raw or {}):
                    business = source.get("businessPhones")
                    if isinstance(business, list):
                        values += [v for v in business if isinstance(v, str)]
                    mobile = source.get("mobilePhone")
                    if isinstance(mobile, str):
                        values.append(mobile)
                    extensions = source.get("onPremisesExtensionAttributes")
                    if isinstance(extensions, dict):
                        values += [v for v in extensions.values() if isinstance(v, str)]
            values += list(self._numbers)
        return values

    def expire_delta_links(self) -> None:
        """Every delta link (and delta nextLink) issued so far answers 410 from now on."""
        with self._lock:
            self._expire_deltas()

    def reset(self) -> None:
        """Back to the state after construction, except that issued access tokens stay valid.

        Clears objects, memberships, Teams number assignments, apps (the default app is registered again),
        the request log (seq restarts at 1), faults, scripted faults, revocations, throttling budgets and
        delta state (old delta links answer 410), and restores the token lifetime, page cap, advanced-query
        lag, delta link lifetime, throttling settings and RNG seed given to the constructor. The Graph
        resource and the clock stay.
        """
        with self._lock:
            self._clear_state()
            for token in self._tokens.values():
                token.revoked = False
            self.faults = Faults()
            self.token_lifetime_s = self._initial_token_lifetime_s
            self.page_cap = self._initial_page_cap
            lag, lifetime, throttle, units = self._initial_settings
            self.eventual_lag_s, self.delta_link_lifetime_s = lag, lifetime
            self.throttle, self.resource_units_per_10s = throttle, units
            self._expire_deltas()
