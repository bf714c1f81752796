"""Teams telephone number assignment records (microsoft.graph.teamsAdministration.numberAssignment), pure:
their enum values and properties, the checks on the values fixtures give, and the $filter the list endpoint
takes (parsed into clauses, then matched against records).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_NUMBER_SET = "admin/teams/telephoneNumberManagement/numberAssignments"
_NUMBER_PATH = ("admin", "teams", "telephonenumbermanagement", "numberassignments")
_NUMBER_TYPE_NAME = "microsoft.graph.teamsAdministration.numberAssignment"
_NUMBER_DEFAULT_TOP = 500
_NUMBER_MAX_TOP = 1000
# The enum members of Graph v1.0's metadata (msgraph-sdk's teams_administration models say the same).
_NUMBER_TYPES = ("internalError", "directRouting", "callingPlan", "operatorConnect", "unknownFutureValue")
_ACTIVATION_STATES = (
    "activated",
    "assignmentPending",
    "assignmentFailed",
    "updatePending",
    "updateFailed",
    "unknownFutureValue",
)
_ASSIGNMENT_CATEGORIES = ("primary", "private", "alternate", "unknownFutureValue")
_ASSIGNMENT_STATUSES = (
    "unassigned",
    "internalError",
    "userAssigned",
    "conferenceAssigned",
    "voiceApplicationAssigned",
    "thirdPartyAppAssigned",
    "policyAssigned",
    "unknownFutureValue",
)
_TARGETED_STATUSES = frozenset(
    {
        "userAssigned",
        "conferenceAssigned",
        "voiceApplicationAssigned",
        "thirdPartyAppAssigned",
        "policyAssigned",
    }
)
_NUMBER_SOURCES = ("online", "onPremises", "unknownFutureValue")
# Fixed operator IDs: Microsoft for Calling Plans, one carrier for Operator Connect.
_OPERATOR_IDS = {
    "callingPlan": "0019adbc-b82a-47b4-a799-4e993a9982f1",
    "operatorConnect": "7a205197-8e59-487d-b9fa-3fc1b108f1e5",
}
_CAPABILITIES = {
    "conferenceAssigned": ["conferenceAssignment"],
    "voiceApplicationAssigned": ["voiceApplicationAssignment"],
}
_NUMBER_PROPS = (
    "id",
    "telephoneNumber",
    "operatorId",
    "numberType",
    "activationState",
    "capabilities",
    "locationId",
    "civicAddressId",
    "networkSiteId",
    "assignmentTargetId",
    "assignmentCategory",
    "portInStatus",
    "assignmentStatus",
    "isoCountryCode",
    "city",
    "numberSource",
    "supportedCustomerActions",
    "reverseNumberLookupOptions",
)
_NUMBER_COLLECTIONS = frozenset({"capabilities", "supportedCustomerActions", "reverseNumberLookupOptions"})
_NUMBER_UNFILTERABLE = frozenset({"id", "city"})
_NUMBER_PROPS_BY_LOWER = {name.lower(): name for name in _NUMBER_PROPS}
# Undocumented for this endpoint: refused rather than silently ignored.
_NUMBER_OPTIONS_REFUSED = frozenset(
    {"select", "orderby", "search", "expand", "count", "format", "apply", "skiptoken", "deltatoken"}
)
_NUMBER_FIELDS = frozenset(
    {
        "telephone_number",
        "target_id",
        "category",
        "status",
        "number_type",
        "activation_state",
        "iso_country_code",
        "number_source",
        "id",
    }
)


def _teams_number(value: object) -> str:
    """A telephone number as Teams records it: always with a "+" prefix (ValueError if unusable)."""
    if not isinstance(value, str) or not value.strip("+") or any(c.isspace() for c in value):
        raise ValueError(f"telephone_number must be a number like '+14255550100', not {value!r}")
    return value if value.startswith("+") else f"+{value}"


def _enum_value(name: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _copy_record(record: Mapping[str, object]) -> dict[str, object]:
    return {key: list(value) if isinstance(value, list) else value for key, value in record.items()}


_FILTER_STRING = r"'((?:[^']|'')*)'"
_FILTER_EQ = re.compile(rf"\s*([A-Za-z][A-Za-z0-9]*)\s+eq\s+{_FILTER_STRING}\s*", re.IGNORECASE)
_FILTER_ANY = re.compile(
    rf"\s*([A-Za-z][A-Za-z0-9]*)/any\(\s*([A-Za-z_]\w*)\s*:\s*\2\s+eq\s+{_FILTER_STRING}\s*\)\s*",
    re.IGNORECASE,
)
_FILTER_OPEN = re.compile(r"\s*\(")
_FILTER_CLOSE = re.compile(r"\)\s*")
_FILTER_OR = re.compile(r"or\s+", re.IGNORECASE)
_FILTER_AND = re.compile(r"and\s+", re.IGNORECASE)
_FilterClause = tuple[str, frozenset[str], bool]
"""(property, lower-cased values any of which matches, whether the property is a collection)."""


def _filter_property(name: str, *, collection: bool) -> str:
    canonical = _NUMBER_PROPS_BY_LOWER.get(name.lower())
    if canonical is None:
        raise ValueError(f"Could not find a property named '{name}' on type '{_NUMBER_TYPE_NAME}'.")
    if canonical in _NUMBER_UNFILTERABLE:
        raise ValueError(
            f"The property '{canonical}' cannot be used in $filter: number assignments can be filtered on "
            "every property except id and city."
        )
    if collection and canonical not in _NUMBER_COLLECTIONS:
        raise ValueError(f"'{canonical}' is not a collection: use {canonical} eq '<value>'.")
    if not collection and canonical in _NUMBER_COLLECTIONS:
        raise ValueError(f"'{canonical}' is a collection: use {canonical}/any(c:c eq '<value>').")
    return canonical


def _number_filter(raw: str) -> list[_FilterClause]:
    """Pure: the clauses of a number assignment $filter, or ValueError saying what is wrong.

    Takes `<property> eq '<value>'`, `<collection>/any(c:c eq '<value>')` and a parenthesised group of
    `<property> eq '<value>'` joined by `or` (all on one property), joined by `and`; keywords and property
    names in any case, '' for a quote inside a value.
    """
    unsupported = (
        f"Unsupported $filter '{raw}': number assignments take <property> eq '<value>' clauses joined by "
        "'and', where one clause may be a parenthesised group of eq comparisons of one property joined by "
        "'or', or <collection>/any(c:c eq '<value>')."
    )
    clauses: list[_FilterClause] = []
    pos = 0
    while True:
        opened = _FILTER_OPEN.match(raw, pos)
        if opened is not None:
            pos = opened.end()
            prop: str | None = None
            values: set[str] = set()
            while True:
                match = _FILTER_EQ.match(raw, pos)
                if match is None:
                    raise ValueError(unsupported)
                name = _filter_property(match.group(1), collection=False)
                if prop is not None and name != prop:
                    raise ValueError(
                        f"Unsupported $filter '{raw}': an 'or' group must compare one property ({prop}), "
                        f"not {name} too."
                    )
                prop = name
                values.add(match.group(2).replace("''", "'").lower())
                pos = match.end()
                alternative = _FILTER_OR.match(raw, pos)
                if alternative is None:
                    break
                pos = alternative.end()
            closed = _FILTER_CLOSE.match(raw, pos)
            if closed is None or prop is None:
                raise ValueError(unsupported)
            pos = closed.end()
            clauses.append((prop, frozenset(values), False))
        elif (match := _FILTER_ANY.match(raw, pos)) is not None:
            name = _filter_property(match.group(1), collection=True)
            clauses.append((name, frozenset({match.group(3).replace("''", "'").lower()}), True))
            pos = match.end()
        elif (match := _FILTER_EQ.match(raw, pos)) is not None:
            name = _filter_property(match.group(1), collection=False)
            clauses.append((name, frozenset({match.group(2).replace("''", "'").lower()}), False))
            pos = match.end()
        else:
            raise ValueError(unsupported)
        if pos == len(raw):
            return clauses
        conjunction = _FILTER_AND.match(raw, pos)
        if conjunction is None:
            raise ValueError(unsupported)
        pos = conjunction.end()


def _number_matches(record: Mapping[str, object], clauses: Sequence[_FilterClause]) -> bool:
    """Pure: whether a record passes every clause (values compared case-insensitively; null never matches)."""
    for prop, values, collection in clauses:
        value = record.get(prop)
        if collection:
            if not isinstance(value, list) or not any(str(item).lower() in values for item in value):
                return False
        elif value is None or str(value).lower() not in values:
            return False
    return True
