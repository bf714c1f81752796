"""The checks of one page as Graph sent it, before anyone reads its users: it is a JSON object, a member
page has a `value` array with the users' properties (not Graph's "limited information" answer), and its
`@odata.nextLink`, if any, stays on the Graph host (our token goes with it); and the object IDs of a mapped
page as a full read collects them. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from operator import attrgetter
from typing import Any
from urllib.parse import urlsplit

from syncd.core.model import Member, Skipped
from syncd.graph.errors import GraphPermissionError, GraphReadError

_object_id = attrgetter("object_id")


def parse_page(body: bytes, what: str, group_id: str | None) -> dict[str, Any]:
    """A page's body as a JSON object; GraphReadError naming `what` for anything else."""
    try:
        page = json.loads(body)
    except ValueError:
        page = None
    if not isinstance(page, dict):
        raise GraphReadError(f"a page of {what} is not a JSON object", group_id=group_id)
    return page


def page_users(
    page: dict[str, Any], number: int, group_id: str, graph_host: str | None
) -> tuple[list[Any], str | None]:
    """Page `number` of a group's members: its users (raw JSON) and its next link (None on the last page)."""
    users = page.get("value")
    if not isinstance(users, list):
        raise GraphReadError(f"page {number} has no `value` array", group_id=group_id)
    if users and not any(isinstance(u, dict) and u.get("userPrincipalName") for u in users):
        # Every user has a UPN: a page without any is Graph's "limited information" answer, which would
        # make everyone look out of scope.
        raise GraphPermissionError(
            "Graph returned users without their properties (limited information): grant the app the "
            "application permission User.Read.All with admin consent",
            group_id=group_id,
        )
    next_link = page.get("@odata.nextLink")
    if next_link is not None and (
        not isinstance(next_link, str) or urlsplit(next_link).hostname != graph_host
    ):
        raise GraphReadError(f"page {number} has an unusable @odata.nextLink", group_id=group_id)
    return users, next_link


def lower_ids(page: Sequence[Member | Skipped]) -> list[str]:
    """The object IDs of a mapped page in lower case, the same strings where they already are (Graph's
    always are: then the whole page is taken in C loops), without the empty IDs of users Graph gave none."""
    ids = list(map(_object_id, page))
    if all(map(str.islower, ids)):
        return ids
    return [object_id if object_id.islower() else object_id.lower() for object_id in ids if object_id]
