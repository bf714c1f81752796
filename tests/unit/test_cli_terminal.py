"""What the `syncd` command draws on a terminal (`syncd.cli.terminal`, with rich) and the plain lines it
prints elsewhere: the tables of `syncd status` and `syncd history`, and the apply's progress bar.

The terminal is rich's own (`force_terminal=True` on a string buffer, a fixed width); the progress bar reads
a fake clock, so its rate and time left are exact. `tests/unit/test_cli_imports.py` runs the commands on a
real pseudo-terminal and checks that only then rich is loaded.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import structlog
from rich.console import Console

from syncd.cli import terminal
from syncd.config.logs import configure_logging
from syncd.core.model import MemberStatus, Recorded
from syncd.reports.history import TABLE_HEADERS, TABLE_SAMPLE_ROWS, write_table
from syncd.reports.status import StatusReport, status_lines
from syncd.store import RunRecord

NOW = 1_800_000_000.0
OID = "4d90f551-8568-4935-821b-8cb9fa50ecd7"
MARKUP_UPN = "[bold red]boss[/bold red] :smile:@contoso.com"
ESCAPE_UPN = "\x1b[31mevil\x1b[0m@contoso.com"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal_console(out: io.StringIO, width: int) -> Console:
    """A colour terminal `width` columns wide, printing into `out`."""
    return Console(
        file=out, force_terminal=True, width=width, color_system="standard", markup=False, emoji=False
    )


def drawn(renderables: Any, width: int = 200) -> str:
    """What the command writes for `renderables` (tables and lines) on a colour terminal `width` wide."""
    out = io.StringIO()
    terminal.print_tables(terminal_console(out, width), renderables)
    return out.getvalue()


def plain(text: str) -> str:
    """`text` without its colour codes and cursor moves, each line's end trimmed."""
    return "\n".join(line.rstrip() for line in ANSI.sub("", text).replace("\r", "\n").splitlines())


def report(**changes: Any) -> StatusReport:
    values: dict[str, Any] = {
        "quarantine": None,
        "runs": [
            RunRecord(
                2, "cli", "full", False, NOW, NOW + 2.25, "failed", {"onboard_failed": 1, "failed": 1}, None
            ),
            RunRecord(
                1, "schedule", "incremental", True, NOW - 60, None, "running", {"planned_onboard": 3}, None
            ),
        ],
        "members": {"failed": 1, "active": 3},
        "phone_sources": {"teams": 2, "businessPhones": 1},
        "attention": [
            Recorded(
                OID,
                MemberStatus.FAILED,
                upn=MARKUP_UPN,
                detail="TN is already registered\x1b]0;pwned\x07",
                attempts=2,
                next_attempt_at=NOW + 600,
                phone_source="teams",
            ),
            Recorded("b2", MemberStatus.PENDING, upn=ESCAPE_UPN),
        ],
    } | changes
    return StatusReport(**values)


# -- syncd status --------------------------------------------------------------------------------------


def test_status_plain_lines_stay_as_scripts_read_them() -> None:
    lines = list(
        status_lines(report(quarantine="QUARANTINED since 2027-01-15 08:00:00 UTC (1 failed cycle)"))
    )
    assert lines == [
        "QUARANTINED since 2027-01-15 08:00:00 UTC (1 failed cycle)",
        "Last runs:",
        "    id  started (UTC)        kind             trigger   outcome        secs  changes",
        "     2  2027-01-15 08:00:00  full             cli       failed          2.2  "
        "failed 1, onboard_failed 1",
        "     1  2027-01-15 07:59:00  incremental dry  schedule  running           -  ",
        "Members: active 3, failed 1",
        "Agents' numbers from: teams 2, businessPhones 1",
        "Needing attention: 2",
        f"  failed   {OID}  {MARKUP_UPN}  attempts 2  next 2027-01-15 08:10:00  "
        "TN is already registered\\x1b]0;pwned\\x07  (agent's number from teams)",
        "  pending  b2  \\x1b[31mevil\\x1b[0m@contoso.com  attempts 0  next -  ",
    ]


def test_status_tables_on_a_terminal() -> None:
    out = drawn(terminal.status_tables(report(quarantine="QUARANTINED since then"), 200))
    text = plain(out)
    lines = text.splitlines()
    assert lines[0] == "QUARANTINED since then"
    assert lines[1] == "Last runs"
    assert re.fullmatch(r"id +started \(UTC\) +kind +trigger +outcome +secs +changes", lines[2])
    assert set(lines[3]) == {"─"}  # the rule under the header
    assert re.fullmatch(
        r" 2 +2027-01-15 08:00:00 +full +cli +failed +2\.2 +failed 1, onboard_failed 1", lines[4]
    )
    assert re.fullmatch(r" 1 +2027-01-15 07:59:00 +incremental dry +schedule +running +-", lines[5])
    assert "Members: active 3, failed 1" in lines
    assert "Agents' numbers from: teams 2, businessPhones 1" in lines
    assert "Needing attention: 2" in lines
    assert re.search(
        r"^status +object ID +UPN +attempts +next retry \(UTC\) +detail +number from$", text, re.M
    )
    # Colour: the quarantine in bold red, a failed outcome in red, a running one in cyan.
    assert "\x1b[1;31mQUARANTINED since then" in out
    assert "\x1b[1;31mfailed" in out
    assert "\x1b[36mrunning" in out


def test_status_tables_show_markup_and_escapes_from_data_as_text() -> None:
    out = drawn(terminal.status_tables(report(), 200))
    text = plain(out)
    assert MARKUP_UPN in text  # not bold, not red, no emoji: the characters as they are
    assert "😄" not in out
    assert "\\x1b[31mevil\\x1b[0m@contoso.com" in text
    assert "\\x1b]0;pwned\\x07" in text
    assert "\x1b]0;" not in out  # the only escapes are rich's own colours
    assert "\x07" not in out


def test_status_on_a_terminal_with_nothing_recorded() -> None:
    text = plain(
        drawn(terminal.status_tables(report(runs=[], members={}, phone_sources={}, attention=[]), 80))
    )
    assert text.splitlines() == ["No runs recorded yet.", "Members: none", "Needing attention: 0"]


# -- syncd history -------------------------------------------------------------------------------------


def history_row(index: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": index,
        "time": "2027-01-15T08:00:00Z",
        "action": "onboard",
        "outcome": "ok",
        "object_id": f"{index:08d}-0000-4000-8000-000000000000",
        "upn": f"user{index}@contoso.com",
        "phone_number": "+14155550100",
        "changed": None,
        "http_status": None,
        "error": None,
        "run_id": 3,
    } | changes


def test_history_tables_come_in_chunks_that_line_up() -> None:
    rows = [history_row(i) for i in range(TABLE_SAMPLE_ROWS * 2 + 5)]
    tables = list(terminal.history_tables(iter(rows), 300))
    assert [t.row_count for t in tables] == [TABLE_SAMPLE_ROWS, TABLE_SAMPLE_ROWS, 5]
    assert [t.show_header for t in tables] == [True, False, False]
    widths = [[c.width for c in t.columns] for t in tables]
    assert widths[0] == widths[1] == widths[2]
    assert [c.header for c in tables[0].columns] == list(TABLE_HEADERS.values())
    lines = plain(drawn(tables, 300)).splitlines()
    assert re.fullmatch(
        r"time \(UTC\) +action +outcome +object ID +UPN +phone number +changed +HTTP +error +run", lines[0]
    )
    assert set(lines[1]) == {"─"}
    body = lines[2:]
    assert len(body) == len(rows)
    assert body[0].startswith("2027-01-15 08:00:00  onboard  ok ")
    assert {line.index("user") for line in body[:10]} == {body[-1].index("user")}  # one column


def test_history_table_colours_outcomes_and_wraps_long_cells_to_the_terminal() -> None:
    error = "TN is already registered with a different Azure Object ID " * 3
    rows = [
        history_row(1, outcome="failed", http_status=400, error=error, upn=MARKUP_UPN),
        history_row(2, action="update", changed={"upn": {"from": "a@x.com", "to": ESCAPE_UPN}}),
    ]
    [table] = terminal.history_tables(rows, 160)
    out = drawn([table], width=160)
    text = plain(out)
    assert "\x1b[1;31mfailed" in out
    assert "\x1b[32mok" in out
    assert all(len(line) <= 160 for line in text.splitlines())
    assert MARKUP_UPN.split()[0] in text  # wrapped maybe, but the characters as they are
    assert "\\x1b[31mevil" in text
    assert "\x1b[31mevil" not in out


def test_history_table_writer_counts_rows_and_says_when_none_match() -> None:
    out = io.StringIO()
    write = terminal.history_table(out)
    assert write(iter([history_row(1), history_row(2)])) == 2
    assert "00000002-0000-4000-8000-000000000000" in out.getvalue()
    empty = io.StringIO()
    assert terminal.history_table(empty)(iter([])) == 0
    assert empty.getvalue() == "no operations match\n"
    plain_out = io.StringIO()
    assert write_table(iter([]), plain_out) == 0
    assert plain_out.getvalue() == empty.getvalue()  # the same words on a terminal and in a pipe


@pytest.mark.parametrize(
    ("natural", "width", "shrinkable", "fitted"),
    [
        pytest.param([10, 40, 5], 80, {1}, [10, 40, 5], id="fits"),
        pytest.param([10, 40, 5], 39, {1}, [10, 20, 5], id="the-wrapping-column-gives-way"),
        pytest.param([10, 40, 30], 60, {1, 2}, [10, 23, 23], id="the-widest-first"),
        pytest.param([10, 40, 5], 31, {1}, [10, 12, 5], id="down-to-the-floor"),
        pytest.param([10, 40, 5], 30, {1}, [10, 40, 5], id="no-fit-even-so-the-natural-widths"),
        pytest.param([10, 8, 5], 10, {1}, [10, 8, 5], id="a-narrow-column-is-not-widened"),
        pytest.param([30, 40], 20, set(), [30, 40], id="nothing-may-shrink"),
    ],
)
def test_fit_widths(natural: list[int], width: int, shrinkable: set[int], fitted: list[int]) -> None:
    assert terminal.fit_widths(natural, width, shrinkable=shrinkable) == fitted


# -- the progress bar ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_bar_shows_done_share_rate_and_time_left() -> None:
    clock, out = Clock(), io.StringIO()
    progress = terminal.ApplyProgress(out, clock=clock, force_terminal=True)
    progress.console.width = 120
    with progress:
        for done in range(1, 51):  # 50 writes, 10 a second
            clock.now += 0.1
            progress(done, 200)
        middle = plain(drawn([progress.progress.make_tasks_table(progress.progress.tasks)], width=120))
        for done in range(51, 201):
            clock.now += 0.1
            progress(done, 200)
    assert re.fullmatch(r"applying [━╸╺]+ +50/200  25% 10\.0/s eta 0:00:1[56] elapsed 0:00:0[45]", middle)
    final = plain(out.getvalue()).splitlines()[-1]
    assert re.fullmatch(r"applying ━+ 200/200 100% 10\.0/s eta 0:00:00 elapsed 0:00:(19|20)", final), final


def test_progress_bar_draws_nothing_before_the_first_write() -> None:
    out = io.StringIO()
    with terminal.ApplyProgress(out, force_terminal=True):
        pass  # a cycle with nothing to apply
    assert out.getvalue() == ""


def test_logs_go_above_the_bar_while_it_is_drawn_then_back() -> None:
    logs, out = io.StringIO(), io.StringIO()
    configure_logging(level="info", json=True, stream=logs)
    log = structlog.get_logger("test")
    try:
        with terminal.ApplyProgress(out, clock=Clock(), force_terminal=True) as progress:
            log.info("before.any.write")
            progress(1, 2)
            log.warning("sync.write_failed", upn=MARKUP_UPN)
            progress(2, 2)
        log.info("after.the.bar")
    finally:
        configure_logging(level="info", json=True)
    assert '"event": "before.any.write"' in logs.getvalue()
    assert '"event": "after.the.bar"' in logs.getvalue()
    assert "sync.write_failed" not in logs.getvalue()
    drawn_text = plain(out.getvalue())
    assert f'"upn": "{MARKUP_UPN}"' in drawn_text  # printed above the bar, markup as text
    assert drawn_text.index("sync.write_failed") < drawn_text.rindex("2/2")


def test_on_a_stream_that_is_no_terminal_rich_draws_no_bar() -> None:
    """The command never draws there (it passes no progress at all); rich itself would not animate either."""
    out = io.StringIO()
    with terminal.ApplyProgress(out, clock=Clock()) as progress:
        progress(1, 2)
        progress(2, 2)
    assert "\r" not in out.getvalue()
    assert "\x1b[" not in out.getvalue()
