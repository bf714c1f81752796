"""Quarantine after systemic failures: when a cycle fails as a whole, scheduled cycles back off.

Pure: the decisions here (`transition`, `delay_s`, `share_exceeded`, `share_reason`, `may_run_scheduled`,
`describe`, `status_line`) take plain values and return new ones; nothing reads the clock, the store or the
network. The engine keeps the state in the key/value table (`STATE_KEY`) through `load`/`save`, which take
any object with `get_value`/`set_value`.

A cycle that fails as a whole (its outcome "error": credentials or permissions rejected, the tenant not
registered, the service unavailable or throttled after retries, or too large a share of failing writes)
enters or prolongs the quarantine; the first cycle that runs as a whole again ("ok", "failed", "guard")
leaves it. While quarantined, the daemon's scheduled cycles wait until `next_at`; manual ones always run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from syncd.core.model import KeyValues

STATE_KEY = "quarantine"
"""The key/value entry holding the state as JSON (absent or "null" when not quarantined)."""

PREFIX = "quarantined: "


@dataclass(frozen=True)
class QuarantineState:
    """Why and since when cycles fail as a whole, and when the next scheduled one may run."""

    reason: str
    """The error of the latest failing cycle."""
    since: float
    """Epoch seconds: when the first of the failing cycles ended."""
    failed_cycles: int
    """Cycles failed as a whole since `since` (at least 1)."""
    next_at: float
    """Epoch seconds: no scheduled cycle runs before this."""

    def to_json(self) -> dict[str, Any]:
        """Pure: the stored and reported form."""
        return {
            "reason": self.reason,
            "since": self.since,
            "failed_cycles": self.failed_cycles,
            "next_at": self.next_at,
        }

    @classmethod
    def from_json(cls, data: object) -> QuarantineState | None:
        """Pure: the state `data` describes; None when it is absent or unreadable."""
        if not isinstance(data, dict):
            return None
        reason, since, cycles, next_at = (
            data.get(k) for k in ("reason", "since", "failed_cycles", "next_at")
        )
        if not (
            isinstance(reason, str)
            and isinstance(since, int | float)
            and isinstance(cycles, int)
            and isinstance(next_at, int | float)
        ):
            return None
        return cls(reason=reason, since=float(since), failed_cycles=max(cycles, 1), next_at=float(next_at))


def delay_s(failed_cycles: int, *, initial_s: float, max_s: float) -> float:
    """Pure: seconds to wait after the `failed_cycles`-th failing cycle: initial_s doubling, up to max_s."""
    exponent = min(max(failed_cycles, 1) - 1, 62)  # beyond 2**62 the cap has long won
    return float(min(initial_s * 2**exponent, max_s))


def transition(
    state: QuarantineState | None,
    outcome: str,
    error: str | None,
    *,
    now: float,
    initial_s: float,
    max_s: float,
) -> QuarantineState | None:
    """Pure: the state after a cycle with this run outcome ended at `now` (epoch seconds).

    - "error" (failed as a whole): enter the quarantine, or count one more failed cycle, with the new reason
      and the next scheduled try `delay_s` later.
    - "ok", "failed" (some people failed; the cycle ran), "guard" (a safety guard stopped it; the services
      answered): leave the quarantine.
    - anything else ("interrupted", ...): unchanged.
    """
    if outcome == "error":
        reason = error or "the cycle failed as a whole"
        cycles = 1 if state is None else state.failed_cycles + 1
        since = now if state is None else state.since
        wait = delay_s(cycles, initial_s=initial_s, max_s=max_s)
        return QuarantineState(reason=reason, since=since, failed_cycles=cycles, next_at=now + wait)
    if outcome in ("ok", "failed", "guard"):
        return None
    return state


def may_run_scheduled(state: QuarantineState | None, now: float) -> bool:
    """Pure: whether a scheduled cycle may run at `now` (manual cycles always may)."""
    return state is None or now >= state.next_at


def describe(state: QuarantineState) -> str:
    """Pure: "quarantined: <reason>" (the reason is not prefixed twice)."""
    return state.reason if state.reason.startswith(PREFIX) else PREFIX + state.reason


def share_exceeded(finished: int, failed: int, *, share: float, min_writes: int) -> bool:
    """Pure: whether `failed` of `finished` writes exceed `share`, once at least `min_writes` finished."""
    return finished >= min_writes and finished > 0 and failed / finished > share


def share_reason(finished: int, failed: int, *, share: float, errors: Sequence[str]) -> str:
    """Pure: why the share rule stopped a cycle, naming the most common of the failed writes' `errors`."""
    counts: dict[str, int] = {}
    for error in errors:
        counts[error] = counts.get(error, 0) + 1
    common = max(counts, key=lambda e: counts[e]) if counts else "unknown error"
    return (
        f"{PREFIX}{failed} of {finished} writes failed (share {failed / max(finished, 1):.2f} > {share:g}): "
        f"{common}"
    )


def load(kv: KeyValues) -> QuarantineState | None:
    """The stored state; None when not quarantined (or the entry is unreadable)."""
    raw = kv.get_value(STATE_KEY)
    try:
        return QuarantineState.from_json(json.loads(raw) if raw else None)
    except ValueError:
        return None


def save(kv: KeyValues, state: QuarantineState | None) -> None:
    """Store `state` ("null" when not quarantined)."""
    kv.set_value(STATE_KEY, json.dumps(None if state is None else state.to_json(), sort_keys=True))


def status_line(state: QuarantineState) -> str:
    """Pure: the line `syncd status` and `syncd sync` print while quarantined (UTC times)."""
    cycles = f"{state.failed_cycles} failed cycle{'' if state.failed_cycles == 1 else 's'}"
    return (
        f"QUARANTINED since {_utc(state.since)} ({cycles}): {state.reason}; "
        f"next scheduled try at {_utc(state.next_at)} (a manual sync or resync runs at once)"
    )


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
