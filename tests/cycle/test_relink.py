"""Relinking a user re-created in Entra, and the offboarding grace period, in-process against both emulators.

A user deleted and synced again from on-premises gets a new object ID but keeps its `onPremisesImmutableId`
(the consistency GUID). Each test asserts what SmartCommunicator received (the request log: exactly one
PATCH with `key_id=consistency_id` and `transfer_data: true`, never a DELETE or a POST), what it holds (the
agent and the per-agent data the emulator keeps, `set_agent_data`), our records of both object IDs and the
cycle's result. The grace period is driven by the injected clock. `syncd relink` by hand is
`Engine.relink`, as the command calls it (tests/e2e/test_relink.py runs the command itself). The tests
marked `@BOTH` run on SQLite and on PostgreSQL (skipped unless SYNCD_TEST_POSTGRES_URL is set).
"""

from __future__ import annotations

import base64
import getpass
import socket
import uuid

import pytest

from syncd.core.model import Action, MemberStatus
from syncd.emulators.smartcomm import ScriptedFault
from syncd.reports.summary import describe_change
from tests.cycle.conftest import World, expect, stopped_by

ALICE_GUID = "1f6d0b2e-3c4a-4e5f-8a9b-0c1d2e3f4a5b"
GUIDS = [f"{ALICE_GUID[:-1]}{i}" for i in range(6)]
GRACE = {"SYNCD_SYNC__OFFBOARD_GRACE": "1h"}
DATA = {"notes": "prefers SMS; escalations to Dana", "calls": 7}
BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
"""Overrides conftest's `backend` fixture for one test: it runs on both databases (PostgreSQL when
SYNCD_TEST_POSTGRES_URL is set)."""


def immutable_id(guid: str) -> str:
    """Entra's onPremisesImmutableId for a consistency GUID (base64 of its little-endian bytes)."""
    return base64.b64encode(uuid.UUID(guid).bytes_le).decode()


def anchored(world: World, name: str, phone: str, guid: str) -> str:
    """A user synced from on-premises: in the group, with a consistency GUID."""
    return world.add_user(name, phone, on_premises_immutable_id=immutable_id(guid))


def recreate(world: World, old: str, name: str, phone: str, guid: str | None) -> str:
    """Delete `old` from the directory and create the same person again: a new object ID, the same UPN,
    number and (when given) anchor."""
    world.graph.delete_user(old)
    if guid is None:
        return world.add_user(name, phone)
    return anchored(world, name, phone, guid)


def relinked(new: str, guid: str, phone: str, upn: str, *, transfer: bool = True) -> tuple[str, str, object]:
    """The one write a relink sends (as `World.writes` lists it)."""
    body = {"phone_number": phone, "upn": upn, "user_object_id": new, "transfer_data": transfer}
    return ("PATCH", f"/{guid}", body)


def patch_queries(world: World) -> list[dict[str, str]]:
    return [r.query for r in world.smartcomm.requests if r.method == "PATCH"]


async def setup_alice(world: World, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Alice (anchored) and two colleagues onboarded, Alice's agent with data; the request logs cleared."""
    alice = anchored(world, "alice", "+1 415 555 0001", ALICE_GUID)
    others = [world.add_user(f"user{i}", f"+1 415 555 01{i:02d}") for i in range(2)]
    expect(await world.cycle(env=env))
    world.smartcomm.set_agent_data(alice, **DATA)  # type: ignore[arg-type]
    world.smartcomm.clear_requests()
    return alice, others


# --- relinking in a cycle ----------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("full", [False, True], ids=["delta", "full"])
async def test_a_recreated_user_keeps_their_agent_and_its_data_with_one_patch(
    world: World, full: bool
) -> None:
    old, others = await setup_alice(world)
    new = recreate(world, old, "alice", "+1 415 555 0001", ALICE_GUID)
    result = expect(await world.cycle(full=full))
    assert result.graph_read == ("full" if full else "delta")
    assert result.planned == {"onboard": 0, "update": 0, "offboard": 0, "relink": 1}
    assert result.outcomes == {"relink": {"ok": 1}}
    assert result.relinked == [(old, new, "alice@contoso.com")]
    # Exactly one PATCH, addressed by the consistency GUID; no DELETE and no POST.
    assert world.writes() == [relinked(new, ALICE_GUID, "+14155550001", "alice@contoso.com")]
    assert patch_queries(world) == [{"key_id": "consistency_id"}]
    assert world.agents() == {
        new: ("+14155550001", "alice@contoso.com"),
        others[0]: ("+14155550100", "user0@contoso.com"),
        others[1]: ("+14155550101", "user1@contoso.com"),
    }
    assert world.smartcomm.agent_data(new) == DATA  # the data moved with the agent
    # Both records changed (one transaction): the new object ID has the agent, the old one none.
    records = world.store.load_recorded([old, new])
    assert records[new].status is MemberStatus.ACTIVE
    assert records[new].agent is not None
    assert records[new].agent.consistency_id == ALICE_GUID
    assert (records[old].status, records[old].agent) == (MemberStatus.OFFBOARDED, None)
    assert f"agent moved to {new}" in str(records[old].detail)
    # The history finds the relink from either object ID.
    for who in (old, new):
        [entry] = world.store.iter_operations(object_ids=[who], actions=[Action.RELINK])
        operation = entry.operation
        assert (operation.action, operation.from_object_id, operation.object_id) == (Action.RELINK, old, new)
    assert [r["from_object_id"] for r in world.status()["relinks"]] == [old]
    # Converged: the next cycle sends nothing.
    world.smartcomm.clear_requests()
    expect(await world.cycle(full=full))
    assert world.writes() == []


async def test_a_dry_run_lists_the_relink_and_sends_nothing(world: World) -> None:
    old, _ = await setup_alice(world)
    new = recreate(world, old, "alice", "+1 415 555 0001", ALICE_GUID)
    result = expect(await world.cycle(dry_run=True))
    assert result.planned["relink"] == 1
    [change] = result.changes
    assert describe_change(change).startswith(f"> relink   {old} -> {new}  alice@contoso.com +14155550001")
    assert result.to_json()["planned"] == {"onboard": 0, "update": 0, "offboard": 0, "relink": 1}
    assert world.writes() == []


@BOTH
async def test_a_user_recreated_within_the_grace_is_relinked_in_a_later_cycle(world: World) -> None:
    old, _ = await setup_alice(world, GRACE)
    world.graph.delete_user(old)
    first = expect(await world.cycle(env=GRACE))
    assert first.graph_read == "delta"
    assert world.writes() == []  # no DELETE: the grace period runs
    assert first.offboard_pending == {old: world.clock.now + 3600}
    [pending] = world.status(GRACE)["offboard_pending"]
    assert (pending["object_id"], pending["due_at"]) == (old, pytest.approx(world.clock.now + 3600, abs=1e-3))

    world.clock.advance(600)
    new = anchored(world, "alice", "+1 415 555 0001", ALICE_GUID)
    second = expect(await world.cycle(env=GRACE))
    assert second.graph_read == "delta"
    assert world.writes() == [relinked(new, ALICE_GUID, "+14155550001", "alice@contoso.com")]
    assert world.smartcomm.agent_data(new) == DATA
    assert world.status(GRACE)["offboard_pending"] == []


async def test_the_holder_still_in_scope_is_a_conflict_and_nothing_moves(world: World) -> None:
    old, _ = await setup_alice(world)
    twin = anchored(world, "alice.twin", "+1 415 555 0009", ALICE_GUID)  # two live people, one anchor
    result = expect(await world.cycle(), 1)
    assert result.planned == {"onboard": 1, "update": 0, "offboard": 0, "relink": 0}
    [failure] = result.failures
    assert failure.object_id == twin
    assert f"belongs to agent {old}" in failure.error
    assert f"{old} is in scope too" in failure.error
    assert [(m, p) for m, p, _ in world.writes()] == [("POST", "/")]  # refused by the service
    assert world.agents()[old] == ("+14155550001", "alice@contoso.com")
    assert world.smartcomm.agent_data(old) == DATA
    assert "belongs to agent" in str(world.status()["attention"][0]["detail"])


async def test_relink_off_fails_the_onboarding_naming_syncd_relink(world: World) -> None:
    env = GRACE | {"SYNCD_SYNC__RELINK": "off"}  # the grace keeps the old agent, so the clash is certain
    old, _ = await setup_alice(world, env)
    new = recreate(world, old, "alice", "+1 415 555 0001", ALICE_GUID)
    result = expect(await world.cycle(env=env), 1)
    assert result.planned == {"onboard": 1, "update": 0, "offboard": 0, "relink": 0}
    [failure] = result.failures
    assert "sync.relink is off" in failure.error
    assert f"`syncd relink {old} {new}`" in failure.error
    assert [(m, p) for m, p, _ in world.writes()] == [("POST", "/")]
    assert old in world.agents()


async def test_the_relink_guard_stops_above_its_limit_and_passes_at_it(world: World) -> None:
    ids = [anchored(world, f"person{i}", f"+1 415 555 02{i:02d}", GUIDS[i]) for i in range(3)]
    world.add_user("stays", "+1 415 555 0299")
    expect(await world.cycle())
    world.smartcomm.clear_requests()
    new = [recreate(world, old, f"person{i}", f"+1 415 555 02{i:02d}", GUIDS[i]) for i, old in enumerate(ids)]

    stopped = expect(await world.cycle(env={"SYNCD_SYNC__MAX_RELINK": "2"}), 3)
    assert stopped_by(stopped) == "max_relink"
    assert stopped.stopped_by is not None
    assert stopped.stopped_by.message.startswith("3 relinks exceed sync.max_relink = 2; nothing was changed")
    assert world.writes() == []

    at_limit = expect(await world.cycle(env={"SYNCD_SYNC__MAX_RELINK": "3"}))
    assert at_limit.outcomes == {"relink": {"ok": 3}}
    assert sorted(body["user_object_id"] for _, _, body in world.writes()) == sorted(new)  # type: ignore[index]
    assert {m for m, _, _ in world.writes()} == {"PATCH"}


async def test_force_passes_the_relink_guard(world: World) -> None:
    old, _ = await setup_alice(world)
    recreate(world, old, "alice", "+1 415 555 0001", ALICE_GUID)
    expect(await world.cycle(env={"SYNCD_SYNC__MAX_RELINK": "0"}), 3)
    forced = expect(await world.cycle(force=True, env={"SYNCD_SYNC__MAX_RELINK": "0"}))
    assert forced.outcomes == {"relink": {"ok": 1}}


@BOTH
async def test_a_relink_whose_answer_is_lost_is_settled_by_reading_the_agent_back(world: World) -> None:
    old, _ = await setup_alice(world)
    new = recreate(world, old, "alice", "+1 415 555 0001", ALICE_GUID)
    # Applied, then every answer lost: the outcome is unknown and the operation stays pending.
    world.smartcomm.inject(
        ScriptedFault(kind="drop_after", method="PATCH", path_contains="/agents", times=20)
    )
    first = expect(await world.cycle(env={"SYNCD_SMARTCOMM__MAX_ATTEMPTS": "2"}), 1)
    assert first.outcomes == {"relink": {"pending": 1}}
    assert [op.from_object_id for op in world.store.pending_operations()] == [old]
    assert world.store.load_recorded([new])[new].status is MemberStatus.PENDING
    world.smartcomm.clear_requests()
    expect(await world.cycle())
    assert world.writes() == []  # read back: no second PATCH, no DELETE, no POST
    assert world.store.pending_operations() == []
    records = world.store.load_recorded([old, new])
    assert records[new].status is MemberStatus.ACTIVE
    assert (records[old].status, records[old].agent) == (MemberStatus.OFFBOARDED, None)
    assert world.smartcomm.agent_data(new) == DATA


async def test_an_agent_gone_behind_our_back_is_onboarded_instead(world: World) -> None:
    old, _ = await setup_alice(world)
    world.smartcomm.reset()  # SmartCommunicator lost every agent: Alice's is not there to move
    new = recreate(world, old, "alice", "+1 415 555 0001", ALICE_GUID)
    result = expect(await world.cycle())
    assert [(m, p) for m, p, _ in world.writes()] == [("PATCH", f"/{ALICE_GUID}"), ("POST", "/")]
    assert result.relinked == []  # nothing was moved
    assert new in world.agents()
    records = world.store.load_recorded([old, new])
    assert (records[new].status, records[old].agent) == (MemberStatus.ACTIVE, None)


# --- the offboarding grace period --------------------------------------------------------------------------


async def test_leaving_and_coming_back_within_the_grace_sends_nothing(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(3)]
    expect(await world.cycle(env=GRACE))
    world.smartcomm.clear_requests()
    world.graph.remove_member(world.group, ids[0])
    left = expect(await world.cycle(env=GRACE))
    assert left.planned["offboard"] == 0
    assert list(left.offboard_pending) == [ids[0]]
    assert world.store.load_recorded([ids[0]])[ids[0]].left_scope_at == pytest.approx(
        world.clock.now, abs=1e-3
    )

    world.clock.advance(1800)
    world.graph.add_member(world.group, ids[0])
    back = expect(await world.cycle(env=GRACE))
    assert back.offboard_pending == {}
    assert world.store.load_recorded([ids[0]])[ids[0]].left_scope_at is None
    assert world.status(GRACE)["offboard_pending"] == []

    world.clock.advance(7200)  # long after the grace would have ended: nothing is due
    expect(await world.cycle(env=GRACE))
    assert world.writes() == []
    assert sorted(world.agents()) == sorted(ids)


async def test_staying_out_past_the_grace_offboards_once(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(3)]
    expect(await world.cycle(env=GRACE))
    world.smartcomm.clear_requests()
    world.graph.remove_member(world.group, ids[0])
    expect(await world.cycle(env=GRACE))
    world.clock.advance(1800)
    waiting = expect(await world.cycle(env=GRACE))
    assert waiting.offboard_pending == {ids[0]: pytest.approx(world.clock.now + 1800, abs=1e-3)}
    assert world.writes() == []

    world.clock.advance(1801)  # over an hour since it left (the database keeps microseconds): due
    due = expect(await world.cycle(env=GRACE))
    assert due.graph_read == "delta"
    assert world.writes() == [("DELETE", f"/{ids[0]}", None)]
    assert due.outcomes == {"offboard": {"ok": 1}}
    world.smartcomm.clear_requests()
    expect(await world.cycle(env=GRACE))
    assert world.writes() == []
    assert world.status(GRACE)["offboard_pending"] == []


async def test_max_offboard_counts_offboards_when_they_fall_due(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(5)]
    env = GRACE | {"SYNCD_SYNC__MAX_OFFBOARD": "2"}
    expect(await world.cycle(env=env))
    world.smartcomm.clear_requests()
    for oid in ids[:3]:
        world.graph.remove_member(world.group, oid)
    held = expect(await world.cycle(env=env))  # three leave, none due: no guard yet
    assert len(held.offboard_pending) == 3
    world.clock.advance(3601)
    stopped = expect(await world.cycle(env=env), 3)
    assert stopped_by(stopped) == "max_offboard"
    assert world.writes() == []
    expect(await world.cycle(env=env, force=True))
    assert sorted(p for m, p, _ in world.writes() if m == "DELETE") == sorted(f"/{oid}" for oid in ids[:3])


# --- syncd relink by hand ----------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("transfer", [True, False], ids=["transfer_data", "no-transfer-data"])
async def test_relink_by_hand_moves_a_cloud_only_agent_with_or_without_its_data(
    world: World, transfer: bool
) -> None:
    old = world.add_user("bob", "+1 415 555 0042")  # cloud-only: no anchor
    world.add_user("carol", "+1 415 555 0043")
    expect(await world.cycle())
    world.smartcomm.set_agent_data(old, **DATA)  # type: ignore[arg-type]
    new = recreate(world, old, "bob", "+1 415 555 0042", None)
    world.smartcomm.clear_requests()

    done = await world.relink(old, new, transfer_data=transfer)
    assert (done.exit_code, done.outcome) == (0, "ok"), done.message
    body = {"phone_number": "+14155550042", "upn": "bob@contoso.com", "user_object_id": new}
    # No anchor: addressed by the old object ID (key_id=user_object_id is the API's default, not sent).
    assert world.writes() == [("PATCH", f"/{old}", body | {"transfer_data": transfer})]
    assert patch_queries(world) == [{}]
    assert world.agents()[new] == ("+14155550042", "bob@contoso.com")
    if transfer:
        assert world.smartcomm.agent_data(new) == DATA
    else:  # the agent moved without its data, which stays behind with the old object ID
        assert world.smartcomm.agent_data(new) == {"notes": "", "calls": 0}
        assert world.smartcomm.agent_data(old) == DATA
    records = world.store.load_recorded([old, new])
    assert (records[new].status, records[old].status) == (MemberStatus.ACTIVE, MemberStatus.OFFBOARDED)
    [run] = [r for r in world.store.runs(limit=5) if r.kind == "relink"]
    assert (run.id, run.outcome, run.counts) == (done.run_id, "ok", {"planned_relink": 1, "relink_ok": 1})
    assert run.requested_by == f"syncd relink by {getpass.getuser()} on {socket.gethostname()}"
    [relink, _onboard] = world.store.iter_operations(object_ids=[old])  # newest first
    assert (relink.operation.action, relink.operation.object_id) == (Action.RELINK, new)
    world.smartcomm.clear_requests()
    expect(await world.cycle())
    assert world.writes() == []


async def test_relink_by_hand_refuses_saying_why_and_sends_nothing(world: World) -> None:
    old = world.add_user("bob", "+1 415 555 0042")
    carol = world.add_user("carol", "+1 415 555 0043")
    expect(await world.cycle())
    new = recreate(world, old, "bob", "+1 415 555 0042", None)
    outsider = world.graph.add_user(upn="dave@contoso.com", business_phones=["+1 415 555 0044"])
    runs = len(world.store.runs(limit=100))
    world.smartcomm.clear_requests()

    refusals = {
        (old, outsider): f"NEW {outsider} is not in scope",
        (old, carol): f"NEW {carol} already has an agent",
        (carol, new): f"OLD {carol} (carol@contoso.com) is still in scope",
        ("0d9b6a57-7c1e-4a43-9d1e-2f6b1c3d4e5f", new): "has no active agent on SmartCommunicator",
        ("not-an-id", new): "OLD 'not-an-id' is not an object ID",
        (old, old): "the same object ID",
    }
    for (a, b), why in refusals.items():
        refused = await world.relink(a, b)
        assert (refused.exit_code, refused.outcome) == (2, "refused"), (a, b, refused.message)
        assert why in refused.message, refused.message
    assert world.writes() == []
    assert len(world.store.runs(limit=100)) == runs  # a refusal records nothing

    planned = await world.relink(old, new, dry_run=True)
    assert (planned.exit_code, planned.outcome, planned.key, planned.key_id) == (
        0,
        "planned",
        old,
        "user_object_id",
    )
    assert planned.body["user_object_id"] == new
    assert world.writes() == []
    assert len(world.store.runs(limit=100)) == runs
