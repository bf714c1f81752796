"""What every Graph endpoint of the emulator checks before it answers: the app's permissions (403), that the
object asked for exists (404), and the OData query options: $select, $top, $count, and the options an
endpoint does not take (400), in Graph's words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from syncd.emulators.graph.credentials import _Token
from syncd.emulators.graph.state import _DirectoryState
from syncd.emulators.graph.wire import _bad_request, _graph_error, _Incoming, _Rejected

_PRIVILEGES_MESSAGE = "Insufficient privileges to complete the operation."
_MAX_TOP = 999
_OPTIONS_REFUSED = frozenset({"filter", "search", "orderby", "expand", "skip", "format", "apply"})
_DEFAULT_TOP = 100


class _GraphChecks(_DirectoryState):
    """The checks the Graph endpoints share; a failed one raises `_Rejected` with Graph's reply."""

    def _require(self, incoming: _Incoming, token: _Token, roles: frozenset[str]) -> None:
        if not token.roles & roles:
            raise _Rejected(_graph_error(incoming, 403, "Authorization_RequestDenied", _PRIVILEGES_MESSAGE))

    def _not_found(self, incoming: _Incoming, object_id: str) -> _Rejected:
        return _Rejected(
            _graph_error(
                incoming,
                404,
                "Request_ResourceNotFound",
                f"Resource '{object_id}' does not exist or one of its queried reference-property objects are "
                "not present.",
            )
        )

    def _check_options(
        self, incoming: _Incoming, allowed: Iterable[str], refused: frozenset[str] = _OPTIONS_REFUSED
    ) -> None:
        """Reject the OData options this endpoint does not take here ($filter, $orderby, ...)."""
        allowed_set = set(allowed)
        for name in incoming.query:
            bare = name[1:] if name.startswith("$") else name
            if bare.lower() in refused and bare not in allowed_set:
                raise _Rejected(
                    _graph_error(
                        incoming,
                        400,
                        "Request_UnsupportedQuery",
                        f"The query option '${bare}' is not supported by this emulator on this endpoint.",
                    )
                )

    def _select(
        self, incoming: _Incoming, props: Mapping[str, str], type_name: str
    ) -> tuple[str, ...] | None:
        """$select as canonical property names (case-insensitive, de-duplicated, in request order)."""
        raw = incoming.option("select")
        if raw is None or not raw.strip():
            return None
        names: list[str] = []
        for part in raw.split(","):
            name = part.strip()
            if not name:
                continue
            canonical = props.get(name.lower())
            if canonical is None:
                raise _Rejected(
                    _bad_request(incoming, f"Could not find a property named '{name}' on type '{type_name}'.")
                )
            if canonical not in names:
                names.append(canonical)
        return tuple(names)

    def _count_requested(self, incoming: _Incoming) -> bool:
        raw = incoming.option("count")
        if raw is None:
            return False
        if raw.lower() not in ("true", "false"):
            raise _Rejected(_bad_request(incoming, f"Invalid value '{raw}' for the query option '$count'."))
        return raw.lower() == "true"

    def _page_size(self, incoming: _Incoming) -> int:
        raw = incoming.option("top")
        top = _DEFAULT_TOP
        if raw is not None:
            try:
                top = int(raw)
            except ValueError:
                top = 0
            if not 1 <= top <= _MAX_TOP:
                raise _Rejected(
                    _bad_request(
                        incoming,
                        f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.",
                    )
                )
        return max(1, min(top, self.page_cap))
