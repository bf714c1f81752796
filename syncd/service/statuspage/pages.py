"""The whole pages: the status page (`GET /`), the sign-in form, a page that only says something, the
disabled page and one person's explanation, each a `Page` (a template of `templates/` and its context), and
the Jinja2 environment that renders them.

The environment autoescapes everything a template prints (UPNs, error messages, object IDs, triggers come
from data), and its undefined values are errors, so a misspelt name fails a test instead of printing
nothing. `syncd.service.admin` serves a `Page` through Starlette's `Jinja2Templates` over this same
environment; `Page.render` gives the same document as a string. Pure, but for reading the package's
templates (once: the environment caches them).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

from syncd.core.times import utc_text
from syncd.service.statuspage.chart import CHART_PARTS, chart_view
from syncd.service.statuspage.display import status_view
from syncd.service.statuspage.views import RunRow, StatusData

REFRESH_S = 60
"""The status page reloads itself this often (seconds)."""


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment: the package's `templates/`, autoescape on, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("syncd.service.statuspage", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    # The style sheet colours each part of the chart (and its legend) from this list.
    env.globals["chart_parts"] = CHART_PARTS
    return env


@dataclass(frozen=True, slots=True)
class Page:
    """A page to send: the template's name and what it reads."""

    template: str
    context: Mapping[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """The whole HTML document."""
        return environment().get_template(self.template).render(self.context)


def status_page(data: StatusData, *, now: float, queued: bool = False) -> Page:
    """The status page at `now` (epoch seconds); `queued` says a cycle was just queued from it."""
    return Page("status.html", {"page": status_view(data, now=now, queued=queued), "refresh_s": REFRESH_S})


def login_page(*, error: str | None = None) -> Page:
    """The form that takes the admin token (POST /login), with what went wrong last time."""
    return Page("login.html", {"error": error})


def message_page(
    title: str, message: str, *, back: bool = False, links: Sequence[tuple[str, str]] = ()
) -> Page:
    """A page that only says something (disabled, not found, failed), offering `links` (href, text)."""
    return Page("message.html", {"title": title, "message": message, "back": back, "links": list(links)})


def disabled_page() -> Page:
    """What every page says while no admin token is configured."""
    return message_page(
        "The status page is disabled",
        "Set admin.token (or SYNCD_ADMIN__TOKEN) in the daemon's configuration and restart it: "
        "until then the status page, /status and /resync refuse every request.",
    )


def explain_page(who: str, text: str, *, now: float) -> Page:
    """One person's explanation (`syncd.reports.explain.render_text`) in the page layout."""
    return Page("explain.html", {"who": who, "text": text, "rendered": utc_text(now)})


def render_status_page(data: StatusData, *, now: float, queued: bool = False) -> str:
    """The whole status page, as a string."""
    return status_page(data, now=now, queued=queued).render()


def render_login_page(*, error: str | None = None) -> str:
    return login_page(error=error).render()


def render_message_page(
    title: str, message: str, *, back: bool = False, links: Sequence[tuple[str, str]] = ()
) -> str:
    return message_page(title, message, back=back, links=links).render()


def render_disabled_page() -> str:
    return disabled_page().render()


def render_explain_page(who: str, text: str, *, now: float) -> str:
    return explain_page(who, text, now=now).render()


def render_chart(runs: Sequence[RunRow]) -> str:
    """The chart alone (the status page includes `chart.html`): inline SVG of the last runs, or a line
    saying there are none."""
    return environment().get_template("chart.html").render({"chart": chart_view(runs)})
