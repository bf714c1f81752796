"""The admin HTTP API of the daemon and its status page (starlette, served by uvicorn on the daemon's loop;
`syncd.service.listener` sets the server up: header timeout, connection limit, TLS).

GET /healthz (alive), /readyz (the database usable and the last cycle did not fail as a whole), /metrics
(Prometheus) are open; GET /status and POST /resync need `Authorization: Bearer <admin.token>`, compared in
constant time, and are refused outright when no token is configured.

The status page for a person (`syncd.service.statuspage` makes its pages from Jinja2 templates, served here
through Starlette's `Jinja2Templates`): GET / and GET /explain/{object_id}
accept the same bearer header or a session cookie. GET /login shows a form taking the token; POST /login
compares it in constant time and sets the cookie `syncd_session` (HttpOnly, SameSite=Strict, Path=/; Secure
when `admin.secure_cookie` is set, when the listener has TLS, or over https), a signed value that is never
the token itself (`syncd.service.admin_auth`). POST /logout signs that value out on the server and clears
the cookie. Without a valid session the pages redirect to /login (303); with no token configured they say
the page is disabled (403). The page's "Sync now" form posts to /resync with the cookie instead of the
bearer header, and is answered with a redirect to the page; the page's link to GET /status works with the
cookie too.

Wrong tokens (a wrong bearer header anywhere, a wrong token in the sign-in form) are logged as
`admin.auth_failed` with the client's address and the path, never what was presented, and counted per
client address: past AUTH_FAILURE_LIMIT in AUTH_FAILURE_WINDOW_S the address gets 429 with Retry-After for a
window, the right token included (`admin_auth.FailureLimiter`).

Requests naming a host the listener does not answer to are refused (400) against DNS rebinding, except
/healthz and /readyz (`syncd.service.admin_hosts`). CSRF: the cookie is SameSite=Strict, so a browser never
sends it with a request started by another site, and the forms' POSTs are refused (403) when their Origin
header names another host than the request's (its Host, or X-Forwarded-Host behind a reverse proxy).

A database that fails under an endpoint (StoreError) is answered 503 `{"error": "database unavailable:
..."}` (the pages: a 503 page), and /readyz checks the database with a fresh query (`admin_health`).

The endpoints are module-level functions reading the daemon from `request.app.state`; they reach it through
`AdminDaemon`, a protocol `syncd.service.daemon.Daemon` satisfies structurally, so this module never imports
the daemon (which imports it to build its app).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from syncd.reports.explain import AmbiguousPerson, PersonNotFound, explain_person, render_text
from syncd.reports.status import status_document
from syncd.service import statuspage
from syncd.service.admin_api import AdminDaemon
from syncd.service.admin_auth import (
    AUTH_FAILURE_LIMIT,
    AUTH_FAILURE_WINDOW_S,
    SESSION_MAX_AGE_S,
    FailureLimiter,
    Sessions,
    client_key,
    describe_requester,
    session_valid,
    session_value,
)
from syncd.service.admin_health import database_problem
from syncd.service.admin_hosts import HostCheck, allowed_hosts
from syncd.service.leader import FORWARDED_HEADER, ForwardRefused, forward_resync
from syncd.store import StoreError

log = structlog.get_logger("syncd.admin")

SESSION_COOKIE = "syncd_session"
"""The status page's session cookie."""

FORM_LIMIT_BYTES = 16 * 1024
"""The largest form body accepted (the login form holds one token)."""

PAGE_HEADERS = {
    # No script at all, styles and images only inline, forms only to this origin, never in a frame.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    # Not "no-referrer": with it browsers send "Origin: null" on our own forms, which _same_origin refuses.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


class _FormTooLarge(Exception):
    pass


async def _read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the first value of each field), at most FORM_LIMIT_BYTES."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT_BYTES:
            raise _FormTooLarge
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _same_origin(request: Request) -> bool:
    """False when the browser says the form came from another host (no Origin header: not a browser's
    cross-site form, which always carries one)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # Behind a reverse proxy that rewrites Host, X-Forwarded-Host names the host the browser used. A
    # cross-site form cannot set that header, so honouring it opens nothing.
    hosts = {request.headers.get("host", "").lower(), request.headers.get("x-forwarded-host", "").lower()}
    return urlsplit(origin).netloc.lower() in hosts - {""}


def _page(
    request: Request, page: statuspage.Page, status_code: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """`page` rendered from its template (autoescaped), with the pages' security headers."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, page.template, dict(page.context), status_code, PAGE_HEADERS | (headers or {})
    )


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=PAGE_HEADERS)


def _daemon(request: Request) -> AdminDaemon:
    """The daemon the app serves."""
    daemon: AdminDaemon = request.app.state.daemon
    return daemon


def _secret(request: Request) -> str:
    """The admin token, or "" when none is configured."""
    secret: str = request.app.state.admin_token
    return secret


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def _limiter(request: Request) -> FailureLimiter:
    limiter: FailureLimiter = request.app.state.limiter
    return limiter


def _client(request: Request) -> str:
    """The client's address (the connection's own: the listener ignores proxy headers)."""
    return request.client.host if request.client is not None else ""


def requester(request: Request, how: str) -> str:
    """Who is asking for this cycle (`admin_auth.describe_requester`), for the run's record."""
    return describe_requester(how, _client(request), request.headers.get(FORWARDED_HEADER))


def _retry_after(request: Request) -> int | None:
    """Seconds until this client may present a token again, or None when it may now."""
    return _limiter(request).retry_after(client_key(_client(request)), time.monotonic())


def _token_matches(request: Request, presented: str, via: str) -> bool:
    """Whether `presented` is the admin token (in constant time); a wrong one is counted against the
    client's address and logged, without what was presented."""
    if hmac.compare_digest(presented.encode(), _secret(request).encode()):
        return True
    limiter = _limiter(request)
    failures = limiter.failed(client_key(_client(request)), time.monotonic())
    log.warning(
        "admin.auth_failed",
        client=_client(request),
        path=request.url.path,
        method=request.method,
        via=via,
        failures=failures,
    )
    if failures >= limiter.limit:
        log.warning("admin.auth_rate_limited", client=_client(request), retry_after_s=limiter.window_s)
    return False


def _too_many(wait: int) -> JSONResponse:
    return JSONResponse(
        {"error": f"too many wrong tokens from this address: try again in {wait} s"},
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


def _authorised(request: Request) -> Response | None:
    """None when the request carries the bearer token; else 403 (no token configured), 429 (too many
    wrong tokens from this address) or 401."""
    secret = _secret(request)
    if not secret:
        return JSONResponse(
            {"error": "admin.token is not configured: /status and /resync are disabled"}, status_code=403
        )
    header = request.headers.get("authorization")
    if header is not None:
        wait = _retry_after(request)
        if wait is not None:
            return _too_many(wait)
        scheme, _, presented = header.partition(" ")
        if _token_matches(request, presented.strip() if scheme.lower() == "bearer" else "", "bearer"):
            return None
    return JSONResponse(
        {"error": "missing or wrong bearer token"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _has_session(request: Request) -> bool:
    secret = _secret(request)
    presented = request.cookies.get(SESSION_COOKIE)
    return bool(secret) and presented is not None and _sessions(request).valid(secret, presented, time.time())


def _secure_cookie(request: Request) -> bool:
    """Whether the session cookie is marked Secure: `admin.secure_cookie`, the listener's TLS, or https."""
    return bool(request.app.state.secure_cookie) or request.url.scheme == "https"


def _page_refused(request: Request) -> Response | None:
    """None when the request may see the pages; else the disabled page, a 401, a 429 or the way to
    /login."""
    if not _secret(request):
        return _page(request, statuspage.disabled_page(), 403)
    if "authorization" in request.headers:
        refused = _authorised(request)
        if refused is None:
            return None
        if refused.status_code == 429:
            wait = refused.headers["retry-after"]
            message = f"Too many wrong tokens from your address: try again in {wait} s."
            page = statuspage.message_page("Too many attempts", message)
            return _page(request, page, 429, {"Retry-After": wait})
        return _page(
            request,
            statuspage.message_page("Wrong token", "The bearer token is missing or wrong."),
            401,
            {"WWW-Authenticate": "Bearer"},
        )
    return None if _has_session(request) else _redirect("/login")


def _daemon_state(daemon: AdminDaemon, skipped: Mapping[str, int]) -> statuspage.DaemonState:
    running, last = daemon.running, daemon.last_result
    stop = last.stopped_by if last is not None else None
    return statuspage.DaemonState(
        started_at=daemon.started_at,
        running=running.trigger if running is not None else None,
        running_full=running.full if running is not None else False,
        last_outcome=daemon.last_outcome,
        systemic_failure=daemon.systemic_failure,
        last_run_id=last.run_id if last is not None else None,
        guard=stop.guard if stop is not None else None,
        guard_message=stop.message if stop is not None else None,
        # From our records, not the last cycle: a delta cycle sees only the people who changed.
        skipped=dict(skipped),
    )


async def home(request: Request) -> Response:
    daemon = _daemon(request)
    refused = _page_refused(request)
    if refused is not None:
        return refused
    try:
        document = await asyncio.to_thread(
            status_document,
            daemon.store,
            statuspage.CHART_RUNS,
            offboard_grace_s=daemon.settings.sync.offboard_grace_s,
        )
    except StoreError as exc:
        return _page(request, statuspage.message_page("The database does not answer", str(exc)), 503)
    data = statuspage.StatusData.from_document(document, _daemon_state(daemon, document.get("skipped", {})))
    queued = request.query_params.get("queued") == "1"
    return _page(request, statuspage.status_page(data, now=time.time(), queued=queued))


async def explain(request: Request) -> Response:
    daemon = _daemon(request)
    refused = _page_refused(request)
    if refused is not None:
        return refused
    who = str(request.path_params["object_id"])
    try:
        # Graph and SmartCommunicator failures do not raise: the explanation's sections say what failed.
        explanation = await explain_person(daemon.settings, daemon.store, who)
    except AmbiguousPerson as exc:
        links = [(f"/explain/{object_id}", upn or object_id) for object_id, upn in exc.candidates]
        page = statuspage.message_page("Several people match", str(exc), back=True, links=links)
        return _page(request, page, 404)
    except PersonNotFound as exc:
        return _page(request, statuspage.message_page("Not found", str(exc), back=True), 404)
    except StoreError as exc:
        return _page(request, statuspage.message_page("The database does not answer", str(exc)), 503)
    return _page(request, statuspage.explain_page(who, render_text(explanation), now=time.time()))


async def login_form(request: Request) -> Response:
    if not _secret(request):
        return _page(request, statuspage.disabled_page(), 403)
    if _has_session(request):
        return _redirect("/")
    return _page(request, statuspage.login_page())


async def login(request: Request) -> Response:
    secret = _secret(request)
    if not secret:
        return _page(request, statuspage.disabled_page(), 403)
    if not _same_origin(request):
        return _page(request, statuspage.message_page("Refused", "That form came from another site."), 403)
    wait = _retry_after(request)
    if wait is not None:
        error = f"Too many wrong tokens from your address: try again in {wait} s."
        return _page(request, statuspage.login_page(error=error), 429, {"Retry-After": str(wait)})
    try:
        form = await _read_form(request)
    except _FormTooLarge:
        return _page(request, statuspage.login_page(error="That form was too large."), 413)
    if not _token_matches(request, form.get("token", "").strip(), "login"):
        return _page(request, statuspage.login_page(error="Wrong token."), 401)
    response = _redirect("/")
    response.set_cookie(
        SESSION_COOKIE,
        _sessions(request).issue(secret, time.time()),
        max_age=SESSION_MAX_AGE_S,
        path="/",
        secure=_secure_cookie(request),
        httponly=True,
        samesite="strict",
    )
    return response


async def logout(request: Request) -> Response:
    """Sign the presented session out on the server (a copy of the cookie no longer works) and clear it."""
    if not _same_origin(request):
        return _page(request, statuspage.message_page("Refused", "That form came from another site."), 403)
    secret, presented = _secret(request), request.cookies.get(SESSION_COOKIE)
    if secret and presented is not None:
        _sessions(request).revoke(secret, presented, time.time())
    response = _redirect("/login")
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=_secure_cookie(request), httponly=True, samesite="strict"
    )
    return response


async def resync_from_page(request: Request) -> Response:
    """The page's "Sync now" form: queue a cycle and go back to the page."""
    daemon = _daemon(request)
    if not _same_origin(request):
        return _page(request, statuspage.message_page("Refused", "That form came from another site."), 403)
    try:
        form = await _read_form(request)
    except _FormTooLarge:
        return _page(request, statuspage.message_page("Refused", "That form was too large."), 413)
    future = daemon.trigger(
        full=form.get("full") == "1", trigger="manual", requested_by=requester(request, "status page session")
    )
    if future.done() and future.exception() is not None:  # shutting down: say so, and retrieve it
        return _page(request, statuspage.message_page("Not queued", str(future.exception())), 503)
    return _redirect("/?queued=1")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    daemon = _daemon(request)
    problem = await database_problem(daemon.store)  # a fresh query, in a thread, within a time limit
    if problem is not None:
        reason = f"database unavailable: {problem}"
        return JSONResponse({"status": "not ready", "reason": reason, "error": reason}, status_code=503)
    failure = daemon.systemic_failure
    if failure is not None:
        return JSONResponse({"status": "not ready", "reason": failure}, status_code=503)
    # A standby is ready: it serves the API and forwards resyncs, and a rolling deploy must not wait for
    # a replica to become leader (only one ever is).
    answer = {"status": "ready", "last_outcome": daemon.last_outcome, "role": daemon.leadership.role}
    return JSONResponse(answer)


async def metrics(request: Request) -> Response:
    daemon = _daemon(request)
    return Response(daemon.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def status(request: Request) -> Response:
    daemon = _daemon(request)
    # The page links here: its session cookie reads the JSON too (a bearer header, when sent, decides).
    from_page = "authorization" not in request.headers and _has_session(request)
    refused = None if from_page else _authorised(request)
    if refused is not None:
        return refused
    document = await asyncio.to_thread(
        status_document, daemon.store, 10, offboard_grace_s=daemon.settings.sync.offboard_grace_s
    )
    document["daemon"] = {
        "running": None if daemon.running is None else daemon.running.trigger,
        "last_outcome": daemon.last_outcome,
        "started_at": daemon.started_at,
    }
    document["role"] = daemon.leadership.role
    document["leader"] = await daemon.leadership.leader()
    return JSONResponse(document)


async def standby_resync(request: Request) -> Response:
    """A standby runs no cycles: it asks the leader (same bearer, body, ?wait), else says where it is."""
    daemon = _daemon(request)
    leader = await daemon.leadership.leader()
    answer = None
    if FORWARDED_HEADER.lower() not in request.headers:  # never forwarded twice: no loops
        try:
            answer = await forward_resync(
                leader,
                own_url=daemon.leadership.identity["admin_url"],
                authorization=request.headers["authorization"],
                body=await request.body(),
                wait=request.query_params.get("wait"),
                stale_after_s=daemon.settings.sync.leader_takeover_s,
                ca_file=daemon.settings.admin.tls_cert_path,
            )
        except ForwardRefused as exc:  # plain http to another host: the bearer stays here
            error = f"this replica is a standby; {exc}"
            return JSONResponse({"error": error, "leader": leader}, status_code=503)
    if answer is None:
        return JSONResponse({"error": "this replica is a standby", "leader": leader}, status_code=503)
    status_code, document = answer
    return JSONResponse(
        document, status_code=status_code, headers={"X-Syncd-Forwarded-To": document["forwarded_to"]}
    )


async def resync(request: Request) -> Response:
    daemon = _daemon(request)
    if "authorization" not in request.headers and _secret(request):
        if _has_session(request):
            return await resync_from_page(request)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _redirect("/login")  # the page's form after the session ended: sign in again
    refused = _authorised(request)
    if refused is not None:
        return refused
    if not daemon.leadership.is_leader:
        return await standby_resync(request)
    try:
        body = await request.json() if await request.body() else {}
    except ValueError:
        return JSONResponse({"error": 'the body must be JSON like {"full": true}'}, status_code=400)
    full = bool(body.get("full", False)) if isinstance(body, dict) else False
    force = bool(body.get("force", False)) if isinstance(body, dict) else False
    future = daemon.trigger(
        full=full, trigger="manual", force=force, requested_by=requester(request, "bearer token")
    )
    if request.query_params.get("wait", "").lower() not in {"1", "true", "yes"}:
        return JSONResponse({"queued": True, "full": full, "force": force}, status_code=202)
    try:
        # Shielded: a client that goes away must not cancel the cycle's future for everyone else.
        result = await asyncio.shield(future)
    except asyncio.CancelledError:
        if not future.cancelled():
            raise  # this request itself was cancelled (the client went away, shutdown)
        return JSONResponse({"error": "the cycle was cancelled (stopping, or no longer the leader)"}, 503)
    except Exception as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse(result.to_json())


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """Any endpoint whose database read failed: 503 with the store's message (the URL's password hidden),
    not a 500 and a traceback."""
    log.warning("admin.database_unavailable", path=request.url.path, error=str(exc)[:500])
    return JSONResponse({"error": f"database unavailable: {exc}"}, status_code=503)


def build_app(daemon: AdminDaemon) -> Starlette:
    """The admin application bound to one daemon: its token, sessions, failure limiter and Host check are
    read and made once, as the daemon reads its settings once."""
    admin = daemon.settings.admin
    token = admin.token
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/explain/{object_id:str}", explain),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/status", status),
            Route("/resync", resync, methods=["POST"]),
        ],
        middleware=[Middleware(HostCheck, allowed=allowed_hosts(admin))],
        exception_handlers={StoreError: _database_unavailable},
    )
    app.state.daemon = daemon
    app.state.admin_token = token.get_secret_value() if token is not None else ""
    # Sign-outs are remembered in memory only: a session signed before this start is refused, so a restart
    # never brings a signed-out cookie back (everyone signs in again).
    app.state.sessions = Sessions(not_before=int(time.time()))
    app.state.limiter = FailureLimiter()
    app.state.secure_cookie = admin.secure_cookie or admin.tls
    app.state.templates = Jinja2Templates(env=statuspage.environment())
    return app


__all__ = [
    "AUTH_FAILURE_LIMIT",
    "AUTH_FAILURE_WINDOW_S",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE_S",
    "AdminDaemon",
    "build_app",
    "session_valid",
    "session_value",
]
