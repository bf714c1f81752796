"""Teams telephone number assignments in the Graph emulator: the fixture methods that assign and unassign
numbers, the records they keep (sorted by number, with $filter results cached until they change), and the
Graph endpoints under `admin/teams/telephoneNumberManagement/numberAssignments` (list, with $filter, $top
and $skip; get one by ID).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from syncd.emulators.common import encode_json
from syncd.emulators.graph.checks import _GraphChecks
from syncd.emulators.graph.credentials import _NUMBER_ROLES, _Token
from syncd.emulators.graph.number_records import (
    _ACTIVATION_STATES,
    _ASSIGNMENT_CATEGORIES,
    _ASSIGNMENT_STATUSES,
    _CAPABILITIES,
    _NUMBER_DEFAULT_TOP,
    _NUMBER_FIELDS,
    _NUMBER_MAX_TOP,
    _NUMBER_OPTIONS_REFUSED,
    _NUMBER_PATH,
    _NUMBER_SET,
    _NUMBER_SOURCES,
    _NUMBER_TYPES,
    _OPERATOR_IDS,
    _TARGETED_STATUSES,
    _copy_record,
    _enum_value,
    _number_filter,
    _number_matches,
    _teams_number,
)
from syncd.emulators.graph.wire import (
    GRAPH_PREFIX,
    _bad_request,
    _graph_error,
    _graph_headers,
    _Incoming,
    _next_link,
    _Rejected,
    _Reply,
)


class _TeamsNumbers(_GraphChecks):
    """`GraphEmulator`'s number assignment fixtures and the Graph endpoints that serve them."""

    def assign_number(
        self,
        telephone_number: str,
        target_id: str | None,
        *,
        category: str | None = "primary",
        status: str = "userAssigned",
        number_type: str = "operatorConnect",
        activation_state: str = "activated",
        iso_country_code: str | None = "US",
        number_source: str = "online",
        id: str | None = None,
    ) -> str:
        """Create or replace the Teams assignment record of a telephone number; return the record's ID.

        A number has at most one record, keyed by the number as Teams shows it: with a "+" prefix, added if
        missing (Direct Routing numbers may end in ";ext=123"). A replaced record keeps its ID unless `id` is
        given; new ones get a GUID from the emulator's seeded RNG. `target_id` is the user's (or resource
        account's) object ID and is not checked: Teams keeps stale assignments of deleted users. It must be
        None for status "unassigned" (whose category reads null, as Graph shows it) and set for the
        assigned statuses. Enum values are Graph's (ValueError otherwise).
        """
        fields: dict[str, object] = {
            "telephone_number": telephone_number,
            "target_id": target_id,
            "category": category,
            "status": status,
            "number_type": number_type,
            "activation_state": activation_state,
            "iso_country_code": iso_country_code,
            "number_source": number_source,
            "id": id,
        }
        return self.assign_numbers([fields])[0]

    def assign_numbers(self, assignments: Iterable[Mapping[str, Any]]) -> list[str]:
        """`assign_number` for many numbers (mappings of its argument names) under one lock acquisition;
        nothing changes if one is refused. Returns the IDs in the order given."""
        with self._lock:
            staged: dict[str, dict[str, object]] = {}
            staged_ids: dict[str, str] = {}
            result: list[str] = []
            for fields in assignments:
                record = self._number_record(fields, staged, staged_ids)
                number, record_id = str(record["telephoneNumber"]), str(record["id"])
                previous = staged.get(number)
                if previous is not None:
                    staged_ids.pop(str(previous["id"]), None)
                staged[number] = record
                staged_ids[record_id] = number
                result.append(record_id)
            for number, record in staged.items():
                previous = self._numbers.get(number)
                if previous is not None:
                    self._number_ids.pop(str(previous["id"]), None)
                self._numbers[number] = record
                self._number_ids[str(record["id"])] = number
            if staged:
                self._numbers_changed()
            return result

    def unassign_number(self, telephone_number: str) -> None:
        """Remove a number's assignment record (ValueError if it has none)."""
        with self._lock:
            number = _teams_number(telephone_number)
            record = self._numbers.pop(number, None)
            if record is None:
                raise ValueError(f"no number assignment for {number!r}")
            self._number_ids.pop(str(record["id"]), None)
            self._numbers_changed()

    def number_assignments(self) -> list[dict[str, object]]:
        """Copies of every number assignment record as the API renders them, ascending by telephoneNumber."""
        with self._lock:
            return [_copy_record(record) for record in self._sorted_numbers()]

    def _number_record(
        self,
        fields: Mapping[str, Any],
        staged: Mapping[str, dict[str, object]],
        staged_ids: Mapping[str, str],
    ) -> dict[str, object]:
        """A checked number assignment record, not stored yet; ValueError for what `assign_number` refuses."""
        unknown = fields.keys() - _NUMBER_FIELDS
        if unknown:
            raise ValueError(f"unknown number assignment fields: {', '.join(sorted(unknown))}")
        if "telephone_number" not in fields or "target_id" not in fields:
            raise ValueError(
                "a number assignment needs telephone_number and target_id (None when unassigned)"
            )
        number = _teams_number(fields["telephone_number"])
        target_id = fields["target_id"]
        if target_id is not None and (not isinstance(target_id, str) or not target_id):
            raise ValueError("target_id must be a non-empty string or None")
        status = _enum_value("status", fields.get("status", "userAssigned"), _ASSIGNMENT_STATUSES)
        category = fields.get("category", "primary")
        if category is not None:
            category = _enum_value("category", category, _ASSIGNMENT_CATEGORIES)
        number_type = _enum_value("number_type", fields.get("number_type", "operatorConnect"), _NUMBER_TYPES)
        activation = _enum_value(
            "activation_state", fields.get("activation_state", "activated"), _ACTIVATION_STATES
        )
        source = _enum_value("number_source", fields.get("number_source", "online"), _NUMBER_SOURCES)
        country = fields.get("iso_country_code", "US")
        if country is not None and not isinstance(country, str):
            raise ValueError("iso_country_code must be a string or None")
        if status == "unassigned":
            if target_id is not None:
                raise ValueError(f"{number}: an unassigned number has no target_id")
            category = None  # Graph shows no category for an unassigned number
        elif status in _TARGETED_STATUSES and target_id is None:
            raise ValueError(f"{number}: status {status!r} needs a target_id")
        given_id = fields.get("id")
        existing = staged.get(number) or self._numbers.get(number)
        if given_id is None:
            record_id = str(existing["id"]) if existing is not None else self._new_number_id(staged_ids)
        elif isinstance(given_id, str) and given_id:
            record_id = given_id
        else:
            raise ValueError("id must be a non-empty string or None")
        holder = staged_ids.get(record_id) or self._number_ids.get(record_id)
        if holder is not None and holder != number:
            raise ValueError(f"number assignment id {record_id!r} belongs to {holder!r}")
        capabilities = _CAPABILITIES.get(status, ["userAssignment"])
        if number_type == "directRouting":
            capabilities = ["conferenceAssignment", "voiceApplicationAssignment", "userAssignment"]
        values: dict[str, object] = {
            "id": record_id,
            "telephoneNumber": number,
            "operatorId": _OPERATOR_IDS.get(number_type),
            "numberType": number_type,
            "activationState": activation,
            "capabilities": list(capabilities),
            "locationId": None,
            "civicAddressId": None,
            "networkSiteId": None,
            "assignmentTargetId": target_id,
            "assignmentCategory": category,
            "portInStatus": None,
            "assignmentStatus": status,
            "isoCountryCode": country,
            "city": None,
            "numberSource": source,
            "supportedCustomerActions": (
                ["locationUpdate", "release"] if number_type == "callingPlan" else ["locationUpdate"]
            ),
            "reverseNumberLookupOptions": [],
        }
        return values

    def _new_number_id(self, staged_ids: Mapping[str, str]) -> str:
        while True:
            record_id = str(self._new_uuid())
            if record_id not in self._number_ids and record_id not in staged_ids:
                return record_id

    def _numbers_changed(self) -> None:
        self._numbers_sorted = None
        self._numbers_filtered.clear()

    def _sorted_numbers(self) -> list[dict[str, object]]:
        """The records ascending by telephoneNumber, as Get-CsPhoneNumberAssignment lists them (cached)."""
        if self._numbers_sorted is None:
            self._numbers_sorted = [self._numbers[number] for number in sorted(self._numbers)]
        return self._numbers_sorted

    def _admin(self, incoming: _Incoming, token: _Token, segments: list[str]) -> _Reply:
        """Route /admin/...: only the Teams number assignments are emulated."""
        for index, expected in enumerate(_NUMBER_PATH):
            if index >= len(segments) or segments[index].lower() != expected:
                # A missing segment: the resource above it is real but not emulated; name the last one given.
                unknown = segments[min(index, len(segments) - 1)]
                return _graph_error(
                    incoming, 400, "BadRequest", f"Resource not found for the segment '{unknown}'."
                )
        tail = segments[len(_NUMBER_PATH) :]
        if not tail:
            return self._list_number_assignments(incoming, token)
        is_key = bool(tail[0]) and not tail[0].startswith("$")
        if len(tail) == 1 and is_key:
            return self._get_number_assignment(incoming, token, tail[0])
        unknown = tail[1] if is_key else tail[0]
        return _graph_error(incoming, 400, "BadRequest", f"Resource not found for the segment '{unknown}'.")

    def _list_number_assignments(self, incoming: _Incoming, token: _Token) -> _Reply:
        self._require(incoming, token, _NUMBER_ROLES)
        self._check_options(incoming, (), refused=_NUMBER_OPTIONS_REFUSED)
        # Option names as the documentation writes them ($Top, $Skip) work too.
        options = {name.lstrip("$").lower(): value for name, value in incoming.query_pairs}
        top = _NUMBER_DEFAULT_TOP
        raw_top = options.get("top")
        if raw_top is not None:
            top = int(raw_top) if re.fullmatch(r"[0-9]{1,9}", raw_top.strip()) else 0
            if not 1 <= top <= _NUMBER_MAX_TOP:
                raise _Rejected(
                    _bad_request(
                        incoming,
                        f"Invalid page size specified: '{raw_top}'. Must be between 1 and {_NUMBER_MAX_TOP} "
                        "inclusive.",
                    )
                )
        skip = 0
        raw_skip = options.get("skip")
        if raw_skip is not None:
            if not re.fullmatch(r"[0-9]{1,12}", raw_skip.strip()):
                raise _Rejected(
                    _bad_request(
                        incoming,
                        f"Invalid value '{raw_skip}' for the query option '$skip': it must be a whole number "
                        "of 0 or more.",
                    )
                )
            skip = int(raw_skip)
        records = self._sorted_numbers()
        raw_filter = options.get("filter")
        if raw_filter is not None:
            try:
                clauses = _number_filter(raw_filter)
            except ValueError as exc:
                raise _Rejected(_bad_request(incoming, str(exc))) from None
            filtered = self._numbers_filtered.get(raw_filter)
            if filtered is None:
                filtered = [record for record in records if _number_matches(record, clauses)]
                self._numbers_filtered[raw_filter] = filtered
            records = filtered
        size = max(1, min(top, self.page_cap))
        page = records[skip : skip + size]
        body: dict[str, object] = {
            "@odata.context": f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{_NUMBER_SET}"
        }
        end = skip + len(page)
        if end < len(records):
            body["@odata.nextLink"] = _next_link(incoming, "$skip", str(end), drop=("skip",))
        body["value"] = page
        return _Reply(200, encode_json(body), _graph_headers(incoming))

    def _get_number_assignment(self, incoming: _Incoming, token: _Token, record_id: str) -> _Reply:
        self._require(incoming, token, _NUMBER_ROLES)
        self._check_options(incoming, (), refused=_NUMBER_OPTIONS_REFUSED | {"filter", "top", "skip"})
        number = self._number_ids.get(record_id)
        if number is None:
            raise self._not_found(incoming, record_id)
        body: dict[str, object] = {
            "@odata.context": f"{incoming.origin}{GRAPH_PREFIX}/$metadata#{_NUMBER_SET}/$entity"
        }
        body.update(self._numbers[number])
        return _Reply(200, encode_json(body), _graph_headers(incoming))
