"""The gate SmartCommunicator requests pass while a cycle applies its writes: it holds them to the adaptive
concurrency and pace of a `syncd.core.pacing.WritePacer` and tells the pacer how each was answered.

`SmartCommClient` sends every attempt of a request through its `gate` when one is set (`paced_by`: the apply
step and crash recovery set it while they send), so retries are paced too and a Retry-After wait holds no
place in it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import structlog

from syncd.core.pacing import PaceChange, WritePacer

log = structlog.get_logger("syncd.smartcomm")


class RequestGate:
    """Admits at most `pacer.limit` requests at once, each no sooner than the pacer's pace allows.

    `enter()` before sending (it returns the send time to hand back), `leave(sent_at, status)` once answered
    (status None: no answer). Safe for the concurrent tasks of one event loop.
    """

    def __init__(self, pacer: WritePacer, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.pacer = pacer
        self._clock = clock
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet answered (those waiting for their start included)."""
        return self._in_flight

    async def enter(self) -> float:
        """Wait for a place and for the pace; returns the time the request is sent at."""
        while self._in_flight >= self.pacer.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake()  # woken and cancelled at once: pass the place on
                raise
        self._in_flight += 1
        try:
            delay = self.pacer.reserve(self._clock())
            if delay > 0:
                await asyncio.sleep(delay)
        except BaseException:
            self._in_flight -= 1
            self._wake()
            raise
        return self._clock()

    def leave(self, sent_at: float, status: int | None) -> None:
        """The request sent at `sent_at` was answered with `status` (None: no answer)."""
        self._in_flight -= 1
        change = self.pacer.answered(sent_at, self._clock(), status)
        if change is not None:
            _log_change(change, self.pacer, status)
        self._wake()

    def _wake(self) -> None:
        free = self.pacer.limit - self._in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


def _log_change(change: PaceChange, pacer: WritePacer, status: int | None) -> None:
    rate = None if change.rate_per_s is None else round(change.rate_per_s, 1)
    known = pacer.known_limit_per_s
    fields = {
        "write_concurrency": change.limit,
        "rate_per_s": rate,
        "known_limit_per_s": None if known is None else round(known, 1),
        "cap": pacer.cap,
    }
    if change.reason == "cut":
        log.info("smartcomm.pace_cut", status=status, **fields)
    else:
        log.info("smartcomm.pace_grown", **fields)
