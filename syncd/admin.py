"""The admin HTTP API of the daemon (starlette, served by uvicorn on the daemon's event loop).

GET /healthz (alive), /readyz (database reachable and the last cycle did not fail as a whole), /metrics
(Prometheus) are open; GET /status and POST /resync need `Authorization: Bearer <admin.token>`, compared in
constant time, and are refused outright when no token is configured.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.engine import status_document
from syncd.store import StoreError

if TYPE_CHECKING:
    from syncd.daemon import Daemon


def build_app(daemon: Daemon) -> Starlette:
    """The admin application bound to one daemon."""
    token = daemon.settings.admin.token

    def authorised(request: Request) -> Response | None:
        if token is None or not token.get_secret_value():
            return JSONResponse(
                {"error": "admin.token is not configured: /status and /resync are disabled"}, status_code=403
            )
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
            return JSONResponse(
                {"error": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.to_thread(daemon.store.count_by_status)
        except StoreError as exc:
            return JSONResponse({"status": "not ready", "reason": f"database: {exc}"}, status_code=503)
        failure = daemon.systemic_failure
        if failure is not None:
            return JSONResponse({"status": "not ready", "reason": failure}, status_code=503)
        return JSONResponse({"status": "ready", "last_outcome": daemon.last_outcome})

    async def metrics(request: Request) -> Response:
        return Response(daemon.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def status(request: Request) -> Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        document = await asyncio.to_thread(status_document, daemon.store, 10)
        document["daemon"] = {
            "running": None if daemon.running is None else daemon.running.trigger,
            "last_outcome": daemon.last_outcome,
            "started_at": daemon.started_at,
        }
        return JSONResponse(document)

    async def resync(request: Request) -> Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            return JSONResponse({"error": 'the body must be JSON like {"full": true}'}, status_code=400)
        full = bool(body.get("full", False)) if isinstance(body, dict) else False
        force = bool(body.get("force", False)) if isinstance(body, dict) else False
        future = daemon.trigger(full=full, trigger="manual", force=force)
        if request.query_params.get("wait", "").lower() not in {"1", "true", "yes"}:
            return JSONResponse({"queued": True, "full": full, "force": force}, status_code=202)
        try:
            # Shielded: a client that goes away must not cancel the cycle's future for everyone else.
            result = await asyncio.shield(future)
        except Exception as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse(result.to_json())

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/status", status),
            Route("/resync", resync, methods=["POST"]),
        ]
    )
