"""The SmartCommunicator error hierarchy and the pure classification of its responses.

Every failure of the agents API leaves the client as one of these exceptions, raised `from` the httpx
exception or built from the response, so no httpx type leaks to callers. Classification goes by status
code first and by message second, because the published API's error bodies are not uniform
(onboarding 400s are `{"message","status"}`, PATCH/DELETE 400s are `{"status":"error","message"}`, 404s
are `{"requestId","message"}`, 401s are `{"code","error"}`).

Each error carries a `category` that tells the engine what to do about it; the table is in `MESSAGES`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Literal

BODY_LIMIT = 500
"""Characters of a response body kept on an error (bodies can be large HTML pages from a proxy)."""

Identifier = Literal["user_object_id", "phone_number", "upn", "consistency_id", "tenant_id"]
"""Which of an agent's identifiers an error is about."""


class ErrorCategory(StrEnum):
    """What an error means for the caller; the engine decides by category, never by message text."""

    ALREADY_EXISTS = "already_exists"
    """The agent for this object ID exists already: adopt it (read it back, patch what differs)."""
    SAME_ANCHOR = "same_anchor"
    """An agent with this consistency GUID exists: read it back by consistency_id; if its object ID is
    ours, adopt it, otherwise the person was re-created in Entra and an admin must decide."""
    CONFLICT = "conflict"
    """An identifier (number, UPN, GUID) is held by another person: needs an admin; retry later."""
    SETUP = "setup"
    """Account set-up problem (tenant not registered, number not 10DLC registered or not in the
    SmartCommunicator database): fix it in the IntelePeer portal; retry later."""
    NOT_FOUND = "not_found"
    """No such agent (or it is offboarded already). On DELETE this means done."""
    AUTH = "auth"
    """Credentials, token or customer rejected: systemic, stop the cycle."""
    THROTTLED = "throttled"
    """429 after every attempt, or a Retry-After too long to wait for."""
    UNAVAILABLE = "unavailable"
    """5xx or transport failure after every attempt: systemic if it persists."""
    UNEXPECTED = "unexpected"
    """Anything the published API does not document; kept with status and truncated body."""


class SmartCommError(Exception):
    """Base of every SmartCommunicator failure; `str()` never contains a secret."""

    category: ErrorCategory = ErrorCategory.UNEXPECTED

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        method: str = "",
        path: str = "",
        attempts: int = 1,
        outcome_was_unknown: bool = False,
        field: Identifier | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.message = message
        self.field = field
        """Which identifier the error is about, when the message names one."""
        self.retry_after_s = retry_after_s
        """The server's Retry-After, when it gave one (429)."""
        self.status = status
        self.body = truncate(body)
        self.method = method
        self.path = path
        self.attempts = attempts
        # True when an earlier attempt of this write may have been applied (timeout, dropped connection,
        # 5xx): an "already exists" answer then most likely means our own earlier attempt succeeded.
        self.outcome_was_unknown = outcome_was_unknown
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f" -> {self.status}" if self.status is not None else ""
        prefix = f"{where}{status}: " if where or status else ""
        return f"{prefix}{self.message}"


class TransportFailure(SmartCommError):
    """The service could not be reached or did not answer in time, after every attempt."""

    category = ErrorCategory.UNAVAILABLE


class TlsVerificationError(TransportFailure):
    """The server certificate did not verify: a `ca_bundle` problem, not worth retrying."""


class ServiceUnavailable(SmartCommError):
    """5xx after every attempt."""

    category = ErrorCategory.UNAVAILABLE


class Throttled(SmartCommError):
    """429 after every attempt, or a Retry-After longer than we are willing to wait."""

    category = ErrorCategory.THROTTLED


class AuthError(SmartCommError):
    """Authentication or authorisation failed: systemic, every request would fail the same way."""

    category = ErrorCategory.AUTH


class BadCredentials(AuthError):
    """`POST /rest/v1/authenticate` answered 401: wrong username or password, or no API access."""


class TokenRejected(AuthError):
    """An API call answered 401 even with a freshly issued token."""


class CustomerForbidden(AuthError):
    """403: the credentials are valid but not for the configured customer_id."""


class AgentRequestError(SmartCommError):
    """A documented per-agent 4xx answer; `field` names the identifier it is about, when it names one."""


class AgentExists(AgentRequestError):
    """The agent already exists for this object ID (maybe from our own earlier attempt): adopt it."""

    category = ErrorCategory.ALREADY_EXISTS


class AnchorExists(AgentRequestError):
    """An agent with the same consistency GUID exists; whether it is ours needs a read-back."""

    category = ErrorCategory.SAME_ANCHOR


class AgentConflict(AgentRequestError):
    """An identifier of this agent is held by another person (or object): needs an admin."""

    category = ErrorCategory.CONFLICT


class AccountSetupError(AgentRequestError):
    """The IntelePeer account is not set up for this agent (tenant or number not registered)."""

    category = ErrorCategory.SETUP


class TenantNotRegistered(AccountSetupError):
    """The tenant ID is not registered with SmartCommunicator: systemic for that tenant."""


class NumberNotRegistered(AccountSetupError):
    """The number is not 10DLC registered or not in the SmartCommunicator database."""


class AgentNotFound(AgentRequestError):
    """No agent matches (404), or the object ID is not (or no longer) registered."""

    category = ErrorCategory.NOT_FOUND


class UnexpectedResponse(SmartCommError):
    """Anything undocumented: keeps the status and the truncated body for the audit log."""

    category = ErrorCategory.UNEXPECTED


# The published messages, lower-cased, each with its error type and the identifier it is about.
# Every message of docs/spec/smartcommunicator-agents-api.md is here, and tests iterate this table.
MESSAGES: dict[str, tuple[type[AgentRequestError], Identifier | None]] = {
    # Same object: the agent exists already.
    "azure object id already exists": (AgentExists, "user_object_id"),
    "azure object id exists with a different msds consistency guid": (AgentExists, "user_object_id"),
    "tn exists with the same azure object id": (AgentExists, "phone_number"),
    "upn exists with the same azure object id": (AgentExists, "upn"),
    # Same consistency GUID: the same person by anchor, maybe under another object ID.
    "msds consistency guid already exists": (AnchorExists, "consistency_id"),
    "tn exists with the same msds consistency guid": (AnchorExists, "phone_number"),
    "upn exists with the same msds consistency guid": (AnchorExists, "upn"),
    # Held by someone else.
    "tn is already registered with a different msds consistency guid": (AgentConflict, "phone_number"),
    "tn is already registered with a different azure object id": (AgentConflict, "phone_number"),
    "tn is already registered with a different upn": (AgentConflict, "phone_number"),
    "upn is already registered with a different msds consistency guid": (AgentConflict, "upn"),
    "upn is already registered with a different azure object id": (AgentConflict, "upn"),
    "upn is already registered with smartcommunicator": (AgentConflict, "upn"),
    # Account set-up.
    "tenant id is not registered with smartcommunicator": (TenantNotRegistered, "tenant_id"),
    "tn is not part of the list of numbers that are already 10dlc registered": (
        NumberNotRegistered,
        "phone_number",
    ),
    "phone number is not registered with smartcommunicator": (NumberNotRegistered, "phone_number"),
    # Not there (DELETE of an object that is not, or no longer, registered).
    "azure object id is not registered with smartcommunicator": (AgentNotFound, "user_object_id"),
}

NOT_FOUND_MESSAGES = frozenset({"no records found for any of the parameters provided", "agent not found"})
"""The documented 404 messages. Any other 404 (a proxy's, a wrong base URL) is not "the agent is gone":
taking it for that would record an offboarding that never happened."""

_RETRYABLE_5XX = frozenset({500, 502, 503, 504})


def is_retryable_status(status: int) -> bool:
    """Pure: whether an HTTP status is worth another attempt (throttling and transient server errors)."""
    return status == 429 or status in _RETRYABLE_5XX


def truncate(text: str, limit: int = BODY_LIMIT) -> str:
    """Pure: `text` cut to `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def response_message(body: bytes) -> str:
    """Pure: the human message of an error body, whichever of the API's shapes it has ("" if none)."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(parsed, dict):
        return ""
    for key in ("message", "error"):
        value = parsed.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def classify(
    status: int,
    body: bytes,
    *,
    method: str = "",
    path: str = "",
    attempts: int = 1,
    outcome_was_unknown: bool = False,
    retry_after_s: float | None = None,
) -> SmartCommError:
    """Pure: the typed error for a failed response (status >= 400). Status first, then message."""
    message = response_message(body)

    def build(error_type: type[SmartCommError], text: str, field: Identifier | None = None) -> SmartCommError:
        return error_type(
            text,
            status=status,
            body=body.decode("utf-8", errors="replace"),
            method=method,
            path=path,
            attempts=attempts,
            outcome_was_unknown=outcome_was_unknown,
            field=field,
            retry_after_s=retry_after_s,
        )

    if status == 401:
        return build(TokenRejected, message or "Unauthorized")
    if status == 403:
        return build(CustomerForbidden, "the credentials are not allowed to manage this customer_id")
    if status == 429:
        return build(Throttled, message or "Too Many Requests")
    if status >= 500:
        return build(ServiceUnavailable, message or f"server error {status}")
    known = MESSAGES.get(message.lower())
    if known is not None:
        error_type, field = known
        return build(error_type, message, field)
    if status == 404 and message.lower() in NOT_FOUND_MESSAGES:
        return build(AgentNotFound, message)
    return build(UnexpectedResponse, message or f"undocumented response {status}")
