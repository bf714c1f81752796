"""Relinking users re-created in Entra and the offboarding grace period, through the real `syncd` command
against both emulators over HTTPS, with the settings a user gets (`sync.relink = "auto"`).

The cases of the plan (conflicts, relink off, the guard, the grace's clock, each refusal of `syncd relink`)
are in tests/cycle/test_relink.py; here stay a few representatives: a relink in a sync (with its history and
the explanation of both object IDs), a relink across two cycles within the grace period (with `syncd
status`), `syncd relink` by hand (a refusal and a move), and a kill -9 between the pending operation and
its settlement. Each asserts what SmartCommunicator received (its request
log), what it holds (agents and the per-agent data the emulator keeps) and what the command printed.
"""

from __future__ import annotations

import base64
import json
import signal
import time
import uuid

from syncd.config.loader import load_settings
from syncd.core.model import Action, MemberStatus
from syncd.emulators.smartcomm import ScriptedFault
from syncd.store import Store
from tests.e2e.conftest import World

GUID = "1f6d0b2e-3c4a-4e5f-8a9b-0c1d2e3f4a5b"
DATA = {"notes": "prefers SMS", "calls": 7}
GRACE = {"SYNCD_SYNC__OFFBOARD_GRACE": "1h"}


def anchored(world: World, name: str, phone: str) -> str:
    immutable_id = base64.b64encode(uuid.UUID(GUID).bytes_le).decode()
    return world.add_user(name, phone, on_premises_immutable_id=immutable_id)


def setup(world: World, env: dict[str, str] | None = None) -> str:
    """Alice (anchored) and a colleague onboarded by a cycle, Alice's agent with data; logs cleared."""
    alice = anchored(world, "alice", "+1 415 555 0001")
    world.add_user("bob", "+1 415 555 0002")
    assert world.sync_in_process(env).exit_code == 0
    world.smartcomm.set_agent_data(alice, **DATA)  # type: ignore[arg-type]
    world.smartcomm.clear_requests()
    return alice


def the_relink(new: str) -> tuple[str, str, object]:
    body = {"phone_number": "+14155550001", "upn": "alice@contoso.com", "user_object_id": new}
    return ("PATCH", f"/{GUID}", body | {"transfer_data": True})


def store_of(world: World) -> Store:
    return Store(load_settings(world.config, {}).database.url)


def test_sync_relinks_a_recreated_user_and_history_and_explain_show_it(world: World) -> None:
    old = setup(world)
    world.graph.delete_user(old)
    new = anchored(world, "alice", "+1 415 555 0001")

    synced = world.run("sync", "--json")
    assert synced.code == 0, synced.stderr
    report = synced.json()
    assert report["planned"] == {"onboard": 0, "update": 0, "offboard": 0, "relink": 1}
    assert report["outcomes"] == {"relink": {"ok": 1}}
    assert report["relinked"] == [{"from_object_id": old, "object_id": new, "upn": "alice@contoso.com"}]
    assert world.writes() == [the_relink(new)]  # one PATCH: no DELETE, no POST
    assert [r.query for r in world.smartcomm.requests if r.method == "PATCH"] == [
        {"key_id": "consistency_id"}
    ]
    assert world.smartcomm.agent_data(new) == DATA

    history = world.run("history", "--user", old, "--action", "relink", "--format", "json")
    assert history.code == 0, history.stderr
    [row] = json.loads(history.stdout)
    assert (row["object_id"], row["outcome"]) == (new, "ok")
    assert row["changed"]["user_object_id"] == {"from": old, "to": new}

    for who, moved in ((old, f"to {new}"), (new, f"from {old}")):
        explained = world.run("explain", who)
        assert explained.code == 0, explained.stderr
        [line] = [x for x in explained.stdout.splitlines() if x.strip().endswith(moved)]
        assert " relink " in line  # under "Last operations"
        if who == old:
            assert f"agent moved to {new} (relinked" in explained.stdout


def test_within_the_grace_nothing_is_offboarded_and_a_later_recreation_is_relinked(world: World) -> None:
    old = setup(world, GRACE)
    world.graph.delete_user(old)
    held = world.run("sync", env=GRACE)
    assert held.code == 0, held.stderr
    assert world.writes() == []  # no DELETE
    assert "offboard pending 1" in held.stdout
    status = world.run("status", env=GRACE)
    assert "Offboard pending (out of scope, within sync.offboard_grace): 1" in status.stdout
    assert f"  {old}  alice@contoso.com  out of scope since " in status.stdout
    assert "offboard due at " in status.stdout

    new = anchored(world, "alice", "+1 415 555 0001")
    relinked = world.run("sync", env=GRACE)
    assert relinked.code == 0, relinked.stderr
    assert f"  relinked   {old} -> {new}  alice@contoso.com" in relinked.stdout
    assert world.writes() == [the_relink(new)]
    assert world.smartcomm.agent_data(new) == DATA


def test_relink_by_hand_refuses_saying_why_then_moves_the_agent(world: World) -> None:
    old = world.add_user("carol", "+1 415 555 0003")  # cloud-only: no anchor, so no relink by itself
    dave = world.add_user("dave", "+1 415 555 0004")
    assert world.sync_in_process().exit_code == 0
    world.smartcomm.set_agent_data(old, **DATA)  # type: ignore[arg-type]
    world.graph.delete_user(old)
    new = world.add_user("carol", "+1 415 555 0003")
    world.smartcomm.clear_requests()

    # One refusal through the command (each one is in tests/cycle/test_relink.py): exit 2, why, nothing sent.
    refused = world.run("relink", dave, new)
    assert refused.code == 2, (refused.stdout, refused.stderr)
    assert f"nothing sent: OLD {dave} (dave@contoso.com) is still in scope" in refused.stderr
    assert world.writes() == []

    done = world.run("relink", old, new)
    assert done.code == 0, done.stderr
    assert f"syncd relink: moved the agent of {old} to {new} (carol@contoso.com)" in done.stdout
    assert f"  PATCH .../agents/{old}?key_id=user_object_id" in done.stdout
    body = {"phone_number": "+14155550003", "upn": "carol@contoso.com", "user_object_id": new}
    assert world.writes() == [("PATCH", f"/{old}", body | {"transfer_data": True})]
    assert world.smartcomm.agent_data(new) == DATA


def test_kill_9_between_pending_and_settled_is_settled_by_reading_the_agent_back(world: World) -> None:
    old = setup(world)
    world.graph.delete_user(old)
    new = anchored(world, "alice", "+1 415 555 0001")
    # The PATCH is applied, then its answer waits: the process dies between pending and settled.
    world.smartcomm.inject(ScriptedFault(kind="delay_after", method="PATCH", delay_s=60))
    process = world.start("sync")
    deadline = time.monotonic() + 60
    while not [r for r in world.smartcomm.requests if r.method == "PATCH" and r.applied]:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the relink was never sent"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    with store_of(world) as store:
        [pending] = store.pending_operations()
        assert (pending.action, pending.object_id, pending.from_object_id) == (Action.RELINK, new, old)
    world.smartcomm.clear_requests()

    rerun = world.run("sync", "--json")
    assert rerun.code == 0, rerun.stderr
    assert world.writes() == []  # read back: no second PATCH, and never a DELETE or a POST
    assert world.smartcomm.agent_data(new) == DATA
    with store_of(world) as store:
        assert store.pending_operations() == []
        records = store.load_recorded([old, new])
        assert records[new].status is MemberStatus.ACTIVE
        assert (records[old].status, records[old].agent) == (MemberStatus.OFFBOARDED, None)
