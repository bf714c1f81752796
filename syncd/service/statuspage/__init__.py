"""The admin's status page (`GET /` on the admin listener) and its companions, rendered from Jinja2
templates.

The data is plain and pure: `views` parses the status document (`syncd status --json`, `GET /status`) and
the daemon's state (`DaemonState`) into `StatusData` and gives the health verdict; `display` words every
part of the page (times in UTC, the next retry, the explain link); `chart` computes the chart's geometry.
Nothing there reads the database, the clock or the network, so the same inputs always give the same page.

The markup is in `templates/` (shipped in the wheel as package data): `base.html` (the document and its
inline style sheet, `style.css`), `status.html`, `login.html`, `message.html`, `explain.html`, and the
partials `chart.html` and `macros.html`. `pages` holds the Jinja2 environment, autoescape on, and makes
each page a `Page` (a template and its context); `syncd.service.admin` gathers the data and serves pages
through Starlette's `Jinja2Templates` over that environment. The templates only loop and print: every
row (counts, people, runs, the chart's parts) comes from the data, so a new action or count is a change of
data, not of markup.

The pages need no build step and no external asset: CSS is inline, the chart is inline SVG, so they work
offline and behind any proxy. Everything that comes from data (UPNs, error messages, object IDs, triggers) is
escaped by the templates' autoescape.
"""

from syncd.service.statuspage.chart import (
    CHART_ACTIONS,
    CHART_PARTS,
    CHART_RUNS,
    Bar,
    ChartPart,
    ChartView,
    chart_bars,
    chart_view,
)
from syncd.service.statuspage.display import (
    ATTENTION_ROWS,
    TABLE_RUNS,
    StatusPageView,
    status_view,
)
from syncd.service.statuspage.pages import (
    REFRESH_S,
    Page,
    disabled_page,
    environment,
    explain_page,
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
from syncd.service.statuspage.views import (
    AttentionRow,
    DaemonState,
    Health,
    HealthView,
    PendingOffboardRow,
    QuarantineView,
    RelinkRow,
    RunRow,
    StatusData,
    health,
)

__all__ = [
    "ATTENTION_ROWS",
    "CHART_ACTIONS",
    "CHART_PARTS",
    "CHART_RUNS",
    "REFRESH_S",
    "TABLE_RUNS",
    "AttentionRow",
    "Bar",
    "ChartPart",
    "ChartView",
    "DaemonState",
    "Health",
    "HealthView",
    "Page",
    "PendingOffboardRow",
    "QuarantineView",
    "RelinkRow",
    "RunRow",
    "StatusData",
    "StatusPageView",
    "chart_bars",
    "chart_view",
    "disabled_page",
    "environment",
    "explain_page",
    "health",
    "login_page",
    "message_page",
    "render_chart",
    "render_disabled_page",
    "render_explain_page",
    "render_login_page",
    "render_message_page",
    "render_status_page",
    "status_page",
    "status_view",
]
