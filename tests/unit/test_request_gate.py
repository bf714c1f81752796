"""The gate SmartCommunicator requests pass during the apply step (`syncd.smartcomm.gate.RequestGate`): it
admits no more than the pacer's concurrency, hands places on as answers come, survives cancellation, and
feeds the answers to the pacer. Driven with events and a virtual clock, never with sleeps."""

from __future__ import annotations

import asyncio

from syncd.core.pacing import WritePacer
from syncd.smartcomm.gate import RequestGate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_no_more_than_the_limit_are_admitted_and_places_pass_on() -> None:
    gate = RequestGate(WritePacer(3), clock=Clock())
    admitted: list[int] = []
    release = asyncio.Event()
    peak = 0

    async def request(n: int) -> None:
        nonlocal peak
        sent_at = await gate.enter()
        admitted.append(n)
        peak = max(peak, gate.in_flight)
        await release.wait()
        gate.leave(sent_at, 201)

    tasks = [asyncio.create_task(request(n)) for n in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert (len(admitted), gate.in_flight) == (3, 3)
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(admitted) == list(range(10))
    assert peak == 3
    assert gate.in_flight == 0


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    gate = RequestGate(WritePacer(1), clock=Clock())
    sent_at = await gate.enter()
    waiter = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    gate.leave(sent_at, 201)
    assert gate.in_flight == 0
    assert await asyncio.wait_for(gate.enter(), timeout=5) == 0.0  # the place is free again
    assert gate.in_flight == 1


async def test_a_throttled_answer_cuts_the_limit_the_gate_holds_to() -> None:
    clock = Clock()
    pacer = WritePacer(8)
    gate = RequestGate(pacer, clock=clock)
    sent = [await gate.enter() for _ in range(8)]
    assert gate.in_flight == 8
    clock.now = 0.02
    for sent_at in sent[:4]:
        gate.leave(sent_at, 201)
    gate.leave(sent[4], 429)
    assert pacer.cuts == 1
    assert pacer.limit <= 3  # 0.9 x 4 accepted in a quarter second, 20-50 ms a round trip: 1 or 2
    # Three still in flight: no one more is admitted until they are below the new limit.
    blocked = asyncio.create_task(gate.enter())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not blocked.done()
    for sent_at in sent[5:]:
        gate.leave(sent_at, 201)
    await asyncio.wait_for(blocked, timeout=5)
    assert gate.in_flight == 1
