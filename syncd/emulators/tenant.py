"""Realistic Entra tenants for the Graph emulator: N users in nested groups, with the data quirks syncd meets.

`build_tenant` fills a `GraphEmulator` from a `TenantSpec`: a top group (the one to configure in syncd) that
reaches every user, some through nested groups (one of them nested a level further), a few users reachable
twice, and the awkward cases in set numbers: phones in national form, extensions, garbage, none at all,
disabled accounts, and non-user members (a device, a contact, a service principal). Most users carry an
`onPremisesImmutableId` (a consistency GUID, base64 of its .NET byte order), as Entra Connect writes it.
Optionally every user has the profile attributes a scoping filter reads (`TenantSpec.profiles`:
department, job title, employee type, places), and a share of them has a Teams phone number assigned
(`TenantSpec.teams_share`), half of them the same number as in businessPhones and half a different one, a
few with a second, alternate number.

Every valid number in the tenant (offices, mobiles, extensions' main numbers, Teams numbers) is 10DLC
registered, as a customer's numbers must be before SmartCommunicator takes them: `BuiltTenant.ten_dlc_numbers`
lists them in E.164, and `build_tenant` registers them with the `registry` it is given (the SmartCommunicator
emulator).

Pure apart from filling the emulators: the same spec and seed give the same IDs and data, whatever the
emulator's own seed. Fast enough for benchmarks (bulk inserts; 1,000,000 users in seconds, not minutes).
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["BuiltTenant", "DirectoryFixtures", "NumberRegistry", "TenantSpec", "build_tenant"]

DOMAIN = "contoso.com"

_FIRST_NAMES = (
    "Ava", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sophia", "Lucas", "Isabella", "Ethan", "Mia", "Aiden",
    "Amara", "Wei", "Priya", "Diego", "Fatima", "Kenji", "Zoe", "Omar", "Ingrid", "Tariq", "Chloe", "Ravi",
    "Elena", "Jonas", "Aisha", "Mikhail", "Grace", "Santiago", "Leila", "Hiro", "Nora", "Kwame", "Lucia",
    "Finn",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Garcia", "Chen", "Patel", "Johnson", "Nguyen", "Okafor", "Müller", "Rossi", "Kim", "Silva",
    "Haddad", "Kowalski", "Tanaka", "Brown", "Lopez", "Ivanova", "O'Brien", "Dubois", "Andersson", "Khan",
    "Martin", "Novak", "Fischer", "Moreau", "Yilmaz", "Santos", "Cohen", "Wright", "Jensen",
)  # fmt: skip
_DEPARTMENTS = ("Sales", "Support", "Billing", "Field Service", "Retention", "Onboarding")
_AREA_CODES = (
    "415", "212", "312", "617", "206", "512", "303", "404", "713", "646", "213", "305", "602", "615", "702",
    "919", "858", "503", "612", "720",
)  # fmt: skip
# Central office codes that phone-number libraries accept: 200-999 without N11 (411, 911, ...).
_EXCHANGES = tuple(e for e in range(200, 1000) if e % 100 != 11)
_LINES = 10_000
_NUMBER_SPACE = len(_AREA_CODES) * len(_EXCHANGES) * _LINES
# Steps through the number space in a scattered but collision-free order (coprime with its size).
_NUMBER_STRIDE = 7_919_993
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)
_BAD_PHONES = ("n/a", "ext. 12", "+1 (555) 0", "TBD", "call reception", "555", "+44 20", "0")


class DirectoryFixtures(Protocol):
    """The fixture methods of `GraphEmulator` that `build_tenant` fills a tenant through.

    A protocol rather than the class: the Graph emulator's control API builds tenants with `build_tenant`
    (POST /_emulator/tenant), so this module must not import the emulator.
    """

    def add_users(self, users: Iterable[Mapping[str, Any]]) -> list[str]: ...

    def add_group(self, *, id: str | None = None, display_name: str = "") -> str: ...

    def add_members(self, group_id: str, member_ids: Iterable[str]) -> None: ...

    def add_device(self, *, id: str | None = None, display_name: str = "") -> str: ...

    def add_contact(
        self, *, id: str | None = None, display_name: str = "", mail: str | None = None
    ) -> str: ...

    def add_service_principal(self, *, id: str | None = None, display_name: str = "") -> str: ...

    def assign_numbers(self, assignments: Iterable[Mapping[str, Any]]) -> list[str]: ...


class NumberRegistry(Protocol):
    """Where `build_tenant` 10DLC-registers the tenant's numbers (`SmartCommEmulator` is one)."""

    def register_numbers(self, numbers: Iterable[str]) -> None: ...


@dataclass(frozen=True)
class TenantSpec:
    """What `build_tenant` creates. Counts of special users are exact and their users disjoint."""

    users: int = 200
    nested_groups: int = 3
    """Sub-groups nested under the top group (the last one a level further down, when there are two+)."""
    national_share: float = 0.3
    """Share of phones in national form "(415) 555-0123" instead of E.164."""
    no_phone: int = 3
    """Users with no phone at all."""
    bad_phone: int = 3
    """Users whose only phone is garbage like "n/a", "ext. 12", "+1 (555) 0"."""
    disabled: int = 2
    """Users with accountEnabled false (they have valid phones)."""
    with_extension: int = 1
    """Users whose phone has an extension: "+1 415 555 0100 x123"."""
    non_users: int = 3
    """Members that are not users: a device, a contact, a service principal (cycling)."""
    consistency_guids: bool = True
    """Whether users synced from AD (all but every tenth) get onPremisesImmutableId."""
    teams_share: float = 0.0
    """Share (0..1, rounded to whole users) of the users with a valid businessPhones number that get a Teams
    number assignment (primary, userAssigned, activated). Special users (no phone, bad phone, disabled,
    extension) and mobile-only users get none. Half of them (rounded down) get their businessPhones number in
    E.164, the others a different valid E.164 number found nowhere else in the tenant."""
    teams_extra: int = 0
    """How many of the Teams users also get a second, alternate-category assignment of another number."""
    profiles: bool = False
    """Whether every user gets the attributes a scoping filter (`graph.filter`) reads, from its index (see
    `profile`): department, jobTitle, employeeType, companyName, officeLocation, usageLocation, country,
    city, mail, and "noagent" in extensionAttribute7 for every twentieth user."""
    seed: int = 0


@dataclass(frozen=True)
class BuiltTenant:
    """What `build_tenant` created (IDs in creation order)."""

    top_group_id: str
    """The group to configure in syncd; contains everything, some via nesting."""
    nested_group_ids: list[str]
    user_ids: list[str]
    """Every user created, in creation order."""
    non_user_ids: list[str] = field(default_factory=list)
    no_phone_user_ids: list[str] = field(default_factory=list)
    bad_phone_user_ids: list[str] = field(default_factory=list)
    disabled_user_ids: list[str] = field(default_factory=list)
    extension_user_ids: list[str] = field(default_factory=list)
    teams_numbers: dict[str, str] = field(default_factory=dict)
    """User ID -> the E.164 number of its primary Teams assignment (users without one are absent)."""
    teams_alternate_numbers: dict[str, str] = field(default_factory=dict)
    """User ID -> the E.164 number of its alternate Teams assignment (`TenantSpec.teams_extra` users)."""
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)
    """User ID -> the profile attributes it was given by `add_user` keyword (`TenantSpec.profiles`)."""
    no_agent_user_ids: list[str] = field(default_factory=list)
    """The users whose extensionAttribute7 is "noagent" (`TenantSpec.profiles`)."""
    ten_dlc_numbers: list[str] = field(default_factory=list)
    """Every valid number of the tenant in E.164, each once: the numbers its SmartCommunicator account has
    10DLC registered."""


_PLACES = (
    ("US", "United States", "Seattle"),
    ("US", "United States", "Austin"),
    ("CA", "Canada", "Toronto"),
    ("GB", "United Kingdom", "London"),
    ("DE", "Germany", "Berlin"),
)


def profile(index: int, upn: str) -> dict[str, str]:
    """Pure: the profile attributes of the index-th user of a tenant with `TenantSpec.profiles`, by
    `add_user` keyword: six departments in turn; a manager every 25th user, a team lead every 10th, agents
    otherwise; a contractor every 8th (employeeType); five places (US twice, CA, GB, DE) in turn, each a
    usageLocation, country and city; company Contoso; the office in the city; mail the same as the UPN."""
    usage_location, country, city = _PLACES[index % len(_PLACES)]
    if index % 25 == 0:
        title = "Manager"
    elif index % 10 == 0:
        title = "Team Lead"
    else:
        title = "Agent"
    return {
        "department": _DEPARTMENTS[index % len(_DEPARTMENTS)],
        "job_title": title,
        "employee_type": "Contractor" if index % 8 == 5 else "Employee",
        "company_name": "Contoso",
        "office_location": f"{city} {1 + index % 4}F",
        "usage_location": usage_location,
        "country": country,
        "city": city,
        "mail": upn,
    }


NO_AGENT = "noagent"
"""extensionAttribute7 of every twentieth user (index 11, 31, ...) of a tenant with `TenantSpec.profiles`."""


def _check(spec: TenantSpec) -> None:
    special = spec.no_phone + spec.bad_phone + spec.disabled + spec.with_extension
    counts = (spec.users, spec.nested_groups, spec.no_phone, spec.bad_phone, spec.disabled)
    if min(*counts, spec.with_extension, spec.non_users) < 0:
        raise ValueError("TenantSpec counts must not be negative")
    if special > spec.users:
        raise ValueError(f"{special} special users do not fit in {spec.users} users")
    if not 0.0 <= spec.national_share <= 1.0:
        raise ValueError("national_share must be between 0 and 1")
    if not 0.0 <= spec.teams_share <= 1.0:
        raise ValueError("teams_share must be between 0 and 1")
    if spec.teams_extra < 0:
        raise ValueError("TenantSpec counts must not be negative")
    # Users' own numbers take 2 per user; Teams numbers found nowhere else at most 2 more.
    per_user = 4 if spec.teams_share > 0 or spec.teams_extra > 0 else 2
    if per_user * spec.users > _NUMBER_SPACE:
        raise ValueError(f"at most {_NUMBER_SPACE // per_user} users get distinct phone numbers")


def _number(index: int) -> tuple[str, str, str]:
    """The index-th distinct US number as (area code, exchange, line)."""
    k = (index * _NUMBER_STRIDE + 1_234_567) % _NUMBER_SPACE
    line = k % _LINES
    k //= _LINES
    exchange = _EXCHANGES[k % len(_EXCHANGES)]
    area = _AREA_CODES[k // len(_EXCHANGES)]
    return area, str(exchange), f"{line:04d}"


def _format(number: tuple[str, str, str], style: int) -> str:
    area, exchange, line = number
    if style == 0:
        return f"({area}) {exchange}-{line}"
    if style == 1:
        return f"+1{area}{exchange}{line}"
    return f"+1 {area} {exchange} {line}"


def build_tenant(
    emulator: DirectoryFixtures, spec: TenantSpec, registry: NumberRegistry | None = None
) -> BuiltTenant:
    """Create `spec`'s users, groups and other members in `emulator`, and register the tenant's numbers with
    `registry` if given; deterministic for `spec.seed`.

    Raises ValueError for an impossible spec, or if an ID is taken (building the same spec twice into one
    emulator: call `reset()` first).
    """
    _check(spec)
    rng = random.Random(spec.seed)  # noqa: S311 - reproducible fixtures, not secrets

    getrandbits = rng.getrandbits

    def new_id() -> str:
        # A random (version 4) UUID; formatted by hand, as uuid.UUID costs a third of the build time.
        bits = (getrandbits(128) & _UUID_CLEAR) | _UUID_V4
        text = f"{bits:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    count = spec.users
    special = rng.sample(range(count), spec.no_phone + spec.bad_phone + spec.disabled + spec.with_extension)
    cut = [spec.no_phone, spec.bad_phone, spec.disabled, spec.with_extension]
    groups_of_special: list[set[int]] = []
    start = 0
    for size in cut:
        groups_of_special.append(set(special[start : start + size]))
        start += size
    no_phone, bad_phone, disabled, extension = groups_of_special

    random_draw = rng.random
    first_names, last_names = _FIRST_NAMES, _LAST_NAMES
    users: list[dict[str, object]] = []
    numbers: list[str] = []
    n_first, n_last = len(first_names), len(last_names)
    for i in range(count):
        first = first_names[int(random_draw() * n_first)]
        last = last_names[int(random_draw() * n_last)]
        local = f"{first}.{last}".lower().replace("'", "").replace("ü", "ue")
        user: dict[str, object] = {
            "id": new_id(),
            "upn": f"{local}{i}@{DOMAIN}",
            "display_name": f"{first} {last}",
        }
        if spec.consistency_guids and i % 10 != 9:
            # Any 16 bytes are some GUID's .NET byte order: random bytes make a random consistency GUID.
            user["on_premises_immutable_id"] = base64.b64encode(
                getrandbits(128).to_bytes(16, "little")
            ).decode()
        if i % 7 == 3:
            user["extension_attributes"] = {
                "extensionAttribute1": _DEPARTMENTS[i % len(_DEPARTMENTS)],
                "extensionAttribute10": f"EMP{i:07d}",
            }
        if spec.profiles:
            user.update(profile(i, str(user["upn"])))
            if i % 20 == 11:
                extensions = user.setdefault("extension_attributes", {})
                assert isinstance(extensions, dict)
                extensions["extensionAttribute7"] = NO_AGENT
        style = 0 if random_draw() < spec.national_share else 1 + (i & 1)
        where = i % 10  # 0-6: office phone, 7-8: mobile only, 9: both
        if i in no_phone:
            pass
        elif i in bad_phone:
            user["business_phones"] = [_BAD_PHONES[i % len(_BAD_PHONES)]]
        elif i in extension:
            user["business_phones"] = [f"{_format(_number(i), 2)} x{100 + i % 900}"]
            numbers.append(_format(_number(i), 1))
        elif where <= 6:
            user["business_phones"] = [_format(_number(i), style)]
            numbers.append(_format(_number(i), 1))
        elif where <= 8:
            user["mobile_phone"] = _format(_number(i), style)
            numbers.append(_format(_number(i), 1))
        else:
            user["business_phones"] = [_format(_number(i), style)]
            user["mobile_phone"] = _format(_number(count + i), style)
            numbers += [_format(_number(i), 1), _format(_number(count + i), 1)]
        if i in disabled:
            user["account_enabled"] = False
        users.append(user)

    top_id, nested_ids = new_id(), [new_id() for _ in range(spec.nested_groups)]
    non_user_ids = [new_id() for _ in range(spec.non_users)]

    user_ids = emulator.add_users(users)
    emulator.add_group(id=top_id, display_name="SmartCommunicator Agents")
    for n, group_id in enumerate(nested_ids, start=1):
        emulator.add_group(id=group_id, display_name=f"Agents - Team {n}")
    # The last nested group sits a level further down (under the first) when there are at least two.
    deep = nested_ids[-1] if len(nested_ids) >= 2 else None
    emulator.add_members(top_id, [g for g in nested_ids if g != deep])
    if deep is not None:
        emulator.add_members(nested_ids[0], [deep])

    # Users spread over the top group and the nested ones; every 50th nested user is also a direct member
    # of the top group, so a transitive read must return it once.
    slots = len(nested_ids) + 1
    by_group: dict[str, list[str]] = {top_id: []}
    for group_id in nested_ids:
        by_group[group_id] = []
    for i, user_id in enumerate(user_ids):
        slot = i % slots
        if slot == 0:
            by_group[top_id].append(user_id)
        else:
            by_group[nested_ids[slot - 1]].append(user_id)
            if i % 50 == 1:
                by_group[top_id].append(user_id)

    kinds = ("device", "contact", "service_principal")
    for n, object_id in enumerate(non_user_ids):
        kind = kinds[n % len(kinds)]
        if kind == "device":
            emulator.add_device(id=object_id, display_name=f"Lobby kiosk {n + 1}")
        elif kind == "contact":
            emulator.add_contact(
                id=object_id, display_name=f"Vendor contact {n + 1}", mail=f"vendor{n + 1}@example.com"
            )
        else:
            emulator.add_service_principal(id=object_id, display_name=f"Dialer integration {n + 1}")
        target = top_id if n % 2 == 0 or not nested_ids else nested_ids[n % len(nested_ids)]
        by_group[target].append(object_id)
    for group_id, member_ids in by_group.items():
        emulator.add_members(group_id, member_ids)

    def pick(indexes: set[int]) -> list[str]:
        return [user_ids[i] for i in sorted(indexes)]

    teams_numbers: dict[str, str] = {}
    teams_alternate: dict[str, str] = {}
    if spec.teams_share > 0 or spec.teams_extra > 0:
        special_indexes = no_phone | bad_phone | disabled | extension
        eligible = [i for i in range(count) if i not in special_indexes and i % 10 not in (7, 8)]
        teams_numbers, teams_alternate = _assign_teams_numbers(emulator, spec, user_ids, eligible)
        numbers += [*teams_numbers.values(), *teams_alternate.values()]
    numbers = list(dict.fromkeys(numbers))
    if registry is not None:
        registry.register_numbers(numbers)

    return BuiltTenant(
        top_group_id=top_id,
        nested_group_ids=nested_ids,
        user_ids=user_ids,
        non_user_ids=non_user_ids,
        no_phone_user_ids=pick(no_phone),
        bad_phone_user_ids=pick(bad_phone),
        disabled_user_ids=pick(disabled),
        extension_user_ids=pick(extension),
        teams_numbers=teams_numbers,
        teams_alternate_numbers=teams_alternate,
        profiles={user_ids[i]: profile(i, str(users[i]["upn"])) for i in range(count)}
        if spec.profiles
        else {},
        no_agent_user_ids=[user_ids[i] for i in range(count) if i % 20 == 11] if spec.profiles else [],
        ten_dlc_numbers=numbers,
    )


def _assign_teams_numbers(
    emulator: DirectoryFixtures, spec: TenantSpec, user_ids: list[str], eligible: list[int]
) -> tuple[dict[str, str], dict[str, str]]:
    """Give `spec.teams_share` of the `eligible` users (indexes; each has a valid businessPhones number) a
    primary Teams number and `spec.teams_extra` of those an alternate one; return both maps by user ID.

    Draws from its own RNG, so the rest of the tenant is the same whatever the Teams settings.
    """
    rng = random.Random(spec.seed + 1)  # noqa: S311 - reproducible fixtures, not secrets
    chosen = rng.sample(eligible, round(spec.teams_share * len(eligible)))
    if spec.teams_extra > len(chosen):
        raise ValueError(
            f"teams_extra={spec.teams_extra} exceeds the {len(chosen)} users with a Teams number"
        )
    same = len(chosen) // 2
    # Numbers 0 .. 2*users-1 are the users' own (businessPhones i, mobilePhone users+i): new ones follow.
    fresh = 2 * spec.users

    def assignment_id() -> str:
        text = f"{(rng.getrandbits(128) & _UUID_CLEAR) | _UUID_V4:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    primary: dict[str, str] = {}
    assignments: list[dict[str, object]] = []
    for n, i in enumerate(chosen):
        if n < same:
            number = _format(_number(i), 1)
        else:
            number, fresh = _format(_number(fresh), 1), fresh + 1
        primary[user_ids[i]] = number
        assignments.append({"telephone_number": number, "target_id": user_ids[i], "id": assignment_id()})
    alternate: dict[str, str] = {}
    for i in rng.sample(chosen, spec.teams_extra):
        number, fresh = _format(_number(fresh), 1), fresh + 1
        alternate[user_ids[i]] = number
        assignments.append(
            {
                "telephone_number": number,
                "target_id": user_ids[i],
                "category": "alternate",
                "id": assignment_id(),
            }
        )
    emulator.assign_numbers(assignments)
    return primary, alternate
