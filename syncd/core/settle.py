"""Pure: what we know after a write. `settle` turns one write's outcome into the person's new record
(`settle_moved_from`: the record of the object ID a relink moved an agent from), and `retry_delay_s` says
how long a person whose writes keep failing waits before the next attempt. No I/O: the applier stores what
these return (see `syncd/core/reconcile.py` for the plan the writes come from)."""

from __future__ import annotations

import dataclasses

from syncd.core.model import Action, AgentFields, Change, MemberStatus, Outcome, Recorded


def retry_delay_s(attempts: int, *, initial_s: float, max_s: float) -> float:
    """Pure: how long a person waits after `attempts` consecutive failures (doubling, capped)."""
    return float(min(max_s, initial_s * 2.0 ** max(attempts - 1, 0)))


def settle(
    change: Change,
    outcome: Outcome,
    previous: Recorded | None,
    *,
    now: float,
    upn: str | None,
    error: str | None = None,
    agent: AgentFields | None = None,
    retry_initial_s: float = 60.0,
    retry_max_s: float = 21600.0,
    backoff: bool = True,
    phone_source: str | None = None,
) -> Recorded:
    """Pure: the record after `change` ended with `outcome`.

    `agent` is what the service now holds when the caller read it back (adoption); otherwise the desired
    fields are taken as written, with `phone_source` as where the desired number came from. A failure keeps
    the previous belief (and its source) and, with `backoff`, schedules the next attempt (doubling from
    `retry_initial_s` up to `retry_max_s`); systemic failures pass backoff=False.
    """
    if outcome in (Outcome.OK, Outcome.ADOPTED, Outcome.ALREADY_GONE):
        if change.action is Action.OFFBOARD:
            return Recorded(change.object_id, MemberStatus.OFFBOARDED, None, upn=upn)
        held = agent or change.desired
        # A read-back number that is not the desired one did not come from the source.
        same = (
            held is not None
            and change.desired is not None
            and held.phone_number == change.desired.phone_number
        )
        return Recorded(
            change.object_id, MemberStatus.ACTIVE, held, upn=upn, phone_source=phone_source if same else None
        )
    if agent is not None:
        believed: AgentFields | None = agent
    elif previous is not None:
        believed = previous.agent
    else:  # a relink's `believed` is the agent of the object ID it moves from, not this person's
        believed = change.believed if change.action is not Action.RELINK else None
    attempts = (previous.attempts if previous is not None else 0) + 1
    kept_source = previous.phone_source if previous is not None and believed == previous.agent else None
    return Recorded(
        change.object_id,
        MemberStatus.FAILED,
        believed,
        upn=upn,
        detail=error,
        attempts=attempts,
        next_attempt_at=now + retry_delay_s(attempts, initial_s=retry_initial_s, max_s=retry_max_s)
        if backoff
        else None,
        phone_source=kept_source,
        # A failed offboard still falls due when the grace began, not again from now.
        left_scope_at=previous.left_scope_at
        if previous is not None and change.action is Action.OFFBOARD
        else None,
    )


def settle_moved_from(change: Change, done: bool, previous: Recorded | None) -> Recorded | None:
    """Pure: the record of the object ID a relink moves an agent from (`change.from_object_id`), after
    the relink was applied (`done`) or not; None when it stays as it is.

    Applied: no agent left (offboarded), saying where it went. Not applied: the record is kept, except that
    a pending offboard is cancelled: the agent waits for the relink's retry instead of falling due while
    the re-created person waits out a backoff.
    """
    assert change.from_object_id is not None
    if done:
        upn = previous.upn if previous is not None else None
        if upn is None and change.believed is not None:
            upn = change.believed.upn
        return Recorded(
            change.from_object_id,
            MemberStatus.OFFBOARDED,
            None,
            upn=upn,
            detail=f"agent moved to {change.object_id} (relinked: the user was re-created in Entra)",
        )
    if previous is not None and previous.left_scope_at is not None:
        return dataclasses.replace(previous, left_scope_at=None)
    return None
