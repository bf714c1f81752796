"""One sync cycle: settle what a crash left pending, read desired state, plan, guard, apply, record.

Every write is recorded as a pending operation before it is sent and settled after its answer, so a cycle
interrupted at any point (kill -9 included) is repaired by the next one: pending operations are settled by
reading the agent back before anything else is planned (`syncd.cycle.apply` settles them and sends the
writes). Writes run concurrently up to `sync.concurrency`
over one pooled client; one person's failure never stops the others, while a systemic failure
(credentials, service down, throttled, tenant not registered, or more than `sync.quarantine_failure_share` of
the writes failing) stops starting new writes. A cycle that fails as a whole enters the quarantine (stored;
see `syncd.core.quarantine`), and the first one that runs as a whole again leaves it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from syncd.config.settings import Settings
from syncd.core import quarantine
from syncd.core.exits import EXIT_CONFIG, EXIT_FAILURES, EXIT_GUARD, EXIT_OK
from syncd.core.model import (
    Action,
    Agent,
    Change,
    DesiredState,
    Member,
    MemberStatus,
    Recorded,
    Skipped,
)
from syncd.core.pacing import PacingTuning
from syncd.core.reconcile import GuardStop, Plan, plan

# The apply step lives in `apply`; what moved there is still importable from here (`__all__`).
from syncd.cycle.apply import APPLY_BATCH, SYSTEMIC, AnchorConflict, Applier, Failure, Progress
from syncd.cycle.desired import DELTA_KEY, FULL, Read, read_desired
from syncd.graph.auth import MsalTokenProvider
from syncd.graph.errors import GraphCredentialError, GraphError, GraphPermissionError, GroupNotFound
from syncd.graph.source import GraphSource
from syncd.smartcomm import AuthError, SmartCommClient, SmartCommError, TlsVerificationError
from syncd.store import Store

__all__ = [
    "APPLY_BATCH",
    "CONFIG_CAUSED",
    "EXIT_CONFIG",
    "EXIT_FAILURES",
    "EXIT_GUARD",
    "EXIT_OK",
    "IN_SCOPE_KEY",
    "LAST_FULL_KEY",
    "SYSTEMIC",
    "AnchorConflict",
    "CycleResult",
    "Engine",
    "Failure",
    "Progress",
    "UserNotFound",
]

log = structlog.get_logger("syncd.engine")

IN_SCOPE_KEY = "group_in_scope"
LAST_FULL_KEY = "last_full_cycle_at"
CONFIG_CAUSED = (GraphCredentialError, GraphPermissionError, GroupNotFound, AuthError, TlsVerificationError)
"""Failures whose cause is the configuration (credentials, permissions, group IDs, CA bundle)."""


@dataclass
class CycleResult:
    """What a cycle did; `exit_code` is the CLI's."""

    run_id: int | None
    kind: str
    dry_run: bool
    planned: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    unmanaged: int = 0
    failures: list[Failure] = field(default_factory=list)
    stopped_by: GuardStop | None = None
    error: str | None = None
    exit_code: int = EXIT_OK
    duration_s: float = 0.0
    changes: list[Change] = field(default_factory=list)
    phone_sources: dict[str, int] = field(default_factory=dict)
    """Members in scope by where their number came from (graph.phone_source)."""
    ambiguous: dict[str, str] = field(default_factory=dict)
    """Members whose number was chosen among tied candidates, by object ID: how."""
    graph_read: str = FULL
    """How Graph was read: "full" (everything) or "delta" (only changes since the stored links)."""
    graph_read_reason: str | None = None
    """Why Graph was read in full (None for a delta read)."""
    phase_cpu_s: dict[str, float] = field(default_factory=dict)
    """Process CPU seconds per phase of the cycle: "read" (Graph, the agents list, our records), "plan",
    "apply" (writes and their records)."""
    write_concurrency: int | None = None
    """The adaptive write concurrency after this cycle's apply step (1 .. `sync.concurrency`; None: the cycle
    stopped before it, or the concurrency is fixed)."""
    quarantine: quarantine.QuarantineState | None = None
    """The quarantine after this cycle (None: not quarantined, or a dry run or `--user` cycle, which neither
    read nor change it)."""

    def to_json(self) -> dict[str, Any]:
        """The `--json` document (stable keys; scripts depend on them)."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "planned": self.planned,
            "outcomes": self.outcomes,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "unmanaged": self.unmanaged,
            "failures": [f.__dict__ | {"action": f.action.value} for f in self.failures],
            "stopped_by": None if self.stopped_by is None else self.stopped_by.guard,
            "stop_reason": None if self.stopped_by is None else self.stopped_by.message,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "phone_sources": self.phone_sources,
            "graph_read": self.graph_read,
            "graph_read_reason": self.graph_read_reason,
            "phase_cpu_s": self.phase_cpu_s,
            "ambiguous_numbers": [
                {"object_id": object_id, "note": note} for object_id, note in sorted(self.ambiguous.items())
            ],
            "quarantined": self.quarantine is not None,
            "quarantine": None if self.quarantine is None else self.quarantine.to_json(),
        }

    def counts(self) -> dict[str, int]:
        """Flat counts for the runs table."""
        flat = {f"planned_{k}": v for k, v in self.planned.items()}
        for action, outcomes in self.outcomes.items():
            flat |= {f"{action}_{outcome}": n for outcome, n in outcomes.items()}
        flat |= {
            "unchanged": self.unchanged,
            "skipped": sum(self.skipped.values()),
            "deferred": self.deferred,
            "failed": len(self.failures),
            "unmanaged": self.unmanaged,
        }
        return flat


class Engine:
    """Runs cycles for one configuration and store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        graph_transport: httpx.AsyncBaseTransport | None = None,
        smartcomm_transport: httpx.AsyncBaseTransport | None = None,
        login_transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        write_pacing: PacingTuning | None = PacingTuning(),  # noqa: B008 - frozen, shared harmlessly
    ) -> None:
        """The transports replace the network for Graph, SmartCommunicator and msal's Entra login (the cycle
        tests run both emulators in-process); `clock` gives "now" to plans, backoff and the quarantine.
        `write_pacing` tunes the adaptive write concurrency (`syncd.core.pacing`); None turns it off (a fixed
        `sync.concurrency`, as the benchmark compares)."""
        self._settings = settings
        self._store = store
        self._graph_transport = graph_transport
        self._smartcomm_transport = smartcomm_transport
        self._login_transport = login_transport
        self._clock = clock
        self._applier = Applier(settings, store, clock, write_pacing)
        """The apply step (`syncd.cycle.apply`): settling pending writes and sending the plan's."""
        self._graph_tokens: MsalTokenProvider | None = None
        """msal's app and token cache, kept across cycles: a daemon logs in when its token runs out, not
        every cycle."""

    async def run_cycle(
        self,
        *,
        trigger: str = "cli",
        full: bool = False,
        dry_run: bool = False,
        force: bool = False,
        user: str | None = None,
        progress: Progress | None = None,
        requested_by: str | None = None,
    ) -> CycleResult:
        """One cycle; never raises for remote or data problems (they end up in the result and the run).
        `requested_by` names who asked for a manual cycle (recorded with the run)."""
        started = time.monotonic()
        kind = "full" if full else "incremental"
        store = self._store
        result = CycleResult(run_id=None, kind=kind, dry_run=dry_run)
        result.run_id = store.begin_run(
            trigger=trigger, kind=kind, dry_run=dry_run, requested_by=requested_by
        )
        outcome = "error"
        try:
            async with SmartCommClient(
                self._settings.require_smartcomm(), transport=self._smartcomm_transport
            ) as client:
                # Credentials first: a wrong password must fail the cycle even when nothing is to be written.
                await client.authenticate()
                if not dry_run:
                    await self._applier.settle_pending(client)
                cpu = time.process_time()
                read = await self._read_desired(full=full, track=not dry_run and user is None)
                desired = read.desired
                result.graph_read, result.graph_read_reason = read.kind, read.reason
                remote = await self._remote(client) if full else None
                recorded = store.load_recorded(read.subset)
                cpu = self._phase(result, "read", cpu)
                only = self._resolve(user, desired, recorded) if user else None
                the_plan = plan(
                    desired,
                    recorded,
                    remote,
                    now=self._clock(),
                    max_offboard=self._settings.sync.max_offboard,
                    force=force,
                    previous_in_scope=self._previous_in_scope(),
                    only=only,
                    subset=read.subset,
                )
                cpu = self._phase(result, "plan", cpu)
                self._report_plan(result, the_plan)
                result.deferred += read.waiting
                self._report_sources(result, desired)
                if the_plan.stop is not None:
                    result.stopped_by = the_plan.stop
                    result.exit_code = EXIT_GUARD
                    outcome = "guard"
                    log.warning(
                        "sync.stopped_by_guard", guard=the_plan.stop.guard, reason=the_plan.stop.message
                    )
                    return result
                if dry_run:
                    outcome = "ok"
                    return result
                self._record_scope(recorded, the_plan, desired, only)
                self._record_memberships(read)
                await self._applier.apply(client, the_plan, desired, recorded, result, progress)
                cpu = self._phase(result, "apply", cpu)
                if only is None:
                    if read.kind == FULL:  # a delta read counts only the groups it saw lose members
                        self._remember_in_scope(desired)
                    if full and result.error is None:  # a halted full cycle repaired nothing: due again
                        self._store.set_value(LAST_FULL_KEY, repr(self._clock()))
                if read.state is not None and result.error is None:
                    # Only a cycle that applied its changes moves the links on; any other reads them again.
                    store.set_value(DELTA_KEY, read.state.to_json())
                # People waiting out a backoff are not converged either: exit 1 until they are. A systemic
                # failure that stopped the writes fails the cycle as a whole ("error", exit 1).
                if result.error:
                    outcome = "error"
                else:
                    outcome = "failed" if result.failures or result.deferred else "ok"
                result.exit_code = EXIT_OK if outcome == "ok" else EXIT_FAILURES
                return result
        except (GraphError, SmartCommError) as exc:
            result.error = str(exc)
            # Wrong credentials, permissions, group IDs or CA bundle are the configuration's fault: exit 2.
            result.exit_code = EXIT_CONFIG if isinstance(exc, CONFIG_CAUSED) else EXIT_FAILURES
            outcome = "error"
            log.error("sync.failed", error=str(exc), error_type=type(exc).__name__)
            return result
        except asyncio.CancelledError:
            # SIGTERM after the grace period: writes in flight stay pending and are settled at the next start.
            outcome = "interrupted"
            result.error = "interrupted by shutdown"
            raise
        except UserNotFound as exc:
            result.error = str(exc)
            result.exit_code = EXIT_CONFIG
            outcome = "error"
            return result
        finally:
            result.duration_s = time.monotonic() - started
            counts = result.counts()
            store.finish_run(result.run_id, outcome=outcome, counts=counts, error=result.error)
            if not dry_run and user is None and outcome != "interrupted":
                self._advance_quarantine(result, outcome)
            log.info(
                "sync.cycle",
                run_id=result.run_id,
                kind=kind,
                dry_run=dry_run,
                outcome=outcome,
                duration_s=round(result.duration_s, 3),
                **counts,
            )

    def _advance_quarantine(self, result: CycleResult, outcome: str) -> None:
        """Enter, prolong or leave the quarantine after a real cycle; a store failure is only logged."""
        settings = self._settings.sync
        try:
            before = quarantine.load(self._store)
            after = quarantine.transition(
                before,
                outcome,
                result.error,
                now=self._clock(),
                initial_s=settings.quarantine_initial_s,
                max_s=settings.quarantine_max_s,
            )
            if after != before:
                quarantine.save(self._store, after)
        except Exception as exc:  # the database may be what failed: the cycle's own result stands
            log.warning("sync.quarantine_state_failed", error=str(exc), error_type=type(exc).__name__)
            return
        result.quarantine = after
        if after is not None:
            log.warning(
                "sync.quarantined",
                reason=after.reason,
                failed_cycles=after.failed_cycles,
                next_at=round(after.next_at, 3),
            )
        elif before is not None:
            log.info("sync.quarantine_cleared", failed_cycles=before.failed_cycles, since=before.since)

    def last_full_cycle_at(self) -> float | None:
        """When a full cycle last completed its writes (epoch seconds), if ever."""
        raw = self._store.get_value(LAST_FULL_KEY)
        try:
            return float(raw) if raw else None
        except ValueError:
            return None

    # -- reading ------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release what is kept across cycles (msal's connection pool)."""
        tokens, self._graph_tokens = self._graph_tokens, None
        if tokens is not None:
            await asyncio.to_thread(tokens.close)

    async def _read_desired(self, *, full: bool, track: bool) -> Read:
        settings = self._settings.require_graph()
        if self._graph_tokens is None:
            self._graph_tokens = MsalTokenProvider(settings, transport=self._login_transport)
        tokens = self._graph_tokens
        async with GraphSource(settings, transport=self._graph_transport, tokens=tokens) as source:
            return await read_desired(
                source, settings, self._store, full=full, track=track, now=self._clock()
            )

    def _record_memberships(self, read: Read) -> None:
        """Store the membership changes a delta read found (a full read stored its memberships itself; the
        links come after the writes)."""
        if read.changes is not None:
            self._store.apply_edge_changes(read.changes.edges(), list(read.changes.removed))
        if read.deleted:
            self._store.remove_member_edges(read.deleted)

    @staticmethod
    def _phase(result: CycleResult, name: str, started: float) -> float:
        now = time.process_time()
        result.phase_cpu_s[name] = round(now - started, 4)
        return now

    @staticmethod
    async def _remote(client: SmartCommClient) -> dict[str, Agent]:
        agents: dict[str, Agent] = {}
        for agent in await client.list_agents():
            # An object may appear twice (an old offboarded record and a new one): the active one wins.
            if agent.active or agent.user_object_id not in agents:
                agents[agent.user_object_id] = agent
        return agents

    def _previous_in_scope(self) -> dict[str, int]:
        raw = self._store.get_value(IN_SCOPE_KEY)
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def _remember_in_scope(self, desired: DesiredState) -> None:
        self._store.set_value(IN_SCOPE_KEY, json.dumps(desired.group_in_scope))

    @staticmethod
    def _resolve(user: str, desired: DesiredState, recorded: Mapping[str, Recorded]) -> str:
        """The object ID meant by `--user` (an object ID or a UPN, any case)."""
        wanted = user.strip().lower()
        if wanted in desired.members or wanted in desired.skipped or wanted in recorded:
            return wanted
        people: Iterable[Member | Skipped | Recorded] = itertools.chain(
            desired.members.values(), desired.skipped.values(), recorded.values()
        )
        for person in people:
            if (person.upn or "").lower() == wanted:
                return person.object_id
        raise UserNotFound(f"no user {user!r} in the configured groups or in our records")

    # -- recording what needs no call (the writes are `apply`'s) ------------------------------------

    def _record_scope(
        self, recorded: Mapping[str, Recorded], the_plan: Plan, desired: DesiredState, only: str | None
    ) -> None:
        """Record skipped people, agents found already gone, and unchanged agents whose number now comes
        from another phone source (no call needed for any of them)."""
        updates: list[Recorded] = [
            dataclasses.replace(recorded[object_id], phone_source=desired.members[object_id].phone_source)
            for object_id in the_plan.resourced
        ]
        for skipped in the_plan.skipped:
            if not skipped.object_id or (only is not None and skipped.object_id != only):
                continue
            previous = recorded.get(skipped.object_id)
            if previous is not None and previous.agent is not None:
                continue  # still has an agent: the offboarding settles its record
            if (
                previous is not None
                and previous.status is MemberStatus.SKIPPED
                and (previous.skip_reason, previous.detail, previous.upn)
                == (skipped.reason, skipped.detail, skipped.upn)
            ):
                continue  # recorded as it is: nothing to write
            updates.append(
                Recorded(
                    skipped.object_id,
                    MemberStatus.SKIPPED,
                    None,
                    upn=skipped.upn,
                    skip_reason=skipped.reason,
                    detail=skipped.detail,
                )
            )
        for object_id in the_plan.forgotten:
            previous = recorded.get(object_id)
            updates.append(
                Recorded(object_id, MemberStatus.OFFBOARDED, None, upn=previous.upn if previous else None)
            )
        if updates:
            self._store.save_members(updates)

    # -- reporting ----------------------------------------------------------------------------------

    @staticmethod
    def _report_plan(result: CycleResult, the_plan: Plan) -> None:
        result.planned = {action.value: the_plan.count(action) for action in Action}
        result.unchanged = the_plan.unchanged
        result.deferred = len(the_plan.deferred)
        result.unmanaged = len(the_plan.unmanaged)
        result.skipped = dict(Counter(s.reason.value for s in the_plan.skipped))
        result.changes = the_plan.changes

    @staticmethod
    def _report_sources(result: CycleResult, desired: DesiredState) -> None:
        result.phone_sources = dict(
            Counter(member.phone_source or "unknown" for member in desired.members.values()).most_common()
        )
        result.ambiguous = dict(desired.ambiguous)


class UserNotFound(Exception):
    """`--user` names nobody we know."""
