"""The daemon's Prometheus series (`syncd.service.metrics`), read back from the text exposition format.

The alert rules read some series from a fresh daemon (tests/e2e/test_alert_rules.py): those exist from the
start, labelled counters at 0 for every label value they can take.
"""

from __future__ import annotations

from typing import get_args

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.core.quarantine import QuarantineState
from syncd.core.reconcile import Guard, GuardStop
from syncd.cycle.engine import CycleResult
from syncd.service.metrics import APIS, CYCLE_OUTCOMES, NOTIFICATION_OUTCOMES, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from what `/metrics` would serve."""
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def result(**fields: object) -> CycleResult:
    done = CycleResult(run_id=1, kind="incremental", dry_run=False)
    for key, given in fields.items():
        setattr(done, key, given)
    return done


def test_a_fresh_daemon_exports_every_series_an_alert_reads() -> None:
    metrics = Metrics(interval_s=900)
    assert value(metrics, "syncd_sync_interval_seconds") == 900
    for outcome in CYCLE_OUTCOMES:
        assert value(metrics, "syncd_cycles_total", outcome=outcome) == 0
        assert value(metrics, "syncd_last_cycle_outcome", outcome=outcome) == 0
    for api in APIS:
        assert value(metrics, "syncd_throttled_responses_total", api=api) == 0
    for outcome in NOTIFICATION_OUTCOMES:
        assert value(metrics, "syncd_notifications_total", outcome=outcome) == 0
    for action in ("onboard", "update", "offboard"):
        for outcome in ("ok", "adopted", "already_gone", "failed"):
            assert value(metrics, "syncd_operations_total", action=action, outcome=outcome) == 0
    for name in (
        "syncd_last_success_timestamp_seconds",
        "syncd_deferred_users",
        "syncd_quarantined",
        "syncd_leader",
    ):
        assert value(metrics, name) == 0


@pytest.mark.parametrize("outcome", CYCLE_OUTCOMES)
def test_the_last_cycle_outcome_is_one_hot(outcome: str) -> None:
    metrics = Metrics(interval_s=60)
    metrics.observe(result(), "guard" if outcome != "guard" else "ok", {})
    metrics.observe(result(), outcome, {"active": 3})
    assert {name: value(metrics, "syncd_last_cycle_outcome", outcome=name) for name in CYCLE_OUTCOMES} == {
        name: float(name == outcome) for name in CYCLE_OUTCOMES
    }
    assert value(metrics, "syncd_cycles_total", outcome=outcome) == 1
    metrics.forget_last_cycle()  # stepped down: a standby has no last cycle of its own
    assert all(value(metrics, "syncd_last_cycle_outcome", outcome=name) == 0 for name in CYCLE_OUTCOMES)


def test_deferred_people_and_writes_follow_the_cycle() -> None:
    metrics = Metrics(interval_s=60)
    outcomes = {"onboard": {"ok": 2, "failed": 1}, "offboard": {"already_gone": 1}}
    metrics.observe(result(deferred=4, outcomes=outcomes), "failed", {"active": 2, "failed": 5})
    assert value(metrics, "syncd_deferred_users") == 4
    assert value(metrics, "syncd_operations_total", action="onboard", outcome="failed") == 1
    assert value(metrics, "syncd_operations_total", action="offboard", outcome="already_gone") == 1
    assert value(metrics, "syncd_members", status="failed") == 5
    # A cycle that failed as a whole made no plan: the deferred people it could not count stay shown.
    metrics.observe(result(error="Graph is down"), "error", {"active": 2, "failed": 5})
    assert value(metrics, "syncd_deferred_users") == 4
    metrics.observe(result(deferred=0), "ok", {"active": 7})
    assert value(metrics, "syncd_deferred_users") == 0


def test_the_last_success_comes_from_a_cycle_or_the_database_whichever_is_later() -> None:
    metrics = Metrics(interval_s=60)
    metrics.observe_last_success(None)  # never succeeded
    assert value(metrics, "syncd_last_success_timestamp_seconds") == 0
    metrics.observe_last_success(1_700_000_000.0)
    assert value(metrics, "syncd_last_success_timestamp_seconds") == 1_700_000_000.0
    metrics.observe(result(), "failed", {})
    assert value(metrics, "syncd_last_success_timestamp_seconds") == 1_700_000_000.0
    metrics.observe(result(), "ok", {})
    succeeded = value(metrics, "syncd_last_success_timestamp_seconds")
    assert succeeded > 1_700_000_000.0
    metrics.observe_last_success(1_700_000_000.0)  # an older record never moves it back
    assert value(metrics, "syncd_last_success_timestamp_seconds") == succeeded


def test_quarantine_throttling_and_notifications_are_counted() -> None:
    metrics = Metrics(interval_s=60)
    metrics.observe_quarantine(QuarantineState(since=1.0, failed_cycles=3, reason="Graph down", next_at=9.0))
    assert (value(metrics, "syncd_quarantined"), value(metrics, "syncd_quarantine_failed_cycles")) == (1, 3)
    metrics.observe_quarantine(None)
    assert (value(metrics, "syncd_quarantined"), value(metrics, "syncd_quarantine_failed_cycles")) == (0, 0)
    for api in ("graph", "graph", "smartcomm"):
        metrics.count_throttled(api)
    assert value(metrics, "syncd_throttled_responses_total", api="graph") == 2
    assert value(metrics, "syncd_throttled_responses_total", api="smartcomm") == 1
    for outcome in ("sent", "failed", "failed", "dropped"):
        metrics.count_notification(outcome)
    assert [value(metrics, "syncd_notifications_total", outcome=o) for o in NOTIFICATION_OUTCOMES] == [
        1,
        2,
        1,
    ]


def stopped(guard: Guard) -> CycleResult:
    done = CycleResult(run_id=3, kind="incremental", dry_run=False, exit_code=3, duration_s=0.2)
    done.stopped_by = GuardStop(guard, "600 updates exceed sync.max_update = 500")
    done.planned = {"onboard": 0, "update": 600, "offboard": 0}
    return done


def test_guard_stops_are_counted_by_guard() -> None:
    metrics = Metrics()
    for guard in get_args(Guard):  # every guard's series exists from the start, at 0
        assert value(metrics, "syncd_guard_stops_total", guard=guard) == 0
    metrics.observe(stopped("max_update"), "guard", {"active": 600})
    metrics.observe(stopped("max_update"), "guard", {"active": 600})
    metrics.observe(stopped("max_offboard"), "guard", {"active": 600})
    metrics.observe(CycleResult(run_id=4, kind="incremental", dry_run=False), "ok", {"active": 600})
    assert value(metrics, "syncd_cycles_total", outcome="guard") == 3
    assert value(metrics, "syncd_guard_stops_total", guard="max_update") == 2
    assert value(metrics, "syncd_guard_stops_total", guard="max_offboard") == 1
    assert value(metrics, "syncd_guard_stops_total", guard="empty_group") == 0
