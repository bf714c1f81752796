"""What the `syncd` command draws on a terminal, with rich: the progress bar of a long apply (done/total,
share, rate and time left), and the tables of `syncd status` and `syncd history`.

Only a command whose output is a terminal imports this module (`syncd.cli.main` checks `isatty` first), so
`syncd --help`, scripts and pipes never load it (`tests/unit/test_cli_imports.py`); there the reports'
plain writers print the same cells as plain lines, the form scripts and tests read. rich also honours
`NO_COLOR` and `TERM=dumb` (no colour, no cursor movement).

The cells are the reports' own (`syncd.reports.status.run_cells`, `syncd.reports.history.table_cells`),
already passed through `printable`, so control characters from remote data are shown as escapes. Each is
handed to rich as a `Text`, never as a markup string, and the consoles have markup, emoji and highlighting
off: a UPN holding "[bold]" or ":smile:" is shown as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from itertools import islice
from types import TracebackType
from typing import Any, TextIO, cast

import structlog
from rich import box
from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from syncd.reports.history import (
    RIGHT_ALIGNED,
    TABLE_HEADERS,
    TABLE_SAMPLE_ROWS,
    table_cells,
    table_widths,
)
from syncd.reports.status import (
    ATTENTION_HEADERS,
    RUN_HEADERS,
    StatusReport,
    attention_cells,
    counts_text,
    pending_lines,
    run_cells,
    settings_changed_text,
)

OUTCOME_STYLES = {
    "ok": "green",
    "adopted": "green",
    "already_gone": "green",
    "failed": "bold red",
    "error": "bold red",
    "pending": "yellow",
    "skipped": "yellow",
    "guard": "bold yellow",
    "interrupted": "yellow",
    "running": "cyan",
}
"""The colour of an outcome (of a run or an operation) in the tables; any other is drawn plain."""

WRAPPED_COLUMNS = frozenset({"upn", "changed", "error", "detail", "changes"})
"""Columns whose long cells wrap inside the column when the terminal is too narrow; the others never wrap."""

SHRINK_FLOOR = 12
"""The narrowest a wrapping column is made to fit the terminal."""

WRAP_CAP = 60
"""The widest a wrapping column of `syncd status` grows (the history's own caps: `TABLE_MAX_WIDTH`)."""

COLUMN_GAP = 2
"""Characters between two columns (a cell's right padding and the blank divider)."""


def console(stream: TextIO, *, force_terminal: bool | None = None) -> Console:
    """A rich console on `stream` that prints text as it is: no markup, no emoji codes, no highlighting.
    `force_terminal` draws as on a terminal whatever `stream` is (the tests)."""
    return Console(file=stream, markup=False, emoji=False, highlight=False, force_terminal=force_terminal)


# -- the progress bar ----------------------------------------------------------------------------------


class RateColumn(ProgressColumn):
    """Writes per second, as rich estimates them over the last 30 s."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")


class ApplyProgress:
    """The `progress(done, total)` of `Engine.run_cycle`: a bar that appears at the apply's first write.

    While it is drawn, the log events (on the same terminal) are printed above it instead of through it.
    `close` (or leaving the `with` block) leaves the final bar on the screen and puts the logs back.
    `clock` is rich's time source (monotonic seconds) and `force_terminal` draws on any stream: both for
    the tests.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] | None = None,
        force_terminal: bool | None = None,
    ) -> None:
        self.console = console(stream, force_terminal=force_terminal)
        # A long log line stays one line (the terminal folds it), as without a bar.
        self.console.soft_wrap = True
        self._stream = stream
        self.progress = Progress(
            TextColumn("applying"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            console=self.console,
            get_time=clock,
            # structlog holds the stream it was configured with, so a redirect of sys.stderr would miss the
            # logs: `_route_logs` sends them through the console instead.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task: TaskID | None = None
        self._logger_factory: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._task is None:
            self._route_logs()
            self.progress.start()
            self._task = self.progress.add_task("apply", total=total)
        self.progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._task is not None:
            self.progress.refresh()
            self.progress.stop()
            self._task = None
        if self._logger_factory is not None:
            structlog.configure(logger_factory=self._logger_factory)
            self._logger_factory = None

    def __enter__(self) -> ApplyProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _route_logs(self) -> None:
        """Print log events through the console while the bar is drawn (it redraws itself below them)."""
        self._logger_factory = structlog.get_config()["logger_factory"]
        above = cast(TextIO, FileProxy(self.console, self._stream))  # a TextIOBase, not typed as TextIO
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(above))


# -- tables ------------------------------------------------------------------------------------------


def fit_widths(natural: Sequence[int], width: int, *, shrinkable: Collection[int]) -> list[int]:
    """Pure: column widths for a table `width` characters wide (`table_width`): the natural widths when they
    fit, else the `shrinkable` columns (their long cells wrap) give up width, the widest first, down to
    `SHRINK_FLOOR` (or their natural width, when smaller). When even that does not fit, the natural widths:
    the table is then wider than the terminal, which folds its lines as it folds the plain table's, and
    cells squeezed for nothing would only add lines. No cell is cut to fit the terminal."""
    widths = list(natural)
    excess = table_width(widths) - width
    while excess > 0:
        candidates = [i for i in shrinkable if widths[i] > SHRINK_FLOOR]
        if not candidates:
            return list(natural)
        widest = max(candidates, key=lambda i: (widths[i], -i))
        widths[widest] -= 1
        excess -= 1
    return widths


def natural_widths(headers: Sequence[str], rows: Iterable[Sequence[str]], cap: int) -> list[int]:
    """Pure: each column's widest header or cell, at most `cap` (longer cells wrap)."""
    widths = [len(header) for header in headers]
    for cells in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, cells, strict=True)]
    return [min(width, cap) for width in widths]


def table_width(widths: Sequence[int]) -> int:
    """Pure: the characters a row of columns this wide takes, with the space between them."""
    return sum(widths) + COLUMN_GAP * max(len(widths) - 1, 0)


def grid(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    widths: Sequence[int],
    wrapped: Collection[int],
    right: Collection[int] = (),
    outcome_at: int | None = None,
    show_header: bool = True,
    title: str | None = None,
) -> Table:
    """A table of plain cells with fixed column widths: a rule under the header, no borders, columns two
    spaces apart; the `wrapped` columns fold long cells, the others never wrap (a later history chunk's
    longer cell is cut with an ellipsis, as the plain table cuts it); the cell at `outcome_at` coloured by
    `OUTCOME_STYLES`."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        show_header=show_header,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
    )
    for index, header in enumerate(headers):
        table.add_column(
            header,
            width=widths[index],
            justify="right" if index in right else "left",
            no_wrap=index not in wrapped,
            overflow="fold" if index in wrapped else "ellipsis",
        )
    for cells in rows:
        table.add_row(
            *(
                Text(cell, style=OUTCOME_STYLES.get(cell, "") if index == outcome_at else "")
                for index, cell in enumerate(cells)
            )
        )
    return table


def print_tables(out: Console, tables: Iterable[Any]) -> None:
    """Print `tables` (and lines) on `out`; a table wider than the terminal is printed whole (the terminal
    then folds its lines) rather than squeezed."""
    for table in tables:
        needed = table_width([c.width or 0 for c in table.columns]) if isinstance(table, Table) else 0
        if needed > out.width:
            out = Console(
                file=out.file,
                width=needed,
                force_terminal=out.is_terminal,
                color_system=out.color_system,  # type: ignore[arg-type]  # the name it was made with
                markup=False,
                emoji=False,
                highlight=False,
            )
        out.print(table, crop=False)


# -- syncd status --------------------------------------------------------------------------------------


def status_tables(report: StatusReport, width: int) -> list[Any]:
    """`syncd status` drawn for a terminal `width` columns wide: the quarantine, the runs, members and
    number sources, and who needs attention."""
    parts: list[Any] = []
    if report.quarantine is not None:
        parts.append(Text(report.quarantine, style="bold red"))
    if report.runs:
        runs = [run_cells(run) for run in report.runs]
        parts.append(
            _fitted(RUN_HEADERS, runs, width, title="Last runs", right={"id", "secs"}, outcome="outcome")
        )
        for run in report.runs:
            changed = settings_changed_text(run)
            if changed:
                parts.append(Text(f"Run {run.id}: {changed}", style="yellow"))
    else:
        parts.append(Text("No runs recorded yet.", style="italic"))
    parts.append(_labelled("Members", counts_text(report.members) or "none"))
    if report.phone_sources:
        parts.append(_labelled("Agents' numbers from", counts_text(report.phone_sources, sort=False)))
    parts.append(_labelled("Needing attention", str(len(report.attention))))
    if report.attention:
        people = [attention_cells(member) for member in report.attention]
        parts.append(_fitted(ATTENTION_HEADERS, people, width, right={"attempts"}, outcome="status"))
    parts.extend(Text(line) for line in pending_lines(report))
    return parts


def print_status(report: StatusReport, stream: TextIO, *, force_terminal: bool | None = None) -> int:
    """Draw `syncd status` on `stream` (a terminal); the exit code."""
    out = console(stream, force_terminal=force_terminal)
    print_tables(out, status_tables(report, out.width))
    return 0


# -- syncd history -------------------------------------------------------------------------------------


def history_tables(rows: Iterable[dict[str, Any]], width: int) -> Iterator[Table]:
    """History rows drawn for a terminal `width` columns wide, as tables of up to `TABLE_SAMPLE_ROWS` rows,
    the header on the first.

    Lazy, like the plain table: an export of the whole history is drawn a chunk at a time. The column
    widths come from the first chunk (`table_widths`), fitted to `width`, so the chunks line up.
    """
    iterator = iter(rows)
    chunk = [table_cells(row) for row in islice(iterator, TABLE_SAMPLE_ROWS)]
    if not chunk:
        return
    columns = list(TABLE_HEADERS)
    natural = table_widths(chunk)
    wrapped = {i for i, column in enumerate(columns) if column in WRAPPED_COLUMNS}
    widths = fit_widths([natural[c] for c in columns], width, shrinkable=wrapped)
    right = {i for i, column in enumerate(columns) if column in RIGHT_ALIGNED}
    first = True
    while chunk:
        yield grid(
            list(TABLE_HEADERS.values()),
            [[cells[column] for column in columns] for cells in chunk],
            widths=widths,
            wrapped=wrapped,
            right=right,
            outcome_at=columns.index("outcome"),
            show_header=first,
        )
        first = False
        chunk = [table_cells(row) for row in islice(iterator, TABLE_SAMPLE_ROWS)]


def history_table(
    stream: TextIO, *, force_terminal: bool | None = None
) -> Callable[[Iterable[dict[str, Any]]], int]:
    """The `table` writer of `run_history` for a terminal: rich tables, or "no operations match"."""

    def write(rows: Iterable[dict[str, Any]]) -> int:
        out = console(stream, force_terminal=force_terminal)
        count = 0
        for table in history_tables(rows, out.width):
            print_tables(out, [table])
            count += table.row_count
        if not count:
            out.print("no operations match")
        return count

    return write


# -- helpers -------------------------------------------------------------------------------------------


def _fitted(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    right: Collection[str],
    outcome: str,
    title: str | None = None,
) -> Table:
    """A `grid` of these rows with widths fitted to `width` (long UPNs, details and changes wrap)."""
    wrapped = {i for i, header in enumerate(headers) if header.lower() in WRAPPED_COLUMNS}
    natural = natural_widths(headers, rows, cap=WRAP_CAP)
    widths = fit_widths(natural, width, shrinkable=wrapped)
    return grid(
        headers,
        rows,
        widths=widths,
        wrapped=wrapped,
        right={i for i, header in enumerate(headers) if header in right},
        outcome_at=list(headers).index(outcome),
        title=title,
    )


def _labelled(label: str, value: str) -> Text:
    return Text.assemble((f"{label}: ", "bold"), value)
