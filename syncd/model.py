"""Pure data shared by the layers: what an agent is, on SmartCommunicator and on its way there.

Nothing here does I/O. More types (Member, Change, Plan, SkipReason, Outcome) arrive with the sync cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ReadKey = Literal["user_object_id", "agent_id", "upn", "phone_number", "consistency_id"]
"""What the `{agent_id}` path segment of a single-agent GET means (the API's `key_id`)."""

WriteKey = Literal["user_object_id", "agent_id", "consistency_id"]
"""What the `{agent_id}` path segment of a PATCH or DELETE means (the API's `key_id`)."""


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as SmartCommunicator reports it.

    The agents list carries no UPN, so `upn` is None for list entries; `status` is "active",
    "offboarded" (list) or "orphaned" (single GET of an offboarded agent), kept as text so an unknown
    future value is reported rather than fatal.
    """

    user_object_id: str
    tenant_id: str
    phone_number: str
    status: str
    upn: str | None = None
    consistency_id: str | None = None

    @property
    def active(self) -> bool:
        """Whether the agent is onboarded (neither offboarded nor orphaned)."""
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class NewAgent:
    """The body of an onboarding request."""

    user_object_id: str
    tenant_id: str
    phone_number: str
    upn: str | None = None
    consistency_id: str | None = None

    def to_json(self) -> dict[str, str]:
        """The request body: required fields always, optional ones only when known."""
        body = {
            "user_object_id": self.user_object_id,
            "tenant_id": self.tenant_id,
            "phone_number": self.phone_number,
        }
        if self.upn is not None:
            body["upn"] = self.upn
        if self.consistency_id is not None:
            body["consistency_id"] = self.consistency_id
        return body


@dataclass(frozen=True, slots=True)
class AgentPatch:
    """The fields of an update; None means "leave as it is", so only changed fields are sent."""

    phone_number: str | None = None
    upn: str | None = None
    consistency_id: str | None = None
    tenant_id: str | None = None
    user_object_id: str | None = None

    def to_json(self) -> dict[str, str]:
        """The request body: only the fields that change."""
        fields = {
            "phone_number": self.phone_number,
            "upn": self.upn,
            "consistency_id": self.consistency_id,
            "tenant_id": self.tenant_id,
            "user_object_id": self.user_object_id,
        }
        return {key: value for key, value in fields.items() if value is not None}

    def __bool__(self) -> bool:
        return bool(self.to_json())
