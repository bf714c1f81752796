"""The real `syncd` command on a terminal (a pseudo-terminal, `tests/terminal.py`), against both emulators:
`sync` draws a progress bar while it applies, `status` and `history` draw tables (rich); the same commands
piped print the plain lines scripts read. Logs are left at their default format (`auto`: console on a
terminal).
"""

from __future__ import annotations

import re
import sys

from tests.e2e.conftest import World, clean_env
from tests.terminal import run_on_terminal

MARKUP = "[bold]boss[/bold]"


def on_terminal(world: World, *args: str) -> tuple[int, str, str]:
    """(exit code, what was drawn raw, the same without colours) for `syncd <args>` with stdout and stderr on
    a terminal."""
    shown = run_on_terminal(
        [sys.executable, "-m", "syncd", "--config", str(world.config), *args],
        env=clean_env({"SYNCD_LOG__FORMAT": "auto"}),
        cwd=world.config.parent,
    )
    return shown.code, shown.output, shown.text


def test_sync_status_and_history_draw_on_a_terminal_and_print_plain_lines_in_a_pipe(world: World) -> None:
    for index in range(30):
        world.add_user(f"user{index}", f"+1 415 555 {index:04d}")
    boss = world.add_user(MARKUP, "+1 415 555 0999")

    code, _, text = on_terminal(world, "sync")
    assert code == 0, text
    assert len(world.agents()) == 31  # what SmartCommunicator holds: every write went through
    bar = [line for line in text.splitlines() if line.startswith("applying ")]
    assert bar, text
    assert re.fullmatch(r"applying [━╸╺]+ 31/31 100% (\S+/s )?eta 0:00:00 elapsed \d:\d\d:\d\d", bar[-1])
    assert "[info     ] sync.cycle" in text  # the console log, printed above the bar
    assert text.index("sync.cycle") < text.rindex("31/31")
    assert "syncd sync: run 1 (incremental)" in text

    code, drawn, text = on_terminal(world, "status")
    assert code == 0, text
    lines = text.splitlines()
    header = lines.index("Last runs") + 1
    assert re.fullmatch(r"id +started \(UTC\) +kind +trigger +outcome +secs +changes", lines[header])
    assert set(lines[header + 1]) == {"─"}
    assert re.match(r" 1 +\S+ \S+ +incremental +cli +ok +\d+\.\d +onboard_ok 31", lines[header + 2])
    assert "\x1b[32mok" in drawn  # the outcome in green
    assert "Members: active 31" in lines
    assert "Needing attention: 0" in lines

    code, drawn, text = on_terminal(world, "history")
    assert code == 0, text
    lines = [line for line in text.splitlines() if line]
    assert re.fullmatch(r"time \(UTC\) +action +outcome +object ID +UPN +phone number .*run", lines[0])
    assert set(lines[1]) == {"─"}
    rows = [line for line in lines[2:] if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert len(rows) == 31
    assert all(" onboard " in row and " ok " in row for row in rows)
    (row,) = [line for line in rows if boss in line]
    assert f"{MARKUP}@contoso.com" in row  # markup from data shown as it is, never applied

    piped = world.run("history")
    assert piped.code == 0
    assert re.match(r"time \(UTC\) {11}action {3}outcome  object ID {29}UPN ", piped.stdout)
    assert "\x1b" not in piped.stdout
    assert "─" not in piped.stdout
    assert len(piped.stdout.splitlines()) == 32  # the header and 31 rows, as before
    status = world.run("status")
    assert status.stdout.splitlines()[:2] == [
        "Last runs:",
        "    id  started (UTC)        kind             trigger   outcome        secs  changes",
    ]
