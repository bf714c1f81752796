"""The settings of the two remote APIs: `[graph]` (the Entra app registration and what to read from Microsoft
Graph) and `[smartcomm]` (where and how to reach the SmartCommunicator agents API).

Every duration is a float of seconds with an upper bound (`at_most`); the TLS material they name (CA bundles,
the app's certificate and its passphrase) is opened when the configuration loads (`syncd.config.material`).

phonenumbers (its region list) and the filter's grammar (lark) are imported by the validators of the keys
that need them, when those keys are given (a `default_region` other than the default, a `filter`): a command
that only reads the database (`syncd status`) then does without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from syncd.config import material
from syncd.config.fields import DAY, GUID, HOUR, MINUTE, at_most, https_url
from syncd.core.model import TEAMS, TEAMS_CATEGORIES, parse_phone_attribute, parse_phone_source

if TYPE_CHECKING:
    from syncd.core.scope_filter import ScopeFilter


DEFAULT_REGION = "US"
"""`graph.default_region` when it is not given."""


class SmartCommSettings(BaseModel):
    """The `[smartcomm]` section: where and how to reach the SmartCommunicator agents API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "https://atmosphere-api.intelepeer.com"
    """Scheme and host of the Atmosphere API, no path; https only. Default
    "https://atmosphere-api.intelepeer.com"."""
    customer_id: int = Field(gt=0)
    """The IntelePeer customer account ID (Customer Portal: Enterprise Settings > SFTP Settings), a whole
    number. Required; no default."""
    username: str = Field(min_length=1)
    """The API user's username. Required; no default."""
    password: SecretStr
    """The API user's password; never logged or printed. Required; no default."""
    ca_bundle: str = ""
    """Path of a PEM file of CA certificates to trust, loaded when the configuration loads; empty (the
    default) means the system's trust store. Environment variables such as REQUESTS_CA_BUNDLE are
    deliberately ignored."""
    connect_timeout_s: Annotated[float, at_most(5 * MINUTE)] = Field(default=10.0, gt=0)
    """Seconds to establish a connection (TCP + TLS), at most 300 ("5m"). Default 10."""
    timeout_s: Annotated[float, at_most(HOUR)] = Field(default=30.0, gt=0)
    """Seconds to wait for each read of a response before the attempt counts as timed out, at most 3600
    ("1h"). Default 30."""
    pool_timeout_s: Annotated[float, at_most(HOUR)] = Field(default=60.0, gt=0)
    """Seconds a request may wait for a free pooled connection, at most 3600 ("1h"). Default 60."""
    max_connections: int = Field(default=32, ge=1)
    """Size of the connection pool shared by all concurrent requests, a count. Default 32."""
    max_attempts: int = Field(default=5, ge=1)
    """Attempts per request, the first included, for timeouts, connection errors, 5xx and 429, a count.
    Default 5."""
    backoff_initial_s: Annotated[float, at_most(5 * MINUTE)] = Field(default=0.5, ge=0)
    """Seconds of backoff before the second attempt; doubles per attempt, with jitter. At most 300 ("5m");
    default 0.5."""
    backoff_max_s: Annotated[float, at_most(HOUR)] = Field(default=30.0, ge=0)
    """Upper bound of one backoff delay, in seconds, at most 3600 ("1h"). Default 30."""
    retry_after_max_s: Annotated[float, at_most(HOUR)] = Field(default=120.0, ge=0)
    """Longest Retry-After we wait for, in seconds; a longer one ends the request as throttled. At most 3600
    ("1h"); default 120."""
    token_renew_margin_s: Annotated[float, at_most(DAY)] = Field(default=300.0, ge=0)
    """Renew the token this many seconds before its `exp` (never more than a tenth of its lifetime). At most
    86400 ("1d"); default 300."""
    auth_failure_cooldown_s: Annotated[float, at_most(DAY)] = Field(default=60.0, ge=0)
    """After the service rejects the credentials, fail at once for this many seconds instead of asking
    again. At most 86400 ("1d"); default 60."""

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
    def _ca_bundle(cls, value: str) -> str:
        return material.ca_bundle(value)


class GraphSettings(BaseModel):
    """The `[graph]` section: the Entra app registration and what to read from Microsoft Graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str
    """The Entra tenant's GUID; also the `tenant_id` of every agent. Required; no default."""
    client_id: str
    """The app registration's application (client) ID. Required; no default."""
    client_secret: SecretStr | None = None
    """The app's client secret; never logged. Give this or `certificate_path`. Default none."""
    certificate_path: str = ""
    """A PEM file with the private key and its certificate, or a .pfx/.p12 file; instead of a secret. Opened
    when the configuration loads, with `certificate_password` if the key is encrypted. Default "" (none)."""
    certificate_password: SecretStr | None = Field(default=None, validate_default=True)
    """Passphrase of an encrypted private key or PFX file; required for one, an error for a PEM key that is
    not encrypted. Never logged. Default none."""
    authority_host: str = "https://login.microsoftonline.com"
    """The Entra login host: sovereign clouds use e.g. https://login.microsoftonline.us. Default
    "https://login.microsoftonline.com"."""
    base_url: str = "https://graph.microsoft.com/v1.0"
    """Graph endpoint with its version path, e.g. https://graph.microsoft.us/v1.0 for GCC High. Default
    "https://graph.microsoft.com/v1.0"."""
    group_ids: list[str] = Field(min_length=1)
    """Object IDs of the groups whose (transitive) members become agents, at least one. Required; no
    default."""
    exclude_group_ids: list[str] = Field(default_factory=list)
    """Object IDs of groups whose (transitive) members never become agents, even when a configured group
    holds them (out-of-scope reason `excluded_group`); none may be in `group_ids`. Default [] (none)."""
    filter: str = ""
    """An OData-$filter-style expression over user attributes that a member must pass to be in scope
    (out-of-scope reason `filtered`), e.g. "employeeType eq 'Employee' and usageLocation in ('US', 'CA')";
    the operators and attributes are in docs/scoping.md. Default "" (no filter)."""
    phone_attribute: str = ""
    """The single place the number lives (the older form of `phone_source`): businessPhones (first entry),
    mobilePhone, or onPremisesExtensionAttributes.extensionAttributeN (N = 1..15). Default "" (businessPhones
    when `phone_source` is empty too)."""
    phone_source: list[str] = Field(default_factory=list)
    """Where numbers come from, in order of preference: "teams" (the user's Teams number assignment) and any
    phone attributes; the first that yields one valid number wins. Default [] (`phone_attribute` alone)."""
    teams_categories: list[str] = Field(default_factory=lambda: ["primary"])
    """Teams assignment categories that may give the number, in order of preference (primary, private,
    alternate). Default ["primary"]."""
    teams_page_size: int = Field(default=1000, ge=1, le=1000)
    """Teams number assignments per page (`$top`), a count, 1..1000 (Graph's limit). Default 1000."""
    default_region: str = DEFAULT_REGION
    """ISO 3166 region for numbers written without a country code, e.g. "(415) 555-0123". Default "US"."""
    ca_bundle: str = ""
    """PEM file of CA certificates to trust for login and Graph, loaded when the configuration loads; empty
    (the default) means the system's trust store."""
    connect_timeout_s: Annotated[float, at_most(5 * MINUTE)] = Field(default=10.0, gt=0)
    """Seconds to establish a connection, at most 300 ("5m"). Default 10."""
    timeout_s: Annotated[float, at_most(HOUR)] = Field(default=60.0, gt=0)
    """Seconds to wait for each read of a response (a page of 999 users can take a while), at most 3600
    ("1h"). Default 60."""
    page_size: int = Field(default=999, ge=1, le=999)
    """Members per page (`$top`), a count, 1..999 (Graph's limit). Default 999."""
    max_retries: int = Field(default=5, ge=0, le=10)
    """Retries of a throttled (429) or unavailable (503/504) request by the Graph SDK's retry handler, a
    count, 0..10. Default 5."""
    retry_delay_s: Annotated[float, at_most(3 * MINUTE)] = Field(default=1.0, ge=0)
    """Seconds of base delay the SDK adds to each retry's exponential backoff (a Retry-After header wins),
    at most 180 ("3m", the SDK's limit). Default 1."""
    max_attempts: int = Field(default=4, ge=1)
    """Attempts per page for timeouts and dropped connections, the first included, a count. Default 4."""

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

    @field_validator("exclude_group_ids")
    @classmethod
    def _excluded(cls, values: list[str], info: ValidationInfo) -> list[str]:
        bad = [value for value in values if not GUID.match(value.strip())]
        if bad:
            raise ValueError(f"not group object IDs (GUIDs): {', '.join(bad)}")
        excluded = list(dict.fromkeys(value.strip().lower() for value in values))
        both = [group for group in excluded if group in (info.data.get("group_ids") or ())]
        if both:
            raise ValueError(f"{', '.join(both)} is also in graph.group_ids: a group cannot be both")
        return excluded

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        if value.strip():
            from syncd.core.scope_filter import parse_filter

            parse_filter(value)  # FilterError (a ValueError) says where and what
        return value

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
        # The region used when the key is absent needs no check (tests/unit/test_config.py: it is supported).
        if region == DEFAULT_REGION:
            return region
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}: use an ISO 3166 code such as US, GB or DE")
        return region

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str) -> str:
        return material.ca_bundle(value)

    @field_validator("certificate_path")
    @classmethod
    def _certificate(cls, value: str) -> str:
        return material.app_certificate(value)

    @field_validator("certificate_password")
    @classmethod
    def _opens_the_certificate(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # Validated even when absent (validate_default): an encrypted key needs a passphrase. Skipped when the
        # certificate itself was refused, which is then the one error to fix.
        path = info.data.get("certificate_path")
        if path:
            material.app_certificate_password(path, value.get_secret_value() if value is not None else "")
        return value

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
    def scope_filter(self) -> ScopeFilter | None:
        """The parsed `filter`, or None without one."""
        if not self.filter.strip():
            return None
        from syncd.core.scope_filter import parse_filter

        return parse_filter(self.filter)

    @property
    def uses_teams(self) -> bool:
        """Whether a cycle reads the Teams number assignments."""
        return TEAMS in self.phone_chain

    @property
    def graph_origin(self) -> str:
        """Scheme and host of `base_url`: the audience of Graph tokens (`<origin>/.default`)."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"
