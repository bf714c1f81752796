"""The adaptive write concurrency in a real cycle, against a SmartCommunicator emulator behind a token
bucket (`SmartCommEmulator.set_rate_limit`): the onboardings all arrive, none twice, while the 429s cut the
concurrency and clean answers grow it back; and without throttling nothing is paced at all.

The engine's pacer here grows fast (`recover_per_s`), so that "grows back" shows within the few writes of a
test; its defaults are held to the throughput and 429 targets by tests/unit/test_pacing.py's simulation and
by bench/rate_limit.py.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import structlog

from syncd.core.pacing import PacingTuning
from syncd.cycle.engine import CycleResult, Engine
from syncd.emulators.common import Faults
from syncd.emulators.smartcomm import RateLimit
from tests.cycle.conftest import AsgiSyncTransport, World, expect
from tests.registry import register_directory

CAP = 8


async def cycle(world: World, tuning: PacingTuning) -> CycleResult:
    """A full cycle with `sync.concurrency` = CAP and this pacing (the world's engine, but tuned)."""
    settings = world.settings({"SYNCD_SYNC__CONCURRENCY": str(CAP)})
    register_directory(world.graph, world.smartcomm)  # as `world.cycle` does before a cycle
    hosts = world.hosts()
    engine = Engine(
        settings,
        world.store,
        graph_transport=httpx.ASGITransport(app=hosts),
        smartcomm_transport=httpx.ASGITransport(app=hosts),
        login_transport=AsgiSyncTransport(hosts),
        clock=world.clock,
        write_pacing=tuning,
    )
    try:
        return await engine.run_cycle(trigger="cli", full=True)
    finally:
        await engine.aclose()


def onboarded(world: World) -> Counter[str]:
    """How many onboardings SmartCommunicator applied, by object ID."""
    return Counter(
        str(r.body["user_object_id"])
        for r in world.smartcomm.requests
        if r.method == "POST" and r.applied and isinstance(r.body, dict)
    )


async def test_a_rate_limit_cuts_the_concurrency_then_clean_answers_grow_it_and_nobody_is_onboarded_twice(
    world: World,
) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(40)]
    world.smartcomm.faults = Faults(latency_s=0.02)  # a round trip the concurrency can be measured against
    world.smartcomm.set_rate_limit(RateLimit(100, burst=5))

    with structlog.testing.capture_logs() as logs:
        result = expect(await cycle(world, PacingTuning(recover_per_s=10.0)))

    assert result.outcomes == {"onboard": {"ok": 40}}
    assert onboarded(world) == Counter(dict.fromkeys(ids, 1))
    assert sorted(world.agents()) == sorted(ids)
    refused = [r for r in world.smartcomm.requests if r.status == 429]
    assert refused
    assert not any(r.applied for r in refused)

    paces: list[dict[str, Any]] = [e for e in logs if e["event"].startswith("smartcomm.pace_")]
    cuts = [i for i, e in enumerate(paces) if e["event"] == "smartcomm.pace_cut"]
    assert cuts, paces
    first = paces[cuts[0]]
    assert (first["status"], first["cap"]) == (429, CAP)
    assert 1 <= first["write_concurrency"] < CAP
    grown = [e for e in paces[cuts[0] + 1 :] if e["event"] == "smartcomm.pace_grown"]
    assert grown, paces
    assert grown[0]["write_concurrency"] > first["write_concurrency"]
    assert all(1 <= e["write_concurrency"] <= CAP for e in paces)
    assert result.write_concurrency is not None
    assert 1 <= result.write_concurrency <= CAP
    summary = [e for e in logs if e["event"] == "sync.write_pace"]
    assert len(summary) == 1
    assert summary[0]["lowest"] <= first["write_concurrency"]


async def test_without_throttling_the_concurrency_stays_at_the_cap(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(20)]
    with structlog.testing.capture_logs() as logs:
        result = expect(await cycle(world, PacingTuning()))
    assert onboarded(world) == Counter(dict.fromkeys(ids, 1))
    assert result.write_concurrency == CAP
    assert not [e for e in logs if e["event"].startswith(("smartcomm.pace_", "sync.write_pace"))]
