"""The Microsoft Graph (and Entra login) error hierarchy.

Every failure to read desired state leaves `syncd.graph` as one of these, raised `from` the msal, kiota or
httpx cause, so no library exception leaks out. None of them ever means "fewer members": a read that fails
at any page fails whole, and the engine must not plan offboardings from it.
"""

from __future__ import annotations

BODY_LIMIT = 300


class GraphError(Exception):
    """Base of every failure to read from Graph; `str()` never contains a secret or a token."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        group_id: str | None = None,
        setting: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        """HTTP status of the answer that failed, when there was one."""
        self.code = code
        """Graph's error code (e.g. "Authorization_RequestDenied") or Entra's ("invalid_client")."""
        self.group_id = group_id
        """The configured group whose read failed, when the failure is about one group."""
        self.setting = setting
        """The configuration key an admin should look at, e.g. "graph.client_secret"."""
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = []
        if self.group_id:
            parts.append(f"group {self.group_id}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        prefix = f"[{', '.join(parts)}] " if parts else ""
        hint = f" (check {self.setting})" if self.setting else ""
        return f"{prefix}{self.message}{hint}"


class GraphCredentialError(GraphError):
    """Entra refused to issue a token: wrong tenant, client ID, secret or certificate. Systemic."""


class GraphPermissionError(GraphError):
    """403: the app lacks an application permission, or the group's membership is hidden from it."""


class GroupNotFound(GraphError):
    """404 for a configured group: it does not exist (deleted, or a wrong ID in the configuration)."""


class GraphUnavailable(GraphError):
    """Throttled, 5xx or unreachable after every retry: try again next cycle."""


class DeltaExpired(GraphError):
    """410: a stored delta link is no longer valid; read everything again."""


class GraphReadError(GraphError):
    """Any other failed or malformed answer (400, a page that is not JSON, ...)."""


def shorten(text: str, limit: int = BODY_LIMIT) -> str:
    """Pure: `text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."
