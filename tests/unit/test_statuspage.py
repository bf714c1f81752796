"""The status page rendered from its Jinja2 templates with plain view data: numbers shown, escaping
(autoescape), empty states, the health verdict, the chart, and the data that drives the templates."""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest

from syncd.core.model import Action
from syncd.core.setting_changes import SettingChange
from syncd.service.statuspage import (
    ATTENTION_ROWS,
    CHART_ACTIONS,
    CHART_PARTS,
    CHART_RUNS,
    AttentionRow,
    Bar,
    ChartPart,
    ChartView,
    DaemonState,
    RunRow,
    StatusData,
    chart_bars,
    environment,
    explain_page,
    health,
    login_page,
    message_page,
    render_chart,
    render_disabled_page,
    render_explain_page,
    render_login_page,
    render_message_page,
    render_status_page,
    status_page,
)
from syncd.service.statuspage import Page as TemplatePage
from syncd.service.statuspage.chart import ChartRun

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "syncd" / "service" / "statuspage" / "templates"

NOW = 1_780_000_000.0
EVIL_UPN = "<script>alert(1)</script>@x.com"


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs, self.text = tag, attrs, ""


class Page(HTMLParser):
    """Every element with its attributes and the text inside it (nested text included)."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        if tag not in {"meta", "input", "br", "rect", "line", "link"}:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find(self, tag: str | None = None, **attrs: str) -> list[Element]:
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag) and all(e.attrs.get(k) == v for k, v in wanted.items())
        ]

    def one(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    def counts(self, key: str) -> dict[str, int]:
        """The count cells keyed by data-<key> (members by status, numbers by source, ...)."""
        return {
            str(e.attrs[f"data-{key}"]): int(str(e.attrs["data-count"]))
            for e in self.elements
            if f"data-{key}" in e.attrs and "data-count" in e.attrs
        }


def run(
    run_id: int,
    outcome: str = "ok",
    *,
    counts: dict[str, int] | None = None,
    kind: str = "incremental",
    dry_run: bool = False,
    error: str | None = None,
    started: float | None = None,
    secs: float | None = 1.5,
) -> RunRow:
    started_at = started if started is not None else NOW - 3600 + run_id * 60
    return RunRow(
        id=run_id,
        trigger="schedule",
        kind=kind,
        dry_run=dry_run,
        started_at=started_at,
        ended_at=None if secs is None else started_at + secs,
        outcome=outcome,
        counts=counts or {},
        error=error,
    )


def person(
    object_id: str, upn: str | None, detail: str = "TN is already registered", **kw: Any
) -> AttentionRow:
    fields: dict[str, Any] = {"status": "failed", "attempts": 2, "next_attempt_at": NOW + 600} | kw
    return AttentionRow(object_id=object_id, upn=upn, detail=detail, **fields)


DAEMON = DaemonState(started_at=NOW - 7200, last_outcome="failed", last_run_id=3)


def status(**changes: Any) -> StatusData:
    values: dict[str, Any] = {
        "daemon": DAEMON,
        "runs": [
            run(3, "failed", counts={"onboard_failed": 1, "failed": 1, "unchanged": 4, "skipped": 1}),
            run(2, "ok", counts={"update_ok": 1, "offboard_ok": 1, "unchanged": 3, "skipped": 1}),
            run(1, "ok", counts={"onboard_ok": 4, "onboard_adopted": 1, "skipped": 1}),
        ],
        "members": {"active": 4, "failed": 1, "offboarded": 1, "skipped": 1},
        "phone_sources": {"businessPhones": 3, "teams": 1},
        "attention": [person("4d90f551-8568-4935-821b-8cb9fa50ecd7", "isabella@contoso.com")],
    } | changes
    return StatusData(**values)


def test_the_numbers_of_the_state_are_shown() -> None:
    page = Page(render_status_page(status(), now=NOW))
    assert page.counts("status") == {"active": 4, "failed": 1, "offboarded": 1, "skipped": 1}
    assert page.counts("source") == {"businessPhones": 3, "teams": 1}
    assert page.one(id="managed-agents").text == "4"
    assert page.one(id="attention-count").text == "1"
    assert [e.attrs["data-total"] for e in page.find("td") if "data-total" in e.attrs] == ["7", "4"]
    row = page.one("tr", data_object_id="4d90f551-8568-4935-821b-8cb9fa50ecd7")
    assert "isabella@contoso.com" in row.text
    assert "TN is already registered" in row.text
    assert "2026-05-28" in row.text  # the next retry, in UTC
    link = page.one("a", **{"class": "explain"})
    assert link.attrs["href"] == "/explain/4d90f551-8568-4935-821b-8cb9fa50ecd7"
    assert [e.attrs["data-run"] for e in page.find("tr") if "data-run" in e.attrs] == ["3", "2", "1"]
    assert "onboard_adopted 1, onboard_ok 4, skipped 1" in page.one("tr", data_run="1").text


def test_the_header_says_what_the_daemon_is_doing() -> None:
    idle = Page(render_status_page(status(), now=NOW))
    assert idle.one(id="daemon-state").text == "idle"
    assert idle.one(id="last-outcome").text == "failed"
    assert idle.one(id="started-at").text == "2026-05-28 18:26:40"
    assert idle.one("form", action="/resync").attrs["method"] == "post"
    assert idle.one("button", id="sync-now").text == "Sync now"
    assert not idle.find(role="status")
    busy = DaemonState(started_at=NOW, running="manual", running_full=True)
    page = Page(render_status_page(status(daemon=busy), now=NOW, queued=True))
    assert page.one(id="daemon-state").text == "running a full cycle (manual)"
    assert page.one(id="last-outcome").text == "none since start"
    assert "A cycle was queued" in page.one(role="status").text


def test_data_is_escaped_and_shown_as_text() -> None:
    evil_detail = '"><img src=x onerror=alert(2)>'
    attention = [person("a1", EVIL_UPN, detail=evil_detail), person('b"><b>', None)]
    runs = [run(1, "error", error="<b>boom</b>", counts={"failed": 1})]
    data = status(attention=attention, runs=runs, members={"<i>x</i>": 1}, phone_sources={"<u>": 1})
    markup = render_status_page(data, now=NOW)
    assert "<script>" not in markup
    assert "<img" not in markup
    assert "<b>" not in markup
    assert "<i>x" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@x.com" in markup
    page = Page(markup)
    assert not page.find("script")
    assert not page.find("img")
    assert EVIL_UPN in page.one("tr", data_object_id="a1").text
    assert evil_detail in page.one("tr", data_object_id="a1").text
    assert "(no UPN)" in page.one("tr", data_object_id='b"><b>').text
    assert page.one("a", href="/explain/b%22%3E%3Cb%3E")  # a path segment, quoted
    assert "<b>boom</b>" in page.one(id="health-detail").text
    assert page.counts("status") == {"<i>x</i>": 1}


def test_empty_states() -> None:
    data = StatusData(daemon=DaemonState(started_at=NOW))
    markup = render_status_page(data, now=NOW)
    page = Page(markup)
    assert page.one(id="health").attrs["data-state"] == "unknown"
    assert page.one(id="health-title").text == "No cycle has finished yet"
    assert page.one(id="managed-agents").text == "0"
    assert page.one(id="members-empty").text == "none"
    assert page.one(id="sources-empty").text == "none"
    assert "Nobody" in page.one(id="attention-empty").text
    assert "No cycles recorded yet." in markup
    assert not page.find("svg")
    assert not page.find(id="runs")


def test_skipped_people_by_reason_come_from_the_daemons_last_cycle() -> None:
    daemon = DaemonState(started_at=NOW, skipped={"no_phone": 2, "disabled": 1})
    page = Page(render_status_page(status(daemon=daemon), now=NOW))
    assert page.counts("reason") == {"disabled": 1, "no_phone": 2}
    assert not Page(render_status_page(status(), now=NOW)).find(id="skipped")


def test_attention_is_capped_and_the_rest_counted() -> None:
    many = [person(f"id-{i:04d}", f"u{i}@x.com") for i in range(ATTENTION_ROWS + 5)]
    page = Page(render_status_page(status(attention=many), now=NOW))
    assert page.one(id="attention-count").text == str(ATTENTION_ROWS + 5)
    assert len([e for e in page.find("tr") if "data-object-id" in e.attrs]) == ATTENTION_ROWS
    assert "and 5 more" in render_status_page(status(attention=many), now=NOW)


@pytest.mark.parametrize(
    ("next_attempt_at", "shown"),
    [(None, "next cycle"), (NOW - 1, "next cycle (due)"), (NOW + 60, "2026-05-28 20:27:40")],
)
def test_next_retry(next_attempt_at: float | None, shown: str) -> None:
    data = status(attention=[person("p", "p@x.com", next_attempt_at=next_attempt_at)])
    row = Page(render_status_page(data, now=NOW)).one("tr", data_object_id="p")
    assert shown in row.text


@pytest.mark.parametrize(
    ("daemon", "runs", "attention", "expected"),
    [
        pytest.param(
            DaemonState(started_at=NOW, systemic_failure="SmartCommunicator unavailable: 503"),
            [run(2, "error"), run(1)],
            0,
            ("failing", "The last cycle failed as a whole", "SmartCommunicator unavailable: 503"),
            id="systemic-failure",
        ),
        pytest.param(
            DaemonState(started_at=NOW, last_run_id=2, guard="max_offboard", guard_message="12 > 10"),
            [run(2, "guard"), run(1)],
            0,
            ("guard", "Stopped by a safety guard: max_offboard", "12 > 10"),
            id="guard-of-the-daemons-cycle",
        ),
        pytest.param(
            DaemonState(started_at=NOW),
            [run(2, "guard"), run(1)],
            0,
            ("guard", "Stopped by a safety guard", "run 2 was stopped before changing anything; the "),
            id="guard-recorded-before-this-start",
        ),
        pytest.param(
            DaemonState(started_at=NOW),
            [run(2, "error", error="Graph unreachable"), run(1)],
            0,
            ("failing", "The last cycle failed as a whole", "Graph unreachable"),
            id="error-recorded-before-this-start",
        ),
        pytest.param(
            DaemonState(started_at=NOW),
            [run(3, "running", secs=None), run(2, "guard", dry_run=True), run(1, "failed")],
            2,
            ("healthy", "Healthy", "2 people need attention (below); the others are in step"),
            id="dry-runs-and-running-cycles-do-not-count",
        ),
        pytest.param(
            DaemonState(started_at=NOW),
            [run(2, "ok"), run(1, "guard")],
            1,
            ("healthy", "Healthy", "1 person needs attention (below); the others are in step"),
            id="a-later-cycle-passed",
        ),
        pytest.param(
            DaemonState(started_at=NOW),
            [run(1, "interrupted")],
            0,
            ("healthy", "Healthy", "every managed agent is in step"),
            id="interrupted-by-shutdown",
        ),
        pytest.param(
            DaemonState(started_at=NOW), [], 0, ("unknown", "No cycle has finished yet", None), id="new"
        ),
    ],
)
def test_health(
    daemon: DaemonState, runs: list[RunRow], attention: int, expected: tuple[str, str, str | None]
) -> None:
    people = [person(f"p{i}", None) for i in range(attention)]
    verdict = health(StatusData(daemon=daemon, runs=runs, attention=people))
    state, title, detail = expected
    assert (verdict.state, verdict.title) == (state, title)
    if detail is None:
        assert verdict.detail is None
    else:
        assert verdict.detail is not None
        assert verdict.detail.startswith(detail)


def test_a_guard_stop_is_shown_prominently() -> None:
    daemon = DaemonState(
        started_at=NOW,
        last_outcome="guard",
        last_run_id=2,
        guard="empty_group",
        guard_message="group <g> is empty",
    )
    page = Page(render_status_page(status(daemon=daemon, runs=[run(2, "guard"), run(1)]), now=NOW))
    section = page.one(id="health")
    assert (section.attrs["data-state"], section.attrs["role"]) == ("guard", "alert")
    assert page.one(id="health-title").text == "Stopped by a safety guard: empty_group"
    assert page.one(id="health-detail").text == "group <g> is empty"


def test_a_max_update_stop_and_the_setting_that_changed_are_shown() -> None:
    region = SettingChange("graph.default_region", "NO", "DK")
    message = (
        "5 updates exceed sync.max_update = 3; nothing was changed. Settings that shape desired state "
        'changed since the last cycle: graph.default_region "NO" -> "DK"'
    )
    daemon = DaemonState(
        started_at=NOW, last_outcome="guard", last_run_id=2, guard="max_update", guard_message=message
    )
    stopped = dataclasses.replace(run(2, "guard"), settings_changed=(region,))
    page = Page(render_status_page(status(daemon=daemon, runs=[stopped, run(1)]), now=NOW))
    assert page.one(id="health").attrs["data-state"] == "guard"
    assert page.one(id="health-title").text == "Stopped by a safety guard: max_update"
    assert page.one(id="health-detail").text == message
    assert page.one(id="settings-changed").text == (
        'Run 2 found settings changed since the last cycle: graph.default_region "NO" -> "DK"'
    )
    (row,) = page.find("tr", data_run="2")
    assert page.one("span", **{"class": "settings-changed"}).text == (
        'settings changed: graph.default_region "NO" -> "DK"'
    )
    assert row.text.count("settings changed:") == 1


def test_the_settings_notice_goes_once_a_later_cycle_changed_nothing() -> None:
    changed = dataclasses.replace(run(1), settings_changed=(SettingChange("graph.group_ids", ["a"], ["b"]),))
    assert health(status(runs=[changed])).settings_changed is not None
    assert health(status(runs=[run(2), changed])).settings_changed is None
    page = Page(render_status_page(status(runs=[run(2), changed]), now=NOW))
    assert page.find(id="settings-changed") == []
    assert len(page.find("span", **{"class": "settings-changed"})) == 1  # still in run 1's row


def test_a_run_document_carries_its_settings_changes() -> None:
    document = {
        "runs": [
            {
                "id": 4,
                "trigger": "cli",
                "kind": "full",
                "started_at": NOW,
                "ended_at": NOW + 1,
                "outcome": "guard",
                "counts": {},
                "settings_changed": [{"key": "graph.default_region", "from": "NO", "to": "DK"}, "junk"],
            }
        ]
    }
    (row,) = StatusData.from_document(document, DAEMON).runs
    assert row.settings_changed == (SettingChange("graph.default_region", "NO", "DK"),)


def test_chart_bars_stack_changes_by_action_then_failures_oldest_first() -> None:
    runs = [
        run(3, "failed", counts={"onboard_ok": 1, "failed": 1}),
        run(2, "ok", counts={"unchanged": 7}),
        run(
            1,
            "ok",
            counts={"onboard_ok": 3, "onboard_adopted": 1, "update_ok": 2, "offboard_already_gone": 2},
        ),
    ]
    bars = chart_bars(runs)
    assert [(b.run_id, b.part, b.count) for b in bars] == [
        (1, "onboard", 4),
        (1, "update", 2),
        (1, "offboard", 2),
        (2, "none", 0),
        (3, "onboard", 1),
        (3, "failed", 1),
    ]
    plot_h = 160 - 14 - 6  # the chart's height less its paddings
    by = {(b.run_id, b.part): b for b in bars}
    assert by[1, "onboard"].height == pytest.approx(plot_h * 4 / 8)
    assert by[1, "update"].height == pytest.approx(plot_h * 2 / 8)
    assert by[3, "failed"].height == pytest.approx(plot_h / 8)
    # Stacked: each segment sits on the one below it, and the tallest run fills the plot.
    assert by[1, "update"].y + by[1, "update"].height == pytest.approx(by[1, "onboard"].y)
    assert by[1, "offboard"].y == pytest.approx(14)
    assert by[2, "none"].height > 0
    assert by[1, "onboard"].x < by[2, "none"].x < by[3, "onboard"].x
    assert by[3, "onboard"].x == by[3, "failed"].x


def test_chart_shows_the_newest_runs_only() -> None:
    runs = [run(i, counts={"onboard_ok": i}) for i in range(CHART_RUNS + 10, 0, -1)]  # newest first
    drawn = sorted({b.run_id for b in chart_bars(runs)})
    assert drawn == list(range(11, CHART_RUNS + 11))
    assert chart_bars([]) == []


def test_chart_markup_has_a_text_alternative_and_a_tooltip_per_run() -> None:
    runs = [run(2, "guard", counts={"skipped": 1}), run(1, counts={"onboard_ok": 5, "failed": 2})]
    page = Page(render_chart(runs))
    svg = page.one("svg", id="runs-chart")
    assert svg.attrs["role"] == "img"
    assert svg.attrs["aria-labelledby"] == "runs-chart-title runs-chart-desc"
    assert "run 1" in page.one("desc").text
    assert "the most changes in one cycle: 7" in page.one("desc").text
    titles = [e.text for e in page.find("title")]
    assert titles[0] == "Changes per cycle, by action, and failures"
    assert titles[1].startswith("run 1 (incremental, schedule)")
    assert titles[1].endswith(": ok, 1.5 s; onboard 5, update 0, offboard 0, failed 2")
    assert titles[2].endswith(": guard, 1.5 s; onboard 0, update 0, offboard 0, failed 0")
    rects = {(e.attrs["data-run"], e.attrs["data-part"]): e for e in page.find("rect")}
    assert set(rects) == {("1", "onboard"), ("1", "failed"), ("2", "none")}
    assert rects["1", "onboard"].attrs["data-count"] == "5"
    assert "outcome-guard" in str(rects["2", "none"].attrs["class"])


def test_status_data_from_the_status_document() -> None:
    document = {
        "runs": [
            {
                "id": 2,
                "trigger": "manual",
                "kind": "full",
                "dry_run": False,
                "started_at": NOW,
                "ended_at": None,
                "outcome": "running",
                "counts": {},
                "error": None,
            }
        ],
        "members": {"active": 2},
        "phone_sources": {"teams": 2},
        "attention": [
            {
                "object_id": "x",
                "upn": None,
                "status": "pending",
                "detail": None,
                "attempts": 0,
                "next_attempt_at": None,
                "phone_source": None,
            }
        ],
    }
    data = StatusData.from_document(document, DAEMON)
    assert data.runs == [RunRow(2, "manual", "full", False, NOW, None, "running", {}, None)]
    assert data.attention == [AttentionRow("x", None, "pending", None, 0, None)]
    assert (data.members, data.phone_sources, data.managed_agents) == ({"active": 2}, {"teams": 2}, 2)
    assert "no change" in Page(render_status_page(data, now=NOW)).one("tr", data_run="2").text


def test_login_page() -> None:
    page = Page(render_login_page())
    form = page.one("form")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", "/login")
    assert page.one("input", name="token").attrs["type"] == "password"
    assert not page.find(role="alert")
    wrong = Page(render_login_page(error="Wrong <token>."))
    assert wrong.one(role="alert").text == "Wrong <token>."


def test_disabled_page_names_the_setting() -> None:
    assert "admin.token" in render_disabled_page()


def test_message_page_offers_escaped_links() -> None:
    links = [("/explain/a1", EVIL_UPN), ("/explain/b2", "b@x.com")]
    markup = render_message_page(
        "Several people match", "+1 415 555 0100 <held twice>", back=True, links=links
    )
    page = Page(markup)
    assert "<script>" not in markup
    assert [(e.attrs["href"], e.text) for e in page.find("a")] == [
        ("/explain/a1", EVIL_UPN),
        ("/explain/b2", "b@x.com"),
        ("/", "Back to the status page"),
    ]
    assert page.find("p")[0].text == "+1 415 555 0100 <held twice>"


def test_explain_page_shows_the_text_preformatted_and_escaped() -> None:
    text = "who: <script>x</script>\n  status: failed\n"
    markup = render_explain_page("a&b", text, now=NOW)
    page = Page(markup)
    assert page.one("pre").text == text
    assert "<script>" not in markup
    assert "a&b" in page.one("h2").text
    assert page.find("a", href="/")


def test_every_page_is_self_contained() -> None:
    for markup in (
        render_status_page(status(), now=NOW),
        render_login_page(),
        render_disabled_page(),
        render_explain_page("x", "y", now=NOW),
    ):
        page = Page(markup)
        assert not page.find("script")
        assert not page.find("link")
        assert "http://" not in markup
        assert "https://" not in markup
        assert page.one("meta", name="viewport")
        assert page.find("style")


# -- the templates -----------------------------------------------------------------------------------------


def test_pages_are_templates_rendered_with_autoescape_and_strict_names() -> None:
    env = environment()
    assert env.autoescape is True
    assert env.undefined is jinja2.StrictUndefined
    pages = [
        status_page(status(), now=NOW),
        login_page(),
        message_page("t", "m"),
        explain_page("x", "y", now=NOW),
    ]
    assert [page.template for page in pages] == ["status.html", "login.html", "message.html", "explain.html"]
    for page in pages:
        assert (TEMPLATES / page.template).is_file()
    assert pages[0].render() == render_status_page(status(), now=NOW)
    with pytest.raises(jinja2.UndefinedError):  # a name the template reads and the data lacks fails
        TemplatePage("message.html", {"title": "t"}).render()


def test_a_upn_and_a_display_name_with_markup_arrive_as_text_on_every_page() -> None:
    """What a directory admin can type (a UPN, a display name) reaches every page as text, never as markup."""
    display = '<img src=x onerror="alert(2)">Mallory'
    evil = EVIL_UPN
    status_markup = render_status_page(status(attention=[person("a1", evil, detail=display)]), now=NOW)
    explain_markup = render_explain_page(evil, f"display name  {display}\nUPN  {evil}\n", now=NOW)
    choose_markup = render_message_page("Several people match", display, links=[("/explain/a1", evil)])
    for markup in (status_markup, explain_markup, choose_markup):
        page = Page(markup)
        assert not page.find("script")
        assert not page.find("img")
        assert "<script>" not in markup
        assert "<img" not in markup
    assert evil in Page(status_markup).one("tr", data_object_id="a1").text
    assert display in Page(status_markup).one("tr", data_object_id="a1").text
    assert display in Page(explain_markup).one("pre").text
    assert evil in Page(explain_markup).one("title").text
    assert Page(choose_markup).one("a", href="/explain/a1").text == evil


def test_every_action_has_a_part_in_the_chart() -> None:
    """A new action (`syncd.core.model.Action`) needs one `ChartPart` row in `chart.ACTION_PARTS`: its name,
    its legend and its colour; the templates and the style sheet take it from there."""
    assert set(CHART_ACTIONS) == {action.value for action in Action}
    assert [part.name for part in CHART_PARTS] == [*CHART_ACTIONS, "failed", "none"]


def test_the_chart_and_its_colours_come_from_the_parts() -> None:
    markup = render_status_page(status(), now=NOW)
    for part in CHART_PARTS:  # one style rule per part, written from the data
        rule = f".bar.{part.name},.swatch.{part.name}{{fill:{part.colour};background:{part.colour}}}"
        assert rule in markup
    legend = [e.text for e in Page(markup).find("span", **{"class": "key"})]
    assert legend == [part.label for part in CHART_PARTS]
    # A part the chart did not know before is drawn and named from the view data alone.
    relink = ChartPart("relink", "relinked", "#0a7d6f")
    view = ChartView(
        runs=(ChartRun(1, "ok", "run 1", (Bar(1, "relink", 2, 40.0, 100.0, 10.0, 54.0),)),),
        description="one run",
        tallest=2,
        parts=(*CHART_PARTS, relink),
    )
    chart = Page(environment().get_template("chart.html").render(chart=view))
    assert chart.one("rect", data_part="relink").attrs["class"] == "bar relink"
    assert [e.text for e in chart.find("span", **{"class": "key"})][-1] == "relinked"


def test_the_templates_are_package_data() -> None:
    """Every file in templates/ is matched by pyproject's package-data, so the wheel ships it (the container
    tier checks the installed wheel)."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        patterns = tomllib.load(file)["tool"]["setuptools"]["package-data"]["syncd"]
    files = sorted(path.relative_to(ROOT / "syncd").as_posix() for path in TEMPLATES.iterdir())
    assert {"status.html", "base.html", "style.css"} <= {Path(f).name for f in files}
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
