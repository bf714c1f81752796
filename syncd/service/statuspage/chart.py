"""The status page's chart: the last runs' changes by action and their failures, as inline SVG (no script,
no external asset). `chart_bars` is its geometry, `render_chart` the markup. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.core.times import utc_text
from syncd.service.statuspage.markup import _e
from syncd.service.statuspage.views import RunRow

CHART_RUNS = 30
"""Runs drawn in the chart (the newest ones)."""


CHART_ACTIONS = ("onboard", "update", "offboard", "relink")
"""Actions stacked in a run's bar, bottom first; failures go on top."""


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
            ("relink", "relinked"),
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
    # Relinks are rare: named only in the runs that have any.
    parts = [f"{a} {run.changes(a)}" for a in CHART_ACTIONS if a != "relink" or run.changes(a)]
    parts.append(f"failed {run.failures}")
    duration = run.duration_s
    took = "" if duration is None else f", {duration:.1f} s"
    return f"run {run.id} ({run.kind}, {run.trigger}) {utc_text(run.started_at)}: {run.outcome}{took}; " + (
        ", ".join(parts)
    )
