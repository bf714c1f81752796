"""The SmartCommunicator agents endpoints in the emulator: list, get by `key_id`, onboard (POST, with the
published onboarding rules and their 400 messages, checked in their order), PATCH (moving the agent's data
with a new `user_object_id` when `transfer_data` is true) and DELETE (offboard, discarding the data), each
answering in the error body shape of the real endpoint.
"""

from __future__ import annotations

from syncd.emulators.smartcomm.store import KeyId, _Agent, _AgentStore, _differ, _same_upn
from syncd.emulators.smartcomm.wire import (
    _AGENT_NOT_FOUND,
    _INVALID_BODY,
    _INVALID_KEY_ID,
    _NO_RECORDS,
    _not_found,
    _onboard_error,
    _parse_json,
    _Reply,
    _status_error,
)

_GET_KEYS = frozenset({"user_object_id", "agent_id", "upn", "phone_number", "consistency_id"})
_WRITE_KEYS = frozenset({"user_object_id", "agent_id", "consistency_id"})
_PATCH_STRING_FIELDS = ("phone_number", "upn", "user_object_id", "tenant_id", "consistency_id")


class _Rejected(Exception):
    """A PATCH/POST body that breaks a rule; carries the reply to send."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _optional_string(body: dict[str, object], name: str) -> str | None:
    """An optional string field of an onboarding body; null or "" count as absent."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Rejected(_onboard_error(_INVALID_BODY))
    return value


def _single_view(agent: _Agent) -> dict[str, object]:
    """The single-agent GET (and PATCH 200) body; offboarded agents read as "orphaned" there."""
    view: dict[str, object] = {}
    if agent.consistency_id is not None:
        view["consistency_id"] = agent.consistency_id
    view["user_object_id"] = agent.user_object_id
    view["tenant_id"] = agent.tenant_id
    view["phone_number"] = agent.phone_number
    if agent.upn is not None:
        view["upn"] = agent.upn
    view["status"] = "active" if agent.status == "active" else "orphaned"
    return view


def _list_view(agent: _Agent) -> dict[str, object]:
    """One item of the agents list: the documented list fields (no UPN), status active/offboarded."""
    view: dict[str, object] = {"user_object_id": agent.user_object_id, "tenant_id": agent.tenant_id}
    if agent.consistency_id is not None:
        view["consistency_id"] = agent.consistency_id
    view["phone_number"] = agent.phone_number
    view["status"] = agent.status
    return view


class _AgentsApi(_AgentStore):
    """The agents endpoints, called with the lock held once the token and the customer ID passed."""

    def _list_agents(self) -> _Reply:
        if not self._by_id:
            return _not_found(_NO_RECORDS)
        return _Reply(200, {"data": [_list_view(agent) for agent in self._by_id.values()], "error": None})

    @staticmethod
    def _key_id(query: dict[str, str], allowed: frozenset[str]) -> KeyId | None:
        key_id = query.get("key_id", "user_object_id")
        if key_id not in allowed:
            return None
        if key_id == "agent_id":
            return "agent_id"
        if key_id == "upn":
            return "upn"
        if key_id == "phone_number":
            return "phone_number"
        if key_id == "consistency_id":
            return "consistency_id"
        return "user_object_id"

    def _get_agent(self, key: str, query: dict[str, str]) -> _Reply:
        key_id = self._key_id(query, _GET_KEYS)
        if key_id is None:
            return _status_error(_INVALID_KEY_ID)
        agent = self._find(key_id, key)
        if agent is None:
            return _not_found(_NO_RECORDS)
        return _Reply(200, _single_view(agent))

    def _onboard(self, raw: bytes) -> _Reply:
        try:
            return self._onboard_checked(raw)
        except _Rejected as rejected:
            return rejected.reply

    def _onboard_checked(self, raw: bytes) -> _Reply:
        body = _parse_json(raw)
        if not isinstance(body, dict):
            return _onboard_error(_INVALID_BODY)
        required: dict[str, str] = {}
        for name in ("user_object_id", "tenant_id", "phone_number"):
            value = body.get(name)
            if value is None or value == "":
                return _onboard_error(f"{name} is required")
            if not isinstance(value, str):
                return _onboard_error(_INVALID_BODY)
            required[name] = value
        object_id, tenant_id, phone = (
            required["user_object_id"],
            required["tenant_id"],
            required["phone_number"],
        )
        upn = _optional_string(body, "upn")
        consistency = _optional_string(body, "consistency_id")

        if not self._tenant_registered(tenant_id):
            return _onboard_error("Tenant ID is not registered with SmartCommunicator")
        if not self._number_registered(phone):
            return _onboard_error("TN is not part of the list of numbers that are already 10DLC registered")

        holder = self._active_by_phone.get(phone)
        if holder is not None:
            if holder.user_object_id == object_id:
                return _onboard_error("TN exists with the same Azure Object ID")
            if consistency is not None and holder.consistency_id == consistency:
                return _onboard_error("TN exists with the same MSDS Consistency GUID")
            if _differ(holder.consistency_id, consistency):
                return _onboard_error("TN is already registered with a different MSDS Consistency GUID")
            if holder.upn is not None and upn is not None and not _same_upn(holder.upn, upn):
                return _onboard_error("TN is already registered with a different UPN")
            return _onboard_error("TN is already registered with a different Azure Object ID")

        holder = self._active_by_upn.get(upn.casefold()) if upn is not None else None
        if holder is not None:
            if holder.user_object_id == object_id:
                return _onboard_error("UPN exists with the same Azure Object ID")
            if consistency is not None and holder.consistency_id == consistency:
                return _onboard_error("UPN exists with the same MSDS Consistency GUID")
            if _differ(holder.consistency_id, consistency):
                return _onboard_error("UPN is already registered with a different MSDS Consistency GUID")
            if holder.tenant_id != tenant_id:
                return _onboard_error("UPN is already registered with SmartCommunicator")
            return _onboard_error("UPN is already registered with a different Azure Object ID")

        holder = self._active_by_consistency.get(consistency) if consistency is not None else None
        if holder is not None and holder.user_object_id != object_id:
            return _onboard_error("MSDS Consistency GUID already exists")

        existing = self._by_object.get(object_id)
        if existing is not None and existing.status == "active":
            if _differ(existing.consistency_id, consistency):
                return _onboard_error("Azure Object ID exists with a different MSDS Consistency GUID")
            return _onboard_error("Azure Object ID already exists")

        self._data.pop(object_id, None)  # a new agent starts with no data of its own
        if existing is not None:
            # One record per object ID: onboarding an offboarded object re-activates its record.
            existing.tenant_id, existing.phone_number = tenant_id, phone
            existing.upn, existing.consistency_id = upn, consistency
            existing.status = "active"
            self._hold(existing)
        else:
            self._insert(
                _Agent(
                    agent_id=self._new_agent_id(),
                    user_object_id=object_id,
                    tenant_id=tenant_id,
                    phone_number=phone,
                    upn=upn,
                    consistency_id=consistency,
                    status="active",
                )
            )
        return _Reply(200, {"data": {"message": "Onboarded Successfully"}, "error": None}, applied=True)

    def _patch_agent(self, key: str, query: dict[str, str], raw: bytes) -> _Reply:
        key_id = self._key_id(query, _WRITE_KEYS)
        if key_id is None:
            return _status_error(_INVALID_KEY_ID)
        body = _parse_json(raw)
        if not isinstance(body, dict):
            return _status_error(_INVALID_BODY)
        changes: dict[str, str] = {}
        transfer = False
        for name, value in body.items():
            if name == "transfer_data":
                if not isinstance(value, bool):
                    return _status_error(_INVALID_BODY)
                transfer = value
            elif name in _PATCH_STRING_FIELDS:
                if not isinstance(value, str) or not value:
                    return _status_error(_INVALID_BODY)
                changes[name] = value
            else:
                return _status_error(_INVALID_BODY)

        agent = self._find_active(key_id, key)
        if agent is None:
            return _not_found(_AGENT_NOT_FOUND)

        # Only fields that really change are checked, so a PATCH that changes nothing always succeeds.
        phone = changes.get("phone_number", agent.phone_number)
        tenant = changes.get("tenant_id", agent.tenant_id)
        upn = changes.get("upn", agent.upn)
        consistency = changes.get("consistency_id", agent.consistency_id)
        object_id = changes.get("user_object_id", agent.user_object_id)
        if phone != agent.phone_number and not self._number_registered(phone):
            return _status_error("Phone number is not registered with SmartCommunicator")
        if tenant != agent.tenant_id and not self._tenant_registered(tenant):
            return _status_error("Tenant ID is not registered with SmartCommunicator")
        holder = self._active_by_phone.get(phone)
        if holder is not None and holder is not agent:
            return _status_error("TN is already registered with a different Azure Object ID")
        holder = self._active_by_upn.get(upn.casefold()) if upn is not None else None
        if holder is not None and holder is not agent:
            return _status_error("UPN is already registered with a different Azure Object ID")
        holder = self._active_by_consistency.get(consistency) if consistency is not None else None
        if holder is not None and holder is not agent:
            return _status_error("MSDS Consistency GUID already exists")
        other = self._by_object.get(object_id)
        if other is not None and other is not agent:
            return _status_error("Azure Object ID already exists")

        self._release(agent)
        del self._by_object[agent.user_object_id]
        if transfer and object_id != agent.user_object_id and agent.user_object_id in self._data:
            self._data[object_id] = self._data.pop(agent.user_object_id)
        agent.phone_number, agent.tenant_id, agent.upn = phone, tenant, upn
        agent.consistency_id, agent.user_object_id = consistency, object_id
        self._by_object[agent.user_object_id] = agent
        self._hold(agent)
        return _Reply(200, _single_view(agent), applied=True)

    def _delete_agent(self, key: str, query: dict[str, str]) -> _Reply:
        key_id = self._key_id(query, _WRITE_KEYS)
        if key_id is None:
            return _status_error(_INVALID_KEY_ID)
        agent = self._find(key_id, key)
        if agent is None:
            return _not_found(_AGENT_NOT_FOUND)
        if agent.status != "active":
            return _status_error("Azure Object ID is not registered with SmartCommunicator")
        self._release(agent)
        agent.status = "offboarded"
        self._data.pop(agent.user_object_id, None)
        return _Reply(200, {"status": "ok"}, applied=True)
