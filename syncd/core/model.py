"""Pure data shared by the layers: who should be an agent (Member), who is not and why (Skipped), and
what an agent is on SmartCommunicator and on its way there.

Nothing here does I/O. More types (Change, Plan, Outcome) arrive with the sync cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, TypeVar, dataclass_transform

EXTENSION_PREFIX = "onPremisesExtensionAttributes."
_EXTENSION_ATTRIBUTES = tuple(f"{EXTENSION_PREFIX}extensionAttribute{n}" for n in range(1, 16))

PHONE_ATTRIBUTES: tuple[str, ...] = ("businessPhones", "mobilePhone", *_EXTENSION_ATTRIBUTES)
"""The accepted (canonical) values of the phone attribute setting."""

_BY_LOWER: dict[str, str] = {name.lower(): name for name in PHONE_ATTRIBUTES} | {
    name.removeprefix(EXTENSION_PREFIX).lower(): name for name in _EXTENSION_ATTRIBUTES
}
_CHOICES = (
    "businessPhones, mobilePhone, onPremisesExtensionAttributes.extensionAttribute1 .. extensionAttribute15 "
    "(or the short form extensionAttribute1 .. extensionAttribute15)"
)


_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, eq_default=True)
def value_type(cls: type[_T]) -> type[_T]:
    """A frozen dataclass to the type checker, a plain slotted one at run time (hashed by its fields, as a
    frozen one is).

    For the types a full cycle makes one of per person, several times over (Member, Agent, AgentFields,
    Recorded): a frozen dataclass's `__init__` sets each field through `object.__setattr__`, 3.4 times the
    cost of a plain one, and a fresh full cycle of 100,000 people builds some 380,000 of them. mypy
    (strict, in `make lint`) still refuses any assignment to a field, which is what frozen bought us; only
    the run-time check is gone.
    """
    made: Callable[[type[_T]], type[_T]] = dataclass(slots=True, unsafe_hash=True)
    return made(cls)


TEAMS = "teams"
"""The phone source that is the user's Teams number assignment (Graph's numberAssignments)."""

TEAMS_CATEGORIES: tuple[str, ...] = ("primary", "private", "alternate")
"""Teams assignment categories (Graph's `assignmentCategory`) that can be chosen as the agent's number."""


def parse_phone_attribute(name: str) -> str:
    """Pure: the canonical attribute name for a config value, or ValueError listing the choices.

    Case-insensitive, surrounding whitespace ignored; "extensionAttributeN" is short for
    "onPremisesExtensionAttributes.extensionAttributeN".
    """
    canonical = _BY_LOWER.get(name.strip().lower())
    if canonical is None:
        raise ValueError(f"unknown phone attribute {name!r}: choose one of {_CHOICES}")
    return canonical


def parse_phone_source(name: str) -> str:
    """Pure: the canonical name of one entry of the phone source chain: "teams" or a phone attribute.

    Case-insensitive like `parse_phone_attribute`; ValueError listing the choices otherwise.
    """
    if name.strip().lower() == TEAMS:
        return TEAMS
    try:
        return parse_phone_attribute(name)
    except ValueError:
        raise ValueError(f"unknown phone source {name!r}: choose teams or one of {_CHOICES}") from None


class SkipReason(StrEnum):
    """Why a group member is not (or no longer) in scope for an agent."""

    NO_PHONE = "no_phone"
    """No configured phone source has a number (empty attributes, no Teams number assignment)."""
    INVALID_PHONE = "invalid_phone"
    """No configured phone source has a valid number, and at least one holds something that is not one valid
    number (garbage, an extension, ...)."""
    DISABLED = "disabled"
    """The account is disabled (`accountEnabled` is false)."""
    NOT_A_USER = "not_a_user"
    """The member is a device, contact, service principal or other non-user object."""
    INVALID_RECORD = "invalid_record"
    """Graph returned a member without a usable object ID."""
    EXCLUDED_GROUP = "excluded_group"
    """A member (at any depth) of a group in `graph.exclude_group_ids`; the detail names the group."""
    FILTERED = "filtered"
    """The user fails `graph.filter`; the detail names the clause that failed and the values it saw."""


@value_type
class Member:
    """A user who should be an agent: in a configured group, enabled, with a valid E.164 number."""

    object_id: str
    """Entra object ID: the agent's identity (`user_object_id`)."""
    tenant_id: str
    """The configured tenant's GUID."""
    upn: str | None
    """userPrincipalName as Graph gives it (renames happen; it is not the key)."""
    phone_number: str
    """E.164, e.g. "+14155550100"."""
    consistency_id: str | None
    """msDS-ConsistencyGuid as a lower-case GUID string, when the user is synced with one."""
    phone_source: str | None = None
    """Where `phone_number` came from: "teams" or the attribute's name (None where not known)."""


@value_type
class Skipped:
    """A group member who is not in scope, with the reason and a detail for the admin."""

    object_id: str
    """Entra object ID, or "" when Graph gave none (reason INVALID_RECORD)."""
    upn: str | None
    reason: SkipReason
    detail: str
    """What exactly was wrong, e.g. the raw phone value; never a secret."""


ReadKey = Literal["user_object_id", "agent_id", "upn", "phone_number", "consistency_id"]
"""What the `{agent_id}` path segment of a single-agent GET means (the API's `key_id`)."""

WriteKey = Literal["user_object_id", "agent_id", "consistency_id"]
"""What the `{agent_id}` path segment of a PATCH or DELETE means (the API's `key_id`)."""


@value_type
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
    transfer_data: bool | None = None
    """With a new `user_object_id` (a relink): whether the agent's data moves to the new object ID too
    (None: not sent)."""

    def to_json(self) -> dict[str, str | bool]:
        """The request body: only the fields that change (and `transfer_data` when it is set)."""
        fields = {
            "phone_number": self.phone_number,
            "upn": self.upn,
            "consistency_id": self.consistency_id,
            "tenant_id": self.tenant_id,
            "user_object_id": self.user_object_id,
        }
        body: dict[str, str | bool] = {key: value for key, value in fields.items() if value is not None}
        if self.transfer_data is not None:
            body["transfer_data"] = self.transfer_data
        return body

    def __bool__(self) -> bool:
        return bool(self.to_json())


@dataclass(slots=True)
class DesiredState:
    """What Graph says, read whole: members in scope, members skipped, and users read per group.

    `group_counts` lets the engine tell "a configured group read as empty" (a guard) from "fewer members".
    """

    members: dict[str, Member]
    """In-scope users by object ID, deduplicated across groups."""
    skipped: dict[str, Skipped]
    """Out-of-scope members by object ID (records without an ID under a synthetic key)."""
    group_counts: dict[str, int]
    """Users read per configured group (before mapping), in configuration order. A delta read has only the
    groups that lost members, each counted just far enough to tell whether it emptied (a lower bound, zero
    only when the group has no user left)."""
    group_in_scope: dict[str, int] = field(default_factory=dict)
    """Members in scope per configured group; the empty-group guard compares it across cycles."""
    teams_numbers: int | None = None
    """Users the Teams number assignments gave a number (the whole tenant's), or None when "teams" is not a
    phone source; a guard compares it with the agents whose number came from Teams."""
    ambiguous: dict[str, str] = field(default_factory=dict)
    """Members whose number was chosen among several equally ranked candidates, by object ID: how it was
    chosen (several Teams assignments of the same category)."""


class Action(StrEnum):
    """A write the plan asks of SmartCommunicator."""

    ONBOARD = "onboard"
    UPDATE = "update"
    OFFBOARD = "offboard"
    RELINK = "relink"
    """Move an agent to the object ID of the same person re-created in Entra: one PATCH of
    `user_object_id` (with `transfer_data`), instead of offboarding one object and onboarding the other."""


class MemberStatus(StrEnum):
    """Where a person stands in our records."""

    ACTIVE = "active"
    """An agent exists with the recorded fields."""
    OFFBOARDED = "offboarded"
    """No agent (offboarded by us, or never onboarded because the person left scope)."""
    SKIPPED = "skipped"
    """In a configured group but out of scope (see `skip_reason`)."""
    FAILED = "failed"
    """The last write failed; retried after `next_attempt_at`."""
    PENDING = "pending"
    """A write was sent and its outcome is not known yet (settled at the next start)."""


class Outcome(StrEnum):
    """How one operation ended."""

    PENDING = "pending"
    OK = "ok"
    ADOPTED = "adopted"
    """The agent already existed for this object ID; it was read back (and patched if needed)."""
    ALREADY_GONE = "already_gone"
    """DELETE found no agent: nothing left to do."""
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not sent (dry run, or the cycle stopped before it)."""


@value_type
class AgentFields:
    """The fields of an agent that we push and compare."""

    tenant_id: str
    phone_number: str
    upn: str | None
    consistency_id: str | None

    @classmethod
    def of(cls, member: Member) -> AgentFields:
        return cls(member.tenant_id, member.phone_number, member.upn, member.consistency_id)

    @classmethod
    def of_agent(cls, agent: Agent, upn: str | None) -> AgentFields:
        """The fields of a remote agent; `upn` stands in when the service gave none (the list has none)."""
        return cls(agent.tenant_id, agent.phone_number, agent.upn or upn, agent.consistency_id)


@value_type
class Recorded:
    """What we know of one person: the agent we believe exists, and how our last attempt went."""

    object_id: str
    status: MemberStatus
    agent: AgentFields | None = None
    """The agent SmartCommunicator holds as far as we know (None: no active agent)."""
    upn: str | None = None
    """Last UPN seen in Graph (for status and explain, whether or not an agent exists)."""
    skip_reason: SkipReason | None = None
    detail: str | None = None
    """Skip detail or the last error, for the admin."""
    attempts: int = 0
    """Consecutive failed attempts (0 after a success)."""
    next_attempt_at: float | None = None
    """Epoch seconds before which a failed person is not retried."""
    phone_source: str | None = None
    """Where the number of `agent` came from ("teams" or an attribute's name), when it is known."""
    left_scope_at: float | None = None
    """Epoch seconds: when a cycle first found this person out of scope while their agent stays for
    `sync.offboard_grace` (None: in scope, or no agent kept)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One planned write."""

    action: Action
    object_id: str
    desired: AgentFields | None
    """The agent we want (None for an offboarding)."""
    believed: AgentFields | None
    """The agent we believe exists now (None for an onboarding)."""
    fields: tuple[str, ...] = ()
    """For an update: the fields that differ."""
    reason: str = ""
    from_object_id: str | None = None
    """For a relink: the object ID whose agent moves to `object_id` (`believed` is that agent)."""
    transfer_data: bool = True
    """For a relink: whether the agent's data moves with it (`transfer_data` of the PATCH)."""


class KeyValues(Protocol):
    """A small key/value table where state outlives a process (`syncd.store.Store` is one): the quarantine,
    the notifier's last state, delta links."""

    def get_value(self, key: str) -> str | None: ...
    def set_value(self, key: str, value: str) -> None: ...
