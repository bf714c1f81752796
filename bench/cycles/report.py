"""What bench/sync_cycles.py prints: a cycle's progress line, the targets (each figure beside its bound,
with the ratio and PASS/FAIL) and the report of one size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import IO

from cycles.common import Json
from cycles.tallies import graph_reads

TARGET_USERS = 100_000
"""The size the targets are stated for (they are printed for every size)."""


def describe_phases(cycle: Json) -> str:
    """A cycle's phases as "read 1.29/3.40, plan ...": CPU/wall seconds (CPU only in older figures)."""
    walls = cycle.get("phase_wall_s") or {}
    return ", ".join(
        f"{k} {v:.2f}" + (f"/{walls[k]:.2f}" if k in walls else "") for k, v in cycle["phase_cpu_s"].items()
    )


def describe_cycle(cycle: Json) -> str:
    writes = cycle["writes"]
    phases = cycle["phase_cpu_s"]
    phase_text = f" phases (CPU/wall s) {describe_phases(cycle)}" if phases else ""
    error = f" error={cycle['error']!r}" if cycle["error"] else ""
    stop = f" stopped_by={cycle['stopped_by']}" if cycle["stopped_by"] else ""
    return (
        f"{cycle['kind']}: exit {cycle['exit_code']}, wall {cycle['wall_s']:.2f} s,"
        f" CPU {cycle['cpu_s']:.2f} s, writes POST {writes['POST']} PATCH {writes['PATCH']}"
        f" DELETE {writes['DELETE']}{phase_text}{error}{stop}"
    )


def fmt_kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in kinds.items()) or "none"


def of_runs(measured: Json, key: str, scale: float = 1.0) -> str:
    """ " (least of 0.204, 0.211, 0.230)": every run's value of a repeated measurement (`least`), or "" for
    one run."""
    values = measured["repeats"][key]
    return f" (least of {', '.join(f'{v * scale:.3f}' for v in values)})" if len(values) > 1 else ""


def cycle_runs(scenario: Json, index: int, key: str) -> str:
    """ " (runs: 1.25, 1.18, 1.31)": every run's `key` ("cpu_s", "wall_s") of cycle `index` of a scenario
    taken with `best_of`, or "" for one run."""
    values = scenario["repeats"][index][key]
    return f" (runs: {', '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else ""


def cpu_per_write(initial: Json) -> tuple[float, int, str]:
    """The initial sync's CPU per SmartCommunicator write (`best_of`'s runs: the least), its writes and what
    the CPU is: the apply phase's where the cycle reports it, else the whole cycle's."""
    runs = initial["repeats"][0]
    if None not in runs["apply_cpu_s"]:
        basis, cpus = "apply-phase CPU", runs["apply_cpu_s"]
    else:
        basis, cpus = "whole-cycle CPU (no phase_cpu_s['apply'])", runs["cpu_s"]
    per_run = [cpu / max(count, 1) for cpu, count in zip(cpus, runs["writes"], strict=True)]
    best = min(range(len(per_run)), key=per_run.__getitem__)
    if len(per_run) > 1:
        basis += f", least of {len(per_run)} runs ({', '.join(f'{v * 1e3:.3f}' for v in per_run)} ms)"
    return per_run[best], runs["writes"][best], basis


def targets(result: Json) -> list[Json]:
    """Each target: figure, bound, ratio figure/bound, pass."""
    n = result["users"]
    stated = "" if n == TARGET_USERS else f" (target stated for {TARGET_USERS:,})"
    scenarios = result["scenarios"]
    initial = scenarios["a_initial"]["cycles"][0]
    full = scenarios["b_full_nochange"]["cycles"][0]
    incremental = scenarios["c_incr_nochange"]["cycles"][-1]
    churn = scenarios["d_churn"]["cycles"][0]
    rows: list[Json] = []

    def row(name: str, figure: float, bound: float, unit: str, passed: bool, note: str = "") -> None:
        ratio = figure / bound if bound else (0.0 if figure == 0 else math.inf)
        rows.append(
            {"target": name, "figure": figure, "bound": bound, "unit": unit, "ratio": ratio, "pass": passed}
            | ({"note": note} if note else {})
        )

    per_write, writes, basis = cpu_per_write(scenarios["a_initial"])
    per_post = result["write_baseline"]["cpu_per_post_s"]
    row(
        "writes: CPU per write (a) <= 2x bare aiohttp",
        per_write * 1e3,
        2 * per_post * 1e3,
        "ms",
        writes > 0 and per_write <= 2 * per_post,
        f"{basis} / {writes} writes; bare aiohttp {per_post * 1e3:.3f} ms/POST"
        + of_runs(result["write_baseline"], "cpu_per_post_s", 1e3),
    )
    bound = initial["bound"]
    bare, read = result["bare_writes"], result["read_baseline"]
    fair = bare["wall_s"] + read["wall_s"]
    row(
        "initial sync wall <= 1.1x (bare write loop + bare read)" + stated,
        initial["wall_s"],
        1.1 * fair,
        "s",
        initial["wall_s"] <= 1.1 * fair,
        f"bound {fair:.2f} s = bare aiohttp loop of the same {bare['posts']:,} writes {bare['wall_s']:.2f} s"
        f"{of_runs(bare, 'wall_s')} + http.client/json.loads read {read['wall_s']:.2f} s"
        f"{of_runs(read, 'wall_s')}; the latency bound (emulators costing nothing) would be"
        f" {bound['seconds']:.2f} s; the sync{cycle_runs(scenarios['a_initial'], 0, 'wall_s')}",
    )
    floor = result["floor"]
    parts = {
        "member pages": read["cpu_s"],
        "agents list": floor["agents_list"]["cpu_s"],
        "member rows": floor["member_rows"]["cpu_s"],
    }
    total = sum(parts.values())
    floor_note = "floor " + " + ".join(f"{k} {v:.3f}" for k, v in parts.items()) + f" = {total:.3f} s CPU"
    floor_note += ", each the least of its runs"
    row(
        "full no-change CPU <= 3x floor (fresh process)" + stated,
        full["cpu_s"],
        3 * total,
        "s",
        full["cpu_s"] <= 3 * total,
        floor_note + "; the worker's first cycle" + cycle_runs(scenarios["b_full_nochange"], 0, "cpu_s"),
    )
    warm = scenarios["b_full_nochange"]["cycles"][-1]
    row(
        "full no-change CPU <= 2x floor (a daemon's second)" + stated,
        warm["cpu_s"],
        2 * total,
        "s",
        warm["cpu_s"] <= 2 * total,
        "the second full cycle in the same worker process"
        + cycle_runs(scenarios["b_full_nochange"], 1, "cpu_s"),
    )
    row(
        "full no-change peak RSS <= 250 MB" + stated,
        full["peak_rss_mb"],
        250,
        "MB",
        full["peak_rss_mb"] <= 250,
        "whole worker process after its first cycle, imports included",
    )
    reads = graph_reads(incremental["graph"])
    allowed = 3 * result["groups"]
    row(
        "incremental no-change: Graph requests <= 3 per group",
        reads,
        allowed,
        "req",
        reads <= allowed,
        f"second cycle, login excluded: {fmt_kinds(incremental['graph']['by_kind'])}",
    )
    row(
        "incremental no-change wall < 0.5 s",
        incremental["wall_s"],
        0.5,
        "s",
        incremental["wall_s"] < 0.5,
        "second cycle",
    )
    expected = scenarios["d_churn"]["expected_writes"]
    got = churn["writes"]
    row(
        "churn: writes == expected",
        sum(got.values()),
        sum(expected.values()),
        "writes",
        got == expected,
        f"got {got}, expected {expected}",
    )
    pages = churn["graph"]["by_kind"].get("member_pages", 0)
    row(
        "churn: no unchanged member page read",
        pages,
        0,
        "pages",
        pages == 0,
        f"transitiveMembers user pages; Graph: {fmt_kinds(churn['graph']['by_kind'])}",
    )
    return rows


def print_report(result: Json, rows: list[Json], out: IO[str]) -> None:
    n = result["users"]
    print(
        f"\n--- {n:,} users (latency {result['latency_ms']:g} ms, concurrency {result['concurrency']}) ---",
        file=out,
    )
    print(
        f"{'scenario':<22} {'wall s':>8} {'cyc CPU s':>9} {'proc CPU s':>10} {'RSS MB':>7} "
        f"{'bound s':>8} {'POST':>6} {'PATCH':>6} {'DEL':>6}  exit",
        file=out,
    )
    labels = {
        "a_initial": ["a initial (full)"],
        "b_full_nochange": ["b full no-change", "b ... again (daemon)"],
        "c_incr_nochange": ["c incr no-change #1", "c incr no-change #2"],
        "d_churn": ["d churn (incr)"],
    }
    for key, names in labels.items():
        scenario = result["scenarios"][key]
        for index, (name, cycle) in enumerate(zip(names, scenario["cycles"], strict=True)):
            proc = f"{scenario['process_cpu_s']:.2f}" if index == len(names) - 1 else ""
            w = cycle["writes"]
            print(
                f"{name:<22} {cycle['wall_s']:>8.2f} {cycle['cpu_s']:>9.2f} {proc:>10}"
                f" {cycle['peak_rss_mb']:>7.0f} {cycle['bound']['seconds']:>8.2f}"
                f" {w['POST']:>6} {w['PATCH']:>6} {w['DELETE']:>6}  "
                f"{cycle['exit_code']}{' ' + cycle['error'] if cycle['error'] else ''}",
                file=out,
            )
    print("requests per cycle (Graph | SmartCommunicator), phase CPU/wall seconds:", file=out)
    for key, names in labels.items():
        scenario = result["scenarios"][key]
        for name, cycle in zip(names, scenario["cycles"], strict=True):
            phase_text = describe_phases(cycle) if cycle["phase_cpu_s"] else "n/a (no phase_cpu_s)"
            others = cycle["graph"]["others"] + cycle["smartcomm"]["others"]
            print(
                f"  {name:<20} {fmt_kinds(cycle['graph']['by_kind'])}"
                f" | {fmt_kinds(cycle['smartcomm']['by_kind'])}"
                f" | errors {cycle['graph']['errors']}/{cycle['smartcomm']['errors']}"
                f" (Graph 429 {cycle['graph'].get('throttled', 0)}) | phases {phase_text}"
                + (f" | other: {others}" if others else ""),
                file=out,
            )
            gc = cycle.get("gc")
            if gc:
                counts = ", ".join(f"{k} {n}" for k, n in gc["collections"].items())
                print(f"  {'':<20} garbage collector {gc['total_s']:.2f} s ({counts} collections)", file=out)
            b = cycle["bound"]
            print(
                f"  {'':<20} latency bound {b['seconds']:.2f} s = {b['writes']} writes x {b['latency_s']} s"
                f" / {b['concurrency']} + ({b['graph_pages']} Graph requests + {b['smartcomm_list_pages']}"
                f" agents-list GETs) x {b['latency_s']} s",
                file=out,
            )
        print(
            f"  {'':<20} worker: setup (imports, db upgrade) {scenario['setup_cpu_s']:.2f} s CPU,"
            f" whole process {scenario['process_cpu_s']:.2f} s CPU,"
            f" peak RSS {scenario['peak_rss_mb']:.0f} MB, logged {fmt_kinds(scenario['logged'])}",
            file=out,
        )
    wb, rb = result["write_baseline"], result["read_baseline"]
    print(
        f"baselines: bare aiohttp {wb['posts']:,} POSTs: {wb['cpu_per_post_s'] * 1e3:.3f} ms CPU/POST"
        f"{of_runs(wb, 'cpu_per_post_s', 1e3)} ({wb['cpu_s']:.2f} s CPU, {wb['wall_s']:.2f} s wall,"
        f" {wb['statuses']}); json.loads read: {rb['cpu_s']:.3f} s CPU{of_runs(rb, 'cpu_s')},"
        f" {rb['wall_s']:.2f} s wall{of_runs(rb, 'wall_s')}, {rb['peak_rss_mb']:.0f} MB",
        file=out,
    )
    bare, floor = result["bare_writes"], result["floor"]
    agents, rows_ = floor["agents_list"], floor["member_rows"]
    print(
        f"           bare aiohttp, the initial sync's {bare['posts']:,} writes: {bare['wall_s']:.2f} s wall"
        f"{of_runs(bare, 'wall_s')}; floor: agents list {agents['cpu_s']:.3f} s CPU{of_runs(agents, 'cpu_s')}"
        f" ({agents['items']:,} agents, {agents['bytes'] / 1e6:.1f} MB), member rows {rows_['cpu_s']:.3f} s"
        f" CPU{of_runs(rows_, 'cpu_s')} ({rows_['items']:,})",
        file=out,
    )
    print_targets(rows, out)


def print_targets(rows: Sequence[Json], out: IO[str]) -> None:
    """The targets table (bench/scale.py prints its own with it): each figure beside its bound, the ratio,
    PASS or FAIL, and a row's note, if it has one, on the line below."""
    print(f"\n{'target':<86} {'figure':>10} {'limit':>10} {'unit':<6} {'fig/lim':>7}  result", file=out)
    for r in rows:
        print(
            f"{r['target']:<86} {r['figure']:>10.3f} {r['bound']:>10.3f} {r['unit']:<6} {r['ratio']:>7.2f}  "
            f"{'PASS' if r['pass'] else 'FAIL'}",
            file=out,
        )
        if r.get("note"):
            print(f"{'':<4}{r['note']}", file=out)
