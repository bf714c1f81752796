"""The apply step of a cycle: settle the writes a crash left pending (`syncd.cycle.recovery`), then send the
plan's writes (onboard, adopt, update, offboard) `sync.concurrency` at a time, each recorded as pending
before it is sent and settled after its answer. Their requests pass a gate that adapts the concurrency and
pace to the answers (`syncd.core.pacing`: cut on 429 and 503, grown back slowly), learnt from cycle to
cycle. `syncd.cycle.engine` runs it; it writes what happened into the cycle's result (`ApplyReport`, which
`CycleResult` is).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from syncd.config.settings import Settings
from syncd.core import quarantine
from syncd.core.model import (
    Action,
    Agent,
    AgentFields,
    AgentPatch,
    Change,
    DesiredState,
    MemberStatus,
    NewAgent,
    Outcome,
    Recorded,
    WriteKey,
)
from syncd.core.pacing import PacingTuning, WritePacer
from syncd.core.reconcile import Plan, changed_fields
from syncd.core.settle import settle, settle_moved_from
from syncd.cycle.lane import StoreLane
from syncd.cycle.recovery import settle_pending
from syncd.smartcomm import (
    AgentExists,
    AgentNotFound,
    AnchorExists,
    ErrorCategory,
    SmartCommClient,
    SmartCommError,
    TenantNotRegistered,
)
from syncd.store import Settlement, Store

# The engine's logger: the apply step's events are the cycle's, as they were before it had a module.
log = structlog.get_logger("syncd.engine")

APPLY_BATCH = 256
"""Writes recorded as pending (and settled) per store transaction."""
SYSTEMIC = frozenset({ErrorCategory.AUTH, ErrorCategory.UNAVAILABLE, ErrorCategory.THROTTLED})


@dataclass
class Failure:
    """One person's failed write, for the report."""

    object_id: str
    upn: str | None
    action: Action
    error: str
    category: str


class ApplyReport(Protocol):
    """What the apply step reads and writes of the cycle's result (`syncd.cycle.engine.CycleResult`): a
    protocol, so that this module needs no import of the engine that imports it."""

    run_id: int | None
    failures: list[Failure]
    outcomes: dict[str, dict[str, int]]
    error: str | None
    relinked: list[tuple[str, str, str | None]]
    write_concurrency: int | None


Progress = Callable[[int, int], None]


class Applier:
    """Settles pending writes and applies plans for one configuration and store (the engine keeps one)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Callable[[], float],
        pacing: PacingTuning | None = PacingTuning(),  # noqa: B008 - frozen, shared harmlessly
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self.pacer = None if pacing is None else WritePacer(settings.sync.concurrency, pacing)
        """The adaptive write concurrency, learnt across cycles; None sends `sync.concurrency` at a time."""

    # -- crash recovery -----------------------------------------------------------------------------

    async def settle_pending(self, client: SmartCommClient) -> None:
        """Settle operations a crash left pending, by reading the agents back (`syncd.cycle.recovery`)."""
        await settle_pending(
            self._store,
            client,
            concurrency=self._settings.sync.concurrency,
            pacer=self.pacer,
            clock=self._clock,
            batch=APPLY_BATCH,
        )

    async def apply(
        self,
        client: SmartCommClient,
        the_plan: Plan,
        desired: DesiredState,
        recorded: Mapping[str, Recorded],
        result: ApplyReport,
        progress: Progress | None,
    ) -> None:
        """Send the plan's writes, `sync.concurrency` at a time, with no barrier between batches.

        Operations are recorded as pending in batches (one transaction each) before any of their requests
        is sent, and settled in batches after their answers, on the store's own thread (`StoreLane`): the
        next batch is recorded while the last half of the current one is being sent. A crash leaves at
        most three batches pending, which the next start settles by reading the agents back.
        """
        sync, store = self._settings.sync, self._store
        assert result.run_id is not None  # begin_run came first
        run_id = result.run_id
        batch = max(APPLY_BATCH, sync.concurrency)
        tally: Counter[tuple[str, str]] = Counter()
        total, done, judged, failed = len(the_plan.changes), 0, 0, 0
        halted: list[str] = []
        waiting = iter(the_plan.changes)
        staged: deque[tuple[Change, int]] = deque()
        settled: list[Settlement] = []
        refill: asyncio.Future[None] | None = None
        """The next batch being recorded as pending; None when none is."""
        flushes: list[asyncio.Future[None]] = []
        """Settlements sent to the store and not yet known to be written."""
        with StoreLane(store) as lane:

            async def stage(chunk: list[Change]) -> None:
                nonlocal refill
                ids = await lane.run(store.start_operations, run_id, chunk)
                staged.extend(zip(chunk, ids, strict=True))
                refill = None

            async def take() -> tuple[Change, int] | None:
                nonlocal refill
                while True:
                    for flushed in [f for f in flushes if f.done()]:
                        flushes.remove(flushed)
                        flushed.result()  # a store failure stops the writes, as it would have on the loop
                    if refill is None and len(staged) <= batch // 2 and not halted:
                        chunk = list(itertools.islice(waiting, batch))
                        if chunk:
                            refill = asyncio.ensure_future(stage(chunk))
                    if staged:
                        return staged.popleft()
                    if refill is None:
                        return None
                    await asyncio.shield(refill)

            def flush() -> None:
                if settled:
                    flushes.append(asyncio.ensure_future(lane.run(store.settle_operations, list(settled))))
                    settled.clear()

            async def drain() -> None:
                """Wait for the batch being recorded and every settlement sent to the store."""
                if refill is not None:
                    await refill
                flush()
                while flushes:
                    await flushes.pop(0)

            async def worker() -> None:
                nonlocal done, judged, failed
                while not halted and (item := await take()) is not None:
                    change, op_id = item
                    try:
                        outcome = await self._write(
                            client,
                            change,
                            op_id,
                            desired,
                            recorded,
                            result,
                            halted,
                            settled,
                            the_plan.conflicts,
                        )
                    except Exception as exc:
                        # A bug or an unmapped library error: the operation stays pending (settled by
                        # reading the agent back at the next start) and the other writes go on.
                        log.exception(
                            "sync.write_crashed", object_id=change.object_id, action=change.action.value
                        )
                        result.failures.append(
                            Failure(
                                change.object_id,
                                None,
                                change.action,
                                f"unexpected error: {exc!r}",
                                "unexpected",
                            )
                        )
                        outcome = Outcome.PENDING
                    if len(settled) >= batch:
                        flush()
                    tally[(change.action.value, outcome.value)] += 1
                    done += 1
                    previous = recorded.get(change.object_id)
                    # Retries of people who already failed (a conflict waiting for an admin) are per-person
                    # trouble: a wave of them coming due together must not quarantine everyone else's writes.
                    if previous is None or previous.status is not MemberStatus.FAILED:
                        judged += 1
                        # A pending outcome here is a failure too: its answer was lost or the write crashed.
                        failed += outcome in (Outcome.FAILED, Outcome.PENDING)
                    if not halted and quarantine.share_exceeded(
                        judged,
                        failed,
                        share=sync.quarantine_failure_share,
                        min_writes=sync.quarantine_min_writes,
                    ):
                        reason = quarantine.share_reason(
                            judged,
                            failed,
                            share=sync.quarantine_failure_share,
                            errors=[f.error for f in result.failures],
                        )
                        halted.append(reason)
                        log.error(
                            "sync.failure_share_exceeded", finished=judged, failed=failed, reason=reason
                        )
                    if progress is not None:
                        progress(done, total)

            pacer = self.pacer
            if pacer is not None:
                cuts, pacer.min_limit = pacer.cuts, pacer.limit
            try:
                with client.paced_by(pacer):
                    await asyncio.gather(*(worker() for _ in range(min(sync.concurrency, total))))
            finally:
                await drain()
            if pacer is not None:
                result.write_concurrency = pacer.limit
                if pacer.cuts > cuts:  # throttled this cycle: say how far it went
                    rate = pacer.rate_per_s
                    log.info(
                        "sync.write_pace",
                        write_concurrency=pacer.limit,
                        lowest=pacer.min_limit,
                        cap=sync.concurrency,
                        cuts=pacer.cuts - cuts,
                        rate_per_s=None if rate is None else round(rate, 1),
                    )
            if halted:
                # Staged but never sent: settled as skipped, the record as it was (a newcomer's says why).
                for change, op_id in staged:
                    previous = recorded.get(change.object_id)
                    record = previous or Recorded(
                        change.object_id,
                        MemberStatus.FAILED,
                        None,
                        upn=change.desired.upn if change.desired is not None else None,
                        detail=f"not sent: {halted[0]}",
                    )
                    settled.append(Settlement(op_id, Outcome.SKIPPED, record, error=f"not sent: {halted[0]}"))
                    tally[(change.action.value, Outcome.SKIPPED.value)] += 1
                staged.clear()
                await drain()
                for change in waiting:
                    tally[(change.action.value, Outcome.SKIPPED.value)] += 1
                result.error = halted[0]
            for (action, outcome), n in sorted(tally.items()):
                result.outcomes.setdefault(action, {})[outcome] = n

    async def _write(
        self,
        client: SmartCommClient,
        change: Change,
        op_id: int,
        desired: DesiredState,
        recorded: Mapping[str, Recorded],
        result: ApplyReport,
        halted: list[str],
        settled: list[Settlement],
        conflicts: Mapping[str, str],
    ) -> Outcome:
        """Send one change (its operation is staged as `op_id`); its settlement goes to `settled`, except
        when its outcome is unknown (it stays pending). A relink's settlement carries the record of the
        object ID it moved the agent from, so both change in one transaction."""
        settings = self._settings.sync
        member = desired.members.get(change.object_id)
        previous = recorded.get(change.object_id)
        upn = member.upn if member else (previous.upn if previous else None)
        agent: AgentFields | None = None
        moved_from = recorded.get(change.from_object_id) if change.from_object_id else None
        moved = False
        try:
            if change.action is Action.RELINK:
                outcome, agent, moved = await self._relink(client, change, conflicts)
            else:
                outcome, agent = await self._send(client, change, conflicts)
        except SmartCommError as exc:
            systemic = exc.category in SYSTEMIC or isinstance(exc, TenantNotRegistered)
            if systemic and not halted:
                halted.append(f"stopped starting writes: {exc}")
                log.error("sync.systemic_failure", error=str(exc), category=exc.category.value)
            result.failures.append(
                Failure(change.object_id, upn, change.action, exc.message, exc.category.value)
            )
            if exc.outcome_was_unknown:
                # The write may have been applied (its answer was lost): leave the operation pending, so the
                # next start reads the agent back instead of believing there is none.
                log.warning(
                    "sync.write_outcome_unknown",
                    object_id=change.object_id,
                    action=change.action.value,
                    error=exc.message,
                )
                return Outcome.PENDING
            record = settle(
                change,
                Outcome.FAILED,
                previous,
                now=self._clock(),
                upn=upn,
                error=exc.message,
                retry_initial_s=settings.retry_initial_s,
                retry_max_s=settings.retry_max_s,
                backoff=not systemic,
            )
            kept = settle_moved_from(change, False, moved_from) if change.from_object_id else None
            settled.append(
                Settlement(
                    op_id,
                    Outcome.FAILED,
                    record,
                    http_status=exc.status,
                    error=exc.message,
                    also=(kept,) if kept is not None else (),
                )
            )
            log.warning(
                "sync.write_failed",
                object_id=change.object_id,
                action=change.action.value,
                error=exc.message,
                category=exc.category.value,
                status=exc.status,
            )
            return Outcome.FAILED
        source = member.phone_source if member is not None else None
        record = settle(
            change, outcome, previous, now=self._clock(), upn=upn, agent=agent, phone_source=source
        )
        also: tuple[Recorded, ...] = ()
        if change.from_object_id is not None:
            # Moved, or (the agent gone behind our back) onboarded afresh: the old object ID has none.
            gone = settle_moved_from(change, True, moved_from)
            also = (gone,) if gone is not None else ()
        if moved and change.from_object_id is not None:
            result.relinked.append((change.from_object_id, change.object_id, upn))
            log.info("sync.relinked", object_id=change.object_id, from_object_id=change.from_object_id)
        settled.append(Settlement(op_id, outcome, record, also=also))
        return outcome

    async def _relink(
        self, client: SmartCommClient, change: Change, conflicts: Mapping[str, str]
    ) -> tuple[Outcome, AgentFields | None, bool]:
        """Send a relink's one PATCH; whether the agent was moved (False: there was none to move, so the
        person was onboarded instead). Raises SmartCommError for what the caller records as failed."""
        wanted = change.desired
        assert wanted is not None
        try:
            agent = await relink_agent(client, change)
        except AgentNotFound:
            outcome, fields = await self._onboard(client, change.object_id, wanted, conflicts)
            return outcome, fields, False
        return Outcome.OK, AgentFields.of_agent(agent, wanted.upn), True

    async def _send(
        self, client: SmartCommClient, change: Change, conflicts: Mapping[str, str]
    ) -> tuple[Outcome, AgentFields | None]:
        """The API calls of one change; raises SmartCommError for what the caller records as failed.
        `conflicts`: new object IDs whose consistency GUID another in-scope person's agent holds."""
        oid = change.object_id
        if change.action is Action.OFFBOARD:
            try:
                await client.offboard(oid)
            except AgentNotFound:
                return Outcome.ALREADY_GONE, None
            return Outcome.OK, None
        wanted = change.desired
        assert wanted is not None
        if change.action is Action.UPDATE:
            try:
                agent = await client.update(oid, _patch(wanted, change.fields))
            except AgentNotFound:
                # Gone behind our back: onboard it again.
                return await self._onboard(client, oid, wanted, conflicts)
            return Outcome.OK, AgentFields.of_agent(agent, wanted.upn)
        return await self._onboard(client, oid, wanted, conflicts)

    async def _onboard(
        self, client: SmartCommClient, oid: str, wanted: AgentFields, conflicts: Mapping[str, str]
    ) -> tuple[Outcome, AgentFields | None]:
        try:
            await client.onboard(
                NewAgent(oid, wanted.tenant_id, wanted.phone_number, wanted.upn, wanted.consistency_id)
            )
        except AgentExists:
            return await self._adopt(client, await client.get_agent(oid), wanted)
        except AnchorExists as exc:
            holder = await client.get_agent(wanted.consistency_id or "", key_id="consistency_id")
            if holder.user_object_id != oid:
                raise AnchorConflict(
                    f"consistency GUID {wanted.consistency_id} belongs to agent {holder.user_object_id}: "
                    "was the user re-created in Entra? An admin must decide"
                    + self._anchor_hint(oid, holder.user_object_id, conflicts),
                    status=exc.status,
                ) from exc
            return await self._adopt(client, holder, wanted)
        return Outcome.OK, wanted

    def _anchor_hint(self, oid: str, holder: str, conflicts: Mapping[str, str]) -> str:
        """What the admin can do about a consistency GUID held by another object's agent."""
        if conflicts.get(oid) == holder:
            return (
                f"; {holder} is in scope too (two people with one anchor), so syncd moves nothing: remove "
                "the wrong one from the groups or correct its anchor"
            )
        relink = f"`syncd relink {holder} {oid}` moves that agent, with its data, to this user"
        if self._settings.sync.relink == "off":
            return f"; sync.relink is off: if it is the same person, {relink}"
        return f"; if it is the same person, {relink}"

    @staticmethod
    async def _adopt(
        client: SmartCommClient, agent: Agent, wanted: AgentFields
    ) -> tuple[Outcome, AgentFields | None]:
        """Take over an agent that exists for this object ID, patching what differs."""
        current = AgentFields.of_agent(agent, None)
        fields = changed_fields(current, wanted)
        if fields:
            agent = await client.update(agent.user_object_id, _patch(wanted, fields))
            current = AgentFields.of_agent(agent, wanted.upn)
        return Outcome.ADOPTED, current


class AnchorConflict(SmartCommError):
    """The consistency GUID is held by another object's agent."""

    category = ErrorCategory.CONFLICT


def _patch(wanted: AgentFields, fields: tuple[str, ...]) -> AgentPatch:
    return AgentPatch(**{name: getattr(wanted, name) for name in fields})


def relink_key(change: Change) -> tuple[str, WriteKey]:
    """Pure: how a relink's PATCH addresses the agent: by the consistency GUID when the agent and the
    re-created user share one (`key_id=consistency_id`), else by the old object ID (a cloud-only user has
    no anchor: `key_id=user_object_id`)."""
    held, wanted = change.believed, change.desired
    assert change.from_object_id is not None
    assert wanted is not None
    if held is not None and held.consistency_id is not None and held.consistency_id == wanted.consistency_id:
        return held.consistency_id, "consistency_id"
    return change.from_object_id, "user_object_id"


def relink_patch(change: Change) -> AgentPatch:
    """Pure: a relink's PATCH: the new `user_object_id`, the UPN and number as wanted, a tenant or
    consistency GUID only when they differ, and `transfer_data`."""
    held, wanted = change.believed, change.desired
    assert wanted is not None
    differs = changed_fields(held, wanted) if held is not None else ("tenant_id", "consistency_id")
    return AgentPatch(
        phone_number=wanted.phone_number,
        upn=wanted.upn,
        user_object_id=change.object_id,
        tenant_id=wanted.tenant_id if "tenant_id" in differs else None,
        consistency_id=wanted.consistency_id if "consistency_id" in differs else None,
        transfer_data=change.transfer_data,
    )


async def relink_agent(client: SmartCommClient, change: Change) -> Agent:
    """Send a relink: one PATCH moving the agent to `change.object_id` (no DELETE, no POST); the agent as
    the service now holds it. Raises `SmartCommError` (`AgentNotFound` when there is no agent to move)."""
    key, key_id = relink_key(change)
    return await client.update(key, relink_patch(change), key_id=key_id)
