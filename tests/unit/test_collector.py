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
defaults = list(gc.get_threshold())
collector.tune_collector()
collector.tune_collector()
print(json.dumps({
    "before": before,
    "thresholds": list(gc.get_threshold()),
    "defaults": defaults,
    "frozen": gc.get_freeze_count(),
    "after": collector.collect_after_cycle(),
}))
"""


def test_tuning_freezes_the_imports_and_cycles_then_collect() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.splitlines()[-1])  # after any log line of an unconfigured structlog
    assert figures["before"] is None  # an untuned process (a test run) never collects between cycles
    assert figures["thresholds"] == figures["defaults"]  # CPython's: see the module docstring
    assert figures["frozen"] > 1_000
    assert isinstance(figures["after"], int)
