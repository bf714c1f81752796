"""How a process that runs cycles sets up CPython's garbage collector.

A full cycle builds hundreds of thousands of long-lived objects (the desired members, our records, the
agents list), and with CPython's default thresholds (700, 10, 10) the collector walks every one of them
again and again while they are being built: a third to nearly half of a 100,000-user full cycle's CPU
(docs/benchmarks.md). Almost none of that data is cyclic garbage: reference counting frees it.

`tune_collector` runs once, after the imports, in every process that runs cycles (`syncd sync`, `run`,
`relink`, the benchmarks' workers): the objects alive at that point (modules, classes: msgraph-sdk alone
brings many thousands) are frozen out of the collector's walks, and collections become rarer. The daemon
then collects fully after each cycle (`collect_after_cycle`), when the cycle's data is gone and the walk is
cheap, so that cyclic garbage never outlives the cycle that made it.
"""

from __future__ import annotations

import gc

import structlog

log = structlog.get_logger("syncd.collector")

THRESHOLDS = (100_000, 50, 100)
"""Allocations before a young collection, young collections before a middle one, middle ones before a
full one (CPython also waits for a quarter of the old objects to be new)."""


_tuned = False


def tune_collector() -> None:
    """Freeze the objects alive now and raise the collector's thresholds (see the module docstring).
    Idempotent."""
    global _tuned
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    _tuned = True
    log.debug("process.collector_tuned", thresholds=list(gc.get_threshold()), frozen=gc.get_freeze_count())


def collect_after_cycle() -> int | None:
    """A full collection between cycles in a process whose collector `tune_collector` set up (how many
    unreachable objects it found); None, doing nothing, in any other (a test process keeps the defaults)."""
    return gc.collect() if _tuned else None
