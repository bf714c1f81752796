"""Benchmark (run by hand, never by the test suite): whole sync cycles against both emulators.

    .venv/bin/python bench/sync_cycles.py [--users 10000 100000] [--latency-ms 20] [--concurrency 32]
                                          [--churn 0.01] [--graph-budget tenant|off]
                                          [--repeats 3] [--initial-repeats 2]
                                          [--json-out bench/results/sync_cycles-{n}.json]
    .venv/bin/python bench/sync_cycles.py --read-1m      # only the read side of a full cycle, 1,000,000 users

For each --users size, the Entra + Graph emulator (a `build_tenant` tenant of that many users, pages of 999;
login and Graph on two hosts) and the SmartCommunicator emulator (the tenant and its numbers registered, as
`build_tenant` lists them) each run in a child process of their own (their CPU is not ours), over
HTTPS with a throw-away test CA, both answering every request after --latency-ms (the emulators' `Faults`
latency; their login endpoints are spared, as `Faults.auth_too` is off: Entra's token and SmartCommunicator's
/authenticate answer at once). Each scenario then runs `Engine.run_cycle` in a fresh worker process of its
own, all on one SQLite file, and measures that process only: wall and CPU time of each `run_cycle` and of its
phases (`CycleResult.phase_cpu_s` and `phase_wall_s`: read, plan, apply), the garbage collector's pauses
during it, the whole process's CPU (interpreter start and imports included), peak RSS, and the requests each
emulator received during each cycle, by kind (request logs cleared before each scenario, split by cycle time):

  a. initial sync       run_cycle(full=True) on an empty database and an empty SmartCommunicator;
                        --initial-repeats runs (2), each on an emptied database and account and followed
                        by its bare write loop; the run of least wall and the least CPU per write kept
  b. full no-change     run_cycle(full=True) twice in one worker: no writes expected; --repeats workers
                        (3), the least CPU of each of the two cycles kept
  c. incr. no-change    run_cycle(full=False) twice in one worker; the second is the one judged (the first may
                        still be setting up Graph delta links), both are printed
  d. churn              ceil(churn * N) users changed through the Graph emulator's control API (a third get a
                        new businessPhones number: PATCH; a third leave the group they are a direct member
                        of: DELETE; a third are new users in a nested group: POST), then run_cycle(full=False)

Baselines, measured in the same run, each in a fresh process, each --repeats times (3; the read and
the floor's parts once more, the first dropped), the least kept (timeit's rule: on a shared machine noise
only ever adds time; both sides of a target are taken alike, and every run's figure is printed):
  - writes: a bare `aiohttp.ClientSession` loop POSTing min(N, 5000) new agents (the body shape syncd sends,
    bearer token from /rest/v1/authenticate) at the same concurrency to a second SmartCommunicator emulator
    process with the same latency (so these agents never meet the scenarios): CPU per POST; then, after
    scenario a, the same loop for as many POSTs as the initial sync sent: its wall;
  - reads: `http.client` + `json.loads` over the same transitive member pages a full read fetches
    (bench/graph_read.py's baseline, run through its `--child baseline`): CPU and wall seconds;
  - the floor of a full cycle's reads (bench/floors.py), after scenario a: the member pages (the read
    baseline's CPU) + `http.client` and `json.loads` of the agents list body + a plain `sqlite3` fetch of
    the member rows `Store.load_recorded` reads;
  - latency bound of a cycle (printed, no longer judged): writes x latency / concurrency + pages x latency,
    where pages are the Graph requests (login excluded) plus SmartCommunicator agents-list GETs it sent.

Printed per size: the scenarios' figures, then each target beside its bound with the ratio and PASS/FAIL
(stated for 100,000 users; they are printed for every size):
  - initial sync: syncd's CPU per SmartCommunicator write (the cycle's "apply" phase CPU from
    `CycleResult.phase_cpu_s` when it has one, else the whole cycle's) <= 2x the bare aiohttp CPU per POST,
    and its wall time <= 1.1x (the bare loop's wall for the same writes + the bare read's wall);
  - full no-change: CPU of a fresh process's cycle <= 3x the floor, of the worker's second cycle (a daemon's
    next full cycle) <= 2x the floor; peak RSS of the worker <= 250 MB;
  - incremental no-change (second cycle): Graph requests other than login <= 3 per configured group, wall
    < 0.5 s;
  - churn: the writes SmartCommunicator received by method == the expected ones, and no transitiveMembers
    user page read.
With SYNCD_BENCH_PROFILE=<folder>, each worker cycle is profiled (cProfile; its CPU figures grow with it)
and dumped there as <pid>-<n>-<kind>.prof. SYNCD_BENCH_RSS_STACKS=<file> and SYNCD_BENCH_TRACEMALLOC=<folder>
say what a worker holds at its peak (bench/cycles/memory.py).
Graph throttles each app to the documented resource unit budget of the tenant's size (over 500 users: the
large tenant's 8,000 units per 10 s), answering 429 with Retry-After when it is spent; `--graph-budget off`
turns that off, to measure its effect. The 429s each cycle met are counted with its Graph requests.
Everything also goes to --json-out ("{n}" is replaced by the size; bench/results/ is git-ignored).
--read-1m times `GraphSource(settings).read()` on 1,000,000 users in a fresh process (wall, CPU, peak RSS,
bound 1 GB), beside the `json.loads` baseline, both through bench/graph_read.py's `--child` modes; figures
to the --json-out name with "-read" added (bench/results/sync_cycles-1000000-read.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
from pathlib import Path

# The parts live in bench/cycles/ (this script's folder is on sys.path, as for any script).
from cycles.common import ROOT, BenchError, add_scenario_arguments, interrupted
from cycles.emulators import serve_graph, serve_smartcomm
from cycles.harness import Harness
from cycles.read_1m import run_read_1m
from cycles.report import print_report, targets
from cycles.workers import run_cycles_worker, write_baseline_worker

DEFAULT_JSON_OUT = "bench/results/sync_cycles-{n}.json"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_scenario_arguments(parser, users=[10_000, 100_000], initial_repeats=2)
    parser.add_argument("--json-out", default=DEFAULT_JSON_OUT, help='"{n}" is replaced by the size')
    parser.add_argument("--read-1m", action="store_true", help="only the 1,000,000-user read (separate mode)")
    # Internal: how the harness starts its children and workers.
    parser.add_argument("--serve", choices=["graph", "smartcomm"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["cycles", "write-baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--page-cap", type=int, default=999, help=argparse.SUPPRESS)
    parser.add_argument("--dir", default="", help=argparse.SUPPRESS)
    parser.add_argument("--churn-count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--config", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cycles", default="full", help=argparse.SUPPRESS)
    parser.add_argument("--where", default="", help=argparse.SUPPRESS)
    parser.add_argument("--posts", type=int, default=5000, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the children too: the parent reports
            if args.serve == "graph":
                throttle = args.graph_budget != "off"
                serve_graph(args.users[0], args.page_cap, Path(args.dir), args.churn_count, throttle)
            else:
                serve_smartcomm(Path(args.dir))
        return 0
    if args.worker == "cycles":
        print(json.dumps(run_cycles_worker(args.config, args.cycles.split(","))))
        return 0
    if args.worker == "write-baseline":
        print(json.dumps(write_baseline_worker(json.loads(args.where), args.posts, args.concurrency)))
        return 0

    signal.signal(signal.SIGTERM, interrupted)  # like Ctrl-C: the finally blocks stop every child
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        try:
            if args.read_1m:
                return run_read_1m(args, Path(tmp))
            for n in args.users:
                harness = Harness(args, n, Path(tmp) / f"n{n}")
                try:
                    result = harness.run()
                finally:
                    harness.stop()
                rows = targets(result)
                result["targets"] = rows
                print_report(result, rows, sys.stdout)
                out = Path(args.json_out.replace("{n}", str(n)))
                out = out if out.is_absolute() else ROOT / out
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
                print(f"figures written to {out}", flush=True)
        except BenchError as exc:
            print(f"\nsync_cycles: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nsync_cycles: interrupted; emulators stopped", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
