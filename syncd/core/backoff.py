"""Pure retry timing shared by the request functions of both APIs (SmartCommunicator and Graph)."""

from __future__ import annotations

import random


def backoff_delay_s(attempt: int, *, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Pure given `rng`: seconds to wait after failed attempt number `attempt` (1-based).

    Exponential (`initial_s * 2**(attempt-1)`, capped at `max_s`) with "equal jitter": between half and
    all of that, so concurrent callers spread out but never retry at once.
    """
    ceiling = min(max_s, initial_s * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)
