"""How a process that runs cycles sets up CPython's garbage collector.

The objects alive once a process has imported what it needs (modules, classes: msgraph-sdk alone brings many
thousands; SQLAlchemy's tables, the settings models) live as long as the process. The cyclic collector would
walk them again at every full collection, for nothing. `tune_collector` runs once, after the imports, in
every process that runs cycles (`syncd sync`, `run`, `relink`, the benchmarks' workers): it freezes them out
of the collector's walks (`gc.freeze`).

The same holds, for the length of a cycle, of what the cycle's read gathered (the desired members, our
records, the agents list: a few objects per person, a million objects at 100,000 people), and, between a
daemon's cycles, of what it keeps from one cycle to the next (the page and agents list memos). So:

- `freeze_cycle_state`, called by the engine after each member page the read took, after the agents list
  and after our records, freezes everything alive then (after a young-generation collection: a freeze
  itself only moves a list, and collecting the young generations costs what they hold), so no full
  collection of the cycle walks what its read gathered before (at a million people, the walks of a fresh
  full cycle's read grew with everything read so far: 6.7 s of its 40 s). A frozen object is still freed
  as soon as nothing refers to it (reference counting); only cyclic garbage among them waits for the next
  step.
- `collector_paused` wraps what a cycle builds in bulk after its member read (the agents list, our records,
  the plan: objects without reference cycles, freed by reference counting when dropped): no automatic
  collection runs meanwhile, and what is alive afterwards is frozen. Without it, a million records or
  agents built at once set off full collections that walk everything built so far, again and again as it
  grows (2.7 s of a fresh 1M-user full cycle's 38 s, against 0.02 s at 100,000).
- `collect_after_cycle`, called by the daemon after each cycle, unfreezes, collects fully (the cycle's data
  is gone, so the walk is cheap and cyclic garbage never outlives the cycle that made it) and freezes what
  is left: the imports and the memos, which the next cycle's collections then skip.

The thresholds stay CPython's: raising them (100,000, 50, 100) saved little of a 100,000-user full cycle's
CPU (3.62 s against 3.76 s) and held some 40 MB more at the peak of its initial sync, about 400 MB at a
million (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

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


def freeze_cycle_state() -> None:
    """In a process `tune_collector` set up, as a cycle's read gathers its state (after each member page, the
    agents list and our records): collect the young generations, then freeze what is alive (see the module
    docstring). Nothing in any other process (a test run)."""
    if _tuned:
        gc.collect(1)
        gc.freeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """In a process `tune_collector` set up: no automatic collection inside the block, then
    `freeze_cycle_state` (see the module docstring). Nothing in any other process (a test run), nor when
    the collector is off already."""
    if not _tuned or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        freeze_cycle_state()


def collect_after_cycle() -> int | None:
    """Between cycles, in a process `tune_collector` set up: unfreeze, collect fully and freeze what is left
    (see the module docstring); how many unreachable objects the collection found. None, doing nothing, in
    any other process (a test process keeps the defaults)."""
    if not _tuned:
        return None
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found
