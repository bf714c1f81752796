"""The collector set-up of processes that run cycles (syncd.cycle.collector), each check in a fresh
interpreter: it changes process-wide state."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json
from syncd.cycle import collector
before = collector.collect_after_cycle()
collector.freeze_cycle_state()
untuned_frozen = gc.get_freeze_count()
defaults = list(gc.get_threshold())
collector.tune_collector()
collector.tune_collector()
frozen = gc.get_freeze_count()

class Node:
    def __init__(self):
        self.me = self

state = [[i] for i in range(5000)]  # what a cycle's read gathered
garbage = Node()
gc.collect()  # alive: now in the oldest generation
del garbage  # cyclic garbage there when the cycle's state is frozen
collector.freeze_cycle_state()
cycle_frozen = gc.get_freeze_count()
del state  # the cycle ends: freed by reference counting, frozen or not
after = collector.collect_after_cycle()  # finds the cyclic garbage the freeze held
print(json.dumps({
    "before": before,
    "untuned_frozen": untuned_frozen,
    "thresholds": list(gc.get_threshold()),
    "defaults": defaults,
    "frozen": frozen,
    "cycle_frozen": cycle_frozen,
    "after": after,
    "frozen_after": gc.get_freeze_count(),
}))
"""


def test_tuning_freezes_the_imports_and_the_cycle_state_and_cycles_then_collect() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.splitlines()[-1])  # after any log line of an unconfigured structlog
    assert figures["before"] is None  # an untuned process (a test run) never collects between cycles
    assert figures["thresholds"] == figures["defaults"]  # CPython's: see the module docstring
    assert figures["untuned_frozen"] == 0  # nor freezes anything
    assert figures["frozen"] > 1_000
    assert figures["cycle_frozen"] >= figures["frozen"] + 5_000  # the cycle's state joined the imports
    assert figures["after"] >= 1  # the Node, held by the freeze until after the cycle
    # What is left is frozen again (the imports), without the cycle's state.
    assert 1_000 < figures["frozen_after"] < figures["cycle_frozen"] - 5_000


_PAUSE_PROBE = """
import gc, json
from syncd.cycle import collector
with collector.collector_paused():
    untuned_enabled = gc.isenabled()  # a test process: nothing changes
collector.tune_collector()
frozen = gc.get_freeze_count()
counts = gc.get_count()
with collector.collector_paused():
    paused_enabled = gc.isenabled()
    before = gc.get_stats()[0]["collections"]
    built = [[i] for i in range(200_000)]  # far past gen0's threshold: a collection would have run
    collections = gc.get_stats()[0]["collections"] - before
enabled_after = gc.isenabled()
built_frozen = gc.get_freeze_count()
try:
    with collector.collector_paused():
        raise RuntimeError("the cycle failed")
except RuntimeError:
    pass
print(json.dumps({
    "untuned_enabled": untuned_enabled,
    "paused_enabled": paused_enabled,
    "collections": collections,
    "enabled_after": enabled_after,
    "enabled_after_failure": gc.isenabled(),
    "frozen": frozen,
    "built_frozen": built_frozen,
}))
"""


def test_a_paused_collector_runs_no_collection_then_freezes_what_was_built_and_comes_back_on() -> None:
    done = subprocess.run([sys.executable, "-c", _PAUSE_PROBE], capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["untuned_enabled"] is True
    assert figures["paused_enabled"] is False
    assert figures["collections"] == 0
    assert figures["enabled_after"] is True
    assert figures["enabled_after_failure"] is True  # back on whatever the block raised
    assert figures["built_frozen"] >= figures["frozen"] + 200_000  # what the block built is frozen
