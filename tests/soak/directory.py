"""The soak's directory: it makes every change to the Graph emulator and keeps its own log of them, from
which it derives who should be an agent, with what, without syncd's code.

The tenant builder fills the emulator through `Recorder`, which notes each user's raw fields and each
membership it passes on; the seeded churn (joiners, leavers, rejoiners, phone changes, UPN renames) changes
the emulator and the log together. The expected agents then follow from the log alone: an enabled user
reachable from the top group, whose first businessPhones entry is a US number in one of the forms the soak
writes (its digits, with +1, are the E.164 number), with the consistency GUID read from the
`onPremisesImmutableId` bytes as .NET writes a GUID (`uuid.UUID(bytes_le=...)`). A bug in syncd's own
mapping (`syncd.graph.mapping`) therefore cannot hide from the soak's checks by being used by them too.
"""

from __future__ import annotations

import base64
import random
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.emulators.graph import DEFAULT_TENANT_ID, GraphEmulator
from syncd.emulators.smartcomm import SmartCommEmulator
from syncd.emulators.tenant import TenantSpec, build_tenant

AgentKey = tuple[str, str | None, str | None, str]
"""An agent as compared: (phone_number, upn, consistency_id, tenant_id)."""

# The forms the tenant builder and the churn write a valid number in: "(415) 555-0123", "+14155550123" and
# "+1 415 555 0123". Anything else they write (an extension, "n/a", "+44 20", ...) is no agent's number.
_US_NUMBER = re.compile(r"\((\d{3})\) (\d{3})-(\d{4})|\+1(\d{3})(\d{3})(\d{4})|\+1 (\d{3}) (\d{3}) (\d{4})")


def expected_number(raw: str | None) -> str | None:
    """The E.164 number an agent gets for a raw businessPhones entry the soak wrote, or None."""
    match = _US_NUMBER.fullmatch(raw or "")
    if match is None:
        return None
    return "+1" + "".join(part for part in match.groups() if part is not None)


def expected_guid(immutable_id: str | None) -> str | None:
    """The consistency GUID an `onPremisesImmutableId` (base64 of the GUID's .NET bytes) stands for."""
    if immutable_id is None:
        return None
    return str(uuid.UUID(bytes_le=base64.b64decode(immutable_id)))


@dataclass
class UserFacts:
    """A user's fields as the soak last wrote them."""

    upn: str
    business_phones: list[str]
    immutable_id: str | None
    enabled: bool


class Recorder:
    """`build_tenant`'s fixture methods (`DirectoryFixtures`): passed on to the emulator and logged."""

    def __init__(self, graph: GraphEmulator, log: DirectoryLog) -> None:
        self.graph = graph
        self.log = log

    def add_users(self, users: Iterable[Mapping[str, Any]]) -> list[str]:
        users = list(users)
        ids = self.graph.add_users(users)
        for object_id, fields in zip(ids, users, strict=True):
            self.log.users[object_id] = UserFacts(
                upn=str(fields["upn"]),
                business_phones=list(fields.get("business_phones") or []),
                immutable_id=fields.get("on_premises_immutable_id"),
                enabled=bool(fields.get("account_enabled", True)),
            )
        return ids

    def add_group(self, *, id: str | None = None, display_name: str = "") -> str:
        group = self.graph.add_group(id=id, display_name=display_name)
        self.log.members[group] = {}
        return group

    def add_members(self, group_id: str, member_ids: Iterable[str]) -> None:
        member_ids = list(member_ids)
        self.graph.add_members(group_id, member_ids)
        self.log.members[group_id].update(dict.fromkeys(member_ids))

    def add_device(self, *, id: str | None = None, display_name: str = "") -> str:
        return self.graph.add_device(id=id, display_name=display_name)

    def add_contact(self, *, id: str | None = None, display_name: str = "", mail: str | None = None) -> str:
        return self.graph.add_contact(id=id, display_name=display_name, mail=mail)

    def add_service_principal(self, *, id: str | None = None, display_name: str = "") -> str:
        return self.graph.add_service_principal(id=id, display_name=display_name)

    def assign_numbers(self, assignments: Iterable[Mapping[str, Any]]) -> list[str]:
        # The soak reads numbers from businessPhones only: Teams assignments would change nothing expected.
        return self.graph.assign_numbers(assignments)


@dataclass
class DirectoryLog:
    """What the soak wrote to the directory: users' fields and every group's direct members (in order)."""

    users: dict[str, UserFacts]
    members: dict[str, dict[str, None]]

    def reachable_users(self, top: str) -> list[str]:
        """Users that are members of `top`, directly or through nested groups (cycles allowed), in order."""
        seen_groups, found = {top}, dict[str, None]()
        pending = [top]
        while pending:
            for member in self.members[pending.pop()]:
                if member in self.members:
                    if member not in seen_groups:
                        seen_groups.add(member)
                        pending.append(member)
                elif member in self.users:
                    found[member] = None
        return list(found)

    def expected(self, top: str) -> dict[str, AgentKey]:
        """Who should be an agent, with what, by the log alone."""
        agents: dict[str, AgentKey] = {}
        for object_id in self.reachable_users(top):
            facts = self.users[object_id]
            phone = expected_number(facts.business_phones[0] if facts.business_phones else None)
            if facts.enabled and phone is not None:
                agents[object_id] = (phone, facts.upn, expected_guid(facts.immutable_id), DEFAULT_TENANT_ID)
        return agents


class Directory:
    """Drives the Graph emulator's churn and answers, from its own log, who should be an agent."""

    def __init__(
        self, graph: GraphEmulator, rng: random.Random, users: int, seed: int, registry: SmartCommEmulator
    ) -> None:
        self.graph = graph
        self.rng = rng
        self.registry = registry
        """The SmartCommunicator account: every number given out is 10DLC registered there first."""
        self.log = DirectoryLog(users={}, members={})
        built = build_tenant(Recorder(graph, self.log), TenantSpec(users=users, seed=seed), registry=registry)
        self.top = built.top_group_id
        self.groups = [built.top_group_id, *built.nested_group_ids]
        self.leavers: list[tuple[str, str]] = []  # (group, user) removed, to rejoin later
        self._numbers = 0
        self._names = 0

    def expected(self) -> dict[str, AgentKey]:
        """The agents a correct sync makes of the directory as it is now."""
        return self.log.expected(self.top)

    def _fresh_phone(self) -> str:
        # Area code 801 is not among the tenant builder's: these never collide with its numbers.
        self._numbers += 1
        exchange = 200 + (self._numbers // 10_000) % 700
        if exchange % 100 == 11:
            exchange += 1
        number = f"+1801{exchange}{self._numbers % 10_000:04d}"
        self.registry.register_numbers([number])
        return number

    def _direct_user_members(self) -> list[tuple[str, str]]:
        return [
            (group, member)
            for group in self.groups
            for member in self.log.members[group]
            if member in self.log.users
        ]

    def _add_member(self, group: str, object_id: str) -> None:
        self.graph.add_member(group, object_id)
        self.log.members[group][object_id] = None

    def _update(self, object_id: str, **changes: Any) -> None:
        self.graph.update_user(object_id, **changes)
        facts = self.log.users[object_id]
        if "business_phones" in changes:
            facts.business_phones = list(changes["business_phones"])
        if "upn" in changes:
            facts.upn = changes["upn"]

    def churn(self, n: int, tally: Counter[str]) -> None:
        for _ in range(n):
            kind = self.rng.choices(["join", "leave", "rejoin", "phone", "rename"], weights=[3, 3, 1, 3, 2])[
                0
            ]
            if kind == "rejoin" and not self.leavers:
                kind = "join"
            if kind == "join":
                self._names += 1
                upn = f"joiner{self._names}.s{self.rng.randrange(10**6)}@contoso.com"
                guid = None
                if self.rng.random() < 0.7:
                    guid = base64.b64encode(self.rng.getrandbits(128).to_bytes(16, "little")).decode("ascii")
                phone = self._fresh_phone()
                object_id = self.graph.add_user(
                    upn=upn, business_phones=[phone], on_premises_immutable_id=guid
                )
                self.log.users[object_id] = UserFacts(upn, [phone], guid, enabled=True)
                self._add_member(self.rng.choice(self.groups), object_id)
            elif kind == "rejoin":
                group, object_id = self.leavers.pop(self.rng.randrange(len(self.leavers)))
                self._add_member(group, object_id)
            else:
                group, object_id = self.rng.choice(self._direct_user_members())
                if kind == "leave":
                    self.graph.remove_member(group, object_id)
                    del self.log.members[group][object_id]
                    self.leavers.append((group, object_id))
                elif kind == "phone":
                    self._update(object_id, business_phones=[self._fresh_phone()])
                else:
                    self._names += 1
                    self._update(object_id, upn=f"renamed{self._names}.{self.log.users[object_id].upn}")
            tally[kind] += 1
