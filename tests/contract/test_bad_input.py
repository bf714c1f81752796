"""Bad Graph data through a whole cycle: random member payloads (wrong types, missing fields, huge strings,
odd unicode, nested junk, non-user members) mixed with good users, served by the Graph emulator over HTTPS
to the real engine (in-process, against both emulators and a fresh SQLite store per example).

Whatever the payloads, a cycle must not crash or end in an error: every good user becomes an active agent
with the right number, every bad row is recorded as skipped with a reason and a detail (rows without a
usable object ID cannot be keyed, so they are only counted), and nothing else is written. Two documented
exceptions: real devices, contacts and service principals never reach syncd (it reads the group's members
cast to users), and a page in which no user has a UPN is Graph's "limited information" answer, which fails
the cycle (syncd/graph/source.py) and must then write nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.config.settings import DatabaseSettings, Settings, SmartCommSettings, SyncSettings
from syncd.core.model import MemberStatus, SkipReason
from syncd.cycle.engine import CycleResult, Engine
from syncd.emulators.graph import DEFAULT_TENANT_ID, RAW_OMIT, GraphEmulator, GraphServers
from syncd.emulators.server import RunningServer
from syncd.emulators.smartcomm import (
    DEFAULT_CUSTOMER_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    SmartCommEmulator,
)
from syncd.store import Store
from tests.contract.conftest import graph_settings_for

pytestmark = pytest.mark.timeout(240)

# --- strategies ------------------------------------------------------------------------------------------

# Any text UTF-8 can carry (no lone surrogates: JSON on the wire cannot), from every Unicode category.
ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
HUGE_TEXT = st.builds(
    lambda unit, times: unit * times,
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=3),
    st.integers(2_000, 20_000),
)
JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | ODD_TEXT
)
JUNK = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=8,
)
# Keys no Graph user property has: served as they are, always.
EXTRA_KEYS = st.dictionaries(st.text(max_size=12).map(lambda key: f"x-{key}"), JUNK | HUGE_TEXT, max_size=3)


@dataclass(frozen=True)
class Row:
    """One group member to create: raw user JSON (or another directory object) and what syncd should do."""

    kind: str
    """"good", a SkipReason value, or "device"/"contact"/"service_principal" (real non-user objects)."""
    props: dict[str, object]
    keyed: bool = True
    """False when the served object has no usable "id": only counted, never recorded."""


def _number(index: int, style: int) -> tuple[str, str]:
    """(as written in Graph, E.164) for the index-th distinct valid number."""
    local = f"{1000 + index:04d}"
    e164 = f"+1415555{local}"
    written = [
        f"+1 415 555 {local}",
        e164,
        f"+1 (415) 555-{local}",
        # Full-width digits and plus, as some directories hold them.
        "".join(chr(ord(c) + 0xFEE0) for c in e164),
    ][style % 4]
    return written, e164


@st.composite
def good_row(draw: st.DrawFn, index: int) -> tuple[Row, str]:
    written, e164 = _number(index, draw(st.integers(0, 3)))
    # Entries before the number that are not text (or blank) are passed over; anything after is ignored.
    before = draw(
        st.lists(st.none() | st.integers() | st.sampled_from(["", "   "]) | st.just({}), max_size=2)
    )
    after = draw(st.lists(JUNK, max_size=2))
    props: dict[str, object] = {"businessPhones": [*before, written, *after]}
    props["userPrincipalName"] = draw(
        st.builds(lambda odd: f"good{index}-{odd}@contoso.com", ODD_TEXT)
        | st.builds(lambda huge: f"good{index}-{huge}@contoso.com", HUGE_TEXT)
        | st.sampled_from([42, None, RAW_OMIT, [], {"upn": "x@contoso.com"}, True])
    )
    # Only exactly false disables; other values, wrong types included, leave the account as Graph has it.
    props["accountEnabled"] = draw(st.sampled_from([True, None, RAW_OMIT, "yes", 1, [], {"enabled": False}]))
    props["onPremisesImmutableId"] = draw(st.just(RAW_OMIT) | JUNK | HUGE_TEXT)
    props["displayName"] = draw(ODD_TEXT | HUGE_TEXT | JUNK)
    props |= draw(EXTRA_KEYS)
    return Row("good", props), e164


@st.composite
def bad_row(draw: st.DrawFn, index: int) -> Row:
    kind = draw(
        st.sampled_from(
            [
                SkipReason.NO_PHONE,
                SkipReason.INVALID_PHONE,
                SkipReason.DISABLED,
                SkipReason.NOT_A_USER,
                SkipReason.INVALID_RECORD,
                "device",
                "contact",
                "service_principal",
            ]
        )
    )
    if kind in ("device", "contact", "service_principal"):
        return Row(kind, {})
    valid, _ = _number(500 + index, draw(st.integers(0, 3)))  # a number no good row uses
    props: dict[str, object] = {"userPrincipalName": draw(ODD_TEXT | st.just(RAW_OMIT) | JUNK)}
    props |= draw(EXTRA_KEYS)
    keyed = True
    if kind is SkipReason.NO_PHONE:
        props["businessPhones"] = draw(
            st.sampled_from([RAW_OMIT, None, [], [None, 1, {}], "", ["  "], {"n": valid}, valid, 14155550100])
            | st.lists(
                st.none() | st.integers() | st.booleans() | st.lists(st.integers(), max_size=2), max_size=3
            )
        )
    elif kind is SkipReason.INVALID_PHONE:
        junk = draw(
            st.builds(lambda odd: f"{odd} phone", ODD_TEXT)  # letters: never a number
            | st.builds(lambda digits: "9" * digits, st.integers(300, 20_000))
            | st.builds(lambda huge: f"+{huge}", HUGE_TEXT)
            | st.sampled_from([f"{valid} x12", f"{valid}, +1 415 555 0999", "+", "+0", "1-800-FLOWERS"])
        )
        props["businessPhones"] = [junk]
    else:
        props["businessPhones"] = [valid]
    if kind is SkipReason.DISABLED:
        props["accountEnabled"] = False
    elif kind is SkipReason.NOT_A_USER:
        props["@odata.type"] = draw(
            st.sampled_from(
                ["#microsoft.graph.device", "#microsoft.graph.group", "#microsoft.graph.orgContact"]
            )
            | ODD_TEXT.filter(lambda text: text != "#microsoft.graph.user")
            | st.integers()
            | st.lists(st.integers(), max_size=2)
        )
    elif kind is SkipReason.INVALID_RECORD:
        props["id"] = draw(
            st.sampled_from([RAW_OMIT, None, "", "   ", "\t\n", 42, 0, True, [], {"id": "x"}, [1]])
        )
        keyed = False
    return Row(str(kind), props, keyed)


@st.composite
def member_lists(draw: st.DrawFn) -> tuple[list[tuple[Row, str]], list[Row]]:
    goods = draw(st.integers(0, 6))
    bads = draw(st.integers(0 if goods else 1, 8))
    return [draw(good_row(i)) for i in range(goods)], [draw(bad_row(i)) for i in range(bads)]


# --- the test --------------------------------------------------------------------------------------------


@pytest.fixture
def emulators(
    graph_server: tuple[GraphEmulator, GraphServers],
    smartcomm_server: tuple[SmartCommEmulator, RunningServer],
) -> Iterator[tuple[GraphEmulator, GraphServers, SmartCommEmulator, RunningServer]]:
    yield (*graph_server, *smartcomm_server)
    graph_server[0].reset()
    smartcomm_server[0].reset()


def _settings(graph: GraphServers, smartcomm: RunningServer, group: str, database: Path) -> Settings:
    return Settings(
        database=DatabaseSettings(url=f"sqlite:///{database}"),
        graph=graph_settings_for(graph, [group], max_retries=1),
        smartcomm=SmartCommSettings(
            base_url=smartcomm.base_url,
            customer_id=DEFAULT_CUSTOMER_ID,
            username=DEFAULT_USERNAME,
            password=DEFAULT_PASSWORD,
            ca_bundle=str(smartcomm.ca_path),
            timeout_s=10.0,
            backoff_initial_s=0.02,
            backoff_max_s=0.1,
            max_attempts=2,
        ),
        sync=SyncSettings(max_offboard=10, concurrency=4),
    )


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(members=member_lists(), full=st.booleans())
def test_a_cycle_over_random_member_payloads_syncs_the_good_and_skips_the_bad(
    emulators: tuple[GraphEmulator, GraphServers, SmartCommEmulator, RunningServer],
    members: tuple[list[tuple[Row, str]], list[Row]],
    full: bool,
) -> None:
    graph, graph_server, smartcomm, sc_server = emulators
    graph.reset()
    smartcomm.reset()
    smartcomm.register_tenants([DEFAULT_TENANT_ID])
    goods, bads = members
    group = graph.add_group(display_name="SmartCommunicator agents")
    wanted: dict[str, str] = {}  # object id -> E.164
    for row, e164 in goods:
        wanted[graph.add_raw_user(row.props)] = e164
    smartcomm.register_numbers(wanted.values())  # the good rows' numbers, as the customer registered them
    skipped_ids: dict[str, str] = {}  # object id -> skip reason
    expected_counts: dict[str, int] = {}
    member_ids = list(wanted)
    for row in bads:
        if row.kind == "device":
            object_id = graph.add_device(display_name="kiosk")
        elif row.kind == "contact":
            object_id = graph.add_contact(display_name="vendor")
        elif row.kind == "service_principal":
            object_id = graph.add_service_principal(display_name="robot")
        else:
            object_id = graph.add_raw_user(row.props)
        member_ids.append(object_id)
        if row.kind not in set(SkipReason):
            continue  # the users cast leaves it out: never seen, never recorded
        expected_counts[row.kind] = expected_counts.get(row.kind, 0) + 1
        if row.keyed:
            skipped_ids[object_id] = row.kind
    graph.add_members(group, member_ids)
    served = [row.props for row, _ in goods] + [row.props for row in bads if row.kind in set(SkipReason)]
    # Graph's "limited information" answer has no UPN on any user: syncd refuses such a page as a whole.
    upns = [props.get("userPrincipalName") for props in served]
    limited = bool(served) and not any(upn for upn in upns if upn is not RAW_OMIT)

    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / "syncd.db"
        with Store(f"sqlite:///{database}") as store:
            store.upgrade()
            engine = Engine(_settings(graph_server, sc_server, group, database), store)

            async def one_cycle() -> CycleResult:
                try:
                    return await engine.run_cycle(trigger="test", full=full)
                finally:
                    await engine.aclose()

            result = asyncio.run(one_cycle())
            recorded = store.load_recorded()

    writes = [
        r for r in smartcomm.requests if r.method in {"POST", "PATCH", "DELETE"} and "/agents" in r.path
    ]
    if limited:
        assert result.error is not None
        assert "limited information" in result.error
        assert result.exit_code == 2
        assert writes == []
        assert recorded == {}
        return
    assert result.error is None, result.error
    assert result.stopped_by is None
    assert result.failures == []
    assert result.exit_code == 0
    assert result.outcomes == ({"onboard": {"ok": len(wanted)}} if wanted else {})
    assert result.skipped == expected_counts
    active = {
        str(a["user_object_id"]): str(a["phone_number"])
        for a in smartcomm.agents()
        if a["status"] == "active"
    }
    assert active == wanted
    assert sorted(r.body["user_object_id"] for r in writes if r.method == "POST") == sorted(wanted)  # type: ignore[index]
    assert len(writes) == len(wanted)  # nothing but the onboardings
    # Our records: the good ones active with their number, each keyed bad row skipped with why, nothing else.
    assert set(recorded) == set(wanted) | set(skipped_ids)
    for object_id, e164 in wanted.items():
        record = recorded[object_id]
        assert record.status is MemberStatus.ACTIVE
        assert record.agent is not None
        assert record.agent.phone_number == e164
    for object_id, reason in skipped_ids.items():
        record = recorded[object_id]
        assert record.status is MemberStatus.SKIPPED
        assert record.skip_reason == reason
        assert record.detail is not None
        assert record.detail.strip()
