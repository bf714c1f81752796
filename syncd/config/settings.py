"""Typed settings of syncd, section by section, with units in the names and a docstring per field.

`Settings` gathers the sections: `[database]` and `[sync]` are here, `[graph]` and `[smartcomm]` in
`syncd.config.remotes`, `[admin]`, `[notify]` and `[log]` in `syncd.config.service`; this module re-exports
them all, so callers import every model and `ConfigError` from here. Loading them from TOML,
`SYNCD_<SECTION>__<KEY>` environment variables and `*_file` secrets is `syncd.config.loader`'s job.
"""

from __future__ import annotations

from typing import Literal, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.config.fields import ConfigError
from syncd.config.remotes import GraphSettings, SmartCommSettings
from syncd.config.service import AdminSettings, LogSettings, NotifySettings

__all__ = [
    "AdminSettings",
    "ConfigError",
    "DatabaseSettings",
    "GraphSettings",
    "LogSettings",
    "NotifySettings",
    "Settings",
    "SmartCommSettings",
    "SyncSettings",
]


_DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


class DatabaseSettings(BaseModel):
    """The `[database]` section: where syncd records members, runs, operations and small key/values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "sqlite:///data/syncd.db"
    """SQLAlchemy URL of the database. Default "sqlite:///data/syncd.db" (a path relative to the working
    directory; four slashes for an absolute one). `postgresql+psycopg://user:password@host:5432/syncd` lets
    several replicas share state. May carry a password, so messages never echo it."""

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        # make_url's own errors quote the whole URL, password included: say what is wrong without it.
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(
                "not a SQLAlchemy URL: use e.g. sqlite:///data/syncd.db or postgresql+psycopg://user@host/syncd"
            ) from None
        if url.drivername not in _DATABASE_DRIVERS:
            hint = " (psycopg 3 is the installed driver)" if url.drivername.startswith("postgresql") else ""
            raise ValueError(
                f"unsupported driver {url.drivername!r}{hint}: use sqlite:///path.db or postgresql+psycopg://..."
            )
        return value


class SyncSettings(BaseModel):
    """The `[sync]` section: how often cycles run, how much one may do, and how failed users are retried.

    Durations are floats of seconds here; in TOML and the environment they are written "90s", "15m",
    "1h30m", "500ms" or as a bare number of seconds, under the field's name without `_s` (`interval`, not
    `interval_s`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(default=900.0, gt=0, alias="interval")
    """Seconds between incremental cycles, which read only Graph's changes (delta queries) and compare them
    with our records: cheap enough for "1m". TOML `interval`; default 900 ("15m")."""
    full_interval_s: float = Field(default=86400.0, gt=0, alias="full_interval")
    """Seconds between full cycles, which re-read every group and compare with the remote agents list to
    repair drift. TOML `full_interval`; default 86400 ("24h")."""
    jitter_s: float = Field(default=30.0, ge=0, alias="jitter")
    """Up to this many seconds of random delay before each scheduled cycle, so restarts and replicas do not
    call the APIs in step. TOML `jitter`; default 30 ("30s")."""
    max_offboard: int = Field(default=25, ge=0)
    """Safety guard: a cycle that would delete more agents than this deletes none and stops (exit 3); 0 stops
    every cycle that would delete one. A count of agents; default 25."""
    concurrency: int = Field(default=8, ge=1, le=256)
    """SmartCommunicator writes in flight at once, 1..256. A count of requests; default 8."""
    retry_initial_s: float = Field(default=60.0, gt=0, alias="retry_initial")
    """Seconds before the first retry of a user whose change failed (a conflict, a rejected number); the
    delay doubles per failure up to `retry_max`. TOML `retry_initial`; default 60 ("1m")."""
    retry_max_s: float = Field(default=21600.0, gt=0, alias="retry_max")
    """Longest delay between retries of a failing user, at least `retry_initial`. TOML `retry_max`; default
    21600 ("6h")."""
    shutdown_grace_s: float = Field(default=20.0, ge=0, alias="shutdown_grace")
    """Seconds a cycle in flight may run on after SIGTERM before it is cancelled (its pending operations are
    settled at the next start). TOML `shutdown_grace`; default 20 ("20s"), below common container stop
    timeouts."""
    quarantine_failure_share: float = Field(default=0.5, gt=0, le=1)
    """Systemic-failure rule: a cycle whose failed writes exceed this share of the writes it tried (once at
    least `quarantine_min_writes` were tried) stops starting writes and is quarantined. A share, 0..1;
    default 0.5."""
    quarantine_min_writes: int = Field(default=10, ge=1)
    """Writes a cycle must have tried before `quarantine_failure_share` is judged. A count; default 10."""
    quarantine_initial_s: float = Field(default=60.0, gt=0, alias="quarantine_initial")
    """Seconds before the first scheduled retry of a quarantined cycle; the delay doubles per failed cycle up
    to `quarantine_max`. TOML `quarantine_initial`; default 60 ("1m")."""
    quarantine_max_s: float = Field(default=3600.0, gt=0, alias="quarantine_max")
    """Longest delay between scheduled cycles while quarantined. TOML `quarantine_max`; default 3600
    ("1h")."""
    leader_takeover_s: float = Field(default=30.0, gt=0, alias="leader_takeover")
    """With PostgreSQL and several `syncd run` replicas: seconds within which a standby takes over after the
    leader dies. TOML `leader_takeover`; default 30 ("30s")."""
    history_days: int = Field(default=365, ge=1, le=36500)
    """Days the audit history (operations and runs) is kept; older settled entries are deleted by the
    daemon at start and daily, and by `syncd sync` when the last prune is a day old. A count of days,
    1..36500; default 365."""

    @field_validator("retry_max_s")
    @classmethod
    def _not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("retry_initial_s")
        if initial is not None and value < initial:
            raise ValueError("must not be shorter than sync.retry_initial")
        return value

    @field_validator("quarantine_max_s")
    @classmethod
    def _not_below_quarantine_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("quarantine_initial_s")
        if initial is not None and value < initial:
            raise ValueError("must not be shorter than sync.quarantine_initial")
        return value


class Settings(BaseModel):
    """All of syncd's settings, one attribute per TOML section (`syncd.config.loader.load_settings`).

    `graph` and `smartcomm` have required keys and no defaults, so they are None when the configuration has
    no such section; commands that need them call `require`, which fails like any other configuration error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    """The `[database]` section; every key has a default."""
    graph: GraphSettings | None = None
    """The `[graph]` section, or None when it is absent (from the file and from the environment)."""
    smartcomm: SmartCommSettings | None = None
    """The `[smartcomm]` section, or None when it is absent (from the file and from the environment)."""
    sync: SyncSettings = Field(default_factory=SyncSettings)
    """The `[sync]` section; every key has a default."""
    admin: AdminSettings = Field(default_factory=AdminSettings)
    """The `[admin]` section; every key has a default."""
    notify: NotifySettings = Field(default_factory=NotifySettings)
    """The `[notify]` section; every key has a default (no webhook: no notifications)."""
    log: LogSettings = Field(default_factory=LogSettings)
    """The `[log]` section; every key has a default."""

    @overload
    def require(self, section: Literal["graph"]) -> GraphSettings: ...
    @overload
    def require(self, section: Literal["smartcomm"]) -> SmartCommSettings: ...
    def require(self, section: Literal["graph", "smartcomm"]) -> GraphSettings | SmartCommSettings:
        """The named section, or ConfigError(section, "missing section [<section>]") when it is absent."""
        value = self.graph if section == "graph" else self.smartcomm
        if value is None:
            raise ConfigError(section, f"missing section [{section}]")
        return value

    def require_graph(self) -> GraphSettings:
        """`require("graph")`: the `[graph]` section, or ConfigError("graph", "missing section [graph]")."""
        return self.require("graph")

    def require_smartcomm(self) -> SmartCommSettings:
        """`require("smartcomm")`: the `[smartcomm]` section, or ConfigError naming it when it is absent."""
        return self.require("smartcomm")
