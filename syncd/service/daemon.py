"""The long-lived process behind `syncd run`: the schedule, manual resyncs, signals and the instance lock.

Cycles never overlap: a trigger that arrives during a cycle queues exactly one follow-up (a second one joins
it, and asks for a full cycle if either did). APScheduler runs an incremental cycle every `sync.interval`
(with jitter) and a full one every `sync.full_interval`; SIGHUP and `POST /resync` trigger one by hand.
SIGTERM/SIGINT stop the schedule, give the cycle in flight `sync.shutdown_grace` to finish, then cancel it:
its pending operations stay recorded as pending and are settled by the next start, so nothing is lost or
sent twice.

A schedule that cannot be set up (durations the scheduler or the clock cannot represent, a last full cycle
recorded at an impossible time) stops the daemon: `run` raises DaemonError (the CLI prints it and exits 1),
and `/readyz` never says ready meanwhile. It is checked before the daemon binds or leads, and again when it
takes the lead. The instance lock (SQLite: one daemon or `syncd sync` per database) is `service.instance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url

from syncd.config.settings import Settings
from syncd.core.quarantine import QuarantineState, describe, may_run_scheduled
from syncd.core.quarantine import load as load_quarantine
from syncd.cycle.collector import collect_after_cycle
from syncd.cycle.engine import EXIT_FAILURES, CycleResult, Engine
from syncd.reports.history import PRUNE_EVERY_S, prune
from syncd.service.admin import build_app
from syncd.service.audit import write_audit_log
from syncd.service.instance import AlreadyRunning, instance_lock
from syncd.service.leader import NotLeader, leadership_for
from syncd.service.listener import admin_server
from syncd.service.metrics import Metrics
from syncd.service.notify import SHUTDOWN_BUDGET_S, Notifier
from syncd.store import Store

log = structlog.get_logger("syncd.daemon")


class DaemonError(Exception):
    """The daemon cannot go on: its schedule cannot be set up, or leading failed. It stops rather than stay
    up without cycles; the command prints this message and exits 1."""


@dataclass
class _Request:
    full: bool
    trigger: str
    force: bool = False
    requested_by: str | None = None
    future: asyncio.Future[CycleResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Daemon:
    """Schedules cycles for one configuration and serves the admin API beside them."""

    def __init__(self, settings: Settings, store: Store, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = Metrics(interval_s=settings.sync.interval_s)
        self.engine = engine or Engine(settings, store, on_throttled=self.metrics.count_throttled)
        self.notifier = Notifier(settings.notify, on_outcome=self.metrics.count_notification)
        self.started_at = time.time()
        self.last_result: CycleResult | None = None
        self.last_outcome: str | None = None
        self.running: _Request | None = None
        self._queued: _Request | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._pruning: asyncio.Task[None] | None = None
        self.leadership = leadership_for(settings, store)
        """Whether this replica runs cycles (PostgreSQL: elected among replicas; `syncd.service.leader`)."""
        self._schedule: AsyncIOScheduler | None = None
        self._observed = 0
        """Cycles observed so far: tells a quarantine read from the database that a cycle ended meanwhile."""
        self.quarantine: QuarantineState | None = None
        """The quarantine as last read or left by a cycle (`syncd.core.quarantine`); None when not
        quarantined."""
        self._fatal: str | None = None
        """Why the daemon stops for good (DaemonError), e.g. a schedule that cannot be set up."""
        self._sole = make_url(settings.database.url).get_backend_name() != "postgresql"
        """SQLite: the only daemon on its database, so its leader from the start (no standby to be)."""

    # -- triggering -----------------------------------------------------------------------------------

    def trigger(
        self,
        *,
        full: bool = False,
        trigger: str = "manual",
        force: bool = False,
        requested_by: str | None = None,
    ) -> asyncio.Future[CycleResult]:
        """Ask for a cycle; the future resolves with its result. Never two at once, at most one queued.
        `requested_by` names who asked (the admin API's caller), recorded with the run."""
        if self._stop.is_set():
            future: asyncio.Future[CycleResult] = asyncio.get_running_loop().create_future()
            future.set_exception(RuntimeError("syncd is shutting down"))
            return future
        if not self.leadership.is_leader:
            future = asyncio.get_running_loop().create_future()
            future.set_exception(NotLeader("this replica is a standby: the leader runs cycles (see /status)"))
            return future
        if self.running is None:
            request = _Request(full, trigger, force, requested_by)
            self.running = request
            self._task = asyncio.create_task(self._cycles(request), name="syncd-cycle")
            return request.future
        if self._queued is None:
            self._queued = _Request(full, trigger, force, requested_by)
        else:
            self._queued.full = self._queued.full or full
            self._queued.force = self._queued.force or force
            if trigger != "schedule":
                self._queued.trigger = trigger  # a manual request joined: it runs even while quarantined
            if requested_by is not None:
                self._queued.requested_by = requested_by  # the latest caller's name, as one run serves both
        log.info("daemon.cycle_queued", trigger=trigger, full=self._queued.full)
        return self._queued.future

    async def _cycles(self, request: _Request | None) -> None:
        try:
            while request is not None:
                self.running = request
                if not await self.leadership.confirm():  # lost the lock: another replica may lead now
                    for waiting in (request, self._queued):
                        if waiting is not None and not waiting.future.done():
                            waiting.future.set_exception(NotLeader("this replica stopped leading"))
                            waiting.future.exception()  # retrieved: a scheduled trigger has no waiter
                    self._queued = None
                    return
                result = await self._one_cycle(request)
                if not request.future.done():
                    request.future.set_result(result)
                request, self._queued = self._queued, None
                if (
                    request is not None
                    and request.trigger == "schedule"
                    and self._quarantined_skip(request.full)
                ):
                    request.future.cancel()  # queued before this cycle quarantined: it waits for next_at
                    request = None
        except asyncio.CancelledError:
            if request is not None and not request.future.done():
                request.future.cancel()
            raise
        finally:
            self.running = None

    async def _one_cycle(self, request: _Request) -> CycleResult:
        """Run one cycle; whatever happens, the daemon goes on and the caller gets a result."""
        try:
            result = await self.engine.run_cycle(
                trigger=request.trigger,
                full=request.full,
                force=request.force,
                requested_by=request.requested_by,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not stop the schedule; the next cycle tries again
            log.exception("daemon.cycle_crashed")
            result = CycleResult(run_id=None, kind="full" if request.full else "incremental", dry_run=False)
            result.error, result.exit_code = f"the cycle crashed: {exc!r}", EXIT_FAILURES
        collect_after_cycle()  # cyclic garbage never outlives its cycle (syncd.cycle.collector)
        try:
            self._observe(result)
        except Exception:  # metrics or the status query failing must not wedge the daemon
            log.exception("daemon.observe_failed")
        self.notifier.after_cycle(self.store, result)  # only enqueues: the webhook never holds up a cycle
        audit_log = self.settings.notify.audit_log
        if audit_log and not result.dry_run:
            await asyncio.to_thread(write_audit_log, audit_log, self.store, result.run_id)
        return result

    def _observe(self, result: CycleResult) -> None:
        self.last_result = result
        if result.stopped_by is not None:
            self.last_outcome = "guard"
        elif result.error is not None:
            self.last_outcome = "error"
        else:
            self.last_outcome = "failed" if result.exit_code else "ok"
        self._observed += 1
        if not result.dry_run and result.run_id is not None:  # a crashed cycle knows nothing new about it
            self.quarantine = result.quarantine
        self.metrics.observe(result, self.last_outcome, self.store.count_by_status())
        self.metrics.observe_quarantine(self.quarantine)

    @property
    def systemic_failure(self) -> str | None:
        """Why cycles cannot do their job as a whole (not ready): a failure stopping the daemon, a leader
        whose schedule is not set up yet, the quarantine, else the last error."""
        if self._fatal is not None:
            return self._fatal
        if self._schedule is None and (self.leadership.is_leader or self._sole):
            # Ready means cycles run: a leader is ready once its schedule is (a standby is, by design).
            return "starting: the schedule is not set up yet"
        if self.quarantine is not None:
            return describe(self.quarantine)
        if self.last_outcome != "error":
            return None
        return (self.last_result.error if self.last_result else None) or "the last cycle failed"

    # -- running --------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the process exit code. Raises DaemonError when the schedule
        cannot be set up (before anything starts, or on taking the lead, after shutting down cleanly)."""
        self._check_schedule()
        with _sole_instance(self.store, self.settings.database.url):
            # Bind before anything starts: a busy port is a clear error, not uvicorn's exit(3) mid-cycle.
            listening = bind_admin(self.settings.admin.host, self.settings.admin.port)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            # A Daemon is an admin.AdminDaemon (structurally; mypy checks it here).
            server = admin_server(build_app(self), self.settings.admin)
            admin = asyncio.create_task(server.serve(sockets=[listening]), name="syncd-admin")
            leading = asyncio.create_task(
                self.leadership.run(self._stop, self._lead, self._stand_down), name="syncd-leadership"
            )
            leading.add_done_callback(self._leading_ended)
            self.notifier.start()
            log.info(
                "daemon.started",
                pid=os.getpid(),
                admin=self.settings.admin.listen,
                interval_s=self.settings.sync.interval_s,
                full_interval_s=self.settings.sync.full_interval_s,
            )
            try:
                await self._stop.wait()
                log.info("daemon.stopping")
                with contextlib.suppress(Exception):  # a failure of its own is self._fatal already
                    await leading  # bounded: it stops at its next check, which has timeouts
                if self._schedule is not None:
                    self._schedule.shutdown(wait=False)
                await self._drain()
                if self._pruning is not None:  # stops after its current batch: it watches _stop
                    await self._pruning
            finally:
                # Events of the last cycle get a bounded time to go out; the rest are dropped with a warning.
                await self.leadership.close()  # after the drain: no standby takes over mid-cycle
                await self.engine.aclose()
                budget_s = min(SHUTDOWN_BUDGET_S, self.settings.sync.shutdown_grace_s)
                await self.notifier.aclose(timeout_s=budget_s)
                server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await admin
                listening.close()
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
        if self._fatal is not None:
            log.error("daemon.stopped", error=self._fatal)
            raise DaemonError(self._fatal)
        log.info("daemon.stopped")
        return 0

    def _fail(self, message: str) -> None:
        """Stop the daemon for good: `run` raises DaemonError(message) once it has shut down, and /readyz
        says not ready meanwhile."""
        log.error("daemon.failed", error=message)
        if self._fatal is None:
            self._fatal = message
        self._stop.set()

    def _leading_ended(self, task: asyncio.Task[None]) -> None:
        # The leadership loop ends only at stop; ending otherwise (on SQLite, taking the lead failed) leaves
        # a daemon that would never run a cycle.
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        self._fail(f"leading failed: {type(error).__name__}: {error}"[:500])

    async def _lead(self) -> None:
        """This replica became the leader: close what a dead one left; start the schedule (a cycle now, or
        after the previous leader's longest time to notice it lost the lock, when it took over from one)."""
        self.metrics.leader.set(1)
        if self._stop.is_set():
            return
        # A leader whose session was cut (database restart, partition) may still be writing until its next
        # lock check, up to one poll period: the first cycle here waits out two before it settles anything.
        if self.leadership.takeover_delay_s:
            await asyncio.sleep(self.leadership.takeover_delay_s)
            if self._stop.is_set() or not await self.leadership.confirm():
                return
        # A run another leader left "running" was cut short: its pending operations settle in the next cycle.
        try:
            await asyncio.to_thread(self.store.interrupt_running_runs)
        except Exception:  # the database away: the cycle records that failure itself
            log.exception("daemon.interrupt_runs_failed")
        observed = self._observed
        try:
            last_full = await asyncio.to_thread(self.engine.last_full_cycle_at)
            # A restarted daemon or a new leader keeps backing off; read here, not at start: a standby
            # reports no quarantine of its own (and is ready), the leader reports the system's.
            loaded = await asyncio.to_thread(load_quarantine, self.store)
            last_success = await asyncio.to_thread(self.store.last_success_at)
        except Exception:  # the database away at takeover: give the lock back rather than lead idly
            log.exception("daemon.schedule_failed")
            raise
        if self._observed == observed:  # else a manual cycle meanwhile left a newer state: keep that
            self.quarantine = loaded
        self.metrics.observe_quarantine(self.quarantine)
        # From the database: the alert on no success for 3 intervals holds across restarts and takeovers.
        self.metrics.observe_last_success(last_success)
        try:
            schedule = self._scheduler(last_full, time.time())
            schedule.start()
        except Exception as exc:  # nothing a retry would change: stop rather than lead without cycles
            self._fail(self._schedule_problem(exc, last_full))
            return
        self._schedule = schedule

    async def _stand_down(self) -> None:
        """This replica lost the lock: no new cycles, and the one in flight is cancelled at once (another
        replica may lead already); its pending operations stay recorded and are settled by the next leader."""
        self.metrics.leader.set(0)
        # What this replica saw while leading is not a standby's state: the leader reports the system's.
        self.last_result, self.last_outcome, self.quarantine = None, None, None
        self.metrics.observe_quarantine(None)
        self.metrics.forget_last_cycle()
        if self._schedule is not None:
            self._schedule.shutdown(wait=False)
            self._schedule = None
        if self._queued is not None:
            self._queued.future.cancel()
            self._queued = None
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _scheduled_prune(self) -> None:
        # A coroutine for the same reason as _scheduled; the prune is a task of its own so that shutdown can
        # wait for its current batch instead of APScheduler's task being cancelled under it.
        if self._pruning is None or self._pruning.done():
            self._pruning = asyncio.create_task(self._prune_history(), name="syncd-prune")

    async def _prune_history(self) -> None:
        """Retention: delete the history older than sync.history_days, in a thread (blocking DB work)."""
        try:
            await asyncio.to_thread(
                prune, self.store, self.settings.sync.history_days, should_stop=self._stop.is_set
            )
        except Exception:  # the database may be away for a while: the next day's prune tries again
            log.exception("history.prune_failed")

    async def _scheduled(self, *, full: bool) -> None:
        # A coroutine on purpose: APScheduler runs plain callables in a thread pool, away from our loop.
        if not await self._scheduled_may_run(full=full):
            return
        self.trigger(full=full, trigger="schedule")

    async def _scheduled_may_run(self, *, full: bool) -> bool:
        """False while quarantined before its next try (manual cycles are not asked: they always run)."""
        observed = self._observed
        try:
            # Read afresh: a `syncd sync` or another replica may have entered or cleared it meanwhile.
            loaded = await asyncio.to_thread(load_quarantine, self.store)
        except Exception:  # the database away: the cycle runs and records that failure itself
            log.exception("daemon.quarantine_read_failed")
            return True
        if self._observed == observed:
            # A cycle that ended during the read left a newer state than the one read: keep that.
            self.quarantine = loaded
        self.metrics.observe_quarantine(self.quarantine)
        return not self._quarantined_skip(full)

    def _quarantined_skip(self, full: bool) -> bool:
        """Whether a scheduled cycle must wait (quarantined before `next_at`); logs the skip once if so."""
        now = time.time()
        if self.quarantine is None or may_run_scheduled(self.quarantine, now):
            return False
        log.info(
            "daemon.quarantined_skip",
            full=full,
            reason=self.quarantine.reason,
            failed_cycles=self.quarantine.failed_cycles,
            next_in_s=round(self.quarantine.next_at - now, 1),
        )
        return True

    async def _daily_summary(self) -> None:
        # A coroutine for the same reason as _scheduled; it only gathers and enqueues.
        await self.notifier.send_summary(self.store)

    def _on_sighup(self) -> None:
        log.info("daemon.sighup")
        if not self.leadership.is_leader:
            log.info("daemon.sighup_ignored", role="standby")  # the leader runs cycles: signal it instead
            return
        self.trigger(full=False, trigger="sighup")

    def _check_schedule(self) -> None:
        """Raise DaemonError when the schedule cannot be set up, before anything starts: with no full cycle
        recorded (one due now), and with one just done (the next a whole full_interval ahead)."""
        now = time.time()
        for last_full in (None, now):
            try:
                self._scheduler(last_full, now)
            except Exception as exc:
                raise DaemonError(self._schedule_problem(exc, None)) from exc

    def _schedule_problem(self, error: BaseException, last_full: float | None) -> str:
        sync = self.settings.sync
        recorded = "" if last_full is None else f", the last full cycle recorded at {last_full!r}"
        return (
            f"cannot set up the schedule (sync.interval = {sync.interval_s:g} s, sync.full_interval = "
            f"{sync.full_interval_s:g} s{recorded}): {type(error).__name__}: {error}"
        )

    def _scheduler(self, last_full: float | None = None, now: float | None = None) -> AsyncIOScheduler:
        """The schedule, not started: `last_full` is when a full cycle last completed (None: never), `now`
        the time it starts from (default: now)."""
        now = time.time() if now is None else now
        sync = self.settings.sync
        scheduler = AsyncIOScheduler()
        # A daemon restarted more often than full_interval must still repair drift: the full cycle is due
        # full_interval after the last one (stored), and runs first at start when it is overdue.
        full_due = now if last_full is None else last_full + sync.full_interval_s
        full_first = full_due <= now
        # The next full cycle is computed only when it fires: compute it now, where a failure is clear.
        _at(max(full_due, now) + sync.full_interval_s)
        scheduler.add_job(
            self._scheduled,
            IntervalTrigger(seconds=sync.interval_s, jitter=sync.jitter_s or None),
            kwargs={"full": False},
            next_run_time=_at(now + sync.interval_s if full_first else now),
            id="incremental",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        scheduler.add_job(
            self._scheduled,
            IntervalTrigger(seconds=sync.full_interval_s, jitter=sync.jitter_s or None),
            kwargs={"full": True},
            next_run_time=_at(max(full_due, now)),
            id="full",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        scheduler.add_job(
            self._scheduled_prune,
            IntervalTrigger(seconds=PRUNE_EVERY_S),
            next_run_time=_at(now),  # at start, then daily
            id="history",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        notify = self.settings.notify
        if notify.enabled and notify.daily_summary:
            hour, minute = (int(part) for part in notify.daily_summary_at.split(":"))
            scheduler.add_job(
                self._daily_summary,
                CronTrigger(hour=hour, minute=minute, timezone=UTC),
                id="daily_summary",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=3600,  # a daemon busy or paused at that minute still sends it that hour
            )
        return scheduler

    async def _drain(self) -> None:
        """Let the cycle in flight finish within the grace period; cancel it after."""
        if self._queued is not None:
            self._queued.future.cancel()  # a follow-up that will not run: its waiters learn so now
            self._queued = None
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.settings.sync.shutdown_grace_s)
        except TimeoutError:
            log.warning("daemon.cancelling_cycle", grace_s=self.settings.sync.shutdown_grace_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            # The cycle's own failure was already logged and recorded by the engine; shutting down goes on.
            return


class AdminBindError(Exception):
    """The admin API cannot listen where admin.listen says."""


def bind_admin(host: str, port: int) -> socket.socket:
    """A listening socket for the admin API, or AdminBindError naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio disables Nagle on accepted connections only for such listeners.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise AdminBindError(
            f"the admin API cannot listen on {host}:{port} (admin.listen): {exc.strerror}"
        ) from exc
    sock.setblocking(False)
    return sock


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _sole_instance(store: Store, url: str) -> contextlib.AbstractContextManager[None]:
    """SQLite: the instance lock (a second daemon exits); PostgreSQL: none, replicas elect a leader."""
    if make_url(url).get_backend_name() == "postgresql":
        return contextlib.nullcontext()
    return instance_lock(store, url, "daemon")


__all__ = ["AdminBindError", "AlreadyRunning", "Daemon", "DaemonError", "instance_lock"]
