"""The Graph emulator's control API under `/_emulator/` (no auth, never logged): the fixture methods, a whole
tenant built by `syncd.emulators.tenant.build_tenant`, an app's granted permissions, hidden memberships, the
page cap and delta link expiry, for a test or a tool in another process. Bodies are checked against
TypedDicts with pydantic.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import anyio
import pydantic
from starlette.responses import JSONResponse
from starlette.routing import Route
from typing_extensions import TypedDict  # pydantic validates only this TypedDict before Python 3.12

from syncd.emulators.common import ControlError, control_body, control_error, field_names, validate_control
from syncd.emulators.graph.credentials import DEFAULT_APP_ROLES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from syncd.emulators.graph.fixtures import _Fixtures
from syncd.emulators.graph.teams import _TeamsNumbers
from syncd.emulators.tenant import TenantSpec, build_tenant

if TYPE_CHECKING:
    from starlette.requests import Request


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
    department: str | None
    job_title: str | None
    employee_type: str | None
    company_name: str | None
    office_location: str | None
    usage_location: str | None
    country: str | None
    city: str | None
    user_type: str | None
    mail: str | None


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


class _Roles(TypedDict):
    """Body of PUT /_emulator/apps/{client_id}/roles: the app's application permissions, all of them."""

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
_OBJECT_ADAPTER = pydantic.TypeAdapter(_ObjectFields)
_MEMBER_ADAPTER = pydantic.TypeAdapter(_MemberFields)
_APP_ADAPTER = pydantic.TypeAdapter(_AppFields)
_ROLES_ADAPTER = pydantic.TypeAdapter(_Roles)
_GROUP_REF_ADAPTER = pydantic.TypeAdapter(_GroupRef)
_PAGE_CAP_ADAPTER = pydantic.TypeAdapter(_PageCap)
_NUMBER_ADAPTER = pydantic.TypeAdapter(_NumberFields)
_NUMBER_REF_ADAPTER = pydantic.TypeAdapter(_NumberRef)


class _ControlRoutes(_TeamsNumbers, _Fixtures):
    """The routes `GraphEmulator` mounts under /_emulator, besides `shared_control_routes()`."""

    def _control_routes(self) -> list[Route]:
        return [
            *self.shared_control_routes(),
            Route("/tenant", self._control_tenant, methods=["POST"]),
            Route("/apps", self._control_register_app, methods=["POST"]),
            Route("/apps/{client_id}/roles", self._control_get_roles, methods=["GET"]),
            Route("/apps/{client_id}/roles", self._control_set_roles, methods=["PUT"]),
            Route("/apps/{client_id}/roles/{role}", self._control_revoke_role, methods=["DELETE"]),
            Route("/users", self._control_add_users, methods=["POST"]),
            Route("/users/{user_id}", self._control_update_user, methods=["PATCH"]),
            Route("/users/{user_id}", self._control_delete_user, methods=["DELETE"]),
            Route("/groups", self._control_add_group, methods=["POST"]),
            Route("/groups/{group_id}", self._control_delete_group, methods=["DELETE"]),
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

    async def _control_get_roles(self, request: Request) -> JSONResponse:
        try:
            roles = self.app_roles(request.path_params["client_id"])
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"roles": roles})

    async def _control_set_roles(self, request: Request) -> JSONResponse:
        """Grant exactly these application permissions (the others are withdrawn)."""
        client_id = request.path_params["client_id"]
        try:
            fields = validate_control(_ROLES_ADAPTER, await control_body(request), ("roles",))
        except ControlError as exc:
            return control_error(exc)
        try:
            self.set_app_roles(client_id, fields["roles"])
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"roles": self.app_roles(client_id)})

    async def _control_revoke_role(self, request: Request) -> JSONResponse:
        """Withdraw one application permission (its admin consent); not granted is fine."""
        client_id, role = request.path_params["client_id"], request.path_params["role"]
        try:
            self.set_app_roles(client_id, set(self.app_roles(client_id)) - {role})
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"roles": self.app_roles(client_id)})

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

    async def _control_delete_group(self, request: Request) -> JSONResponse:
        try:
            self.delete_group(request.path_params["group_id"])
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"ok": True})

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
