"""Notifications, the pure parts: the deduplicating state machine, the events' facts, both payloads."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from syncd.config.settings import NotifySettings
from syncd.core.model import MemberStatus, Recorded
from syncd.core.reconcile import GuardStop
from syncd.core.setting_changes import SettingChange
from syncd.cycle.engine import CycleResult
from syncd.service.notify import (
    STATE_KEY,
    TITLES,
    Attention,
    CycleFacts,
    Event,
    Notifier,
    NotifyState,
    SummaryFacts,
    advance,
    cycle_facts,
    describe_duration,
    events_after_cycle,
    gather_summary,
    json_payload,
    operations_of_counts,
    payload,
    retry_after_s,
    summary_event,
    teams_payload,
    transition,
)
from syncd.store import RunRecord

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOiJ4IiwiZXhwIjoxfQ.c2lnbmF0dXJlLXZhbHVl"
HOST = "syncd-host-1"


def cycle(outcome: str, *, at: float = T0, **more: Any) -> CycleFacts:
    values: dict[str, Any] = {"outcome": outcome, "at": at, "started_at": at - 10, "run_id": 7}
    if outcome == "error":
        values["error"] = "Graph is unavailable: no answer after 4 attempts"
    if outcome == "guard":
        values |= {
            "guard": "max_offboard",
            "guard_message": "30 offboardings exceed 25",
            "planned_offboard": 30,
        }
    return CycleFacts(**(values | more))


IDLE = NotifyState()
FAILING = NotifyState(failing_since=T0 - 3600, failing_cycles=4, last_error="SmartCommunicator is down")
GUARDED = NotifyState(guard="max_offboard")


# (name, previous state, cycle facts, expected state, expected events)
TABLE: list[tuple[str, NotifyState, CycleFacts, NotifyState, list[str]]] = [
    ("ok stays quiet", IDLE, cycle("ok"), IDLE, []),
    ("some people failing is not a systemic failure", IDLE, cycle("failed"), IDLE, []),
    (
        "first failing cycle quarantines",
        IDLE,
        cycle("error"),
        NotifyState(T0 - 10, 1, "Graph is unavailable: no answer after 4 attempts"),
        ["quarantined"],
    ),
    (
        "further failing cycles only count",
        FAILING,
        cycle("error", error="still down"),
        NotifyState(T0 - 3600, 5, "still down"),
        [],
    ),
    ("recovery after failing", FAILING, cycle("ok"), IDLE, ["recovered"]),
    ("a cycle with per-person failures recovers too", FAILING, cycle("failed"), IDLE, ["recovered"]),
    (
        "a guard stop after failing recovers and reports the guard",
        FAILING,
        cycle("guard"),
        GUARDED,
        ["recovered", "guard_stopped"],
    ),
    ("a guard stop is reported", IDLE, cycle("guard"), GUARDED, ["guard_stopped"]),
    ("the same guard again is not", GUARDED, cycle("guard"), GUARDED, []),
    (
        "another guard is",
        GUARDED,
        cycle("guard", guard="empty_group"),
        NotifyState(guard="empty_group"),
        ["guard_stopped"],
    ),
    ("an ok cycle ends the run of guard stops", GUARDED, cycle("ok"), IDLE, []),
    ("a failed cycle ends it too", GUARDED, cycle("failed"), IDLE, []),
    (
        "a failing cycle during guard stops quarantines and forgets the guard",
        GUARDED,
        cycle("error"),
        NotifyState(T0 - 10, 1, "Graph is unavailable: no answer after 4 attempts"),
        ["quarantined"],
    ),
    (
        "a guard already notified is notified again after a recovery",
        NotifyState(failing_since=T0 - 60, failing_cycles=1, last_error="x", guard=None),
        cycle("guard"),
        GUARDED,
        ["recovered", "guard_stopped"],
    ),
    ("an interrupted cycle changes nothing while failing", FAILING, cycle("interrupted"), FAILING, []),
    ("an interrupted cycle changes nothing while guarded", GUARDED, cycle("interrupted"), GUARDED, []),
]


@pytest.mark.parametrize(
    ("previous", "facts", "expected", "kinds"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE]
)
def test_transition(
    previous: NotifyState, facts: CycleFacts, expected: NotifyState, kinds: list[str]
) -> None:
    state, events = transition(previous, facts)
    assert state == expected
    assert [event.kind for event in events] == kinds


class MemoryKV:
    """The store's key/value table, in memory; a new instance over the same dict is another process."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get_value(self, key: str) -> str | None:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value


def test_a_failure_lasting_many_cycles_and_processes_sends_one_quarantined_then_one_recovered() -> None:
    table: dict[str, str] = {}
    sent: list[str] = []
    for i in range(5):  # cron: every `syncd sync` is a new process reading the stored state
        sent += [e.kind for e in advance(MemoryKV(table), cycle("error", at=T0 + 60 * i))]
    assert sent == ["quarantined"]
    assert NotifyState.from_json(table[STATE_KEY]).failing_cycles == 5
    recovered = advance(MemoryKV(table), cycle("ok", at=T0 + 600))
    assert [e.kind for e in recovered] == ["recovered"]
    assert recovered[0].fact("failed_cycles") == 5
    assert recovered[0].fact("failing_for_s") == 610.0  # from the first failing cycle's start
    assert advance(MemoryKV(table), cycle("ok", at=T0 + 700)) == ()


def test_the_state_is_written_only_when_it_changes() -> None:
    table: dict[str, str] = {}
    advance(MemoryKV(table), cycle("ok"))
    assert table == {}


@pytest.mark.parametrize(
    "raw", [None, "", "not json", "[1, 2]", '{"failing_since": "yesterday", "guard": 3}']
)
def test_unreadable_state_is_the_initial_state(raw: str | None) -> None:
    assert NotifyState.from_json(raw) == NotifyState()


def test_state_round_trips() -> None:
    state = NotifyState(failing_since=T0, failing_cycles=3, last_error="down", guard="empty_group")
    assert NotifyState.from_json(state.to_json()) == state


def result(**changes: Any) -> CycleResult:
    value = CycleResult(run_id=12, kind="full", dry_run=False, duration_s=4.0)
    for key, item in changes.items():
        setattr(value, key, item)
    return value


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "ok"),
        ({"exit_code": 1, "deferred": 2}, "failed"),
        ({"error": "stopped starting writes: throttled", "exit_code": 1}, "error"),
        ({"error": "bad secret", "exit_code": 2}, "error"),
        ({"stopped_by": GuardStop("empty_group", "group g is empty"), "exit_code": 3}, "guard"),
    ],
)
def test_cycle_facts_of_a_result(changes: dict[str, Any], outcome: str) -> None:
    facts = cycle_facts(result(planned={"onboard": 1, "update": 7, "offboard": 30}, **changes), now=T0)
    assert facts.outcome == outcome
    assert (facts.at, facts.started_at, facts.run_id, facts.kind) == (T0, T0 - 4.0, 12, "full")
    assert (facts.planned_offboard, facts.planned_update) == (30, 7)
    assert facts.settings_changed is None


def test_cycle_facts_name_the_settings_that_changed() -> None:
    region = SettingChange("graph.default_region", "NO", "DK")
    facts = cycle_facts(result(settings_changed=(region,)), now=T0)
    assert facts.settings_changed == 'graph.default_region "NO" -> "DK"'


def test_dry_runs_cause_no_events_and_touch_no_state() -> None:
    table: dict[str, str] = {}
    assert events_after_cycle(MemoryKV(table), result(dry_run=True, error="down"), now=T0) == ()
    assert table == {}


def test_a_broken_store_causes_no_events_and_no_exception() -> None:
    class Broken(MemoryKV):
        def get_value(self, key: str) -> str | None:
            raise RuntimeError("database is locked")

    assert events_after_cycle(Broken({}), result(error="down"), now=T0) == ()


# -- the facts of each event -------------------------------------------------------------------------


def only(events: Sequence[Event]) -> Event:
    assert len(events) == 1
    return events[0]


def facts_of(event: Event) -> dict[str, Any]:
    return {fact.key: fact.value for fact in event.facts}


def test_quarantined_facts() -> None:
    event = only(transition(IDLE, cycle("error", kind="full"))[1])
    assert event.title == TITLES["quarantined"]
    assert "Graph is unavailable" in event.text
    assert facts_of(event) == {
        "error": "Graph is unavailable: no answer after 4 attempts",
        "failing_since": "2027-01-15T07:59:50Z",
        "run_id": 7,
        "kind": "full",
    }


def test_recovered_facts() -> None:
    event = transition(FAILING, cycle("ok", at=T0 + 1503))[1][0]
    assert facts_of(event) == {
        "failing_for_s": 5103.0,
        "failed_cycles": 4,
        "failing_since": "2027-01-15T07:00:00Z",
        "last_error": "SmartCommunicator is down",
        "outcome": "ok",
        "run_id": 7,
    }
    assert "failing for 1 h 25 min (4 failed cycles)" in event.text
    assert {fact.label: fact.shown for fact in event.facts}["Failing for"] == "1 h 25 min"


def test_guard_stopped_facts() -> None:
    event = only(transition(IDLE, cycle("guard"))[1])
    assert facts_of(event) == {
        "guard": "max_offboard",
        "planned_offboard": 30,
        "planned_update": 0,
        "planned_relink": 0,
        "run_id": 7,
        "kind": "incremental",
    }
    assert "30 offboardings exceed 25" in event.text
    assert "--force" in event.text


def test_a_max_update_stop_is_notified_with_the_updates_it_held_back() -> None:
    message = (
        "600 updates exceed sync.max_update = 500; nothing was changed. Changed fields: phone number 600. "
        'Settings that shape desired state changed since the last cycle: graph.default_region "NO" -> "DK"'
    )
    changed = 'graph.default_region "NO" -> "DK"'
    stopped = cycle(
        "guard",
        guard="max_update",
        guard_message=message,
        planned_offboard=0,
        planned_update=600,
        settings_changed=changed,
    )
    event = only(transition(GUARDED, stopped)[1])  # another guard than the one notified: told again
    assert event.kind == "guard_stopped"
    assert facts_of(event)["guard"] == "max_update"
    assert facts_of(event)["planned_update"] == 600
    # A fact of its own: a long message is cut in the text, the changed setting never is.
    assert facts_of(event)["settings_changed"] == changed
    assert "The max_update guard stopped a cycle: 600 updates exceed sync.max_update = 500" in event.text
    assert 'graph.default_region "NO" -> "DK"' in event.text


def test_secrets_in_an_error_never_reach_an_event() -> None:
    error = f"rejected token {JWT}; header was Bearer abcdefghijklmnopq"
    event = only(transition(IDLE, cycle("error", error=error))[1])
    for form in ("teams", "json"):
        text = json.dumps(payload(event, form=form, host=HOST))
        assert JWT not in text
        assert "abcdefghijklmnopq" not in text
        assert "rejected token ***" in text


def test_long_errors_are_cut() -> None:
    event = only(transition(IDLE, cycle("error", error="x" * 5000))[1])
    assert len(str(event.fact("error"))) == 500


def summary(people: int = 2, runs: dict[str, int] | None = None) -> SummaryFacts:
    return SummaryFacts(
        since=T0 - 86400,
        until=T0,
        runs={"ok": 94, "failed": 2} if runs is None else runs,
        operations={"onboard": {"ok": 3, "failed": 1}, "offboard": {"already_gone": 1}},
        members={"active": 150, "failed": 1, "skipped": 48},
        attention=[
            Attention(f"oid-{i}", f"user{i}@contoso.com", "failed", 2, "TN is already registered")
            for i in range(people)
        ],
    )


def test_daily_summary_facts() -> None:
    event = summary_event(summary())
    assert event.kind == "daily_summary"
    assert facts_of(event) == {
        "runs": {"failed": 2, "ok": 94},
        "operations": {"offboard_already_gone": 1, "onboard_failed": 1, "onboard_ok": 3},
        "members": {"active": 150, "failed": 1, "skipped": 48},
        "attention": 2,
        "since": "2027-01-14T08:00:00Z",
    }
    assert event.details == (
        ("user0@contoso.com", "failed, attempts 2: TN is already registered"),
        ("user1@contoso.com", "failed, attempts 2: TN is already registered"),
    )
    assert "96 runs and 5 operations; 2 people need attention" in event.text
    shown = {fact.label: fact.shown for fact in event.facts}
    assert shown["Runs"] == "failed 2, ok 94"
    assert shown["Operations"] == "offboard already gone 1, onboard failed 1, onboard ok 3"


def test_daily_summary_names_ten_people_and_counts_the_rest() -> None:
    event = summary_event(summary(people=13))
    assert len(event.details) == 11
    assert event.details[-1] == ("...", "and 3 more (`syncd status`)")
    assert event.fact("attention") == 13


def test_a_day_without_runs_says_so() -> None:
    assert "No cycle ran" in summary_event(summary(runs={})).text


@dataclass
class FakeSummarySource:
    """What the daily summary reads from the store, newest run first, honouring `limit`."""

    all_runs: list[RunRecord]
    statuses: dict[str, int] = field(default_factory=dict)
    attention: list[Recorded] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)

    def runs(self, *, limit: int = 10) -> list[RunRecord]:
        self.limits.append(limit)
        return self.all_runs[:limit]

    def count_by_status(self) -> dict[str, int]:
        return self.statuses

    def members_needing_attention(self) -> list[Recorded]:
        return self.attention


def run_record(number: int, started_at: float, outcome: str = "ok", *, dry_run: bool = False) -> RunRecord:
    counts = {"planned_onboard": 1, "onboard_ok": 1, "skipped": 4, "failed": 0}
    return RunRecord(
        number, "schedule", "incremental", dry_run, started_at, started_at + 1, outcome, counts, None
    )


def test_gather_summary_counts_the_last_24_hours_without_dry_runs() -> None:
    runs = [run_record(n, T0 - 60 * (3000 - n)) for n in range(3000, 0, -1)]  # one a minute, 50 hours
    runs[0] = run_record(3000, T0 - 30, "failed")
    runs[1] = run_record(2999, T0 - 90, dry_run=True)
    failed = Recorded("oid-1", MemberStatus.FAILED, None, upn="a@contoso.com", detail="conflict", attempts=3)
    source = FakeSummarySource(runs, {"active": 10, "failed": 1}, [failed])
    facts = gather_summary(source, now=T0)
    assert facts.runs == {"ok": 1439, "failed": 1}  # 1441 runs in the window, one of them a dry run
    assert facts.operations == {"onboard": {"ok": 1440}}
    assert facts.members == {"active": 10, "failed": 1}
    assert facts.attention == (Attention("oid-1", "a@contoso.com", "failed", 3, "conflict"),)
    assert source.limits == [500, 2000]  # read further back until the window was covered


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"onboard_ok": 2, "planned_onboard": 3, "failed": 1, "skipped": 4}, {"onboard": {"ok": 2}}),
        (
            {"offboard_already_gone": 1, "update_failed": 2},
            {"offboard": {"already_gone": 1}, "update": {"failed": 2}},
        ),
        ({"onboard_ok": 0, "unchanged": 4, "deferred": 1}, {}),
    ],
)
def test_operations_of_counts(counts: dict[str, int], expected: dict[str, dict[str, int]]) -> None:
    assert operations_of_counts(counts) == expected


# -- payloads ---------------------------------------------------------------------------------------

COLORS = {
    "quarantined": "attention",
    "recovered": "good",
    "guard_stopped": "warning",
    "daily_summary": "accent",
}


def every_event() -> list[Event]:
    return [
        only(transition(IDLE, cycle("error"))[1]),
        only(transition(FAILING, cycle("ok"))[1]),
        only(transition(IDLE, cycle("guard"))[1]),
        summary_event(summary()),
    ]


@pytest.mark.parametrize("event", every_event(), ids=lambda e: e.kind)
def test_teams_payload_is_an_adaptive_card_message(event: Event) -> None:
    message = teams_payload(event, host=HOST)
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, text, facts, *rest = card["body"]
    assert title == {
        "type": "TextBlock",
        "text": TITLES[event.kind],
        "weight": "bolder",
        "size": "medium",
        "color": COLORS[event.kind],
        "wrap": True,
    }
    assert text == {"type": "TextBlock", "text": event.text, "wrap": True}
    assert facts["type"] == "FactSet"
    assert facts["facts"][-1] == {"title": "Host", "value": HOST}
    for fact in facts["facts"] + [f for block in rest for f in block["facts"]]:
        assert set(fact) == {"title", "value"}
        assert isinstance(fact["title"], str)
        assert isinstance(fact["value"], str)  # Teams renders strings only
    assert [f["title"] for f in facts["facts"][:-1]] == [fact.label for fact in event.facts]
    json.dumps(message)  # serialisable as is


def test_teams_daily_summary_lists_people_in_a_second_fact_set() -> None:
    card = teams_payload(summary_event(summary()), host=HOST)["attachments"][0]["content"]
    assert card["body"][3] == {
        "type": "FactSet",
        "facts": [
            {"title": "user0@contoso.com", "value": "failed, attempts 2: TN is already registered"},
            {"title": "user1@contoso.com", "value": "failed, attempts 2: TN is already registered"},
        ],
    }


@pytest.mark.parametrize("event", every_event(), ids=lambda e: e.kind)
def test_json_payload(event: Event) -> None:
    document = json_payload(event, host=HOST)
    assert set(document) == {"event", "title", "text", "facts", "details", "time", "source", "host"}
    assert document["event"] == event.kind
    assert document["title"] == TITLES[event.kind]
    assert document["source"] == "syncd"
    assert document["host"] == HOST
    assert document["time"] == "2027-01-15T08:00:00Z"
    assert document["facts"] == {fact.key: fact.value for fact in event.facts}
    assert json.loads(json.dumps(document)) == document


def test_payload_picks_the_format() -> None:
    event = every_event()[0]
    assert payload(event, form="teams", host=HOST)["type"] == "message"
    assert payload(event, form="json", host=HOST)["event"] == "quarantined"


# -- small pure helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (45.4, "45 s"),
        (60, "1 min"),
        (1503, "25 min 3 s"),
        (7500, "2 h 5 min"),
        (7200, "2 h"),
        (273600, "3 d 4 h"),
        (-5, "0 s"),
    ],
)
def test_describe_duration(seconds: float, text: str) -> None:
    assert describe_duration(seconds) == text


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("12", 12.0),
        ("soon", None),
        ("Fri, 15 Jan 2027 08:00:30 GMT", 30.0),
        ("Fri, 15 Jan 2027 07:00:00 GMT", 0.0),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert retry_after_s(header, now=T0) == expected


async def test_httpx_request_logs_never_show_the_webhook_url(caplog: pytest.LogCaptureFixture) -> None:
    url = "https://prod-01.westeurope.logic.azure.com:443/workflows/SECRETPATH/invoke?sig=SECRETSIG"
    caplog.set_level(logging.DEBUG)
    async with Notifier(NotifySettings(webhook_url=url)):
        # What httpx logs for every request, with its own normalised URL (the default port dropped).
        logging.getLogger("httpx").info('HTTP Request: %s %s "%s"', "POST", httpx.URL(url), "HTTP/1.1 202")
        logging.getLogger("httpx").info("HTTP Request: GET https://other.example/ok")
    assert "SECRET" not in caplog.text
    assert "other.example/ok" in caplog.text
