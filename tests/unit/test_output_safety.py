"""Output that carries no attack: the pure helpers that make remote text safe for a terminal (`printable`), a
CSV cell safe for a spreadsheet (`csv_cell`), a key safe for a URL path (`path_segment`) and a value safe for
an OData `$filter` (`odata_string`); and the text of `syncd status` and the sync summary holding a UPN or an
error with terminal escapes.

(`syncd explain`'s text and the history table are checked with their other formatting, in test_explain.py
and test_history.py.)"""

from __future__ import annotations

import io
import json
from typing import cast

import pytest

from syncd.core.model import Action, AgentFields, Change, MemberStatus, Recorded
from syncd.core.text import BIDI_CONTROLS, escape_char, path_segment, printable
from syncd.cycle.apply import Failure
from syncd.cycle.engine import CycleResult
from syncd.reports.explain.gathering import odata_string
from syncd.reports.history import csv_cell
from syncd.reports.status import print_status
from syncd.reports.summary import describe_change, print_result
from syncd.store import RunRecord, Store

OID = "4d90f551-8568-4935-821b-8cb9fa50ecd7"
TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
EVIL_UPN = "\x1b[31mevil\x1b[0m@contoso.com"
SHOWN_UPN = "\\x1b[31mevil\\x1b[0m@contoso.com"
EVIL_ERROR = "TN is already registered\r\x1b]0;pwned\x07 \u202egnp.exe"


# printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("ada@contoso.com", "ada@contoso.com"),
        ("", ""),
        ("Zoë Ørsted-Łukasz 李小龍 👩🏽‍💻", "Zoë Ørsted-Łukasz 李小龍 👩🏽‍💻"),  # scripts, emoji and ZWJ stay
        (
            "\u05d3\u05e0\u05d4 \u200f(\u05de\u05db\u05d9\u05e8\u05d5\u05ea)",
            "דנה \u200f(מכירות)",
        ),  # RLM stays
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # OSC: sets the window title, ends with BEL
        ("\x9b31m", "\\x9b31m"),  # C1 CSI: one byte that starts a sequence on some terminals
        ("a\rb\bc\x00d\x7fe", "a\\x0db\\x08c\\x00d\\x7fe"),  # CR and BS overwrite, NUL, DEL
        ("one\ntwo\tthree", "one\\x0atwo\\x09three"),  # a value is one line: no fake lines, no tabs
        ("\x85next line", "\\x85next line"),  # NEL (C1)
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("invoice\u202egnp.exe", "invoice\\u202egnp.exe"),  # RLO: would read "invoiceexe.png"
        ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
        ("already \\x1b escaped", "already \\x1b escaped"),  # a backslash is kept as it is
    ],
)
def test_printable_escapes_controls_and_bidi_overrides_only(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown  # idempotent


def test_every_control_and_bidi_override_is_escaped_and_nothing_else_below_u3000() -> None:
    controls = (
        {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} | set(BIDI_CONTROLS) | {"\u2028", "\u2029"}
    )
    for code in range(0x3000):
        char = chr(code)
        expected = escape_char(char) if char in controls else char
        assert printable(char) == expected, hex(code)
    assert len(BIDI_CONTROLS) == 9


@pytest.mark.parametrize(
    ("char", "escape"), [("\x1b", "\\x1b"), ("\x00", "\\x00"), ("\x9b", "\\x9b"), ("\u202e", "\\u202e")]
)
def test_escape_char_spells_a_character_as_python_does(char: str, escape: str) -> None:
    assert escape_char(char) == escape


# path_segment


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (OID, OID),
        ("ada@contoso.com", "ada@contoso.com"),
        ("../../groups", "../../groups"),  # percent-encoded by msgraph-sdk: one segment
        ("...", "..."),
        ("a/b", "a/b"),
        ("", None),
        (".", None),
        ("..", None),
    ],
)
def test_path_segment_refuses_the_empty_key_and_dot_segments(key: str, expected: str | None) -> None:
    assert path_segment(key) == expected


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (OID, f"'{OID}'"),
        ("+14155550100", "'+14155550100'"),
        ("x' or 1 eq 1 or id eq 'y", "'x'' or 1 eq 1 or id eq ''y'"),  # stays one string
        ("", "''"),
    ],
)
def test_odata_string_quotes_a_filter_value(value: str, literal: str) -> None:
    assert odata_string(value) == literal


# csv_cell


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        (
            '=HYPERLINK("https://evil.example","x")@contoso.com',
            '\'=HYPERLINK("https://evil.example","x")@contoso.com',
        ),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("+14155550100", "+14155550100"),  # a plain E.164 number stays a number
        ("+", "'+"),
        ("+1 415 555 0100", "'+1 415 555 0100"),  # not plain E.164: could be read as a sum
        ("+١٢٣", "'+١٢٣"),  # digits are ASCII digits
        ("ada@contoso.com", "ada@contoso.com"),
        ("phone_number: +14155550100 -> +14155550199", "phone_number: +14155550100 -> +14155550199"),
        (" =1+1", " =1+1"),
        ("", ""),
        ("42", "42"),
        ("2026-11-27T11:59:29Z", "2026-11-27T11:59:29Z"),
    ],
)
def test_csv_cell_quotes_what_a_spreadsheet_would_run(cell: str, safe: str) -> None:
    assert csv_cell(cell) == safe


# syncd status and the sync summary


class FakeStore:
    """What `print_status` reads of a store, holding one member with a hostile UPN and error."""

    def get_value(self, key: str) -> str | None:
        return None

    def runs(self, *, limit: int = 10) -> list[RunRecord]:
        return [
            RunRecord(
                4, "cli", "full", False, 1_800_000_000.0, 1_800_000_002.0, "failed", {"failed": 1}, None
            )
        ]

    def count_by_status(self) -> dict[str, int]:
        return {"failed": 1}

    def count_by_phone_source(self) -> dict[str, int]:
        return {}

    def members_needing_attention(self) -> list[Recorded]:
        return [
            Recorded(
                OID, MemberStatus.FAILED, upn=EVIL_UPN, detail=EVIL_ERROR, attempts=2, next_attempt_at=1.8e9
            )
        ]

    def count_by_skip_reason(self) -> dict[str, int]:
        return {}

    def members_leaving(self) -> list[Recorded]:
        return []

    def iter_operations(self, **_filters: object) -> list[object]:
        return []


def test_status_text_shows_escapes_and_its_json_stays_exact() -> None:
    store = cast(Store, FakeStore())
    out = io.StringIO()
    assert print_status(store, as_json=False, runs=5, out=out) == 0
    text = out.getvalue()
    assert "\x1b" not in text
    assert "\r" not in text
    assert "\u202e" not in text
    assert f"  failed   {OID}  {SHOWN_UPN}  attempts 2" in text
    assert "TN is already registered\\x0d\\x1b]0;pwned\\x07 \\u202egnp.exe" in text

    document = io.StringIO()
    assert print_status(store, as_json=True, runs=5, out=document) == 0
    [member] = json.loads(document.getvalue())["attention"]
    assert (member["upn"], member["detail"]) == (EVIL_UPN, EVIL_ERROR)


def test_the_sync_summary_shows_escapes() -> None:
    evil = AgentFields(TENANT, "+14155550100", EVIL_UPN, None)
    result = CycleResult(
        run_id=4,
        kind="full",
        dry_run=True,
        error="Graph: \x1b[2Jcleared",
        failures=[Failure(OID, EVIL_UPN, Action.ONBOARD, EVIL_ERROR, "conflict")],
        changes=[Change(Action.ONBOARD, OID, evil, None)],
        ambiguous={OID: "two numbers \u202eowt"},
    )
    out = io.StringIO()
    print_result(result, out)
    text = out.getvalue()
    assert not {"\x1b", "\r", "\x07", "\u202e"} & set(text)
    assert "  error: Graph: \\x1b[2Jcleared" in text
    assert f"    + onboard  {OID}  {SHOWN_UPN} +14155550100" in text
    assert f"    onboard  {OID}  {SHOWN_UPN}  TN is already registered\\x0d" in text
    assert "two numbers \\u202eowt" in text


@pytest.mark.parametrize(
    "change",
    [
        Change(Action.ONBOARD, OID, AgentFields(TENANT, "+14155550100", EVIL_UPN, None), None),
        Change(
            Action.UPDATE,
            OID,
            AgentFields(TENANT, "+14155550100", EVIL_UPN, None),
            AgentFields(TENANT, "+14155550100", "ada@contoso.com", None),
            fields=("upn",),
        ),
        Change(Action.OFFBOARD, OID, None, AgentFields(TENANT, "+14155550100", EVIL_UPN, None)),
    ],
)
def test_a_planned_change_line_shows_escapes(change: Change) -> None:
    line = describe_change(change)
    assert "\x1b" not in line
    assert SHOWN_UPN in line
