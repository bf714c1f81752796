"""Typed settings of syncd, section by section, with units in the names and a docstring per field.

Loading them from TOML, `SYNCD_<SECTION>__<KEY>` environment variables and `*_file` secrets arrives with
the sync-cycle issue; the models here are what the rest of the code depends on.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


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
        if value and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value
