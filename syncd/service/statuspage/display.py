"""The status page's parts as its template (`status.html`) reads them: plain data made from `StatusData`,
every text already worded (times in UTC, durations, the next retry, the explain link), so the template only
loops and prints, and escapes as it prints. Pure.

Tables are lists: the counts tables (`StatusPageView.counts`), the people needing attention, the runs; a
new kind of count or a new action shows up as rows, with no change to the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from syncd.core.setting_changes import describe_changes
from syncd.core.times import utc_text
from syncd.service.statuspage.chart import ChartView, chart_view
from syncd.service.statuspage.views import AttentionRow, DaemonState, HealthView, RunRow, StatusData, health

TABLE_RUNS = 10
"""Runs listed in the table under the chart."""

ATTENTION_ROWS = 200
"""People listed as needing attention; the rest are counted (`syncd status` lists everyone)."""


@dataclass(frozen=True, slots=True)
class HeaderView:
    """The bar at the top: what the daemon is doing, its last outcome, since when it runs."""

    running: str | None
    """"running a full cycle (manual)", or None when idle."""
    last_outcome: str | None
    started: str
    queued: bool
    """A cycle was just queued from the page (its "Sync now" form)."""


@dataclass(frozen=True, slots=True)
class CountTable:
    """One table of counts: `name` is its id, `key` the name of each count cell's data attribute."""

    name: str
    key: str
    caption: str
    rows: tuple[tuple[str, int], ...]
    """(label, count), sorted by label."""

    @property
    def total(self) -> int:
        return sum(count for _, count in self.rows)


@dataclass(frozen=True, slots=True)
class AttentionItem:
    """One person needing attention, as a row of the table."""

    object_id: str
    upn: str
    """The UPN, or "(no UPN)"."""
    status: str
    detail: str
    attempts: int
    retry: str
    """"next cycle", "next cycle (due)" or the time of the next retry (UTC)."""
    explain_href: str
    """`/explain/<object ID>`, the ID quoted as one path segment."""


@dataclass(frozen=True, slots=True)
class RunItem:
    """One run, as a row of the last cycles' table."""

    id: int
    started: str
    kind: str
    """The kind, "(dry run)" added to a dry run's."""
    trigger: str
    outcome: str
    secs: str
    """The duration to a tenth of a second, "-" while running."""
    changes: str
    """"onboard_ok 4, skipped 1" (the run's non-zero counts but the planned ones), or "no change"."""
    error: str | None
    settings_changed: str | None = None
    """The settings shaping desired state this run found changed since the last cycle, in words."""


@dataclass(frozen=True, slots=True)
class PendingItem:
    """A person whose offboard waits out the grace period, as a row."""

    object_id: str
    upn: str
    left_scope: str
    due: str
    explain_href: str


@dataclass(frozen=True, slots=True)
class RelinkItem:
    """A relink (an agent moved to a re-created user), as a row."""

    at: str
    upn: str
    from_object_id: str
    object_id: str
    outcome: str
    run_id: int


@dataclass(frozen=True, slots=True)
class StatusPageView:
    """Everything `status.html` shows."""

    header: HeaderView
    health: HealthView
    managed_agents: int
    counts: tuple[CountTable, ...]
    attention: tuple[AttentionItem, ...]
    """The first `ATTENTION_ROWS` people."""
    attention_total: int
    chart: ChartView | None
    runs: tuple[RunItem, ...]
    """The newest `TABLE_RUNS` runs."""
    rendered: str
    """When the page was made (UTC)."""
    pending: tuple[PendingItem, ...] = ()
    """People out of scope whose agent waits out `sync.offboard_grace` (the first `ATTENTION_ROWS`)."""
    pending_total: int = 0
    relinks: tuple[RelinkItem, ...] = ()
    """The latest relinks, newest first."""

    @property
    def attention_more(self) -> int:
        """People needing attention beyond those listed."""
        return self.attention_total - len(self.attention)


def status_view(data: StatusData, *, now: float, queued: bool = False) -> StatusPageView:
    """The status page's parts for `data` at `now` (epoch seconds)."""
    return StatusPageView(
        header=header_view(data.daemon, queued=queued),
        health=health(data),
        managed_agents=data.managed_agents,
        counts=count_tables(data),
        attention=tuple(attention_item(person, now=now) for person in data.attention[:ATTENTION_ROWS]),
        attention_total=len(data.attention),
        chart=chart_view(data.runs),
        runs=tuple(run_item(run) for run in data.runs[:TABLE_RUNS]),
        rendered=utc_text(now),
        pending=tuple(
            PendingItem(
                p.object_id,
                p.upn or "(no UPN)",
                utc_text(p.left_scope_at),
                utc_text(p.due_at),
                "/explain/" + quote(p.object_id, safe=""),
            )
            for p in data.offboard_pending[:ATTENTION_ROWS]
        ),
        pending_total=len(data.offboard_pending),
        relinks=tuple(
            RelinkItem(
                utc_text(r.at), r.upn or "(no UPN)", r.from_object_id or "-", r.object_id, r.outcome, r.run_id
            )
            for r in data.relinks
        ),
    )


def header_view(daemon: DaemonState, *, queued: bool) -> HeaderView:
    running = None
    if daemon.running is not None:
        kind = "full" if daemon.running_full else "incremental"
        running = f"running a {kind} cycle ({daemon.running})"
    return HeaderView(running, daemon.last_outcome, utc_text(daemon.started_at), queued)


def count_tables(data: StatusData) -> tuple[CountTable, ...]:
    """Members by status and agents' numbers by source, then people out of scope by reason when any."""
    tables = [
        _count_table("members", "status", "Members by status", data.members),
        _count_table("sources", "source", "Agents' numbers by source", data.phone_sources),
    ]
    if data.daemon.skipped:
        tables.append(_count_table("skipped", "reason", "Out of scope, by reason", data.daemon.skipped))
    return tuple(tables)


def attention_item(person: AttentionRow, *, now: float) -> AttentionItem:
    if person.next_attempt_at is None:
        retry = "next cycle"
    elif person.next_attempt_at <= now:
        retry = "next cycle (due)"
    else:
        retry = utc_text(person.next_attempt_at)
    return AttentionItem(
        object_id=person.object_id,
        upn=person.upn or "(no UPN)",
        status=person.status,
        detail=person.detail or "",
        attempts=person.attempts,
        retry=retry,
        explain_href="/explain/" + quote(person.object_id, safe=""),
    )


def run_item(run: RunRow) -> RunItem:
    duration = run.duration_s
    changes = ", ".join(
        f"{k} {v}" for k, v in sorted(run.counts.items()) if v and not k.startswith("planned_")
    )
    return RunItem(
        id=run.id,
        started=utc_text(run.started_at),
        kind=run.kind + (" (dry run)" if run.dry_run else ""),
        trigger=run.trigger,
        outcome=run.outcome,
        secs="-" if duration is None else f"{duration:.1f}",
        changes=changes or "no change",
        error=run.error,
        settings_changed=describe_changes(run.settings_changed) if run.settings_changed else None,
    )


def _count_table(name: str, key: str, caption: str, counts: Mapping[str, int]) -> CountTable:
    return CountTable(name, key, caption, tuple(sorted(counts.items())))
