"""bench/sync_cycles.py --read-1m: the read side of a full cycle at 1,000,000 users, `GraphSource.read()`
beside the `json.loads` baseline, both through bench/graph_read.py's `--child` modes."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cycles.common import GRAPH_READ, ROOT, Json
from cycles.emulators import control, graph_location
from cycles.harness import Harness
from cycles.report import fmt_kinds
from cycles.tallies import graph_kind, tally

READ_1M_USERS = 1_000_000


def run_read_1m(args: argparse.Namespace, directory: Path) -> int:
    """The read at 1,000,000 users, the reader and the baseline each in a fresh process; prints the figures
    and writes them to the --json-out name with "-read" added."""
    harness = Harness(args, READ_1M_USERS, directory)
    try:
        print(
            f"=== read side of a full cycle, {READ_1M_USERS:,} users, latency {args.latency_ms:g} ms ===",
            flush=True,
        )
        started = time.perf_counter()
        graph = harness.start(
            "Graph",
            ["--serve", "graph", "--users", str(READ_1M_USERS), "--page-cap", "999", "--dir",
             str(directory / "graph-ca"), "--churn-count", "0"],
        )  # fmt: skip
        print(f"  emulator up after {time.perf_counter() - started:.1f} s", flush=True)
        where = graph_location(graph)
        results: Json = {}
        for mode in ("baseline", "reader"):
            print(f"  {mode} ...", flush=True)
            control(graph, "DELETE", "/requests")
            results[mode] = harness.python(mode, [str(GRAPH_READ), "--child", mode, "--where", where])
            results[mode]["graph"] = tally(control(graph, "GET", "/requests"), graph_kind)
    finally:
        harness.stop()
    print(f"{'':10} {'users':>10} {'wall s':>8} {'CPU s':>8} {'peak RSS':>10}  Graph requests")
    for mode in ("baseline", "reader"):
        r = results[mode]
        print(
            f"{mode:10} {r['users']:>10,} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['peak_rss_mb']:>8.0f}MB  "
            f"{fmt_kinds(r['graph']['by_kind'])}"
        )
    reader = results["reader"]
    ok = reader["peak_rss_mb"] <= 1024
    print(
        f"reader peak RSS {reader['peak_rss_mb']:.0f} MB <= 1024 MB: {'PASS' if ok else 'FAIL'} "
        f"(ratio {reader['peak_rss_mb'] / 1024:.2f}); reader/baseline CPU "
        f"{reader['cpu_s'] / results['baseline']['cpu_s']:.2f}x"
    )
    out = Path(args.json_out.replace("{n}", f"{READ_1M_USERS}-read"))
    out = out if out.is_absolute() else ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"users": READ_1M_USERS, "latency_ms": args.latency_ms, **results}, indent=2))
    print(f"figures written to {out}")
    return 0
