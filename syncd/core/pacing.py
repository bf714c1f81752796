"""Pure: the adaptive write concurrency and pace of the apply step, an AIMD controller fed by the answers
SmartCommunicator gives.

IntelePeer publishes no rate limit. An account that allows fewer requests than `sync.concurrency` writes
send answers 429 (or 503), and a throttled write waits out its Retry-After. `WritePacer` learns the pace the
service accepts instead:

- **Cut** on a throttled answer (429 or 503): the pace becomes `decrease` times the rate of the answers
  accepted over the last `window_s` (once a token bucket is empty, what it lets through is its refill
  rate; a run of requests younger than that is measured over its age, at least `young_share` of the
  window), or times the pace itself when nothing was accepted. Answers to requests sent before the last
  cut were sent at the old pace and are not held against the new one: one cut per round trip. Only a 429
  after a full window of answers measures the service's limit (the known limit).
- **Grow** on clean answers, by a share of the pace per second of clean answers: slowly (`growth_per_s`)
  near the rate the last 429 measured (the known limit), fast (`recover_per_s`) far below it (after 503s)
  or past it (the limit was measured low, or has been raised), and fast while no 429 has measured one.
  Idle time between cycles does not count.
- **Concurrency** follows the pace (Little's law: pace x round trip, with headroom for jitter), between 1 and
  the cap (`sync.concurrency`). While no throttle has come, or once the pace has grown past what the cap
  can send, nothing is paced and the concurrency is the cap.

A pace below one request per round trip is what a concurrency of 1 cannot express (at 20 ms a round trip,
one request at a time is 50 a second): the pace spaces the starts of the requests out.

Times are plain floats (seconds on a monotonic clock) passed in by the caller; nothing here sleeps.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

THROTTLED_STATUSES = frozenset({429, 503})
"""Answers that mean "slower, please"."""


@dataclass(frozen=True)
class PacingTuning:
    """The controller's constants (the defaults are what the apply step uses)."""

    decrease: float = 0.9
    """Factor of the pace on a cut."""
    growth_per_s: float = 0.015
    """Growth rate of the pace (continuously compounded, per second of clean answers) near the known
    limit: 1.5% a second."""
    recover_per_s: float = 0.5
    """The same away from the known limit, or while none is known: about 65% a second."""
    recover_below: float = 0.5
    probe_above: float = 1.1
    """Growth is slow while the pace is within `recover_below` .. `probe_above` x the known limit."""
    window_s: float = 1.0
    """How far back the accepted answers are counted to measure the rate the service lets through."""
    young_share: float = 0.25
    """A run of requests younger than the window has its rates measured over at least this share of it."""
    min_rate_per_s: float = 1.0
    """The pace never goes below this (requests per second)."""
    headroom: float = 2.0
    """Concurrency = ceil(pace x round trip x headroom), within 1 .. cap."""
    max_step_s: float = 1.0
    """At most this much time counts towards growth between two answers (idle time is not clean time)."""
    initial_round_trip_s: float = 0.05
    """The round trip assumed until answers have measured one."""
    round_trip_weight: float = 0.1
    """Weight of each new round trip in its moving average."""


@dataclass(frozen=True)
class PaceChange:
    """What an answer changed, for the log: the new concurrency and pace, and why."""

    reason: str
    """"cut" (a throttled answer) or "grown" (the concurrency grew by at least one, or pacing ended)."""
    limit: int
    rate_per_s: float | None


class WritePacer:
    """Pure: the adaptive concurrency and pace of SmartCommunicator requests (see the module docstring).

    The caller asks `reserve(now)` before each request (how long to wait before sending it), holds at most
    `limit` requests in flight, and reports each answer with `answered(sent_at, now, status)`.
    """

    def __init__(self, cap: int, tuning: PacingTuning | None = None) -> None:
        if cap < 1:
            raise ValueError("the concurrency cap must be at least 1")
        self.cap = cap
        self.tuning = tuning or PacingTuning()
        self._rate: float | None = None
        self._known_limit: float | None = None
        """The accepted rate measured at the last cut a 429 caused: the limit, as far as known."""
        self._round_trip_s = self.tuning.initial_round_trip_s
        self._accepted: deque[float] = deque()
        self._sent: deque[float] = deque()
        self._cut_at = -math.inf
        self._grown_at: float | None = None
        self._next_start = -math.inf
        self._active_since = math.inf
        """When the current run of requests began (idle for more than a window: a new run)."""
        self._limit = cap
        self.cuts = 0
        self.throttled = 0
        self.min_limit = cap
        """The lowest concurrency since it was last set (the apply step sets it at the start of each)."""

    # -- what the caller reads -----------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """How many requests may be in flight now: 1 .. cap."""
        return self._limit

    @property
    def rate_per_s(self) -> float | None:
        """The pace (request starts per second), or None while nothing is paced."""
        return self._rate

    @property
    def known_limit_per_s(self) -> float | None:
        """The service's rate limit as the last 429 measured it, if one came."""
        return self._known_limit

    # -- what the caller reports ---------------------------------------------------------------------

    def reserve(self, now: float) -> float:
        """Seconds to wait before sending the next request (0: now); books its start."""
        self._trim(now)
        self._note_activity(now)
        self._sent.append(now)
        if self._rate is None:
            return 0.0
        start = max(now, self._next_start)
        self._next_start = start + 1.0 / self._rate
        return start - now

    def answered(self, sent_at: float, now: float, status: int | None) -> PaceChange | None:
        """Account for the answer (`status`; None: no answer, a transport failure) to a request sent at
        `sent_at`; returns what changed, if the concurrency or the pacing did."""
        t = self.tuning
        if status is None:
            return None
        self._round_trip_s += t.round_trip_weight * (max(now - sent_at, 0.0) - self._round_trip_s)
        self._trim(now)
        self._note_activity(min(sent_at, now))
        if status in THROTTLED_STATUSES:
            self.throttled += 1
            if sent_at < self._cut_at:
                return None  # sent at the old pace: the cut has answered it already
            return self._cut(now, status)
        self._accepted.append(now)
        return self._grow(now)

    # -- the controller ------------------------------------------------------------------------------

    def _cut(self, now: float, status: int) -> PaceChange:
        t = self.tuning
        # Rates over the window, or over the part of it this run of requests has lasted (at least a quarter
        # of it: right after a start, a full bucket's burst is in the first answers).
        span = min(t.window_s, max(now - self._active_since, t.window_s * t.young_share))
        accepted = len(self._accepted) / span
        # Unpaced, the pace was what was sent (at least what was answered) over the window.
        sent = max(len(self._sent), len(self._accepted) + 1)
        current = self._rate if self._rate is not None else sent / span
        base = accepted if accepted > 0 else current
        if status == 429 and accepted > 0 and now - self._active_since >= t.window_s:
            # Only a full window of answers measures the limit: in the first one, the answers of the first
            # flight are still coming in (and a full bucket's burst is in them).
            self._known_limit = accepted
        self._rate = max(t.min_rate_per_s, t.decrease * min(base, current))
        self._cut_at = now
        self._grown_at = now
        # The next start keeps its distance from the last booked one, at the new pace.
        self._next_start = max(self._next_start, now) + 1.0 / self._rate
        self.cuts += 1
        self._update_limit()
        return PaceChange("cut", self._limit, self._rate)

    def _grow(self, now: float) -> PaceChange | None:
        t = self.tuning
        previous = self._grown_at
        self._grown_at = now
        if self._rate is None or previous is None:
            return None
        step = min(max(now - previous, 0.0), t.max_step_s)
        known = self._known_limit
        # Slow only near the known limit: far below it (after 503s) or past it (the limit was measured
        # low, or has been raised) the pace grows fast until the next 429 measures it again.
        fast = known is None or not t.recover_below * known <= self._rate <= t.probe_above * known
        self._rate *= math.exp((t.recover_per_s if fast else t.growth_per_s) * step)
        before = self._limit
        if self._rate * self._round_trip_s >= self.cap:
            self._rate = None  # the cap binds before the pace would: stop pacing
            self._limit = self.cap
            return PaceChange("grown", self._limit, None)
        self._update_limit()
        return PaceChange("grown", self._limit, self._rate) if self._limit > before else None

    def _update_limit(self) -> None:
        if self._rate is None:
            self._limit = self.cap
        else:
            wanted = math.ceil(self._rate * self._round_trip_s * self.tuning.headroom)
            self._limit = min(self.cap, max(1, wanted))
        self.min_limit = min(self.min_limit, self._limit)

    def _note_activity(self, now: float) -> None:
        if not self._sent and not self._accepted:  # nothing within a window: a new run of requests
            self._active_since = now

    def _trim(self, now: float) -> None:
        horizon = now - self.tuning.window_s
        for times in (self._accepted, self._sent):
            while times and times[0] <= horizon:
                times.popleft()
