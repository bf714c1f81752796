"""Fingerprints of Graph users and the page mapping through a cache of earlier mappings: any change to a user
or to an input of its mapping changes the fingerprint, fingerprints are the same in every process, and a
page mapped through the cache is exactly what `map_user` gives, whatever changed since the cache was filled.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import json
import os
import subprocess
import sys
import unicodedata
from collections.abc import Container, Mapping, Sequence
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import syncd.graph.fingerprint as fingerprint_module
from syncd.config.settings import GraphSettings
from syncd.core import model, scope_filter
from syncd.core.model import Member, Skipped
from syncd.graph import mapping
from syncd.graph.fingerprint import MAPPING_VERSION, MAX_KEY_LENGTH, Fingerprints, cache_key
from syncd.graph.mapping import forget_phones, map_user
from syncd.graph.mapping_cache import PageMapper

TENANT = "11111111-2222-3333-4444-555555555555"
OBJECT_ID = "0b9e3d6a-7c4f-4a8e-9d2b-1f6e5c4b3a29"
FILTER = "employeeType eq 'Employee' and onPremisesExtensionAttributes/extensionAttribute7 ne 'noagent'"
INPUTS: dict[str, Any] = {
    "tenant_id": TENANT,
    "phone_sources": ("businessPhones", "mobilePhone"),
    "default_region": "US",
    "scope_filter": FILTER,
}


def user(**changes: object) -> dict[str, Any]:
    """A Graph user object with every field the mapping reads (and one it does not); `changes` replace keys,
    `...` removes one."""
    record: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.user",
        "id": OBJECT_ID,
        "userPrincipalName": "ada@contoso.com",
        "accountEnabled": True,
        "onPremisesImmutableId": "1wfM9xV8fUSHbcAbDlqeOA==",
        "businessPhones": ["+1 415 555 0123"],
        "mobilePhone": "+1 415 555 0199",
        "employeeType": "Employee",
        "onPremisesExtensionAttributes": {"extensionAttribute7": None, "extensionAttribute8": "x"},
        "displayName": "Ada",
    }
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return record


def fingerprint(record: dict[str, Any], excluded_by: str | None = None, **inputs: Any) -> int | None:
    return Fingerprints(**(INPUTS | inputs)).of(record, excluded_by)


# --- the fingerprint -------------------------------------------------------------------------------------

CHANGED_USERS: list[dict[str, Any]] = [
    user(id=OBJECT_ID.upper()),
    user(id=f" {OBJECT_ID}"),
    user(userPrincipalName="ada.lovelace@contoso.com"),
    user(userPrincipalName=None),
    user(userPrincipalName=...),
    user(accountEnabled=False),
    user(accountEnabled=None),
    user(accountEnabled=1),  # not `True`: the mapping reads `is False`, and the type is part of the value
    user(accountEnabled=...),
    user(onPremisesImmutableId="AAAAAAAAAAAAAAAAAAAAAA=="),
    user(onPremisesImmutableId=None),
    user(businessPhones=["+1 415 555 0124"]),
    user(businessPhones=["+1 415 555 0123", "+1 415 555 0124"]),
    user(businessPhones=[]),
    user(businessPhones="+1 415 555 0123"),  # a string, not a list
    user(mobilePhone="+1 415 555 0198"),
    user(mobilePhone=None),
    user(employeeType="Contractor"),
    user(employeeType="employee"),
    user(onPremisesExtensionAttributes={"extensionAttribute7": "noagent", "extensionAttribute8": "x"}),
    user(onPremisesExtensionAttributes={"extensionAttribute7": None, "extensionAttribute8": "y"}),
    user(onPremisesExtensionAttributes=None),
    user(**{"@odata.type": "#microsoft.graph.device"}),
    user(**{"@odata.type": ...}),
    user(displayName="Ada L."),  # a key the mapping does not read
    user(department="Sales"),  # a key Graph did not send before
    {**dict(reversed(list(user().items())))},  # the same keys in another order: a miss, never a wrong hit
]


def test_a_change_to_any_field_of_a_user_changes_its_fingerprint() -> None:
    prints = [fingerprint(user()), *(fingerprint(changed) for changed in CHANGED_USERS)]
    assert None not in prints
    assert len(set(prints)) == len(prints)


def test_the_same_user_has_the_same_fingerprint() -> None:
    assert (
        fingerprint(user())
        == fingerprint(copy.deepcopy(user()))
        == fingerprint(json.loads(json.dumps(user())))
    )


@pytest.mark.parametrize(
    "inputs",
    [
        {"tenant_id": "99999999-2222-3333-4444-555555555555"},
        {"phone_sources": ("mobilePhone", "businessPhones")},
        {"phone_sources": ("businessPhones",)},
        {"default_region": "GB"},
        {"scope_filter": ""},
        {"scope_filter": FILTER.replace("Employee", "Staff")},
    ],
    ids=lambda inputs: ",".join(inputs),
)
def test_a_change_to_any_input_of_the_mapping_changes_every_fingerprint(inputs: dict[str, Any]) -> None:
    assert fingerprint(user(), **inputs) != fingerprint(user())


def test_the_excluded_group_holding_the_user_is_part_of_the_fingerprint() -> None:
    prints = {fingerprint(user(), excluded_by) for excluded_by in (None, "group-a", "group-b", "")}
    assert len(prints) == 4


def test_mapping_version_phonenumbers_and_unicode_versions_are_part_of_the_fingerprint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = fingerprint(user())
    monkeypatch.setattr(fingerprint_module, "MAPPING_VERSION", MAPPING_VERSION + 1)
    after_version = fingerprint(user())
    monkeypatch.setattr(phonenumbers, "__version__", phonenumbers.__version__ + ".1")
    after_phonenumbers = fingerprint(user())
    monkeypatch.setattr(unicodedata, "unidata_version", unicodedata.unidata_version + ".1")
    after_unicode = fingerprint(user())
    assert len({before, after_version, after_phonenumbers, after_unicode}) == 4


_IN_A_CHILD = """
import json, sys
from syncd.graph.fingerprint import Fingerprints
inputs, users = json.loads(sys.stdin.read())
inputs["phone_sources"] = tuple(inputs["phone_sources"])
print(json.dumps([Fingerprints(**inputs).of(user, excluded_by) for user, excluded_by in users]))
"""


def test_fingerprints_are_the_same_in_every_process() -> None:
    """Not Python's salted `hash()`: two processes with other hash seeds agree with this one."""
    cases = [(user(), None), (user(), "group-a"), *((changed, None) for changed in CHANGED_USERS)]
    expected = [fingerprint(record, excluded_by) for record, excluded_by in cases]
    for seed in ("1", "4242"):
        child = subprocess.run(
            [sys.executable, "-c", _IN_A_CHILD],
            input=json.dumps([INPUTS, cases]),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        )
        assert json.loads(child.stdout) == expected


def test_a_fingerprint_fits_a_signed_64_bit_column() -> None:
    prints = [fingerprint(record) for record in CHANGED_USERS]
    assert all(p is not None and -(2**63) <= p < 2**63 for p in prints)


def test_a_user_nested_too_deep_to_repr_has_no_fingerprint() -> None:
    deep: Any = "x"
    for _ in range(sys.getrecursionlimit() + 100):
        deep = [deep]
    assert fingerprint(user(mobilePhone=deep)) is None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (user(), OBJECT_ID),
        (user(id=f"  {OBJECT_ID}\n"), OBJECT_ID),  # what map_user makes of it
        (user(id="x" * MAX_KEY_LENGTH), "x" * MAX_KEY_LENGTH),
        (user(id="x" * (MAX_KEY_LENGTH + 1)), None),
        (user(id=" "), None),
        (user(id=None), None),
        (user(id=42), None),
        (user(id=...), None),
        ("not an object", None),
        ([user()], None),
    ],
)
def test_cache_key_is_the_object_id_map_user_gives(record: object, expected: str | None) -> None:
    assert cache_key(record) == expected
    if expected is not None:
        assert map_user(
            record, tenant_id=TENANT, phone_sources="businessPhones", default_region="US"
        ).object_id == (expected)


def _mapping_sources_digest() -> str:
    digest = hashlib.sha256()
    for module in (mapping, scope_filter):
        digest.update(Path(inspect.getfile(module)).read_bytes())
    digest.update(inspect.getsource(model.parse_phone_attribute).encode())
    digest.update(repr(model.PHONE_ATTRIBUTES).encode())
    return digest.hexdigest()


PINNED: dict[int, str] = {
    # Pinned again, not bumped, for the plain reading of "+digits" numbers (mapping._plain_international):
    # it answers as phonenumbers.parse does (tests/unit/test_mapping_plain.py), so no mapping changed.
    1: "711eab96d11b0d8b5f8add8d3ed7c8eaccffa74a53dc8f4d2e3a2463219c5bad",
}
"""MAPPING_VERSION -> the digest of the mapping's sources it was bumped for."""


def test_mapping_version_is_bumped_with_the_mapping_code() -> None:
    """A reminder, not a proof: when this fails, the code deciding what `map_user` returns changed. If the
    change may alter any mapping, bump MAPPING_VERSION (syncd/graph/fingerprint.py) so that every cached
    mapping is mapped again, and pin the new digest under the new version; otherwise pin it under the
    current one."""
    assert PINNED.get(MAPPING_VERSION) == _mapping_sources_digest(), (
        f"the mapping's sources changed: digest {_mapping_sources_digest()}; see this test's docstring"
    )


# --- mapping pages through the cache ---------------------------------------------------------------------


class DictCache:
    """A `MappingCache` in a dict, recording the lookups and writes it gets."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, Member | Skipped]] = {}
        self.lookups: list[list[str]] = []
        self.writes: list[list[tuple[str, int, Member | Skipped]]] = []

    def known_mappings(self, object_ids: Sequence[str]) -> Mapping[str, tuple[int, Member | Skipped]]:
        self.lookups.append(list(object_ids))
        return {oid: self.rows[oid] for oid in object_ids if oid in self.rows}

    def remember_mappings(self, rows: Sequence[tuple[str, int, Member | Skipped]]) -> None:
        self.writes.append(list(rows))
        self.rows.update((oid, (fp, mapped)) for oid, fp, mapped in rows)

    def prune_mappings(self, read: Container[str], users: int) -> int:
        stale = [oid for oid in self.rows if oid not in read]
        for oid in stale:
            del self.rows[oid]
        return len(stale)


def graph_settings(**changes: object) -> GraphSettings:
    values: dict[str, object] = {
        "tenant_id": TENANT,
        "client_id": "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0",
        "client_secret": "secret",
        "group_ids": ["5d2c6a1e-0f3b-4c7d-8e9f-a0b1c2d3e4f5"],
        "phone_source": ["businessPhones", "mobilePhone"],
        "filter": FILTER,
    }
    return GraphSettings.model_validate(values | changes)


def direct(graph: GraphSettings, record: object, excluded_by: str | None = None) -> Member | Skipped:
    """`map_user` as `GraphSource.map` calls it."""
    return map_user(
        record,
        tenant_id=graph.tenant_id,
        phone_sources=graph.phone_chain,
        default_region=graph.default_region,
        excluded_by=excluded_by,
        scope_filter=graph.scope_filter,
    )


class Counted:
    """`direct`, counting the calls."""

    def __init__(self, graph: GraphSettings) -> None:
        self.graph = graph
        self.calls = 0

    def __call__(self, record: object, *, excluded_by: str | None = None) -> Member | Skipped:
        self.calls += 1
        return direct(self.graph, record, excluded_by)


def map_page(pages: PageMapper, users: Sequence[Any], excluded: Mapping[str, str]) -> list[Member | Skipped]:
    """`PageMapper.map_page` run to its end (it turns the event loop while it maps)."""
    return asyncio.run(pages.map_page(users, excluded))


def people(count: int) -> list[dict[str, Any]]:
    return [
        user(
            id=f"00000000-0000-0000-0000-{n:012d}",
            userPrincipalName=f"u{n}@contoso.com",
            businessPhones=[f"+1 415 555 {n:04d}"],
            mobilePhone=None,
        )
        for n in range(count)
    ]


@pytest.fixture(autouse=True)
def fresh_process() -> None:
    """Every test starts as a fresh process does: no phone text parsed yet."""
    forget_phones()


def test_a_fresh_process_takes_unchanged_users_from_the_cache_and_maps_changed_ones() -> None:
    graph = graph_settings()
    cache, map_one = DictCache(), Counted(graph)
    pages = PageMapper(cache, graph, map_one)
    page = people(5)
    first = map_page(pages, page, {})
    assert first == [direct(graph, record) for record in page]
    assert (map_one.calls, pages.take_counts()) == (5, {"mapped": 5, "from_cache": 0})
    assert [[oid for oid, _, _ in write] for write in cache.writes] == [[r["id"] for r in page]]

    forget_phones()  # a fresh process
    assert map_page(pages, page, {}) == first
    assert (map_one.calls, pages.take_counts()) == (5, {"mapped": 0, "from_cache": 5})
    assert len(cache.writes) == 1  # nothing new to remember
    assert cache.lookups == [[r["id"] for r in page]] * 2  # one lookup per page, of that page's users

    forget_phones()
    page[2] = page[2] | {"businessPhones": ["+1 415 555 9999"]}
    page[4] = page[4] | {"employeeType": "Contractor"}
    third = map_page(pages, page, {})
    assert third == [direct(graph, record) for record in page]
    guid = mapping.decode_consistency_guid(page[2]["onPremisesImmutableId"])
    assert third[2] == Member(page[2]["id"], TENANT, "u2@contoso.com", "+14155559999", guid, "businessPhones")
    assert isinstance(third[4], Skipped)
    assert (map_one.calls, pages.take_counts()) == (7, {"mapped": 2, "from_cache": 3})
    assert [oid for oid, _, _ in cache.writes[-1]] == [page[2]["id"], page[4]["id"]]


def test_users_whose_phone_text_was_parsed_already_are_mapped_without_a_lookup() -> None:
    """A daemon's next full read: mapping them costs less than looking them up. A cached member's phone text
    counts as parsed (its number is known), so one lookup per process is enough."""
    graph = graph_settings()
    cache, map_one = DictCache(), Counted(graph)
    pages = PageMapper(cache, graph, map_one)
    page = people(4)
    map_page(pages, page, {})  # parses every number, and fills the cache
    assert map_page(pages, page, {}) == [direct(graph, record) for record in page]
    assert pages.take_counts() == {"mapped": 8, "from_cache": 0}
    assert len(cache.lookups) == 1

    forget_phones()
    map_page(pages, page, {})  # a fresh process: from the cache, and their phone texts are now known
    assert pages.take_counts() == {"mapped": 0, "from_cache": 4}
    changed = [page[0] | {"userPrincipalName": "renamed@contoso.com"}, *page[1:]]
    assert map_page(pages, changed, {}) == [direct(graph, record) for record in changed]
    assert pages.take_counts() == {"mapped": 4, "from_cache": 0}
    assert len(cache.lookups) == 2
    assert mapping.phones_parsed(page[0], graph.phone_chain, graph.default_region)


def test_a_user_joining_an_excluded_group_is_mapped_again() -> None:
    graph = graph_settings()
    cache = DictCache()
    pages = PageMapper(cache, graph, Counted(graph))
    page = people(3)
    map_page(pages, page, {})
    forget_phones()
    excluded = {page[1]["id"].lower(): "excluded-group"}
    result = map_page(pages, page, excluded)
    assert result[1] == Skipped(
        page[1]["id"],
        "u1@contoso.com",
        model.SkipReason.EXCLUDED_GROUP,
        "member of excluded group excluded-group",
    )
    assert result == [direct(graph, record, excluded.get(record["id"].lower())) for record in page]
    assert pages.take_counts() == {"mapped": 4, "from_cache": 2}


def test_a_cache_filled_under_other_settings_is_never_used() -> None:
    cache = DictCache()
    page = [*people(3), user(id="abcd", businessPhones=["020 7183 8750"], mobilePhone=None)]
    map_page(PageMapper(cache, graph_settings(), Counted(graph_settings())), page, {})
    for changes in (
        {"default_region": "GB"},
        {"phone_source": ["mobilePhone", "businessPhones"]},
        {"filter": ""},
        {"tenant_id": "99999999-2222-3333-4444-555555555555"},
    ):
        forget_phones()
        graph = graph_settings(**changes)
        pages = PageMapper(cache, graph, Counted(graph))
        assert map_page(pages, page, {}) == [direct(graph, record) for record in page]
        assert pages.take_counts() == {"mapped": 4, "from_cache": 0}, changes
        # Back to the first settings: their rows were replaced, so everyone is mapped again the next time.
        forget_phones()
        map_page(PageMapper(cache, graph_settings(), Counted(graph_settings())), page, {})


def test_users_without_a_usable_id_are_mapped_and_never_cached() -> None:
    graph = graph_settings()
    cache, map_one = DictCache(), Counted(graph)
    pages = PageMapper(cache, graph, map_one)
    odd: list[Any] = ["text", None, user(id=...), user(id="  "), user(id="x" * (MAX_KEY_LENGTH + 1))]
    for _ in range(2):
        forget_phones()
        assert map_page(pages, odd, {}) == [direct(graph, record) for record in odd]
    assert map_one.calls == 2 * len(odd)
    assert (cache.rows, cache.lookups) == ({}, [])


def test_prune_forgets_the_people_a_whole_read_did_not_find() -> None:
    graph = graph_settings()
    cache = DictCache()
    pages = PageMapper(cache, graph, Counted(graph))
    mapped = map_page(pages, people(4), {})
    members = {m.object_id: m for m in mapped[:2] if isinstance(m, Member)}
    assert pages.prune(members, {}) == 2
    assert sorted(cache.rows) == sorted(members)


def test_learn_phone_remembers_the_text_a_cached_member_s_number_came_from() -> None:
    record = user(businessPhones=["(415) 555-0123"], mobilePhone="+1 415 555 0199")
    member = direct(graph_settings(), record)
    assert isinstance(member, Member)
    forget_phones()
    assert not mapping.phones_parsed(record, ["businessPhones", "mobilePhone"], "US")
    mapping.learn_phone(record, member, "US")
    # The first source holds a valid number: the second is never parsed by map_user either.
    assert mapping.phones_parsed(record, ["businessPhones", "mobilePhone"], "US")
    assert not mapping.phones_parsed(record, ["mobilePhone", "businessPhones"], "US")
    assert not mapping.phones_parsed(record, ["businessPhones"], "GB")
    assert mapping.to_e164("(415) 555-0123", "US") == "+14155550123"


def test_phones_parsed_follows_the_chain_up_to_the_first_valid_number() -> None:
    chain = ["mobilePhone", "businessPhones"]
    record = user(mobilePhone="not a number", businessPhones=["+1 415 555 0123"])
    assert mapping.phones_parsed("not an object", chain, "US")
    assert mapping.phones_parsed(user(mobilePhone=None, businessPhones=[]), chain, "US")  # nothing to parse
    assert not mapping.phones_parsed(record, chain, "US")
    mapping.to_e164("not a number", "US")
    assert not mapping.phones_parsed(record, chain, "US")  # the invalid one is known, the next is not
    mapping.to_e164("+1 415 555 0123", "US")
    assert mapping.phones_parsed(record, chain, "US")
    assert mapping.phones_parsed(record, ["teams", *chain], "US")  # Teams numbers are read elsewhere


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
PHONES = st.sampled_from(["+1 415 555 0123", "+1 415 555 0124", "415 555 0123", "020 7183 8750", "", "x"])
FIELDS = {
    "userPrincipalName": st.none() | st.sampled_from(["a@contoso.com", "b@contoso.com", " a@contoso.com"]),
    "accountEnabled": st.none() | st.booleans() | st.just(0),
    "onPremisesImmutableId": st.none()
    | st.sampled_from(["1wfM9xV8fUSHbcAbDlqeOA==", "AAAAAAAAAAAAAAAAAAAAAA=="]),
    "businessPhones": st.lists(PHONES, max_size=2) | JSON_VALUES,
    "mobilePhone": st.none() | PHONES,
    "employeeType": st.none() | st.sampled_from(["Employee", "employee", "Contractor"]),
    "onPremisesExtensionAttributes": st.none()
    | st.fixed_dictionaries(
        {"extensionAttribute7": st.none() | st.sampled_from(["noagent", "NoAgent", "x"])}
    ),
    "@odata.type": st.sampled_from(["#microsoft.graph.user", "#microsoft.graph.device"]),
    "id": st.sampled_from([OBJECT_ID, OBJECT_ID.upper(), f" {OBJECT_ID}"]),
    "extra": JSON_VALUES,
}
USERS = st.fixed_dictionaries({}, optional=FIELDS)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    before=USERS,
    after=USERS,
    excluded_before=st.none() | st.just("group-x"),
    excluded_after=st.none() | st.just("group-x"),
    fresh=st.booleans(),
)
def test_a_page_mapped_through_the_cache_is_what_map_user_gives(
    before: dict[str, Any],
    after: dict[str, Any],
    excluded_before: str | None,
    excluded_after: str | None,
    fresh: bool,
) -> None:
    """Whatever a user was when the cache was filled and whatever they are now, in a fresh process or not: a
    changed field is never skipped by the fingerprint."""
    graph = graph_settings(default_region="GB")
    pages = PageMapper(DictCache(), graph, Counted(graph))

    def excluded(record: dict[str, Any], group: str | None) -> dict[str, str]:
        oid = record.get("id")
        return {oid.lower(): group} if group and isinstance(oid, str) else {}

    forget_phones()
    map_page(pages, [before], excluded(before, excluded_before))
    expected = direct(graph, after, excluded(after, excluded_after).get(str(after.get("id", "")).lower()))
    for _ in range(2):  # the second time from the cache, or without a lookup
        if fresh:
            forget_phones()
        assert map_page(pages, [after], excluded(after, excluded_after)) == [expected]
