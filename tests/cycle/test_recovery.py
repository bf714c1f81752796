"""Crash recovery in a real cycle: writes whose answers were lost stay pending, and the next cycle reads
their agents back several at a time (never more than `sync.concurrency` at once), settles them without a
second write, and, when one read fails, settles the others and leaves that one for the next start."""

from __future__ import annotations

import pytest
import structlog

from syncd.emulators.common import Faults
from syncd.emulators.smartcomm import ScriptedFault
from tests.cycle.conftest import World, expect

LATENCY_S = 0.2
CONCURRENCY = "4"
BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


async def lose_every_answer(world: World, count: int) -> list[str]:
    """`count` people onboarded by a cycle whose every answer was lost: `count` operations left pending."""
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(count)]
    world.smartcomm.inject(
        ScriptedFault(kind="drop_after", method="POST", path_contains="/agents", times=2 * count)
    )
    # All sent at once: the first lost answer stops the cycle starting writes (a systemic failure).
    env = {"SYNCD_SMARTCOMM__MAX_ATTEMPTS": "2", "SYNCD_SYNC__CONCURRENCY": str(count)}
    lost = expect(await world.cycle(env=env), 1)
    assert lost.outcomes == {"onboard": {"pending": count}}
    assert sorted(op.object_id for op in world.store.pending_operations()) == sorted(ids)
    world.smartcomm.clear_requests()
    return ids


def read_backs(world: World) -> list[tuple[float, str]]:
    """The single-agent reads SmartCommunicator received: (when, object ID), in order."""
    return [
        (r.at, r.path.rsplit("/", 1)[-1])
        for r in world.smartcomm.requests
        if r.method == "GET" and "/agents/" in r.path
    ]


@BOTH
async def test_pending_writes_are_read_back_several_at_a_time_and_never_sent_twice(world: World) -> None:
    ids = await lose_every_answer(world, 12)
    world.smartcomm.faults = Faults(latency_s=LATENCY_S)  # every answer takes this long

    with structlog.testing.capture_logs() as logs:
        expect(await world.cycle(env={"SYNCD_SYNC__CONCURRENCY": CONCURRENCY}))

    reads = read_backs(world)
    assert sorted(object_id for _, object_id in reads) == sorted(ids)  # each read back once
    # Reads received before the first could have been answered were in flight together: more than one
    # (not one at a time), at most the concurrency (the gate's cap).
    first = reads[0][0]
    together = [object_id for at, object_id in reads if at < first + LATENCY_S * 0.9]
    assert 2 <= len(together) <= int(CONCURRENCY)
    assert world.writes() == []  # all applied before their answers were lost: adopted, none sent again
    assert world.store.pending_operations() == []
    assert world.status()["members"] == {"active": 12}
    [settling] = [e for e in logs if e["event"] == "sync.settling_pending"]
    assert settling["operations"] == 12


@BOTH
async def test_a_failed_read_back_leaves_only_its_write_pending(world: World) -> None:
    ids = await lose_every_answer(world, 5)
    # The last to be read: every other read has started by the time it fails (a failed read stops the
    # reads not started yet; tests/unit/test_recovery.py covers what that leaves pending).
    stuck = world.store.pending_operations()[-1].object_id
    world.smartcomm.inject(ScriptedFault(kind="status", status=500, method="GET", path_contains=stuck))

    failed = expect(
        await world.cycle(env={"SYNCD_SYNC__CONCURRENCY": "8", "SYNCD_SMARTCOMM__MAX_ATTEMPTS": "1"}), 1
    )

    assert "500" in str(failed.error)
    assert world.writes() == []  # the cycle stopped before its writes
    assert [op.object_id for op in world.store.pending_operations()] == [stuck]
    records = world.store.load_recorded(ids)
    assert {i: records[i].status.value for i in ids if i != stuck} == dict.fromkeys(
        [i for i in ids if i != stuck], "active"
    )
    assert records[stuck].status.value == "pending"

    world.smartcomm.clear_requests()
    expect(await world.cycle())
    assert [object_id for _, object_id in read_backs(world)] == [stuck]
    assert world.store.pending_operations() == []
    assert world.writes() == []
    assert world.status()["members"] == {"active": 5}
