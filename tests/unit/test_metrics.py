"""The daemon's Prometheus series for one cycle's result: a guard stop is counted by its guard."""

from __future__ import annotations

from syncd.core.reconcile import Guard, GuardStop
from syncd.cycle.engine import CycleResult
from syncd.service.metrics import Metrics


def stopped(guard: Guard) -> CycleResult:
    result = CycleResult(run_id=3, kind="incremental", dry_run=False, exit_code=3, duration_s=0.2)
    result.stopped_by = GuardStop(guard, "600 updates exceed sync.max_update = 500")
    result.planned = {"onboard": 0, "update": 600, "offboard": 0}
    return result


def test_guard_stops_are_counted_by_guard() -> None:
    metrics = Metrics()
    metrics.observe(stopped("max_update"), "guard", {"active": 600})
    metrics.observe(stopped("max_update"), "guard", {"active": 600})
    metrics.observe(stopped("max_offboard"), "guard", {"active": 600})
    metrics.observe(CycleResult(run_id=4, kind="incremental", dry_run=False), "ok", {"active": 600})
    text = metrics.render().decode()
    assert 'syncd_cycles_total{outcome="guard"} 3.0' in text
    assert 'syncd_guard_stops_total{guard="max_update"} 2.0' in text
    assert 'syncd_guard_stops_total{guard="max_offboard"} 1.0' in text
    assert 'guard="empty_group"' not in text  # a series appears with its first stop
