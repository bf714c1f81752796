"""The settings of the two remote APIs: `[graph]` (the Entra app registration and what to read from Microsoft
Graph) and `[smartcomm]` (where and how to reach the SmartCommunicator agents API)."""

from __future__ import annotations

from urllib.parse import urlsplit

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from syncd.config.fields import GUID, existing_file, https_url
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
        return existing_file(value)


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
        if not GUID.match(value.strip()):
            raise ValueError("must be a GUID like 8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0")
        return value.strip().lower()

    @field_validator("group_ids")
    @classmethod
    def _guids(cls, values: list[str]) -> list[str]:
        bad = [value for value in values if not GUID.match(value.strip())]
        if bad:
            raise ValueError(f"not group object IDs (GUIDs): {', '.join(bad)}")
        return list(dict.fromkeys(value.strip().lower() for value in values))

    @field_validator("authority_host")
    @classmethod
    def _authority(cls, value: str) -> str:
        return https_url(value, path_allowed=False)

    @field_validator("base_url")
    @classmethod
    def _graph_url(cls, value: str) -> str:
        return https_url(value, path_allowed=True)

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
        return existing_file(value)

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
