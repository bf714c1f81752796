"""The quarantine's pure decisions: the state machine, the backoff, the share rule, and how it shows."""

from __future__ import annotations

import json

import pytest

from syncd.core.quarantine import (
    STATE_KEY,
    QuarantineState,
    delay_s,
    describe,
    load,
    may_run_scheduled,
    save,
    share_exceeded,
    share_reason,
    status_line,
    transition,
)
from syncd.service.statuspage import DaemonState, StatusData, health, render_status_page

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
INITIAL, MAX = 60.0, 3600.0
Q1 = QuarantineState(reason="auth failed", since=NOW - 100, failed_cycles=1, next_at=NOW - 40)
Q6 = QuarantineState(reason="auth failed", since=NOW - 9000, failed_cycles=6, next_at=NOW - 10)


@pytest.mark.parametrize(
    ("state", "outcome", "error", "expected"),
    [
        pytest.param(None, "ok", None, None, id="healthy-stays-healthy"),
        pytest.param(None, "failed", None, None, id="some-people-failing-is-not-systemic"),
        pytest.param(None, "guard", None, None, id="a-guard-stop-is-not-systemic"),
        pytest.param(
            None,
            "error",
            "bad password",
            QuarantineState("bad password", NOW, 1, NOW + 60),
            id="first-failure-enters-with-initial-delay",
        ),
        pytest.param(
            None,
            "error",
            None,
            QuarantineState("the cycle failed as a whole", NOW, 1, NOW + 60),
            id="failure-without-message",
        ),
        pytest.param(
            Q1,
            "error",
            "503 unavailable",
            QuarantineState("503 unavailable", NOW - 100, 2, NOW + 120),
            id="second-failure-doubles-keeps-since-new-reason",
        ),
        pytest.param(
            Q6,
            "error",
            "auth failed",
            QuarantineState("auth failed", NOW - 9000, 7, NOW + 3600),
            id="capped-at-max",
        ),
        pytest.param(Q1, "ok", None, None, id="ok-recovers"),
        pytest.param(Q6, "failed", None, None, id="a-cycle-that-ran-with-per-user-failures-recovers"),
        pytest.param(Q1, "guard", None, None, id="a-guard-stop-recovers-the-services-answered"),
        pytest.param(Q1, "interrupted", None, Q1, id="interrupted-changes-nothing"),
        pytest.param(None, "interrupted", None, None, id="interrupted-while-healthy"),
    ],
)
def test_transition(
    state: QuarantineState | None, outcome: str, error: str | None, expected: QuarantineState | None
) -> None:
    assert transition(state, outcome, error, now=NOW, initial_s=INITIAL, max_s=MAX) == expected


@pytest.mark.parametrize(
    ("cycles", "initial", "maximum", "expected"),
    [(1, 60, 3600, 60), (2, 60, 3600, 120), (3, 60, 3600, 240), (7, 60, 3600, 3600), (10_000, 1, 5, 5)],
)
def test_delay_doubles_up_to_the_cap(cycles: int, initial: float, maximum: float, expected: float) -> None:
    assert delay_s(cycles, initial_s=initial, max_s=maximum) == expected


@pytest.mark.parametrize(
    ("state", "now", "runs"),
    [(None, NOW, True), (Q1, Q1.next_at - 1, False), (Q1, Q1.next_at, True), (Q1, Q1.next_at + 5, True)],
)
def test_scheduled_cycles_wait_for_next_at(state: QuarantineState | None, now: float, runs: bool) -> None:
    assert may_run_scheduled(state, now) is runs


@pytest.mark.parametrize(
    ("finished", "failed", "share", "min_writes", "exceeded"),
    [
        pytest.param(9, 9, 0.5, 10, False, id="too-few-writes-to-judge"),
        pytest.param(10, 6, 0.5, 10, True, id="six-of-ten"),
        pytest.param(10, 5, 0.5, 10, False, id="exactly-the-share-is-not-above-it"),
        pytest.param(10, 0, 0.5, 10, False, id="none-failed"),
        pytest.param(20, 19, 0.95, 10, False, id="high-threshold"),
        pytest.param(20, 20, 0.95, 10, True, id="all-failed-high-threshold"),
        pytest.param(1, 1, 0.5, 1, True, id="min-one"),
        pytest.param(0, 0, 0.5, 1, False, id="nothing-finished"),
    ],
)
def test_share_rule(finished: int, failed: int, share: float, min_writes: int, exceeded: bool) -> None:
    assert share_exceeded(finished, failed, share=share, min_writes=min_writes) is exceeded


def test_share_reason_names_the_most_common_error() -> None:
    errors = ["number not registered"] * 5 + ["conflict"] * 2
    assert share_reason(10, 7, share=0.5, errors=errors) == (
        "quarantined: 7 of 10 writes failed (share 0.70 > 0.5): number not registered"
    )


def test_describe_prefixes_once() -> None:
    assert describe(Q1) == "quarantined: auth failed"
    shared = QuarantineState("quarantined: 7 of 10 writes failed", NOW, 1, NOW)
    assert describe(shared) == "quarantined: 7 of 10 writes failed"


class KV(dict[str, str]):
    def get_value(self, key: str) -> str | None:
        return self.get(key)

    def set_value(self, key: str, value: str) -> None:
        self[key] = value


@pytest.mark.parametrize("raw", [None, "", "null", "not json", "[1]", '{"reason": 3}'])
def test_absent_or_unreadable_state_is_not_quarantined(raw: str | None) -> None:
    kv = KV() if raw is None else KV({STATE_KEY: raw})
    assert load(kv) is None


def test_state_round_trips_through_the_key_value_table() -> None:
    kv = KV()
    save(kv, Q6)
    assert json.loads(kv[STATE_KEY])["failed_cycles"] == 6
    assert load(kv) == Q6
    save(kv, None)
    assert kv[STATE_KEY] == "null"
    assert load(kv) is None


def test_status_line() -> None:
    state = QuarantineState("bad password", NOW, 3, NOW + 240)
    assert status_line(state) == (
        "QUARANTINED since 2026-05-28 20:26:40 UTC (3 failed cycles): bad password; "
        "next scheduled try at 2026-05-28 20:30:40 UTC (a manual sync or resync runs at once)"
    )


def _document(quarantine: object) -> dict[str, object]:
    run = {
        "id": 3,
        "trigger": "schedule",
        "kind": "incremental",
        "dry_run": False,
        "started_at": NOW - 10,
        "ended_at": NOW - 9,
        "outcome": "error",
        "counts": {},
        "error": "authentication failed",
    }
    return {"runs": [run], "members": {}, "phone_sources": {}, "attention": [], "quarantine": quarantine}


@pytest.mark.parametrize(
    ("quarantine", "systemic", "expected"),
    [
        pytest.param(
            {"reason": "authentication failed", "since": NOW, "failed_cycles": 2, "next_at": NOW + 120},
            "quarantined: authentication failed",
            (
                "failing",
                "Quarantined since 2026-05-28 20:26:40 UTC",
                "authentication failed; next try at 2026-05-28 20:28:40 UTC (2 failed cycles; Sync now tries "
                "at once)",
            ),
            id="quarantined-wins",
        ),
        pytest.param(
            None,
            None,
            ("failing", "The last cycle failed as a whole", "authentication failed"),
            id="not-quarantined-the-runs-decide",
        ),
    ],
)
def test_status_page_verdict(
    quarantine: object, systemic: str | None, expected: tuple[str, str, str]
) -> None:
    data = StatusData.from_document(
        _document(quarantine), DaemonState(started_at=NOW, systemic_failure=systemic)
    )
    verdict = health(data)
    assert (verdict.state, verdict.title, verdict.detail) == expected
    page = render_status_page(data, now=NOW)
    assert expected[1] in page
    assert 'data-state="failing"' in page


def test_status_page_escapes_the_reason() -> None:
    q = {"reason": "<b>evil</b>", "since": NOW, "failed_cycles": 1, "next_at": NOW + 60}
    page = render_status_page(StatusData.from_document(_document(q), DaemonState(started_at=NOW)), now=NOW)
    assert "<b>evil</b>" not in page
    assert "&lt;b&gt;evil&lt;/b&gt;" in page
