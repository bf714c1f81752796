"""Crash recovery, the first part of the apply step: settle the writes a crash left pending (recorded as
sent, their answers never recorded) by reading each agent back.

The agents are read `sync.concurrency` at a time, through the same adaptive gate as the writes
(`syncd.smartcomm.gate`), so a crash during an initial sync (up to three batches of writes pending) costs
the next start a few round trips, not one per write. What each read found is then turned into settlements
in the order the writes were recorded (`settlements`, pure), as the writes would have been settled one by
one, and stored a batch per transaction. A read that fails stops further reads; what was read is settled
all the same, and the error ends the cycle as before: the rest stay pending for the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import structlog

from syncd.core.model import Action, Agent, AgentFields, Change, MemberStatus, Outcome, Recorded
from syncd.core.pacing import WritePacer
from syncd.core.reconcile import changed_fields
from syncd.core.settle import settle, settle_moved_from
from syncd.smartcomm import AgentNotFound, SmartCommClient
from syncd.store import PendingOperation, Settlement, Store

# The engine's logger, as for the rest of the apply step.
log = structlog.get_logger("syncd.engine")

INTERRUPTED = "interrupted before its answer; not applied"
"""The error (and detail) of a pending write the service shows was not applied."""


@dataclass(frozen=True, slots=True)
class ReadBack:
    """What SmartCommunicator held for one pending write when it was read back."""

    remote: AgentFields | None
    """The active agent of the write's object ID (None: none)."""
    still: AgentFields | None = None
    """A relink whose object ID has no agent: the active agent of the object ID it moved from (None: none,
    or not read because the agent had moved)."""


async def settle_pending(
    store: Store,
    client: SmartCommClient,
    *,
    concurrency: int,
    pacer: WritePacer | None,
    clock: Callable[[], float],
    batch: int,
) -> None:
    """Settle every operation a crash left pending: read the agents back, `concurrency` at a time (through
    `pacer`'s gate when there is one), then store the settlements `batch` per transaction. Re-raises the
    first failed read after storing what the others found."""
    pending = store.pending_operations()
    if not pending:
        return
    wanted = {op.object_id for op in pending} | {op.from_object_id for op in pending if op.from_object_id}
    recorded = store.load_recorded(wanted)
    log.warning("sync.settling_pending", operations=len(pending))
    reads: dict[int, ReadBack] = {}
    errors: list[Exception] = []
    queue = iter(pending)

    async def worker() -> None:
        while not errors and (op := next(queue, None)) is not None:
            try:
                reads[op.id] = await read_back(client, op, recorded)
            except Exception as exc:  # stored with the rest once the reads in flight are in, then raised
                errors.append(exc)

    with client.paced_by(pacer):
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(pending)))))
    found = settlements(pending, reads, recorded, now=clock())
    for start in range(0, len(found), batch):
        store.settle_operations(found[start : start + batch])
    if errors:
        log.warning("sync.settling_stopped", settled=len(found), left=len(pending) - len(found))
        raise errors[0]


async def read_back(
    client: SmartCommClient, op: PendingOperation, recorded: Mapping[str, Recorded]
) -> ReadBack:
    """Read the agent of one pending write (and, for a relink whose agent is not at its new object ID, the
    agent of the object ID it moved from)."""
    remote = await _active_agent(client, op.object_id, _upn(recorded, op.object_id))
    if op.action is not Action.RELINK or op.from_object_id is None or remote is not None:
        return ReadBack(remote)
    return ReadBack(None, await _active_agent(client, op.from_object_id, _upn(recorded, op.from_object_id)))


def settlements(
    pending: Iterable[PendingOperation],
    reads: Mapping[int, ReadBack],
    recorded: Mapping[str, Recorded],
    *,
    now: float,
) -> list[Settlement]:
    """Pure: the settlement of each pending operation read back (`reads`, by operation ID), in order, each
    from the records as the ones before left them. An operation not read back stays pending, and so does
    every later one that touches one of its object IDs (they must be settled after it)."""
    known = dict(recorded)
    held: set[str] = set()
    found: list[Settlement] = []
    for op in pending:
        ids = {op.object_id} if op.from_object_id is None else {op.object_id, op.from_object_id}
        read = reads.get(op.id)
        if read is None or held & ids:
            held |= ids
            continue
        settlement = _settle_one(op, read, known, now=now)
        found.append(settlement)
        for record in (settlement.record, *settlement.also):
            known[record.object_id] = record
    return found


def _settle_one(
    op: PendingOperation, read: ReadBack, known: Mapping[str, Recorded], *, now: float
) -> Settlement:
    """Pure: one pending operation's settlement, given what was read back."""
    previous = known.get(op.object_id)
    upn = previous.upn if previous is not None else None
    remote = read.remote
    change = Change(op.action, op.object_id, op.desired, op.believed, from_object_id=op.from_object_id)
    if op.action is Action.OFFBOARD:
        done = remote is None
    else:
        done = remote is not None and op.desired is not None and not changed_fields(remote, op.desired)
    also: tuple[Recorded, ...] = ()
    if op.action is Action.RELINK and op.from_object_id is not None:
        # The agent moved if the new object ID has it now, whatever its fields; else the old one keeps it.
        moved_from = _moved_from(change, read, known.get(op.from_object_id))
        also = (moved_from,) if moved_from is not None else ()
    if done:
        record = settle(change, Outcome.OK, previous, now=now, upn=upn, agent=remote)
        return Settlement(op.id, Outcome.OK, record, also=also)
    # Not applied (or only partly): believe what the service holds; the plan takes it from there.
    record = Recorded(op.object_id, MemberStatus.FAILED, remote, upn=upn, detail=INTERRUPTED, attempts=0)
    return Settlement(op.id, Outcome.FAILED, record, error=INTERRUPTED, also=also)


def _moved_from(change: Change, read: ReadBack, previous: Recorded | None) -> Recorded | None:
    """Pure: after a relink whose answer was lost, the record of the object ID it moved the agent from."""
    assert change.from_object_id is not None
    if read.remote is not None:
        return settle_moved_from(change, True, previous)
    upn = previous.upn if previous is not None else None
    if read.still is None:  # gone from both: nothing left to move
        return Recorded(change.from_object_id, MemberStatus.OFFBOARDED, None, upn=upn)
    if previous is None or previous.agent != read.still:
        status = previous.status if previous is not None else MemberStatus.ACTIVE
        return Recorded(change.from_object_id, status, read.still, upn=upn)
    return settle_moved_from(change, False, previous)


async def active_agent(client: SmartCommClient, object_id: str) -> Agent | None:
    """The active agent of `object_id` as the service holds it now (None: there is none)."""
    try:
        agent = await client.get_agent(object_id)
    except AgentNotFound:
        return None
    return agent if agent.active else None


async def _active_agent(client: SmartCommClient, object_id: str, upn: str | None) -> AgentFields | None:
    """`active_agent`'s fields, `upn` standing in when the service gives none."""
    agent = await active_agent(client, object_id)
    return AgentFields.of_agent(agent, upn) if agent is not None else None


def _upn(recorded: Mapping[str, Recorded], object_id: str) -> str | None:
    previous = recorded.get(object_id)
    return previous.upn if previous is not None else None
