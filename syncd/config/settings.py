"""Typed settings of syncd, section by section, with units in the names and a docstring per field.

`Settings` gathers the sections: `[database]` and `[sync]` are here, `[graph]` and `[smartcomm]` in
`syncd.config.remotes`, `[admin]`, `[notify]` and `[log]` in `syncd.config.service`; this module re-exports
them all, so callers import every model and `ConfigError` from here. Loading them from TOML,
`SYNCD_<SECTION>__<KEY>` environment variables and `*_file` secrets is `syncd.config.loader`'s job.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.config.fields import (
    DAY,
    FILE_FORM,
    HOUR,
    ConfigError,
    at_most,
    choice,
    duration_words,
    seconds_words,
)
from syncd.config.limits import GuardLimit, GuardLimitOrOff
from syncd.config.remotes import GraphSettings, SmartCommSettings
from syncd.config.service import AdminSettings, LogSettings, NotifySettings
from syncd.core.limits import DEFAULT_MAX_RELINK, Limit

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

    url: Annotated[str, FILE_FORM] = "sqlite:///data/syncd.db"
    """SQLAlchemy URL of the database. Default "sqlite:///data/syncd.db" (a path relative to the working
    directory; four slashes for an absolute one). `postgresql+psycopg://user:password@host:5432/syncd` lets
    several replicas share state. May carry a password, so messages never echo it, and like a secret it can
    be given as `url_file`, the path of a file holding it (a Kubernetes Secret mounted as a file)."""

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


DEFAULT_INTERVAL_S = 900.0
"""`sync.interval` when it is not given: 15 minutes."""
DEFAULT_JITTER_S = 30.0
"""`sync.jitter` when it is not given, unless a tenth of `sync.interval` is less."""
JITTER_SHARE = 0.1
"""The largest share of `sync.interval` that `sync.jitter` may be."""
OFFBOARD_GRACE_MAX_S = 90 * DAY
"""The longest `sync.offboard_grace`: three times the 30 days Entra keeps a deleted user restorable."""
RELINK_MODES = ("auto", "off")
"""The values of `sync.relink`."""


class SyncSettings(BaseModel):
    """The `[sync]` section: how often cycles run, how much one may do, and how failed users are retried.

    Durations are floats of seconds here, each with an upper bound; in TOML and the environment they are
    written "90s", "15m", "1h30m", "500ms" or as a bare number of seconds, under the field's name without
    `_s` (`interval`, not `interval_s`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: Annotated[float, at_most(DAY)] = Field(default=DEFAULT_INTERVAL_S, gt=0, alias="interval")
    """Seconds between incremental cycles, which read only Graph's changes (delta queries) and compare them
    with our records: cheap enough for "1m". At most 86400 ("1d"). TOML `interval`; default 900 ("15m")."""
    full_interval_s: Annotated[float, at_most(30 * DAY)] = Field(default=DAY, gt=0, alias="full_interval")
    """Seconds between full cycles, which re-read every group and compare with the remote agents list to
    repair drift. At most 2592000 ("30d"). TOML `full_interval`; default 86400 ("24h")."""
    jitter_s: float = Field(default=DEFAULT_JITTER_S, ge=0, alias="jitter")
    """Up to this many seconds of random delay added to each scheduled cycle, so restarts and replicas do
    not call the APIs in step. Never more than a tenth of `interval`, so that short intervals stay short
    ("1s" runs a cycle every 1 to 1.1 s): a larger jitter is a configuration error. TOML `jitter`; default
    the smaller of 30 ("30s") and a tenth of `interval` (30 with the default interval). After validation
    this holds the jitter in effect."""
    max_offboard: GuardLimit = Field(default=Limit(count=25))
    """Safety guard: a cycle that would delete more agents than this deletes none and stops (exit 3); 0 stops
    every cycle that would delete one. A count of agents (`25`), a percentage of the agents syncd manages
    (`"10%"`), or both (`[200, "10%"]`: the smaller wins); see `syncd.config.limits`. Offboards held by
    `offboard_grace` count when they fall due. Default 25."""
    max_update: GuardLimitOrOff = Field(default=Limit(count=500))
    """Safety guard: a cycle that would update (PATCH) more agents than this sends nothing and stops (exit 3);
    0 turns the guard off. The same forms as `max_offboard` (`500`, `"5%"`, `[500, "5%"]`). Default 500."""
    max_relink: GuardLimit = Field(default=Limit(count=DEFAULT_MAX_RELINK))
    """Safety guard: a cycle that would relink more agents than this (move them to the new object IDs of
    users re-created in Entra) sends nothing and stops (exit 3); 0 stops every cycle that would relink one.
    The same forms as `max_offboard` (`50`, `"5%"`, `[50, "5%"]`). Default 50."""
    relink: str = "auto"
    """"auto": a person in scope whose consistency GUID belongs to the agent of an object ID that left scope
    (the same person re-created in Entra) gets that agent moved to them, data included (one PATCH with
    `transfer_data`). "off": that agent is offboarded and the onboarding fails on the GUID, naming
    `syncd relink`, which an admin runs by hand. Default "auto"."""
    offboard_grace_s: Annotated[float, at_most(OFFBOARD_GRACE_MAX_S)] = Field(
        default=0.0, ge=0, alias="offboard_grace"
    )
    """Seconds a person must have been out of scope before their agent is offboarded: coming back within
    them cancels the offboard with no write, and a re-created user appearing within them is relinked.
    At most 7776000 ("90d"). TOML `offboard_grace`; default 0 (offboard in the cycle that finds them out of
    scope)."""
    concurrency: int = Field(default=8, ge=1, le=256)
    """SmartCommunicator writes in flight at once at most, 1..256; fewer while 429 or 503 answers have cut the
    adaptive write concurrency. A count of requests; default 8."""
    retry_initial_s: Annotated[float, at_most(7 * DAY)] = Field(default=60.0, gt=0, alias="retry_initial")
    """Seconds before the first retry of a user whose change failed (a conflict, a rejected number); the
    delay doubles per failure up to `retry_max`. At most 604800 ("7d"). TOML `retry_initial`; default 60
    ("1m")."""
    retry_max_s: Annotated[float, at_most(7 * DAY)] = Field(default=21600.0, gt=0, alias="retry_max")
    """Longest delay between retries of a failing user in seconds, at least `retry_initial` and at most
    604800 ("7d"). TOML `retry_max`; default 21600 ("6h")."""
    shutdown_grace_s: Annotated[float, at_most(HOUR)] = Field(default=20.0, ge=0, alias="shutdown_grace")
    """Seconds a cycle in flight may run on after SIGTERM before it is cancelled (its pending operations are
    settled at the next start), at most 3600 ("1h"). TOML `shutdown_grace`; default 20 ("20s"), below
    common container stop timeouts."""
    quarantine_failure_share: float = Field(default=0.5, gt=0, le=1)
    """Systemic-failure rule: a cycle whose failed writes exceed this share of the writes it tried (once at
    least `quarantine_min_writes` were tried) stops starting writes and is quarantined. A share, 0..1;
    default 0.5."""
    quarantine_min_writes: int = Field(default=10, ge=1)
    """Writes a cycle must have tried before `quarantine_failure_share` is judged. A count; default 10."""
    quarantine_initial_s: Annotated[float, at_most(7 * DAY)] = Field(
        default=60.0, gt=0, alias="quarantine_initial"
    )
    """Seconds before the first scheduled retry of a quarantined cycle; the delay doubles per failed cycle up
    to `quarantine_max`. At most 604800 ("7d"). TOML `quarantine_initial`; default 60 ("1m")."""
    quarantine_max_s: Annotated[float, at_most(7 * DAY)] = Field(default=3600.0, gt=0, alias="quarantine_max")
    """Longest delay between scheduled cycles while quarantined in seconds, at least `quarantine_initial`
    and at most 604800 ("7d"). TOML `quarantine_max`; default 3600 ("1h")."""
    leader_takeover_s: Annotated[float, at_most(HOUR)] = Field(default=30.0, gt=0, alias="leader_takeover")
    """With PostgreSQL and several `syncd run` replicas: seconds within which a standby takes over after the
    leader dies, at most 3600 ("1h"). TOML `leader_takeover`; default 30 ("30s")."""
    history_days: int = Field(default=365, ge=1, le=36500)
    """Days the audit history (operations and runs) is kept; older settled entries are deleted by the
    daemon at start and daily, and by `syncd sync` when the last prune is a day old. A count of days,
    1..36500; default 365."""

    @model_validator(mode="before")
    @classmethod
    def _default_jitter(cls, data: object) -> object:
        """Pure: `data` with the default jitter for its interval when no jitter is given (and the interval is
        a usable number; an unusable one is reported by its own field)."""
        if not isinstance(data, dict) or "jitter" in data:
            return data
        interval = data.get("interval", DEFAULT_INTERVAL_S)
        try:
            seconds = float(interval)
        except (TypeError, ValueError):
            return data
        if isinstance(interval, bool) or not math.isfinite(seconds) or seconds <= 0:
            return data
        return {**data, "jitter": min(DEFAULT_JITTER_S, seconds * JITTER_SHARE)}

    @field_validator("jitter_s")
    @classmethod
    def _jitter_within_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval_s")
        if interval is not None and value > interval * JITTER_SHARE:
            raise ValueError(
                f"must be at most a tenth of sync.interval ({duration_words(interval)}), so at most "
                f"{seconds_words(interval * JITTER_SHARE)}"
            )
        return value

    @field_validator("relink")
    @classmethod
    def _relink_mode(cls, value: str) -> str:
        return choice(value, RELINK_MODES)

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
