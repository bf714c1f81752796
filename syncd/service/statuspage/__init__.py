"""The admin's status page (`GET /` on the admin listener) and its companions, rendered to HTML strings.

Pure: every function takes plain data (the `status_document` of `syncd status --json`, the daemon's state as
`DaemonState`, epoch seconds) and returns a complete HTML document or fragment; nothing here reads the
database, the clock or the network, so the same inputs always give the same page. `syncd.service.admin`
gathers the data and serves the pages.

The pages need no build step and no external asset: CSS is inline, the chart is inline SVG, so they work
offline and behind any proxy. Everything that comes from data (UPNs, error messages, object IDs, triggers) is
escaped with `html.escape` before it reaches the markup.

The package, by page part: `views` (the data parsed from the status document, and the health verdict),
`pages` (whole documents), `sections` (the status page's parts), `chart` (the inline SVG) and `markup`
(escaping, the document shell, the CSS). Names with a leading underscore are private to the package.
"""

from syncd.service.statuspage.chart import (
    CHART_ACTIONS,
    CHART_RUNS,
    Bar,
    chart_bars,
    render_chart,
)
from syncd.service.statuspage.pages import (
    REFRESH_S,
    render_disabled_page,
    render_explain_page,
    render_login_page,
    render_message_page,
    render_status_page,
)
from syncd.service.statuspage.sections import (
    ATTENTION_ROWS,
    TABLE_RUNS,
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
    "CHART_RUNS",
    "REFRESH_S",
    "TABLE_RUNS",
    "AttentionRow",
    "Bar",
    "DaemonState",
    "Health",
    "HealthView",
    "PendingOffboardRow",
    "QuarantineView",
    "RelinkRow",
    "RunRow",
    "StatusData",
    "chart_bars",
    "health",
    "render_chart",
    "render_disabled_page",
    "render_explain_page",
    "render_login_page",
    "render_message_page",
    "render_status_page",
]
