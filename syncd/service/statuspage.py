"""The admin's status page (`GET /` on the admin listener) and its companions, rendered to HTML strings.

Pure: every function takes plain data (the `status_document` of `syncd status --json`, the daemon's state as
`DaemonState`, epoch seconds) and returns a complete HTML document or fragment; nothing here reads the
database, the clock or the network, so the same inputs always give the same page. `syncd.admin` gathers the
data and serves the pages.

The pages need no build step and no external asset: CSS is inline, the chart is inline SVG, so they work
offline and behind any proxy. Everything that comes from data (UPNs, error messages, object IDs, triggers) is
escaped with `html.escape` before it reaches the markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from syncd.core.times import utc_text

CHART_RUNS = 30
"""Runs drawn in the chart (the newest ones)."""

TABLE_RUNS = 10
"""Runs listed in the table under the chart."""

ATTENTION_ROWS = 200
"""People listed as needing attention; the rest are counted (`syncd status` lists everyone)."""

REFRESH_S = 60
"""The status page reloads itself this often (seconds)."""

CHART_ACTIONS = ("onboard", "update", "offboard")
"""Actions stacked in a run's bar, bottom first; failures go on top."""

_DONE_OUTCOMES = ("ok", "adopted", "already_gone")
"""Operation outcomes that count as a change made (see `CycleResult.counts`: `<action>_<outcome>`)."""

Health = Literal["healthy", "guard", "failing", "unknown"]


@dataclass(frozen=True, slots=True)
class DaemonState:
    """What the daemon knows beyond the database."""

    started_at: float
    """Epoch seconds."""
    running: str | None = None
    """The trigger of the cycle in flight ("schedule", "manual", ...), or None when idle."""
    running_full: bool = False
    last_outcome: str | None = None
    """"ok", "failed", "guard" or "error" for the last cycle since start; None before the first."""
    systemic_failure: str | None = None
    """Why the last cycle failed as a whole (`Daemon.systemic_failure`), or None."""
    last_run_id: int | None = None
    """The run of the daemon's last cycle."""
    guard: str | None = None
    """The guard that stopped the daemon's last cycle ("max_offboard", "empty_group"), or None."""
    guard_message: str | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)
    """People out of scope (as recorded), by skip reason."""


@dataclass(frozen=True, slots=True)
class RunRow:
    """One recorded cycle, as `status_document` lists it."""

    id: int
    trigger: str
    kind: str
    dry_run: bool
    started_at: float
    ended_at: float | None
    outcome: str
    counts: Mapping[str, int]
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else max(0.0, self.ended_at - self.started_at)

    def changes(self, action: str) -> int:
        """Writes of `action` that took effect (ok, adopted or already gone)."""
        return sum(int(self.counts.get(f"{action}_{outcome}", 0)) for outcome in _DONE_OUTCOMES)

    @property
    def failures(self) -> int:
        return int(self.counts.get("failed", 0))


@dataclass(frozen=True, slots=True)
class AttentionRow:
    """A person whose last write failed or is not settled."""

    object_id: str
    upn: str | None
    status: str
    detail: str | None
    attempts: int
    next_attempt_at: float | None


@dataclass(frozen=True, slots=True)
class QuarantineView:
    """The quarantine as `status_document` reports it ("quarantine"; see `syncd.quarantine`)."""

    reason: str
    since: float
    """Epoch seconds."""
    failed_cycles: int
    next_at: float
    """Epoch seconds: the daemon's next scheduled try."""


@dataclass(frozen=True, slots=True)
class StatusData:
    """Everything the status page shows."""

    daemon: DaemonState
    runs: Sequence[RunRow] = ()
    """Newest first, as the store returns them."""
    members: Mapping[str, int] = field(default_factory=dict)
    """Members by status."""
    phone_sources: Mapping[str, int] = field(default_factory=dict)
    """Active agents by the source of their number."""
    attention: Sequence[AttentionRow] = ()
    quarantine: QuarantineView | None = None
    """Set while cycles fail as a whole and scheduled ones back off."""

    @classmethod
    def from_document(cls, document: Mapping[str, Any], daemon: DaemonState) -> StatusData:
        """From `syncd.engine.status_document`'s shape (also `GET /status`)."""
        runs = [
            RunRow(
                id=int(r["id"]),
                trigger=str(r["trigger"]),
                kind=str(r["kind"]),
                dry_run=bool(r.get("dry_run", False)),
                started_at=float(r["started_at"]),
                ended_at=None if r.get("ended_at") is None else float(r["ended_at"]),
                outcome=str(r["outcome"]),
                counts={str(k): int(v) for k, v in (r.get("counts") or {}).items()},
                error=None if r.get("error") is None else str(r["error"]),
            )
            for r in document.get("runs", ())
        ]
        attention = [
            AttentionRow(
                object_id=str(m["object_id"]),
                upn=None if m.get("upn") is None else str(m["upn"]),
                status=str(m["status"]),
                detail=None if m.get("detail") is None else str(m["detail"]),
                attempts=int(m.get("attempts") or 0),
                next_attempt_at=None if m.get("next_attempt_at") is None else float(m["next_attempt_at"]),
            )
            for m in document.get("attention", ())
        ]
        q = document.get("quarantine")
        quarantine = (
            QuarantineView(
                reason=str(q["reason"]),
                since=float(q["since"]),
                failed_cycles=int(q.get("failed_cycles") or 1),
                next_at=float(q["next_at"]),
            )
            if isinstance(q, Mapping)
            else None
        )
        return cls(
            daemon=daemon,
            runs=runs,
            members={str(k): int(v) for k, v in (document.get("members") or {}).items()},
            phone_sources={str(k): int(v) for k, v in (document.get("phone_sources") or {}).items()},
            attention=attention,
            quarantine=quarantine,
        )

    @property
    def managed_agents(self) -> int:
        """Active agents we manage (every one has a recorded number source, "unknown" included)."""
        return sum(self.phone_sources.values())


@dataclass(frozen=True, slots=True)
class HealthView:
    """The verdict at the top of the page."""

    state: Health
    title: str
    detail: str | None = None


def health(data: StatusData) -> HealthView:
    """Failing, stopped by a guard, healthy, or unknown (no cycle yet), by precedence in that order.

    The quarantine wins (since when, why, the next scheduled try), then the daemon's systemic failure (both
    are what /readyz reports); otherwise the newest finished real
    cycle decides (dry runs and cycles still running do not). A guard stop's message is known only for the
    daemon's own last cycle: the runs table records which runs a guard stopped, not why.
    """
    daemon = data.daemon
    q = data.quarantine
    if q is not None:
        cycles = f"{q.failed_cycles} failed cycle{'' if q.failed_cycles == 1 else 's'}"
        return HealthView(
            "failing",
            f"Quarantined since {utc_text(q.since)} UTC",
            f"{q.reason}; next try at {utc_text(q.next_at)} UTC ({cycles}; Sync now tries at once)",
        )
    if daemon.systemic_failure is not None:
        return HealthView("failing", "The last cycle failed as a whole", daemon.systemic_failure)
    latest = next((r for r in data.runs if not r.dry_run and r.outcome != "running"), None)
    if latest is None:
        return HealthView("unknown", "No cycle has finished yet")
    if latest.outcome == "guard":
        if daemon.guard is not None and daemon.last_run_id == latest.id:
            return HealthView(
                "guard", f"Stopped by a safety guard: {daemon.guard}", daemon.guard_message or None
            )
        return HealthView(
            "guard",
            "Stopped by a safety guard",
            f"run {latest.id} was stopped before changing anything; the daemon's log says why "
            "(event sync.stopped_by_guard)",
        )
    if latest.outcome == "error":
        return HealthView("failing", "The last cycle failed as a whole", latest.error or f"run {latest.id}")
    waiting = len(data.attention)
    if waiting:
        noun = "person needs" if waiting == 1 else "people need"
        return HealthView("healthy", "Healthy", f"{waiting} {noun} attention (below); the others are in step")
    return HealthView("healthy", "Healthy", "every managed agent is in step")


# -- pages ---------------------------------------------------------------------------------------------


def render_status_page(data: StatusData, *, now: float, queued: bool = False) -> str:
    """The whole status page."""
    verdict = health(data)
    body = "\n".join(
        [
            _header(data.daemon, queued=queued),
            "<main>",
            _health_section(verdict),
            _agents_section(data),
            _attention_section(data.attention, now=now),
            _cycles_section(data.runs),
            "</main>",
            _footer(now),
        ]
    )
    return _document("syncd status", body, refresh_s=REFRESH_S)


def render_login_page(*, error: str | None = None) -> str:
    """The form that takes the admin token (POST /login)."""
    message = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    body = f"""<main class="narrow">
<h1>syncd</h1>
<section class="card">
<h2>Sign in</h2>
<p>Enter the admin token (<code>admin.token</code> in the daemon's configuration).</p>
{message}
<form method="post" action="/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</section>
</main>"""
    return _document("syncd: sign in", body)


def render_message_page(
    title: str, message: str, *, back: bool = False, links: Sequence[tuple[str, str]] = ()
) -> str:
    """A page that only says something (disabled, not found, failed), offering `links` (href, text)."""
    link = '<p><a href="/">Back to the status page</a></p>' if back else ""
    items = "".join(f'<li><a href="{_e(href)}">{_e(text)}</a></li>' for href, text in links)
    offered = f'<ul class="links">{items}</ul>' if items else ""
    body = f"""<main class="narrow">
<h1>syncd</h1>
<section class="card">
<h2>{_e(title)}</h2>
<p>{_e(message)}</p>
{offered}
{link}
</section>
</main>"""
    return _document(f"syncd: {title}", body)


def render_disabled_page() -> str:
    """What every page says while no admin token is configured."""
    return render_message_page(
        "The status page is disabled",
        "Set admin.token (or SYNCD_ADMIN__TOKEN) in the daemon's configuration and restart it: "
        "until then the status page, /status and /resync refuse every request.",
    )


def render_explain_page(who: str, text: str, *, now: float) -> str:
    """One person's explanation (`syncd.explain.render_text`) in the page layout."""
    body = f"""<header class="top">
<div class="brand"><a href="/">syncd</a></div>
</header>
<main>
<section class="card">
<h2>Why: <span class="mono">{_e(who)}</span></h2>
<pre class="explain">{_e(text)}</pre>
<p><a href="/">Back to the status page</a></p>
</section>
</main>
{_footer(now)}"""
    return _document(f"syncd: explain {who}", body)


# -- the chart -----------------------------------------------------------------------------------------

_CHART_W = 600
_CHART_H = 160
_CHART_PAD_TOP = 14
_CHART_PAD_BOTTOM = 6
_CHART_PAD_LEFT = 34
_MARK_H = 3
"""Height of the mark drawn for a run with no change (a thin line in the outcome's colour)."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One segment of the chart: a run's changes of one action, or its failures."""

    run_id: int
    part: str
    """An action of `CHART_ACTIONS`, "failed", or "none" for the mark of a run that changed nothing."""
    count: int
    x: float
    y: float
    width: float
    height: float


def chart_bars(runs: Sequence[RunRow]) -> list[Bar]:
    """The chart's geometry: runs oldest on the left, each a stack of its changes by action and failures.

    Heights are linear in the count, scaled to the run with most changes; a run that changed nothing
    gets a thin mark so that it still shows.
    """
    shown = _chart_runs(runs)
    if not shown:
        return []
    tallest = max(_stack_total(r) for r in shown) or 1
    plot_h = _CHART_H - _CHART_PAD_TOP - _CHART_PAD_BOTTOM
    plot_w = _CHART_W - _CHART_PAD_LEFT
    slot = plot_w / max(len(shown), 10)
    width = max(slot * 0.7, 1.0)
    base = _CHART_H - _CHART_PAD_BOTTOM
    bars: list[Bar] = []
    for index, run in enumerate(shown):
        x = round(_CHART_PAD_LEFT + index * slot + (slot - width) / 2, 2)
        y = float(base)
        parts = [(a, run.changes(a)) for a in CHART_ACTIONS] + [("failed", run.failures)]
        if not any(n for _, n in parts):
            bars.append(Bar(run.id, "none", 0, x, base - _MARK_H, round(width, 2), _MARK_H))
            continue
        for part, count in parts:
            if not count:
                continue
            height = round(plot_h * count / tallest, 2)
            y = round(y - height, 2)
            bars.append(Bar(run.id, part, count, x, y, round(width, 2), height))
    return bars


def render_chart(runs: Sequence[RunRow]) -> str:
    """Inline SVG of the last `CHART_RUNS` runs, with a title, a description and a tooltip per run."""
    shown = _chart_runs(runs)
    if not shown:
        return '<p class="empty">No cycles recorded yet.</p>'
    tallest = max(_stack_total(r) for r in shown)
    by_run: dict[int, list[Bar]] = {}
    for bar in chart_bars(runs):
        by_run.setdefault(bar.run_id, []).append(bar)
    groups = []
    for run in shown:
        rects = "".join(
            f'<rect class="bar {_e(b.part)}{_outcome_class(run, b)}" data-run="{b.run_id}" '
            f'data-part="{_e(b.part)}" data-count="{b.count}" x="{b.x}" y="{b.y}" '
            f'width="{b.width}" height="{b.height}"/>'
            for b in by_run.get(run.id, [])
        )
        groups.append(f"<g><title>{_e(_run_summary(run))}</title>{rects}</g>")
    first, last = shown[0], shown[-1]
    description = (
        f"{len(shown)} cycles from run {first.id} ({utc_text(first.started_at)}) to run {last.id} "
        f"({utc_text(last.started_at)}); the most changes in one cycle: {tallest}. "
        "The table below lists the latest cycles as text."
    )
    base = _CHART_H - _CHART_PAD_BOTTOM
    axis = (
        f'<line class="axis" x1="{_CHART_PAD_LEFT}" y1="{base}" x2="{_CHART_W}" y2="{base}"/>'
        f'<text class="axis-label" x="{_CHART_PAD_LEFT - 4}" y="{_CHART_PAD_TOP + 4}" '
        f'text-anchor="end">{tallest}</text>'
        f'<text class="axis-label" x="{_CHART_PAD_LEFT - 4}" y="{base}" text-anchor="end">0</text>'
    )
    legend = "".join(
        f'<span class="key"><span class="swatch {part}"></span>{label}</span>'
        for part, label in (
            ("onboard", "onboarded"),
            ("update", "updated"),
            ("offboard", "offboarded"),
            ("failed", "failed"),
            ("none", "no change"),
        )
    )
    return f"""<figure class="chart">
<svg id="runs-chart" viewBox="0 0 {_CHART_W} {_CHART_H}" role="img"
 aria-labelledby="runs-chart-title runs-chart-desc">
<title id="runs-chart-title">Changes per cycle, by action, and failures</title>
<desc id="runs-chart-desc">{_e(description)}</desc>
{axis}
{"".join(groups)}
</svg>
<figcaption>{legend}</figcaption>
</figure>"""


def _chart_runs(runs: Sequence[RunRow]) -> list[RunRow]:
    """The newest `CHART_RUNS` runs, oldest first (the store gives newest first)."""
    return list(reversed(list(runs)[:CHART_RUNS]))


def _stack_total(run: RunRow) -> int:
    return sum(run.changes(a) for a in CHART_ACTIONS) + run.failures


def _outcome_class(run: RunRow, bar: Bar) -> str:
    """A run with no change is marked in its outcome's colour (a guard stop or an error stands out)."""
    if bar.part != "none":
        return ""
    return f" outcome-{_e(run.outcome)}"


def _run_summary(run: RunRow) -> str:
    parts = [f"{a} {run.changes(a)}" for a in CHART_ACTIONS] + [f"failed {run.failures}"]
    duration = run.duration_s
    took = "" if duration is None else f", {duration:.1f} s"
    return f"run {run.id} ({run.kind}, {run.trigger}) {utc_text(run.started_at)}: {run.outcome}{took}; " + (
        ", ".join(parts)
    )


# -- sections ------------------------------------------------------------------------------------------


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


# -- helpers -------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Text from data, safe in element content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def _document(title: str, body: str, *, refresh_s: int | None = None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}; url=/">\n' if refresh_s else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
{refresh}<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
{body}
</body>
</html>
"""


_CSS = """
:root{--bg:#f6f7f9;--fg:#1d232b;--muted:#5d6875;--card:#fff;--line:#dde2e8;--ok:#1f7a3f;--okbg:#e6f4ea;
--warn:#8a5a00;--warnbg:#fff4d6;--bad:#a8201a;--badbg:#fde8e7;--on:#2f6fb5;--up:#7b5cc4;--off:#6b7785;
--accent:#2f6fb5}
@media (prefers-color-scheme:dark){:root{--bg:#12161b;--fg:#e4e8ed;--muted:#9aa5b1;--card:#1b2128;
--line:#2c343d;--okbg:#15301f;--ok:#7fd69b;--warnbg:#3a2e10;--warn:#f2c760;--badbg:#3d1a18;--bad:#ff8f87;
--accent:#7fb2ec}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif}
a{color:var(--accent)}
main{max-width:1100px;margin:0 auto;padding:12px}
main.narrow{max-width:420px;padding-top:10vh}
h1{font-size:1.6rem;margin:0 0 12px}
h2{font-size:1.15rem;margin:0 0 10px}
h3{font-size:.95rem;margin:0 0 6px;color:var(--muted)}
.top{display:flex;flex-wrap:wrap;align-items:center;gap:8px 20px;padding:10px 16px;background:var(--card);
border-bottom:1px solid var(--line)}
.brand{display:flex;align-items:center;gap:10px;font-weight:700;font-size:1.25rem}
.brand a{color:var(--fg);text-decoration:none}
.facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:0;flex:1}
.facts div{display:flex;gap:6px;align-items:baseline}
.facts dt{color:var(--muted);font-size:.85rem}
.facts dd{margin:0;font-weight:600}
form.sync{display:flex;align-items:center;gap:10px}
button{font:inherit;padding:7px 16px;border-radius:6px;border:1px solid var(--accent);
background:var(--accent);color:#fff;cursor:pointer}
button.link{background:none;border:none;color:var(--accent);padding:0;text-decoration:underline}
form.inline{display:inline}
.check{font-size:.9rem;color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:12px 0}
.health{border-radius:10px;padding:14px 16px;margin:12px 0;border:2px solid}
.health h2{margin:0;font-size:1.3rem}
.health p{margin:6px 0 0;overflow-wrap:anywhere}
.health.healthy{background:var(--okbg);border-color:var(--ok);color:var(--ok)}
.health.guard{background:var(--warnbg);border-color:var(--warn);color:var(--warn)}
.health.failing{background:var(--badbg);border-color:var(--bad);color:var(--bad)}
.health.unknown{background:var(--card);border-color:var(--line)}
.big{font-size:1.1rem;margin:0 0 10px}
.big span{font-size:2rem;font-weight:700}
.columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px 24px}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:600;color:var(--muted);font-size:.95rem;padding-bottom:4px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-size:.85rem;color:var(--muted);font-weight:600}
tfoot th,tfoot td{font-weight:700;border-bottom:none}
.num{text-align:right;font-variant-numeric:tabular-nums}
.when{white-space:nowrap}
.scroll{overflow-x:auto}
.detail{overflow-wrap:anywhere;min-width:12em}
.user{overflow-wrap:anywhere;min-width:10em}
.mono,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.small{font-size:.8rem;color:var(--muted)}
.count{display:inline-block;min-width:1.6em;padding:0 6px;border-radius:9px;background:var(--badbg);
color:var(--bad);text-align:center;font-size:.9rem}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:.8rem;font-weight:600;
background:var(--line);color:var(--fg)}
.badge.idle{background:var(--okbg);color:var(--ok)}
.badge.busy{background:var(--warnbg);color:var(--warn)}
.badge.failed,.badge.outcome-failed,.badge.outcome-error{background:var(--badbg);color:var(--bad)}
.badge.pending,.badge.outcome-guard,.badge.outcome-interrupted{background:var(--warnbg);color:var(--warn)}
.badge.outcome-ok{background:var(--okbg);color:var(--ok)}
.empty{color:var(--muted);font-style:italic}
.note{max-width:1100px;margin:8px auto 0;padding:8px 16px;color:var(--muted)}
.error{color:var(--bad)}
.chart{margin:0 0 10px}
.chart svg{width:100%;height:auto;max-height:230px;display:block}
.chart figcaption{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85rem;color:var(--muted)}
.key{display:inline-flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px}
.bar.onboard,.swatch.onboard{fill:var(--on);background:var(--on)}
.bar.update,.swatch.update{fill:var(--up);background:var(--up)}
.bar.offboard,.swatch.offboard{fill:var(--off);background:var(--off)}
.bar.failed,.swatch.failed{fill:var(--bad);background:var(--bad)}
.bar.none,.swatch.none{fill:var(--ok);background:var(--ok)}
.bar.outcome-guard{fill:var(--warn)}
.bar.outcome-error,.bar.outcome-failed{fill:var(--bad)}
.bar.outcome-interrupted{fill:var(--muted)}
.axis{stroke:var(--line)}
.axis-label{font-size:10px;fill:var(--muted)}
label{display:block;margin:10px 0 4px;font-weight:600}
label.check{display:inline;margin:0;font-weight:400}
input[type=password]{width:100%;font:inherit;padding:8px;border:1px solid var(--line);border-radius:6px;
background:var(--bg);color:var(--fg)}
form button[type=submit]{margin-top:0}
.narrow button{margin-top:12px;width:100%}
pre.explain{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--bg);border:1px solid var(--line);
border-radius:6px;padding:12px;font-size:.85rem}
footer{max-width:1100px;margin:0 auto;padding:8px 12px 24px;display:flex;flex-wrap:wrap;gap:6px 18px;
color:var(--muted);font-size:.85rem}
@media (max-width:600px){.top{padding:8px 10px}main{padding:8px}.card{padding:10px}
th,td{padding:4px 5px}.facts{flex-basis:100%}
table.stack thead{display:none}
table.stack tr{display:block;padding:6px 0;border-bottom:1px solid var(--line)}
table.stack td{display:grid;grid-template-columns:6.5em minmax(0,1fr);gap:8px;border:none;padding:2px 0;
text-align:left;min-width:0}
table.stack td::before{content:attr(data-label);color:var(--muted);font-size:.85rem}}
"""
