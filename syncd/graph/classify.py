"""How Graph's refusals become our errors (`syncd.graph.errors`): the kiota error of a failed answer
classified by status, with Graph's error code and message and, for a 403, the permission to grant.

Pure: each function only looks at the error it is given. `syncd.graph.source` raises what they return,
`from` the kiota error.
"""

from __future__ import annotations

from typing import Any

from kiota_abstractions.api_error import APIError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from syncd.graph.errors import (
    DeltaExpired,
    GraphError,
    GraphPermissionError,
    GraphReadError,
    GraphUnavailable,
    GroupNotFound,
    shorten,
)

ERROR_MAP: dict[str, Any] = {"XXX": ODataError}
"""kiota parses any 4xx/5xx body into Graph's OData error model (code + message)."""


TEAMS_ROLE = "TeamsTelephoneNumber.Read.All"


_MEMBER_GRANT = (
    "grant the app the application permissions GroupMember.Read.All and User.Read.All "
    "(and Member.Read.Hidden for hidden memberships), with admin consent"
)
_PERSON_GRANT = (
    "grant the app the application permissions User.Read.All and GroupMember.Read.All "
    "(and Member.Read.Hidden for hidden memberships), with admin consent"
)


def _classified(
    exc: APIError, *, what: str, grant: str, label: str = "", group_id: str | None = None
) -> GraphError:
    """Pure: the error for Graph's refusal to `what` (a 403 says to `grant`), for throttling or an outage
    that outlasted every retry, or else a read error; `label` prefixes the other messages."""
    status = exc.response_status_code
    code, message = _odata(exc)
    if status == 403:
        return GraphPermissionError(
            f"Graph refused to {what}: {grant}. Graph said: {message}",
            status=status,
            code=code,
            group_id=group_id,
        )
    if status == 429 or (status is not None and status >= 500):
        reading = f" ({label})" if label else ""
        return GraphUnavailable(
            f"Graph is throttling or unavailable after every retry{reading}: {message}",
            status=status,
            code=code,
            group_id=group_id,
        )
    return GraphReadError(
        f"reading {label} failed: {message}" if label else message,
        status=status,
        code=code,
        group_id=group_id,
    )


def classify_teams(exc: APIError) -> GraphError:
    """Pure: our error for a failed answer of the Teams number assignments list.

    A 403 is a configuration error naming the missing permission, never an empty list of numbers.
    """
    grant = (
        f"grant the app the application permission {TEAMS_ROLE} with admin consent, or take teams out of "
        "graph.phone_source"
    )
    return _classified(
        exc, what="list the Teams number assignments", grant=grant, label="the Teams number assignments"
    )


def classify_person(exc: APIError, *, what: str) -> GraphError:
    """Pure: our error for a failed read about one person (the user, their groups, a group's nested groups).

    A 404 stays a `GraphReadError` with `status` 404, which the callers that expect it take for "none".
    """
    return _classified(exc, what=f"read {what}", grant=_PERSON_GRANT, label=what)


def _odata(exc: APIError) -> tuple[str, str]:
    """Graph's error code and (shortened) message from a kiota error."""
    code, message = "", ""
    if isinstance(exc, ODataError) and exc.error is not None:
        code, message = exc.error.code or "", exc.error.message or ""
    return code, shorten(message or str(exc))


def classify_delta(exc: APIError) -> GraphError:
    """Pure: our error for a failed delta answer. A stored link Graph no longer takes (410 Gone, or a 400/404
    about the token) is `DeltaExpired`: the caller reads everything again instead."""
    status = exc.response_status_code
    if status in (400, 404, 410):
        code, message = _odata(exc)
        return DeltaExpired(f"Graph refused the delta link: {message}", status=status, code=code)
    return _classified(exc, what="read the group and user changes (delta)", grant=_MEMBER_GRANT)


def classify(exc: APIError, *, group_id: str | None, setting: str = "graph.group_ids") -> GraphError:
    """Pure: our error for a failed Graph answer that kiota raised about a group's members; a 404 names the
    `setting` that holds the group ID."""
    if exc.response_status_code == 404:
        return GroupNotFound(
            "the group does not exist (deleted, or a wrong ID)",
            status=404,
            code=_odata(exc)[0],
            group_id=group_id,
            setting=setting,
        )
    return _classified(exc, what="list the members", grant=_MEMBER_GRANT, group_id=group_id)
