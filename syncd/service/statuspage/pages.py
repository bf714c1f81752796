"""The whole pages: the status page (`GET /`), the sign-in form, a page that only says something, the
disabled page and one person's explanation. Each returns a complete HTML document. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncd.service.statuspage.markup import _document, _e
from syncd.service.statuspage.sections import (
    _agents_section,
    _attention_section,
    _cycles_section,
    _footer,
    _header,
    _health_section,
    _pending_offboards_section,
    _relinks_section,
)
from syncd.service.statuspage.views import StatusData, health

REFRESH_S = 60
"""The status page reloads itself this often (seconds)."""


def render_status_page(data: StatusData, *, now: float, queued: bool = False) -> str:
    """The whole status page."""
    verdict = health(data)
    body = "\n".join(
        [
            _header(data.daemon, queued=queued),
            "<main>",
            _health_section(verdict),
            _agents_section(data),
            _attention_section(data.attention, now=now),
            _pending_offboards_section(data.offboard_pending),
            _relinks_section(data.relinks),
            _cycles_section(data.runs),
            "</main>",
            _footer(now),
        ]
    )
    return _document("syncd status", body, refresh_s=REFRESH_S)


def render_login_page(*, error: str | None = None) -> str:
    """The form that takes the admin token (POST /login)."""
    message = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    body = f"""<main class="narrow">
<h1>syncd</h1>
<section class="card">
<h2>Sign in</h2>
<p>Enter the admin token (<code>admin.token</code> in the daemon's configuration).</p>
{message}
<form method="post" action="/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</section>
</main>"""
    return _document("syncd: sign in", body)


def render_message_page(
    title: str, message: str, *, back: bool = False, links: Sequence[tuple[str, str]] = ()
) -> str:
    """A page that only says something (disabled, not found, failed), offering `links` (href, text)."""
    link = '<p><a href="/">Back to the status page</a></p>' if back else ""
    items = "".join(f'<li><a href="{_e(href)}">{_e(text)}</a></li>' for href, text in links)
    offered = f'<ul class="links">{items}</ul>' if items else ""
    body = f"""<main class="narrow">
<h1>syncd</h1>
<section class="card">
<h2>{_e(title)}</h2>
<p>{_e(message)}</p>
{offered}
{link}
</section>
</main>"""
    return _document(f"syncd: {title}", body)


def render_disabled_page() -> str:
    """What every page says while no admin token is configured."""
    return render_message_page(
        "The status page is disabled",
        "Set admin.token (or SYNCD_ADMIN__TOKEN) in the daemon's configuration and restart it: "
        "until then the status page, /status and /resync refuse every request.",
    )


def render_explain_page(who: str, text: str, *, now: float) -> str:
    """One person's explanation (`syncd.reports.explain.render_text`) in the page layout."""
    body = f"""<header class="top">
<div class="brand"><a href="/">syncd</a></div>
</header>
<main>
<section class="card">
<h2>Why: <span class="mono">{_e(who)}</span></h2>
<pre class="explain">{_e(text)}</pre>
<p><a href="/">Back to the status page</a></p>
</section>
</main>
{_footer(now)}"""
    return _document(f"syncd: explain {who}", body)
