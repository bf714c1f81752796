"""The settings of what runs beside the cycles: `[admin]` (the admin HTTP API), `[notify]` (the webhook) and
`[log]`."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from syncd.config import material
from syncd.config.fields import MINUTE, at_most, choice

_HOSTNAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MIN_TOKEN_LENGTH = 32
"""The shortest admin token accepted (characters)."""


class AdminSettings(BaseModel):
    """The `[admin]` section: the admin HTTP API (/healthz /readyz /metrics /status /resync)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8080"
    """Address the admin API listens on, host:port with port 1..65535 and an IPv6 address in brackets
    ("[::1]:8080"); "0.0.0.0:8080" listens on every interface. Default "127.0.0.1:8080"."""
    token: SecretStr | None = None
    """Bearer token that admin API clients must send (`Authorization: Bearer <token>`), at least
    MIN_TOKEN_LENGTH characters (make one with `openssl rand -hex 32`); never logged. Default unset, and then
    no request can authenticate."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """More host names (without port) that requests may name in their Host header, beside those always
    allowed (the listen address, localhost, 127.0.0.1, ::1, this machine's name and FQDN and the addresses
    it resolves to); any other is refused (400), which stops DNS rebinding from a browser. /healthz and
    /readyz answer whatever the Host. Add the name a reverse proxy or a Kubernetes Service uses. Default
    empty."""
    tls_cert_path: str = ""
    """PEM certificate (chain) for the admin listener; with `tls_key_path` the listener speaks https only.
    Loaded when the configuration loads. Default empty: plain http (keep `listen` on loopback, or put a TLS
    proxy in front)."""
    tls_key_path: str = ""
    """PEM private key of `tls_cert_path`, unencrypted; checked with the certificate when the configuration
    loads (`ssl.SSLContext.load_cert_chain`). Default empty."""
    secure_cookie: bool = False
    """Mark the status page's session cookie Secure even when the request came over plain http: set it
    behind a TLS-terminating proxy. With the listener's own TLS the cookie is always Secure. Default
    false."""
    max_connections: int = Field(default=64, ge=1, le=10000)
    """Connections the admin listener serves at once; more are refused (503) until some close. Default
    64."""
    header_timeout_s: Annotated[float, at_most(5 * MINUTE)] = Field(default=5.0, gt=0, alias="header_timeout")
    """Seconds a client has to send its whole request head once connected; slower connections are closed.
    At most 300 ("5m"). TOML `header_timeout`; default 5 ("5s")."""

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
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value().strip()
        if not token:
            raise ValueError("must not be empty")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters; make one with `openssl rand -hex 32` or "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, values: list[str]) -> list[str]:
        hosts = [value.strip().lower().removeprefix("[").removesuffix("]") for value in values]
        bad = [host for host in hosts if not host or (":" not in host and not _HOSTNAME.match(host))]
        if bad:
            raise ValueError(f"not host names: {', '.join(repr(b) for b in bad)} (no scheme, no port)")
        return list(dict.fromkeys(hosts))

    @field_validator("tls_cert_path")
    @classmethod
    def _certificate(cls, value: str) -> str:
        return material.server_certificate(value)

    @field_validator("tls_key_path")
    @classmethod
    def _key(cls, value: str, info: ValidationInfo) -> str:
        # Checked with the certificate only when that was accepted: a bad one is the error to fix first.
        return material.server_key(value, info.data.get("tls_cert_path") or "")

    @model_validator(mode="after")
    def _cert_and_key(self) -> AdminSettings:
        if bool(self.tls_cert_path) != bool(self.tls_key_path):
            raise ValueError("give both tls_cert_path and tls_key_path, or neither")
        return self

    @property
    def tls(self) -> bool:
        """Whether the admin listener speaks https."""
        return bool(self.tls_cert_path)

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
    timeout_s: Annotated[float, at_most(5 * MINUTE)] = Field(default=10.0, gt=0, alias="timeout")
    """Seconds to wait for the webhook to answer one POST, at most 300 ("5m"). TOML `timeout`; default 10
    ("10s")."""
    max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per notification (timeouts, dropped connections, 5xx and 429 are retried with backoff),
    the first included. Default 5."""
    ca_bundle: str = ""
    """PEM file of CA certificates to trust for the webhook, loaded when the configuration loads; empty (the
    default) means the system's trust store."""
    audit_log: str = ""
    """Where to write one JSON line per settled operation (`syncd.service.audit`, fields in
    docs/operations.md): "stdout", "stderr", or a file path (appended to, created owner-only; its folder
    must exist). Default empty: no audit log (the history in the database is kept either way)."""

    @field_validator("audit_log")
    @classmethod
    def _audit_target(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "stdout", "stderr"):
            return value
        folder = os.path.dirname(os.path.abspath(value))
        if not os.path.isdir(folder):
            raise ValueError(f'the folder {folder} does not exist (or use "stdout" or "stderr")')
        if os.path.isdir(value):
            raise ValueError("is a folder: give the path of a file")
        return value

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
        return choice(value, _NOTIFY_FORMATS)

    @field_validator("daily_summary_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value.strip()):
            raise ValueError('must be a UTC time of day as HH:MM, e.g. "08:00"')
        return value.strip()

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str) -> str:
        return material.ca_bundle(value)

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
        return choice(value, _LOG_LEVELS)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        return choice(value, _LOG_FORMATS)
