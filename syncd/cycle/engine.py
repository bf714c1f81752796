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
from typing import Any

import httpx
import structlog

from syncd.config.settings import Settings
from syncd.config.shaping import shaping_values
from syncd.core import quarantine
from syncd.core.exits import EXIT_CONFIG, EXIT_FAILURES, EXIT_GUARD, EXIT_OK
from syncd.core.limits import Limit
from syncd.core.model import (
    Action,
    Agent,
    DesiredState,
    Member,
    MemberStatus,
    Recorded,
    Skipped,
)
from syncd.core.pacing import PacingTuning
from syncd.core.reconcile import Plan, plan
from syncd.core.setting_changes import SettingChange, changed_settings, describe_changes, values_from_json

# The apply step lives in `apply`; what moved there is still importable from here (`__all__`).
from syncd.cycle.apply import APPLY_BATCH, SYSTEMIC, AnchorConflict, Applier, Failure, Progress
from syncd.cycle.collector import collector_paused, freeze_cycle_state
from syncd.cycle.desired import DELTA_KEY, FULL, Read, read_desired
from syncd.cycle.mappings import StoreMappingCache
from syncd.cycle.relink import RelinkRefused, RelinkResult, object_id_of, relink_by_hand
from syncd.cycle.result import CycleResult
from syncd.graph.auth import MsalTokenProvider
from syncd.graph.errors import GraphCredentialError, GraphError, GraphPermissionError, GroupNotFound
from syncd.graph.page_memo import PageMemo
from syncd.graph.source import GraphSource
from syncd.smartcomm import AuthError, SmartCommClient, SmartCommError, TlsVerificationError
from syncd.smartcomm.memo import AgentsMemo
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
    "SETTINGS_KEY",
    "SYSTEMIC",
    "AnchorConflict",
    "CycleResult",
    "Engine",
    "Failure",
    "Progress",
    "RelinkResult",
    "UserNotFound",
]

log = structlog.get_logger("syncd.engine")

IN_SCOPE_KEY = "group_in_scope"
LAST_FULL_KEY = "last_full_cycle_at"
SETTINGS_KEY = "shaping_settings"
"""kv key: the values of the settings shaping desired state (`syncd.config.shaping`) as of the last cycle that
applied its plan, a JSON object by dotted key; the next cycle names those that changed since."""
CONFIG_CAUSED = (GraphCredentialError, GraphPermissionError, GroupNotFound, AuthError, TlsVerificationError)
"""Failures whose cause is the configuration (credentials, permissions, group IDs, CA bundle)."""


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
        on_throttled: Callable[[str], None] | None = None,
        write_pacing: PacingTuning | None = PacingTuning(),  # noqa: B008 - frozen, shared harmlessly
    ) -> None:
        """The transports replace the network for Graph, SmartCommunicator and msal's Entra login (the cycle
        tests run both emulators in-process); `clock` gives "now" to plans, backoff and the quarantine;
        `on_throttled` is told of every 429 answer with the API's name, "graph" or "smartcomm" (the daemon
        counts them). `write_pacing` tunes the adaptive write concurrency (`syncd.core.pacing`); None turns
        it off (a fixed `sync.concurrency`, as the benchmark compares)."""
        self._settings = settings
        self._store = store
        self._graph_transport = graph_transport
        self._smartcomm_transport = smartcomm_transport
        self._login_transport = login_transport
        self._clock = clock
        self._on_throttled = on_throttled
        self._applier = Applier(settings, store, clock, write_pacing)
        """The apply step (`syncd.cycle.apply`): settling pending writes and sending the plan's."""
        self._graph_tokens: MsalTokenProvider | None = None
        """msal's app and token cache, kept across cycles: a daemon logs in when its token runs out, not
        every cycle."""
        self._page_memo = PageMemo()
        """The member pages of the last full read, as mapped (`syncd.graph.page_memo`): the next full read
        takes the pages Graph sends again unchanged instead of mapping their users again (from memory in a
        daemon, from the store's page memo in a fresh process)."""
        self._agents_memo = AgentsMemo()
        """The agents list of the last full cycle (`syncd.smartcomm.client.AgentsMemo`)."""
        self._records_memo: tuple[int, dict[str, Recorded]] | None = None
        """The records the last full cycle loaded, with the members table's change counter read before
        (`_load_recorded`)."""

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
        shaping = shaping_values(self._settings)
        shaping_json = json.dumps(shaping, sort_keys=True)
        try:
            stored_shaping = store.get_value(SETTINGS_KEY)
            result.settings_changed = self._settings_changed(stored_shaping, shaping)
            async with SmartCommClient(
                self._settings.require_smartcomm(),
                transport=self._smartcomm_transport,
                on_throttled=self._throttled("smartcomm"),
            ) as client:
                # Credentials first: a wrong password must fail the cycle even when nothing is to be written.
                await client.authenticate()
                if not dry_run:
                    await self._applier.settle_pending(client)
                mark = (time.process_time(), time.monotonic())
                traced = not dry_run and user is None  # a cycle that may leave traces of its read
                read = await self._read_desired(full=full, track=traced, cache_mappings=traced)
                desired = read.desired
                result.graph_read, result.graph_read_reason = read.kind, read.reason
                # Given the desired members, the agents and records share their strings (memory, at 1M).
                # Built in bulk, with no collection walking them as they grow; then frozen (collector).
                with collector_paused():
                    remote = await self._remote(client, desired.members) if full else None
                    recorded = self._load_recorded(read.subset, desired.members)
                mark = self._phase(result, "read", mark)
                only = self._resolve(user, desired, recorded) if user else None
                sync = self._settings.sync
                with collector_paused():
                    the_plan = self._plan(desired, recorded, remote, read, result, only=only, force=force)
                mark = self._phase(result, "plan", mark)
                self._report_plan(result, the_plan)
                self._report_pending(result, the_plan, sync.offboard_grace_s)
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
                mark = self._phase(result, "apply", mark)
                if only is None:
                    if read.kind == FULL:  # a delta read counts only the groups it saw lose members
                        self._remember_in_scope(desired)
                    if result.error is None and shaping_json != stored_shaping:
                        # Applied: later cycles compare their settings with these.
                        store.set_value(SETTINGS_KEY, shaping_json)
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
            store.finish_run(
                result.run_id,
                outcome=outcome,
                counts=counts,
                error=result.error,
                settings_changed=result.settings_changed,
            )
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

    async def relink(
        self, old: str, new: str, *, dry_run: bool = False, transfer_data: bool = True
    ) -> RelinkResult:
        """`syncd relink OLD NEW` (`syncd.cycle.relink`): settle what a crash left pending, read Graph in
        full, check, and move the agent of OLD to NEW (or say what would be sent). Refusals and failures
        end up in the result (exit 2 and 1), never raised."""
        result = RelinkResult(old.strip(), new.strip(), dry_run, transfer_data)
        try:
            result.old, result.new = object_id_of(old, "OLD"), object_id_of(new, "NEW")
            async with SmartCommClient(
                self._settings.require_smartcomm(), transport=self._smartcomm_transport
            ) as client:
                await client.authenticate()
                if not dry_run:
                    await self._applier.settle_pending(client)
                read = await self._read_desired(full=True, track=False, cache_mappings=not dry_run)
                return await relink_by_hand(
                    self._settings, self._store, client, read.desired, result, now=self._clock()
                )
        except RelinkRefused as exc:
            result.message, result.exit_code = str(exc), EXIT_CONFIG
        except (GraphError, SmartCommError) as exc:
            result.message = str(exc)
            result.exit_code = EXIT_CONFIG if isinstance(exc, CONFIG_CAUSED) else EXIT_FAILURES
            result.outcome = "error"
        return result

    def last_full_cycle_at(self) -> float | None:
        """When a full cycle last completed its writes (epoch seconds), if ever."""
        raw = self._store.get_value(LAST_FULL_KEY)
        try:
            return float(raw) if raw else None
        except ValueError:
            return None

    def _throttled(self, api: str) -> Callable[[], None] | None:
        """What the client of `api` calls for each 429: `on_throttled(api)`, or nothing."""
        on_throttled = self._on_throttled
        if on_throttled is None:
            return None
        return lambda: on_throttled(api)

    # -- reading ------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release what is kept across cycles (msal's connection pool)."""
        tokens, self._graph_tokens = self._graph_tokens, None
        if tokens is not None:
            await asyncio.to_thread(tokens.close)

    async def _read_desired(self, *, full: bool, track: bool, cache_mappings: bool) -> Read:
        """Desired state (`read_desired`). A full read takes unchanged pages and users' mappings from the
        store's page memo and mapping cache, and writes the new ones there only with `cache_mappings`
        (`syncd.cycle.mappings`)."""
        settings = self._settings.require_graph()
        if self._graph_tokens is None:
            self._graph_tokens = MsalTokenProvider(settings, transport=self._login_transport)
        tokens = self._graph_tokens
        sync = self._settings.sync
        caches = StoreMappingCache(self._store, writable=cache_mappings)
        async with GraphSource(
            settings,
            transport=self._graph_transport,
            tokens=tokens,
            on_throttled=self._throttled("graph"),
            mapping_cache=caches,
            page_memo=self._page_memo,
            page_store=caches,
            after_page=freeze_cycle_state,
        ) as source:
            return await read_desired(
                source,
                settings,
                self._store,
                full=full,
                track=track,
                now=self._clock(),
                offboard_grace_s=sync.offboard_grace_s,
                relink=sync.relink == "auto",
            )

    def _record_memberships(self, read: Read) -> None:
        """Store the membership changes a delta read found, or a full read that followed its links (one that
        restarted tracking stored its memberships itself); the links come after the writes."""
        if read.changes is not None:
            self._store.apply_edge_changes(read.changes.edges(), list(read.changes.removed))
        if read.deleted:
            self._store.remove_member_edges(read.deleted)

    def _load_recorded(self, subset: set[str] | None, like: Mapping[str, Member]) -> Mapping[str, Recorded]:
        """Our records of `subset` (a delta read's people), or of everyone: those the last full cycle loaded
        while the members table's change counter has not moved since (a write by anyone, this process's
        cycles included, moves it: `Store.members_version`), else loaded again. Records are frozen and the
        cycle only reads the mapping, so the same one serves the next cycle."""
        store = self._store
        if subset is not None:
            return store.load_recorded(subset, like=like)
        version = store.members_version()
        memo = self._records_memo
        if memo is not None and memo[0] == version:
            log.info("store.records_reused", records=len(memo[1]), version=version)
            return memo[1]
        self._records_memo = None  # the stale records go before the new ones come (peak memory)
        del memo
        records = store.load_recorded(like=like)
        self._records_memo = (version, records)
        return records

    def _plan(
        self,
        desired: DesiredState,
        recorded: Mapping[str, Recorded],
        remote: Mapping[str, Agent] | None,
        read: Read,
        result: CycleResult,
        *,
        only: str | None,
        force: bool,
    ) -> Plan:
        """The cycle's plan (`syncd.core.reconcile.plan`) under the configured guards and relinking."""
        sync = self._settings.sync
        return plan(
            desired,
            recorded,
            remote,
            now=self._clock(),
            max_offboard=sync.max_offboard,
            max_update=sync.max_update,
            managed=self._managed(force),
            force=force,
            previous_in_scope=self._previous_in_scope(),
            only=only,
            subset=read.subset,
            changed_settings=result.settings_changed,
            max_relink=sync.max_relink,
            relink=sync.relink == "auto",
            offboard_grace_s=sync.offboard_grace_s,
        )

    @staticmethod
    def _phase(result: CycleResult, name: str, started: tuple[float, float]) -> tuple[float, float]:
        """Record the process CPU and wall seconds of phase `name`, begun at `started` (CPU, monotonic)."""
        cpu, wall = time.process_time(), time.monotonic()
        result.phase_cpu_s[name] = round(cpu - started[0], 4)
        result.phase_wall_s[name] = round(wall - started[1], 4)
        return cpu, wall

    async def _remote(self, client: SmartCommClient, like: Mapping[str, Member]) -> dict[str, Agent]:
        agents: dict[str, Agent] = {}
        for agent in await client.list_agents(like=like, memo=self._agents_memo):
            # An object may appear twice (an old offboarded record and a new one): the active one wins.
            if agent.active or agent.user_object_id not in agents:
                agents[agent.user_object_id] = agent
        return agents

    @staticmethod
    def _settings_changed(stored: str | None, shaping: Mapping[str, Any]) -> tuple[SettingChange, ...]:
        """The settings shaping desired state whose values differ from the last applied cycle's (`stored`)."""
        changes = changed_settings(values_from_json(stored), shaping)
        if changes:
            log.warning(
                "sync.settings_changed",
                settings=[change.key for change in changes],
                changes=describe_changes(changes),
            )
        return changes

    def _managed(self, force: bool) -> int | None:
        """The agents we manage when a guard's limit is a percentage of them (else None: not needed)."""
        # Any guard limit of [sync] (max_offboard, max_update, ...): a new guard needs nothing here.
        shares = [value for _, value in self._settings.sync if isinstance(value, Limit) and value.percent]
        return self._store.count_managed_agents() if shares and not force else None

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
        """Record skipped people, agents found already gone, unchanged agents whose number now comes
        from another phone source, and the start or end of an offboarding grace (no call needed for any of
        them)."""
        changed: dict[str, Recorded] = {}
        for object_id in the_plan.resourced:
            source = desired.members[object_id].phone_source
            changed[object_id] = dataclasses.replace(recorded[object_id], phone_source=source)
        for object_id in the_plan.returned:
            # Back within the grace: the pending offboard is cancelled (a write of theirs settles anew).
            base = changed.get(object_id, recorded[object_id])
            changed[object_id] = dataclasses.replace(base, left_scope_at=None)
        for object_id, since in the_plan.leaving.items():
            if recorded[object_id].left_scope_at != since:
                changed[object_id] = dataclasses.replace(recorded[object_id], left_scope_at=since)
        updates: list[Recorded] = list(changed.values())
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

    def _report_pending(self, result: CycleResult, the_plan: Plan, offboard_grace_s: float) -> None:
        """The offboards waiting out the grace once this plan is applied: those recorded (a delta cycle
        plans only the people who changed) with this plan's on top."""
        since = {m.object_id: m.left_scope_at for m in self._store.members_leaving() if m.left_scope_at}
        since.update(the_plan.leaving)
        for object_id in the_plan.returned:
            since.pop(object_id, None)
        for change in the_plan.changes:
            since.pop(change.object_id, None)
            if change.from_object_id is not None:
                since.pop(change.from_object_id, None)
        result.offboard_pending = {object_id: at + offboard_grace_s for object_id, at in since.items()}

    @staticmethod
    def _report_sources(result: CycleResult, desired: DesiredState) -> None:
        result.phone_sources = dict(
            Counter(member.phone_source or "unknown" for member in desired.members.values()).most_common()
        )
        result.ambiguous = dict(desired.ambiguous)


class UserNotFound(Exception):
    """`--user` names nobody we know."""
