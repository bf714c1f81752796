"""The SmartCommunicator emulator's controls: the methods tests call (seed and read agents and their data,
the request log, scripted faults, token revocation, the account's customer ID and credentials, reset), and
the control API under `/_emulator/` (no auth, never logged) that adds agents, their data, the registries
and the account to the shared control routes, for a test or a tool in another process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Required

import pydantic
from starlette.responses import JSONResponse
from starlette.routing import Route
from typing_extensions import TypedDict  # pydantic validates only this TypedDict before Python 3.12

from syncd.emulators.common import ControlError, Faults, ScriptedFault, control_body, validate_control
from syncd.emulators.smartcomm.auth import _Auth
from syncd.emulators.smartcomm.store import AgentData, AgentStatus, _Agent, _AgentStore, is_e164
from syncd.emulators.smartcomm.wire import RecordedRequest

if TYPE_CHECKING:
    from starlette.requests import Request


class _AgentFields(TypedDict, total=False):
    """Body of POST /_emulator/agents: the keyword arguments of `SmartCommEmulator.add_agent`."""

    user_object_id: Required[str]
    tenant_id: Required[str]
    phone_number: Required[str]
    upn: str | None
    consistency_id: str | None
    status: AgentStatus


class _AgentDataFields(TypedDict, total=False):
    """Body of PUT /_emulator/agents/{user_object_id}/data; a key left out is left as it is."""

    notes: str
    calls: int


class _Registries(TypedDict, total=False):
    """Body of PUT /_emulator/registries; a key left out leaves that registry as it is."""

    registered_tenants: list[str] | None
    ten_dlc_numbers: list[str] | None


class _Account(TypedDict, total=False):
    """Body of PUT /_emulator/account; a key left out leaves that part of the account as it is."""

    customer_id: int
    username: str
    password: str


_AGENT_FIELDS_ADAPTER = pydantic.TypeAdapter(_AgentFields)
_ACCOUNT_ADAPTER = pydantic.TypeAdapter(_Account)
_REGISTRIES_ADAPTER = pydantic.TypeAdapter(_Registries)
_AGENT_DATA_ADAPTER = pydantic.TypeAdapter(_AgentDataFields)


class _ControlRoutes(_AgentStore, _Auth):
    """`SmartCommEmulator`'s public methods and the routes it mounts under /_emulator."""

    # Set by `SmartCommEmulator.__init__`, declared here so that this mixin type-checks on its own.
    _initial_token_lifetime_s: float
    _initial_account: tuple[int, str, str]
    _initial_require_json: bool
    require_json: bool

    # --- public controls -------------------------------------------------------------------------------

    def inject(self, fault: ScriptedFault) -> None:
        """Queue a one-shot fault; the first queued fault matching a request hits it."""
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

    def revoke_tokens(self) -> None:
        """Every token issued so far answers 401 from now on (tokens issued later are fine)."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def add_agent(
        self,
        *,
        user_object_id: str,
        tenant_id: str,
        phone_number: str,
        upn: str | None = None,
        consistency_id: str | None = None,
        status: AgentStatus = "active",
    ) -> str:
        """Seed an agent directly (no request log entry, no registry checks); return its agent_id.

        Raises ValueError if the object ID has a record already, or if an active agent would share a
        phone number, UPN or consistency GUID with another active agent.
        """
        with self._lock:
            if user_object_id in self._by_object:
                raise ValueError(f"an agent with user_object_id {user_object_id!r} exists already")
            if status == "active":
                if phone_number in self._active_by_phone:
                    raise ValueError(f"phone number {phone_number!r} is held by an active agent")
                if upn is not None and upn.casefold() in self._active_by_upn:
                    raise ValueError(f"UPN {upn!r} is held by an active agent")
                if consistency_id is not None and consistency_id in self._active_by_consistency:
                    raise ValueError(f"consistency_id {consistency_id!r} is held by an active agent")
            agent = _Agent(
                agent_id=self._new_agent_id(),
                user_object_id=user_object_id,
                tenant_id=tenant_id,
                phone_number=phone_number,
                upn=upn,
                consistency_id=consistency_id,
                status=status,
            )
            self._insert(agent)
            return agent.agent_id

    def set_account(
        self, *, customer_id: int | None = None, username: str | None = None, password: str | None = None
    ) -> None:
        """Change the account: its customer ID (the one its API user's tokens are for: any other answers 403
        from now on, as for a customer these credentials are not registered with), or its API user's
        username or password (rotated: authentication with the old ones answers 401). Tokens issued before
        keep the customer ID they were issued for."""
        with self._lock:
            if customer_id is not None:
                self.customer_id = customer_id
            if username is not None:
                self.username = username
            if password is not None:
                self._password = password

    def set_agent_data(
        self, user_object_id: str, *, notes: str | None = None, calls: int | None = None
    ) -> dict[str, object]:
        """Set the data the service keeps for the active agent of `user_object_id` (`AgentData`: notes, a
        count of calls); a value left out stays as it is. Returns the data; ValueError if there is no such
        active agent."""
        with self._lock:
            agent = self._by_object.get(user_object_id)
            if agent is None or agent.status != "active":
                raise ValueError(f"no active agent with user_object_id {user_object_id!r}")
            data = self._data.setdefault(user_object_id, AgentData())
            if notes is not None:
                data.notes = notes
            if calls is not None:
                if calls < 0:
                    raise ValueError("calls must not be negative")
                data.calls = calls
            return data.snapshot()

    def agent_data(self, user_object_id: str) -> dict[str, object]:
        """The data kept under `user_object_id` (empty notes and no calls when there is none)."""
        with self._lock:
            return self._data.get(user_object_id, AgentData()).snapshot()

    def register_tenants(self, tenant_ids: Iterable[str]) -> None:
        """Register Entra tenants with the account (no-op while every tenant counts as registered)."""
        with self._lock:
            if self.registered_tenants is not None:
                self.registered_tenants.update(tenant_ids)

    def register_numbers(self, numbers: Iterable[str]) -> None:
        """10DLC-register numbers (E.164; ValueError for another form, and then none is registered);
        no-op while every number counts as registered."""
        checked = _e164_numbers(numbers)
        with self._lock:
            if self.ten_dlc_numbers is not None:
                self.ten_dlc_numbers.update(checked)

    def unregister_numbers(self, numbers: Iterable[str]) -> None:
        """Take numbers out of the 10DLC registry (a test of the unregistered path)."""
        with self._lock:
            if self.ten_dlc_numbers is not None:
                self.ten_dlc_numbers.difference_update(numbers)

    def agents(self) -> list[dict[str, object]]:
        """Every agent (active and offboarded) with every field, in order of creation."""
        with self._lock:
            return [agent.snapshot() for agent in self._by_id.values()]

    def reset(self) -> None:
        """Back to the state after construction, except that issued tokens stay valid.

        Clears agents, the request log (seq restarts at 1), faults, scripted faults and revocations, and
        restores the account (customer ID, username, password), the registries, the token lifetime,
        `require_json` and the RNG seed given to the constructor.
        """
        with self._lock:
            self.customer_id, self.username, self._password = self._initial_account
            self._clear_state()
            for token in self._tokens.values():
                token.revoked = False
            self.faults = Faults()
            self.token_lifetime_s = self._initial_token_lifetime_s
            self.require_json = self._initial_require_json

    # --- the control API --------------------------------------------------------------------------------

    def _control_routes(self) -> list[Route]:
        return [
            *self.shared_control_routes(),
            Route("/agents", self._control_get_agents, methods=["GET"]),
            Route("/agents", self._control_add_agent, methods=["POST"]),
            Route("/agents/{user_object_id}/data", self._control_get_agent_data, methods=["GET"]),
            Route("/agents/{user_object_id}/data", self._control_set_agent_data, methods=["PUT"]),
            Route("/registries", self._control_set_registries, methods=["PUT"]),
            Route("/account", self._control_set_account, methods=["PUT"]),
        ]

    async def _control_set_account(self, request: Request) -> JSONResponse:
        try:
            account = validate_control(
                _ACCOUNT_ADAPTER, await control_body(request), _Account.__optional_keys__
            )
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.set_account(**account)
        with self._lock:
            return JSONResponse({"customer_id": self.customer_id, "username": self.username})

    async def _control_get_agents(self, request: Request) -> JSONResponse:
        return JSONResponse(self.agents())

    async def _control_add_agent(self, request: Request) -> JSONResponse:
        try:
            fields = validate_control(
                _AGENT_FIELDS_ADAPTER,
                await control_body(request),
                _AgentFields.__required_keys__ | _AgentFields.__optional_keys__,
            )
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            agent_id = self.add_agent(**fields)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"agent_id": agent_id})

    async def _control_get_agent_data(self, request: Request) -> JSONResponse:
        return JSONResponse(self.agent_data(request.path_params["user_object_id"]))

    async def _control_set_agent_data(self, request: Request) -> JSONResponse:
        try:
            fields = validate_control(
                _AGENT_DATA_ADAPTER, await control_body(request), _AgentDataFields.__optional_keys__
            )
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            data = self.set_agent_data(request.path_params["user_object_id"], **fields)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(data)

    async def _control_set_registries(self, request: Request) -> JSONResponse:
        try:
            registries = validate_control(
                _REGISTRIES_ADAPTER, await control_body(request), _Registries.__optional_keys__
            )
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with self._lock:
            if "registered_tenants" in registries:
                tenants = registries["registered_tenants"]
                self.registered_tenants = None if tenants is None else set(tenants)
            if "ten_dlc_numbers" in registries:
                numbers = registries["ten_dlc_numbers"]
                try:
                    self.ten_dlc_numbers = None if numbers is None else set(_e164_numbers(numbers))
                except ValueError as exc:
                    return JSONResponse({"error": str(exc)}, status_code=400)
            current = {
                "registered_tenants": _sorted_or_none(self.registered_tenants),
                "ten_dlc_numbers": _sorted_or_none(self.ten_dlc_numbers),
            }
        return JSONResponse(current)


def _e164_numbers(numbers: Iterable[str]) -> frozenset[str]:
    """The numbers, checked: the 10DLC registry holds E.164 numbers only (ValueError for another form)."""
    checked = frozenset(numbers)
    wrong = sorted(n for n in checked if not is_e164(n))
    if wrong:
        raise ValueError(f"10DLC numbers must be E.164 (+ and digits): {', '.join(wrong[:5])}")
    return checked


def _sorted_or_none(values: set[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)
