"""What every part of bench/sync_cycles.py shares: where things are, the error that ends a run, peak RSS,
and how a child process waits for its parent and how a run stops on SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
COMMAND = BENCH / "sync_cycles.py"
"""The command: the emulator children and the workers are this script again, with --serve or --worker."""
GRAPH_READ = BENCH / "graph_read.py"
FLOORS = BENCH / "floors.py"

Json = dict[str, Any]


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def add_scenario_arguments(
    parser: argparse.ArgumentParser, *, users: list[int], initial_repeats: int
) -> None:
    """The options sync_cycles.py and scale.py share: the sizes, the emulators' latency, the write
    concurrency, the churn, Graph's budget and how often a measurement is repeated (the least kept)."""
    parser.add_argument("--users", type=int, nargs="+", default=users)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of the full no-change scenario, the floor's parts and the baselines; the least is kept",
    )
    parser.add_argument(
        "--initial-repeats",
        type=int,
        default=initial_repeats,
        help="runs of the initial sync (each on an emptied database and SmartCommunicator account, each"
        " followed by its bare write loop when there are baselines); the least is kept",
    )
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument(
        "--graph-budget",
        choices=["tenant", "off"],
        default="tenant",
        help="Graph's resource unit budget: the tenant size's (default) or none",
    )


def least(runs: Sequence[Json], *keys: str) -> Json:
    """The same measurement repeated, each in a fresh process: the first run's figures with each of `keys`
    replaced by its least value among the runs (timeit's rule: on a machine shared with other work, noise
    only ever adds time), and every run's values of `keys` under "repeats"."""
    if not runs:
        raise BenchError("no runs to take the least of")
    out = dict(runs[0])
    for key in keys:
        out[key] = min(run[key] for run in runs)
    out["repeats"] = {key: [run[key] for run in runs] for key in keys}
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM from /proc (Linux), else ru_maxrss.

    Not ru_maxrss where /proc has VmHWM: Linux keeps ru_maxrss across execve, and as subprocess starts its
    children with vfork, a worker's ru_maxrss starts at the harness's own peak (which holds the request logs
    of 100,000 writes); VmHWM belongs to the new process image only.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return ru_maxrss_mb()


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_for_parent() -> None:
    """Block until the parent closes our stdin (or dies); Ctrl-C ends the wait quietly."""
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()


def interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: like Ctrl-C, so that the finally blocks stop every child."""
    raise KeyboardInterrupt
