"""The parts of the status page: the header with the daemon's state and the Sync now form, the health
verdict, the managed agents' counts, the people needing attention, the offboards waiting out the grace
period, the latest relinks, the last cycles (chart and table) and the footer. Each returns an HTML
fragment whose data is escaped. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

from syncd.core.times import utc_text
from syncd.service.statuspage.chart import render_chart
from syncd.service.statuspage.markup import _e
from syncd.service.statuspage.views import (
    AttentionRow,
    DaemonState,
    HealthView,
    PendingOffboardRow,
    RelinkRow,
    RunRow,
    StatusData,
)

TABLE_RUNS = 10
"""Runs listed in the table under the chart."""

ATTENTION_ROWS = 200
"""People listed as needing attention; the rest are counted (`syncd status` lists everyone)."""


def _header(daemon: DaemonState, *, queued: bool) -> str:
    if daemon.running is not None:
        kind = "full" if daemon.running_full else "incremental"
        state = (
            f'<span class="badge busy" id="daemon-state">running a {kind} cycle ({_e(daemon.running)})</span>'
        )
    else:
        state = '<span class="badge idle" id="daemon-state">idle</span>'
    outcome = _e(daemon.last_outcome or "none since start")
    outcome_class = f' class="outcome-{_e(daemon.last_outcome)}"' if daemon.last_outcome else ""
    note = (
        '<p class="note" role="status">A cycle was queued; this page refreshes on its own.</p>'
        if queued
        else ""
    )
    return f"""<header class="top">
<div class="brand"><a href="/">syncd</a> {state}</div>
<dl class="facts">
<div><dt>last outcome</dt><dd id="last-outcome"{outcome_class}>{outcome}</dd></div>
<div><dt>started</dt><dd id="started-at">{utc_text(daemon.started_at)}</dd></div>
</dl>
<form method="post" action="/resync" class="sync">
<label class="check"><input type="checkbox" name="full" value="1"> full cycle</label>
<button type="submit" id="sync-now">Sync now</button>
</form>
</header>
{note}"""


def _health_section(verdict: HealthView) -> str:
    detail = f'<p id="health-detail">{_e(verdict.detail)}</p>' if verdict.detail else ""
    role = ' role="alert"' if verdict.state in {"failing", "guard"} else ""
    return f"""<section class="health {verdict.state}" id="health" data-state="{verdict.state}"{role}>
<h2 id="health-title">{_e(verdict.title)}</h2>
{detail}
</section>"""


def _agents_section(data: StatusData) -> str:
    members = _count_table("members", "status", "Members by status", data.members)
    sources = _count_table("sources", "source", "Agents' numbers by source", data.phone_sources)
    skipped = (
        _count_table("skipped", "reason", "Out of scope, by reason", data.daemon.skipped)
        if data.daemon.skipped
        else ""
    )
    return f"""<section class="card" id="agents">
<h2>Managed agents</h2>
<p class="big"><span id="managed-agents">{data.managed_agents}</span> active agents</p>
<div class="columns">
{members}
{sources}
{skipped}
</div>
</section>"""


def _count_table(name: str, key: str, caption: str, counts: Mapping[str, int]) -> str:
    if not counts:
        return f'<div><h3>{_e(caption)}</h3><p class="empty" id="{name}-empty">none</p></div>'
    rows = "".join(
        f'<tr><th scope="row">{_e(label)}</th>'
        f'<td class="num" data-{key}="{_e(label)}" data-count="{count}">{count}</td></tr>'
        for label, count in sorted(counts.items())
    )
    total = sum(counts.values())
    return f"""<div><table class="counts" id="{name}">
<caption>{_e(caption)}</caption>
<tbody>{rows}</tbody>
<tfoot><tr><th scope="row">total</th><td class="num" data-total="{total}">{total}</td></tr></tfoot>
</table></div>"""


def _attention_section(attention: Sequence[AttentionRow], *, now: float) -> str:
    if not attention:
        return """<section class="card" id="attention">
<h2>Needing attention</h2>
<p class="empty" id="attention-empty">Nobody: every write went through.</p>
</section>"""
    rows = "\n".join(_attention_row(person, now=now) for person in attention[:ATTENTION_ROWS])
    more = len(attention) - ATTENTION_ROWS
    rest = (
        f'<p class="note">and {more} more; <code>syncd status</code> lists everyone.</p>' if more > 0 else ""
    )
    return f"""<section class="card" id="attention">
<h2>Needing attention <span class="count" id="attention-count">{len(attention)}</span></h2>
<div class="scroll"><table class="list stack">
<thead><tr><th>status</th><th>user</th><th>detail</th><th class="num">attempts</th><th>next retry</th>
<th></th></tr></thead>
<tbody>
{rows}
</tbody>
</table></div>
{rest}
</section>"""


def _attention_row(person: AttentionRow, *, now: float) -> str:
    if person.next_attempt_at is None:
        retry = "next cycle"
    elif person.next_attempt_at <= now:
        retry = "next cycle (due)"
    else:
        retry = utc_text(person.next_attempt_at)
    link = _e("/explain/" + quote(person.object_id, safe=""))
    return (
        f'<tr data-object-id="{_e(person.object_id)}">'
        + _cell("status", f'<span class="badge {_e(person.status)}">{_e(person.status)}</span>')
        + _cell(
            "user",
            f'{_e(person.upn or "(no UPN)")}<br><span class="mono small">{_e(person.object_id)}</span>',
            "user",
        )
        + _cell("detail", _e(person.detail or ""), "detail")
        + _cell("attempts", str(person.attempts), "num")
        + _cell("next retry", _e(retry), "when")
        + _cell("", f'<a class="explain" href="{link}">explain</a>')
        + "</tr>"
    )


def _pending_offboards_section(pending: Sequence[PendingOffboardRow]) -> str:
    """People out of scope whose agent waits out `sync.offboard_grace`; nothing when there are none."""
    if not pending:
        return ""
    rows = "\n".join(
        f'<tr data-object-id="{_e(p.object_id)}">'
        + _cell(
            "user", f'{_e(p.upn or "(no UPN)")}<br><span class="mono small">{_e(p.object_id)}</span>', "user"
        )
        + _cell("out of scope since", utc_text(p.left_scope_at), "when")
        + _cell("offboard due at", utc_text(p.due_at), "when")
        + _cell("", f'<a class="explain" href="{_e("/explain/" + quote(p.object_id, safe=""))}">explain</a>')
        + "</tr>"
        for p in pending[:ATTENTION_ROWS]
    )
    return f"""<section class="card" id="offboard-pending">
<h2>Offboard pending <span class="count" id="offboard-pending-count">{len(pending)}</span></h2>
<p class="note">Out of scope, and kept for <code>sync.offboard_grace</code>: coming back before the due time
cancels the offboard; a user re-created with the same consistency GUID takes the agent over.</p>
<div class="scroll"><table class="list stack">
<thead><tr><th>user</th><th>out of scope since (UTC)</th><th>offboard due at (UTC)</th><th></th></tr></thead>
<tbody>
{rows}
</tbody>
</table></div>
</section>"""


def _relinks_section(relinks: Sequence[RelinkRow]) -> str:
    """The latest relinks (agents moved to users re-created in Entra); nothing when there are none."""
    if not relinks:
        return ""
    rows = "\n".join(
        f'<tr data-object-id="{_e(r.object_id)}" data-from-object-id="{_e(r.from_object_id or "")}">'
        + _cell("when", utc_text(r.at), "when")
        + _cell("user", _e(r.upn or "(no UPN)"), "user")
        + _cell("from", f'<span class="mono small">{_e(r.from_object_id or "-")}</span>')
        + _cell("to", f'<span class="mono small">{_e(r.object_id)}</span>')
        + _cell("outcome", f'<span class="badge outcome-{_e(r.outcome)}">{_e(r.outcome)}</span>')
        + _cell("run", str(r.run_id), "num")
        + "</tr>"
        for r in relinks
    )
    return f"""<section class="card" id="relinks">
<h2>Latest relinks</h2>
<p class="note">Agents moved, with their data, to users re-created in Entra with the same consistency
GUID.</p>
<div class="scroll"><table class="list stack">
<thead><tr><th>when (UTC)</th><th>user</th><th>from object ID</th><th>to object ID</th><th>outcome</th>
<th class="num">run</th></tr></thead>
<tbody>
{rows}
</tbody>
</table></div>
</section>"""


def _cell(label: str, content: str, css_class: str = "") -> str:
    """A table cell whose label shows beside its value when a narrow screen stacks the table's rows.

    `content` is markup: the caller has escaped its data.
    """
    attributes = (f' data-label="{_e(label)}"' if label else "") + (
        f' class="{css_class}"' if css_class else ""
    )
    return f"<td{attributes}><div>{content}</div></td>"


def _cycles_section(runs: Sequence[RunRow]) -> str:
    chart = render_chart(runs)
    if not runs:
        table = ""
    else:
        rows = "\n".join(_run_row(r) for r in runs[:TABLE_RUNS])
        table = f"""<div class="scroll"><table class="list stack" id="runs">
<thead><tr><th class="num">run</th><th>started (UTC)</th><th>kind</th><th>trigger</th><th>outcome</th>
<th class="num">secs</th><th>changes</th></tr></thead>
<tbody>
{rows}
</tbody>
</table></div>"""
    return f"""<section class="card" id="cycles">
<h2>Last cycles</h2>
{chart}
{table}
</section>"""


def _run_row(run: RunRow) -> str:
    duration = run.duration_s
    secs = "-" if duration is None else f"{duration:.1f}"
    kind = run.kind + (" (dry run)" if run.dry_run else "")
    changes = ", ".join(
        f"{k} {v}" for k, v in sorted(run.counts.items()) if v and not k.startswith("planned_")
    )
    error = f'<br><span class="error">{_e(run.error)}</span>' if run.error else ""
    return (
        f'<tr data-run="{run.id}">'
        + _cell("run", str(run.id), "num")
        + _cell("started", utc_text(run.started_at), "when")
        + _cell("kind", _e(kind))
        + _cell("trigger", _e(run.trigger))
        + _cell("outcome", f'<span class="badge outcome-{_e(run.outcome)}">{_e(run.outcome)}</span>')
        + _cell("secs", secs, "num")
        + _cell("changes", _e(changes or "no change") + error, "detail")
        + "</tr>"
    )


def _footer(now: float) -> str:
    return f"""<footer>
<span>Rendered {utc_text(now)} UTC</span>
<a href="/status">/status (JSON)</a>
<a href="/metrics">/metrics</a>
<form method="post" action="/logout" class="inline">
<button type="submit" class="link" id="sign-out">Sign out</button></form>
</footer>"""
