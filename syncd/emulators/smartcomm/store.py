"""The SmartCommunicator emulator's agents and registries: agent records (one per Azure object ID, active or
offboarded), the indexes of what an active agent holds exclusively (phone number, UPN, consistency GUID), the
registered tenants and 10DLC numbers, lookups by `key_id`, the request log, and each agent's own data
(`AgentData`: what the service keeps for an agent beyond its fields, which `transfer_data` is about).

`_AgentStore` is the base of the mixins that make up `SmartCommEmulator`; it handles no requests.
"""

from __future__ import annotations

import dataclasses
import random
import re
import threading
from dataclasses import dataclass
from typing import Literal

from syncd.emulators.common import ControlApi, FaultInjector
from syncd.emulators.smartcomm.wire import _Entry

AgentStatus = Literal["active", "offboarded"]
KeyId = Literal["user_object_id", "agent_id", "upn", "phone_number", "consistency_id"]

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def is_e164(number: str) -> bool:
    """Whether `number` is written in E.164 ("+" and up to 15 digits, no spaces), as the API takes numbers."""
    return _E164.fullmatch(number) is not None


@dataclass
class _Agent:
    agent_id: str
    user_object_id: str
    tenant_id: str
    phone_number: str
    upn: str | None
    consistency_id: str | None
    status: AgentStatus

    def snapshot(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass
class AgentData:
    """What the service keeps for an agent beyond its fields, standing in for its conversations and call
    history: set through the control API, never by the agents API.

    Our assumption of what the spec leaves open (docs/spec/smartcommunicator-agents-api.md): the data belongs
    to the agent's object ID. A PATCH that changes `user_object_id` with `transfer_data: true` moves it to the
    new object ID; without it (false or absent) the agent starts afresh under the new object ID and the data
    stays with the old one, out of reach. Offboarding discards it.
    """

    notes: str = ""
    calls: int = 0

    def snapshot(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _same_upn(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


def _differ(a: str | None, b: str | None) -> bool:
    """Both set and different."""
    return a is not None and b is not None and a != b


class _AgentStore(ControlApi):
    """What `SmartCommEmulator` knows and the methods that keep it consistent (called with the lock held)."""

    # Set by `SmartCommEmulator.__init__`, declared here so that each mixin type-checks on its own.
    registered_tenants: set[str] | None
    ten_dlc_numbers: set[str] | None
    _seed: int
    _initial_tenants: frozenset[str] | None
    _initial_numbers: frozenset[str] | None
    _lock: threading.Lock

    def _clear_state(self) -> None:
        self._by_id: dict[str, _Agent] = {}
        self._by_object: dict[str, _Agent] = {}
        self._active_by_phone: dict[str, _Agent] = {}
        self._active_by_upn: dict[str, _Agent] = {}
        self._active_by_consistency: dict[str, _Agent] = {}
        self._data: dict[str, AgentData] = {}
        """Each agent's own data, by the object ID it belongs to (see `AgentData`)."""
        self._log: list[_Entry] = []
        self._seq = 0
        self._injector = FaultInjector(self._seed)
        # Seeded on purpose: a test run must be reproducible, these are not secrets.
        self._id_rng = random.Random(self._seed + 1)  # noqa: S311
        self.registered_tenants = None if self._initial_tenants is None else set(self._initial_tenants)
        self.ten_dlc_numbers = None if self._initial_numbers is None else set(self._initial_numbers)

    def _new_agent_id(self) -> str:
        while True:
            agent_id = f"{self._id_rng.getrandbits(96):024x}"
            if agent_id not in self._by_id:
                return agent_id

    def _insert(self, agent: _Agent) -> None:
        self._by_id[agent.agent_id] = agent
        self._by_object[agent.user_object_id] = agent
        if agent.status == "active":
            self._hold(agent)

    def _hold(self, agent: _Agent) -> None:
        """Index what an active agent holds exclusively: its number, UPN and consistency GUID."""
        self._active_by_phone[agent.phone_number] = agent
        if agent.upn is not None:
            self._active_by_upn[agent.upn.casefold()] = agent
        if agent.consistency_id is not None:
            self._active_by_consistency[agent.consistency_id] = agent

    def _release(self, agent: _Agent) -> None:
        self._active_by_phone.pop(agent.phone_number, None)
        if agent.upn is not None:
            self._active_by_upn.pop(agent.upn.casefold(), None)
        if agent.consistency_id is not None:
            self._active_by_consistency.pop(agent.consistency_id, None)

    def _tenant_registered(self, tenant_id: str) -> bool:
        return self.registered_tenants is None or tenant_id in self.registered_tenants

    def _number_registered(self, phone_number: str) -> bool:
        """Whether the number is E.164 and 10DLC registered (the registry holds E.164 numbers only, so a
        number in any other form is never registered)."""
        if not is_e164(phone_number):
            return False
        return self.ten_dlc_numbers is None or phone_number in self.ten_dlc_numbers

    def _find_active(self, key_id: KeyId, value: str) -> _Agent | None:
        agent: _Agent | None
        if key_id == "agent_id":
            agent = self._by_id.get(value)
        elif key_id == "user_object_id":
            agent = self._by_object.get(value)
        elif key_id == "phone_number":
            agent = self._active_by_phone.get(value)
        elif key_id == "upn":
            agent = self._active_by_upn.get(value.casefold())
        else:
            agent = self._active_by_consistency.get(value)
        return agent if agent is not None and agent.status == "active" else None

    def _find(self, key_id: KeyId, value: str) -> _Agent | None:
        """An active match if there is one, else the latest offboarded match."""
        active = self._find_active(key_id, value)
        if active is not None:
            return active
        for agent in reversed(list(self._by_id.values())):
            if agent.status == "offboarded" and self._key_matches(agent, key_id, value):
                return agent
        return None

    @staticmethod
    def _key_matches(agent: _Agent, key_id: KeyId, value: str) -> bool:
        if key_id == "agent_id":
            return agent.agent_id == value
        if key_id == "user_object_id":
            return agent.user_object_id == value
        if key_id == "phone_number":
            return agent.phone_number == value
        if key_id == "upn":
            return _same_upn(agent.upn, value)
        return agent.consistency_id == value
