"""How a process that runs cycles sets up CPython's garbage collector.

The objects alive once a process has imported what it needs (modules, classes: msgraph-sdk alone brings many
thousands; SQLAlchemy's tables, the settings models) live as long as the process. The cyclic collector would
walk them again at every full collection, for nothing. `tune_collector` runs once, after the imports, in
every process that runs cycles (`syncd sync`, `run`, `relink`, the benchmarks' workers): it freezes them out
of the collector's walks (`gc.freeze`). The daemon then collects fully after each cycle
(`collect_after_cycle`), when the cycle's data is gone and the walk is cheap, so that cyclic garbage never
outlives the cycle that made it.

The thresholds stay CPython's: raising them (100,000, 50, 100) saved little of a 100,000-user full cycle's
CPU (3.62 s against 3.76 s) and held some 40 MB more at the peak of its initial sync, about 400 MB at a
million (docs/benchmarks.md).
"""

from __future__ import annotations

import gc

import structlog

log = structlog.get_logger("syncd.collector")

_tuned = False


def tune_collector() -> None:
    """Collect, then freeze the objects alive now (see the module docstring). Idempotent."""
    global _tuned
    gc.collect()
    gc.freeze()
    _tuned = True
    log.debug("process.collector_tuned", frozen=gc.get_freeze_count(), thresholds=list(gc.get_threshold()))


def collect_after_cycle() -> int | None:
    """A full collection between cycles in a process whose collector `tune_collector` set up (how many
    unreachable objects it found); None, doing nothing, in any other (a test process keeps the defaults)."""
    return gc.collect() if _tuned else None
