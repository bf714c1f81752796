"""The status page's chart: the last runs' changes by action and their failures, drawn as inline SVG (no
script, no external asset) by the template `chart.html`. `chart_bars` is its geometry, `chart_view` all the
template reads. Pure.

What the chart stacks is data: `CHART_PARTS` names each part (an action, then "failed" and "none"), its
legend and its colour; the template loops over it for the legend and the style sheet writes one rule per
part. A new action is one more `ChartPart` row (`tests/unit/test_statuspage.py` checks that every action of
`syncd.core.model.Action` has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.core.times import utc_text
from syncd.service.statuspage.views import RunRow

CHART_RUNS = 30
"""Runs drawn in the chart (the newest ones)."""


@dataclass(frozen=True, slots=True)
class ChartPart:
    """One kind of segment in the chart: its name (the CSS class and `data-part`), legend and colour."""

    name: str
    label: str
    """The legend's word for it."""
    colour: str
    """A CSS colour (a custom property of the style sheet, or a literal)."""


ACTION_PARTS = (
    ChartPart("onboard", "onboarded", "var(--on)"),
    ChartPart("update", "updated", "var(--up)"),
    ChartPart("offboard", "offboarded", "var(--off)"),
    ChartPart("relink", "relinked", "var(--re)"),
)
"""The actions stacked in a run's bar, bottom first: changes that took effect (`RunRow.changes`)."""

CHART_ACTIONS = tuple(part.name for part in ACTION_PARTS)
"""The names of `ACTION_PARTS`."""

CHART_PARTS = (
    *ACTION_PARTS,
    ChartPart("failed", "failed", "var(--bad)"),
    ChartPart("none", "no change", "var(--ok)"),
)
"""Every part the chart draws, in the legend's order: the actions, the failures (on top of a run's stack)
and the mark of a run that changed nothing (drawn in its outcome's colour when that is not ok)."""


CHART_W = 600
CHART_H = 160
CHART_PAD_TOP = 14
CHART_PAD_BOTTOM = 6
CHART_PAD_LEFT = 34
_MARK_H = 3
"""Height of the mark drawn for a run with no change (a thin line in the outcome's colour)."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One segment of the chart: a run's changes of one action, or its failures."""

    run_id: int
    part: str
    """The name of a `CHART_PARTS` entry: an action, "failed", or "none" for the mark of a run that changed
    nothing."""
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class ChartRun:
    """One run's bar: its segments and the tooltip that sums it up."""

    id: int
    outcome: str
    summary: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class ChartView:
    """What `chart.html` draws: the runs oldest first, the text alternative and the axis."""

    runs: tuple[ChartRun, ...]
    description: str
    tallest: int
    """The most changes (and failures) in one run: the top of the axis."""
    parts: tuple[ChartPart, ...] = CHART_PARTS
    width: int = CHART_W
    height: int = CHART_H
    left: int = CHART_PAD_LEFT
    top: int = CHART_PAD_TOP
    base: int = CHART_H - CHART_PAD_BOTTOM
    """The y of the axis line (bars stand on it)."""


def chart_bars(runs: Sequence[RunRow]) -> list[Bar]:
    """The chart's geometry: runs oldest on the left, each a stack of its changes by action and failures.

    Heights are linear in the count, scaled to the run with most changes; a run that changed nothing
    gets a thin mark so that it still shows.
    """
    shown = _chart_runs(runs)
    if not shown:
        return []
    tallest = max(_stack_total(r) for r in shown) or 1
    plot_h = CHART_H - CHART_PAD_TOP - CHART_PAD_BOTTOM
    plot_w = CHART_W - CHART_PAD_LEFT
    slot = plot_w / max(len(shown), 10)
    width = max(slot * 0.7, 1.0)
    base = CHART_H - CHART_PAD_BOTTOM
    bars: list[Bar] = []
    for index, run in enumerate(shown):
        x = round(CHART_PAD_LEFT + index * slot + (slot - width) / 2, 2)
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


def chart_view(runs: Sequence[RunRow]) -> ChartView | None:
    """The last `CHART_RUNS` runs as the template draws them; None when no run is recorded."""
    shown = _chart_runs(runs)
    if not shown:
        return None
    by_run: dict[int, list[Bar]] = {}
    for bar in chart_bars(runs):
        by_run.setdefault(bar.run_id, []).append(bar)
    tallest = max(_stack_total(r) for r in shown)
    first, last = shown[0], shown[-1]
    description = (
        f"{len(shown)} cycles from run {first.id} ({utc_text(first.started_at)}) to run {last.id} "
        f"({utc_text(last.started_at)}); the most changes in one cycle: {tallest}. "
        "The table below lists the latest cycles as text."
    )
    return ChartView(
        runs=tuple(
            ChartRun(run.id, run.outcome, _run_summary(run), tuple(by_run.get(run.id, ()))) for run in shown
        ),
        description=description,
        tallest=tallest,
    )


def _chart_runs(runs: Sequence[RunRow]) -> list[RunRow]:
    """The newest `CHART_RUNS` runs, oldest first (the store gives newest first)."""
    return list(reversed(list(runs)[:CHART_RUNS]))


def _stack_total(run: RunRow) -> int:
    return sum(run.changes(a) for a in CHART_ACTIONS) + run.failures


def _run_summary(run: RunRow) -> str:
    # Relinks are rare: named only in the runs that have any.
    parts = [f"{a} {run.changes(a)}" for a in CHART_ACTIONS if a != "relink" or run.changes(a)]
    parts.append(f"failed {run.failures}")
    duration = run.duration_s
    took = "" if duration is None else f", {duration:.1f} s"
    return f"run {run.id} ({run.kind}, {run.trigger}) {utc_text(run.started_at)}: {run.outcome}{took}; " + (
        ", ".join(parts)
    )
