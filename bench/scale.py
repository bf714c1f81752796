"""Benchmark (run by hand with `make bench-1m`, never by the test suite): the scale curve of whole cycles, to
one million users.

    .venv/bin/python bench/scale.py [--users 10000 100000 1000000] [--latency-ms 20] [--concurrency 32]
                                    [--churn 0.01] [--graph-budget tenant|off]
                                    [--repeats 3] [--initial-repeats 1]
                                    [--json-out bench/results/scale.json]

For each size, bench/sync_cycles.py's harness (bench/cycles/harness.py: the same emulator processes, tenant,
configuration and fresh worker per scenario; its baselines are skipped) runs the four scenarios: a. an
initial sync, b. a full cycle with no change (the first cycle of its worker is the one judged; --repeats
workers, 3, the least CPU kept, as in sync_cycles.py), c. an incremental cycle with no change (the second
of its worker), d. an incremental cycle after 1% churn. Printed
per size and scenario: CPU per user (the cycle's CPU / users), CPU, wall, peak RSS of the worker and the
requests each emulator received.

Targets (stated for 1,000,000 against 100,000; with other sizes, the largest against the one below it):
  - CPU per user of each scenario at the largest size <= 1.2x that at the size below (linear cost);
  - peak RSS of the initial sync and of the full no-change cycle at the largest size <= 1 GB;
  - incremental no-change at the largest size: <= 3 Graph requests (login excluded) per configured group,
    wall < 0.5 s.

A 1,000,000-user run takes long on a 2-core machine (the initial sync's some 700,000 writes cost CPU in
syncd and in the emulator): --latency-ms lowers the emulators' latency when their own limits make it too
slow; the figures record the latency used.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cycles.common import ROOT, BenchError, add_scenario_arguments, interrupted
from cycles.harness import Harness
from cycles.report import print_targets
from cycles.tallies import graph_reads

DEFAULT_JSON_OUT = "bench/results/scale.json"
TARGET_BIG, TARGET_SMALL = 1_000_000, 100_000
RSS_BOUND_MB = 1024.0
Json = dict[str, Any]

SCENARIOS = {
    "a_initial": ("initial sync", 0),
    "b_full_nochange": ("full, no change", 0),
    "c_incr_nochange": ("incremental, no change", -1),
    "d_churn": ("1% churn", 0),
}
"""Scenario key: its name and which of its worker's cycles is judged."""


def figures(result: Json) -> dict[str, Json]:
    """Per scenario: the judged cycle's figures."""
    n = result["users"]
    out: dict[str, Json] = {}
    for key, (_, index) in SCENARIOS.items():
        cycle = result["scenarios"][key]["cycles"][index]
        out[key] = {
            "cpu_s": cycle["cpu_s"],
            "cpu_per_user_us": cycle["cpu_s"] / n * 1e6,
            "wall_s": cycle["wall_s"],
            "peak_rss_mb": cycle["peak_rss_mb"],
            "graph_requests": graph_reads(cycle["graph"]),
            "smartcomm_requests": cycle["smartcomm"]["total"] - cycle["smartcomm"]["by_kind"].get("login", 0),
            "writes": sum(cycle["writes"].values()),
            "exit_code": cycle["exit_code"],
            "error": cycle["error"],
        }
    return out


def targets(by_size: dict[int, dict[str, Json]], groups: int) -> list[Json]:
    sizes = sorted(by_size)
    big = sizes[-1]
    stated = "" if big == TARGET_BIG else f" (stated for {TARGET_BIG:,})"
    rows: list[Json] = []

    def row(name: str, figure: float, bound: float, unit: str, passed: bool) -> None:
        ratio = figure / bound if bound else (0.0 if figure == 0 else float("inf"))
        rows.append(
            {"target": name, "figure": figure, "bound": bound, "unit": unit, "ratio": ratio, "pass": passed}
        )

    if len(sizes) >= 2:
        small = sizes[-2]
        for key, (name, _) in SCENARIOS.items():
            at_big = by_size[big][key]["cpu_per_user_us"]
            at_small = by_size[small][key]["cpu_per_user_us"]
            row(
                f"{name}: CPU/user at {big:,} <= 1.2x at {small:,}{stated}",
                at_big,
                1.2 * at_small,
                "us",
                at_big <= 1.2 * at_small,
            )
    for key in ("a_initial", "b_full_nochange"):
        rss = by_size[big][key]["peak_rss_mb"]
        row(
            f"{SCENARIOS[key][0]}: peak RSS at {big:,} <= 1 GB{stated}",
            rss,
            RSS_BOUND_MB,
            "MB",
            rss <= RSS_BOUND_MB,
        )
    incremental = by_size[big]["c_incr_nochange"]
    requests = incremental["graph_requests"]
    row(
        f"incremental, no change at {big:,}: Graph requests <= 3 per group{stated}",
        requests,
        3 * groups,
        "req",
        requests <= 3 * groups,
    )
    wall = incremental["wall_s"]
    row(f"incremental, no change at {big:,}: wall < 0.5 s{stated}", wall, 0.5, "s", wall < 0.5)
    return rows


def print_table(by_size: dict[int, dict[str, Json]], rows: list[Json], args: argparse.Namespace) -> None:
    print(
        f"\n--- scale curve: latency {args.latency_ms:g} ms, concurrency {args.concurrency},"
        f" churn {args.churn:.0%} ---"
    )
    print(
        f"{'scenario':<24} {'users':>10} {'CPU/user us':>11} {'CPU s':>8} {'wall s':>8} {'RSS MB':>7}"
        f" {'Graph req':>9} {'SC req':>8} {'writes':>8}  exit"
    )
    for key, (name, _) in SCENARIOS.items():
        for n in sorted(by_size):
            f = by_size[n][key]
            print(
                f"{name:<24} {n:>10,} {f['cpu_per_user_us']:>11.2f} {f['cpu_s']:>8.2f} {f['wall_s']:>8.2f}"
                f" {f['peak_rss_mb']:>7.0f} {f['graph_requests']:>9,} {f['smartcomm_requests']:>8,}"
                f" {f['writes']:>8,}  {f['exit_code']}{' ' + f['error'] if f['error'] else ''}"
            )
    print_targets(rows, sys.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_scenario_arguments(parser, users=[10_000, 100_000, 1_000_000], initial_repeats=1)
    parser.add_argument("--json-out", default=DEFAULT_JSON_OUT)
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, interrupted)
    by_size: dict[int, dict[str, Json]] = {}
    raw: dict[int, Json] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="syncd-bench-scale-") as tmp:
        try:
            for n in args.users:
                harness = Harness(args, n, Path(tmp) / f"n{n}")
                t0 = time.monotonic()
                try:
                    raw[n] = harness.run(baselines=False)
                finally:
                    harness.stop()
                raw[n]["harness_wall_s"] = time.monotonic() - t0
                by_size[n] = figures(raw[n])
                print(f"  {n:,} users done in {raw[n]['harness_wall_s']:.0f} s", flush=True)
        except BenchError as exc:
            print(f"\nscale: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nscale: interrupted; emulators stopped", file=sys.stderr)
            return 130
    rows = targets(by_size, groups=1)
    print_table(by_size, rows, args)
    print(f"whole run: {time.monotonic() - started:.0f} s")
    out = Path(args.json_out)
    out = out if out.is_absolute() else ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"args": vars(args), "figures": by_size, "targets": rows, "runs": raw}
    out.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
