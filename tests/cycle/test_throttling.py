"""Throttling is counted per API: every 429 Graph or SmartCommunicator answers, the ones retried within the
cycle included, is told to the engine's `on_throttled` (the daemon's `syncd_throttled_responses_total`)."""

from __future__ import annotations

from collections import Counter

import httpx

from syncd.cycle.engine import Engine
from syncd.emulators.graph import ScriptedFault
from tests.cycle.conftest import AsgiSyncTransport, World, expect
from tests.registry import register_directory


async def test_every_429_is_counted_by_api_and_the_cycle_still_converges(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(3)]
    # Graph's 429s are retried by msgraph-sdk's middleware, SmartCommunicator's by our client.
    world.graph.inject(
        ScriptedFault(kind="throttle", retry_after_s=0, path_contains="transitiveMembers", times=2)
    )
    world.smartcomm.inject(ScriptedFault(kind="throttle", retry_after_s=0, path_contains="/agents", times=3))
    told: list[str] = []
    register_directory(world.graph, world.smartcomm)  # as `world.cycle` does before a cycle
    hosts = world.hosts()
    engine = Engine(
        world.settings(),
        world.store,
        graph_transport=httpx.ASGITransport(app=hosts),
        smartcomm_transport=httpx.ASGITransport(app=hosts),
        login_transport=AsgiSyncTransport(hosts),
        clock=world.clock,
        on_throttled=told.append,
    )
    try:
        expect(await engine.run_cycle(trigger="cli"))
    finally:
        await engine.aclose()
    assert sorted(world.agents()) == sorted(ids)
    answered = {
        "graph": [r for r in world.graph.requests if r.status == 429],
        "smartcomm": [r for r in world.smartcomm.requests if r.status == 429],
    }
    assert {api: len(requests) for api, requests in answered.items()} == {"graph": 2, "smartcomm": 3}
    assert Counter(told) == {"graph": 2, "smartcomm": 3}
