"""What the admin API (`syncd.service.admin`) needs of the daemon, as Protocols: the daemon implements them,
and admin.py depends on them rather than on `syncd.service.daemon` (which builds the app: no import cycle).
Tests hand the app a stand-in of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from syncd.config.settings import Settings
from syncd.cycle.engine import CycleResult
from syncd.store import Store


class RunningCycle(Protocol):
    """The cycle in flight, as the pages show it."""

    @property
    def trigger(self) -> str: ...

    @property
    def full(self) -> bool: ...


class AdminLeadership(Protocol):
    """What the endpoints use of the daemon's leadership (`syncd.service.leader.Leadership`)."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def role(self) -> str: ...

    @property
    def identity(self) -> Mapping[str, Any]: ...

    async def leader(self) -> dict[str, Any] | None: ...


class AdminMetrics(Protocol):
    """What `/metrics` uses of the daemon's metrics (`syncd.service.metrics.Metrics`)."""

    def render(self) -> bytes: ...


class AdminDaemon(Protocol):
    """What the admin API uses of the daemon it serves; `syncd.service.daemon.Daemon` is one, structurally.

    A protocol so that this module never imports the daemon, which imports it to build its app. Read-only
    properties: the daemon's plain attributes satisfy them, and the endpoints never assign any.
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def metrics(self) -> AdminMetrics: ...

    @property
    def leadership(self) -> AdminLeadership: ...

    @property
    def started_at(self) -> float: ...

    @property
    def running(self) -> RunningCycle | None: ...

    @property
    def last_result(self) -> CycleResult | None: ...

    @property
    def last_outcome(self) -> str | None: ...

    @property
    def systemic_failure(self) -> str | None: ...

    def trigger(
        self,
        *,
        full: bool = False,
        trigger: str = "manual",
        force: bool = False,
        requested_by: str | None = None,
    ) -> asyncio.Future[CycleResult]: ...


# The endpoints are module-level and read the daemon and the token from `request.app.state`, which
# build_app fills once: the token is read when the app is built, as the daemon reads its settings once.


__all__ = ["AdminDaemon", "AdminLeadership", "AdminMetrics", "RunningCycle"]
