"""Typed settings of syncd, section by section, with units in the names and a docstring per field.

`Settings` gathers the sections. Loading them from TOML, `SYNCD_<SECTION>__<KEY>` environment variables
and `*_file` secrets is `syncd.config.loader`'s job; the models here, and `ConfigError` (raised by the
loader and by `Settings.require`), are what the rest of the code depends on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, overload
from urllib.parse import urlsplit

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.core.model import TEAMS, TEAMS_CATEGORIES, parse_phone_attribute, parse_phone_source


class SmartCommSettings(BaseModel):
    """The `[smartcomm]` section: where and how to reach the SmartCommunicator agents API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "https://atmosphere-api.intelepeer.com"
    """Scheme and host of the Atmosphere API, no path; https only."""
    customer_id: int = Field(gt=0)
    """The IntelePeer customer account ID (Customer Portal: Enterprise Settings > SFTP Settings)."""
    username: str = Field(min_length=1)
    """The API user's username."""
    password: SecretStr
    """The API user's password; never logged or printed."""
    ca_bundle: str = ""
    """Path of a PEM file of CA certificates to trust; empty means the system's trust store. Environment
    variables such as REQUESTS_CA_BUNDLE are deliberately ignored."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds to establish a connection (TCP + TLS)."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Seconds to wait for each read of a response before the attempt counts as timed out."""
    pool_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds a request may wait for a free pooled connection."""
    max_connections: int = Field(default=32, ge=1)
    """Size of the connection pool shared by all concurrent requests."""
    max_attempts: int = Field(default=5, ge=1)
    """Attempts per request, the first included, for timeouts, connection errors, 5xx and 429."""
    backoff_initial_s: float = Field(default=0.5, ge=0)
    """Backoff before the second attempt; doubles per attempt, with jitter."""
    backoff_max_s: float = Field(default=30.0, ge=0)
    """Upper bound of one backoff delay."""
    retry_after_max_s: float = Field(default=120.0, ge=0)
    """Longest Retry-After we wait for; a longer one ends the request as throttled."""
    token_renew_margin_s: float = Field(default=300.0, ge=0)
    """Renew the token this long before its `exp` (never more than a tenth of its lifetime)."""
    auth_failure_cooldown_s: float = Field(default=60.0, ge=0)
    """After the service rejects the credentials, fail at once for this long instead of asking again."""

    @field_validator("base_url")
    @classmethod
    def _https_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be scheme and host only, e.g. https://atmosphere-api.intelepeer.com")
        return value.rstrip("/")

    @field_validator("ca_bundle")
    @classmethod
    def _readable_file(cls, value: str) -> str:
        return _existing_file(value)


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _existing_file(value: str) -> str:
    """Pure but for the check: `value` when it is empty or names a file, else ValueError."""
    if value and not Path(value).is_file():
        raise ValueError(f"no such file: {value}")
    return value


def _choice(value: str, choices: tuple[str, ...]) -> str:
    """Pure: `value` trimmed and lower-cased when it is one of `choices`, else ValueError listing them."""
    chosen = value.strip().lower()
    if chosen not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return chosen


def _https_url(value: str, *, path_allowed: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    if parts.query or parts.fragment or (not path_allowed and parts.path not in ("", "/")):
        raise ValueError("must be scheme and host only")
    return value.rstrip("/")


class GraphSettings(BaseModel):
    """The `[graph]` section: the Entra app registration and what to read from Microsoft Graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str
    """The Entra tenant's GUID; also the `tenant_id` of every agent."""
    client_id: str
    """The app registration's application (client) ID."""
    client_secret: SecretStr | None = None
    """The app's client secret; never logged. Give this or `certificate_path`."""
    certificate_path: str = ""
    """A PEM file with the private key and its certificate, or a .pfx/.p12 file; instead of a secret."""
    certificate_password: SecretStr | None = None
    """Passphrase of an encrypted private key or PFX file."""
    authority_host: str = "https://login.microsoftonline.com"
    """The Entra login host: sovereign clouds use e.g. https://login.microsoftonline.us."""
    base_url: str = "https://graph.microsoft.com/v1.0"
    """Graph endpoint with its version path, e.g. https://graph.microsoft.us/v1.0 for GCC High."""
    group_ids: list[str] = Field(min_length=1)
    """Object IDs of the groups whose (transitive) members become agents."""
    phone_attribute: str = ""
    """The single place the number lives (the older form of `phone_source`): businessPhones (first entry),
    mobilePhone, or onPremisesExtensionAttributes.extensionAttributeN (N = 1..15). Empty: businessPhones."""
    phone_source: list[str] = Field(default_factory=list)
    """Where numbers come from, in order of preference: "teams" (the user's Teams number assignment) and any
    phone attributes; the first that yields one valid number wins. Empty: [phone_attribute]."""
    teams_categories: list[str] = Field(default_factory=lambda: ["primary"])
    """Teams assignment categories that may give the number, in order of preference (primary, private,
    alternate)."""
    teams_page_size: int = Field(default=1000, ge=1, le=1000)
    """Teams number assignments per page (`$top`); Graph allows at most 1,000."""
    default_region: str = "US"
    """ISO 3166 region for numbers written without a country code, e.g. "(415) 555-0123"."""
    ca_bundle: str = ""
    """PEM file of CA certificates to trust for login and Graph; empty means the system's trust store."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds to establish a connection."""
    timeout_s: float = Field(default=60.0, gt=0)
    """Seconds to wait for each read of a response (a page of 999 users can take a while)."""
    page_size: int = Field(default=999, ge=1, le=999)
    """Members per page (`$top`); Graph allows at most 999."""
    max_retries: int = Field(default=5, ge=0, le=10)
    """Retries of a throttled (429) or unavailable (503/504) request by the Graph SDK's retry handler."""
    retry_delay_s: float = Field(default=1.0, ge=0, le=180)
    """Base delay the SDK adds to each retry's exponential backoff (a Retry-After header wins)."""
    max_attempts: int = Field(default=4, ge=1)
    """Attempts per page for timeouts and dropped connections, the first included."""

    @field_validator("tenant_id", "client_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not _GUID.match(value.strip()):
            raise ValueError("must be a GUID like 8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0")
        return value.strip().lower()

    @field_validator("group_ids")
    @classmethod
    def _guids(cls, values: list[str]) -> list[str]:
        bad = [value for value in values if not _GUID.match(value.strip())]
        if bad:
            raise ValueError(f"not group object IDs (GUIDs): {', '.join(bad)}")
        return list(dict.fromkeys(value.strip().lower() for value in values))

    @field_validator("authority_host")
    @classmethod
    def _authority(cls, value: str) -> str:
        return _https_url(value, path_allowed=False)

    @field_validator("base_url")
    @classmethod
    def _graph_url(cls, value: str) -> str:
        return _https_url(value, path_allowed=True)

    @field_validator("phone_attribute")
    @classmethod
    def _phone_attribute(cls, value: str) -> str:
        return parse_phone_attribute(value) if value.strip() else ""

    @field_validator("phone_source", mode="before")
    @classmethod
    def _one_source(cls, value: object) -> object:
        # A single source may be written as a string: phone_source = "teams".
        return [value] if isinstance(value, str) else value

    @field_validator("phone_source")
    @classmethod
    def _phone_source(cls, values: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("phone_attribute"):
            raise ValueError("give phone_source or the older phone_attribute, not both")
        chain = [parse_phone_source(value) for value in values]
        repeated = sorted({source for source in chain if chain.count(source) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        return chain

    @field_validator("teams_categories")
    @classmethod
    def _teams_categories(cls, values: list[str]) -> list[str]:
        categories = list(dict.fromkeys(value.strip().lower() for value in values))
        unknown = [value for value in categories if value not in TEAMS_CATEGORIES]
        if unknown or not categories:
            raise ValueError(f"choose one or more of {', '.join(TEAMS_CATEGORIES)}")
        return categories

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}: use an ISO 3166 code such as US, GB or DE")
        return region

    @field_validator("ca_bundle", "certificate_path")
    @classmethod
    def _existing_file(cls, value: str) -> str:
        return _existing_file(value)

    @model_validator(mode="after")
    def _one_credential(self) -> GraphSettings:
        has_secret = self.client_secret is not None and bool(self.client_secret.get_secret_value())
        if has_secret == bool(self.certificate_path):
            raise ValueError("give exactly one of client_secret or certificate_path")
        return self

    @property
    def phone_chain(self) -> tuple[str, ...]:
        """The phone sources in order: `phone_source`, or else `phone_attribute` (default businessPhones)."""
        return tuple(self.phone_source) or (self.phone_attribute or "businessPhones",)

    @property
    def uses_teams(self) -> bool:
        """Whether a cycle reads the Teams number assignments."""
        return TEAMS in self.phone_chain

    @property
    def graph_origin(self) -> str:
        """Scheme and host of `base_url`: the audience of Graph tokens (`<origin>/.default`)."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"


class ConfigError(Exception):
    """A configuration the user must fix.

    `key` is the dotted key at fault ("graph.client_secret"), or "" for the whole file; `str(error)` is
    "<key>: <message>" (just the message without a key). When several keys are wrong, `key` is the first and
    `message` goes on with "; <key>: <message>" for each other; `problems` holds every (key, message) pair.
    Messages never contain a secret value.
    """

    def __init__(self, key: str, message: str, *, problems: Sequence[tuple[str, str]] = ()) -> None:
        self.key = key
        self.message = message
        self.problems: tuple[tuple[str, str], ...] = tuple(problems) or ((key, message),)
        super().__init__(f"{key}: {message}" if key else message)

    @classmethod
    def from_problems(cls, problems: Sequence[tuple[str, str]]) -> ConfigError:
        """One error for every (key, message) in `problems` (at least one), in their order."""
        (key, message), *rest = problems
        text = "; ".join([message, *(f"{other}: {what}" if other else what for other, what in rest)])
        return cls(key, text, problems=problems)


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


_HOSTNAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class AdminSettings(BaseModel):
    """The `[admin]` section: the admin HTTP API (/healthz /readyz /metrics /status /resync)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8080"
    """Address the admin API listens on, host:port with port 1..65535 and an IPv6 address in brackets
    ("[::1]:8080"); "0.0.0.0:8080" listens on every interface. Default "127.0.0.1:8080"."""
    token: SecretStr | None = None
    """Bearer token that admin API clients must send (`Authorization: Bearer <token>`); never logged. Default
    unset, and then no request can authenticate."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, colon, port = value.strip().rpartition(":")
        if not colon or not host:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("port must be a number from 1 to 65535")
        if host.startswith("[") and host.endswith("]"):
            try:
                ipaddress.IPv6Address(host[1:-1])
            except ValueError:
                raise ValueError(f"{host} is not an IPv6 address in brackets") from None
        elif ":" in host:
            raise ValueError("put an IPv6 address in brackets, e.g. [::1]:8080")
        elif not _HOSTNAME.match(host):
            raise ValueError(f"{host!r} is not a host name or address")
        return f"{host}:{int(port)}"

    @field_validator("token")
    @classmethod
    def _non_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @property
    def host(self) -> str:
        """The host part of `listen`, without the brackets of an IPv6 address."""
        return self.listen.rpartition(":")[0].removeprefix("[").removesuffix("]")

    @property
    def port(self) -> int:
        """The port part of `listen`."""
        return int(self.listen.rpartition(":")[2])


_NOTIFY_FORMATS = ("teams", "json")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class NotifySettings(BaseModel):
    """The `[notify]` section: a webhook told when syncd needs an admin, and optionally a daily summary."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: SecretStr | None = None
    """URL that receives one JSON POST per event (a cycle failing as a whole or recovering, a safety guard
    stopping a cycle, the daily summary), e.g. a Microsoft Teams incoming webhook (Workflows). It
    carries its own credential, so it is a secret: never logged. https, or http to a loopback address.
    Default unset: no notifications."""
    format: str = "teams"
    """teams: an Adaptive Card message, as a Teams incoming webhook renders it; json: a plain JSON object
    (event, title, text, facts, time). Default "teams"."""
    daily_summary: bool = False
    """Also send a summary of the last 24 hours once a day at `daily_summary_at` (the daemon only).
    Default false."""
    daily_summary_at: str = "08:00"
    """UTC time of day of the daily summary, HH:MM. Default "08:00"."""
    timeout_s: float = Field(default=10.0, gt=0, alias="timeout")
    """Seconds to wait for the webhook to answer one POST. TOML `timeout`; default 10 ("10s")."""
    max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per notification (timeouts, dropped connections, 5xx and 429 are retried with backoff),
    the first included. Default 5."""
    ca_bundle: str = ""
    """PEM file of CA certificates to trust for the webhook; empty means the system's trust store."""

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value().strip()
        parts = urlsplit(url)
        # Never quote the URL: it is the credential.
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError("must be https (plain http only to a loopback address)")
        return SecretStr(url)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        return _choice(value, _NOTIFY_FORMATS)

    @field_validator("daily_summary_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value.strip()):
            raise ValueError('must be a UTC time of day as HH:MM, e.g. "08:00"')
        return value.strip()

    @field_validator("ca_bundle")
    @classmethod
    def _existing_file(cls, value: str) -> str:
        return _existing_file(value)

    @property
    def enabled(self) -> bool:
        """Whether notifications are sent at all."""
        return self.webhook_url is not None


_LOG_LEVELS = ("debug", "info", "warning", "error")
_LOG_FORMATS = ("auto", "json", "console")


class LogSettings(BaseModel):
    """The `[log]` section: how much syncd logs, and in which form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: str = "info"
    """Least severe level written: debug, info, warning or error (any case). Default "info"."""
    format: str = "auto"
    """json (one object per line), console (for a human), or auto: console on a terminal, JSON otherwise
    (a container). Default "auto"."""

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        return _choice(value, _LOG_LEVELS)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        return _choice(value, _LOG_FORMATS)


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
