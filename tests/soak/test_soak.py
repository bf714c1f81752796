"""The short fault soak (part of `make test`) and the invariant checkers on hand-made logs.

The long soak is `make soak` (200 cycles, `python -m tests.soak.runner`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak.runner import (
    CycleWindow,
    Operation,
    SoakOptions,
    Write,
    check_converged,
    check_no_double_onboard,
    check_no_in_scope_offboard,
    check_writes_logged,
    run_soak,
)

A, B = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
T = "tenant"


@pytest.mark.timeout(360)
def test_short_soak_has_faults_and_kills_and_no_violations(tmp_path: Path) -> None:
    report = run_soak(SoakOptions(cycles=12, seed=3, users=200, kill_share=0.3), tmp_path)
    print(report.render())
    assert report.violations == []
    assert report.cycles == 12
    assert report.kills >= 2
    assert sum(report.faults.values()) > 0
    assert any(kind.startswith("smartcomm:drop_after") for kind in report.faults)
    assert sum(report.changes.values()) > 0
    assert report.exit_codes[0] >= 2  # the two clean cycles at least


# --- 1. convergence ------------------------------------------------------------------------------------


def test_converged_accepts_equal_states() -> None:
    state = {A: ("+14155550100", "a@contoso.com", None, T)}
    assert check_converged(state, dict(state)) == []


@pytest.mark.parametrize(
    ("remote", "desired", "found"),
    [
        ({}, {A: ("+14155550100", "a@x", None, T)}, "should be an agent"),
        ({A: ("+14155550100", "a@x", None, T)}, {}, "out of scope"),
        ({A: ("+14155550100", "a@x", None, T)}, {A: ("+14155550199", "a@x", None, T)}, "should be"),
        ({A: ("+14155550100", "a@x", None, T)}, {A: ("+14155550100", "renamed.a@x", None, T)}, "should be"),
    ],
)
def test_converged_detects_differences(
    remote: dict[str, tuple[str, str | None, str | None, str]],
    desired: dict[str, tuple[str, str | None, str | None, str]],
    found: str,
) -> None:
    violations = check_converged(remote, desired)
    assert len(violations) == 1
    assert found in violations[0]


# --- 2. no double onboarding ---------------------------------------------------------------------------


def test_double_onboard_is_detected() -> None:
    writes = [Write(1, 1.0, "POST", A, applied=True), Write(2, 2.0, "POST", A, applied=True)]
    violations = check_no_double_onboard(writes)
    assert len(violations) == 1
    assert "#2" in violations[0]


def test_onboard_of_a_seeded_active_agent_is_detected() -> None:
    assert check_no_double_onboard([Write(1, 1.0, "POST", A, applied=True)], initially_active=[A])


def test_onboard_again_after_offboard_or_after_a_refused_post_is_fine() -> None:
    writes = [
        Write(1, 1.0, "POST", A, applied=True),
        Write(2, 2.0, "POST", A, applied=False, status=400),  # "already exists": not applied
        Write(3, 3.0, "DELETE", A, applied=True),
        Write(4, 4.0, "POST", A, applied=True, fault="drop_after"),
        Write(5, 5.0, "POST", B, applied=True),
    ]
    assert check_no_double_onboard(writes) == []


# --- 3. no in-scope offboarding ------------------------------------------------------------------------


def test_in_scope_offboard_is_detected() -> None:
    cycles = [CycleWindow(0, 0.0, 10.0, frozenset({A})), CycleWindow(1, 20.0, 30.0, frozenset())]
    violations = check_no_in_scope_offboard([Write(1, 5.0, "DELETE", A, applied=True)], cycles)
    assert len(violations) == 1
    assert "cycle 0" in violations[0]


def test_offboard_after_leaving_and_refused_deletes_are_fine() -> None:
    # A was in scope in cycle 0, left before cycle 1 (deleted then), rejoined before cycle 2.
    cycles = [
        CycleWindow(0, 0.0, 10.0, frozenset({A, B})),
        CycleWindow(1, 20.0, 30.0, frozenset({B})),
        CycleWindow(2, 40.0, 50.0, frozenset({A, B})),
    ]
    writes = [
        Write(1, 25.0, "DELETE", A, applied=True),
        Write(2, 45.0, "DELETE", B, applied=False, status=503),
    ]
    assert check_no_in_scope_offboard(writes, cycles) == []


def test_offboard_outside_every_cycle_is_detected() -> None:
    cycles = [CycleWindow(0, 0.0, 10.0, frozenset())]
    assert check_no_in_scope_offboard([Write(1, 15.0, "DELETE", A, applied=True)], cycles)


# --- 4. every applied write is in our operations log ---------------------------------------------------


def test_missing_operation_is_detected() -> None:
    operations = [Operation(B, "onboard", "ok", 0.5, 1.5)]
    violations = check_writes_logged([Write(1, 1.0, "POST", A, applied=True)], operations)
    assert len(violations) == 1
    assert "no operation" in violations[0]


def test_write_under_the_wrong_action_is_detected() -> None:
    operations = [Operation(A, "offboard", "ok", 0.5, 1.5)]
    assert check_writes_logged([Write(1, 1.0, "PATCH", A, applied=True)], operations)


def test_operation_recorded_only_after_its_write_is_detected() -> None:
    operations = [Operation(A, "onboard", "ok", 2.0, 3.0)]
    assert check_writes_logged([Write(1, 1.0, "POST", A, applied=True)], operations)


def test_pending_operation_left_at_the_end_is_detected() -> None:
    operations = [Operation(A, "onboard", "pending", 0.5, None)]
    violations = check_writes_logged([Write(1, 1.0, "POST", A, applied=True)], operations)
    assert violations == [f"pending operation: onboard {A} never settled"]


def test_logged_writes_pass_adoption_and_reonboard_included() -> None:
    operations = [
        Operation(A, "onboard", "adopted", 0.5, 1.5),  # POST refused as existing, then PATCH
        Operation(B, "update", "ok", 2.0, 2.5),  # PATCH found it gone: POST
        Operation(A, "offboard", "ok", 3.0, 3.5),
    ]
    writes = [
        Write(1, 0.6, "POST", A, applied=False, status=400),
        Write(2, 0.8, "PATCH", A, applied=True),
        Write(3, 2.1, "PATCH", B, applied=False, status=404),
        Write(4, 2.2, "POST", B, applied=True),
        Write(5, 3.1, "DELETE", A, applied=True, fault="drop_after"),
        Write(6, 9.0, "POST", A, applied=False, status=503),  # not applied: needs no operation
    ]
    assert check_writes_logged(writes, operations) == []
